"""AutoIF's stage params: one frozen dataclass per numbered notebook (``notebooks/autoif/``).

A notebook's ``parameters`` cell mirrors its dataclass field for field (a test
keeps them in sync, ``autoif sync-notebooks`` rewrites the cells from here),
so the cell is the stage's whole interface and this file is its typed schema.
Upstreams and products are declared next door, in ``pipeline.py``.
Defaults follow the paper (arXiv 2406.13542; the released code's rules are documented
switches); small-model aids live in ``params/autoif/quickstart.yaml`` only. Parameters
cells are rendered with the quickstart recipe's values, so a notebook opened in
JupyterLab with no injection runs the quickstart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..models.spec import ModelSpec
from ..params import param
from ..pipeline import StageParams
from ..stage_fields import BenchmarkFields, InstructionSetFields, QUICKSTART_MODEL, SandboxFields, TrainFields, _check_trl  # noqa: F401  (shared groups)



@dataclass(frozen=True)
class EnvironmentParams(StageParams):
    """00_environment: backends and devices found, the model answering a few prompts, throughput."""

    supervisor: ModelSpec = param(QUICKSTART_MODEL, "generation model: backend + hub id / local path ('embedded' is the shipped SmolLM2)")
    n_prompts: int = param(3, "how many demo prompts the model answers", min=1, max=20)
    max_new_tokens: int = param(64, "new tokens per demo answer", min=1)
    temperature: float = param(0.0, "sampling temperature for the demo answers (0 is greedy)", min=0.0, max=2.0)
    repetition_penalty: float = param(1.0, "1.0 is off; the quickstart uses 1.2 to keep a 135M model out of loops", min=0.5, max=3.0)
    throughput_batch: int = param(8, "prompts in the throughput measurement", min=1)
    throughput_tokens: int = param(32, "new tokens per prompt in the throughput measurement", min=1)


@dataclass(frozen=True)
class AugmentParams(StageParams):
    """01_augment: self-instruct new verifiable instructions from the seeds."""

    supervisor: ModelSpec = param(QUICKSTART_MODEL, "model that proposes instructions")
    seeds_file: str = param("", "seed instructions (.txt one per line, or .jsonl); empty uses the 36 shipped seeds", path=True)
    n_calls: int = param(100, "K prompts sent to the model (paper: 100); 0: no new instructions, the seeds only", min=0)
    instructions_per_call: int = param(50, "new instructions asked for per call (the released prompt: 50)", min=1, max=100)
    n_examples: int = param(36, "seed instructions shown per call, a seeded sample (the released prompt shows all 36)", min=1)
    temperature: float = param(0.9, "sampling temperature", min=0.0, max=2.0)
    top_p: float = param(0.95, "nucleus sampling mass", min=0.0, max=1.0)
    max_new_tokens: int = param(2048, "tokens per call", min=16)
    repetition_penalty: float = param(1.0, "1.0 is off; small models need ~1.15 to stop repeating one line", min=0.5, max=3.0)
    near_dup_threshold: float = param(0.85, "drop an instruction this similar to an earlier one (0-1)", min=0.0, max=1.0)
    max_new_instructions: int = param(0, "cap on new instructions kept (0: no cap)", min=0)


@dataclass(frozen=True)
class VerifiersParams(StageParams):
    """02_verifiers: K samples per instruction of an evaluate() function plus test cases."""

    supervisor: ModelSpec = param(QUICKSTART_MODEL, "model that writes verification functions")
    n_samples: int = param(8, "K samples per instruction (the released sample data: 8); 0: none, the reference verifiers only", min=0)
    cases_per_sample: int = param(3, "test cases asked for per sample (the released prompt: 3)", min=1, max=50)
    max_instructions: int = param(0, "use at most this many instructions: a seeded mix of seeds and new ones (0: all)", min=0)
    temperature: float = param(0.7, "sampling temperature", min=0.0, max=2.0)
    top_p: float = param(0.95, "nucleus sampling mass", min=0.0, max=1.0)
    max_new_tokens: int = param(1024, "tokens per sample", min=32)
    repetition_penalty: float = param(1.0, "1.0 is off (a penalty corrupts code: it punishes repeated keywords)", min=0.5, max=3.0)
    add_reference_verifiers: bool = param(
        False, "add the seeds' hand-written verifiers and cases to the pool (labelled origin: reference)")

    def __post_init__(self):
        if self.n_samples == 0 and not self.add_reference_verifiers:
            raise ValueError("n_samples: 0 writes no verifier; it needs add_reference_verifiers: true")


@dataclass(frozen=True)
class CrossValidateParams(StageParams, SandboxFields):
    """03_cross_validate: run every function on every case in the sandbox; keep what agrees."""

    preset: Literal["paper", "reference", "none", "custom"] = param(
        "paper", "paper: thresholds of the paper; reference: the released code's stricter rules; "
        "none: no filter, every case and every function that compiles and loads kept (an instruction still needs one of each; "
        "the paper's 'w/o cross-verification' ablation); custom: the fields below")
    min_functions_before: int = param(1, "custom: functions needed before filtering (reference: 3)", min=1)
    min_cases_before: int = param(1, "custom: cases needed before filtering (reference: 10)", min=1)
    case_rule: Literal["majority", "any", "always"] = param(
        "majority", "custom: keep a case by majority of functions, if any agrees, or always (preset none)")
    case_agreement: float = param(0.5, "custom: majority rule keeps a case when more than this fraction agrees", min=0.0, max=1.0)
    fn_accuracy: float = param(0.5, "custom: keep a function when its accuracy (on fn_accuracy_on) is above this", min=0.0, max=1.0)
    fn_accuracy_on: Literal["all_cases", "kept_cases"] = param(
        "all_cases", "custom: score a function on all cases (paper) or on the kept cases only (reference)")
    fn_accuracy_inclusive: bool = param(False, "custom: accept accuracy equal to the threshold (reference: true, at 0.8)")
    min_functions_after: int = param(1, "custom: functions an instruction keeps at least", min=1)
    min_cases_after: int = param(1, "custom: cases an instruction keeps at least", min=1)

    def __post_init__(self):
        if self.preset != "custom":
            base = CrossValidateParams.__dataclass_fields__
            changed = [f for f in ("min_functions_before", "min_cases_before", "case_rule", "case_agreement",
                                   "fn_accuracy", "fn_accuracy_on", "fn_accuracy_inclusive", "min_functions_after", "min_cases_after")
                       if getattr(self, f) != base[f].default]
            if changed:
                raise ValueError(f"{', '.join(changed)}: only used with preset: custom (preset is {self.preset!r})")


@dataclass(frozen=True)
class BacktranslateParams(StageParams):
    """04_backtranslate: write instructions back from kept functions; drop contradictions (NLI)."""

    supervisor: ModelSpec = param(QUICKSTART_MODEL, "model that back-translates (and judges, with nli_backend llm)")
    backtranslate: bool = param(True, "false: skip back-translation and NLI, no model calls; 03's instructions pass through "
                                      "unchanged (the paper's 'w/o back-translation' ablation)")
    n_functions: int = param(3, "functions back-translated per instruction, most accurate first", min=1)
    temperature: float = param(0.0, "sampling temperature for back-translation", min=0.0, max=2.0)
    max_new_tokens: int = param(512, "tokens per back-translation reply", min=16)
    repetition_penalty: float = param(1.0, "1.0 is off", min=0.5, max=3.0)
    nli_backend: Literal["llm", "cross_encoder"] = param(
        "cross_encoder", "llm: the supervisor judges entailment; cross_encoder: an NLI classifier (nli_model)")
    nli_model: str = param("MoritzLaurer/mDeBERTa-v3-base-xnli-multilingual-nli-2mil7",
                           "cross_encoder: hub id or folder of an NLI classifier (the released code's mDeBERTa)")
    max_contradictions: int = param(0, "drop an instruction with more contradicting back-translations than this", min=0)
    drop_unparsed: bool = param(False, "drop instructions whose back-translation cannot be read (reference: true)")

    def __post_init__(self):
        if self.nli_backend == "cross_encoder" and not self.nli_model:
            raise ValueError("nli_model: required when nli_backend is cross_encoder")


@dataclass(frozen=True)
class ResponsesParams(StageParams, SandboxFields, InstructionSetFields):
    """05_responses: pair kept instructions with user queries and sample K responses each.

    Optional before that: a probe of the policy's pass rate per instruction (``probe_samples``), keeping
    the instructions in ``learnable_range`` (ones the model never or always satisfies teach nothing), and a
    held-out share of the queries that no training pair uses (stages 10-11 evaluate on them). The instruction-set
    fields are the shared group (``stage_fields.InstructionSetFields``)."""

    supervisor: ModelSpec = param(QUICKSTART_MODEL, "model that answers (the supervision model)")
    probe_model: str = param("", "model whose pass rate the probe measures (the policy: 08's base_model); empty: the supervisor")
    responses_per_query: int = param(8, "K responses per (instruction, query) (paper: 8)", min=1)
    temperature: float = param(0.7, "sampling temperature", min=0.0, max=2.0)
    top_p: float = param(0.95, "nucleus sampling mass", min=0.0, max=1.0)
    max_new_tokens: int = param(1024, "tokens per response", min=8)
    repetition_penalty: float = param(1.0, "1.0 is off", min=0.5, max=3.0)

    def __post_init__(self):
        self._check_learnable_range()


@dataclass(frozen=True)
class VerifyScoreParams(StageParams, SandboxFields):
    """06_verify_score: execution pass rates, then an LLM quality judgment 0-10."""

    supervisor: ModelSpec = param(QUICKSTART_MODEL, "judge model")
    pass_threshold: float = param(0.5, "keep a response whose pass rate is above this (paper 0.5; its Fig. 4 finds 0.8 best)", min=0.0, max=1.0)
    pass_inclusive: bool = param(False, "accept a pass rate equal to the threshold")
    run_judge: bool = param(True, "LLM quality judgment (false reproduces the 'w/o query quality' ablation)")
    judge_style: Literal["reasoned", "score_only"] = param(
        "reasoned", "reasoned: analysis then 'Score: N' (paper); score_only: reply primed with 'Score: ' (small models)")
    n_judgments: int = param(1, "judgments per response, averaged", min=1)
    judge_temperature: float = param(0.0, "judge sampling temperature (use > 0 with n_judgments > 1)", min=0.0, max=2.0)
    judge_max_new_tokens: int = param(512, "tokens per judgment (a score_only judge needs ~4)", min=1)
    score_min: int = param(1, "lowest score on the judge's scale: 1 (paper: 1-10) or 0 (released code: 0-10)", choices=(0, 1))
    score_threshold: float = param(8.0, "score threshold (paper and released code: 8)", min=0.0, max=10.0)
    score_inclusive: bool = param(True, "keep a score equal to the threshold: true = 'not below 8' (paper), false = '> 8' (released code)")


@dataclass(frozen=True)
class ExportParams(StageParams, SandboxFields):
    """07_export: SFT and DPO data for TRL and LLaMA-Factory, a held-out split and a dataset card."""

    chosen_min_pass: float = param(0.5, "DPO chosen: pass rate above this (paper: > 0.5)", min=0.0, max=1.0)
    chosen_inclusive: bool = param(False, "chosen may equal chosen_min_pass: false = '> 0.5' (paper), true = '>= 0.5' (released code)")
    rejected_max_pass: float = param(0.0, "DPO rejected: pass rate at most this (paper: 0)", min=0.0, max=1.0)
    max_chosen_per_prompt: int = param(2, "distinct chosen responses sampled per prompt (released code: 2)", min=1)
    max_rejected_per_prompt: int = param(2, "distinct rejected responses sampled per prompt (released code: 2)", min=1)
    max_pairs_per_prompt: int = param(0, "cap on pairs per prompt after that (0: chosen x rejected, at most 4 by default)", min=0)
    instruction_level_pairs: bool = param(True, "also add instruction-level pairs: a test case the kept functions pass (> 0.5) vs one they all fail (paper)")
    max_instruction_pairs: int = param(2, "instruction-level pairs per instruction at most", min=1)
    online_prompts_from: Literal["sft", "pairs"] = param(
        "sft", "online-DPO prompts: the user turns of the SFT data, i.e. after the function and judge filters (paper "
               "§3.4), or every (instruction, query) pair of stage 05 (this workbench before round two)")


@dataclass(frozen=True)
class SFTParams(StageParams, TrainFields):
    """08_sft: supervised fine-tuning on the verified SFT data with TRL's SFTTrainer."""

    max_examples: int = param(0, "use at most this many SFT examples (0: all)", min=0)
    sft: dict = param({"learning_rate": 7e-6, "lr_scheduler_type": "linear", "warmup_steps": 20, "weight_decay": 0.1,
                       "num_train_epochs": 3, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 8,
                       "max_length": 8192, "adam_beta1": 0.9, "adam_beta2": 0.95},
                      "trl SFTConfig arguments, with TRL's own field names (paper App. B; loss on the response only)")

    def __post_init__(self):
        _check_trl(self, "SFTConfig", "sft")
        self._check_launch()


