"""RLVR smoke run, headless, with params/rlvr/smoke.yaml: instructions, two GRPO steps on sandbox rewards, the
evaluation every method reports.

Checks what each stage promises (prompts with their instructions' verifiers, GRPO steps with rewards and KL
logged, the probe before and after, the same evaluation rows as AutoIF's), that every figure cell shows its
figure, and that a second run skips everything.
"""

from __future__ import annotations

import pytest

from autoif_lib import io
from autoif_lib.runner import run_recipe


@pytest.fixture(scope="module")
def rlvr_run(tmp_path_factory):
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = tmp_path_factory.mktemp("rlvr_outputs")
    res = run_recipe(root / "params" / "rlvr" / "smoke.yaml", outputs=str(out), progress=False, echo=lambda *_: None)
    return {"res": res, "run": next(out.glob("rlvr_smoke/rlvr_smoke-*")), "out": out, "root": root}


def test_every_stage_ran(rlvr_run):
    assert rlvr_run["res"] == {"00_instructions": "ran", "01_grpo": "ran", "02_evaluate": "ran"}


def test_prompts_carry_their_instructions_verifiers_and_splits_are_disjoint(rlvr_run):
    run = rlvr_run["run"]
    train = io.read_jsonl(run / "00_instructions" / "train_instructions.jsonl")
    held = io.read_jsonl(run / "00_instructions" / "heldout_instructions.jsonl")
    prompts = io.read_jsonl(run / "00_instructions" / "prompts.jsonl")
    assert len(train) == 3 and held  # smoke: max_instructions 3, heldout_fraction 0.25 of 14
    assert not {i["id"] for i in train} & {i["id"] for i in held}
    fns = {i["id"]: [f["src"] for f in i["functions"]] for i in train}
    assert len(prompts) == 2 * len(train)  # queries_per_instruction 2
    assert all(p["verifiers"] == fns[p["instruction_id"]] for p in prompts)
    heldq = {q["query"] for q in io.read_jsonl(run / "00_instructions" / "heldout_queries.jsonl")}
    assert heldq and not any(q in p["prompt"][0]["content"] for p in prompts for q in heldq)


def test_grpo_took_steps_on_sandbox_rewards_and_logged_rewards_and_kl(rlvr_run):
    run = rlvr_run["run"]
    m = io.read_json(run / "01_grpo" / "metrics.json")
    assert m["trained"] is True and m["steps"] == 2  # smoke: max_steps 2
    log = [h for h in io.read_jsonl(run / "01_grpo" / "train_log.jsonl") if "reward" in h]
    assert [h["step"] for h in log] == [1, 2]
    for h in log:
        assert 0.0 <= h["reward"] <= 1.0 and "kl" in h and 0.0 <= h["frac_reward_zero_std"] <= 1.0
        assert "rewards/verifier_pass_rate/mean" in h  # the sandbox reward, by its name
    curve = io.read_json(run / "01_grpo" / "pass_curve.json")
    assert {(r["step"], r["split"]) for r in curve} == {(s, sp) for s in (0, 2)
                                                        for sp in ("trained_instructions", "heldout_instructions")}
    assert (run / "01_grpo" / "model" / "config.json").is_file()


def test_evaluation_rows_match_the_other_methods(rlvr_run):
    from autoif_lib.autoif import results as autoif_results
    from autoif_lib.rlvr import results

    run = rlvr_run["run"]
    got = {(r["checkpoint"], r["metric"]) for r in results.collect(run)}
    for metric in ("prompt_strict", "ifbench_prompt_strict", "heldout_pass_rate", "followbench_ssr",
                   "general_autoif_tiny_qa_acc"):
        assert ("base", metric) in got and ("grpo", metric) in got
    for metric in ("delta_prompt_strict", "delta_ifbench_prompt_strict", "delta_heldout_pass_rate", "delta_trained_pass_rate",
                   "grpo_steps", "grpo_reward_last"):
        assert ("grpo", metric) in got
    shared = set(autoif_results.METRICS) & set(results.METRICS)
    assert {"prompt_strict", "ifbench_prompt_strict", "heldout_pass_rate", "delta_prompt_strict"} <= shared
    paired = io.read_json(run / "02_evaluate" / "comparison.json")["paired"]
    assert {("grpo", s) for s in ("ifeval", "ifbench", "heldout_instructions", "trained_instructions")} <= {
        (r["checkpoint"], r["split"]) for r in paired}


def test_every_figure_cell_shows_an_image(rlvr_run):
    from conftest import figure_cells_without_image

    checked, bad = figure_cells_without_image([rlvr_run["run"] / s / "notebook.ipynb" for s in rlvr_run["res"]])
    assert checked >= 5 and not bad, bad  # probe; pass curve, training curves; comparison, per type


def test_second_run_skips_everything(rlvr_run):
    res = run_recipe(rlvr_run["root"] / "params" / "rlvr" / "smoke.yaml", outputs=str(rlvr_run["out"]), progress=False,
                     echo=lambda *_: None)
    assert set(res.values()) == {"skipped"}
