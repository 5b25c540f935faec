"""The RLVR pipeline: its stages, what each reads and what each makes (see ``autoif_lib.pipeline``)."""

from __future__ import annotations

from ..pipeline import Pipeline, Stage, register
from . import stages as S

PIPELINE = register(Pipeline(
    name="rlvr",
    notebooks="notebooks/rlvr",
    default_recipe="params/rlvr/quickstart.yaml",
    stages=(
        Stage("00_instructions", S.InstructionsParams, (),
              ("prompts.jsonl", "train_instructions.jsonl", "heldout_instructions.jsonl", "queries.jsonl",
               "heldout_queries.jsonl", "probe.jsonl"),
              doc="instructions with verifiers x queries; learnable-range probe; held-out instructions and queries"),
        Stage("01_grpo", S.GRPOParams, ("00_instructions",), ("model", "pass_curve.json"), checkpoint="grpo",
              doc="TRL GRPOTrainer, rewards from the verifiers run in the sandbox; rewards, KL and pass rate per step"),
        Stage("02_evaluate", S.EvaluateParams, ("00_instructions", "01_grpo"), ("comparison.json",),
              doc="IFEval, IFBench, held-out verifiers, general abilities: the rows every method reports"),
    ),
))

STAGES = PIPELINE.params_classes()