@dataclass(frozen=True)
class DPOParams(StageParams, TrainFields):
    """09_dpo: offline DPO on the verifier-ranked pairs with TRL's DPOTrainer."""

    init_from: Literal["sft", "base"] = param("sft", "start from the SFT checkpoint (paper) or the base model")
    max_pairs: int = param(0, "use at most this many pairs (0: all)", min=0)
    dpo: dict = param({"learning_rate": 5e-7, "lr_scheduler_type": "cosine", "warmup_steps": 0.1, "beta": 0.3,
                       "num_train_epochs": 2, "per_device_train_batch_size": 1, "gradient_accumulation_steps": 8,
                       "max_length": 4096},
                      "trl DPOConfig arguments, with TRL's own field names")

    def __post_init__(self):
        _check_trl(self, "DPOConfig", "dpo")
        self._check_launch()


@dataclass(frozen=True)
class OnlineDPOParams(StageParams, TrainFields, SandboxFields):
    """10_online_dpo: the policy samples, the verification functions score, DPO trains; N iterations.

    Each iteration: K samples per prompt from the current policy, pass rates by execution, pairs
    separated by the verifiers (chosen > 0.5, rejected = 0), DPO on those pairs only. A prompt whose
    samples pass alike gives no pair, and an iteration without pairs takes no optimiser step (TRL's
    OnlineDPOTrainer, which ranks two samples even on a tie, is not used for that reason).
    """

    init_from: Literal["sft", "dpo", "base"] = param("sft", "sample from and train this model: SFT (paper: online and offline DPO are separate branches from SFT), offline DPO, or base")
    generation: ModelSpec = param(QUICKSTART_MODEL, "backend for on-policy sampling (vllm on GPU nodes); its model is the current policy")
    iterations: int = param(2, "sample-score-train iterations (the paper does not give N)", min=1)
    samples_per_prompt: int = param(8, "K samples per prompt", min=2)
    temperature: float = param(0.8, "on-policy sampling temperature (paper: 0.8)", min=0.0, max=2.0)
    max_new_tokens: int = param(1024, "tokens per on-policy sample", min=4)
    max_prompts: int = param(0, "use at most this many prompts (0: all), stratified by instruction: the instructions take "
                                "turns in a seeded order, so a cap covers as many of them as it can", min=0)
    ref_model: Literal["init", "previous"] = param("init", "DPO reference of every iteration: the initial policy, fixed "
                                                           "(paper Eq. 2: pi_ref = pi_SFT), or the iteration's starting "
                                                           "policy (iterative DPO; this workbench before round two)")
    chosen_min_pass: float = param(0.5, "chosen needs a pass rate above this (paper: > 0.5)", min=0.0, max=1.0)
    chosen_inclusive: bool = param(False, "chosen may equal chosen_min_pass (released code: >= 0.5)")
    rejected_max_pass: float = param(0.0, "rejected needs a pass rate at most this (paper: 0)", min=0.0, max=1.0)
    max_chosen_per_prompt: int = param(2, "distinct chosen samples per prompt (released code: 2)", min=1)
    max_rejected_per_prompt: int = param(2, "distinct rejected samples per prompt (released code: 2)", min=1)
    probe_queries: int = param(0, "pass rate over training: before the first and after every iteration, greedy answers on "
                                  "this many held-out queries per instruction (trained and held-out instructions; needs 05's "
                                  "heldout_query_fraction > 0); 0: off", min=0)
    probe_max_new_tokens: int = param(96, "tokens per probe answer (greedy)", min=8)
    online: dict = param({"learning_rate": 5e-7, "lr_scheduler_type": "cosine", "warmup_steps": 0.1, "beta": 0.3,
                          "num_train_epochs": 1, "per_device_train_batch_size": 1, "gradient_accumulation_steps": 8,
                          "max_length": 4096},
                         "trl DPOConfig arguments for each iteration's DPO step")

    def __post_init__(self):
        _check_trl(self, "DPOConfig", "online")
        self._check_launch()


