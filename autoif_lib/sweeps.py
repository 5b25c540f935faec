"""Sweeps: ablations as one command. A sweep file names a base recipe, variants (override sets) and/or a
grid, seeds, and the metrics to collect; every variant x seed is a *cell* that resolves to a full recipe.

    # params/ablations/autoif_thresholds_cpu.yaml
    sweep: autoif_thresholds_cpu
    recipe: ../autoif/smoke.yaml        # base recipe, relative to this file
    seeds: [0, 1]
    metrics: [prompt_strict, heldout_pass_rate, 07_export.n_sft]   # empty: everything the evaluation reports
    baseline: paper                     # the variant deltas are taken against (default: the first)
    variants:                           # named override sets, in recipe shape (dotted keys allowed)
      paper: {}
      no_crossval: {stages: {03_cross_validate: {preset: off}}}
      spar: {recipe: ../spar/smoke.yaml}             # a variant may change the base recipe
    grid:                               # a product over dotted keys, applied to every variant
      stages.06_verify_score.pass_threshold: [0.3, 0.5, 0.8]
    slurm: {partition: gpu, gpus: 8, time: "24:00:00"}   # for `autoif sweep --slurm` (slurm_scripts)

Cells run through the same runner as ``autoif run``, so cells share every stage output they have in
common (outputs are addressed by their inputs), and a cell resumes stage by stage. Each finished cell
writes ``<outputs>/sweeps/<sweep>/cells/<cell>.json`` (status, rows, run folder) atomically, and the
results table ``results.csv`` is rebuilt from those files after each cell, in expansion order: a killed
sweep run again skips finished cells and ends with the same table. A failing cell is recorded (its error
and log) and the rest go on.

On Slurm (``--slurm [--submit]``) the stages every cell shares run once in a prefix job, the cells run as
a job array after it (``afterok``) and a small CPU job collects after the array (``afterany``). A cell
that needs more than one node, or more GPUs than its array task or ``--jobs`` slot gets, is refused
before anything is written or started (``check_placement``).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from . import io, methods, results
from .params import ParamsError, did_you_mean
from .recipes import Recipe, _load_yaml, load_recipe, merge, repo_root

_TOP = {"sweep", "description", "recipe", "seeds", "metrics", "baseline", "variants", "grid", "stages",
        "outputs", "slurm"}
_SLURM_KEYS = {"partition", "gpus", "cpus", "mem", "time", "account", "qos", "max_parallel", "setup", "extra",
               "collect_partition", "collect_cpus", "collect_mem", "collect_time"}


@dataclass(frozen=True)
class Cell:
    """One variant at one seed: a full recipe."""

    variant: str
    seed: int
    recipe_path: Path
    overrides: dict              # what the cell adds to its base recipe (seed and experiment included)
    factors: dict                # the grid values of this cell ({} for a plain named variant)

    @property
    def id(self) -> str:
        return f"{self.variant}@s{self.seed}"

    @property
    def file_stem(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.=-]+", "_", self.id)

    def load(self, outputs: str | None = None, root: Path | None = None) -> Recipe:
        over = dict(self.overrides)
        if outputs:
            over["outputs"] = outputs
        return load_recipe(self.recipe_path, overrides=over, root=root)


@dataclass
class Sweep:
    name: str
    path: Path
    description: str
    cells: list[Cell]
    metrics: tuple[str, ...]
    baseline: str
    variants: list[str]
    stages: str | None = None
    outputs: str | None = None
    slurm: dict = field(default_factory=dict)

    def dir(self, outputs: str | os.PathLike | None = None) -> Path:
        out = Path(outputs or self.outputs or (repo_root() / "outputs"))
        if not out.is_absolute():
            out = repo_root() / out
        return out / "sweeps" / self.name

    def cell(self, ident: str) -> Cell:
        for c in self.cells:
            if c.id == ident:
                return c
        raise ParamsError(f"{self.path}: no cell {ident!r}; cells: {', '.join(c.id for c in self.cells)}")


# ---------------------------------------------------------------------------
# loading and expansion
# ---------------------------------------------------------------------------

def _undot(d: Mapping[str, Any], where: str) -> dict:
    """``{"stages.06_x.k": 1}`` -> ``{"stages": {"06_x": {"k": 1}}}``; nested mappings are kept as they are."""
    out: dict = {}
    for k, v in d.items():
        if not isinstance(k, str) or not k:
            raise ParamsError(f"{where}: keys must be non-empty strings, got {k!r}")
        parts = k.split(".")
        node = {parts[-1]: v}
        for p in reversed(parts[:-1]):
            node = {p: node}
        out = merge(out, node)
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True, separators=(",", ":"))
    return str(v)


def _grid_names(keys: Sequence[str]) -> dict[str, str]:
    """Short names for grid keys (their last segment) unless two keys share it."""
    last = [k.split(".")[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def load_sweep(path: str | os.PathLike, root: Path | None = None, validate: bool = True) -> Sweep:
    """Read, expand and (by default) validate a sweep file: every cell's recipe is loaded, so a bad override
    fails here, naming the variant, before anything runs."""
    path = Path(path)
    root = root or repo_root()
    if not path.exists():
        raise ParamsError(f"sweep file not found: {path}")
    data = _load_yaml(path)
    where = str(path)
    unknown = set(data) - _TOP
    if unknown:
        k = sorted(unknown)[0]
        raise ParamsError(f"{where}: {k}: unknown key{did_you_mean(k, sorted(_TOP))}; known: {', '.join(sorted(_TOP))}")
    name = data.get("sweep") or path.stem
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ParamsError(f"{where}: sweep: letters/digits/-/_ only, got {name!r}")
    base = data.get("recipe")
    if not isinstance(base, str):
        raise ParamsError(f"{where}: recipe: required, the base recipe's path (relative to the sweep file)")
    seeds = data.get("seeds", [0])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ParamsError(f"{where}: seeds: a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ParamsError(f"{where}: seeds: repeated seed in {seeds}")
    metrics = data.get("metrics") or []
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise ParamsError(f"{where}: metrics: a list of metric names, got {metrics!r}")
    variants = data.get("variants")
    if variants is None:
        variants = {}
    if not isinstance(variants, dict):
        raise ParamsError(f"{where}: variants: a mapping name -> overrides, got {type(variants).__name__}")
    grid = data.get("grid") or {}
    if not isinstance(grid, dict):
        raise ParamsError(f"{where}: grid: a mapping dotted.key -> list of values, got {type(grid).__name__}")
    for k, vals in grid.items():
        if not isinstance(vals, list) or not vals:
            raise ParamsError(f"{where}: grid.{k}: a non-empty list of values, got {vals!r}")
    if not variants and not grid:
        raise ParamsError(f"{where}: nothing to sweep: give variants, a grid, or both")
    slurm = data.get("slurm") or {}
    if not isinstance(slurm, dict) or set(slurm) - _SLURM_KEYS:
        bad = sorted(set(slurm) - _SLURM_KEYS) if isinstance(slurm, dict) else slurm
        raise ParamsError(f"{where}: slurm: unknown keys {bad}; known: {', '.join(sorted(_SLURM_KEYS))}")

    named: list[tuple[str, Path, dict]] = []
    for vname, over in (variants or {"": {}}).items():
        vname = str(vname)
        if vname and not re.fullmatch(r"[A-Za-z0-9_.=+-]+", vname):
            raise ParamsError(f"{where}: variants.{vname}: names use letters, digits and _ . = + - only")
        over = over or {}
        if not isinstance(over, dict):
            raise ParamsError(f"{where}: variants.{vname}: expected a mapping of overrides, got {type(over).__name__}")
        over = dict(over)
        vpath = (path.parent / over.pop("recipe", base)).resolve()
        if not vpath.exists():
            raise ParamsError(f"{where}: variants.{vname or '(grid)'}: recipe not found: {vpath}")
        for k in ("seed", "experiment", "outputs"):
            if k in over:
                raise ParamsError(f"{where}: variants.{vname}.{k}: set by the sweep, not by a variant")
        named.append((vname, vpath, _undot(over, f"{where}: variants.{vname}")))

    gkeys = list(grid)
    short = _grid_names(gkeys)
    combos = list(itertools.product(*(grid[k] for k in gkeys))) if gkeys else [()]
    cells: list[Cell] = []
    vnames: list[str] = []
    for vname, vpath, over in named:
        for combo in combos:
            factors = dict(zip(gkeys, combo))
            gname = ",".join(f"{short[k]}={_fmt(v)}" for k, v in factors.items())
            full = "/".join(x for x in (vname, gname) if x) or "base"
            cover = merge(over, _undot(factors, f"{where}: grid")) if factors else over
            vnames.append(full)
            for s in seeds:
                cells.append(Cell(full, s, vpath, merge(cover, {"seed": s, "experiment": name}), factors))
    if len(set(vnames)) != len(vnames):
        raise ParamsError(f"{where}: two variants expand to the same name; rename one")
    baseline = data.get("baseline", vnames[0])
    if baseline not in vnames:
        raise ParamsError(f"{where}: baseline: {baseline!r} is not a variant; variants: {', '.join(vnames)}")
    stages = data.get("stages")
    if stages is not None and not isinstance(stages, str):
        raise ParamsError(f"{where}: stages: a stage selection string like '00-11', got {stages!r}")
    sw = Sweep(name=name, path=path, description=str(data.get("description", "")), cells=cells,
               metrics=tuple(metrics), baseline=baseline, variants=vnames, stages=stages,
               outputs=data.get("outputs"), slurm=slurm)
    if validate:
        validate_sweep(sw, root)
    return sw


def validate_sweep(sw: Sweep, root: Path | None = None) -> dict[str, Recipe]:
    """Load every cell's recipe and check the metric names; the first error names the cell."""
    recipes = {}
    for c in sw.cells:
        try:
            recipes[c.id] = c.load(root=root)
        except ParamsError as e:
            raise ParamsError(f"{sw.path}: variant {c.variant!r} (seed {c.seed}): {e}") from None
    pipes = sorted({r.pipeline_name for r in recipes.values()})
    known = sorted({m for p in pipes for m in results.known_metrics(p)})
    stage_names = {s for r in recipes.values() for s in r.pipeline.order}
    for m in sw.metrics:
        if "." in m:
            if m.split(".", 1)[0] not in stage_names:
                raise ParamsError(f"{sw.path}: metrics: {m!r}: no stage {m.split('.', 1)[0]!r} in "
                                  f"{' or '.join(pipes)}")
        # in a mixed sweep a metric only one method reports (judge accuracy) is fine; lm-eval's are named by task
        elif m not in known and not m.startswith(("general_", "delta_general_")):
            raise ParamsError(f"{sw.path}: metrics: {m!r}: no pipeline of this sweep reports it"
                              f"{did_you_mean(m, known)}; known: {', '.join(known)}")
    return recipes


