"""Training on a tiny model: SFT puts loss on the response only, online DPO learns only from pairs the
verifiers separate (none: no step), the online reward is the sandbox pass rate, and multi-GPU / multi-node
recipes yield the right accelerate commands."""

from __future__ import annotations

import json

import pytest

from autoif_lib import io, scoring, train
from autoif_lib.autoif import training
from autoif_lib.train import TrainJob


def _weights(path):
    from safetensors.torch import load_file

    return load_file(f"{path}/model.safetensors")


def _changed(before, after_path):
    after = _weights(after_path)
    return sum(1 for k in before if k in after and not (before[k] == after[k]).all())


def _common(tmp_path):
    return {"max_steps": 2, "per_device_train_batch_size": 2, "learning_rate": 1e-3, "bf16": False}


def _sft_file(path, pairs):
    examples = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in pairs]
    io.write_jsonl(path, train.sft_records(examples))
    return path


def test_sft_prompt_tokens_carry_no_loss(tiny_model, tmp_path):
    """The collated batch SFTTrainer trains on: every label before the response is ignored (-100), and
    exactly the response's tokens (plus the end-of-turn) carry loss."""
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    data = _sft_file(tmp_path / "sft.jsonl", [("Say HELLO in lowercase, please, and nothing else.", "hello there")])
    args = SFTConfig(output_dir=str(tmp_path / "o"), report_to="none", use_cpu=True, bf16=False, max_length=128,
                     completion_only_loss=True)
    trainer = SFTTrainer(model=tiny_model, args=args, train_dataset=train._dataset(str(data), ["prompt", "completion"]))
    batch = trainer.data_collator([trainer.train_dataset[0]])
    labels, ids = batch["labels"][0].tolist(), batch["input_ids"][0].tolist()
    tok = AutoTokenizer.from_pretrained(tiny_model)
    prompt_len = len(tok.apply_chat_template([{"role": "user", "content": "Say HELLO in lowercase, please, and nothing else."}],
                                             add_generation_prompt=True, tokenize=True))
    assert all(x == -100 for x in labels[:prompt_len])                      # system + user + assistant header
    trained = [i for i, x in zip(ids, labels) if x != -100]
    assert tok.decode(trained).startswith("hello there")                    # the response, and only it
    assert len(trained) <= len(tok("hello there", add_special_tokens=False)["input_ids"]) + 2  # + end of turn


def test_sft_records_split_the_last_assistant_turn():
    ex = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                       {"role": "assistant", "content": "a"}]}
    assert train.sft_records([ex]) == [{"prompt": ex["messages"][:2], "completion": ex["messages"][2:]}]
    with pytest.raises(ValueError, match="without a final assistant turn"):
        train.sft_records([{"messages": [{"role": "user", "content": "u"}]}])


def test_sft_changes_parameters_and_logs_loss(tiny_model, tmp_path):
    data = _sft_file(tmp_path / "sft.jsonl", [(f"Say {w} in lowercase.", w.lower()) for w in ["HELLO", "WORLD", "AGAIN", "MORE"]])
    before = _weights(tiny_model)
    res = train.run_job(TrainJob(kind="sft", model=tiny_model, train_file=str(data), output_dir=str(tmp_path / "out"),
                                 trl_args={**_common(tmp_path), "max_length": 64}))
    assert res["steps"] == 2
    losses = [h["loss"] for h in io.read_jsonl(tmp_path / "out" / "train_log.jsonl") if "loss" in h]
    assert len(losses) == 2 and all(l > 0 for l in losses)
    assert _changed(before, res["final_model"]) > 0


def test_sft_lora_is_merged(tiny_model, tmp_path):
    data = _sft_file(tmp_path / "sft.jsonl", [("Hi", "hello")] * 4)
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


def _scripted(passing):
    """A sandbox stand-in: for every function, sample k of each prompt passes iff passing(k)."""
    from types import SimpleNamespace

    def runner(functions, inputs):
        return [[SimpleNamespace(status="pass" if passing(k) else "fail") for k in range(len(inp))] for inp in inputs]
    return runner


