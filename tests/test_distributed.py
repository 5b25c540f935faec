"""Several training ranks on CPU (gloo), started by the same launch code the GPU recipes use (torchrun, one
process per rank): SFT under DeepSpeed ZeRO-3 (parameters really sharded) saves the full model, DPO under DDP
trains the global batch the stage asks for, and online DPO samples and scores on rank 0 only while both ranks
train. Each run starts 2 Python processes: about 20-40 s on 2 cores."""

from __future__ import annotations

import math

import pytest

from autoif_lib import distributed, io, train
from autoif_lib.autoif.stages import DPOParams
from autoif_lib.train import TrainJob



def _sft_data(path, n=8):
    ex = [{"messages": [{"role": "user", "content": f"Count to {i}."},
                        {"role": "assistant", "content": " ".join(str(k) for k in range(1, i + 2))}]} for i in range(n)]
    return str(io.write_jsonl(path, train.sft_records(ex)))


def _loaded_stats(folder):
    """The saved checkpoint as transformers loads it, summed like the in-memory weights."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32")
    return train.weight_stats(model)


def test_zero3_sft_on_two_ranks_saves_the_full_model(tiny_model, root, tmp_path):
    """ZeRO-3 leaves each rank a slice of every parameter (the module's tensors are empty); the trainer's save
    gathers them. The checkpoint reloads with exactly the weights the ranks held (per-tensor sums in float64),
    and differs from the initial model (it trained). Rank 0 alone calling save_pretrained wrote empty tensors."""
    job = TrainJob(kind="sft", model=tiny_model, train_file=_sft_data(tmp_path / "sft.jsonl"),
                   output_dir=str(tmp_path / "out"), deepspeed_config=str(root / "params/accelerate/zero3.json"),
                   trl_args={"max_steps": 2, "per_device_train_batch_size": 2, "learning_rate": 1e-2, "bf16": False,
                             "max_length": 64})
    res = train.run(job, num_procs=2)
    assert res["world_size"] == 2 and res["sharded"] is True and res["steps"] == 2
    assert res["weights_verified"] is True
    in_memory = io.read_json(tmp_path / "out" / "weight_stats.json")
    saved = _loaded_stats(res["final_model"])
    assert set(saved) == set(in_memory)
    for name, mem in in_memory.items():
        assert saved[name] == pytest.approx(mem, rel=1e-9, abs=1e-9), name
    init = _loaded_stats(tiny_model)
    assert any(saved[n][2] != pytest.approx(init[n][2], rel=1e-6) for n in init)  # it trained
    assert (tmp_path / "out" / "model" / "tokenizer_config.json").exists()


def test_ddp_dpo_on_two_ranks_trains_the_global_batch(tiny_model, tmp_path):
    """global_batch_size 4 with per-device 1 on 2 ranks: accumulation 2, so 8 pairs make exactly 2 optimiser
    steps in one epoch (every rank took its half of each batch: one rank alone would hang the step)."""
    p = DPOParams(num_gpus=2, global_batch_size=4, deepspeed_config="",
                  dpo={"num_train_epochs": 1, "per_device_train_batch_size": 1, "learning_rate": 1e-3,
                       "bf16": False, "max_length": 64})
    assert p.batch_plan() == {"per_device": 1, "accumulation": 2, "world": 2, "global": 4}
    pairs = [{"prompt": [{"role": "user", "content": f"Say {i}."}], "chosen": [{"role": "assistant", "content": f"{i}"}],
              "rejected": [{"role": "assistant", "content": "no"}]} for i in range(8)]
    job = TrainJob(kind="dpo", model=tiny_model, train_file=str(io.write_jsonl(tmp_path / "pairs.jsonl", pairs)),
                   output_dir=str(tmp_path / "out"), trl_args=p.trl_args())
    res = train.run(job, num_procs=2)
    assert (res["world_size"], res["sharded"], res["steps"]) == (2, False, 2)
    stats = io.read_json(tmp_path / "out" / "weight_stats.json")
    saved = _loaded_stats(res["final_model"])
    assert all(saved[n] == pytest.approx(v, rel=1e-9, abs=1e-9) for n, v in stats.items())


def test_online_dpo_on_two_ranks_samples_on_rank_0_and_trains_on_both(tiny_model, root, tmp_path):
    """Two iterations under ZeRO-3: rank 0 samples with the transformers backend and scores in its sandbox,
    writes the pairs; both ranks train on them (per-device 1 x 2 ranks: ceil(pairs / 2) steps), the saved
    policy of iteration 1 is what iteration 2 samples from, and the stage's model is the last one."""
    data = tmp_path / "online.jsonl"
    io.write_jsonl(data, [{"prompt": [{"role": "user", "content": f"Write anything {i}"}], "instruction_id": f"i{i}",
                           "verifiers": ["def evaluate(r):\n    return len(r) % 2 == 0"]} for i in range(3)])
    job = TrainJob(kind="online_dpo", model=tiny_model, train_file=str(data), output_dir=str(tmp_path / "out"),
                   options={"iterations": 2, "samples_per_prompt": 4, "max_new_tokens": 8, "temperature": 1.0},
                   deepspeed_config=str(root / "params/accelerate/zero3.json"),
                   trl_args={"num_train_epochs": 1, "per_device_train_batch_size": 1, "learning_rate": 1e-3,
                             "bf16": False, "max_length": 64})
    res = train.run(job, num_procs=2)
    its = res["iterations"]
    assert res["world_size"] == 2 and len(its) == 2
    for i, it in enumerate(its, 1):
        assert it["pairs"] > 0, it
        assert it["steps"] == math.ceil(it["pairs"] / 2), it  # 2 ranks x 1 per device per step
        pairs = io.read_jsonl(tmp_path / "out" / f"iter_{i}" / "pairs.jsonl")
        assert len(pairs) == it["pairs"]
        saved = _loaded_stats(tmp_path / "out" / f"iter_{i}" / "model")
        mem = io.read_json(tmp_path / "out" / f"iter_{i}" / "weight_stats.json")
        assert all(saved[n] == pytest.approx(v, rel=1e-9, abs=1e-9) for n, v in mem.items())
    assert res["steps"] == sum(it["steps"] for it in its)
    last = _loaded_stats(tmp_path / "out" / "iter_2" / "model")
    final = _loaded_stats(res["final_model"])
    assert all(final[n] == pytest.approx(v, rel=1e-12) for n, v in last.items())


def test_launch_commands(tmp_path):
    """One node: torchrun standalone (a free port per stage). Several: srun across the Slurm allocation's
    nodes, one c10d rendezvous on this node; outside an allocation, or with too few nodes, a clear error."""
    cmd = distributed.launch_command("job.json", 8, python="/v/bin/python")
    assert cmd == ["/v/bin/python", "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
                   "--nproc_per_node", "8", "-m", "autoif_lib.train", "job.json"]
    env = {"SLURM_JOB_ID": "77", "SLURM_JOB_NUM_NODES": "8"}
    cmd = distributed.launch_command("job.json", 8, num_machines=8, python="/v/bin/python", rdzv_host="node01",
                                     rdzv_port=29400, env=env)
    assert cmd == ["srun", "--nodes", "8", "--ntasks-per-node", "1", "--kill-on-bad-exit=1",
                   "/v/bin/python", "-m", "torch.distributed.run", "--nnodes", "8", "--rdzv_backend", "c10d",
                   "--rdzv_endpoint", "node01:29400", "--rdzv_id", "autoif-77", "--nproc_per_node", "8",
                   "-m", "autoif_lib.train", "job.json"]
    with pytest.raises(distributed.LaunchError, match="inside a Slurm allocation"):
        distributed.launch_command("job.json", 8, num_machines=8, env={})
    with pytest.raises(distributed.LaunchError, match="has 2 node"):
        distributed.launch_command("job.json", 8, num_machines=8, env={"SLURM_JOB_ID": "1", "SLURM_JOB_NUM_NODES": "2"})


def test_saved_checkpoint_with_empty_tensors_is_refused(tiny_model, tmp_path):
    """What a rank-0-only save under ZeRO-3 writes: the right names with empty tensors. The check names them."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype="float32")
    stats = train.weight_stats(model)
    train.verify_saved(stats, tiny_model)  # the real checkpoint passes
    (tmp_path / "bad").mkdir()
    save_file({n: torch.empty(0) for n, _ in model.named_parameters()}, str(tmp_path / "bad" / "model.safetensors"))
    with pytest.raises(train.SaveMismatch, match="differs from the trained weights"):
        train.verify_saved(stats, tmp_path / "bad")


def test_rank_0_failure_stops_the_waiting_ranks_with_its_message(tmp_path, monkeypatch):
    """Rank 0's work raising leaves a failure marker; a waiting rank stops with rank 0's error (not after the
    collective timeout); a rank that waits too long says which file and which param to raise."""
    product = tmp_path / "iter_1" / "sampling.json"

    def boom():
        raise ValueError("vLLM could not start: out of memory")

    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="out of memory"):
        distributed.on_main(boom, product, timeout_s=5)
    assert not product.exists()
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(RuntimeError, match=r"(?s)rank 0 failed while writing .*out of memory"):
        distributed.on_main(boom, product, timeout_s=5, poll_s=0.01)
    (tmp_path / "iter_1" / "sampling.json.failed").unlink()
    with pytest.raises(TimeoutError, match="dist_timeout_minutes"):
        distributed.on_main(boom, product, timeout_s=0.05, poll_s=0.01)
    monkeypatch.setenv("RANK", "0")  # rank 0 succeeds: the marker of the earlier failure is gone, the product there
    assert distributed.on_main(lambda: io.write_json(product, {"pairs": 1}) and "done", product, timeout_s=5) == "done"
    assert not (tmp_path / "iter_1" / "sampling.json.failed").exists()
