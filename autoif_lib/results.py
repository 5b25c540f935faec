"""Results tables: a finished run's metrics as tidy rows, one per checkpoint x metric.

A sweep (``sweeps.py``) gathers these rows for every variant x seed into one file,
``outputs/sweeps/<sweep>/results.csv``, that the analysis notebooks read with pandas::

    import pandas as pd
    df = pd.read_csv("outputs/sweeps/autoif_thresholds_cpu/results.csv")
    df.query("metric == 'prompt_strict'").groupby(["variant", "checkpoint"]).value.mean()

What a run's evaluation means is its method's business: the results module its declaration names
(``methods.Method.results``) has ``collect(run_dir) -> list[row]`` with the keys of ``METRIC_KEYS`` and
``METRICS``, the metric names it can report. Stage-level numbers
(``07_export.n_sft``) come from any stage's ``metrics.json`` by a dotted path.
"""

from __future__ import annotations

import csv
import importlib
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from . import io, methods
from .params import ParamsError
from .stats import binomial_se
from .runs import MANIFEST, PLAN

# What a method collector returns per row.
METRIC_KEYS = ("checkpoint", "iteration", "metric", "value", "se", "n")
# The table's columns, in order. JSON-valued columns hold strings (``factors``, ``overrides``, ``stage_keys``).
COLUMNS = ("sweep", "variant", "seed", "pipeline", "checkpoint", "iteration", "metric", "value", "se", "n",
           "factors", "run_id", "recipe_key", "base_recipe", "overrides", "git_commit", "stage_keys", "finished_at")
JSON_COLUMNS = ("factors", "overrides", "stage_keys")


def metric_row(checkpoint: str, metric: str, value: Any, se: Any = None, n: Any = None,
               iteration: int | None = None) -> dict:
    def num(x):
        return None if x is None else float(x)
    return {"checkpoint": checkpoint, "iteration": iteration, "metric": metric, "value": num(value), "se": num(se),
            "n": None if n is None else int(n)}


def benchmark_rows(checkpoint: str, summary: Mapping[str, Any], prefix: str = "", iteration: int | None = None) -> list[dict]:
    """The four IFEval-style metrics of one benchmark summary (IFEval, IFBench) in percent, each with its binomial
    standard error: n = prompts for prompt-level, n = instructions for instruction-level."""
    n_p = summary["n_prompts"]
    n_i = sum(v["n"] for v in summary["per_instruction"].values())
    rows = []
    for k in ("prompt_strict", "prompt_loose", "inst_strict", "inst_loose"):
        n = n_p if k.startswith("prompt") else n_i
        rows.append(metric_row(checkpoint, prefix + k, 100 * summary[k],
                               100 * (binomial_se(summary[k], n) or 0.0) if n else None, n, iteration=iteration))
    return rows


def followbench_rows(checkpoint: str, summary: Mapping[str, Any], iteration: int | None = None) -> list[dict]:
    """FollowBench's metrics of one summary: SSR and HSR averaged over levels (percent; s.e. over instruction
    families), SSR per level (``followbench_ssr_l<k>``, the papers' Table 1 columns) and CSL (levels)."""
    if summary.get("ssr_avg") is None:  # nothing scored (no judge for a judge-only sample)
        return []
    n = summary.get("n_scored")
    rows = [metric_row(checkpoint, f"followbench_{k}", 100 * summary[f"{k}_avg"],
                       None if summary.get(f"{k}_avg_se") is None else 100 * summary[f"{k}_avg_se"], n, iteration)
            for k in ("ssr", "hsr")]
    rows += [metric_row(checkpoint, f"followbench_ssr_l{lv['level']}", 100 * lv["ssr"],
                        None if lv.get("ssr_se") is None else 100 * lv["ssr_se"], lv["n"], iteration)
             for lv in summary["per_level"]]
    if summary.get("csl") is not None:
        rows.append(metric_row(checkpoint, "followbench_csl", summary["csl"], None, summary.get("n_families_csl"), iteration))
    return rows