# ---------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------

DONE, FAILED = "done", "failed"


def cell_file(sweep_dir: Path, cell: Cell) -> Path:
    return sweep_dir / "cells" / f"{cell.file_stem}.json"


def cell_record(sweep_dir: Path, cell: Cell) -> dict | None:
    try:
        return io.read_json(cell_file(sweep_dir, cell))
    except (FileNotFoundError, ValueError):
        return None


def cell_done(sweep_dir: Path, cell: Cell, recipe: Recipe) -> bool:
    """Finished for these params: its record says done for the run this recipe resolves to now."""
    rec = cell_record(sweep_dir, cell)
    return bool(rec and rec.get("status") == DONE and rec.get("run_id") == recipe.run_id)


def run_cell(sw: Sweep, cell: Cell, outputs: str | None = None, echo: Callable = print,
             progress: bool = False, run: Callable | None = None) -> dict:
    """Run one cell through the runner, collect its rows, write its record. Never raises for a failing
    stage: the record says failed, with the error."""
    from .runner import run_recipe

    run = run or run_recipe
    outputs = outputs or sw.outputs  # the sweep file's outputs root unless the command line names one
    sweep_dir = sw.dir(outputs)
    recipe = cell.load(outputs)
    log_path = sweep_dir / "logs" / f"{cell.file_stem}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    rec: dict[str, Any] = {"cell": cell.id, "variant": cell.variant, "seed": cell.seed, "run_id": recipe.run_id,
                           "run_dir": str(recipe.run_dir), "pipeline": recipe.pipeline_name,
                           "recipe": str(cell.recipe_path), "overrides": cell.overrides, "factors": cell.factors,
                           "log": str(log_path)}
    with log_path.open("a") as log:
        log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} cell {cell.id} -> {recipe.run_dir}\n")

        def say(msg):
            log.write(str(msg) + "\n")
            log.flush()
            echo(f"  [{cell.id}] {msg}")

        try:
            stages = run(cell.recipe_path, stages=sw.stages, outputs=outputs, progress=progress,
                         echo=say, overrides={k: v for k, v in cell.overrides.items()})
            rows = results.collect_run(recipe.run_dir, sw.metrics)
            if not rows:
                raise RuntimeError("the run finished but reported none of the requested metrics "
                                   f"({', '.join(sw.metrics) or 'all'})")
            rec.update(status=DONE, stages=stages, rows=rows, git_commit=results.git_commit(recipe.run_dir),
                       stage_keys=recipe.stage_keys)
        except KeyboardInterrupt:
            log.write("interrupted\n")
            raise
        except Exception as e:  # a failing cell is reported; the others go on
            import traceback

            log.write(traceback.format_exc())
            rec.update(status=FAILED, error=f"{type(e).__name__}: {e}"[:4000])
    rec.update(seconds=round(time.time() - t0, 2), finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    io.write_json(cell_file(sweep_dir, cell), rec)
    return rec


def recollect(sw: Sweep, outputs: str | None = None, echo: Callable = print) -> int:
    """Re-read every finished cell's rows from its run folder (after a collector fix, or new ``metrics``);
    a run folder that is gone keeps the rows its cell recorded. Returns the number of cells re-read."""
    outputs = outputs or sw.outputs
    sweep_dir = sw.dir(outputs)
    n = 0
    for c in sw.cells:
        rec = cell_record(sweep_dir, c)
        if not rec or rec.get("status") != DONE or not Path(rec.get("run_dir") or "").is_dir():
            continue
        try:
            rec["rows"] = results.collect_run(Path(rec["run_dir"]), sw.metrics)
        except (OSError, KeyError, ValueError) as e:
            echo(f"  [{c.id}] kept its recorded rows: {type(e).__name__}: {e}")
            continue
        io.write_json(cell_file(sweep_dir, c), rec)
        n += 1
    return n


def table_rows(sw: Sweep, outputs: str | None = None) -> list[dict]:
    """Every finished cell's rows in expansion order, with the cell's identity columns."""
    outputs = outputs or sw.outputs
    sweep_dir = sw.dir(outputs)
    out = []
    for c in sw.cells:
        rec = cell_record(sweep_dir, c)
        if not rec or rec.get("status") != DONE:
            continue
        recipe_key = io.stable_hash({"recipe": Path(rec["recipe"]).name, "overrides": rec["overrides"]})[:12]
        for r in rec["rows"]:
            out.append({"sweep": sw.name, "variant": c.variant, "seed": c.seed, "pipeline": rec["pipeline"],
                        **{k: r.get(k) for k in results.METRIC_KEYS}, "factors": c.factors,
                        "run_id": rec["run_id"], "recipe_key": recipe_key,
                        "base_recipe": _rel(Path(rec["recipe"])), "overrides": rec["overrides"],
                        "git_commit": rec.get("git_commit", ""), "stage_keys": rec.get("stage_keys", {}),
                        "finished_at": rec.get("finished_at", "")})
    return out


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(repo_root()))
    except ValueError:
        return str(p)


