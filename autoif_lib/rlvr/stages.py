"""RLVR's stage params: one frozen dataclass per numbered notebook (``notebooks/rlvr/``).

The fields that mean what AutoIF's stage 05 means (the query pool, the held-out splits, the learnable-range probe,
the user-turn layout) carry the same names and defaults, and run through the same functions
(``autoif_lib.instruction_sets``): given the same instructions, queries, model and seed, RLVR trains and is
evaluated on the instruction set AutoIF's stage 05 makes. GRPO's own settings are TRL's ``GRPOConfig`` fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..models.spec import ModelSpec
from ..params import param
from ..pipeline import StageParams
from ..stage_fields import BenchmarkFields, InstructionSetFields, QUICKSTART_MODEL, SandboxFields, TrainFields, _check_trl


@dataclass(frozen=True)
class InstructionsParams(StageParams, SandboxFields, InstructionSetFields):
    """00_instructions: instructions with verifiers x user queries; the learnable-range probe; held-out splits.
    The instruction-set fields are AutoIF 05's (``stage_fields.InstructionSetFields``)."""

    instructions_file: str = param("", "instructions with verifiers: JSONL of seed records (``instruction`` + a "
                                       "reference ``verifier``, e.g. autoif_lib/data/seeds_cpu.jsonl) or of "
                                       "instruction records with ``functions`` (AutoIF's 04_backtranslate/"
                                       "instructions.jsonl); empty: the 36 shipped seeds with their reference verifiers",
                                   path=True)
    policy: ModelSpec = param(QUICKSTART_MODEL, "the policy GRPO trains: the probe measures its pass rate")
    temperature: float = param(0.7, "probe sampling temperature", min=0.0, max=2.0)
    top_p: float = param(0.95, "probe nucleus sampling mass", min=0.0, max=1.0)
    max_new_tokens: int = param(1024, "tokens per probe answer", min=8)
    repetition_penalty: float = param(1.0, "probe: 1.0 is off", min=0.5, max=3.0)

    def __post_init__(self):
        self._check_learnable_range()


@dataclass(frozen=True)
class GRPOParams(StageParams, TrainFields, SandboxFields):
    """01_grpo: GRPO (TRL's GRPOTrainer) on the training prompts; the reward is the response's verifier verdicts.

    Per prompt, ``num_generations`` samples; each sample's reward is its pass rate over the instruction's verifiers
    (or 1 only when all pass); advantages are rewards minus the group mean (over the group's standard deviation
    with TRL's ``scale_rewards: group``). A group whose samples all pass or all fail has zero advantages and adds no
    policy-gradient term (TRL logs the share as ``frac_reward_zero_std``)."""

    generation: ModelSpec = param(QUICKSTART_MODEL, "sampling backend: transformers (TRL generates with the policy "
                                                    "in memory) or vllm (TRL's vLLM integration, colocated, on GPU)")
    reward: Literal["pass_rate", "all_pass"] = param(
        "pass_rate", "pass_rate: the share of the instruction's verifiers that pass (IF-RLVR averages over "
                     "constraints); all_pass: 1 only when every verifier passes")
    max_prompts: int = param(0, "use at most this many training prompts, a seeded sample (0: all)", min=0)
    probe_queries: int = param(0, "pass rate before and after training: greedy answers on this many held-out queries "
                                  "per instruction (trained and held-out instructions; needs 00's "
                                  "heldout_query_fraction > 0); 0: off", min=0)
    probe_max_new_tokens: int = param(96, "tokens per probe answer (greedy)", min=8)
    grpo: dict = param({"learning_rate": 1e-6, "beta": 0.04, "num_generations": 8, "max_completion_length": 1024,
                        "temperature": 1.0, "loss_type": "grpo", "scale_rewards": "group", "num_train_epochs": 1,
                        "per_device_train_batch_size": 8, "gradient_accumulation_steps": 8, "lr_scheduler_type": "constant"},
                       "trl GRPOConfig arguments, with TRL's own field names (defaults: GRPO as DeepSeekMath §4.2 "
                       "states it: lr 1e-6, KL 0.04, length-normalised loss; batch and samples sized down). "
                       "per_device_train_batch_size counts completions, a multiple of num_generations")

    def __post_init__(self):
        _check_trl(self, "GRPOConfig", "grpo")
        self._check_launch()
        if self.generation.backend not in ("transformers", "vllm"):
            raise ValueError(f"generation.backend: transformers or vllm (TRL samples with one of them), "
                             f"got {self.generation.backend!r}")
        g = int(self.grpo.get("num_generations", 8))
        if g < 2:
            raise ValueError("grpo.num_generations: at least 2 (an advantage is relative to the group)")
        plan = self.batch_plan()
        if plan["global"] % g:
            raise ValueError(f"grpo: {plan['global']} completions per step (per device {plan['per_device']} x "
                             f"accumulation {plan['accumulation']} x {plan['world']} ranks) is not a multiple of "
                             f"num_generations {g}")


@dataclass(frozen=True)
class EvaluateParams(StageParams, SandboxFields, BenchmarkFields):
    """02_evaluate: IFEval, IFBench, held-out verifier pass rate and general abilities, base against GRPO."""

    base_model: str = param("embedded", "the untrained policy, compared with the trained checkpoint")
    checkpoints: list[str] = param(["base", "grpo"], "which to compare; a missing stage is skipped with a note",
                                   choices=("base", "grpo"))
    generation: ModelSpec = param(QUICKSTART_MODEL, "backend for evaluation generation (its model field is replaced by each checkpoint)")
    ifeval_source: str = param("builtin", "builtin (the canonical 541 prompts, offline), a JSONL path, or google/IFEval (hub)")
    ifeval_subset: int = param(0, "a fixed, seeded subset of prompts for CPU runs (0: all 541)", min=0)
    max_new_tokens: int = param(1280, "tokens per IFEval response (greedy)", min=8)
    heldout_queries: int = param(4, "queries per held-out instruction for the verifier pass rate", min=0)
    trained_queries: int = param(0, "held-out queries per trained instruction for its verifier pass rate (needs 00's "
                                    "heldout_query_fraction > 0; 0: not measured)", min=0)
    heldout_max_new_tokens: int = param(1024, "tokens per held-out response (greedy)", min=8)
