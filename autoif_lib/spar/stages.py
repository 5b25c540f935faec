"""SPaR's stage params: one frozen dataclass per notebook (``notebooks/spar/``).

Defaults follow the paper (arXiv 2412.11605) and its released code where the paper is silent;
small-model aids live in ``params/spar/quickstart.yaml`` only. The iteration stages share one
notebook per step; the pipeline sets each stage's ``iteration`` and switches off the stages of
iterations beyond ``iterations``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..models.spec import ModelSpec
from ..params import param
from ..pipeline import StageParams
from ..stage_fields import BenchmarkFields, QUICKSTART_MODEL, SandboxFields, TrainFields, _check_trl


@dataclass(frozen=True)
class IterationFields:
    iteration: int = param(1, "self-play iteration t of this stage (set by the pipeline)", min=1)
    # unkeyed: it only switches later iterations off, so 2 and 3 iterations share iterations 1-2 on disk
    iterations: int = param(3, "iterations the run goes through (paper: 3); stages of later ones are off", min=1, max=3,
                            unkeyed=True)

    @property
    def active(self) -> bool:
        return self.iteration <= self.iterations


@dataclass(frozen=True)
class PromptsParams(StageParams):
    """00_prompts: plain user requests -> complex instruction-following prompts with 1-4 constraints."""

    source: Literal["evolve", "compose", "file"] = param(
        "evolve", "evolve: the supervisor rewrites each request with constraints from the paper's taxonomy; "
                  "compose: requests joined with 1-4 AutoIF seed constraints that have sandboxed verifiers; "
                  "file: already-evolved prompts from prompts_file (paper scale: the ~43K prompts of the paper)")
    supervisor: ModelSpec = param(QUICKSTART_MODEL, "evolve: the model that writes the prompts (paper: GPT-4o-mini)")
    n_requests: int = param(0, "plain requests (or file prompts) to use, a seeded sample (0: all)", min=0)
    queries_file: str = param("", "plain requests: JSONL/ShareGPT like AutoIF's queries_file; empty uses the shipped set", path=True)
    prompts_file: str = param(
        "", "source: file: JSONL (or JSON list) of evolved prompts: a 'prompt' field (with optional 'constraints', "
            "'verifiers', 'id'), a ShareGPT/messages first user turn, or the released evolve output (its raw "
            "'response' with [[start]]...[[end]] is parsed)", path=True)
    min_chars: int = param(1, "length filter on the input texts (requests; file prompts), characters at least; "
                              "rejects are counted (the paper states no filter)", min=1)
    max_chars: int = param(0, "length filter: characters at most (0: no limit; AutoIF's query filter is 300)", min=0)
    math_code_filter: Literal["llm", "regex", "off"] = param(
        "llm", "how math and coding requests are left out. llm (paper): the evolve prompt asks the supervisor to "
               "answer None for them, counted as refused_math_or_code (compose has no model: nothing is filtered); "
               "regex: a keyword heuristic before any call (cheap, but it also rejects e.g. 'learn Python'); off")
    seeds_file: str = param("", "compose: the seed constraints with reference verifiers (seeds.jsonl format, e.g. "
                                "autoif_lib/data/seeds_cpu.jsonl, the instruction set of the CPU three-way comparison); "
                                "empty: the 36 shipped seeds", path=True)
    min_constraints: int = param(1, "compose: constraints per prompt at least", min=1, max=4)
    max_constraints: int = param(4, "compose: constraints per prompt at most (paper: main + 1-3)", min=1, max=4)
    temperature: float = param(0.7, "evolve: sampling temperature (released code: 0.7)", min=0.0, max=2.0)
    max_new_tokens: int = param(1024, "evolve: tokens per rewrite", min=16)
    heldout_fraction: float = param(0.1, "share of prompts held out for evaluation (never trained on)", min=0.0, max=0.9)

    def __post_init__(self):
        if self.max_chars and self.max_chars < self.min_chars:
            raise ValueError(f"max_chars: {self.max_chars} is below min_chars {self.min_chars}")
        if (self.source == "file") != bool(self.prompts_file):
            raise ValueError("prompts_file: needed by source: file, and only by it" if self.source == "file"
                             else f"prompts_file: set, but source is {self.source!r} (use source: file)")


@dataclass(frozen=True)
class InitParams(StageParams, TrainFields):
    """01_init: the initial actor M0 and refiner R0: the base chat model, or SFT on a supervisor's data."""

    init: Literal["base", "sft"] = param(
        "sft", "base: M0 = R0 = base_model; sft: actor SFT on supervisor responses, refiner SFT on supervisor "
               "judgments and refinements (paper)")
    supervisor: ModelSpec = param(QUICKSTART_MODEL, "sft: the stronger model that writes the initial data")
    n_prompts: int = param(0, "sft: training prompts used for the initial data (0: all)", min=0)
    max_new_tokens: int = param(1024, "sft: tokens per supervisor response / judgment / refinement", min=16)
    sft: dict = param({"learning_rate": 2e-6, "lr_scheduler_type": "constant_with_warmup", "warmup_steps": 0.1,
                       "num_train_epochs": 5, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 4,
                       "max_length": 4096},
                      "trl SFTConfig arguments for both initial SFTs (released configs: lr 2e-6, 5 epochs)")

    def __post_init__(self):
        _check_trl(self, "SFTConfig", "sft")
        self._check_launch()


