"""AutoIF's evaluation as results rows: stage 11's IFEval summaries and held-out pass rates per checkpoint.

Percent units; standard errors are binomial for the IFEval proportions (n = prompts for prompt-level,
n = instructions for instruction-level) and the sample standard error of the mean for the held-out pass rate;
``delta_*`` rows are paired differences from the base on the same items, ``init_delta_*`` from the checkpoint's
own init (DPO and online DPO: SFT), each with the paired standard error.
"""

from __future__ import annotations

from pathlib import Path

from .. import io
from ..results import binomial_se, metric_row, stage_dir

EVAL_STAGE = "11_evaluate"
IFEVAL = ("prompt_strict", "prompt_loose", "inst_strict", "inst_loose")
# paired differences on the same items (stage 11's ``paired``): the metric each split's difference is of
DELTAS = {"ifeval": "prompt_strict", "trained_instructions": "trained_pass_rate",
          "online_instructions": "online_pass_rate", "heldout_instructions": "heldout_pass_rate"}
SCORED = {"trained_instructions": "trained_pass_rate", "online_instructions": "online_pass_rate"}
METRICS = IFEVAL + ("heldout_pass_rate", "trained_pass_rate", "online_pass_rate") + tuple(
    f"{prefix}_{m}" for prefix in ("delta", "init_delta") for m in DELTAS.values())


def collect(run_dir: Path) -> list[dict]:
    d = stage_dir(run_dir, EVAL_STAGE)
    m = io.read_json(d / "metrics.json")
    rows = []
    for name in m["checkpoints"]:  # the evaluated ones, in the recipe's order; skipped ones have no rows
        s = io.read_json(d / f"ifeval_{name}_summary.json")
        n_p = s["n_prompts"]
        n_i = sum(v["n"] for v in s["per_instruction"].values())
        for k in IFEVAL:
            n = n_p if k.startswith("prompt") else n_i
            rows.append(metric_row(name, k, 100 * s[k], 100 * (binomial_se(s[k], n) or 0.0) if n else None, n))
        h = m.get("heldout", {}).get(name) or {}
        if h.get("mean_pass_rate") is not None:
            se = h.get("mean_pass_rate_se")
            rows.append(metric_row(name, "heldout_pass_rate", 100 * h["mean_pass_rate"],
                                   None if se is None else 100 * se, h.get("n")))
    for r in m.get("paired") or []:  # recipes that score trained instructions on held-out queries, and the deltas
        if r["split"] in SCORED:
            rows.append(metric_row(r["checkpoint"], SCORED[r["split"]], 100 * r["score_mean"], 100 * r["score_se"],
                                   r["score_n"]))
        for prefix, name in (("delta", "delta"), ("init", "init_delta")):
            if r.get(f"{prefix}_diff") is not None and r["split"] in DELTAS:
                rows.append(metric_row(r["checkpoint"], f"{name}_{DELTAS[r['split']]}", 100 * r[f"{prefix}_diff"],
                                       100 * r[f"{prefix}_se"], r[f"{prefix}_n"]))
    return rows