def write_results(sw: Sweep, outputs: str | None = None) -> Path:
    outputs = outputs or sw.outputs
    sweep_dir = sw.dir(outputs)
    path = results.write_table(table_rows(sw, outputs), sweep_dir / "results.csv")
    io.write_json(sweep_dir / "sweep.json", describe(sw, outputs))
    write_paired(sw, outputs)
    return path


def write_paired(sw: Sweep, outputs: str | None = None) -> Path | None:
    """``paired.csv`` beside the results: every trained checkpoint against its base and against the other
    variants' checkpoints of the same seed, item by item (``method_pairs``). Only for sweeps of several variants."""
    from . import method_pairs

    sweep_dir = sw.dir(outputs or sw.outputs)
    cells = []
    for c in sw.cells:
        rec = cell_record(sweep_dir, c)
        if rec and rec.get("status") == DONE and Path(rec.get("run_dir") or "").is_dir():
            cells.append({"variant": c.variant, "seed": c.seed, "pipeline": rec["pipeline"], "run_dir": rec["run_dir"]})
    if len({c["variant"] for c in cells}) < 2:
        return None
    return method_pairs.write(method_pairs.paired_table(cells), sweep_dir / "paired.csv")


def describe(sw: Sweep, outputs: str | None = None) -> dict:
    outputs = outputs or sw.outputs
    sweep_dir = sw.dir(outputs)
    cells = []
    for c in sw.cells:
        rec = cell_record(sweep_dir, c) or {}
        cells.append({"cell": c.id, "variant": c.variant, "seed": c.seed, "factors": c.factors,
                      "recipe": _rel(c.recipe_path), "overrides": c.overrides, "status": rec.get("status", "pending"),
                      "run_dir": rec.get("run_dir"), "seconds": rec.get("seconds"), "error": rec.get("error")})
    return {"sweep": sw.name, "file": _rel(sw.path), "description": sw.description, "baseline": sw.baseline,
            "variants": sw.variants, "metrics": list(sw.metrics), "cells": cells}


