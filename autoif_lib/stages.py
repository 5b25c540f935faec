"""The stage registry: one frozen params dataclass per numbered notebook.

A notebook's ``parameters`` cell mirrors its dataclass field for field (a test
keeps them in sync, ``autoif sync-notebooks`` rewrites the cells from here),
so the cell is the stage's whole interface and this file is its typed schema.
Defaults are the quickstart values: a notebook opened in JupyterLab with no
injection runs on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .config import param
from .models.spec import ModelSpec


@dataclass(frozen=True)
class StageParams:
    """Fields every stage has. ``params_file``/``run_dir`` are set by the runner."""

    params_file: str = param("params/quickstart.yaml", "recipe this run belongs to (relative to the repo root)")
    run_dir: str = param("", "run folder, set by the runner; empty means derived from params_file")
    seed: int = param(0, "seeds python, numpy, torch and sampling")


RUNNER_KEYS = ("params_file", "run_dir")  # never written in a recipe


@dataclass(frozen=True)
class EnvironmentParams(StageParams):
    """00_environment: backends and devices found, the model answering a few prompts, throughput."""

    supervisor: ModelSpec = param(ModelSpec(), "generation model: backend + hub id / local path ('embedded' is the shipped SmolLM2)")
    n_prompts: int = param(3, "how many demo prompts the model answers", min=1, max=20)
    max_new_tokens: int = param(64, "new tokens per demo answer", min=1)
    temperature: float = param(0.0, "sampling temperature for the demo answers (0 is greedy)", min=0.0)
    repetition_penalty: float = param(1.2, "keeps a 135M model out of loops", min=0.5, max=3.0)
    throughput_batch: int = param(8, "prompts in the throughput measurement", min=1)
    throughput_tokens: int = param(32, "new tokens per prompt in the throughput measurement", min=1)


@dataclass(frozen=True)
class SandboxFields:
    """How generated verification code is executed (see autoif_lib.sandbox)."""

    exec_timeout_s: float = param(2.0, "wall-clock limit per verifier call, seconds", min=0.05, max=60)
    exec_memory_mb: int = param(512, "address-space cap of a verifier process, MiB", min=64)
    non_bool: Literal["strict", "coerce"] = param(
        "strict", "strict: only real bools count; coerce: 'True'/'False' strings and 0/1 are accepted")


@dataclass(frozen=True)
class AugmentParams(StageParams):
    """01_augment: self-instruct new verifiable instructions from the seeds."""

    supervisor: ModelSpec = param(ModelSpec(), "model that proposes instructions")
    seeds_file: str = param("", "seed instructions (.txt one per line, or .jsonl); empty uses the 36 shipped seeds", path=True)
    n_calls: int = param(4, "K prompts sent to the model (paper: 100)", min=1)
    instructions_per_call: int = param(10, "new instructions asked for per call", min=1, max=100)
    n_examples: int = param(8, "seed instructions shown per call (a seeded sample)", min=1)
    temperature: float = param(0.9, "sampling temperature", min=0.0)
    top_p: float = param(0.95, "nucleus sampling mass", min=0.0, max=1.0)
    max_new_tokens: int = param(320, "tokens per call", min=16)
    repetition_penalty: float = param(1.15, "keeps a small model from repeating one line", min=0.5, max=3.0)
    near_dup_threshold: float = param(0.85, "drop an instruction this similar to an earlier one (0-1)", min=0.0, max=1.0)
    max_new_instructions: int = param(0, "cap on new instructions kept (0: no cap)", min=0)


@dataclass(frozen=True)
class VerifiersParams(StageParams):
    """02_verifiers: K samples per instruction of an evaluate() function plus test cases."""

    supervisor: ModelSpec = param(ModelSpec(), "model that writes verification functions")
    n_samples: int = param(2, "K samples per instruction (paper's sample data: 8)", min=1)
    cases_per_sample: int = param(4, "test cases asked for per sample", min=1, max=50)
    max_instructions: int = param(24, "use at most this many instructions, seeds first (0: all)", min=0)
    temperature: float = param(0.7, "sampling temperature", min=0.0)
    top_p: float = param(0.95, "nucleus sampling mass", min=0.0, max=1.0)
    max_new_tokens: int = param(320, "tokens per sample", min=32)
    repetition_penalty: float = param(1.1, "repetition penalty", min=0.5, max=3.0)
    add_reference_verifiers: bool = param(
        True, "add the seeds' hand-written verifiers and cases to the pool (labelled origin: reference)")


@dataclass(frozen=True)
class CrossValidateParams(StageParams, SandboxFields):
    """03_cross_validate: run every function on every case in the sandbox; keep what agrees."""

    preset: Literal["paper", "reference", "custom"] = param(
        "paper", "paper: thresholds of the paper; reference: the released code's stricter rules; custom: the fields below")
    min_functions_before: int = param(1, "custom: functions needed before filtering (reference: 3)", min=1)
    min_cases_before: int = param(1, "custom: cases needed before filtering (reference: 10)", min=1)
    case_rule: Literal["majority", "any"] = param("majority", "custom: keep a case by majority of functions or if any agrees")
    case_agreement: float = param(0.5, "custom: majority rule keeps a case when more than this fraction agrees", min=0.0, max=1.0)
    fn_accuracy: float = param(0.5, "custom: keep a function when its accuracy on kept cases is above this", min=0.0, max=1.0)
    fn_accuracy_inclusive: bool = param(False, "custom: accept accuracy equal to the threshold (reference: true, at 0.8)")
    min_functions_after: int = param(1, "custom: functions an instruction keeps at least", min=1)
    min_cases_after: int = param(1, "custom: cases an instruction keeps at least", min=1)

    def __post_init__(self):
        if self.preset != "custom":
            base = CrossValidateParams.__dataclass_fields__
            changed = [f for f in ("min_functions_before", "min_cases_before", "case_rule", "case_agreement",
                                   "fn_accuracy", "fn_accuracy_inclusive", "min_functions_after", "min_cases_after")
                       if getattr(self, f) != base[f].default]
            if changed:
                raise ValueError(f"{', '.join(changed)}: only used with preset: custom (preset is {self.preset!r})")


@dataclass(frozen=True)
class BacktranslateParams(StageParams):
    """04_backtranslate: write instructions back from kept functions; drop contradictions (NLI)."""

    supervisor: ModelSpec = param(ModelSpec(), "model that back-translates (and judges, with nli_backend llm)")
    n_functions: int = param(3, "functions back-translated per instruction, most accurate first", min=1)
    temperature: float = param(0.0, "sampling temperature for back-translation", min=0.0)
    max_new_tokens: int = param(160, "tokens per back-translation reply", min=16)
    repetition_penalty: float = param(1.1, "repetition penalty", min=0.5, max=3.0)
    nli_backend: Literal["llm", "cross_encoder"] = param(
        "llm", "llm: the supervisor judges entailment; cross_encoder: an NLI classifier (nli_model)")
    nli_model: str = param("", "cross_encoder: hub id or folder, e.g. MoritzLaurer/mDeBERTa-v3-base-xnli-multilingual-nli-2mil7")
    max_contradictions: int = param(0, "drop an instruction with more contradicting back-translations than this", min=0)
    drop_unparsed: bool = param(False, "drop instructions whose back-translation cannot be read (reference: true)")

    def __post_init__(self):
        if self.nli_backend == "cross_encoder" and not self.nli_model:
            raise ValueError("nli_model: required when nli_backend is cross_encoder")


STAGES: dict[str, type] = {
    "00_environment": EnvironmentParams,
    "01_augment": AugmentParams,
    "02_verifiers": VerifiersParams,
    "03_cross_validate": CrossValidateParams,
    "04_backtranslate": BacktranslateParams,
}
