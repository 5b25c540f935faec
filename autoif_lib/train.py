"""Training: SFT, offline DPO and online DPO with TRL, in-process or under ``accelerate launch``.

One entry point serves both: the notebooks build a :class:`TrainJob` and either
call :func:`run_job` in the kernel (CPU, one GPU) or write it to ``job.json``
and run :func:`launch_command` (several GPUs, DeepSpeed ZeRO-3)::

    accelerate launch --num_processes 8 --use_deepspeed --deepspeed_config_file params/accelerate/zero3.json \\
        -m autoif_lib.train outputs/store/autoif/08_sft/<key>/job.json

TRL settings pass straight through: ``trl_args`` holds ``SFTConfig``/``DPOConfig``/
``OnlineDPOConfig`` keyword arguments with TRL's own field names.

SFT trains on the response only: records are TRL prompt/completion pairs, so the
system and user tokens carry no loss (``completion_only_loss``).

Online DPO is the paper's loop made explicit: each iteration samples K responses
per prompt from the current policy (temperature 0.8, the recipe's generation
backend, on the main process only), scores them by execution, builds pairs the
verifiers separate (pass rate > 0.5 vs 0) and trains DPO on those pairs only. An
iteration without a pair takes no optimiser step. (TRL's ``OnlineDPOTrainer`` is
not used: it ranks its two samples even when their rewards tie, so with a verifier
reward of 0 for every sample it still trains.)
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from . import io, scoring

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


@dataclass
class TrainJob:
    kind: str  # sft | dpo | online_dpo
    model: str  # hub id or local folder of the initial policy
    train_file: str  # JSONL: messages (sft), prompt/chosen/rejected (dpo), prompt/verifiers (online_dpo)
    output_dir: str
    trl_args: dict = field(default_factory=dict)
    lora: dict | None = None  # peft LoraConfig kwargs; None = full fine-tuning
    seed: int = 0
    chat_template: str = ""  # for a base model without one (ModelSpec.chat_template's forms); saved with the model
    # online DPO only
    iterations: int = 1
    samples_per_prompt: int = 4
    temperature: float = 0.8
    max_new_tokens: int = 64
    chosen_min_pass: float = 0.5
    chosen_inclusive: bool = False
    rejected_max_pass: float = 0.0
    max_chosen: int = 2
    max_rejected: int = 2
    generation: dict = field(default_factory=dict)  # ModelSpec kwargs for on-policy sampling (model: the policy)
    sandbox: dict = field(default_factory=dict)  # SandboxConfig kwargs
    cache_path: str | None = None
    probe_file: str = ""  # JSONL: prompt/instruction_id/verifiers/split, scored greedily before and after each iteration
    probe_max_new_tokens: int = 96

    def save(self, path: str | Path) -> Path:
        return io.write_json(path, dataclasses.asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> "TrainJob":
        return cls(**io.read_json(path))


# ---------------------------------------------------------------------------
# multi-GPU launch (the command is built here and checked by tests; run by the notebook)
# ---------------------------------------------------------------------------

def launch_command(job_path: str | Path, num_gpus: int, deepspeed_config: str | Path,
                   mixed_precision: str = "bf16", python: str | None = None, num_machines: int = 1,
                   machine_rank: int = 0, main_process_ip: str = "", main_process_port: int = 29500) -> list[str]:
    """``accelerate launch`` over ``num_gpus`` processes per machine with a DeepSpeed config file.

    Several machines: the same command runs on every node with its own ``machine_rank``;
    ``--num_processes`` is the total over all machines, as accelerate expects."""
    exe = Path(python or sys.executable).parent / "accelerate"
    cmd = [str(exe), "launch", "--num_processes", str(num_gpus * num_machines), "--num_machines", str(num_machines)]
    if num_machines > 1:
        env = os.environ
        rank = machine_rank or int(env.get("MACHINE_RANK") or env.get("SLURM_NODEID") or 0)
        ip = main_process_ip or env.get("MASTER_ADDR", "")
        if not ip:
            raise ValueError("a multi-node launch needs main_process_ip in the recipe or MASTER_ADDR in the environment")
        cmd += ["--machine_rank", str(rank), "--main_process_ip", ip, "--main_process_port", str(main_process_port)]
    return cmd + ["--mixed_precision", mixed_precision, "--use_deepspeed", "--deepspeed_config_file",
                  str(deepspeed_config), "-m", "autoif_lib.train", str(job_path)]


# ---------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------

def _device_defaults(trl_args: dict) -> dict:
    """CPU-safe defaults, overridable by the recipe: no reports, bf16 only where it is fast."""
    import torch

    from .models.backends import cpu_supports_bf16

    out = {"report_to": "none", "logging_steps": 1, "save_strategy": "no", **trl_args}
    if not torch.cuda.is_available():
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


def _save_final(trainer, out: Path, merged_from_lora: bool) -> Path:
    """Save a plain checkpoint (LoRA merged) with its tokenizer: every later stage can load it."""
    final = out / "model"
    model = trainer.model
    if merged_from_lora and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    if trainer.accelerator.is_main_process:
        model.save_pretrained(final)
        trainer.processing_class.save_pretrained(final)
    trainer.accelerator.wait_for_everyone()
    return final


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
# the three trainings
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


def train_sft(job: TrainJob) -> dict:
    from trl import SFTConfig, SFTTrainer

    out = Path(job.output_dir)
    # prompt/completion records: the loss covers the completion (the response) only.
    args = SFTConfig(output_dir=str(out / "checkpoints"), seed=job.seed,
                     **_device_defaults({"completion_only_loss": True, **job.trl_args}))
    trainer = SFTTrainer(model=job.model, args=args, train_dataset=_dataset(job.train_file, ["prompt", "completion"]),
                         peft_config=_lora(job.lora), processing_class=_processing_class(job, job.model))
    result = trainer.train()
    final = _save_final(trainer, out, bool(job.lora))
    return {"final_model": str(final), "train_loss": result.training_loss, "steps": trainer.state.global_step,
            "log_history": _log_history(trainer)}


def train_dpo(job: TrainJob, train_file: str | None = None, model: str | None = None,
              output_dir: str | None = None) -> dict:
    from trl import DPOConfig, DPOTrainer

    out = Path(output_dir or job.output_dir)
    args = DPOConfig(output_dir=str(out / "checkpoints"), seed=job.seed, **_device_defaults(job.trl_args))
    trainer = DPOTrainer(model=model or job.model, args=args,
                         train_dataset=_dataset(train_file or job.train_file, ["prompt", "chosen", "rejected"]),
                         peft_config=_lora(job.lora), processing_class=_processing_class(job, model or job.model))
    result = trainer.train()
    final = _save_final(trainer, out, bool(job.lora))
    return {"final_model": str(final), "train_loss": result.training_loss, "steps": trainer.state.global_step,
            "log_history": _log_history(trainer)}


def train_online_dpo(job: TrainJob) -> dict:
    from .sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(**job.sandbox)) as box:
        return _online_loop(job, box.verdicts)


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _wait_for_everyone() -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def policy_generator(job: TrainJob, policy: str):
    """The recipe's generation backend with ``policy`` as its model (loaded on first use)."""
    from .models import Generator, ModelSpec

    return Generator(ModelSpec(**{**job.generation, "model": policy}), cache_path=job.cache_path, progress=True)


