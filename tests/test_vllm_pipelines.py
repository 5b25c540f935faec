"""The AutoIF and SPaR smoke pipelines on the real vLLM backend (vLLM's CPU build), every stage headless, and
one SPaR tree-search stage against `vllm serve` through the OpenAI client, as SPaR's released code runs it.

Marked slow (about 10 minutes: each stage that generates starts its own engine, ~20 s here), so `make test`
stays under 20 minutes; `.ci/run` runs them right after it (`make test-vllm`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from autoif_lib import io
from autoif_lib.recipes import load_recipe
from autoif_lib.runner import run_recipe

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

if os.environ.get("AUTOIF_SKIP_VLLM") == "1":
    pytest.skip("AUTOIF_SKIP_VLLM=1", allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent


def _generation(stage_dir: Path) -> list[dict]:
    return io.read_json(stage_dir / "metrics.json").get("generation", [])


@pytest.fixture(scope="module")
def autoif_vllm(tmp_path_factory):
    out = tmp_path_factory.mktemp("autoif_vllm")
    res = run_recipe(ROOT / "params" / "autoif" / "smoke_vllm.yaml", outputs=str(out), progress=False,
                     echo=lambda *_: None)
    return {"res": res, "run": next(out.glob("smoke_vllm/smoke_vllm-*")), "out": out}


@pytest.fixture(scope="module")
def spar_vllm(tmp_path_factory):
    out = tmp_path_factory.mktemp("spar_vllm")
    res = run_recipe(ROOT / "params" / "spar" / "smoke_vllm.yaml", outputs=str(out), progress=False,
                     echo=lambda *_: None)
    return {"res": res, "run": next(out.glob("spar_smoke_vllm/spar_smoke_vllm-*")), "out": out}


def test_autoif_smoke_runs_every_stage_on_vllm(autoif_vllm):
    run = autoif_vllm["run"]
    assert list(autoif_vllm["res"].values()) == ["ran"] * 12
    for stage in ("00_environment", "01_augment", "02_verifiers", "04_backtranslate", "05_responses", "11_evaluate"):
        gens = _generation(run / stage)
        assert gens and all(g["backend"] == "vllm" for g in gens), (stage, gens)
        assert sum(g["generated"] for g in gens) > 0, stage
    assert io.read_json(run / "04_backtranslate" / "metrics.json")["nli_mode"] == "likelihood"  # scored on vLLM
    assert io.read_json(run / "00_environment" / "metrics.json")["throughput"]["tokens_per_s"] > 0
    # online DPO sampled its policy with vLLM inside the stage's kernel, then trained there
    assert io.read_json(run / "10_online_dpo" / "metrics.json")["iterations"][0]["samples"] == 4
    # the evaluation served base, released it, then served the checkpoint TRL had just written in 09_dpo
    m11 = io.read_json(run / "11_evaluate" / "metrics.json")
    assert set(m11["checkpoints"]) == {"base", "dpo"} and m11["checkpoints"]["dpo"].endswith("/model")
    assert len({g["model"] for g in m11["generation"]}) == 2
    from conftest import progress_bars

    # an engine start prints before its stage's bar, not into the middle of it: every bar ends at 100%
    shown, frozen = progress_bars([run / s / "notebook.ipynb" for s in autoif_vllm["res"]])
    assert not frozen and any("100%|" in line for line in shown), frozen
    nb = (run / "11_evaluate" / "notebook.ipynb").read_text()
    assert f"released the vllm model {m11['checkpoints']['base']} before using {m11['checkpoints']['dpo']}" in nb


def test_spar_smoke_runs_every_stage_on_vllm(spar_vllm):
    run = spar_vllm["run"]
    ran = [s for s, v in spar_vllm["res"].items() if v == "ran"]
    assert ran == ["00_prompts", "01_init", "02_t1_sample", "03_t1_judge", "04_t1_search", "05_t1_data",
                   "06_t1_actor", "07_t1_refiner", "20_evaluate"]
    for stage in ("02_t1_sample", "03_t1_judge", "04_t1_search", "20_evaluate"):
        gens = _generation(run / stage)
        assert gens and all(g["backend"] == "vllm" for g in gens), (stage, gens)
    calls = io.read_json(run / "03_t1_judge" / "metrics.json")["calls"]
    assert calls["likelihood_scores"] > 0  # the refiner's votes come from P(Yes)/P(No) scored by vLLM
    votes = io.read_jsonl(run / "03_t1_judge" / "votes.jsonl")
    samples = io.read_jsonl(run / "02_t1_sample" / "samples.jsonl")
    assert len(votes) == len(samples) > 0
    assert io.read_json(run / "20_evaluate" / "comparison.json")


def test_spar_tree_search_stage_through_vllm_serve(spar_vllm, vllm_server, tmp_path):
    """04_t1_search with the refiner behind `vllm serve` (OpenAI client, vllm dialect), upstream from the
    vLLM smoke run: the refiner's judgments and refinements are HTTP requests to the server."""
    recipe = tmp_path / "search_via_serve.yaml"
    recipe.write_text(
        f"base: {ROOT / 'params' / 'spar' / 'smoke_vllm.yaml'}\nexperiment: spar_smoke_vllm\nstages:\n"
        f"  04_t1_search:\n    judge_style: generate\n"
        f"    generation: {{backend: openai, openai_dialect: vllm, base_url: '{vllm_server['base_url']}', "
        f"model: served, max_concurrency: 4}}\n")
    before = len(re.findall(r"POST /v1/chat/completions", vllm_server["log"].read_text()))
    res = run_recipe(recipe, stages="04", outputs=str(spar_vllm["out"]), progress=False, echo=lambda *_: None)
    assert res["04_t1_search"] == "ran"
    requests = len(re.findall(r"POST /v1/chat/completions", vllm_server["log"].read_text())) - before
    stage_dir = spar_vllm["out"] / "store" / "spar" / "04_t1_search" / load_recipe(recipe).stage_keys["04_t1_search"]
    assert io.read_json(stage_dir / "manifest.json")["params"]["generation"]["backend"] == "openai"
    gens = _generation(stage_dir)
    assert gens and all(g["backend"] == "openai" for g in gens)
    generated = sum(g["generated"] for g in gens)
    assert generated > 0 and requests == generated  # one request per completion, all through the server
    roots = io.read_jsonl(spar_vllm["run"] / "03_t1_judge" / "roots.jsonl")
    assert len(io.read_jsonl(stage_dir / "trees.jsonl")) == len(roots)
