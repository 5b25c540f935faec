"""Training on a tiny model: parameters change after a step, the loss is logged, the online reward is
the sandbox pass rate, and a multi-GPU recipe yields the right accelerate command."""

from __future__ import annotations

import json

import pytest

from autoif_lib import io, scoring, train
from autoif_lib.train import TrainJob


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 2-layer Llama with the embedded model's tokenizer and chat template: trains in seconds."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from autoif_lib.embedded import embedded_model_dir

    path = tmp_path_factory.mktemp("tiny")
    tok = AutoTokenizer.from_pretrained(embedded_model_dir())
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      bos_token_id=tok.bos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def _weights(path):
    from safetensors.torch import load_file

    return load_file(f"{path}/model.safetensors")


def _changed(before, after_path):
    after = _weights(after_path)
    return sum(1 for k in before if k in after and not (before[k] == after[k]).all())


def _common(tmp_path):
    return {"max_steps": 2, "per_device_train_batch_size": 2, "learning_rate": 1e-3, "bf16": False}


def test_sft_changes_parameters_and_logs_loss(tiny_model, tmp_path):
    data = tmp_path / "sft.jsonl"
    io.write_jsonl(data, [{"messages": [{"role": "user", "content": f"Say {w} in lowercase."},
                                        {"role": "assistant", "content": w.lower()}]} for w in ["HELLO", "WORLD", "AGAIN", "MORE"]])
    before = _weights(tiny_model)
    res = train.run_job(TrainJob(kind="sft", model=tiny_model, train_file=str(data), output_dir=str(tmp_path / "out"),
                                 trl_args={**_common(tmp_path), "max_length": 64}))
    assert res["steps"] == 2
    losses = [h["loss"] for h in io.read_jsonl(tmp_path / "out" / "train_log.jsonl") if "loss" in h]
    assert len(losses) == 2 and all(l > 0 for l in losses)
    assert _changed(before, res["final_model"]) > 0


def test_sft_lora_is_merged(tiny_model, tmp_path):
    data = tmp_path / "sft.jsonl"
    io.write_jsonl(data, [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "hello"}]}] * 4)
    before = _weights(tiny_model)
    res = train.run_job(TrainJob(kind="sft", model=tiny_model, train_file=str(data), output_dir=str(tmp_path / "out"),
                                 trl_args={**_common(tmp_path), "max_length": 32},
                                 lora={"r": 4, "lora_alpha": 8, "target_modules": "all-linear"}))
    after = _weights(res["final_model"])
    assert not any("lora" in k for k in after)  # a plain checkpoint
    assert _changed(before, res["final_model"]) > 0


def test_dpo_changes_parameters(tiny_model, tmp_path):
    data = tmp_path / "dpo.jsonl"
    io.write_jsonl(data, [{"prompt": [{"role": "user", "content": f"Answer in lowercase: {q}"}],
                           "chosen": [{"role": "assistant", "content": "yes it is"}],
                           "rejected": [{"role": "assistant", "content": "YES IT IS"}]} for q in "abcd"])
    before = _weights(tiny_model)
    res = train.run_job(TrainJob(kind="dpo", model=tiny_model, train_file=str(data), output_dir=str(tmp_path / "out"),
                                 trl_args={**_common(tmp_path), "beta": 0.3, "max_length": 64}))
    log = io.read_jsonl(tmp_path / "out" / "train_log.jsonl")
    assert any("loss" in h for h in log) and any("rewards/chosen" in h for h in log)
    assert _changed(before, res["final_model"]) > 0


LOWER = "def evaluate(response):\n    return response == response.lower()"
SHORT = "def evaluate(response):\n    return len(response.split()) <= 3"
BROKEN = "def evaluate(response):\n    return 1 / 0"