def sample_and_pair(job: TrainJob, gen, prompts: Sequence[dict], runner, it: int) -> tuple[list[dict], dict]:
    """One iteration's data: K samples per prompt from the policy behind ``gen``, pass rates, pairs the
    verifiers separate."""
    from .models import SamplingParams
    from .scoring import pass_rates, preference_pairs

    sp = SamplingParams(n=job.samples_per_prompt, temperature=job.temperature, top_p=1.0,
                        max_new_tokens=job.max_new_tokens, seed=job.seed + it)
    outs = gen.generate([p["prompt"] for p in prompts], sp, desc=f"iteration {it + 1}: sample")
    pairs_in = [{"pair_id": str(k), "instruction_id": p["instruction_id"], "query_id": str(k),
                 "instruction": "", "query": "", "prompt": p["prompt"][-1]["content"], "responses": o}
                for k, (p, o) in enumerate(zip(prompts, outs))]
    fns = {p["instruction_id"]: p["verifiers"] for p in prompts}
    scored = pass_rates(pairs_in, fns, runner)
    pairs = preference_pairs(scored, job.chosen_min_pass, job.rejected_max_pass, chosen_inclusive=job.chosen_inclusive,
                             max_chosen=job.max_chosen, max_rejected=job.max_rejected, seed=job.seed + it)
    rates = [r["pass_rate"] for r in scored]
    info = {"iteration": it + 1, "prompts": len(prompts), "samples": len(scored),
            "prompts_with_pair": len({p["prompt"] for p in pairs}), "pairs": len(pairs),
            "mean_reward": round(sum(rates) / max(1, len(rates)), 4),
            "samples_passing": sum(scoring.passes(r, job.chosen_min_pass, job.chosen_inclusive) for r in rates),
            "samples_failing": sum(r <= job.rejected_max_pass for r in rates)}
    return pairs, info