def _online_job(tiny_model, tmp_path, n_prompts=3):
    data = tmp_path / "online.jsonl"
    io.write_jsonl(data, [{"prompt": [{"role": "user", "content": f"Say anything {i}"}], "instruction_id": f"i{i}",
                           "verifiers": ["def evaluate(r):\n    return True"]} for i in range(n_prompts)])
    return TrainJob(kind="online_dpo", model=tiny_model, train_file=str(data), output_dir=str(tmp_path / "out"),
                    options={"iterations": 2, "samples_per_prompt": 4, "max_new_tokens": 8, "temperature": 1.0},
                    trl_args={**_common(tmp_path), "max_steps": 1})


def test_online_dpo_without_a_separated_pair_takes_no_step(tiny_model, tmp_path):
    before = _weights(tiny_model)
    res = training.online_loop(_online_job(tiny_model, tmp_path), _scripted(lambda k: False))  # nothing passes
    assert [(i["pairs"], i["prompts_with_pair"], i["steps"]) for i in res["iterations"]] == [(0, 0, 0), (0, 0, 0)]
    assert res["steps"] == 0 and res["trained"] is False and res["log_history"] == []
    assert _changed(before, res["final_model"]) == 0  # the model is the initial one, bit for bit
    res = training.online_loop(_online_job(tiny_model, tmp_path / "all"), _scripted(lambda k: True))  # all pass: ties
    assert res["steps"] == 0 and all(i["pairs"] == 0 for i in res["iterations"])


def test_online_dpo_loop_trains_on_exactly_the_separated_pairs(tiny_model, tmp_path):
    before = _weights(tiny_model)
    res = training.online_loop(_online_job(tiny_model, tmp_path), _scripted(lambda k: k == 0))  # sample 0 passes
    first = res["iterations"][0]
    # each prompt: 1 chosen (sample 0) x 2 of its 3 failing samples
    assert (first["prompts"], first["samples"], first["prompts_with_pair"], first["pairs"]) == (3, 12, 3, 6)
    assert first["steps"] == 1 and res["steps"] == 2
    pairs = io.read_jsonl(tmp_path / "out" / "iter_1" / "pairs.jsonl")
    assert len(pairs) == 6 and len({p["prompt"][0]["content"] for p in pairs}) == 3
    assert _changed(before, res["final_model"]) > 0
    # steps count on across iterations (each iteration's trainer restarts at step 1)
    logged = [h for h in res["log_history"] if "loss" in h]
    assert [(h["iteration"], h["step_in_iteration"], h["step"]) for h in logged] == [(1, 1, 1), (2, 1, 2)]
    fig = train.plot_curves(res["log_history"], ("loss",))
    ax = fig.axes[0]
    xs = list(ax.lines[0].get_xdata())
    assert xs == [1, 2]  # monotonic: no jump back to step 1 at iteration 2
    assert [tuple(l.get_xdata()) for l in ax.lines[1:]] == [(1.5, 1.5)]  # iteration 2 starts here (dashed)


@pytest.mark.parametrize("ref_model", ["init", "previous"])
def test_online_dpo_reference_is_the_initial_policy_unless_switched(tiny_model, tmp_path, ref_model):
    # DPO's implicit reward is beta * (log pi - log pi_ref), logged on the batch before the update. At the first
    # step of iteration 2 the policy is iteration 1's result: against itself ("previous") every reward is exactly
    # 0; against the initial policy (paper Eq. 2: pi_ref = pi_SFT, fixed) it is not.
    job = _online_job(tiny_model, tmp_path)
    job.options["ref_model"] = ref_model
    res = training.online_loop(job, _scripted(lambda k: k == 0))
    first_of_2 = next(h for h in res["log_history"] if h.get("iteration") == 2 and "rewards/chosen" in h)
    first_of_1 = next(h for h in res["log_history"] if h.get("iteration") == 1 and "rewards/chosen" in h)
    assert first_of_1["rewards/chosen"] == 0.0 and first_of_1["rewards/rejected"] == 0.0  # pi = pi_ref = init
    moved = abs(first_of_2["rewards/chosen"]) + abs(first_of_2["rewards/rejected"])
    assert (moved > 1e-4) if ref_model == "init" else (moved == 0.0), first_of_2


