"""AutoIF's training beyond the engine's SFT and DPO: online DPO (paper §3.4) as a registered training kind.

Online DPO is the paper's loop made explicit: each iteration samples K responses per prompt from the current
policy (temperature 0.8, the recipe's generation backend, on the main process only), scores them by
execution, builds pairs the verifiers separate (pass rate > 0.5 vs 0) and trains DPO on those pairs only. An
iteration without a pair takes no optimiser step. (TRL's ``OnlineDPOTrainer`` is not used: it ranks its two
samples even when their rewards tie, so with a verifier reward of 0 for every sample it still trains.)

The engine (``autoif_lib.train``) runs it as kind ``online_dpo`` (``method.METHOD.training_kinds``), in the
kernel or on every rank of a launch; its settings travel in ``TrainJob.options`` (:class:`OnlineOptions`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .. import distributed, io
from ..scoring import passes
from ..train import TrainJob, _copy_model, preference_records, train_dpo


@dataclass(frozen=True)
class OnlineOptions:
    """Online DPO's settings, carried in ``TrainJob.options`` (stage 10's params: :func:`options_for_stage`)."""

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
    ref_model: str = "init"  # DPO reference of each iteration: "init" (the initial policy, paper) or "previous"

    @classmethod
    def of(cls, job: TrainJob) -> "OnlineOptions":
        unknown = set(job.options) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"online_dpo job: unknown option(s) {sorted(unknown)}")
        return cls(**job.options)


def options_for_stage(ctx, probe_items: Sequence[dict] = ()) -> dict:
    """Stage 10's params as the job's options; ``probe_items`` (held-out items scored before and after every
    iteration, for the pass-rate curve) written beside it."""
    p = ctx.p
    probe_file = str(ctx.write_jsonl("probe_items.jsonl", probe_items)) if probe_items else ""
    return dataclasses.asdict(OnlineOptions(
        iterations=p.iterations, samples_per_prompt=p.samples_per_prompt, temperature=p.temperature,
        max_new_tokens=p.max_new_tokens, chosen_min_pass=p.chosen_min_pass, chosen_inclusive=p.chosen_inclusive,
        rejected_max_pass=p.rejected_max_pass, max_chosen=p.max_chosen_per_prompt, max_rejected=p.max_rejected_per_prompt,
        generation=dataclasses.asdict(p.generation), cache_path=str(ctx.cache_path),
        sandbox={"timeout_s": p.exec_timeout_s, "memory_mb": p.exec_memory_mb, "non_bool": p.non_bool},
        probe_file=probe_file, probe_max_new_tokens=p.probe_max_new_tokens, ref_model=p.ref_model))


def train_online_dpo(job: TrainJob) -> dict:
    """The loop; only rank 0 samples and scores, so only rank 0 starts a sandbox (one per run, not per rank)."""
    o = OnlineOptions.of(job)
    from ..sandbox import Sandbox, SandboxConfig

    if distributed.is_main():
        for stale in Path(job.output_dir).glob("iter_*/sampling.json*"):  # a handover file from an earlier run
            stale.unlink()
    distributed.barrier()
    if not distributed.is_main():
        return online_loop(job, None)
    with Sandbox(SandboxConfig(**o.sandbox)) as box:
        return online_loop(job, box.verdicts)


def policy_generator(job: TrainJob, policy: str):
    """The recipe's generation backend with ``policy`` as its model (loaded on first use)."""
    o = OnlineOptions.of(job)
    from ..models import Generator, ModelSpec

    return Generator(ModelSpec(**{**o.generation, "model": policy}), cache_path=o.cache_path, progress=True)


def sample_and_pair(job: TrainJob, gen, prompts: Sequence[dict], runner, it: int) -> tuple[list[dict], dict]:
    """One iteration's data: K samples per prompt from the policy behind ``gen``, pass rates, pairs the
    verifiers separate."""
    o = OnlineOptions.of(job)
    from ..models import SamplingParams
    from ..scoring import pass_rates, preference_pairs

    sp = SamplingParams(n=o.samples_per_prompt, temperature=o.temperature, top_p=1.0,
                        max_new_tokens=o.max_new_tokens, seed=job.seed + it)
    outs = gen.generate([p["prompt"] for p in prompts], sp, desc=f"iteration {it + 1}: sample")
    pairs_in = [{"pair_id": str(k), "instruction_id": p["instruction_id"], "query_id": str(k),
                 "instruction": "", "query": "", "prompt": p["prompt"][-1]["content"], "responses": ans}
                for k, (p, ans) in enumerate(zip(prompts, outs))]
    fns = {p["instruction_id"]: p["verifiers"] for p in prompts}
    scored = pass_rates(pairs_in, fns, runner)
    pairs = preference_pairs(scored, o.chosen_min_pass, o.rejected_max_pass, chosen_inclusive=o.chosen_inclusive,
                             max_chosen=o.max_chosen, max_rejected=o.max_rejected, seed=job.seed + it)
    rates = [r["pass_rate"] for r in scored]
    info = {"iteration": it + 1, "prompts": len(prompts), "samples": len(scored),
            "prompts_with_pair": len({p["prompt"] for p in pairs}), "pairs": len(pairs),
            "instructions_with_pair": sorted({p["instruction_id"] for p in pairs}),
            "mean_reward": round(sum(rates) / max(1, len(rates)), 4),
            "samples_passing": sum(passes(r, o.chosen_min_pass, o.chosen_inclusive) for r in rates),
            "samples_failing": sum(r <= o.rejected_max_pass for r in rates)}
    return pairs, info


