"""SPaR's evaluation as results rows: stage 20's per-iteration rows (M_t, R_t).

An iteration whose actor step did not train (no pairs: M_t is M_{t-1}) has no actor-side IFEval rows, as
AutoIF lists no untrained checkpoint under a trained name; its refiner's rows (search, judging) remain.

Checkpoint names: ``base`` for M0 (the same model AutoIF calls ``base`` when both start from it) and
``spar_t<t>`` after iteration t; the ``iteration`` column carries t. Percent units for IFEval; judging
accuracy (``judge_*``, ``llmbar_*``) and refinement accuracy (``refine_*``) as fractions, as stage 20
reports them. ``ifbench_*``: the same four metrics on IFBench.
``delta_*`` / ``init_delta_*``: stage 20's paired differences of M_t from M0 and from the actor it was trained
from, on the same IFEval and IFBench prompts, in points with the paired standard error.
"""

from __future__ import annotations

from pathlib import Path

from .. import io
from ..stats import binomial_se
from ..results import evaluation_items, followbench_rows, general_rows, metric_row, paired_rows, stage_dir

EVAL_STAGE = "20_evaluate"
IFEVAL = ("prompt_strict", "prompt_loose", "inst_strict", "inst_loose")
IFBENCH = tuple(f"ifbench_{k}" for k in IFEVAL)
DELTAS = {"ifeval": "prompt_strict", "ifbench": "ifbench_prompt_strict", "followbench": "followbench_ssr"}
SEARCH = tuple(f"search_{k}" for k in IFEVAL) + ("search_extra_calls_per_prompt",)
JUDGE = ("judge_ifeval_acc", "judge_ifeval_f1", "judge_ifeval_single_acc",
         "judge_heldout_acc", "judge_heldout_f1", "judge_heldout_single_acc")
# the refiner's tables: judging on LLMBar (Table 2, fractions) and refinement accuracy (Table 3, fractions)
LLMBAR = tuple(f"llmbar_{g}_{m}" for g in ("natural", "adversarial", "overall") for m in ("acc", "f1"))
REFINE = ("refine_acc_verifier", "refine_acc_self")
# read from each per-iteration row; FollowBench's come from its summary files (results.followbench_rows)
ROW_METRICS = IFEVAL + IFBENCH + SEARCH + JUDGE + LLMBAR + REFINE
FOLLOWBENCH = ("followbench_ssr", "followbench_hsr", "followbench_csl") + tuple(f"followbench_ssr_l{k}" for k in range(1, 6))
METRICS = ROW_METRICS + FOLLOWBENCH + tuple(f"{p}_{m}" for p in ("delta", "init_delta") for m in DELTAS.values())


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
        same_actor = t > 0 and not actor_trained(run_dir, t)
        for k in ROW_METRICS:
            if r.get(k) is None or (same_actor and k in IFEVAL + IFBENCH):
                continue
            v = float(r[k])
            se, n = None, None
            bench = "ifbench_" if k.startswith("ifbench_") else ""
            base_k = k.removeprefix("search_").removeprefix("ifbench_")
            if base_k in ("prompt_strict", "prompt_loose"):
                n = r[f"{bench}n_prompts"]
                se = 100 * (binomial_se(v / 100, n) or 0.0)
            elif base_k in ("inst_strict", "inst_loose") and r.get(f"{bench}n_instructions"):
                n = r[f"{bench}n_instructions"]
                se = 100 * (binomial_se(v / 100, n) or 0.0)
            elif k.startswith("judge_") and k.endswith("_acc"):
                source = k.split("_")[1]
                acc = (m.get("details") or {}).get(f"t{t}_judge_{source}") or {}
                part = acc.get("single" if "single" in k else "majority") or {}
                n = part.get("n")
                se = binomial_se(v, n) if n else None
            elif k in LLMBAR and k.endswith("_acc"):
                part = ((m.get("details") or {}).get(f"t{t}_llmbar") or {}).get("majority", {}).get(k.split("_")[1], {})
                se, n = part.get("acc_se"), part.get("n")
            elif k in REFINE:
                se, n = r.get(f"{k}_se"), r.get("refine_n")
            rows.append(metric_row(ck, k, v, se, n, iteration=t))
        if not same_actor and (d / f"followbench_t{t}_summary.json").is_file():
            rows += followbench_rows(ck, io.read_json(d / f"followbench_t{t}_summary.json"), t)
    its = {checkpoint_name(int(r["iteration"])): int(r["iteration"]) for r in m["rows"]}
    general = {n: io.read_json(d / f"general_{n}.json") for n in (m.get("details") or {}).get("general") or []}
    return rows + paired_rows((m.get("details") or {}).get("paired") or [], DELTAS, its) + general_rows(general, "base", its)


def items(run_dir: Path) -> dict[str, dict[str, dict]]:
    """Per-item IFEval and IFBench verdicts of M0 and of every actor that trained (``results.evaluation_items``):
    the paired tests across methods. SPaR has no held-out verifier splits."""
    m = io.read_json(stage_dir(run_dir, EVAL_STAGE) / "metrics.json")
    ts = [int(r["iteration"]) for r in m["rows"]]
    return evaluation_items(run_dir, EVAL_STAGE, {f"t{t}": checkpoint_name(t) for t in ts
                                                  if t == 0 or actor_trained(run_dir, t)})
