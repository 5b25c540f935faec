"""Execute a recipe's pipeline headless with papermill, in order, resumably.

    autoif run params/autoif/quickstart.yaml --stages 00-04 [--force]
    autoif status

Each stage runs in the named kernel ``autoif-workbench`` with its notebook's
folder as working directory; its values come from the recipe and land in an
``injected-parameters`` cell. The executed copy is saved in the stage's output
folder (papermill saves after every cell, so a crash leaves the evidence). A
stage whose output folder is complete and not stale is skipped unless ``--force``.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import sys
import time
from pathlib import Path

from . import io
from .params import ParamsError
from .recipes import Recipe, load_recipe, repo_root
from .runs import FAILED, MANIFEST, PLAN, link_stage, stage_state

KERNEL_NAME = "autoif-workbench"
KERNEL_DISPLAY = "AutoIF workbench"


class StageFailed(RuntimeError):
    pass


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
               outputs: str | None = None, progress: bool = True, echo=print,
               overrides: dict | None = None) -> dict:
    """Run the selected stages of a recipe; return {stage: 'ran' | 'skipped' | 'off'}.

    A stage runs when its output folder (addressed by its params and upstream keys) is not
    complete: never built, failed, or stale because an upstream output changed since. So a
    changed value re-runs that stage and its downstream, and nothing else.
    """
    t_start = time.time()
    root = repo_root()
    over = dict(overrides or {})
    if outputs:
        over["outputs"] = outputs
    recipe: Recipe = load_recipe(params_path, overrides=over or None, root=root)  # fails fast
    pipe = recipe.pipeline
    chosen = select_stages(stages, pipe.order)
    for s in chosen:
        nb = pipe.notebook(s, root)
        if not nb.exists():
            raise ParamsError(f"stage {s}: notebook not found: {nb}")
    run_dir = recipe.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    plan = recipe.plan()
    io.write_json(run_dir / PLAN, plan)
    echo(f"run {recipe.run_id}  ->  {run_dir}")
    for note in recipe.notes:  # models not on this machine: checked when they load
        echo(f"note: {note}")
    results: dict[str, str] = {}
    kernel = None
    for i, stage in enumerate(chosen, 1):
        tag = f"[{i}/{len(chosen)}] {stage}"
        if not pipe.stage(stage).is_enabled(recipe.stages[stage]):
            echo(f"{tag}: off in this recipe ({pipe.stage(stage).enabled_if} is false), skipped")
            results[stage] = "off"
            continue
        stage_dir = recipe.stage_dir(stage)
        link_stage(run_dir, stage, stage_dir)
        with stage_lock(stage_dir, lambda: echo(f"{tag}: another run is building {stage_dir}; waiting for it")):
            state = stage_state(stage_dir)  # read under the lock: the other run may just have finished it
            if state == "complete" and not force:
                echo(f"{tag}: complete, skipped ({stage_dir.name})")
                results[stage] = "skipped"
                continue
            kernel = _run_stage(recipe, stage, stage_dir, state, tag, params_path, run_dir, root, kernel,
                                progress, echo)
        results[stage] = "ran"
    echo(f"all {len(chosen)} stage(s) ok in {time.time() - t_start:.1f} s  ({run_dir})")
    return results


@contextlib.contextmanager
def stage_lock(stage_dir: Path, on_wait=None):
    """An exclusive lock on one stage output, held while it is checked and built, so two runs that need
    the same stage at once (a parallel sweep, Slurm array tasks on a shared filesystem) build it once."""
    lock = stage_dir.parent / f".{stage_dir.name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait()
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run_stage(recipe, stage, stage_dir, state, tag, params_path, run_dir, root, kernel, progress, echo):
    """Execute one stage's notebook into its store folder and check it finished; return the kernel name."""
    pipe = recipe.pipeline
    kernel = kernel or ensure_kernel()
    stage_dir.mkdir(parents=True, exist_ok=True)
    if (stage_dir / MANIFEST).exists():
        (stage_dir / MANIFEST).unlink()  # the stage is being redone: not complete until it says so
    out_nb = stage_dir / "notebook.ipynb"
    injected = recipe.stage_params(stage)
    injected.update(params_file=str(Path(params_path)), run_dir=str(run_dir))
    echo(f"{tag}: running ({state}) -> {stage_dir}")
    t0 = time.time()
    try:
        _execute(pipe.notebook(stage, root), out_nb, injected, kernel, progress)
    except Exception as e:  # papermill raises PapermillExecutionError; kernels can die too
        msg = describe_failure(out_nb, e)
        io.write_json(stage_dir / FAILED, {"error": msg, "seconds": round(time.time() - t0, 2),
                                           "notebook": str(out_nb)})
        echo(f"{tag}: FAILED after {time.time() - t0:.1f} s  (executed notebook: {out_nb})\n{msg}")
        raise StageFailed(f"stage {stage} failed; see {out_nb}") from None
    secs = time.time() - t0
    man_path = stage_dir / MANIFEST
    if not man_path.exists():
        elsewhere = [d for d in stage_dir.parent.iterdir() if d != stage_dir and (d / MANIFEST).exists()
                     and (d / MANIFEST).stat().st_mtime >= t0]
        if elsewhere:  # the kernel computed another key for the same params: the library changed meanwhile
            raise StageFailed(f"stage {stage}: the notebook wrote to {elsewhere[0]}, not the planned {stage_dir}: "
                              "its params hash differently in the kernel (was autoif_lib edited during the run?); "
                              "run again")
        raise StageFailed(f"stage {stage} ran but never called ctx.finish(); see {out_nb}")
    man = io.read_json(man_path)
    man.update(notebook="notebook.ipynb", runner_seconds=round(secs, 2))
    io.write_json(man_path, man)
    echo(f"{tag}: done in {secs:.1f} s")
    return kernel


