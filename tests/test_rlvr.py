"""RLVR: the verifier reward, the instruction loader, and GRPO's update rule on the embedded model.

The GRPO tests run TRL's GRPOTrainer as the ``grpo`` kind builds it (``training.build_trainer``), on the real
embedded model in float32 (no bf16: the assertions compare weights and log-likelihoods exactly or by sign).
"""

from __future__ import annotations

import copy

import pytest

from autoif_lib import io, scoring
from autoif_lib.rlvr import data, training
from autoif_lib.sandbox import Sandbox, SandboxConfig
from autoif_lib.train import TrainJob

HAS_A = "def evaluate(response):\n    return 'a' in response\n"
LONG = "def evaluate(response):\n    return len(response) > 100\n"
RAISES = "def evaluate(response):\n    raise RuntimeError('hostile')\n"
LOOPS = "def evaluate(response):\n    while True:\n        pass\n"


@pytest.fixture(scope="module")
def box():
    with Sandbox(SandboxConfig(timeout_s=1.0)) as b:
        yield b


def test_reward_is_the_pass_rate_or_all_pass_and_bad_verifiers_fail(box):
    completions = [[{"role": "assistant", "content": t}] for t in ("a short one", "bbb", "a" * 200, "a")]
    verifiers = [[HAS_A, LONG]] * 3 + [[HAS_A, RAISES, LOOPS]]
    rate = scoring.verifier_reward(box.verdicts)(completions=completions, verifiers=verifiers)
    assert rate == [0.5, 0.0, 1.0, pytest.approx(1 / 3, abs=1e-3)]  # raising and looping verifiers count as fails
    allp = scoring.verifier_reward(box.verdicts, mode="all_pass")(completions=completions, verifiers=verifiers)
    assert allp == [0.0, 0.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="pass_rate or all_pass"):
        scoring.verifier_reward(box.verdicts, mode="majority")


def test_instructions_from_seeds_and_from_records(tmp_path):
    from autoif_lib.seeds import CPU_SEEDS_PATH

    ins, dropped = data.load_instructions(CPU_SEEDS_PATH)
    assert len(ins) == 14 and not dropped and all(len(i["functions"]) == 1 for i in ins)
    seedfile = tmp_path / "s.jsonl"
    io.write_jsonl(seedfile, [{"id": "a", "instruction": "Say a.", "verifier": HAS_A}, {"id": "b", "instruction": "Say b."}])
    ins, dropped = data.load_instructions(seedfile)
    assert [i["id"] for i in ins] == ["a"] and dropped == {"no_verifier": 1}
    recs = tmp_path / "r.jsonl"
    io.write_jsonl(recs, [{"id": "x", "instruction": "Use a.", "functions": [{"src": HAS_A}, {"src": ""}]},
                          {"id": "y", "instruction": "Nothing.", "functions": []}])
    ins, dropped = data.load_instructions(recs)
    assert [(i["id"], len(i["functions"])) for i in ins] == [("x", 1)] and dropped == {"no_verifier": 1}


def test_training_prompts_carry_the_instructions_verifiers_and_cap_is_seeded():
    from autoif_lib.instruction_sets import combine_turn

    ins = [{"id": "a", "instruction": "Use an a.", "functions": [{"src": HAS_A}]},
           {"id": "b", "instruction": "Be long.", "functions": [{"src": LONG}, {"src": HAS_A}]}]
    queries = [{"id": f"q{k}", "query": f"Tell me about topic number {k}."} for k in range(6)]
    ps = data.training_prompts(ins, queries, 3, 0, "instruction_first")
    assert len(ps) == 6 and data.per_instruction(ps) == {"a": 3, "b": 3}
    by_q = {q["id"]: q["query"] for q in queries}
    for p in ps:
        i = next(x for x in ins if x["id"] == p["instruction_id"])
        assert p["verifiers"] == [f["src"] for f in i["functions"]]
        assert p["prompt"] == [{"role": "user", "content": combine_turn(i["instruction"], by_q[p["query_id"]])}]
    capped = data.cap(ps, 4, 0)
    assert len(capped) == 4 and capped == data.cap(ps, 4, 0) and capped == [p for p in ps if p in capped]
    assert data.cap(ps, 0, 0) == ps


