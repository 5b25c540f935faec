"""The method protocol: the core finds methods by their declarations and names none of them.

The throwaway method ``toy`` lives in a temporary folder as an installed distribution would (a package plus a
``.dist-info`` with an ``autoif_lib.methods`` entry point); the workbench's own CLI then runs it, shows its run,
sweeps it into a results table and figures, and checks its training data for contamination, in subprocesses
whose only link to it is ``PYTHONPATH``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autoif_lib import contamination, methods
from autoif_lib.params import ParamsError
from autoif_lib.pipeline import get_pipeline

CLI = [sys.executable, "-m", "autoif_lib.cli"]
CORE = Path(methods.__file__).parent


def test_the_shipped_methods_are_found_by_their_declarations():
    found = methods.discover(refresh=True)
    assert {"autoif", "spar"} <= set(found)
    assert methods.default_name() == "autoif"  # recipes that name no pipeline (the AutoIF ones, historically)
    assert get_pipeline("spar").name == "spar" and methods.color("spar") == found["spar"].color
    with pytest.raises(ParamsError, match=r"unknown pipeline 'sparr' \(did you mean 'spar'\?\)"):
        methods.get("sparr")


def test_a_run_folder_that_records_no_method_is_told_by_its_marker_stage(tmp_path):
    (tmp_path / "a" / "00_prompts").mkdir(parents=True)
    (tmp_path / "b" / "07_export").mkdir(parents=True)
    assert methods.of_run(tmp_path / "a") == "spar"
    assert methods.of_run(tmp_path / "b") == "autoif"  # no marker: the default
    assert methods.of_run(tmp_path / "b", recorded="spar") == "spar"


# The workbench's own name is also AutoIF's: its command (``autoif``) and its cache folder are not the method.
PRODUCT_NAME_USES = {("cli.py", 'prog = "autoif"'), ("embedded.py", '"autoif"')}


def test_the_core_names_no_method():
    """Method code lives in method packages; the core modules may mention a method in prose only."""
    shipped = [m.name for m in methods.discover().values()]
    pkg_dirs = {p.parent for p in CORE.glob("*/method.py")}
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        if any(d in path.parents for d in pkg_dirs):
            continue
        code = _code_only(path.read_text())
        for name in shipped:
            pattern = rf"(?:\w+ = )?[\"']{name}[\"']|autoif_lib ?\. ?{name}\b|from \. {name}\b|from \.\. {name}\b"
            for m in re.finditer(pattern, code):
                if (path.name, m.group(0)) not in PRODUCT_NAME_USES:
                    offenders.append(f"{path.relative_to(CORE.parent)}: {m.group(0)}")
    assert not offenders, "the core names a method:\n" + "\n".join(offenders)


def _code_only(src: str) -> str:
    """Source without comments and docstrings (string literals that are whole statements)."""
    import ast
    import io
    import tokenize

    doc_lines: set[int] = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant) \
                and isinstance(node.value.value, str):
            doc_lines.update(range(node.lineno, node.end_lineno + 1))
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT or tok.start[0] in doc_lines:
            continue
        out.append(tok.string)
    return " ".join(out)


# -- a throwaway method, installed in a temporary folder -------------------------------------------------

PIPELINE_PY = '''
from dataclasses import dataclass
from pathlib import Path

from autoif_lib.params import param
from autoif_lib.pipeline import Pipeline, Stage, StageParams, register

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class MakeParams(StageParams):
    n: int = param(3, "how many training prompts", min=1)


@dataclass(frozen=True)
class EvaluateParams(StageParams):
    bonus: float = param(0.0, "added to the score")


PIPELINE = register(Pipeline(
    name="toy",
    stages=(Stage("00_make", MakeParams, products=("train.jsonl",)),
            Stage("01_evaluate", EvaluateParams, upstream=("00_make",))),
    notebooks=str(HERE / "notebooks"),
    default_recipe=str(HERE / "recipe.yaml"),
))
'''

RESULTS_PY = '''
from autoif_lib import io
from autoif_lib.results import metric_row, stage_dir

METRICS = ("score",)


def collect(run_dir):
    m = io.read_json(stage_dir(run_dir, "01_evaluate") / "metrics.json")
    return [metric_row("base", "score", m["score"], 0.5, m["n"])]
'''

METHOD_PY = '''
from autoif_lib.methods import Method

METHOD = Method(name="toy", display="Toy", color="tab:purple", pipeline="toy_method.pipeline",
                results="toy_method.results", training_files=(("00_make", "train.jsonl"),),
                training_kinds=(("toy_count", "toy_method.training:train_count"),))
'''

TRAINING_PY = '''
from autoif_lib import io


def train_count(job):
    """A training kind of its own: counts the records, reads its setting from the job's options."""
    n = len(io.read_jsonl(job.train_file))
    return {"final_model": job.model, "steps": n * job.options["epochs"], "log_history": [{"step": 1, "loss": 0.0}]}
