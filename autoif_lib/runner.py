"""Execute the numbered notebooks headless with papermill, in order, resumably.

    autoif run params/quickstart.yaml --stages 00-04 [--force]
    autoif status

Each stage runs in the named kernel ``autoif-workbench`` with the notebooks
folder as working directory; its values come from the recipe and land in an
``injected-parameters`` cell. The executed copy is saved as
``<run>/<stage>/notebook.ipynb`` (papermill saves after every cell, so a crash
leaves the evidence). A complete stage is skipped unless ``--force``; once a
stage runs, every later selected stage runs too, since its inputs changed.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import time
from pathlib import Path

from . import io
from .config import ParamsError, Recipe, load_recipe, repo_root
from .runs import FAILED, MANIFEST, stage_state

KERNEL_NAME = "autoif-workbench"
KERNEL_DISPLAY = "AutoIF workbench"


class StageFailed(RuntimeError):
    pass


def notebooks_dir(root: Path | None = None) -> Path:
    return (root or repo_root()) / "notebooks"


def discover_notebooks(root: Path | None = None) -> dict[str, Path]:
    """Stage name → notebook path, for ``notebooks/NN_name.ipynb``."""
    out = {}
    for p in sorted(notebooks_dir(root).glob("[0-9][0-9]_*.ipynb")):
        out[p.stem] = p
    return out


def select_stages(spec: str | None, available: list[str]) -> list[str]:
    """``None`` → all; ``"00-04"``, ``"3"``, ``"01,03-05"`` by number prefix."""
    if not spec:
        return list(available)
    nums = {s: int(s[:2]) for s in available}
    wanted: set[int] = set()
    missing: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d{1,2})(?:-(\d{1,2}))?", part)
        if not m:
            raise ParamsError(f"--stages: cannot parse {part!r}; use e.g. 00-04 or 1,3-5")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if hi < lo:
            raise ParamsError(f"--stages: empty range {part!r}")
        hit = set(range(lo, hi + 1)) & set(nums.values())
        if not hit:  # a range may span gaps, but must select something
            missing.append(part)
        wanted.update(hit)
    if missing:
        raise ParamsError(f"--stages: no notebook for {', '.join(missing)}; have {', '.join(available)}")
    chosen = [s for s in available if nums[s] in wanted]
    return chosen


def ensure_kernel() -> str:
    """Register the named kernel for this interpreter if it is missing or points elsewhere."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    ksm = KernelSpecManager()
    try:
        spec = ksm.get_kernel_spec(KERNEL_NAME)
        if spec.argv and Path(spec.argv[0]).resolve() == Path(sys.executable).resolve():
            return KERNEL_NAME
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name=KERNEL_DISPLAY, prefix=sys.prefix)
    return KERNEL_NAME