# -- GRPO's update rule --------------------------------------------------------------------------------------

def _job(tmp_path, prompts, *, generations: int, lr: float, reward: str = "pass_rate") -> TrainJob:
    from autoif_lib.models.backends import resolve_model_path

    f = io.write_jsonl(tmp_path / "train.jsonl", prompts)
    return TrainJob(kind="grpo", model=resolve_model_path("embedded"), train_file=str(f), output_dir=str(tmp_path),
                    seed=0, options={"reward": reward, "sandbox": {"timeout_s": 1.0}},
                    trl_args={"learning_rate": lr, "beta": 0.0, "num_generations": generations, "max_steps": 1,
                              "per_device_train_batch_size": generations, "gradient_accumulation_steps": 1,
                              "max_completion_length": 6, "temperature": 1.0, "loss_type": "grpo",
                              "weight_decay": 0.0, "bf16": False, "logging_steps": 1, "lr_scheduler_type": "constant"})


def _model():
    import torch
    from transformers import AutoModelForCausalLM

    from autoif_lib.models.backends import resolve_model_path

    return AutoModelForCausalLM.from_pretrained(resolve_model_path("embedded"), dtype=torch.float32)


PROMPT = [{"role": "user", "content": "Name a fruit."}]


@pytest.mark.parametrize("verdict", ["True", "False"])
def test_groups_that_all_pass_or_all_fail_give_zero_advantage_and_no_update(tmp_path, box, verdict):
    """Every sample rewarded alike: zero advantages, a zero policy-gradient term, and with beta 0 and no weight
    decay not one weight moves, even at a learning rate of 1e-3."""
    job = _job(tmp_path, [{"prompt": PROMPT, "verifiers": [f"def evaluate(response):\n    return {verdict}\n"],
                           "instruction_id": "const"}], generations=4, lr=1e-3)
    model = _model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = training.build_trainer(job, [scoring.verifier_reward(box.verdicts)], model=model)
    trainer.train()
    log = next(h for h in trainer.state.log_history if "reward" in h)
    assert log["reward"] == (1.0 if verdict == "True" else 0.0) and log["frac_reward_zero_std"] == 1.0
    assert log["loss"] == 0.0 and log["grad_norm"] == 0.0
    moved = [n for n, p in model.named_parameters() if not bool((p.detach() == before[n]).all())]
    assert moved == []


def test_the_one_passing_sample_of_a_group_becomes_more_likely(tmp_path):
    """Reward 1 for the first sample of the group, 0 for the other three: after one step that sample's
    log-likelihood rises, and it rises relative to the others'."""
    import torch

    seen = {}

    def first_passes(prompts=None, completions=None, completion_ids=None, **kw):
        seen["ids"] = [list(c) for c in completion_ids]
        return [1.0 if k % 4 == 0 else 0.0 for k in range(len(completions))]

    job = _job(tmp_path, [{"prompt": PROMPT, "verifiers": [HAS_A], "instruction_id": "p"}], generations=4, lr=1e-5)
    model = _model()
    init = copy.deepcopy(model)
    trainer = training.build_trainer(job, [first_passes], model=model)
    trainer.train()
    tok = trainer.processing_class
    prompt_ids = tok.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=True, return_dict=False)

    def logp(m, completion):
        ids = torch.tensor([list(prompt_ids) + completion])
        with torch.no_grad():
            lp = torch.log_softmax(m(ids).logits[0, :-1].float(), -1)
        n = len(prompt_ids)
        return sum(lp[n - 1 + k, t].item() for k, t in enumerate(completion))

    ids = seen["ids"]
    assert len(ids) == 4 and len({tuple(i) for i in ids}) > 1  # the group's samples differ
    gain = [logp(model, c) - logp(init, c) for c in ids]
    assert gain[0] > 0, gain
    assert gain[0] > max(gain[1:]), gain