'''

CELLS = {
    "00_make": 'from autoif_lib import runs\nctx = runs.open_stage("toy/00_make", globals())\n'
               'ctx.write_jsonl("train.jsonl", [{"prompt": f"Write {i + 1} words about rivers."} for i in range(ctx.p.n)])\n'
               'ctx.finish({"n": ctx.p.n})',
    "01_evaluate": 'from autoif_lib import runs\nctx = runs.open_stage("toy/01_evaluate", globals())\n'
                   'rows = ctx.read_jsonl("00_make", "train.jsonl")\n'
                   'ctx.finish({"score": len(rows) + ctx.p.bonus, "n": len(rows)})',
}


def _env(site: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    site, pkg = root / "site", root / "site" / "toy_method"
    (pkg / "notebooks").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""A throwaway method for the protocol test."""\n')
    (pkg / "pipeline.py").write_text(PIPELINE_PY)
    (pkg / "results.py").write_text(RESULTS_PY)
    (pkg / "method.py").write_text(METHOD_PY)
    (pkg / "training.py").write_text(TRAINING_PY)
    (pkg / "recipe.yaml").write_text(f"pipeline: toy\nexperiment: toy_quick\noutputs: {root / 'outputs'}\n")
    dist = site / "toy_method-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-method\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[autoif_lib.methods]\ntoy = toy_method.method\n")
    # its notebooks, built by the core's own notebook tool in a process that sees the package
    script = textwrap.dedent(f"""
        import json, nbformat
        from autoif_lib.nbtools import new_notebook
        cells = json.loads({json.dumps(json.dumps(CELLS))})
        for stage, code in cells.items():
            nb = new_notebook(stage, stage, "a toy stage", [("code", code)], pipeline="toy")
            nbformat.write(nb, {str(pkg / 'notebooks')!r} + f"/{{stage}}.ipynb")
    """)
    subprocess.run([sys.executable, "-c", script], env=_env(site), check=True)
    recipe = root / "toy.yaml"
    recipe.write_text(f"pipeline: toy\nexperiment: toy_run\noutputs: {root / 'outputs'}\nstages:\n  00_make: {{n: 4}}\n")
    (root / "sweep.yaml").write_text(textwrap.dedent(f"""\
        sweep: toy_sweep
        recipe: toy.yaml
        outputs: {root / 'outputs'}
        seeds: [0]
        metrics: [score]
        baseline: plain
        variants:
          plain: {{}}
          bonus: {{stages.01_evaluate.bonus: 2.0}}
    """))
    return {"root": root, "site": site, "env": _env(site), "recipe": recipe}


def _cli(toy, *args, check=True):
    p = subprocess.run(CLI + list(args), env=toy["env"], capture_output=True, text=True, cwd=toy["root"])
    if check and p.returncode:
        raise AssertionError(f"autoif {' '.join(args)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def test_the_core_checks_runs_and_shows_a_method_it_has_never_heard_of(toy):
    assert "toy" not in methods.discover(refresh=True)  # this process does not see it: only the subprocesses do
    _cli(toy, "check", str(toy["recipe"]))
    _cli(toy, "run", str(toy["recipe"]), "--no-progress")
    runs = sorted((toy["root"] / "outputs" / "toy_run").iterdir())
    run = [r for r in runs if r.is_dir()][-1]
    assert json.loads((run / "01_evaluate" / "metrics.json").read_text())["score"] == 4.0
    status = _cli(toy, "status", "--outputs", str(toy["root"] / "outputs")).stdout
    assert f"{run.parent.name}/{run.name}  (toy: {toy['recipe']})" in status
    assert re.search(r"00_make +complete", status) and re.search(r"01_evaluate +complete", status)
    # its training files, as it declares them, for the contamination check
    code = ("from autoif_lib import contamination; import json, sys; "
            f"print(json.dumps(contamination.training_prompts({str(run)!r})['prompts']))")
    prompts = json.loads(subprocess.run([sys.executable, "-c", code], env=toy["env"], capture_output=True, text=True,
                                        check=True).stdout)
    assert prompts == [f"Write {i} words about rivers." for i in range(1, 5)]
    # its notebooks are in sync with its stage schema, as the core checks the shipped ones
    assert _cli(toy, "sync-notebooks", "--check").returncode == 0
    with pytest.raises(ParamsError, match="unknown pipeline 'toy'"):  # and without the package, a clear error
        contamination.training_prompts(run)


def test_the_core_sweeps_a_new_method_into_the_results_table_and_its_figures(toy):
    _cli(toy, "sweep", str(toy["root"] / "sweep.yaml"), "--no-progress")
    out = toy["root"] / "outputs" / "sweeps" / "toy_sweep"
    import pandas as pd

    df = pd.read_csv(out / "results.csv")
    assert set(df["pipeline"]) == {"toy"}
    assert dict(zip(df["variant"], df["value"])) == {"plain": 4.0, "bonus": 6.0}
    assert (out / "figures" / "ablation_score.png").is_file()
    # the figure colours come from the declaration
    code = "from autoif_lib import methods; print(methods.color('toy'), methods.display('toy'))"
    shown = subprocess.run([sys.executable, "-c", code], env=toy["env"], capture_output=True, text=True, check=True)
    assert shown.stdout.split() == ["tab:purple", "Toy"]


def test_a_method_registers_a_training_kind_with_the_engine(toy, tmp_path):
    from autoif_lib import train

    with pytest.raises(ValueError, match=r"unknown training kind 'toy_count'.*known: sft, dpo, online_dpo"):
        train.kind_function("toy_count")  # this process does not see the toy method
    data = tmp_path / "d.jsonl"
    data.write_text('{"x": 1}\n{"x": 2}\n{"x": 3}\n')
    code = textwrap.dedent(f"""
        import json
        from autoif_lib import train
        job = train.TrainJob(kind="toy_count", model="m0", train_file={str(data)!r}, output_dir={str(tmp_path / 'out')!r},
                             options={{"epochs": 2}})
        res = train.run_job(job)
        print(json.dumps({{"kinds": train.kinds(), "steps": res["steps"]}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], env=toy["env"], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["kinds"]["toy_count"] == "toy_method.training:train_count" and got["steps"] == 6
    # the engine wrote the kind's result and log beside the model, as for its own kinds
    assert json.loads((tmp_path / "out" / "train_result.json").read_text())["steps"] == 6
    assert (tmp_path / "out" / "train_log.jsonl").read_text().strip() == '{"step": 1, "loss": 0.0}'