def status(sw: Sweep, outputs: str | None = None) -> list[dict]:
    """Per cell: pending / done / failed / stale (done for other params), without running anything."""
    outputs = outputs or sw.outputs
    sweep_dir = sw.dir(outputs)
    out = []
    for c in sw.cells:
        rec = cell_record(sweep_dir, c)
        r = c.load(outputs)
        if not rec:
            st = "pending"
        elif rec.get("status") == DONE and rec.get("run_id") != r.run_id:
            st = "stale"
        else:
            st = rec.get("status", "pending")
        out.append({"cell": c.id, "state": st, "run_id": r.run_id, "seconds": (rec or {}).get("seconds"),
                    "error": (rec or {}).get("error")})
    return out


def run_sweep(sw: Sweep, outputs: str | None = None, echo: Callable = print, progress: bool = False,
              jobs: int = 1, gpus_per_job: int = 0, retry_failed: bool = True, run: Callable | None = None,
              figures: bool = True) -> dict:
    """Run every cell not yet done (one at a time, or ``jobs`` at once as subprocesses, each with its own GPU
    set); rebuild the results table after each; return {"ran", "skipped", "failed", "seconds", "results"}."""
    outputs = outputs or sw.outputs
    if jobs > 1:  # every cell on this node with its GPU share: refuse what cannot fit before anything starts
        check_placement(sw, gpus_per_job, f"--jobs {jobs} --gpus-per-job {gpus_per_job}")
    sweep_dir = sw.dir(outputs)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    todo, skipped = [], []
    for c in sw.cells:
        rec = cell_record(sweep_dir, c)
        if cell_done(sweep_dir, c, c.load(outputs)):
            skipped.append(c.id)
        elif rec and rec.get("status") == FAILED and not retry_failed:
            skipped.append(c.id)
        else:
            todo.append(c)
    echo(f"sweep {sw.name}: {len(sw.cells)} cells ({len(sw.variants)} variants x "
         f"{len(sw.cells) // max(1, len(sw.variants))} seeds); {len(skipped)} done, {len(todo)} to run  ->  {sweep_dir}")
    ran, failed = [], []
    if jobs <= 1:
        for i, c in enumerate(todo, 1):
            echo(f"[cell {i}/{len(todo)}] {c.id}: running")
            rec = run_cell(sw, c, outputs, echo=echo, progress=progress, run=run)
            (ran if rec["status"] == DONE else failed).append(c.id)
            echo(f"[cell {i}/{len(todo)}] {c.id}: {rec['status']} in {rec['seconds']:.1f} s"
                 + (f"  ({rec['error'][:300]})" if rec["status"] == FAILED else "")
                 + f"   [{len(ran) + len(skipped)} done, {len(failed)} failed, {len(todo) - i} left]")
            write_results(sw, outputs)
    else:
        _run_parallel(sw, todo, outputs, jobs, gpus_per_job, echo, ran, failed)
    path = write_results(sw, outputs)
    fig_paths = []
    if figures and (ran or not (sweep_dir / "figures").exists()):
        fig_paths = draw_figures(sw, path, echo=echo)
    secs = round(time.time() - t0, 1)
    echo(f"sweep {sw.name}: {len(ran)} ran, {len(skipped)} skipped, {len(failed)} failed in {secs} s; "
         f"results: {path}")
    for cid in failed:
        rec = cell_record(sweep_dir, sw.cell(cid)) or {}
        echo(f"  FAILED {cid}: {rec.get('error', '?')[:500]}  (log: {rec.get('log')})")
    return {"ran": ran, "skipped": skipped, "failed": failed, "seconds": secs, "results": str(path),
            "figures": [str(p) for p in fig_paths]}


