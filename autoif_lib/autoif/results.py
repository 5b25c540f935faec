"""AutoIF's evaluation as results rows: stage 11's IFEval, IFBench and FollowBench summaries and held-out pass rates per
checkpoint; lm-eval's general abilities (``general_*``, ``delta_general_*``) when the recipe runs them.

Percent units; standard errors are binomial for the IFEval proportions (n = prompts for prompt-level,
n = instructions for instruction-level) and the sample standard error of the mean for the held-out pass rate;
``delta_*`` rows are paired differences from the base on the same items, ``init_delta_*`` from the checkpoint's
own init (DPO and online DPO: SFT), each with the paired standard error.
"""

from __future__ import annotations

from pathlib import Path

from ..results import evaluation_items, evaluation_rows

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
    return evaluation_rows(run_dir, EVAL_STAGE, DELTAS, SCORED)


def items(run_dir: Path) -> dict[str, dict[str, dict]]:
    """Per-item scores by checkpoint and split (``results.evaluation_items``): the paired tests across methods."""
    return evaluation_items(run_dir, EVAL_STAGE)