def evaluation_rows(run_dir: Path, stage: str, deltas: Mapping[str, str], scored: Mapping[str, str]) -> list[dict]:
    """The rows of an evaluation stage written by ``evaluation.save_comparison``: per evaluated checkpoint, IFEval,
    IFBench and FollowBench from their summaries and the held-out pass rate; ``scored`` splits (split -> metric)
    as their own metric from the paired rows; the paired differences (``deltas``: split -> metric; ``delta_*``
    against the base, ``init_delta_*`` against the checkpoint's init); lm-eval's general abilities."""
    d = stage_dir(run_dir, stage)
    m = io.read_json(d / "metrics.json")
    rows = []
    for name in m["checkpoints"]:  # the evaluated ones, in the recipe's order; skipped ones have no rows
        rows += benchmark_rows(name, io.read_json(d / f"ifeval_{name}_summary.json"))
        if (d / f"ifbench_{name}_summary.json").is_file():  # runs from before IFBench, or with it off, have none
            rows += benchmark_rows(name, io.read_json(d / f"ifbench_{name}_summary.json"), prefix="ifbench_")
        if (d / f"followbench_{name}_summary.json").is_file():
            rows += followbench_rows(name, io.read_json(d / f"followbench_{name}_summary.json"))
        h = m.get("heldout", {}).get(name) or {}
        if h.get("mean_pass_rate") is not None:
            se = h.get("mean_pass_rate_se")
            rows.append(metric_row(name, "heldout_pass_rate", 100 * h["mean_pass_rate"],
                                   None if se is None else 100 * se, h.get("n")))
    for r in m.get("paired") or []:
        if r["split"] in scored:
            rows.append(metric_row(r["checkpoint"], scored[r["split"]], 100 * r["score_mean"], 100 * r["score_se"],
                                   r["score_n"]))
    general = {n: io.read_json(d / f"general_{n}.json") for n in m["checkpoints"] if (d / f"general_{n}.json").is_file()}
    return rows + paired_rows(m.get("paired") or [], deltas) + general_rows(general)


ITEM_SPLITS = ("ifeval", "ifbench", "trained_instructions", "heldout_instructions")


def evaluation_items(run_dir: Path, stage: str, names: Mapping[str, str] | None = None) -> dict[str, dict[str, dict]]:
    """Per-item scores an evaluation stage wrote: checkpoint -> split -> {item id: score}. IFEval and IFBench give
    the prompt-level strict verdict (0/1) by prompt key, the held-out verifier splits the pass rate by
    ``pair_id``. ``names``: file name -> checkpoint (default: the stage's ``checkpoints``, named as in the
    files). The input of paired tests across runs (``method_pairs``): runs that answered the same items pair."""
    d = stage_dir(run_dir, stage)
    if names is None:
        names = {n: n for n in io.read_json(d / "metrics.json")["checkpoints"]}
    out: dict[str, dict[str, dict]] = {}
    for fname, ck in names.items():
        got = {}
        for split in ITEM_SPLITS:
            f = d / f"{split}_{fname}.jsonl"
            if not f.is_file():
                continue
            recs = io.read_jsonl(f)
            if split in ("ifeval", "ifbench"):
                got[split] = {r["key"]: float(r["follow_all_strict"]) for r in recs}
            else:
                got[split] = {r["pair_id"]: float(r["pass_rate"]) for r in recs}
        if got:
            out[ck] = got
    return out


def general_rows(results: Mapping[str, Mapping[str, Any]], base: str = "base",
                 iteration_of: Mapping[str, int] | None = None) -> list[dict]:
    """lm-eval results per checkpoint (``general_abilities.run``) as rows ``general_<task>_<metric>`` (percent
    for scores in [0, 1]) and ``delta_general_<task>_<metric>``: the difference from the base with its standard
    error, paired over items where both answered the same ones."""
    from . import general_abilities as ga

    def key(task, metric):
        return f"general_{task}_{metric}".replace("/", "_")

    def scale(res):  # accuracies and the like are fractions; report them in percent as the other benchmarks
        return 100.0 if all(0 <= v <= 1 for t, r in res.items() if not t.startswith("_")
                            for v in r["metrics"].values() if v is not None) else 1.0

    rows = []
    for name, res in results.items():
        k = scale(res)
        for task, r in res.items():
            if task.startswith("_"):
                continue
            for metric, v in r["metrics"].items():
                se = r["stderr"].get(metric)
                rows.append(metric_row(name, key(task, metric), None if v is None else k * v,
                                       None if se is None else k * se, r.get("n"),
                                       (iteration_of or {}).get(name)))
    if base in results:
        for d in ga.deltas(dict(results), base):
            k = scale(results[d["checkpoint"]])
            rows.append(metric_row(d["checkpoint"], "delta_" + key(d["task"], d["metric"]), k * d["delta"],
                                   None if d["delta_se"] is None else k * d["delta_se"],
                                   results[d["checkpoint"]][d["task"]].get("n"), (iteration_of or {}).get(d["checkpoint"])))
    return rows