def test_options_are_checked():
    job = TrainJob(kind="grpo", model="m", train_file="f", output_dir="o", options={"reward": "x"})
    with pytest.raises(ValueError, match="pass_rate or all_pass"):
        training.GRPOOptions.of(job)
    job.options = {"rewrd": "pass_rate"}
    with pytest.raises(ValueError, match="unknown option"):
        training.GRPOOptions.of(job)


def test_recipes_load_and_the_cpu_effect_instruction_set_is_autoifs():
    """Every RLVR recipe resolves; the paper recipe's batch is IF-RLVR's 48 prompts x 16 samples; and the
    three-way comparison's RLVR stage 00 has exactly the values AutoIF's stage 05 has for every field they share
    (same names, same functions: the same instruction set, split and probe)."""
    from autoif_lib.recipes import load_recipe, repo_root

    root = repo_root() / "params"
    recipes = {p.stem: load_recipe(p) for p in sorted((root / "rlvr").glob("*.yaml"))}
    assert set(recipes) >= {"smoke", "quickstart", "cpu_effect", "paper_tulu3_8b_if_rlvr"}
    paper = recipes["paper_tulu3_8b_if_rlvr"].stages["01_grpo"]
    assert paper.batch_plan()["global"] == 768 and paper.grpo["num_generations"] == 16
    assert (paper.grpo["learning_rate"], paper.grpo["beta"], paper.grpo["max_completion_length"]) == (5e-7, 0.01, 2048)
    rl_cpu, af_cpu = recipes["cpu_effect"], load_recipe(root / "autoif" / "cpu_effect.yaml")
    assert rl_cpu.stages["00_instructions"].instructions_file.endswith("seeds_cpu.jsonl")
    _assert_same_instruction_set_and_evaluation(rl_cpu, af_cpu)


def _assert_same_instruction_set_and_evaluation(rl_recipe, af_recipe, ifbench_subset: bool = True):
    import dataclasses

    rl, af = rl_recipe.stages["00_instructions"], af_recipe.stages["05_responses"]
    shared = {f.name for f in dataclasses.fields(rl)} & {f.name for f in dataclasses.fields(af)} - {"params_file", "run_dir"}
    assert {"heldout_fraction", "heldout_query_fraction", "probe_samples", "learnable_range", "queries_per_instruction",
            "layout", "temperature", "max_new_tokens", "repetition_penalty", "seed"} <= shared
    assert {k: getattr(rl, k) for k in shared} == {k: getattr(af, k) for k in shared}
    assert rl.policy == af.supervisor  # batch size too: bf16 generations can depend on the batch's shape
    assert rl.instructions_file == af_recipe.stages["01_augment"].seeds_file
    rl_eval, af_eval = rl_recipe.stages["02_evaluate"], af_recipe.stages["11_evaluate"]
    for k in ("ifeval_subset", "ifbench", "ifbench_subset", "max_new_tokens", "trained_queries", "heldout_queries",
              "heldout_max_new_tokens", "seed"):
        assert getattr(rl_eval, k) == getattr(af_eval, k), k


@pytest.mark.parametrize("sweep", ["methods_cpu", "three_way_cpu"])
def test_the_three_way_sweeps_give_autoif_and_rlvr_one_instruction_set(sweep):
    """`make run` and `make compare`: the AutoIF and RLVR cells probe, split and evaluate alike, value for value,
    after the sweep's overrides (an override on one side only would compare two different instruction sets)."""
    from autoif_lib import sweeps
    from autoif_lib.recipes import repo_root

    sw = sweeps.load_sweep(repo_root() / "params" / "ablations" / f"{sweep}.yaml")
    cells = {c.variant: c.load() for c in sw.cells}
    assert set(cells) == {"autoif", "spar", "rlvr"}
    _assert_same_instruction_set_and_evaluation(cells["rlvr"], cells["autoif"])
    assert cells["spar"].stages["00_prompts"].seeds_file == cells["rlvr"].stages["00_instructions"].instructions_file
    assert cells["spar"].stages["20_evaluate"].ifeval_subset == cells["rlvr"].stages["02_evaluate"].ifeval_subset
