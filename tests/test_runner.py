"""The papermill runner: stage selection, smoke run, skip on re-run, clear failures, status."""

from __future__ import annotations

import json
import time

import nbformat
import pytest

from autoif_lib.params import ParamsError
from autoif_lib.nbtools import new_notebook
from autoif_lib.runner import StageFailed, list_runs, run_recipe, select_stages
from autoif_lib.runs import stage_state

AVAILABLE = ["00_environment", "01_augment", "02_verifiers", "03_cross_validate", "10_online_dpo"]


@pytest.mark.parametrize("spec, want", [
    (None, AVAILABLE),
    ("00-02", AVAILABLE[:3]),
    ("3", ["03_cross_validate"]),
    ("01,03-10", ["01_augment", "03_cross_validate", "10_online_dpo"]),
])
def test_select_stages(spec, want):
    assert select_stages(spec, AVAILABLE) == want


@pytest.mark.parametrize("spec, msg", [("a-b", "cannot parse"), ("04", "no notebook for 04"),
                                       ("3-1", "empty range")])
def test_select_stages_errors(spec, msg):
    with pytest.raises(ParamsError, match=msg):
        select_stages(spec, AVAILABLE)


def test_smoke_run_then_skip_then_status(root, tmp_path):
    lines = []
    t0 = time.time()
    res = run_recipe(root / "params" / "autoif" / "smoke.yaml", stages="00", outputs=str(tmp_path), progress=False,
                     echo=lines.append)
    first = time.time() - t0
    assert res == {"00_environment": "ran"}
    run = next(tmp_path.glob("smoke/smoke-*"))
    stage = run / "00_environment"
    man = json.loads((stage / "manifest.json").read_text())
    assert man["status"] == "complete" and man["seed"] == 0 and "torch" in man["packages"]
    assert {"git", "inputs", "outputs", "seconds", "params_hash", "machine", "key", "upstream", "digest"} <= set(man)
    assert stage.is_symlink() and stage.resolve().parent.name == "00_environment"  # run folder -> store
    assert (stage / "notebook.ipynb").exists() and (stage / "demo_answers.jsonl").exists()
    metrics = json.loads((stage / "metrics.json").read_text())
    assert metrics["throughput"]["tokens_per_s"] > 0
    # Executed copy has outputs and the injected parameters.
    nb = nbformat.read(stage / "notebook.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    # Second run: skipped, no kernel started.
    t0 = time.time()
    res2 = run_recipe(root / "params" / "autoif" / "smoke.yaml", stages="00", outputs=str(tmp_path), progress=False,
                      echo=lines.append)
    assert res2 == {"00_environment": "skipped"}
    assert time.time() - t0 < 0.1 * first
    # --force runs it again.
    assert run_recipe(root / "params" / "autoif" / "smoke.yaml", stages="00", outputs=str(tmp_path), force=True,
                      progress=False, echo=lines.append) == {"00_environment": "ran"}
    runs = list_runs(tmp_path)
    assert runs[0]["stages"]["00_environment"]["state"] == "complete"


def test_failing_stage_shows_cell_and_error(root, tmp_path, monkeypatch, write_yaml):
    nbdir = tmp_path / "nbroot" / "notebooks" / "autoif"
    nbdir.mkdir(parents=True)
    nb = new_notebook("00_environment", "broken", "fails on purpose", [
        ("code", "x = 1"), ("code", "raise ValueError('boom ' + str(n_prompts))"), ("code", "y = 2")])
    nbformat.write(nb, nbdir / "00_environment.ipynb")
    monkeypatch.setenv("AUTOIF_ROOT", str(tmp_path / "nbroot"))
    lines = []
    with pytest.raises(StageFailed, match="stage 00_environment failed"):
        run_recipe(root / "params" / "autoif" / "smoke.yaml", stages="00", outputs=str(tmp_path / "out"), progress=False,
                   echo=lines.append)
    out = "\n".join(lines)
    assert "raise ValueError('boom ' + str(n_prompts))" in out  # the failing cell's source
    assert "ValueError: boom 2" in out  # the error, with the smoke value injected
    run = next((tmp_path / "out").glob("smoke/smoke-*"))
    assert stage_state(run / "00_environment") == "failed"
    assert json.loads((run / "00_environment" / "failed.json").read_text())["error"]


def test_opened_by_hand_uses_the_quickstart_run(root, tmp_path, monkeypatch):
    """No injection: the parameters cell's defaults, and the quickstart run's folder."""
    import shutil

    from autoif_lib.recipes import load_recipe
    from autoif_lib.runs import open_stage

    fake_root = tmp_path / "repo"
    shutil.copytree(root / "params", fake_root / "params")
    monkeypatch.setenv("AUTOIF_ROOT", str(fake_root))
    # the parameters cell holds the quickstart's values (tests/test_config.py checks that)
    cell = load_recipe(fake_root / "params" / "autoif" / "quickstart.yaml", root=fake_root).stage_params("00_environment")
    defaults = dict(cell, run_dir="", params_file="params/autoif/quickstart.yaml")
    ctx = open_stage("autoif/00_environment", defaults)
    recipe = load_recipe(fake_root / "params" / "autoif" / "quickstart.yaml", root=fake_root)
    assert ctx.run_dir == recipe.run_dir and ctx.dir == recipe.stage_dir("00_environment") and ctx.dir.is_dir()
    assert str(ctx.run_dir).startswith(str(fake_root / "outputs" / "quickstart"))
    assert (recipe.run_dir / "00_environment").resolve() == ctx.dir.resolve()
    with pytest.raises(ParamsError, match="00_environment parameters.n_prompts: expected int"):
        open_stage("00_environment", dict(defaults, n_prompts="3"))