def probe(job: TrainJob, gen, items: Sequence[dict], runner, iteration: int, step: int) -> list[dict]:
    """Greedy answers of the policy behind ``gen`` on the probe items, scored by their verifiers: one row
    per split (pass rate with its 95% interval), for the pass-rate-over-training curve."""
    from .models import SamplingParams
    from .scoring import pass_rates
    from .stats import mean_ci

    sp = SamplingParams(n=1, temperature=0.0, max_new_tokens=job.probe_max_new_tokens, seed=job.seed)
    outs = gen.generate([p["prompt"] for p in items], sp, desc=f"probe after iteration {iteration}")
    scored = pass_rates([{"instruction_id": p["instruction_id"], "responses": o, "split": p["split"]}
                         for p, o in zip(items, outs)], {p["instruction_id"]: p["verifiers"] for p in items}, runner)
    rows = []
    for split in dict.fromkeys(p["split"] for p in items):
        ci = mean_ci([r["pass_rate"] for r in scored if r["split"] == split])
        rows.append({"iteration": iteration, "step": step, "split": split, "pass_rate": ci["mean"],
                     "lo": ci["lo"], "hi": ci["hi"], "n": ci["n"]})
    return rows


def _online_loop(job: TrainJob, runner) -> dict:
    prompts = io.read_jsonl(job.train_file)
    out = Path(job.output_dir)
    policy = job.model
    history, iterations = [], []
    probe_items = io.read_jsonl(job.probe_file) if job.probe_file else []
    # One generator per policy, shared by its probe and the next iteration's sampling (one engine start),
    # released before each training step: on a GPU, training and a vLLM engine would compete for memory.
    gen = policy_generator(job, policy)
    curve = probe(job, gen, probe_items, runner, 0, 0) if probe_items and _is_main_process() else []
    for it in range(job.iterations):
        t0 = time.time()
        pf = out / f"iter_{it + 1}" / "pairs.jsonl"
        info_f = out / f"iter_{it + 1}" / "sampling.json"
        if _is_main_process():  # one process samples and scores; the others wait, then read its pairs
            pairs, info = sample_and_pair(job, gen, prompts, runner, it)
            io.write_jsonl(pf, preference_records(pairs))
            io.write_json(info_f, info)
        if gen.close():
            print(f"[online-dpo] released the {gen.spec.backend} model before training", flush=True)
        _wait_for_everyone()
        info = io.read_json(info_f)
        if info["pairs"]:
            res = train_dpo(job, train_file=str(pf), model=policy, output_dir=str(out / f"iter_{it + 1}"))
            policy = res["final_model"]
            # steps count on across iterations (each trainer restarts at 1): the curves and the pass-rate
            # figure share one x axis; the iteration's own step stays as step_in_iteration
            before = sum(i.get("steps", 0) for i in iterations)
            history += [dict(h, iteration=it + 1, step_in_iteration=h.get("step"), step=before + h.get("step", 0))
                        for h in res["log_history"]]
            info.update(train_loss=res["train_loss"], steps=res["steps"])
        else:
            info.update(steps=0, skipped="no pair the verifiers separate (every prompt's samples passed alike): "
                                         "no optimiser step")
        info["step_before"] = sum(i.get("steps", 0) for i in iterations)
        info["seconds"] = round(time.time() - t0, 1)
        iterations.append(info)
        print(f"[online-dpo] {info}", flush=True)
        if Path(policy) != Path(gen.spec.model):
            gen = policy_generator(job, policy)
        if probe_items and _is_main_process():
            curve += probe(job, gen, probe_items, runner, it + 1, sum(i.get("steps", 0) for i in iterations))
    gen.close()
    final = out / "model"
    if Path(policy) != final and _is_main_process():
        _copy_model(policy, final)
    _wait_for_everyone()
    steps = sum(i.get("steps", 0) for i in iterations)
    if _is_main_process():
        io.write_json(out / "pass_curve.json", curve)
    return {"final_model": str(final), "iterations": iterations, "log_history": history, "method": "loop",
            "steps": steps, "trained": steps > 0, "pass_curve": curve}