def _visible_gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip()]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:
        return []


def gpu_sets(n_jobs: int, per_job: int, visible: Sequence[str]) -> list[list[str]]:
    """Disjoint GPU sets, one per concurrent job; an error if the node has too few."""
    if per_job <= 0:
        return [[] for _ in range(n_jobs)]
    need = n_jobs * per_job
    if len(visible) < need:
        raise ParamsError(f"--jobs {n_jobs} x --gpus-per-job {per_job} needs {need} GPUs; {len(visible)} visible")
    return [list(visible[i * per_job:(i + 1) * per_job]) for i in range(n_jobs)]


def _run_parallel(sw, todo, outputs, jobs, gpus_per_job, echo, ran, failed):
    """Several cells at once, each an ``autoif sweep --cell`` subprocess with its own CUDA_VISIBLE_DEVICES.
    Cells that share a stage wait for each other on the stage's lock (runner), so it is built once."""
    sets = gpu_sets(jobs, gpus_per_job, _visible_gpus())
    free = list(range(jobs))
    running: dict[int, tuple[subprocess.Popen, Cell]] = {}
    queue = list(todo)
    sweep_dir = sw.dir(outputs)
    while queue or running:
        while queue and free:
            slot = free.pop(0)
            c = queue.pop(0)
            env = dict(os.environ)
            if gpus_per_job > 0:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(sets[slot])
            cmd = [sys.executable, "-m", "autoif_lib.cli", "sweep", str(sw.path), "--cell", c.id, "--no-figures"]
            if outputs:
                cmd += ["--outputs", str(outputs)]
            echo(f"[slot {slot}{' gpus ' + env['CUDA_VISIBLE_DEVICES'] if gpus_per_job > 0 else ''}] {c.id}: started")
            running[slot] = (subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), c)
        time.sleep(1.0)
        for slot, (proc, c) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[slot]
            free.append(slot)
            rec = cell_record(sweep_dir, c) or {}
            ok = rec.get("status") == DONE
            (ran if ok else failed).append(c.id)
            echo(f"[slot {slot}] {c.id}: {'done' if ok else 'FAILED'} (exit {proc.returncode})"
                 f"   [{len(ran)} ran, {len(failed)} failed, {len(queue) + len(running)} left]")
            write_results(sw, outputs)


# ---------------------------------------------------------------------------
# figures (the analysis notebooks draw the same from the table; these are the sweep's defaults)
# ---------------------------------------------------------------------------

def draw_figures(sw: Sweep, results_path: Path, echo: Callable = print) -> list[Path]:
    """Default figures beside the table: factor curves for a one-key grid, ablation deltas for named
    variants, per-iteration curves for a method that iterates, the method comparison for a mixed sweep, and in vs out of
    distribution gains when the table has IFBench's paired differences."""
    from .reporting import paper
    out_dir = Path(results_path).parent / "figures"
    df = paper.read_results(results_path)
    if df.empty:
        echo("no results yet: no figures")
        return []
    written: list[Path] = []
    metrics = [m for m in (sw.metrics or df["metric"].unique()) if "." not in m and m in set(df["metric"])]
    factor_keys = sorted({k for c in sw.cells for k in c.factors})
    with paper.style():
        for m in metrics[:6]:
            try:
                if len(factor_keys) == 1:
                    fig = paper.factor_curve(df, factor_keys[0], m)
                    written += paper.save(fig, out_dir, f"curve_{m}", close=True)
                if len(sw.variants) > 1 and df["pipeline"].nunique() == 1 and len(factor_keys) != 1:
                    fig = paper.ablation_bars(df, m, baseline=sw.baseline)
                    written += paper.save(fig, out_dir, f"ablation_{m}", close=True)
                if df["pipeline"].nunique() > 1:
                    fig = paper.method_comparison(df, m)
                    written += paper.save(fig, out_dir, f"comparison_{m}", close=True)
            except (ValueError, KeyError) as e:
                echo(f"figure for {m}: skipped ({e})")
        for pipeline in dict.fromkeys(df["pipeline"]):  # methods that iterate name the metrics to draw per iteration
            its = [m for m in methods.get(pipeline).iteration_metrics if m in metrics]
            if not its:
                continue
            try:
                written += paper.save(paper.iteration_curves(df[df["pipeline"] == pipeline], its),
                                      out_dir, f"{pipeline}_iterations", close=True)
            except (ValueError, KeyError) as e:
                echo(f"iteration figure ({pipeline}): skipped ({e})")
        from . import method_pairs

        prs = method_pairs.read(Path(results_path).parent / "paired.csv")
        if prs:
            written += paper.save(method_pairs.plot(prs), out_dir, "paired", close=True)
        present = set(df["metric"])
        if paper.GENERALIZATION_OOD in present and present & set(paper.GENERALIZATION_IN):
            try:
                written += paper.save(paper.generalization(df), out_dir, "generalization", close=True)
            except (ValueError, KeyError) as e:
                echo(f"generalization figure: skipped ({e})")
    out_dir.mkdir(parents=True, exist_ok=True)
    table = paper.summary_table(df, metrics)
    written += [out_dir / "table.md", out_dir / "table.tex"]
    paper.to_markdown(table, out_dir / "table.md")
    paper.to_latex(table, out_dir / "table.tex", caption=f"{sw.name}: mean ± standard error")
    if written:
        echo(f"figures: {out_dir} ({len(written)} files)")
    return written


