"""The ``autoif`` command: run recipes, show run status, check and show params, sync notebooks.

    autoif run params/autoif/quickstart.yaml [--stages 00-04] [--force] [--outputs DIR]
    autoif status [--outputs DIR]
    autoif check params/autoif/*.yaml   # validate recipes only (fails in a second)
    autoif show params/autoif/x.yaml    # the fully resolved recipe: what a run really runs
    autoif sync-notebooks [--check]     # rewrite parameters cells from the stage schemas
    autoif sweep params/ablations/x.yaml [--jobs N --gpus-per-job K] [--status] [--show] [--slurm [--submit]]
                                         [--slurm-setup 'module load cuda; source env/bin/activate']
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_run(a) -> int:
    import signal

    from .params import ParamsError
    from .runner import StageFailed, run_recipe

    def _term(signum, frame):
        # Turn SIGTERM into KeyboardInterrupt so papermill shuts the kernel down instead of orphaning it.
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _term)
    try:
        run_recipe(a.params, stages=a.stages, force=a.force, outputs=a.outputs, progress=not a.no_progress)
    except ParamsError as e:
        print(f"params error: {e}", file=sys.stderr)
        return 2
    except StageFailed as e:
        print(str(e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: completed stages are kept; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


def _cmd_status(a) -> int:
    from .runner import list_runs, unlisted_outputs

    out = Path(a.outputs) if a.outputs else None
    runs = list_runs(out)
    if not runs:
        print("no runs yet")
        return 0
    for r in runs:
        print(f"{r['run']}  ({r['pipeline']}: {r['params_file']})")
        for name, s in r["stages"].items():  # pipeline order
            secs = f"{s['seconds']:.1f} s" if s["seconds"] is not None else ""
            print(f"  {name:<28} {s['state']:<9} {s['key']}  {secs}")
    extra = unlisted_outputs(out)
    if extra:
        print("stage outputs no run lists (notebooks run directly with other params):")
        for e in extra:
            print(f"  {e['pipeline']}/{e['stage']:<24} {e['state']:<9} {e['path']}")
    return 0


def _cmd_check(a) -> int:
    from .params import ParamsError
    from .recipes import load_recipe

    bad = 0
    for p in a.params:
        try:
            r = load_recipe(p)
            print(f"ok  {p}  run_id={r.run_id}")
            for note in r.notes:
                print(f"    note: {note}")
        except ParamsError as e:
            print(f"ERR {e}", file=sys.stderr)
            bad += 1
    return 2 if bad else 0


def _cmd_show(a) -> int:
    from .params import ParamsError
    from .recipes import load_recipe, show

    try:
        print(show(load_recipe(a.params)), end="")
    except ParamsError as e:
        print(f"params error: {e}", file=sys.stderr)
        return 2
    return 0


def _cmd_sync(a) -> int:
    from .nbtools import sync_all

    changed = sync_all(check=a.check)
    for p in changed:
        print(("out of sync: " if a.check else "rewrote ") + str(p))
    return 1 if (a.check and changed) else 0


def _cmd_sweep(a) -> int:
    import signal

    from . import sweeps
    from .params import ParamsError
    from .recipes import show

    def _term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _term)
    try:
        sw = sweeps.load_sweep(a.sweep)  # validates every cell's recipe before anything runs
        if a.show:
            for c in sw.cells:
                print(f"# ---- cell {c.id}  (recipe {c.recipe_path}, overrides {c.overrides})")
                print(show(c.load(a.outputs)), end="")
            return 0
        if a.status:
            for st in sweeps.status(sw, a.outputs):
                secs = f"{st['seconds']:.1f} s" if st["seconds"] is not None else ""
                print(f"  {st['cell']:<40} {st['state']:<8} {st['run_id']}  {secs}"
                      + (f"  {st['error'][:200]}" if st["state"] == "failed" and st["error"] else ""))
            return 0
        if a.slurm or a.submit:
            try:
                sweeps.write_slurm(sw, a.outputs, submit=a.submit, partition=a.partition,
                                   gpus=a.gpus_per_job or None, setup=a.slurm_setup)
            except sweeps.SubmitError as e:
                print(str(e), file=sys.stderr)
                return 1
            return 0
        if a.prefix:
            from .runner import StageFailed

            try:
                sweeps.run_prefix(sw, a.outputs, progress=not a.no_progress)
            except StageFailed as e:
                print(str(e), file=sys.stderr)
                return 1
            return 0
        if a.collect:
            sweeps.collect(sw, a.outputs, figures=not a.no_figures)
            return 0
        if a.cell:
            rec = sweeps.run_cell(sw, sw.cell(a.cell), a.outputs, progress=not a.no_progress)
            sweeps.write_results(sw, a.outputs)
            print(f"cell {a.cell}: {rec['status']} in {rec['seconds']:.1f} s" + (f": {rec.get('error')}" if
                                                                                 rec["status"] != "done" else ""))
            return 0 if rec["status"] == "done" else 1
        res = sweeps.run_sweep(sw, a.outputs, progress=not a.no_progress, jobs=a.jobs,
                               gpus_per_job=a.gpus_per_job or 0, figures=not a.no_figures)
    except ParamsError as e:
        print(f"params error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished cells and stages are kept; run the same command again to resume", file=sys.stderr)
        return 130
    return 1 if res["failed"] else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="autoif", description="AutoIF / SPaR workbench runner")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute the numbered notebooks of a recipe with papermill")
    r.add_argument("params", help="recipe YAML, e.g. params/autoif/quickstart.yaml")
    r.add_argument("--stages", help="e.g. 00-04, 3, 01,03-05 (default: all)")
    r.add_argument("--force", action="store_true", help="re-run complete stages")
    r.add_argument("--outputs", help="outputs root (default: the recipe's, normally ./outputs)")
    r.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    r.set_defaults(func=_cmd_run)
    s = sub.add_parser("status", help="list runs and their stages' states")
    s.add_argument("--outputs", help="outputs root (default ./outputs)")
    s.set_defaults(func=_cmd_status)
    c = sub.add_parser("check", help="validate recipe files without running anything")
    c.add_argument("params", nargs="+")
    c.set_defaults(func=_cmd_check)
    w = sub.add_parser("show", help="print the fully resolved recipe (base chain, merges, defaults, stage keys)")
    w.add_argument("params")
    w.set_defaults(func=_cmd_show)
    y = sub.add_parser("sync-notebooks", help="rewrite notebooks' parameters cells from the stage schemas")
    y.add_argument("--check", action="store_true", help="only report notebooks that are out of sync")
    y.set_defaults(func=_cmd_sync)
    w = sub.add_parser("sweep", help="run an ablation sweep: every variant x seed, sharing stages, resumable")
    w.add_argument("sweep", help="sweep file, e.g. params/ablations/autoif_thresholds_cpu.yaml")
    w.add_argument("--outputs", help="outputs root (default: the sweep's, normally ./outputs)")
    w.add_argument("--jobs", type=int, default=1, help="cells at once on this node (default 1)")
    w.add_argument("--gpus-per-job", type=int, default=0, help="GPUs per concurrent cell (CUDA_VISIBLE_DEVICES)")
    w.add_argument("--status", action="store_true", help="list cells and their states; run nothing")
    w.add_argument("--show", action="store_true", help="print every cell's resolved recipe; run nothing")
    w.add_argument("--cell", help="run one cell by id (variant@sSEED); what Slurm array tasks call")
    w.add_argument("--collect", action="store_true", help="merge per-job generation caches, re-read finished cells' "
                                                           "run folders, rebuild results.csv and figures")
    w.add_argument("--slurm", action="store_true", help="write Slurm jobs: shared stages once, an array (one task per cell), a collect job")
    w.add_argument("--submit", action="store_true", help="with --slurm: submit them with sbatch")
    w.add_argument("--partition", help="with --slurm: the partition (overrides the sweep file's)")
    w.add_argument("--slurm-setup", metavar="SHELL",
                   help="with --slurm: the jobs' environment setup, e.g. 'module load cuda; source env/bin/activate' "
                        "(overrides the sweep file's slurm.setup; default: activate the environment running this)")
    w.add_argument("--prefix", action="store_true",
                   help="build the stages every cell shares, once; what the Slurm prefix job calls")
    w.add_argument("--no-figures", action="store_true", help="do not draw figures at the end")
    w.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    w.set_defaults(func=_cmd_sweep)
    a = ap.parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