@dataclass(frozen=True)
class EvaluateParams(StageParams, SandboxFields, BenchmarkFields):
    """11_evaluate: IFEval (four metrics, per type), IFBench and held-out verifier pass rate per checkpoint."""

    base_model: str = param("embedded", "the untrained policy, compared with the trained checkpoints")
    checkpoints: list[str] = param(["base", "sft", "dpo", "online_dpo"], "which to compare; a missing stage is skipped with a note",
                                   choices=("base", "sft", "dpo", "online_dpo"))
    generation: ModelSpec = param(QUICKSTART_MODEL, "backend for evaluation generation (its model field is replaced by each checkpoint)")
    ifeval_source: str = param("builtin", "builtin (the canonical 541 prompts, offline), a JSONL path, or google/IFEval (hub)")
    ifeval_subset: int = param(0, "a fixed, seeded subset of prompts for CPU runs (0: all 541)", min=0)
    max_new_tokens: int = param(1280, "tokens per IFEval response (greedy)", min=8)
    heldout_queries: int = param(4, "queries per held-out instruction for the verifier pass rate (from 05's held-out "
                                    "queries when it holds some out)", min=0)
    trained_queries: int = param(0, "held-out queries per trained instruction for its verifier pass rate (needs 05's "
                                    "heldout_query_fraction > 0; 0: not measured)", min=0)
    heldout_max_new_tokens: int = param(1024, "tokens per held-out response (greedy; short caps make 'exactly 100 words' unsatisfiable)", min=8)