# ---------------------------------------------------------------------------
# where cells run: what one node (a Slurm array task, a --jobs slot) can hold
# ---------------------------------------------------------------------------

def _selected_stages(sw: Sweep, recipe: Recipe) -> list[str]:
    """The stages a cell runs: the sweep's ``stages`` selection, switched-off stages left out."""
    from .runner import select_stages

    pipe = recipe.pipeline
    return [s for s in select_stages(sw.stages, pipe.order) if pipe.stage(s).is_enabled(recipe.stages[s])]


def placement_needs(sw: Sweep, recipe: Recipe) -> list[tuple[str, str, int]]:
    """What a cell asks of its node, per setting: (key path, what, count) with what ``machines`` (a training
    stage's ``num_machines``) or ``gpus...`` (a training stage's ``num_gpus``; a vLLM model's
    ``tensor_parallel_size x data_parallel_size``). Only the stages the sweep runs count."""
    import dataclasses

    from .models.spec import ModelSpec

    out = []
    for s in _selected_stages(sw, recipe):
        p = recipe.stages[s]
        if getattr(p, "num_machines", 1) > 1:
            out.append((f"stages.{s}.num_machines", "machines", p.num_machines))
        if getattr(p, "num_gpus", 0) > 0:
            out.append((f"stages.{s}.num_gpus", "gpus", p.num_gpus))
        for f in dataclasses.fields(p):
            v = getattr(p, f.name)
            if isinstance(v, ModelSpec) and v.backend == "vllm":
                out.append((f"stages.{s}.{f.name}", f"gpus: vLLM tensor_parallel_size {v.tensor_parallel_size} x "
                            f"data_parallel_size {v.data_parallel_size}", v.tensor_parallel_size * v.data_parallel_size))
    return out


def check_placement(sw: Sweep, gpus_per_cell: int, how: str) -> None:
    """Refuse, before anything runs, a sweep whose cells cannot run where ``how`` puts them: on one node each
    (no ``num_machines`` > 1) with ``gpus_per_cell`` GPUs (0: not partitioned, GPUs are not checked)."""
    for c in sw.cells:
        r = c.load()
        for where, what, n in placement_needs(sw, r):
            if what == "machines":
                raise ParamsError(
                    f"{sw.path}: cell {c.id!r}: {where} is {n}, but {how} runs each cell on one node "
                    "(the job scripts ask for --nodes=1); run a multi-node recipe with `autoif run` in an "
                    f"allocation of {n} nodes, or set num_machines: 1")
            if gpus_per_cell > 0 and n > gpus_per_cell:
                detail = what.partition(": ")[2] or "training ranks on the node"
                raise ParamsError(
                    f"{sw.path}: cell {c.id!r}: {where} needs {n} GPUs ({detail}), but {how} gives each cell "
                    f"{gpus_per_cell}; give each cell {n} GPUs or lower the setting")


# ---------------------------------------------------------------------------
# Slurm: the stages every cell shares once, one array task per cell, then a collect job
# ---------------------------------------------------------------------------

SLURM_DEFAULTS = {"cpus": 16, "mem": "0", "time": "24:00:00", "gpus": 8, "max_parallel": 0, "setup": None,
                  "extra": [], "collect_cpus": 2, "collect_mem": "8G", "collect_time": "1:00:00"}


def shared_stages(sw: Sweep) -> list[str]:
    """The stages every cell runs with the same key (the same output folder), in pipeline order: what the
    prefix job builds once. Empty for one cell, for cells of different pipelines, or when none agree."""
    if len(sw.cells) < 2:
        return []
    recipes = [c.load() for c in sw.cells]
    if len({r.pipeline_name for r in recipes}) != 1:
        return []
    keys = [r.stage_keys for r in recipes]
    runs = [set(_selected_stages(sw, r)) for r in recipes]
    return [s for s in recipes[0].pipeline.order
            if all(s in ran for ran in runs) and all(k[s] == keys[0][s] for k in keys)]


