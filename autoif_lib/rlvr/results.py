"""RLVR's evaluation as results rows: the rows AutoIF's evaluation reports, under the same names (IFEval, IFBench,
FollowBench, held-out and trained-instruction pass rates, paired ``delta_*`` against the base), for ``grpo``; plus
GRPO's training log (``grpo_reward_first``/``_last``, ``grpo_kl_last``, ``grpo_steps``).
"""

from __future__ import annotations

from pathlib import Path

from .. import io
from ..results import evaluation_items, evaluation_rows, metric_row, stage_dir

EVAL_STAGE = "02_evaluate"
IFEVAL = ("prompt_strict", "prompt_loose", "inst_strict", "inst_loose")
IFBENCH = tuple(f"ifbench_{k}" for k in IFEVAL)
DELTAS = {"ifeval": "prompt_strict", "ifbench": "ifbench_prompt_strict", "followbench": "followbench_ssr",
          "trained_instructions": "trained_pass_rate", "heldout_instructions": "heldout_pass_rate"}
SCORED = {"trained_instructions": "trained_pass_rate"}
TRAINING = ("grpo_steps", "grpo_reward_first", "grpo_reward_last", "grpo_kl_last")
METRICS = IFEVAL + IFBENCH + ("followbench_ssr", "followbench_hsr", "heldout_pass_rate", "trained_pass_rate") + tuple(
    f"{prefix}_{m}" for prefix in ("delta", "init_delta") for m in DELTAS.values()) + TRAINING


def collect(run_dir: Path) -> list[dict]:
    rows = evaluation_rows(run_dir, EVAL_STAGE, DELTAS, SCORED)
    try:
        f = stage_dir(run_dir, "01_grpo") / "metrics.json"
    except (KeyError, FileNotFoundError):  # a run that stopped before GRPO
        return rows
    if f.is_file():
        m = io.read_json(f)
        rows.append(metric_row("grpo", "grpo_steps", m.get("steps", 0)))
        for key, metric in (("reward_first", "grpo_reward_first"), ("reward_last", "grpo_reward_last"),
                            ("kl_last", "grpo_kl_last")):
            if m.get(key) is not None:
                rows.append(metric_row("grpo", metric, (100 if key.startswith("reward") else 1) * m[key]))
    return rows


def items(run_dir: Path) -> dict[str, dict[str, dict]]:
    """Per-item scores by checkpoint and split (``results.evaluation_items``): the paired tests across methods."""
    return evaluation_items(run_dir, EVAL_STAGE)