@dataclass(frozen=True)
class SampleParams(StageParams, IterationFields):
    """it_sample: the actor M_t samples K responses per training prompt."""

    generation: ModelSpec = param(QUICKSTART_MODEL, "backend for sampling; its model is the current actor")
    n_samples: int = param(5, "K responses per prompt (paper: 5)", min=2)
    temperature: float = param(0.9, "sampling temperature (paper: 0.9)", min=0.0, max=2.0)
    top_p: float = param(0.9, "nucleus mass (paper: 0.9)", min=0.0, max=1.0)
    max_new_tokens: int = param(2048, "tokens per response (released code: 2048)", min=8)
    repetition_penalty: float = param(1.0, "1.0 is off", min=0.5, max=3.0)
    max_prompts: int = param(0, "prompts per iteration, a seeded sample drawn anew each iteration (0: all)", min=0)


@dataclass(frozen=True)
class JudgeFields(SandboxFields):
    """How a (prompt, response) is judged: the refiner's votes, the sandboxed verifiers, or both."""

    judge: Literal["llm", "verifiers", "both"] = param(
        "llm", "llm: the refiner's majority vote (paper); verifiers: the prompt's sandboxed verifiers, success "
               "only when every constraint passes (prompts from source: compose); both: the refiner's majority Yes "
               "and every verifier")
    generation: ModelSpec = param(QUICKSTART_MODEL, "backend for the refiner's judgments and refinements; its model is R_t")
    n_judgments: int = param(5, "votes per response (paper: 5)", min=1)
    judge_temperature: float = param(0.7, "judgment sampling temperature (paper: 0.7)", min=0.0, max=2.0)
    judge_max_new_tokens: int = param(2048, "tokens per judgment (critique, then the verdict)", min=1)
    judge_prefill: str = param("", "a primer the judgment continues (small models: 'Final Judgement: ' for a bare verdict)")
    judge_style: Literal["generate", "likelihood"] = param(
        "generate", "generate: N sampled judgments, critique then verdict (paper); likelihood (small-model aid): "
                    "P(Yes) vs P(No) after the primer, N votes drawn from it at judge_temperature, no critique text")
    max_rounds: int = param(3, "a tied vote is re-sampled, at most this many rounds in all, then dropped (released code: 3)", min=1)

    def __post_init__(self):
        # Likelihood votes score P(Yes)/P(No) with the model itself: transformers and vLLM can, a chat API cannot.
        if self.judge_style == "likelihood" and self.judge != "verifiers" and self.generation.backend == "openai":
            raise ValueError("judge_style: likelihood scores the refiner's own P(Yes)/P(No), which backend 'openai' "
                             "cannot; use backend transformers or vllm, or judge_style: generate")


@dataclass(frozen=True)
class JudgeParams(StageParams, IterationFields, JudgeFields):
    """it_judge: the refiner R_t judges every sample N times; majority vote; one negative per prompt -> a tree root."""


@dataclass(frozen=True)
class SearchFields:
    algorithm: Literal["bfs", "dfs", "greedy", "best_of_n"] = param(
        "bfs", "bfs/dfs: tree search over refinements (paper: bfs); greedy: one refinement chain; best_of_n: "
               "branch refinements of the root (the paper's search ablation)")
    branch: int = param(3, "children per expanded node (paper: 3)", min=1)
    keep: int = param(2, "bfs/dfs: children kept per layer (paper: 2)", min=1)
    max_depth: int = param(3, "refinement depth (paper: 3)", min=1)
    success: float = param(0.5, "a node succeeds when its value is above this (paper: > 0.5)", min=0.0, max=1.0)
    budget: int = param(1000, "nodes per tree at most (released code: 1000, never binding)", min=1)
    refine_temperature: float = param(0.7, "refinement sampling temperature (released code: 0.7)", min=0.0, max=2.0)
    refine_max_new_tokens: int = param(3072, "tokens per refinement (released code: 3072)", min=8)
    refine_prefill: str = param("", "a primer the refinement continues (small models: 'Refined response: [[start]]')")
    refine_retries: int = param(2, "a refinement without a readable [[start]]...[[end]] answer, or cut off at "
                                   "refine_max_new_tokens, is sampled again this many more times (released code: "
                                   "3 tries)", min=0)