# The kernel of a headless stage inherits these: its notebook is read after the fact, so our progress bars are
# text (a saved widget shows only its first state, 0%), and the libraries' own bars, which would be saved as
# such frozen widgets, stay out of it: transformers' "Loading weights" (several per stage) through the hub's
# switch, and the datasets .map bars TRL draws while it tokenizes ("Tokenizing train dataset: 0%"). See
# progress.py.
HEADLESS_ENV = {"AUTOIF_TEXT_PROGRESS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}


@contextlib.contextmanager
def _environment(values: dict):
    import os

    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _execute(src: Path, dst: Path, parameters: dict, kernel: str, progress: bool) -> None:
    import warnings

    import papermill as pm

    with warnings.catch_warnings(), _environment(HEADLESS_ENV):
        warnings.simplefilter("ignore")
        pm.execute_notebook(str(src), str(dst), parameters=parameters, kernel_name=kernel,
                            cwd=str(src.parent), progress_bar=progress, log_output=False,
                            request_save_on_cell_execute=True)


def _seconds(stage_dir: Path) -> float | None:
    try:
        man = io.read_json(stage_dir / MANIFEST)
    except (FileNotFoundError, ValueError):
        return None
    return man.get("runner_seconds") or man.get("seconds")


def list_runs(outputs: Path | None = None) -> list[dict]:
    """Every run under the outputs root, each stage in pipeline order with its state, key and time."""
    outputs = outputs or repo_root() / "outputs"
    rows = []
    for plan_path in sorted(outputs.glob(f"*/*/{PLAN}")):
        run_dir = plan_path.parent
        try:
            plan = io.read_json(plan_path)
            stages_plan = plan["stages"]
        except (ValueError, KeyError):
            continue  # a run folder from before stage outputs were keyed: nothing to report
        stages = {}
        for name, st in stages_plan.items():
            d = Path(st["dir"])
            state = stage_state(d) if st.get("enabled", True) else "off"
            stages[name] = {"state": state, "key": st["key"], "seconds": _seconds(d)}
        rows.append({"run": f"{run_dir.parent.name}/{run_dir.name}", "pipeline": plan.get("pipeline"),
                     "params_file": plan.get("params_file"), "stages": stages, "path": str(run_dir)})
    return rows


def unlisted_outputs(outputs: Path | None = None) -> list[dict]:
    """Store folders no run lists (e.g. a notebook run directly with other params)."""
    outputs = outputs or repo_root() / "outputs"
    listed = {st["key"] for r in list_runs(outputs) for st in r["stages"].values()}
    out = []
    for d in sorted(outputs.glob("store/*/*/*")):
        if d.is_dir() and d.name not in listed:
            out.append({"pipeline": d.parent.parent.name, "stage": d.parent.name, "key": d.name,
                        "state": stage_state(d), "path": str(d)})
    return out