def _strip_ansi(s: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", s)


def describe_failure(nb_path: Path, err: Exception) -> str:
    """The failing cell's source and the error, from the executed notebook."""
    lines = []
    cell_index = getattr(err, "cell_index", None)
    try:
        import nbformat

        nb = nbformat.read(str(nb_path), as_version=4)
        failing = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
                   and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
        i = failing[0] if failing else cell_index
        if i is not None and 0 <= i < len(nb.cells):
            lines.append(f"--- failing cell [{i}] ---")
            lines.append(nb.cells[i].source)
    except Exception:
        pass
    ename = getattr(err, "ename", type(err).__name__)
    evalue = getattr(err, "evalue", str(err))
    tb = getattr(err, "traceback", None)
    lines.append(f"--- error: {ename}: {evalue}")
    if tb:
        tail = _strip_ansi("\n".join(tb)).strip().splitlines()[-12:]
        lines.extend(tail)
    return "\n".join(lines)


def run_recipe(params_path: str | Path, stages: str | None = None, force: bool = False,
               outputs: str | None = None, progress: bool = True, echo=print) -> dict:
    """Run the selected stages of a recipe; return {stage: state} ('ran', 'skipped')."""
    t_start = time.time()
    root = repo_root()
    overrides = {"outputs": outputs} if outputs else None
    recipe: Recipe = load_recipe(params_path, overrides=overrides, root=root)  # fails fast
    nbs = discover_notebooks(root)
    chosen = select_stages(stages, list(nbs))
    for s in chosen:
        if s not in recipe.stages:
            raise ParamsError(f"notebook {nbs[s].name} has no params schema in autoif_lib.stages")
    run_dir = recipe.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    io.write_json(run_dir / "recipe.json", {"params_file": str(params_path), "run_id": recipe.run_id,
                                            "params_hash": recipe.params_hash, "resolved": recipe.raw})
    echo(f"run {recipe.run_id}  ->  {run_dir}")
    results: dict[str, str] = {}
    upstream_ran = False
    kernel = None
    for i, stage in enumerate(chosen, 1):
        params = recipe.stages[stage]
        state = stage_state(run_dir, stage, params)
        tag = f"[{i}/{len(chosen)}] {stage}"
        if state == "complete" and not force and not upstream_ran:
            echo(f"{tag}: complete, skipped")
            results[stage] = "skipped"
            continue
        kernel = kernel or ensure_kernel()
        stage_dir = run_dir / stage
        stage_dir.mkdir(parents=True, exist_ok=True)
        if (stage_dir / MANIFEST).exists():
            (stage_dir / MANIFEST).unlink()  # the stage is being redone: not complete until it says so
        out_nb = stage_dir / "notebook.ipynb"
        injected = recipe.stage_params(stage)
        injected.update(params_file=str(Path(params_path)), run_dir=str(run_dir))
        echo(f"{tag}: running ({state})")
        t0 = time.time()
        try:
            _execute(nbs[stage], out_nb, injected, kernel, progress)
        except Exception as e:  # papermill raises PapermillExecutionError; kernels can die too
            msg = describe_failure(out_nb, e)
            io.write_json(stage_dir / FAILED, {"error": msg, "seconds": round(time.time() - t0, 2),
                                               "notebook": str(out_nb)})
            echo(f"{tag}: FAILED after {time.time() - t0:.1f} s  (executed notebook: {out_nb})\n{msg}")
            raise StageFailed(f"stage {stage} failed; see {out_nb}") from None
        secs = time.time() - t0
        man_path = stage_dir / MANIFEST
        if not man_path.exists():
            raise StageFailed(f"stage {stage} ran but never called ctx.finish(); see {out_nb}")
        man = io.read_json(man_path)
        man.update(notebook="notebook.ipynb", runner_seconds=round(secs, 2))
        io.write_json(man_path, man)
        echo(f"{tag}: done in {secs:.1f} s")
        results[stage] = "ran"
        upstream_ran = True
    echo(f"all {len(chosen)} stage(s) ok in {time.time() - t_start:.1f} s  ({run_dir})")
    return results


def _execute(src: Path, dst: Path, parameters: dict, kernel: str, progress: bool) -> None:
    import warnings

    import papermill as pm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm.execute_notebook(str(src), str(dst), parameters=parameters, kernel_name=kernel,
                            cwd=str(src.parent), progress_bar=progress, log_output=False,
                            request_save_on_cell_execute=True)


def list_runs(outputs: Path | None = None) -> list[dict]:
    """Every run under the outputs root with each stage's state and time."""
    outputs = outputs or repo_root() / "outputs"
    rows = []
    for recipe_json in sorted(outputs.glob("*/*/recipe.json")):
        run_dir = recipe_json.parent
        info = io.read_json(recipe_json)
        stages = {}
        for d in sorted(p for p in run_dir.iterdir() if p.is_dir() and re.match(r"\d\d_", p.name)):
            st = stage_state(d.parent, d.name, None)
            secs = None
            if (d / MANIFEST).exists():
                try:
                    secs = io.read_json(d / MANIFEST).get("runner_seconds") or io.read_json(d / MANIFEST).get("seconds")
                except ValueError:
                    pass
            stages[d.name] = {"state": st, "seconds": secs}
        rows.append({"run": f"{run_dir.parent.name}/{run_dir.name}", "params_file": info.get("params_file"),
                     "stages": stages, "path": str(run_dir)})
    return rows