def paired_rows(paired: Iterable[Mapping[str, Any]], deltas: Mapping[str, str],
                iteration_of: Mapping[str, int] | None = None) -> list[dict]:
    """Rows of an evaluation's paired statistics (``evaluation.paired_stats``): for each split in ``deltas``
    (split -> the metric its items score), ``delta_<metric>`` (vs the base) and ``init_delta_<metric>`` (vs the
    checkpoint's own init), in percent with the paired standard error."""
    rows = []
    for r in paired:
        if r["split"] not in deltas:
            continue
        for prefix, label in (("delta", "delta"), ("init", "init_delta")):
            if r.get(f"{prefix}_diff") is not None:
                rows.append(metric_row(r["checkpoint"], f"{label}_{deltas[r['split']]}", 100 * r[f"{prefix}_diff"],
                                       100 * r[f"{prefix}_se"], r[f"{prefix}_n"],
                                       iteration=(iteration_of or {}).get(r["checkpoint"])))
    return rows


def collector(pipeline: str):
    """The method's results module (``collect(run_dir)``, ``METRICS``), as its declaration names it."""
    name = methods.get(pipeline).results
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and name.startswith(e.name):
            raise ParamsError(f"pipeline {pipeline!r}: its results module {name} does not exist") from e
        raise


def stage_dir(run_dir: Path, stage: str) -> Path:
    """A run's stage folder: its link, or the store folder its plan names."""
    link = Path(run_dir) / stage
    if link.exists():
        return link.resolve()
    plan = io.read_json(Path(run_dir) / PLAN)
    return Path(plan["stages"][stage]["dir"])


def stage_metric(run_dir: Path, dotted: str) -> Any:
    """``"07_export.n_sft"`` -> that value of the stage's metrics.json (nested keys by further dots)."""
    stage, _, path = dotted.partition(".")
    if not path:
        raise ParamsError(f"metric {dotted!r}: a stage metric is '<stage>.<key>'")
    d: Any = io.read_json(stage_dir(run_dir, stage) / "metrics.json")
    for part in path.split("."):
        if not isinstance(d, Mapping) or part not in d:
            raise KeyError(f"{dotted}: no {part!r} in {stage}'s metrics.json")
        d = d[part]
    return d


def collect_run(run_dir: Path, metrics: Sequence[str] = ()) -> list[dict]:
    """A finished run's rows: the method's evaluation rows (all of them if ``metrics`` is empty, else the
    named ones) and any ``<stage>.<key>`` stage metrics named in ``metrics``."""
    run_dir = Path(run_dir)
    plan = io.read_json(run_dir / PLAN)
    mod = collector(plan["pipeline"])
    rows = mod.collect(run_dir)
    wanted_eval = [m for m in metrics if "." not in m]
    if wanted_eval:
        rows = [r for r in rows if r["metric"] in wanted_eval]
    for m in metrics:
        if "." in m and m.split(".", 1)[0] in plan["stages"]:  # a mixed sweep names stages of either method
            v = stage_metric(run_dir, m)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ParamsError(f"metric {m!r} is {type(v).__name__}, not a number")
            rows.append(metric_row("", m, v))
    return rows


def known_metrics(pipeline: str) -> tuple[str, ...]:
    return tuple(collector(pipeline).METRICS)


def git_commit(run_dir: Path) -> str:
    """The commit the run's evaluation stage was executed at (from its manifest), '' if unknown."""
    plan = io.read_json(Path(run_dir) / PLAN)
    for stage in reversed(list(plan["stages"])):
        try:
            man = io.read_json(stage_dir(run_dir, stage) / MANIFEST)
        except (FileNotFoundError, ValueError, KeyError):
            continue
        git = man.get("git") or {}
        commit = git.get("commit") or ""
        return commit + ("+dirty" if commit and git.get("dirty") else "")
    return ""


# ---------------------------------------------------------------------------
# the table file
# ---------------------------------------------------------------------------

def _cell(v: Any, col: str) -> str:
    if col in JSON_COLUMNS:
        return v if isinstance(v, str) else json.dumps(v or {}, sort_keys=True)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v)


def write_table(rows: Iterable[Mapping[str, Any]], path: Path) -> Path:
    """Write rows atomically as CSV with ``COLUMNS`` (a crash never leaves half a table)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in rows:
            unknown = set(r) - set(COLUMNS)
            if unknown:
                raise ValueError(f"results row has unknown columns: {sorted(unknown)}")
            w.writerow([_cell(r.get(c), c) for c in COLUMNS])
    tmp.replace(path)
    return path


def read_table(path: Path):
    """The table as a DataFrame; JSON columns parsed into dicts."""
    import pandas as pd

    df = pd.read_csv(path, dtype={"checkpoint": str, "variant": str, "metric": str})
    df["checkpoint"] = df["checkpoint"].fillna("")
    for c in JSON_COLUMNS:
        if c in df:
            df[c] = df[c].fillna("{}").map(json.loads)
    return df