def test_online_reward_equals_sandbox_pass_rate():
    from autoif_lib.sandbox import Sandbox, SandboxConfig

    completions = [[{"role": "assistant", "content": "all lower here"}],
                   [{"role": "assistant", "content": "Has Capitals but short"}],
                   [{"role": "assistant", "content": "Capital Letters And Many Words Here"}],
                   [{"role": "assistant", "content": "ok"}]]
    verifiers = [[LOWER, SHORT], [LOWER, SHORT], [LOWER, SHORT], [LOWER, BROKEN]]
    with Sandbox(SandboxConfig(timeout_s=2.0)) as box:
        runner = lambda f, i: box.run(f, i).verdicts  # noqa: E731
        rewards = scoring.verifier_reward(runner)(prompts=[None] * 4, completions=completions, verifiers=verifiers)
        # independently: the pass rate straight from the sandbox
        expected = []
        for c, fns in zip(completions, verifiers):
            rows = box.run(fns, [c[0]["content"]]).verdicts
            expected.append(sum(r[0].ok for r in rows) / len(fns))
    assert rewards == expected == [1.0, 0.0, 0.0, 0.5]  # 'all lower here' has 3 words; errors fail


def test_online_dpo_trl_runs_and_changes_parameters(tiny_model, tmp_path):
    data = tmp_path / "online.jsonl"
    io.write_jsonl(data, [{"prompt": [{"role": "user", "content": f"Write something short {i}"}],
                           "verifiers": [SHORT, LOWER]} for i in range(4)])
    before = _weights(tiny_model)
    res = train.run_job(TrainJob(kind="online_dpo", model=tiny_model, train_file=str(data),
                                 output_dir=str(tmp_path / "out"), method="trl", max_new_tokens=8,
                                 trl_args={**_common(tmp_path), "max_steps": 1}, sandbox={"timeout_s": 2.0}))
    log = io.read_jsonl(tmp_path / "out" / "train_log.jsonl")
    assert any("loss" in h for h in log)
    assert _changed(before, res["final_model"]) > 0


def test_online_dpo_loop_builds_pairs_from_pass_rates(tiny_model, tmp_path):
    # Verifiers that split the samples: one passes only short answers.
    data = tmp_path / "online.jsonl"
    io.write_jsonl(data, [{"prompt": [{"role": "user", "content": f"Say anything {i}"}],
                           "instruction_id": f"i{i}", "verifiers": ["def evaluate(r):\n    return len(r) % 2 == 0"]}
                          for i in range(3)])
    res = train.run_job(TrainJob(kind="online_dpo", model=tiny_model, train_file=str(data),
                                 output_dir=str(tmp_path / "out"), method="loop", iterations=1,
                                 samples_per_prompt=4, max_new_tokens=6, temperature=1.0,
                                 trl_args={**_common(tmp_path), "max_steps": 1}, sandbox={"timeout_s": 2.0}))
    it = res["iterations"][0]
    assert it["samples"] == 12
    assert (tmp_path / "out" / "model" / "model.safetensors").exists()
    if it["pairs"]:
        assert it["steps"] == 1


def test_multi_gpu_recipe_gives_accelerate_command(root, tmp_path):
    from autoif_lib.recipes import load_recipe

    r = load_recipe(root / "params" / "autoif" / "paper_qwen2_7b_strong_to_weak.yaml")
    p = r.stages["08_sft"]
    assert p.num_gpus == 8 and p.sft["learning_rate"] == 7e-6
    job = tmp_path / "job.json"
    cmd = train.launch_command(job, p.num_gpus, root / p.deepspeed_config, python="/venv/bin/python")
    assert cmd == ["/venv/bin/accelerate", "launch", "--num_processes", "8", "--num_machines", "1",
                   "--mixed_precision", "bf16", "--use_deepspeed", "--deepspeed_config_file",
                   str(root / "params" / "accelerate" / "zero3.json"), "-m", "autoif_lib.train", str(job)]
    ds = json.loads((root / "params" / "accelerate" / "zero3.json").read_text())
    assert ds["zero_optimization"]["stage"] == 3