def run_prefix(sw: Sweep, outputs: str | None = None, echo: Callable = print, progress: bool = False,
               run: Callable | None = None) -> dict:
    """Build the stages every cell shares (:func:`shared_stages`) once, through the first cell's recipe:
    the Slurm prefix job, so array tasks never hold their GPUs waiting on another task's stage lock."""
    from .runner import run_recipe

    run = run or run_recipe
    outputs = outputs or sw.outputs
    shared = shared_stages(sw)
    if not shared:
        echo(f"sweep {sw.name}: no stage is shared by every cell; nothing to build first")
        return {}
    c = sw.cells[0]
    echo(f"sweep {sw.name}: building the stages every cell shares ({', '.join(shared)}) through {c.id}")
    return run(c.recipe_path, stages=",".join(s[:2] for s in shared), outputs=outputs, progress=progress,
               echo=echo, overrides=dict(c.overrides))


def default_setup(executable: str | None = None, prefix: str | None = None, base_prefix: str | None = None,
                  env: Mapping[str, str] | None = None) -> list[str]:
    """Shell lines that put a job in the Python environment that wrote its script: ``source .../activate``
    for a virtualenv, ``conda activate <prefix>`` for a conda environment, and in any case the interpreter's
    folder first on PATH (so ``accelerate``, ``jupyter`` and the kernel resolve to this environment)."""
    import shlex

    executable = os.path.abspath(executable or sys.executable)  # not resolved: a venv's python is a link
    prefix = prefix or sys.prefix
    base_prefix = base_prefix or sys.base_prefix
    env = os.environ if env is None else env
    lines = []
    activate = Path(prefix) / "bin" / "activate"
    if prefix != base_prefix and activate.exists():
        lines.append(f"source {shlex.quote(str(activate))}")
    elif (Path(prefix) / "conda-meta").is_dir():
        conda = env.get("CONDA_EXE") or "conda"
        lines += [f'eval "$({shlex.quote(conda)} shell.bash hook)"', f"conda activate {shlex.quote(str(prefix))}"]
    lines.append(f"export PATH={shlex.quote(os.path.dirname(executable))}:$PATH")
    return lines


def slurm_config(sw: Sweep, overrides: Mapping[str, Any] | None = None) -> dict:
    """The sweep file's ``slurm`` block over the defaults, then the command line's values (None: not given)."""
    cfg = dict(SLURM_DEFAULTS)
    cfg.update(sw.slurm)
    cfg.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return cfg


