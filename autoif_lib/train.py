"""Training: the engine that runs a training kind with TRL, in-process or over several ranks.

One entry point serves both: the notebooks build a :class:`TrainJob` and either
call :func:`run_job` in the kernel (CPU, one GPU) or write it to ``job.json`` and
start one process per rank (several GPUs, or CPU processes on gloo; DeepSpeed ZeRO-3
by default; see :mod:`autoif_lib.distributed`)::

    python -m torch.distributed.run --standalone --nnodes 1 --nproc_per_node 8 \\
        -m autoif_lib.train outputs/store/autoif/08_sft/<key>/job.json

Every rank saves through the trainer (ZeRO-3 gathers the 16-bit weights on save), and
the checkpoint on disk is compared with the weights in memory before the stage goes on.

TRL settings pass straight through: ``trl_args`` holds the kind's TRL config keyword arguments
(``SFTConfig``, ``DPOConfig``) with TRL's own field names.

Kinds: ``sft`` and ``dpo`` are the engine's own; a method registers more in its declaration
(``methods.Method.training_kinds``: kind -> ``"module:function"``), each a ``function(job) -> result`` that
reads its own settings from ``job.options`` and may build on this module's pieces (``train_dpo``,
``preference_records``, ``_copy_model``). AutoIF's online DPO is one (``autoif_lib.autoif.training``).

SFT trains on the response only: records are TRL prompt/completion pairs, so the
system and user tokens carry no loss (``completion_only_loss``).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from . import distributed, io, methods

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


@dataclass
class TrainJob:
    kind: str  # sft | dpo | a kind a method registers (``kinds()``)
    model: str  # hub id or local folder of the initial policy
    train_file: str  # JSONL: prompt/completion (sft), prompt/chosen/rejected (dpo), the kind's own records otherwise
    output_dir: str
    trl_args: dict = field(default_factory=dict)
    lora: dict | None = None  # peft LoraConfig kwargs; None = full fine-tuning
    seed: int = 0
    chat_template: str = ""  # for a base model without one (ModelSpec.chat_template's forms); saved with the model
    options: dict = field(default_factory=dict)  # the kind's own settings (a registered kind parses them)
    # several ranks
    deepspeed_config: str = ""  # ZeRO config file for multi-process runs ("" : plain DDP)
    dist_timeout_s: float = 6 * 3600.0  # every collective's timeout; rank 0's sampling waits are polled, not collective
    verify_save: bool = True  # compare the saved checkpoint with the in-memory weights

    def save(self, path: str | Path) -> Path:
        return io.write_json(path, dataclasses.asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> "TrainJob":
        return cls(**io.read_json(path))


# ---------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------

def _device_defaults(trl_args: dict, job: TrainJob | None = None) -> dict:
    """CPU-safe defaults, overridable by the recipe: no reports, bf16 only where it is fast. Several ranks:
    the process group formed by :func:`distributed.init` (its timeout) and the job's DeepSpeed config."""
    import torch

    from .models.backends import cpu_supports_bf16

    out = {"report_to": "none", "logging_steps": 1, "save_strategy": "no", **trl_args}
    sharded = bool(job and job.deepspeed_config)  # set for launched jobs only (job_for_stage)
    if sharded:
        out["deepspeed"] = job.deepspeed_config
    if distributed.world_size() > 1:
        out["accelerator_config"] = {"use_configured_state": True}
        out.setdefault("ddp_timeout", int(job.dist_timeout_s) if job else 21600)
    if not torch.cuda.is_available():
        if not sharded:  # DeepSpeed on CPU ranks runs with use_cpu off (accelerate's CPU mode is DDP only)
            out.setdefault("use_cpu", True)
        if out.get("bf16", True) and not cpu_supports_bf16():
            out["bf16"] = False
        # Checkpointing recomputes activations and disables the KV cache during on-policy
        # generation: 3-4x slower on CPU for a 135M model that fits in memory anyway.
        out.setdefault("gradient_checkpointing", False)
    return out


def _lora(lora: dict | None):
    if not lora:
        return None
    from peft import LoraConfig

    return LoraConfig(task_type="CAUSAL_LM", **lora)