def probe(job: TrainJob, gen, items: Sequence[dict], runner, iteration: int, step: int) -> list[dict]:
    """Greedy answers of the policy behind ``gen`` on the probe items, scored by their verifiers: one row
    per split (pass rate with its 95% interval), for the pass-rate-over-training curve."""
    from ..instruction_sets import probe_rows
    from ..models import SamplingParams

    o = OnlineOptions.of(job)
    sp = SamplingParams(n=1, temperature=0.0, max_new_tokens=o.probe_max_new_tokens, seed=job.seed)
    outs = gen.generate([p["prompt"] for p in items], sp, desc=f"probe after iteration {iteration}")
    return probe_rows(items, outs, runner, iteration=iteration, step=step)


def online_loop(job: TrainJob, runner) -> dict:
    """The iterations (rank 0 samples and scores with ``runner``; every rank trains); the stage's result."""
    prompts = io.read_jsonl(job.train_file)
    o = OnlineOptions.of(job)
    out = Path(job.output_dir)
    policy = job.model
    main = distributed.is_main()
    history, iterations = [], []
    probe_items = io.read_jsonl(o.probe_file) if o.probe_file else []
    # One generator per policy (rank 0 only), shared by its probe and the next iteration's sampling (one engine
    # start), released before each training step: training and a vLLM engine would compete for GPU memory.
    gen = policy_generator(job, policy) if main else None
    curve = probe(job, gen, probe_items, runner, 0, 0) if probe_items and main else []
    for it in range(o.iterations):
        t0 = time.time()
        pf = out / f"iter_{it + 1}" / "pairs.jsonl"
        info_f = out / f"iter_{it + 1}" / "sampling.json"

        def sample():  # rank 0 samples and scores; the other ranks poll for sampling.json, then read its pairs
            pairs, info = sample_and_pair(job, gen, prompts, runner, it)
            io.write_jsonl(pf, preference_records(pairs))
            if gen.close():
                print(f"[online-dpo] released the {gen.spec.backend} model before training", flush=True)
            io.write_json(info_f, info)  # last: the file the other ranks wait for

        distributed.on_main(sample, info_f, job.dist_timeout_s)
        info = io.read_json(info_f)
        if info["pairs"]:
            # paper Eq. 2: pi_ref stays the initial (SFT) policy; "previous" regularises toward the last iterate
            ref = job.model if o.ref_model == "init" and policy != job.model else None
            res = train_dpo(job, train_file=str(pf), model=policy, output_dir=str(out / f"iter_{it + 1}"), ref_model=ref)
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
        if main:
            print(f"[online-dpo] {info}", flush=True)
            if Path(policy) != Path(gen.spec.model):
                gen = policy_generator(job, policy)
            if probe_items:
                curve += probe(job, gen, probe_items, runner, it + 1, sum(i.get("steps", 0) for i in iterations))
    final = out / "model"
    if main:
        gen.close()
        if Path(policy) != final:
            _copy_model(policy, final)
    distributed.barrier()
    steps = sum(i.get("steps", 0) for i in iterations)
    if main:
        io.write_json(out / "pass_curve.json", curve)
    return {"final_model": str(final), "iterations": iterations, "log_history": history, "method": "loop",
            "steps": steps, "trained": steps > 0, "pass_curve": curve, "world_size": distributed.world_size()}


def instructions_with_pairs(ctx, checkpoints) -> list[str]:
    """The trained instructions online DPO found pairs for (stage 11's ``online_instructions`` split); [] when
    online DPO is not among the evaluated checkpoints."""
    return ctx.upstream_metrics("10_online_dpo").get("instructions_with_pair", []) if "online_dpo" in checkpoints else []


def setting(supervisor_model: str, base_model: str) -> str:
    """AutoIF's two settings: the supervisor trains itself, or a stronger one teaches a weaker base."""
    return "self_alignment" if supervisor_model == base_model else "strong_to_weak"


def plot_pass_curve(iterations: Sequence[dict], curve: Sequence[dict], title: str = "verifier pass rate over training"):
    """Pass rate against optimiser steps: the on-policy samples of the training prompts (sampled, before each
    iteration's update) and the greedy probe per held-out split, with 95% intervals."""
    import matplotlib.pyplot as plt

    from ..evaluation import SPLITS

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