def test_paper_recipes_train_the_papers_global_batch(root):
    """AutoIF App. B: SFT at 128 (512 for 70B-class models), DPO at 64; online DPO as DPO. The gradient
    accumulation follows from the world size (8 GPUs x 8 nodes for the 70B/72B recipes, 8 GPUs otherwise)."""
    from autoif_lib.recipes import load_recipe

    expect = {"paper_qwen2_7b_strong_to_weak": (128, 64, 64, 8), "paper_llama3_8b_strong_to_weak": (128, 64, 64, 8),
              "paper_qwen2_72b_self_alignment": (512, 64, 64, 64), "paper_llama3_70b_self_alignment": (512, 64, 64, 64)}
    for name, (sft, dpo, online, world) in expect.items():
        r = load_recipe(root / "params" / "autoif" / f"{name}.yaml")
        plans = {s: r.stages[s].batch_plan() for s in ("08_sft", "09_dpo", "10_online_dpo")}
        assert [p["global"] for p in plans.values()] == [sft, dpo, online], name
        assert {p["world"] for p in plans.values()} == {world}, name
        for s, p in plans.items():
            assert p["per_device"] * p["accumulation"] * p["world"] == p["global"]
            assert r.stages[s].trl_args()["gradient_accumulation_steps"] == p["accumulation"]
    shown = __import__("autoif_lib.recipes", fromlist=["show"]).show(
        load_recipe(root / "params" / "autoif" / "paper_qwen2_72b_self_alignment.yaml"))
    assert "per-device 1 x accumulation 8 x world 64 = 512" in shown
    assert "per-device 1 x accumulation 1 x world 64 = 64" in shown


def test_global_batch_errors(write_yaml):
    from autoif_lib.params import ParamsError
    from autoif_lib.recipes import load_recipe

    bad = write_yaml("experiment: x\nstages:\n  08_sft: {num_gpus: 8, global_batch_size: 100, "
                     "sft: {per_device_train_batch_size: 2}}\n", "r.yaml")
    with pytest.raises(ParamsError, match=r"global_batch_size: 100 is not a multiple of per_device_train_batch_size 2 x 8"):
        load_recipe(bad)
    both = write_yaml("experiment: x\nstages:\n  08_sft: {global_batch_size: 16, sft: {per_device_train_batch_size: 2, "
                      "gradient_accumulation_steps: 4}}\n", "r2.yaml")
    with pytest.raises(ParamsError, match="gradient_accumulation_steps: derived from global_batch_size"):
        load_recipe(both)


def test_online_loop_samples_with_the_recipes_backend(root, monkeypatch, tmp_path):
    """Under accelerate only rank 0 samples; the generator is the recipe's backend with the policy as model."""
    seen = []

    class FakeGen:
        def __init__(self, spec, cache_path=None, progress=True):
            seen.append(spec)

        def generate(self, convs, sp, desc=""):
            return [["a", "b"] for _ in convs]

    import autoif_lib.models as models

    monkeypatch.setattr(models, "Generator", FakeGen)
    job = TrainJob(kind="online_dpo", model="/ckpt/sft", train_file="x", output_dir=str(tmp_path),
                   options={"generation": {"backend": "vllm", "model": "ignored", "tensor_parallel_size": 4}})
    prompts = [{"prompt": [{"role": "user", "content": "p"}], "instruction_id": "i", "verifiers": ["src"]}]
    pairs, info = training.sample_and_pair(job, training.policy_generator(job, "/ckpt/sft"), prompts,
                                        _scripted(lambda k: k == 0), 0)
    assert seen[0].backend == "vllm" and seen[0].model == "/ckpt/sft" and seen[0].tensor_parallel_size == 4
    assert info["pairs"] == 1 and [(p["chosen"], p["rejected"]) for p in pairs] == [("a", "b")]
    monkeypatch.setenv("RANK", "1")
    assert train.distributed.is_main() is False
