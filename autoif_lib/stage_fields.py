"""Param groups several methods' stages share: sandbox execution, training placement, TRL dicts.

A stage's params dataclass inherits the groups it uses (``class SearchParams(StageParams, SandboxFields)``),
so the same names mean the same thing in every pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .models.spec import ModelSpec
from .params import param

# The embedded model, batched for CPU: the default model of every stage that generates.
QUICKSTART_MODEL = ModelSpec(batch_size=16)


@dataclass(frozen=True)
class SandboxFields:
    """How generated verification code is executed (see autoif_lib.sandbox)."""

    exec_timeout_s: float = param(2.0, "wall-clock limit per verifier call, seconds", min=0.05, max=60)
    exec_memory_mb: int = param(512, "address-space cap of a verifier process, MiB", min=64)
    non_bool: Literal["strict", "coerce"] = param(
        "strict", "strict: only real bools count; coerce: 'True'/'False' strings and 0/1 are accepted")


_LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"}


def _check_trl(obj, cls_name: str, key: str) -> None:
    """A TRL config dict: real field names, values of the fields' types (converted in place)."""
    import difflib

    from .trl_fields import convert, unknown_keys

    kwargs = getattr(obj, key)
    bad, fields = unknown_keys(cls_name, kwargs)
    if bad:
        close = difflib.get_close_matches(bad[0], sorted(fields or ()), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{key}.{bad[0]}: not a field of trl {cls_name}{hint}")
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
    num_gpus: int = param(0, "GPUs per machine. 0 or 1 (and one machine): train inside the kernel; more: accelerate launch with DeepSpeed", min=0)
    num_machines: int = param(1, "machines in the accelerate launch (multi-node: run the same stage on every node)", min=1)
    machine_rank: int = param(0, "this machine's rank in a multi-node launch (0: from MACHINE_RANK / SLURM_NODEID if set)", min=0)
    main_process_ip: str = param("", "multi-node: address of machine 0 (empty: from MASTER_ADDR)")
    main_process_port: int = param(29500, "multi-node: port on machine 0", min=1, max=65535)
    deepspeed_config: str = param("params/accelerate/zero3.json", "DeepSpeed config for accelerate launches", path=True)

    def _check_launch(self):
        if self.machine_rank >= self.num_machines:
            raise ValueError(f"machine_rank: must be < num_machines ({self.num_machines}), got {self.machine_rank}")
