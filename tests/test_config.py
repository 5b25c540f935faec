"""Recipes load into frozen dataclasses; bad params fail fast naming file and key path."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from dataclasses import dataclass

import pytest

from autoif_lib.params import ParamsError, build, param
from autoif_lib.recipes import load_recipe
from autoif_lib.models.spec import ModelSpec
from autoif_lib.autoif.pipeline import STAGES


def test_shipped_recipes_load(root):
    for name in ("quickstart", "smoke"):
        r = load_recipe(root / "params" / "autoif" / f"{name}.yaml")
        assert r.experiment == name
        assert set(r.stages) == set(STAGES)
        assert r.run_id.startswith(name + "-")
        # Frozen: a stage's params cannot be changed after loading.
        p = r.stages["00_environment"]
        with pytest.raises(dataclasses.FrozenInstanceError):
            p.seed = 3


def test_same_params_same_run_id_and_changes_give_new_one(root, write_yaml):
    a = load_recipe(root / "params" / "autoif" / "smoke.yaml")
    b = load_recipe(root / "params" / "autoif" / "smoke.yaml")
    assert a.run_id == b.run_id
    c = load_recipe(write_yaml("base: $ROOT/params/autoif/smoke.yaml\nstages:\n  00_environment: {n_prompts: 3}\n"))
    assert c.run_id != a.run_id and c.experiment == "smoke"
    assert c.stages["00_environment"].n_prompts == 3
    assert c.stages["00_environment"].max_new_tokens == a.stages["00_environment"].max_new_tokens


@pytest.mark.parametrize("body, keypath", [
    ("experiment: x\nstages:\n  00_environment: {n_promts: 3}\n", "stages.00_environment.n_promts: unknown key (did you mean 'n_prompts'?)"),
    ("experiment: x\nstages:\n  00_environment: {n_prompts: three}\n", "stages.00_environment.n_prompts: expected int, got str"),
    ("experiment: x\nstages:\n  00_environment: {n_prompts: 0}\n", "stages.00_environment.n_prompts: must be >= 1"),
    ("experiment: x\nstages:\n  00_environment: {temperature: true}\n", "stages.00_environment.temperature: expected float, got bool"),
    ("experiment: x\ncommon:\n  supervisor: {backend: transformers, modle: m}\n", "common.supervisor.modle: unknown key (did you mean 'model'?)"),
    ("experiment: x\ncommon:\n  supervisor: {backend: tensorflow}\n", "common.supervisor.backend: must be one of"),
    ("experiment: x\ncommon:\n  supervisr: {}\n", "common.supervisr: no stage declares this key (did you mean 'supervisor'?)"),
    ("experiment: x\nstages:\n  00_enviroment: {}\n", "stages.00_enviroment: unknown stage (did you mean '00_environment'?)"),
    ("experimnt: x\n", "experimnt: unknown top-level key (did you mean 'experiment'?)"),
    ("experiment: x\nseed: 1.5\n", "seed: expected int"),
    ("experiment: x\nstages:\n  00_environment: {run_dir: /tmp}\n", "stages.00_environment.run_dir: set by the runner"),
    ("experiment: [1]\n", "experiment: required"),
    ("experiment: x\nstages: [1, 2]\n", "stages: expected a mapping"),
    ("experiment: x\n  bad: : yaml\n", "not valid YAML"),
])
def test_bad_recipe_names_file_and_key(write_yaml, body, keypath):
    p = write_yaml(body)
    with pytest.raises(ParamsError) as e:
        load_recipe(p)
    msg = str(e.value)
    assert msg.startswith(str(p)), msg
    assert keypath in msg, msg


def test_missing_recipe_file(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_path_fields_must_exist(tmp_path):
    @dataclass(frozen=True)
    class P:
        seeds_file: str = param("", "a file", path=True)
        mode: str = param("a", "choice", choices=("a", "b"))
        frac: float = param(0.5, "fraction", min=0.0, max=1.0)

    (tmp_path / "ok.txt").write_text("x")
    assert build(P, {"seeds_file": "ok.txt"}, "s", tmp_path).seeds_file == "ok.txt"
    assert build(P, {}, "s", tmp_path).seeds_file == ""  # empty = not used
    with pytest.raises(ParamsError, match=r"s\.seeds_file: file not found: 'missing\.txt'"):
        build(P, {"seeds_file": "missing.txt"}, "s", tmp_path)
    with pytest.raises(ParamsError, match=r"s\.mode: must be one of \['a', 'b'\], got 'c'"):
        build(P, {"mode": "c"}, "s", tmp_path)
    with pytest.raises(ParamsError, match=r"s\.frac: must be <= 1.0"):
        build(P, {"frac": 1.5}, "s", tmp_path)
    assert build(P, {"frac": 1}, "s", tmp_path).frac == 1.0  # ints are fine for floats


def test_nested_spec_is_typed():
    spec = build(ModelSpec, {"backend": "openai", "model": "m", "max_concurrency": 4})
    assert isinstance(spec, ModelSpec) and spec.max_concurrency == 4
    with pytest.raises(ParamsError, match="max_concurrency: must be >= 1"):
        build(ModelSpec, {"max_concurrency": 0})


def test_cli_check_reports_key_quickly(write_yaml):
    """The CLI path a user hits: one message, exit code 2, no heavy imports."""
    p = write_yaml("experiment: x\nstages:\n  00_environment: {n_promts: 3}\n")
    r = subprocess.run([sys.executable, "-m", "autoif_lib.cli", "check", str(p)], capture_output=True, text=True)
    assert r.returncode == 2
    assert "n_promts: unknown key" in r.stderr and str(p) in r.stderr
    # Validation must not import torch (that alone takes seconds).
    r = subprocess.run([sys.executable, "-c", "import sys, autoif_lib.cli, autoif_lib.runner, autoif_lib.runs; "
                        "print('torch' in sys.modules)"], capture_output=True, text=True)
    assert r.stdout.strip() == "False", r.stderr


def test_parameters_cells_carry_the_quickstart_values(root):
    """A notebook opened by hand (no injection) runs on its parameters cell; those values must be the
    quickstart recipe's, so it writes into the quickstart run, while the stage defaults follow the paper."""
    import nbformat

    r = load_recipe(root / "params" / "autoif" / "quickstart.yaml")
    for name, cls in STAGES.items():
        nb = nbformat.read(str(root / "notebooks" / "autoif" / f"{name}.ipynb"), as_version=4)
        ns: dict = {}
        exec(nb.cells[1].source, ns)
        values = build(cls, {f.name: ns[f.name] for f in dataclasses.fields(cls)}, name, root)
        quick = r.stages[name]
        diff = [f.name for f in dataclasses.fields(cls) if getattr(values, f.name) != getattr(quick, f.name)
                and f.name not in ("params_file", "run_dir")]
        assert not diff, f"{name}: the parameters cell differs from quickstart.yaml in {diff}"


def test_stage_defaults_follow_the_paper_and_small_model_aids_stay_in_the_quickstart(root):
    paper = load_recipe(root / "params" / "autoif" / "paper_qwen2_7b_strong_to_weak.yaml")
    for name in ("01_augment", "02_verifiers", "04_backtranslate", "05_responses"):
        assert STAGES[name]().repetition_penalty == 1.0 and paper.stages[name].repetition_penalty == 1.0
    assert paper.stages["11_evaluate"].heldout_max_new_tokens >= 1024
    assert paper.stages["10_online_dpo"].init_from == "sft" and STAGES["10_online_dpo"]().init_from == "sft"
    quick = load_recipe(root / "params" / "autoif" / "quickstart.yaml")
    assert quick.stages["05_responses"].repetition_penalty == 1.15  # the aid is explicit in quickstart.yaml
