"""AutoIF's evaluation as results rows: stage 11's IFEval, IFBench and FollowBench summaries and held-out pass rates per
checkpoint; lm-eval's general abilities (``general_*``, ``delta_general_*``) when the recipe runs them.

Percent units; standard errors are binomial for the IFEval proportions (n = prompts for prompt-level,
n = instructions for instruction-level) and the sample standard error of the mean for the held-out pass rate;
``delta_*`` rows are paired differences from the base on the same items, ``init_delta_*`` from the checkpoint's
own init (DPO and online DPO: SFT), each with the paired standard error.
"""

from __future__ import annotations

from pathlib import Path

from .. import io
from ..results import benchmark_rows, followbench_rows, general_rows, metric_row, paired_rows, stage_dir

EVAL_STAGE = "11_evaluate"
IFEVAL = ("prompt_strict", "prompt_loose", "inst_strict", "inst_loose")
IFBENCH = tuple(f"ifbench_{k}" for k in IFEVAL)
# paired differences on the same items (stage 11's ``paired``): the metric each split's difference is of
DELTAS = {"ifeval": "prompt_strict", "ifbench": "ifbench_prompt_strict", "followbench": "followbench_ssr", "trained_instructions": "trained_pass_rate",
          "online_instructions": "online_pass_rate", "heldout_instructions": "heldout_pass_rate"}
SCORED = {"trained_instructions": "trained_pass_rate", "online_instructions": "online_pass_rate"}
FOLLOWBENCH = ("followbench_ssr", "followbench_hsr", "followbench_csl") + tuple(f"followbench_ssr_l{k}" for k in range(1, 6))
METRICS = IFEVAL + IFBENCH + FOLLOWBENCH + ("heldout_pass_rate", "trained_pass_rate", "online_pass_rate") + tuple(
    f"{prefix}_{m}" for prefix in ("delta", "init_delta") for m in DELTAS.values())


def collect(run_dir: Path) -> list[dict]:
    d = stage_dir(run_dir, EVAL_STAGE)
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
    for r in m.get("paired") or []:  # recipes that score trained instructions on held-out queries, and the deltas
        if r["split"] in SCORED:
            rows.append(metric_row(r["checkpoint"], SCORED[r["split"]], 100 * r["score_mean"], 100 * r["score_se"],
                                   r["score_n"]))
    general = {n: io.read_json(d / f"general_{n}.json") for n in m["checkpoints"] if (d / f"general_{n}.json").is_file()}
    return rows + paired_rows(m.get("paired") or [], DELTAS) + general_rows(general)
