"""SPaR smoke run, headless, with params/spar/smoke.yaml: every stage of one iteration on the embedded model.

Checks the files and counts each stage promises, that iterations beyond `iterations` are off, that every
figure cell shows its figure, and that a second run skips everything.
"""

from __future__ import annotations

import time

import pytest

from autoif_lib import io
from autoif_lib.pipeline import get_pipeline
from autoif_lib.runner import list_runs, run_recipe

PIPE = get_pipeline("spar")


@pytest.fixture(scope="module")
def spar_run(tmp_path_factory):
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = tmp_path_factory.mktemp("spar_outputs")
    t0 = time.time()
    res = run_recipe(root / "params" / "spar" / "smoke.yaml", outputs=str(out), progress=False, echo=lambda *_: None)
    return {"res": res, "run": next(out.glob("spar_smoke/spar_smoke-*")), "out": out, "first": time.time() - t0,
            "root": root}


def test_every_enabled_stage_ran_and_later_iterations_are_off(spar_run):
    res = spar_run["res"]
    on = ["00_prompts", "01_init", *[f"{n:02d}_t1_{s}" for n, s in zip(range(2, 8), PIPE_STEPS)], "20_evaluate"]
    assert [s for s, v in res.items() if v == "ran"] == on
    assert all(v == "off" for s, v in res.items() if s not in on)
    status = list_runs(spar_run["out"])[0]["stages"]
    assert status["08_t2_sample"]["state"] == "off" and status["20_evaluate"]["state"] == "complete"


PIPE_STEPS = ("sample", "judge", "search", "data", "actor", "refiner")


def test_stage_outputs_and_counts(spar_run):
    run = spar_run["run"]
    prompts = io.read_jsonl(run / "00_prompts" / "prompts.jsonl")
    assert prompts and all(1 <= len(p["constraint_ids"]) <= 4 and len(p["verifiers"]) == len(p["constraint_ids"])
                           for p in prompts)
    samples = io.read_jsonl(run / "02_t1_sample" / "samples.jsonl")
    m2 = io.read_json(run / "02_t1_sample" / "metrics.json")
    assert len(samples) == m2["n_prompts"] * 2  # n_samples: 2
    votes = io.read_jsonl(run / "03_t1_judge" / "votes.jsonl")
    assert len(votes) == len(samples) and all(v["verifier_value"] is not None for v in votes)
    roots = io.read_jsonl(run / "03_t1_judge" / "roots.jsonl")
    assert len({r["prompt_id"] for r in roots}) == len(roots)  # one root per prompt
    trees = io.read_jsonl(run / "04_t1_search" / "trees.jsonl")
    assert len(trees) == len(roots) and all(t["nodes"][0]["response"] == r["response"] for t, r in zip(trees, roots))
    m5 = io.read_json(run / "05_t1_data" / "metrics.json")
    assert m5["n_refined_pairs"] == sum(1 for t in trees if t["success"] and t["final"] not in (None, 0))
    models = io.read_json(run / "07_t1_refiner" / "models.json")
    assert set(models) == {"actor", "refiner"}
    m20 = io.read_json(run / "20_evaluate" / "metrics.json")
    assert [r["iteration"] for r in m20["table"]] == [0, 1]
    assert all("judge_heldout_acc" in r and "search_prompt_strict" in r for r in m20["table"])


def test_ifbench_rows_and_paired_tests_per_iteration(spar_run):
    from autoif_lib import ifbench
    from autoif_lib.spar import results

    run = spar_run["run"]
    m20 = io.read_json(run / "20_evaluate" / "metrics.json")
    scorable, _ = ifbench.scorable(ifbench.load_ifbench(subset=2, seed=0))  # smoke: ifbench_subset 2, seed 0
    assert [r["ifbench_n_prompts"] for r in m20["rows"]] == [len(scorable)] * 2
    paired = {(r["checkpoint"], r["split"]) for r in m20["details"]["paired"]}
    assert {("base", "ifeval"), ("base", "ifbench")} <= paired
    trained = io.read_json(run / "06_t1_actor" / "metrics.json").get("trained", True)
    # M1 is a checkpoint of its own only when its actor step trained; then it is tested against M0
    assert (("spar_t1", "ifbench") in paired) == trained
    got = {(r["checkpoint"], r["metric"]) for r in results.collect(run)}
    assert ("base", "ifbench_prompt_strict") in got and ("base", "followbench_ssr") in got
    assert ("base", "followbench") in paired  # smoke: followbench_source sample
    assert ("base", "general_autoif_tiny_qa_acc") in got  # smoke: lm-eval on the packaged task
    assert (("spar_t1", "delta_general_autoif_tiny_qa_acc") in got) == trained
    assert (("spar_t1", "delta_ifbench_prompt_strict") in got) == trained


def test_refiner_tables_llmbar_and_refinement_accuracy_per_iteration(spar_run):
    from autoif_lib.spar import refiner_eval, results

    run = spar_run["run"]
    m20 = io.read_json(run / "20_evaluate" / "metrics.json")
    items = refiner_eval.load_llmbar()  # smoke: llmbar_source 'sample'
    for t in (0, 1):
        lb = m20["details"][f"t{t}_llmbar"]["majority"]
        assert lb["n"] == len(items) and 0 <= lb["overall"]["acc"] <= 1
    tasks = m20["details"]["refinement_tasks"]
    held = io.read_jsonl(run / "00_prompts" / "heldout_prompts.jsonl")
    assert tasks["with_verifiers"] == sum(bool(p.get("verifiers")) for p in held)
    assert tasks["responses"] == 2 * tasks["with_verifiers"]  # refine_eval_samples 2
    # 16-token answers fail their verifiers, so both held-out prompts give a task
    assert tasks["prompts_with_failure"] == tasks["with_verifiers"] > 0
    assert tasks["tasks"] == min(2, tasks["prompts_with_failure"])  # refine_eval_tasks 2
    first = None
    for t, r in zip((0, 1), m20["rows"]):  # every refiner refines the same tasks, one record each
        recs = io.read_jsonl(run / "20_evaluate" / f"refinement_t{t}.jsonl")
        assert r["refine_n"] == len(recs) == tasks["tasks"] and 0 <= r["refine_acc_verifier"] <= 1
        first = first or [x["response"] for x in recs]
        assert [x["response"] for x in recs] == first
    got = {(r["checkpoint"], r["metric"]) for r in results.collect(run)}
    assert ("base", "llmbar_overall_acc") in got and ("base", "refine_acc_verifier") in got


def test_every_figure_cell_shows_an_image(spar_run):
    from conftest import figure_cells_without_image

    ran = [s for s, state in spar_run["res"].items() if state == "ran"]
    checked, bad = figure_cells_without_image([spar_run["run"] / s / "notebook.ipynb" for s in ran])
    assert not bad and checked >= 10


def test_saved_progress_bars_show_where_their_loop_ended(spar_run):
    """A headless run saves text bars at their last state; none is a widget frozen at 0% (issue 25)."""
    from conftest import progress_bars

    shown, frozen = progress_bars([spar_run["run"] / s / "notebook.ipynb" for s, st in spar_run["res"].items() if st == "ran"])
    assert not frozen, frozen
    assert any("100%|" in line for line in shown)  # the generation bars are there, at their end


def test_second_run_skips_everything(spar_run):
    t0 = time.time()
    res = run_recipe(spar_run["root"] / "params" / "spar" / "smoke.yaml", outputs=str(spar_run["out"]),
                     progress=False, echo=lambda *_: None)
    assert set(res.values()) == {"skipped", "off"}
    assert time.time() - t0 <= 0.1 * spar_run["first"]