@dataclass(frozen=True)
class SearchParams(StageParams, IterationFields, JudgeFields, SearchFields):
    """it_search: each root's refinements searched with the refiner as judge; the successful node is the chosen."""


@dataclass(frozen=True)
class DataParams(StageParams, IterationFields):
    """it_data: actor preference pairs and refiner RFT conversations from the trees and the votes."""

    pair_source: Literal["refined", "sampled"] = param(
        "refined", "refined: chosen = the successful refinement, rejected = its root (paper); sampled: a positive "
                   "and a negative sample of the same prompt (the paper's 'without refinement' ablation)")
    cap_refinement_chains: int = param(4000, "RFT part (a): successful refinement chains at most (released code: 4000)", min=0)
    cap_tree_positive: int = param(1500, "RFT part (b): non-unanimous majority-Yes tree judgments (1500)", min=0)
    cap_tree_negative: int = param(1000, "RFT part (c): non-unanimous majority-No tree judgments (1000)", min=0)
    cap_sample_negative: int = param(500, "RFT part (d): split-vote No judgments of actor samples (500)", min=0)
    cap_sample_positive: int = param(2500, "RFT part (e): split-vote Yes judgments of actor samples (2500)", min=0)


@dataclass(frozen=True)
class ActorParams(StageParams, IterationFields, TrainFields):
    """it_actor: DPO of M_t on the pairs, with an SFT term on chosen -> M_{t+1}."""

    dpo: dict = param({"learning_rate": 2e-7, "lr_scheduler_type": "linear", "warmup_steps": 0.1, "beta": 0.1,
                       "loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 0.1], "num_train_epochs": 1,
                       "per_device_train_batch_size": 2, "gradient_accumulation_steps": 2, "max_length": 2048},
                      "trl DPOConfig arguments (paper: beta 0.1, lr 2e-7, SFT weight 0.1 on chosen, 1 epoch)")

    def __post_init__(self):
        _check_trl(self, "DPOConfig", "dpo")
        self._check_launch()


@dataclass(frozen=True)
class RefinerParams(StageParams, IterationFields, TrainFields):
    """it_refiner: SFT of R_t on its self-consistent judgments and refinements (RFT) -> R_{t+1}."""

    retrain: bool = param(True, "false: R_{t+1} = R_t (the paper's 'refiner not retrained' ablation)")
    train_turns: Literal["all", "last"] = param(
        "all", "all: every assistant turn of a conversation carries loss, so a refinement chain also trains its "
               "parent's No judgment (the released LLaMA-Factory setup); last: only the final turn")
    sft: dict = param({"learning_rate": 2e-6, "lr_scheduler_type": "constant_with_warmup", "warmup_steps": 0.1,
                       "num_train_epochs": 5, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 4,
                       "max_length": 4096},
                      "trl SFTConfig arguments (released configs: lr 2e-6, 5 epochs)")

    def __post_init__(self):
        _check_trl(self, "SFTConfig", "sft")
        self._check_launch()


@dataclass(frozen=True)
class EvaluateParams(StageParams, JudgeFields, SearchFields, BenchmarkFields):
    """20_evaluate: per iteration, IFEval and IFBench for the actor with and without inference-time tree search,
    paired tests between actors, the refiner's judging accuracy against labels no model gives (our labelled sets
    and LLMBar, Table 2) and its refinement accuracy on held-out tasks (Table 3)."""

    iterations: int = param(3, "iterations the run went through", min=1, max=3)
    ifeval_source: str = param("builtin", "builtin (the canonical 541 prompts, offline), a JSONL path, or google/IFEval (hub)")
    ifeval_subset: int = param(0, "a fixed, seeded subset of prompts for CPU runs (0: all 541)", min=0)
    max_new_tokens: int = param(1280, "tokens per IFEval response (greedy)", min=8)
    tree_search: bool = param(True, "also evaluate with inference-time tree search (the paper's '+ tree search' row)")
    judge_eval_items: int = param(200, "labelled responses per source for the refiner's judging accuracy", min=0)
    llmbar_source: str = param("sample", "LLMBar for the refiner's judging (paper Table 2, pointwise): a folder with the "
                                         "published Dataset/LLMBar layout (or a checkout of princeton-nlp/LLMBar); "
                                         "'sample': the in-house sample, a code-path check, not Table 2; '': off")
    refine_eval_tasks: int = param(200, "held-out refinement tasks (a 00_prompts held-out prompt with verifiers and an "
                                        "M0 answer that fails them) each refiner refines once (paper Table 3: 200); 0: off",
                                   min=0)
    refine_eval_samples: int = param(5, "M0 answers per held-out prompt, from which a failing one is drawn", min=1)