def _copy_model(src: str, dst: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(src).save_pretrained(dst)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)


def run_job(job: TrainJob) -> dict:
    """Run one training job in this process; write metrics.json and train_log.jsonl beside the model."""
    from transformers import set_seed

    set_seed(job.seed)
    t0 = time.time()
    fn = {"sft": train_sft, "dpo": train_dpo, "online_dpo": train_online_dpo}.get(job.kind)
    if fn is None:
        raise ValueError(f"unknown job kind {job.kind!r}")
    res = fn(job)
    res["seconds"] = round(time.time() - t0, 1)
    out = Path(job.output_dir)
    io.write_jsonl(out / "train_log.jsonl", res.get("log_history", []))
    io.write_json(out / "train_result.json", {k: v for k, v in res.items() if k != "log_history"})
    return res


def run(job: TrainJob, num_gpus: int = 0, deepspeed_config: str | Path | None = None, num_machines: int = 1,
        machine_rank: int = 0, main_process_ip: str = "", main_process_port: int = 29500) -> dict:
    """Train in this process (0-1 GPU, one machine) or under ``accelerate launch`` with DeepSpeed."""
    if num_gpus <= 1 and num_machines == 1:
        return run_job(job)
    import subprocess

    out = Path(job.output_dir)
    job_path = job.save(out / "job.json")
    cmd = launch_command(job_path, max(1, num_gpus), deepspeed_config, num_machines=num_machines,
                         machine_rank=machine_rank, main_process_ip=main_process_ip,
                         main_process_port=main_process_port)
    print("$ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        raise RuntimeError(f"accelerate launch failed with exit code {proc.returncode}; see the output above")
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


_TRL_ARGS = {"sft": "sft", "dpo": "dpo", "online_dpo": "online"}  # stage param holding the TRL config dict


def job_for_stage(ctx, kind: str, model: str, train_file: str) -> TrainJob:
    """The training job a stage's params describe: TRL args, LoRA, seed, and for online DPO the
    sampling, pair and sandbox settings; written into the stage's own folder."""
    p = ctx.p
    extra = {}
    if kind == "online_dpo":
        extra = dict(iterations=p.iterations, samples_per_prompt=p.samples_per_prompt,
                     temperature=p.temperature, max_new_tokens=p.max_new_tokens, chosen_min_pass=p.chosen_min_pass,
                     chosen_inclusive=p.chosen_inclusive, rejected_max_pass=p.rejected_max_pass,
                     max_chosen=p.max_chosen_per_prompt, max_rejected=p.max_rejected_per_prompt,
                     generation=dataclasses.asdict(p.generation), cache_path=str(ctx.cache_path),
                     sandbox={"timeout_s": p.exec_timeout_s, "memory_mb": p.exec_memory_mb, "non_bool": p.non_bool},
                     probe_max_new_tokens=p.probe_max_new_tokens)
    return TrainJob(kind=kind, model=model, train_file=str(train_file), output_dir=str(ctx.dir),
                    trl_args=getattr(p, _TRL_ARGS[kind]), lora=p.lora if p.use_lora else None, seed=p.seed,
                    chat_template=p.chat_template, **extra)


def fit(ctx, kind: str, model: str, records: Sequence[dict], empty_reason: str,
        probe_items: Sequence[dict] = ()) -> dict:
    """One stage's training, start to end: write its data, build the job from the stage's params,
    train (in-process or under accelerate) or, without data, pass the initial model on marked untrained.
    ``probe_items`` (online DPO): held-out items scored before and after every iteration."""
    train_file = ctx.write_jsonl("train.jsonl", records)
    job = job_for_stage(ctx, kind, model, train_file)
    if probe_items:
        job.probe_file = str(ctx.write_jsonl("probe_items.jsonl", probe_items))
    if not records:
        return skip_without_data(job, empty_reason)
    p = ctx.p
    launching = (p.num_gpus > 1 or p.num_machines > 1) and bool(p.deepspeed_config)
    res = run(job, p.num_gpus, ctx.input(p.deepspeed_config) if launching else None, num_machines=p.num_machines,
              machine_rank=p.machine_rank, main_process_ip=p.main_process_ip, main_process_port=p.main_process_port)
    res.setdefault("trained", True)
    return res


def passed_on(model: str, reason: str) -> dict:
    """A training stage that does not train by choice: its initial model goes on as is (no copy)."""
    print(f"[train] not trained: {reason}; {model} is passed on", flush=True)
    return {"final_model": model, "trained": False, "reason": reason, "steps": 0, "log_history": []}


def sft_records(examples: Sequence[dict]) -> list[dict]:
    """SFT examples (``messages``) as prompt/completion records: everything before the last assistant
    turn is the prompt, the last assistant turn the completion (the only tokens with loss)."""
    out = []
    for e in examples:
        msgs = e["messages"]
        if not msgs or msgs[-1]["role"] != "assistant":
            raise ValueError(f"SFT example without a final assistant turn: {msgs!r:.200}")
        out.append({"prompt": msgs[:-1], "completion": [msgs[-1]]})
    return out


def setting(supervisor_model: str, base_model: str) -> str:
    """AutoIF's two settings: the supervisor trains itself, or a stronger one teaches a weaker base."""
    return "self_alignment" if supervisor_model == base_model else "strong_to_weak"


def plot_pass_curve(iterations: Sequence[dict], curve: Sequence[dict], title: str = "verifier pass rate over training"):
    """Pass rate against optimiser steps: the on-policy samples of the training prompts (sampled, before each
    iteration's update) and the greedy probe per held-out split, with 95% intervals."""
    import matplotlib.pyplot as plt

    from .evaluation import SPLITS

    fig, ax = plt.subplots(figsize=(6, 3.2))
    its = [i for i in iterations if i.get("samples")]
    if its:
        ax.plot([i.get("step_before", 0) for i in its], [100 * i["mean_reward"] for i in its], "o--",
                label="training prompts (on-policy samples)")
    for split in dict.fromkeys(r["split"] for r in curve):
        rs = [r for r in curve if r["split"] == split]
        x, y = [r["step"] for r in rs], [100 * r["pass_rate"] for r in rs]
        line, = ax.plot(x, y, "o-", label=f"{SPLITS.get(split, split)} (greedy, n={rs[0]['n']})")
        ax.fill_between(x, [100 * r["lo"] for r in rs], [100 * r["hi"] for r in rs], color=line.get_color(), alpha=0.15)
    if not its and not curve:
        ax.text(0.5, 0.5, "no iterations ran", ha="center", va="center", transform=ax.transAxes, color="#57606a")
    ax.set_xlabel("optimiser steps")
    ax.set_ylabel("pass rate %")
    ax.set_title(title, fontsize=9)
    if its or curve:
        ax.legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


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
        # online DPO: a dashed line where each iteration after the first starts
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
    if len(argv) != 1:
        print("usage: python -m autoif_lib.train JOB.json", file=sys.stderr)
        return 2
    run_job(TrainJob.load(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
