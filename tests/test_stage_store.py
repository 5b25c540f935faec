"""Stage outputs addressed by their inputs: what re-runs, what is shared, what is stale, what a stage may read.

The runner is real; each notebook execution is replaced by a stand-in that does what a stage
notebook does through the real stage context (open_stage, read declared upstreams, write
products, finish), so the planning rules are tested exactly and fast.
"""

from __future__ import annotations

import pytest

from autoif_lib import io, runner
from autoif_lib.params import ParamsError
from autoif_lib.pipeline import get_pipeline
from autoif_lib.runs import injected_names, open_stage, stage_state

PIPE = get_pipeline("autoif")
EXECUTED: list[str] = []
BUMP = {"05_responses": 0}  # change what stage 05 writes, to make its downstream stale


def _fake_execute(src, dst, parameters, kernel, progress):
    stage = src.stem
    ctx = open_stage(f"autoif/{stage}", parameters)
    for up in ctx.spec.upstream:
        ctx.upstream_dir(up)  # reads every declared upstream
    for product in ctx.spec.products:
        if product == "model":
            (ctx.dir / "model").mkdir(exist_ok=True)
            io.write_json(ctx.dir / "model" / "config.json", {"stage": stage})
        else:
            ctx.write_text(product, f"{stage} {BUMP.get(stage, 0)}\n")
    ctx.finish({"ok": True})
    EXECUTED.append(stage)


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "_execute", _fake_execute)
    monkeypatch.setattr(runner, "ensure_kernel", lambda: "fake")
    EXECUTED.clear()
    BUMP["05_responses"] = 0
    return tmp_path


def _run(root, out, **kw):
    EXECUTED.clear()
    res = runner.run_recipe(root / "params" / "autoif" / "quickstart.yaml", outputs=str(out), progress=False,
                            echo=lambda *_: None, **kw)
    return res, list(EXECUTED)


def test_changed_value_reruns_exactly_that_stage_and_its_downstream(fake, root):
    res, ran = _run(root, fake)
    assert ran == PIPE.order and set(res.values()) == {"ran"}
    assert _run(root, fake)[1] == []                                                   # all complete
    _, ran = _run(root, fake, overrides={"stages": {"08_sft": {"max_examples": 3}}})
    assert ran == ["08_sft", "09_dpo", "10_online_dpo", "11_evaluate"]
    _, ran = _run(root, fake, overrides={"stages": {"00_environment": {"n_prompts": 5}}})
    assert ran == ["00_environment"]
    _, ran = _run(root, fake, overrides={"stages": {"06_verify_score": {"pass_threshold": 0.8}}})
    assert ran == ["06_verify_score", "07_export", "08_sft", "09_dpo", "10_online_dpo", "11_evaluate"]


def test_runs_share_stage_folders_and_stay_browsable(fake, root):
    _run(root, fake)
    _run(root, fake, overrides={"experiment": "ablation", "stages": {"06_verify_score": {"pass_threshold": 0.8}}})
    a = next(fake.glob("quickstart/quickstart-*"))
    b = next(fake.glob("ablation/ablation-*"))
    for s in PIPE.order:
        same = (a / s).resolve() == (b / s).resolve()
        assert same == (PIPE.order.index(s) < PIPE.order.index("06_verify_score")), s
        assert (a / s / "manifest.json").exists() and (b / s / "manifest.json").exists()
    plan = io.read_json(b / "recipe.json")
    assert list(plan["stages"]) == PIPE.order and plan["stages"]["06_verify_score"]["upstream"] == [
        "04_backtranslate", "05_responses"]


def test_forced_upstream_with_new_output_marks_downstream_stale(fake, root):
    _run(root, fake)
    BUMP["05_responses"] = 1
    _run(root, fake, stages="05", force=True)
    run = next(fake.glob("quickstart/quickstart-*"))
    states = {s: stage_state(run / s) for s in PIPE.order}
    assert states["05_responses"] == "complete"
    assert [s for s, st in states.items() if st == "stale"] == ["06_verify_score", "07_export", "08_sft", "09_dpo",
                                                                "10_online_dpo", "11_evaluate"]
    status = runner.list_runs(fake)[0]["stages"]
    assert status["06_verify_score"]["state"] == "stale" and list(status) == PIPE.order
    # Stale stages re-run in order. 06-08, 10 and 11 read 05 directly; 07 and 08 then write the same
    # bytes as before, so 09 (built on 07/08 only) is complete again and is skipped.
    _, ran = _run(root, fake)
    assert ran == ["06_verify_score", "07_export", "08_sft", "10_online_dpo", "11_evaluate"]


def test_a_stage_reads_only_its_declared_upstreams(fake, root):
    _run(root, fake)
    run = next(fake.glob("quickstart/quickstart-*"))
    params = io.read_json(run / "06_verify_score" / "manifest.json")["params"]
    ctx = open_stage("autoif/06_verify_score", dict(params, run_dir=str(run)))
    assert ctx.upstream_dir("05_responses").exists()
    with pytest.raises(PermissionError, match="may read only its declared upstreams.*not '03_cross_validate'"):
        ctx.input("03_cross_validate", "kept.jsonl")
    with pytest.raises(PermissionError, match="not a file named by a path param"):
        ctx.input("params/autoif/quickstart.yaml")


def test_declared_products_must_be_written(fake, root):
    _run(root, fake, stages="00")
    run = next(fake.glob("quickstart/quickstart-*"))
    params = io.read_json(run / "00_environment" / "manifest.json")["params"]
    ctx = open_stage("autoif/00_environment", dict(params, run_dir=str(run), n_prompts=7))
    with pytest.raises(RuntimeError, match="declared products not written: demo_answers.jsonl"):
        ctx.finish({})


def test_unknown_injected_parameter_fails_naming_it():
    ns = {"_ih": ["", "# parameters: ...\nn_prompts: int = 3\n",
                  "# Parameters\npass_treshold = 0.9\nrun_dir = ''\n", "import os\nx = 1"], "x": 1}
    assert injected_names(ns) == ["n_prompts", "pass_treshold", "run_dir"]
    with pytest.raises(ParamsError, match="pass_treshold: unknown parameter \\(did you mean 'pass_threshold'\\?\\)"):
        open_stage("autoif/06_verify_score", dict(ns, pass_treshold=0.9))
