"""AutoIF's evaluation as results rows: stage 11's IFEval summaries and held-out pass rates per checkpoint.

Percent units; standard errors are binomial for the IFEval proportions (n = prompts for prompt-level,
n = instructions for instruction-level) and the sample standard error of the mean for the held-out pass rate.
"""

from __future__ import annotations

from pathlib import Path

from .. import io
from ..results import binomial_se, metric_row, stage_dir

EVAL_STAGE = "11_evaluate"
IFEVAL = ("prompt_strict", "prompt_loose", "inst_strict", "inst_loose")
METRICS = IFEVAL + ("heldout_pass_rate",)


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
    return rows
