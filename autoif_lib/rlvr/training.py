"""GRPO on sandboxed verifier rewards, as the engine's training kind ``grpo`` (``method.METHOD.training_kinds``).

TRL's ``GRPOTrainer`` samples ``num_generations`` completions per prompt with the recipe's backend (the policy in
memory with transformers; vLLM colocated on GPU through TRL's integration), rewards each with
:func:`autoif_lib.scoring.verifier_reward` (the instruction's verifiers run in our sandbox: every rank starts its
own, since TRL scores each rank's completions where they were sampled) and takes the clipped policy-gradient step
with the KL penalty ``beta`` to the initial policy. Its per-step log (``reward``, ``reward_std``,
``frac_reward_zero_std``, ``kl``, ``entropy``, completion lengths) is the stage's training curve.

The held-out pass-rate probe (before and after training) is the stage's, not the kind's: it generates with the
checkpoints on disk, outside any launch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..scoring import verifier_reward
from ..train import TrainJob, _dataset, _device_defaults, _lora, _processing_class, _train_save_release


@dataclass(frozen=True)
class GRPOOptions:
    """The kind's settings, carried in ``TrainJob.options`` (stage 01's params: :func:`options_for_stage`)."""

    reward: str = "pass_rate"  # or "all_pass"
    sandbox: dict = field(default_factory=dict)  # SandboxConfig kwargs
    use_vllm: bool = False

    @classmethod
    def of(cls, job: TrainJob) -> "GRPOOptions":
        unknown = set(job.options) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"grpo job: unknown option(s) {sorted(unknown)}")
        o = cls(**job.options)
        if o.reward not in ("pass_rate", "all_pass"):
            raise ValueError(f"grpo job: reward must be pass_rate or all_pass, got {o.reward!r}")
        return o


def options_for_stage(ctx) -> dict:
    p = ctx.p
    return dataclasses.asdict(GRPOOptions(
        reward=p.reward, use_vllm=p.generation.backend == "vllm",
        sandbox={"timeout_s": p.exec_timeout_s, "memory_mb": p.exec_memory_mb, "non_bool": p.non_bool}))


def build_trainer(job: TrainJob, reward_funcs: Sequence[Callable], model=None):
    """The GRPOTrainer a job describes, with ``reward_funcs`` (TRL's ``(prompts, completions, **columns)``
    functions; the dataset's ``verifiers`` column reaches them). ``model``: a loaded model instead of ``job.model``
    (tests keep a copy of the initial weights)."""
    from trl import GRPOConfig, GRPOTrainer

    o = GRPOOptions.of(job)
    trl_args = dict(job.trl_args)
    if o.use_vllm:  # TRL's vLLM integration: the engine shares the training process and its GPU
        trl_args.setdefault("use_vllm", True)
        trl_args.setdefault("vllm_mode", "colocate")
    args = GRPOConfig(output_dir=str(Path(job.output_dir) / "checkpoints"), seed=job.seed,
                      **_device_defaults(trl_args, job))
    ds = _dataset(job.train_file, ["prompt", "verifiers", "instruction_id"])
    return GRPOTrainer(model=model if model is not None else job.model, reward_funcs=list(reward_funcs), args=args,
                       train_dataset=ds, peft_config=_lora(job.lora), processing_class=_processing_class(job, job.model))


def train_grpo(job: TrainJob) -> dict:
    """Train; the result carries the per-step log (rewards, KL) like every kind's."""
    from ..sandbox import Sandbox, SandboxConfig

    o = GRPOOptions.of(job)
    with Sandbox(SandboxConfig(**o.sandbox)) as box:
        trainer = build_trainer(job, [verifier_reward(box.verdicts, mode=o.reward)])
        res = _train_save_release(trainer, Path(job.output_dir), job)
    res["reward_curve"] = reward_curve(res["log_history"])
    return res


REWARD_KEYS = ("reward", "reward_std", "frac_reward_zero_std", "kl", "entropy", "completions/mean_length")


def reward_curve(log: Sequence[dict]) -> list[dict]:
    """The per-step training log reduced to what the pass-rate figure and the results need."""
    return [{"step": h["step"], **{k: h[k] for k in REWARD_KEYS if k in h}} for h in log if "reward" in h and "step" in h]


def plot_pass_curve(reward_log: Sequence[dict], probe: Sequence[dict], reward: str = "pass_rate",
                    title: str = "verifier pass rate over GRPO steps"):
    """Pass rate against optimiser steps: the training samples' mean reward per step (with the group-zero-variance
    share, the steps that taught nothing, on a second axis) and the greedy probe on held-out queries before and
    after training, per split, with 95% intervals."""
    import matplotlib.pyplot as plt

    from ..evaluation import SPLITS

    fig, ax = plt.subplots(figsize=(6.4, 3.3))
    if reward_log:
        x = [r["step"] for r in reward_log]
        ax.plot(x, [100 * r["reward"] for r in reward_log], ".-", lw=1, label=f"training samples (mean {reward})")
        ax2 = ax.twinx()
        ax2.plot(x, [100 * r.get("frac_reward_zero_std", float("nan")) for r in reward_log], ":", color="0.5", lw=1)
        ax2.set_ylabel("groups with zero advantage %", color="0.4", fontsize=8)
        ax2.set_ylim(-5, 105)
    for split in dict.fromkeys(r["split"] for r in probe):
        rs = [r for r in probe if r["split"] == split]
        xs, ys = [r["step"] for r in rs], [100 * r["pass_rate"] for r in rs]
        line, = ax.plot(xs, ys, "o-", lw=2, label=f"{SPLITS.get(split, split)} (greedy, n={rs[0]['n']})")
        ax.fill_between(xs, [100 * r["lo"] for r in rs], [100 * r["hi"] for r in rs], color=line.get_color(), alpha=0.15)
    if not reward_log and not probe:
        ax.text(0.5, 0.5, "no step ran", ha="center", va="center", transform=ax.transAxes, color="#57606a")
    ax.set_xlabel("optimiser steps")
    ax.set_ylabel("pass rate %")
    ax.set_ylim(-5, 105)
    ax.set_title(title, fontsize=9)
    if reward_log or probe:
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    plt.close(fig)
    return fig


def probe(ctx, model: str, items: Sequence[dict], step: int) -> list[dict]:
    """Greedy answers of ``model`` (a path) on the probe items (``instruction_sets.as_probe_items``), scored by
    their verifiers in the sandbox: one row per split with the mean pass rate and its 95% interval, at ``step``.
    The model is released before scoring: the next thing a stage does is train, which needs the memory."""
    from ..instruction_sets import probe_rows
    from ..models import SamplingParams

    if not items:
        return []
    gen = ctx.generator(dataclasses.replace(ctx.p.generation, model=model))
    sp = SamplingParams(n=1, temperature=0.0, max_new_tokens=ctx.p.probe_max_new_tokens, seed=ctx.p.seed)
    outs = gen.generate([p["prompt"] for p in items], sp, desc=f"probe at step {step}")
    ctx.release_models(reason=f"after the probe at step {step}")
    with ctx.sandbox() as box:
        return probe_rows(items, outs, box.verdicts, step=step)


def summary(res: dict, curve: Sequence[dict]) -> dict:
    """The stage's metrics: steps, whether it trained, the first and last logged rewards and KL, the probe."""
    log = res.get("reward_curve") or reward_curve(res.get("log_history", []))
    first, last = (log[0], log[-1]) if log else ({}, {})
    return {"trained": res.get("trained", False), "steps": res.get("steps", 0), "train_loss": res.get("train_loss"),
            "reward_first": first.get("reward"), "reward_last": last.get("reward"), "kl_last": last.get("kl"),
            "frac_reward_zero_std_mean": (sum(r.get("frac_reward_zero_std", 0.0) for r in log) / len(log)) if log else None,
            "reason": res.get("reason"), "world_size": res.get("world_size", 1), "seconds": res.get("seconds"),
            "pass_curve": list(curve)}