def _save_final(trainer, out: Path, job: TrainJob) -> tuple[Path, dict | None]:
    """Save a plain checkpoint (LoRA merged) with its tokenizer: every later stage can load it.

    Every rank calls the trainer's save: under ZeRO-3 the parameters are sharded (each rank holds a slice,
    the module's tensors are empty), and the trainer gathers the 16-bit weights for rank 0 to write. The
    copy on disk is then checked against the weights in memory (``verify_save``)."""
    final = out / "model"
    stats = weight_stats(trainer.model) if job.verify_save and not job.lora else None  # collective when sharded
    if job.lora:
        adapter = out / "adapter"
        trainer.save_model(str(adapter))
        distributed.barrier()
        if distributed.is_main():  # merged in a fresh process: no ZeRO context, nothing sharded
            import subprocess

            subprocess.run([sys.executable, "-m", "autoif_lib.train", "--merge-lora", job.model, str(adapter),
                            str(final)], check=True)
    else:
        trainer.save_model(str(final))
    if distributed.is_main():
        trainer.processing_class.save_pretrained(final)
        if stats is not None:
            io.write_json(out / "weight_stats.json", stats)  # the in-memory weights the checkpoint was checked against
            verify_saved(stats, final)
    distributed.barrier()
    return final, stats


def merge_lora(base: str, adapter: str | Path, final: str | Path) -> Path:
    """Base weights + a saved LoRA adapter -> a plain checkpoint (fp32, as TRL trained it)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from .models.backends import resolve_model_path

    model = AutoModelForCausalLM.from_pretrained(resolve_model_path(base), dtype=torch.float32)
    PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().save_pretrained(final)
    return Path(final)


def _sums(t, chunk: int = 1 << 24):
    """[sum, sum |x|, sum x^2] in float64, a chunk at a time (a 70B model's embedding would be 8 GB in float64)."""
    import torch

    flat = t.detach().reshape(-1)
    acc = torch.zeros(3, dtype=torch.float64, device=flat.device)
    for i in range(0, flat.numel(), chunk):
        x = flat[i:i + chunk].double()
        acc += torch.stack([x.sum(), x.abs().sum(), x.square().sum()])
    return acc


def is_sharded(model) -> bool:
    """ZeRO-3 partitions parameters: each keeps this rank's slice as ``ds_tensor``."""
    return any(hasattr(p, "ds_tensor") for p in model.parameters())


def weight_stats(model) -> dict[str, list[float]]:
    """Per parameter: [sum, sum of |x|, sum of x^2] over the full tensor, in float64. Under ZeRO-3 each rank
    holds a zero-padded slice (``ds_tensor``); the slices' sums add up over the ranks to the full tensor's."""
    import torch

    names, rows, sharded = [], [], False
    for name, p in model.named_parameters():
        t = getattr(p, "ds_tensor", None)
        sharded |= t is not None
        names.append(name)
        rows.append(_sums(t if t is not None else p.data))
    v = torch.stack(rows)
    if sharded and distributed.world_size() > 1:
        import torch.distributed as dist

        dist.all_reduce(v)
    return {n: [float(a) for a in r] for n, r in zip(names, v.cpu().tolist())}


def file_weight_stats(folder: str | Path) -> dict[str, list[float]]:
    """The same statistics read from a saved checkpoint's safetensors files (tensor by tensor)."""
    from safetensors import safe_open

    out = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for k in st.keys():
                out[k] = [float(v) for v in _sums(st.get_tensor(k))]
    return out


class SaveMismatch(RuntimeError):
    pass


def verify_saved(stats: dict[str, list[float]], folder: str | Path, rel: float = 1e-6) -> None:
    """Every trained tensor is on disk with the same sums as in memory. Both sides sum in float64 over values of
    the same dtype, so only the summation order differs (relative 1e-6 is far above that, far below any real
    difference); an empty (sharded) tensor or a missing one fails."""
    disk = file_weight_stats(folder)
    bad = []
    for name, mem in stats.items():
        got = disk.get(name)
        if got is None:
            bad.append(f"{name}: not in the checkpoint")
        elif any(abs(a - b) > rel * max(abs(a), abs(b), 1e-12) + 1e-9 for a, b in zip(mem, got)):
            bad.append(f"{name}: in memory sum/abs/sq {mem}, on disk {got}")
    if bad:
        raise SaveMismatch(f"the checkpoint in {folder} differs from the trained weights ({len(bad)} of {len(stats)} "
                           "tensors), e.g. " + "; ".join(bad[:3]))


def _release(trainer) -> None:
    """Free the trainer's memory (optimizer, DeepSpeed engine, cached blocks) before a generation engine
    or the next iteration's trainer needs it."""
    import gc

    import torch

    try:
        trainer.accelerator.free_memory()
    except Exception:  # noqa: BLE001 - best effort: nothing depends on it but memory
        pass
    trainer.model = trainer.model_wrapped = trainer.optimizer = trainer.lr_scheduler = None
    # The ZeRO-3 config stays registered with transformers after training: every later from_pretrained in this
    # process (rank 0 loading the new policy to sample from it) would build the model under zero.Init, a
    # collective the other ranks never join, and hang. The next trainer registers its own again.
    from accelerate.state import AcceleratorState
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    AcceleratorState._reset_state(reset_partial_state=False)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _log_history(trainer) -> list[dict]:
    return [dict(h) for h in trainer.state.log_history]


def _dataset(path: str, columns: Sequence[str]):
    import datasets

    ds = datasets.load_dataset("json", data_files=path, split="train")
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; has {ds.column_names}")
    return ds.select_columns(list(columns))


def preference_records(pairs: Sequence[dict]) -> list[dict]:
    """Pairs (``prompt``/``chosen``/``rejected`` strings) in TRL's conversational preference format."""
    return [{"prompt": [{"role": "user", "content": p["prompt"]}],
             "chosen": [{"role": "assistant", "content": p["chosen"]}],
             "rejected": [{"role": "assistant", "content": p["rejected"]}],
             "level": p["level"], "instruction_id": p["instruction_id"]} for p in pairs]


# ---------------------------------------------------------------------------
# the engine's own kinds, and the registry
# ---------------------------------------------------------------------------

def _processing_class(job: TrainJob, model: str):
    """The tokenizer with the recipe's chat template, or None: TRL then loads the model's own."""
    if not job.chat_template:
        return None
    from transformers import AutoTokenizer

    from .models.backends import resolve_chat_template, resolve_model_path

    tok = AutoTokenizer.from_pretrained(resolve_model_path(model))
    tok.chat_template = resolve_chat_template(job.chat_template)
    return tok


def _train_save_release(trainer, out: Path, job: TrainJob) -> dict:
    """Train, save on every rank (verified), free the trainer's memory; the result every training returns."""
    result = trainer.train()
    sharded = is_sharded(trainer.model)
    final, stats = _save_final(trainer, out, job)
    res = {"final_model": str(final), "train_loss": result.training_loss, "steps": trainer.state.global_step,
           "log_history": _log_history(trainer), "world_size": distributed.world_size(), "sharded": sharded,
           "weights_verified": stats is not None}
    _release(trainer)
    return res


def train_sft(job: TrainJob) -> dict:
    from trl import SFTConfig, SFTTrainer

    out = Path(job.output_dir)
    # prompt/completion records: the loss covers the completion (the response) only.
    args = SFTConfig(output_dir=str(out / "checkpoints"), seed=job.seed,
                     **_device_defaults({"completion_only_loss": True, **job.trl_args}, job))
    trainer = SFTTrainer(model=job.model, args=args, train_dataset=_dataset(job.train_file, ["prompt", "completion"]),
                         peft_config=_lora(job.lora), processing_class=_processing_class(job, job.model))
    return _train_save_release(trainer, out, job)


def train_dpo(job: TrainJob, train_file: str | None = None, model: str | None = None,
              output_dir: str | None = None, ref_model: str | None = None) -> dict:
    """DPO from ``model`` (default: the job's). The reference is a frozen copy of that starting model unless
    ``ref_model`` names another (online DPO's later iterations: the initial policy, paper Eq. 2)."""
    from trl import DPOConfig, DPOTrainer

    out = Path(output_dir or job.output_dir)
    args = DPOConfig(output_dir=str(out / "checkpoints"), seed=job.seed, **_device_defaults(job.trl_args, job))
    ref = None
    if ref_model:
        from transformers import AutoModelForCausalLM

        from .models.backends import resolve_model_path

        # loaded as TRL loads the policy from a path (its model_init_kwargs, dtype "auto" by default)
        ref = AutoModelForCausalLM.from_pretrained(resolve_model_path(ref_model),
                                                   **{"dtype": "auto", **(args.model_init_kwargs or {})})
    trainer = DPOTrainer(model=model or job.model, ref_model=ref, args=args,
                         train_dataset=_dataset(train_file or job.train_file, ["prompt", "chosen", "rejected"]),
                         peft_config=_lora(job.lora), processing_class=_processing_class(job, model or job.model))
    return _train_save_release(trainer, out, job)


KINDS: dict[str, Callable[[TrainJob], dict]] = {"sft": train_sft, "dpo": train_dpo}


def kinds() -> dict[str, str]:
    """Every training kind: the engine's own and those the methods register -> where it lives."""
    out = {k: f"{__name__}:{f.__name__}" for k, f in KINDS.items()}
    for m in methods.discover().values():
        for kind, target in m.training_kinds:
            if kind in out and out[kind] != target:
                raise ValueError(f"training kind {kind!r}: registered twice ({out[kind]} and {target}, method {m.name})")
            out[kind] = target
    return out


def kind_function(kind: str) -> Callable[[TrainJob], dict]:
    """The function that trains ``kind`` (imported on first use: a launched rank imports only its own)."""
    if kind in KINDS:
        return KINDS[kind]
    known = kinds()
    if kind not in known:
        from .params import did_you_mean

        raise ValueError(f"unknown training kind {kind!r}{did_you_mean(kind, known)}; known: {', '.join(known)}")
    module, _, fn = known[kind].partition(":")
    return getattr(importlib.import_module(module), fn)


def _copy_model(src: str, dst: Path) -> None:
    """A saved checkpoint folder is copied file by file (no model load: under a DeepSpeed launch a load would
    be a ZeRO-3 collective on one rank); a hub id is loaded and saved."""
    import shutil

    if Path(src).is_dir():
        if Path(dst).exists():
            shutil.rmtree(dst)
        shutil.copytree(src, dst)
        return
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .models.backends import resolve_model_path

    AutoModelForCausalLM.from_pretrained(resolve_model_path(src)).save_pretrained(dst)
    AutoTokenizer.from_pretrained(resolve_model_path(src)).save_pretrained(dst)


def run_job(job: TrainJob) -> dict:
    """Run one training job in this process (one rank of several, or alone); rank 0 writes metrics and the
    log beside the model."""
    from transformers import set_seed

    distributed.init(job.dist_timeout_s, bool(job.deepspeed_config))
    distributed.check_shared_filesystem(job.output_dir)
    set_seed(job.seed)
    t0 = time.time()
    res = kind_function(job.kind)(job)
    res["seconds"] = round(time.time() - t0, 1)
    out = Path(job.output_dir)
    if distributed.is_main():
        io.write_jsonl(out / "train_log.jsonl", res.get("log_history", []))
        io.write_json(out / "train_result.json", {k: v for k, v in res.items() if k != "log_history"})
    distributed.barrier()
    return res


def run(job: TrainJob, num_procs: int = 0, num_machines: int = 1, rdzv_host: str = "",
        rdzv_port: int = 29500) -> dict:
    """Train in this process (0-1 GPU, one machine) or over ``num_procs`` ranks per machine (GPUs, or CPU
    processes on a machine without one) with torchrun; several machines through srun (see distributed)."""
    if num_procs <= 1 and num_machines == 1:
        return run_job(job)
    import subprocess

    out = Path(job.output_dir)
    (out / "train_result.json").unlink(missing_ok=True)
    job_path = job.save(out / "job.json")
    cmd = distributed.launch_command(job_path, max(1, num_procs), num_machines, rdzv_host=rdzv_host,
                                     rdzv_port=rdzv_port)
    print(distributed.describe(cmd), flush=True)
    proc = subprocess.run(cmd, env=distributed.launch_env())
    if proc.returncode != 0:
        raise RuntimeError(f"the {num_procs * num_machines}-rank training failed with exit code {proc.returncode}; "
                           "see the output above")
    res = io.read_json(out / "train_result.json")
    res["log_history"] = io.read_jsonl(out / "train_log.jsonl")
    return res


def skip_without_data(job: TrainJob, reason: str) -> dict:
    """No data to train on: save the initial policy unchanged as this stage's model, and say so."""
    final = Path(job.output_dir) / "model"
    _copy_model(job.model, final)
    res = {"final_model": str(final), "trained": False, "reason": reason, "steps": 0, "log_history": []}
    io.write_json(Path(job.output_dir) / "train_result.json", {k: v for k, v in res.items() if k != "log_history"})
    print(f"[train] not trained: {reason}; the initial model is passed on unchanged", flush=True)
    return res


def job_for_stage(ctx, kind: str, model: str, train_file: str, options: dict | None = None) -> TrainJob:
    """The training job a stage's params describe: TRL args (gradient accumulation from the global batch),
    LoRA, seed, the multi-process settings, and the kind's own ``options`` (its method builds them from the
    stage's params); written into the stage's own folder."""
    p = ctx.p
    kind_function(kind)  # an unknown kind fails here, before any data is written or a process launched
    ds = str(ctx.input(p.deepspeed_config)) if p.launches() and p.deepspeed_config else ""
    return TrainJob(kind=kind, model=model, train_file=str(train_file), output_dir=str(ctx.dir),
                    trl_args=p.trl_args(), lora=p.lora if p.use_lora else None, seed=p.seed,
                    chat_template=p.chat_template, deepspeed_config=ds, dist_timeout_s=60.0 * p.dist_timeout_minutes,
                    verify_save=p.verify_save, options=dict(options or {}))


def run_for_stage(ctx, job: TrainJob) -> dict:
    """Run a stage's job where its params place it: in the kernel, or over num_gpus x num_machines ranks."""
    p = ctx.p
    return run(job, p.num_gpus if p.launches() else 0, p.num_machines, rdzv_host=p.main_process_ip,
               rdzv_port=p.main_process_port)


def fit(ctx, kind: str, model: str, records: Sequence[dict], empty_reason: str, options: dict | None = None) -> dict:
    """One stage's training, start to end: write its data, build the job from the stage's params (and the
    kind's ``options``), train (in-process or over several ranks) or, without data, pass the initial model on
    marked untrained."""
    train_file = ctx.write_jsonl("train.jsonl", records)
    job = job_for_stage(ctx, kind, model, train_file, options)
    if not records:
        return skip_without_data(job, empty_reason)
    res = run_for_stage(ctx, job)
    res.setdefault("trained", True)
    return res


def passed_on(model: str, reason: str) -> dict:
    """A training stage that does not train by choice: its initial model goes on as is (no copy)."""
    print(f"[train] not trained: {reason}; {model} is passed on", flush=True)
    return {"final_model": model, "trained": False, "reason": reason, "steps": 0, "log_history": []}


def sft_records(examples: Sequence[dict], turns: str = "last") -> list[dict]:
    """SFT examples (``messages``) as prompt/completion records (loss on the completion only).

    ``turns="last"``: everything before the last assistant turn is the prompt, that turn the completion.
    ``turns="all"`` (SPaR's refiner, as the released LLaMA-Factory setup trains multi-turn data): one record per
    assistant turn, its history as the prompt, so every assistant turn carries loss; identical records (a
    refinement chain's judgment turn and the same standalone judgment) are kept once.
    """
    if turns not in ("last", "all"):
        raise ValueError(f"turns: 'last' or 'all', got {turns!r}")
    out, seen = [], set()
    for e in examples:
        msgs = e["messages"]
        if not msgs or msgs[-1]["role"] != "assistant":
            raise ValueError(f"SFT example without a final assistant turn: {msgs!r:.200}")
        ends = [i for i, m in enumerate(msgs) if m["role"] == "assistant"] if turns == "all" else [len(msgs) - 1]
        for i in ends:
            rec = {"prompt": msgs[:i], "completion": [msgs[i]]}
            if turns == "all":
                key = io.stable_hash(rec)
                if not rec["prompt"] or key in seen:
                    continue
                seen.add(key)
            out.append(rec)
    return out


def plot_curves(log: Sequence[dict], keys: Sequence[str] = ("loss",), title: str = ""):
    """Training curves from TRL's log history (one subplot per key that was logged)."""
    import matplotlib.pyplot as plt

    keys = [k for k in keys if any(k in h for h in log)] or ["loss"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.0), squeeze=False)
    for ax, k in zip(axes[0], keys):
        pts = [(h.get("step", i), h[k]) for i, h in enumerate(log) if k in h]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        # a kind that iterates (online DPO) logs ``iteration``: a dashed line where each one after the first starts
        starts = {}
        for h in log:
            if "iteration" in h and "step" in h:
                starts[h["iteration"]] = min(starts.get(h["iteration"], h["step"]), h["step"])
        for it, st in sorted(starts.items())[1:]:
            ax.axvline(st - 0.5, color="0.6", ls="--", lw=0.8)
        ax.set_title(k)
        ax.set_xlabel("step (cumulative over iterations)" if len(starts) > 1 else "step")
    fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)  # shown once, as the cell's value (never again by the inline backend)
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 4 and argv[0] == "--merge-lora":
        merge_lora(*argv[1:])
        return 0
    if len(argv) != 1:
        print("usage: python -m autoif_lib.train JOB.json  |  --merge-lora BASE ADAPTER OUT", file=sys.stderr)
        return 2
    run_job(TrainJob.load(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