def slurm_scripts(sw: Sweep, outputs: str | None = None, python: str | None = None,
                  overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The job definitions, as text: ``cells.txt`` (one cell id per line; task i runs line i+1),
    ``prefix.sbatch`` (the stages every cell shares, once; only when some are), ``array.sbatch`` (the job
    array, after the prefix job) and ``collect.sbatch`` (a small CPU job: merges the per-job generation
    caches, rebuilds table and figures). Refuses cells one node cannot run (:func:`check_placement`)."""
    import shlex

    cfg = slurm_config(sw, overrides)
    gpus = int(cfg["gpus"])
    check_placement(sw, gpus, f"--slurm ({gpus} GPUs per array task)")
    root = repo_root()
    sweep_dir = sw.dir(outputs)
    slurm_dir = sweep_dir / "slurm"
    py = python or sys.executable
    out_flag = f" --outputs {shlex.quote(str(outputs))}" if outputs else ""
    sweep_file = shlex.quote(str(sw.path.resolve()))
    n = len(sw.cells)
    array = f"0-{n - 1}" + (f"%{cfg['max_parallel']}" if cfg["max_parallel"] else "")
    shared = shared_stages(sw)

    def header(job: str, log: str, cpus, mem, time_, gpus: int, partition) -> list[str]:
        lines = ["#!/bin/bash", f"#SBATCH --job-name={job}", f"#SBATCH --output={slurm_dir}/logs/{log}",
                 f"#SBATCH --cpus-per-task={cpus}", f"#SBATCH --time={time_}", f"#SBATCH --mem={mem}",
                 "#SBATCH --nodes=1", "#SBATCH --ntasks=1"]
        if gpus:
            lines.append(f"#SBATCH --gpus-per-node={gpus}")
        if partition:
            lines.append(f"#SBATCH --partition={partition}")
        for k in ("account", "qos"):
            if cfg.get(k):
                lines.append(f"#SBATCH --{k}={cfg[k]}")
        lines += [f"#SBATCH {x}" for x in (cfg["extra"] if isinstance(cfg["extra"], list) else [cfg["extra"]]) if x]
        return lines

    setup = cfg["setup"]
    if setup is None:
        setup = default_setup()
    elif isinstance(setup, str):
        setup = [setup] if setup.strip() else []
    else:
        setup = [str(x) for x in setup]
    # activation scripts (conda's, environment modules) may read unset variables: -u only around the rest
    start = ["set -euo pipefail", f"cd {shlex.quote(str(root))}"] + (["set +u", *setup, "set -u"] if setup else [])
    big = dict(cpus=cfg["cpus"], mem=cfg["mem"], time_=cfg["time"], gpus=gpus, partition=cfg.get("partition"))
    files = {"cells.txt": "".join(c.id + "\n" for c in sw.cells)}
    if shared:
        files["prefix.sbatch"] = "\n".join(header(f"autoif-{sw.name}-prefix", "prefix_%j.out", **big) + [
            f"# the stages every cell shares, built once: {', '.join(shared)}", *start,
            f"exec {py} -m autoif_lib.cli sweep {sweep_file} --prefix --no-progress{out_flag}", ""])
    files["array.sbatch"] = "\n".join(header(f"autoif-{sw.name}", "%A_%a.out", **big) + [
        f"#SBATCH --array={array}", *(["#SBATCH --kill-on-invalid-dep=yes"] if shared else []), *start,
        # each task is one cell; what cells share is built by the prefix job before they start
        f'CELL=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {slurm_dir}/cells.txt)',
        f'exec {py} -m autoif_lib.cli sweep {sweep_file} --cell "$CELL" --no-figures --no-progress{out_flag}', ""])
    files["collect.sbatch"] = "\n".join(header(
        f"autoif-{sw.name}-collect", "collect_%j.out", cfg["collect_cpus"], cfg["collect_mem"], cfg["collect_time"],
        0, cfg.get("collect_partition") or cfg.get("partition")) + [
        *start, f"exec {py} -m autoif_lib.cli sweep {sweep_file} --collect{out_flag}", ""])
    return files


class SubmitError(RuntimeError):
    pass


def _sbatch(args: list[str]) -> str:
    proc = subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SubmitError(f"sbatch {' '.join(args)} failed (exit {proc.returncode}): "
                          f"{(proc.stderr or proc.stdout).strip()}")
    return proc.stdout.strip().split(";")[0]


def write_slurm(sw: Sweep, outputs: str | None = None, submit: bool = False, echo: Callable = print,
                python: str | None = None, **overrides) -> dict:
    """Write the job scripts; with ``submit``, submit them chained: prefix, then the array
    (``afterok``: a failed prefix cancels it), then collect (``afterany`` on the array)."""
    slurm_dir = sw.dir(outputs) / "slurm"
    files = slurm_scripts(sw, outputs, python=python, overrides=overrides)
    (slurm_dir / "logs").mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        io.atomic_write_text(slurm_dir / name, text)
    prefix = "prefix.sbatch" in files
    if not prefix and (slurm_dir / "prefix.sbatch").exists():
        (slurm_dir / "prefix.sbatch").unlink()  # from an earlier version of the sweep
    shared = shared_stages(sw) if prefix else []
    cmds = ([f"PREFIX_ID=$(sbatch --parsable {slurm_dir / 'prefix.sbatch'})"] if prefix else []) + [
        "ARRAY_ID=$(sbatch --parsable " + ("--dependency=afterok:$PREFIX_ID " if prefix else "")
        + f"{slurm_dir / 'array.sbatch'})",
        f"sbatch --dependency=afterany:$ARRAY_ID {slurm_dir / 'collect.sbatch'}"]
    echo(f"wrote {slurm_dir}/{{{','.join(files)}}} ({len(sw.cells)} array tasks"
         + (f"; shared stages built first: {', '.join(shared)}" if prefix else "; no stage shared by every cell")
         + ")")
    if not submit:
        echo("submit with:\n  " + "\n  ".join(cmds))
        return {"dir": str(slurm_dir), "submitted": False, "shared": shared}
    import shutil

    if not shutil.which("sbatch"):
        raise ParamsError("--submit: no `sbatch` on PATH (not a Slurm login node?); the scripts are written")
    info: dict[str, Any] = {"dir": str(slurm_dir), "submitted": True, "shared": shared, "prefix_job": None}
    dep = []
    if prefix:
        info["prefix_job"] = _sbatch([str(slurm_dir / "prefix.sbatch")])
        dep = [f"--dependency=afterok:{info['prefix_job']}"]
    try:
        info["array_job"] = _sbatch(dep + [str(slurm_dir / "array.sbatch")])
    except SubmitError as e:
        if info["prefix_job"]:  # nothing would wait for it
            subprocess.run(["scancel", info["prefix_job"]], capture_output=True)
            raise SubmitError(f"{e}; cancelled the prefix job {info['prefix_job']}") from None
        raise
    info["collect_job"] = _sbatch([f"--dependency=afterany:{info['array_job']}", str(slurm_dir / "collect.sbatch")])
    echo(("submitted prefix job " + info["prefix_job"] + ", then " if prefix else "submitted ")
         + f"array job {info['array_job']} ({len(sw.cells)} tasks) and collect job {info['collect_job']}")
    return info


def collect(sw: Sweep, outputs: str | None = None, echo: Callable = print, figures: bool = True) -> Path:
    """The collect job: merge the per-job generation caches of the cells' outputs roots into their main
    caches, re-read every finished cell's rows, rebuild ``results.csv`` (and the figures)."""
    from .models.cache import merge_node_caches

    outputs = outputs or sw.outputs
    for root in sorted({str(c.load(outputs).outputs) for c in sw.cells}):
        m = merge_node_caches(Path(root) / "cache")
        if m["files"]:
            echo(f"generation cache {root}/cache: merged {m['files']} per-job file(s), {m['added']} new "
                 f"completion(s), {m['rows']} in all")
    echo(f"re-read {recollect(sw, outputs, echo=echo)} finished cell(s) from their run folders")
    path = write_results(sw, outputs)
    if figures:
        draw_figures(sw, path, echo=echo)
    echo(f"results: {path}")
    return path
