"""SPaR's evaluation as results rows: stage 20's per-iteration rows (M_t, R_t).

An iteration whose actor step did not train (no pairs: M_t is M_{t-1}) has no actor-side IFEval rows, as
AutoIF lists no untrained checkpoint under a trained name; its refiner's rows (search, judging) remain.

Checkpoint names: ``base`` for M0 (the same model AutoIF calls ``base`` when both start from it) and
``spar_t<t>`` after iteration t; the ``iteration`` column carries t. Percent units for IFEval; judging
accuracy as a fraction, as stage 20 reports it.
"""

from __future__ import annotations

from pathlib import Path

from .. import io
from ..results import binomial_se, metric_row, stage_dir

EVAL_STAGE = "20_evaluate"
IFEVAL = ("prompt_strict", "prompt_loose", "inst_strict", "inst_loose")
SEARCH = tuple(f"search_{k}" for k in IFEVAL) + ("search_extra_calls_per_prompt",)
JUDGE = ("judge_ifeval_acc", "judge_ifeval_f1", "judge_ifeval_single_acc",
         "judge_heldout_acc", "judge_heldout_f1", "judge_heldout_single_acc")
METRICS = IFEVAL + SEARCH + JUDGE


def checkpoint_name(t: int) -> str:
    return "base" if t == 0 else f"spar_t{t}"


def actor_trained(run_dir: Path, t: int) -> bool:
    """Whether iteration t's actor step changed the actor (its metrics say ``trained``; unknown counts as yes)."""
    from .pipeline import stage_name

    try:
        return bool(io.read_json(stage_dir(run_dir, stage_name(t, "actor")) / "metrics.json").get("trained", True))
    except (FileNotFoundError, KeyError):
        return True


def collect(run_dir: Path) -> list[dict]:
    d = stage_dir(run_dir, EVAL_STAGE)
    m = io.read_json(d / "metrics.json")
    rows = []
    for r in m["rows"]:
        t = int(r["iteration"])
        ck = checkpoint_name(t)
        n_p = r["n_prompts"]
        same_actor = t > 0 and not actor_trained(run_dir, t)
        for k in METRICS:
            if r.get(k) is None or (same_actor and k in IFEVAL):
                continue
            v = float(r[k])
            se, n = None, None
            if k.removeprefix("search_") in ("prompt_strict", "prompt_loose"):
                se, n = 100 * (binomial_se(v / 100, n_p) or 0.0), n_p
            elif k.removeprefix("search_") in ("inst_strict", "inst_loose") and r.get("n_instructions"):
                n = r["n_instructions"]
                se = 100 * (binomial_se(v / 100, n) or 0.0)
            elif k.startswith("judge_") and k.endswith("_acc"):
                source = k.split("_")[1]
                acc = (m.get("details") or {}).get(f"t{t}_judge_{source}") or {}
                part = acc.get("single" if "single" in k else "majority") or {}
                n = part.get("n")
                se = binomial_se(v, n) if n else None
            rows.append(metric_row(ck, k, v, se, n, iteration=t))
    return rows
