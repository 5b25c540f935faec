"""Evaluation shared by the methods: checkpoints compared on IFEval, IFBench and on held-out verifiers.

Pure helpers over records; generation and the sandbox are passed in. Which checkpoints
exist comes from the pipeline's declarations (``StageContext.checkpoint``).
"""

from __future__ import annotations

from typing import Sequence

from . import scoring
from .stats import binomial_se


def ifeval_requests(examples: Sequence[dict]) -> list[list[dict]]:
    """IFEval prompts as single user turns (the model's own chat template is applied by the backend)."""
    return [[{"role": "user", "content": ex["prompt"]}] for ex in examples]


# Verifiable-instruction benchmarks: the module that loads and scores each (same record schema, same protocol).
BENCHMARKS = {"ifeval": "IFEval", "ifbench": "IFBench"}


def benchmark_module(name: str):
    """``autoif_lib.ifeval`` or ``autoif_lib.ifbench``."""
    import importlib

    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {sorted(BENCHMARKS)}")
    return importlib.import_module(f"autoif_lib.{name}")


def answer_benchmark(gen, bench: str, examples: Sequence[dict], sp, label: str = "") -> tuple[list[dict], dict]:
    """One checkpoint's greedy answers to a verifiable-instruction benchmark, scored by its checkers:
    ``(per_prompt, summary)``. The one place a model answers IFEval or IFBench, for every method."""
    mod = benchmark_module(bench)
    if not examples:
        return [], {}
    outs = [o[0] for o in gen.generate(ifeval_requests(examples), sp, desc=f"{BENCHMARKS[bench]} {label}".strip())]
    return mod.score_responses(examples, outs)


def prompt_items(per_prompt: Sequence[dict]) -> dict:
    """Prompt-level strict verdicts as 0/1 item scores keyed by the prompt's key (the paired tests' input)."""
    return {r["key"]: float(r["follow_all_strict"]) for r in per_prompt}


def score_benchmarks(ctx, gen, name: str, benchmarks: dict[str, Sequence[dict]], sp) -> tuple[dict, dict, dict]:
    """One checkpoint on each verifiable-instruction benchmark (a benchmark without examples is skipped).
    Answers and verdicts go to ``<bench>_<name>.jsonl``, the summary to ``<bench>_<name>_summary.json``.
    Returns (bench -> summary, bench -> {prompt key: 0/1 prompt-level strict}, bench -> per-prompt records)."""
    summaries, items, rows = {}, {}, {}
    for bench, examples in benchmarks.items():
        if not examples:
            continue
        rows[bench], summaries[bench] = answer_benchmark(gen, bench, examples, sp, name)
        ctx.write_jsonl(f"{bench}_{name}.jsonl", rows[bench])
        ctx.write_json(f"{bench}_{name}_summary.json", summaries[bench])
        items[bench] = prompt_items(rows[bench])
    return summaries, items, rows


def score_followbench(ctx, gen, name: str, examples: Sequence[dict], sp, judge) -> tuple[dict, dict, dict]:
    """One checkpoint on FollowBench: greedy answers to every level >= 1 instruction, scored by rules or by the
    ``judge`` generator (``autoif_lib.followbench``); ``followbench_<name>.jsonl`` and ``_summary.json``
    written. Returns (summary, {item id: soft score, the item's share of satisfied constraints}, {item id:
    family}) — families are the clusters of the paired tests: the levels of one instruction move together."""
    from . import followbench

    asked = [ex for ex in examples if ex["level"] >= 1]  # level 0 only shows the judge the base instruction
    if not asked:
        return {}, {}, {}
    outs = gen.generate([[{"role": "user", "content": ex["instruction"]}] for ex in asked], sp, desc=f"FollowBench {name}")
    per_item, summary = followbench.score(examples, {ex["id"]: o[0] for ex, o in zip(asked, outs)}, judge,
                                          max_new_tokens=ctx.p.followbench_judge_max_new_tokens, seed=ctx.p.seed)
    ctx.write_jsonl(f"followbench_{name}.jsonl", per_item)
    ctx.write_json(f"followbench_{name}_summary.json", summary)
    scored = [r for r in per_item if r["scored"]]
    return summary, {r["id"]: float(r["soft"]) for r in scored}, {r["id"]: r["family"] for r in scored}


def evaluated_checkpoints(ctx) -> tuple[dict[str, str], dict[str, str]]:
    """The stage's ``checkpoints`` that can be compared: name -> model path, and the skipped ones -> why (a stage
    that did not run, or one that had no data and passed its init on under a trained name)."""
    from .runs import UntrainedCheckpoint

    found, skipped = {}, {}
    for name in ctx.p.checkpoints:
        try:
            found[name] = ctx.checkpoint(name, ctx.p.base_model, trained_only=True)
        except (FileNotFoundError, UntrainedCheckpoint) as e:
            skipped[name] = str(e)
            print(f"skipping {name}: {e}")
    return found, skipped


def benchmark_sets(ctx) -> dict[str, list[dict]]:
    """The stage's benchmark prompts, seeded subsets as its params ask: ``ifeval``, ``ifbench`` (empty when off) and
    ``followbench`` (empty without a source)."""
    from .followbench import load_followbench
    from .ifbench import load_ifbench
    from .ifeval import load_ifeval

    p = ctx.p
    return {"ifeval": load_ifeval(p.ifeval_source, subset=p.ifeval_subset or None, seed=p.seed),
            "ifbench": load_ifbench(p.ifbench_source, subset=p.ifbench_subset, seed=p.seed) if p.ifbench else [],
            "followbench": (load_followbench(p.followbench_source, subset=p.followbench_subset, seed=p.seed)
                            if p.followbench_source else [])}


def evaluate_checkpoints(ctx, checkpoints: dict[str, str], benchmarks: dict[str, list[dict]],
                         evals: dict[str, list[dict]], instructions: Sequence[dict]) -> dict:
    """Every checkpoint answers the same items, greedily: the benchmarks (``benchmark_sets``) and the held-out
    verifier items (``instruction_sets.evaluation_items``), scored by the benchmarks' checkers and by the
    instructions' verifiers in the sandbox. Each answer file is written as it is scored (``<bench>_<name>.jsonl``,
    ``<split>_<name>.jsonl``). Returns the summaries per benchmark and checkpoint, the held-out pass rate per
    checkpoint, the per-item scores (checkpoint -> split -> item -> score) and the items' clusters (split -> item
    -> instruction or family), the input of ``paired_stats``."""
    import dataclasses

    from .instruction_sets import response_requests
    from .models import SamplingParams

    p = ctx.p
    out = {"ifeval": {}, "ifbench": {}, "followbench": {}, "heldout": {}, "items": {}}
    clusters = {split: {q["pair_id"]: q["instruction_id"] for q in ps} for split, ps in evals.items()}
    fb = benchmarks.get("followbench") or []
    fb_judge = ctx.generator(p.followbench_judge) if fb else None
    greedy = SamplingParams(temperature=0.0, max_new_tokens=p.max_new_tokens, seed=p.seed)
    greedy_h = SamplingParams(temperature=0.0, max_new_tokens=p.heldout_max_new_tokens, seed=p.seed)
    with ctx.sandbox() as box:
        for name, path in checkpoints.items():
            gen = ctx.generator(dataclasses.replace(p.generation, model=path))
            bench, items, _ = score_benchmarks(ctx, gen, name, {k: benchmarks.get(k) or [] for k in BENCHMARKS}, greedy)
            out["ifeval"][name], out["ifbench"][name] = bench.get("ifeval"), bench.get("ifbench")
            out["followbench"][name], items["followbench"], fb_clusters = score_followbench(ctx, gen, name, fb, greedy, fb_judge)
            if fb_clusters:
                clusters["followbench"] = fb_clusters
            for split, ps in evals.items():
                outs = gen.generate(response_requests(ps), greedy_h, desc=f"{split} {name}") if ps else []
                scored = item_scores(ps, outs, instructions, box.verdicts)
                ctx.write_jsonl(f"{split}_{name}.jsonl", scored)
                items[split] = {r["pair_id"]: r["pass_rate"] for r in scored}
            out["heldout"][name] = scoring.summarize(list(items.get("heldout_instructions", {}).values()))
            out["items"][name] = items
            # the model stays loaded: asking for the next checkpoint's generator releases it (and says so)
    out["clusters"] = clusters
    return out


def save_comparison(ctx, results: dict, paired: Sequence[dict], **extra) -> dict:
    """Write ``comparison.json`` (the four metrics per benchmark and checkpoint, held-out pass rates, paired tests);
    return the stage's metrics: the comparison table, sizes, the paired rows and ``extra`` (``ctx.finish``'s input)."""
    four = ("prompt_strict", "prompt_loose", "inst_strict", "inst_loose", "n_prompts")
    ctx.write_json("comparison.json", {
        "ifeval": {k: {m: v[m] for m in four} for k, v in results["ifeval"].items() if v},
        "ifbench": {k: {m: v[m] for m in four + ("n_not_scored",)} for k, v in results["ifbench"].items() if v},
        "followbench": {k: {m: v.get(m) for m in ("ssr_avg", "hsr_avg", "csl", "n_scored")}
                        for k, v in results["followbench"].items() if v},
        "heldout": results["heldout"], "paired": list(paired)})
    table = comparison_table(results["ifeval"], results["heldout"], results["ifbench"], results["followbench"])
    first = next(iter(results["ifeval"].values()), None) or {}
    return {"table": table.reset_index().to_dict(orient="records"), "ifeval_source": ctx.p.ifeval_source,
            "ifeval_subset": ctx.p.ifeval_subset, "n_prompts": first.get("n_prompts", 0),
            "heldout": results["heldout"], "paired": list(paired), **extra}


def inits_of(ctx, checkpoints: dict[str, str]) -> dict[str, str]:
    """Checkpoint -> the checkpoint it was trained from (its stage's ``init_from``; else the base)."""
    return {name: ctx.init_of(name) for name in checkpoints}


def general_all(ctx, checkpoints: dict[str, str]) -> dict[str, dict]:
    """Every checkpoint on the recipe's lm-eval tasks (``general_abilities``)."""
    return {name: general_abilities(ctx, name, path) for name, path in checkpoints.items()}


def general_abilities(ctx, name: str, path: str) -> dict:
    """One checkpoint on the recipe's lm-eval tasks (``general_tasks``; {} when off), with the generation
    backend's engine (vLLM for a vLLM recipe, transformers otherwise); written to ``general_<name>.json``."""
    from . import general_abilities as ga

    p = ctx.p
    if not p.general_tasks:
        return {}
    import torch

    res = ga.run(path, list(p.general_tasks), backend="vllm" if p.generation.backend == "vllm" else "hf",
                 limit=p.general_limit or None, num_fewshot=None if p.general_num_fewshot < 0 else p.general_num_fewshot,
                 batch_size=p.general_batch_size, device="cuda" if torch.cuda.is_available() else "cpu", seed=p.seed,
                 allow_unsafe_code=p.general_allow_unsafe_code)
    ctx.write_json(f"general_{name}.json", res)
    return res


def general_table(results: dict[str, dict], base: str = "base"):
    """Every checkpoint's lm-eval scores and, beside them, the difference from the base with its standard error
    (paired over items when both answered the same ones)."""
    import pandas as pd

    from . import general_abilities as ga

    if not results or not any(results.values()):
        return pd.DataFrame()
    d = {(r["checkpoint"], r["task"], r["metric"]): r for r in (ga.deltas(results, base) if base in results else [])}
    rows = []
    for name, res in results.items():
        for task, r in res.items():
            if task.startswith("_"):
                continue
            for metric, v in r["metrics"].items():
                row = {"checkpoint": name, "task": task, "metric": metric, "value": v, "s.e.": r["stderr"].get(metric),
                       "n": r.get("n")}
                if (name, task, metric) in d:
                    row.update({"Δ vs base": d[name, task, metric]["delta"], "Δ s.e.": d[name, task, metric]["delta_se"],
                                "paired": d[name, task, metric]["paired"]})
                rows.append(row)
    return pd.DataFrame(rows).round(4)


def comparison_table(summaries: dict[str, dict], heldout: dict[str, dict], ifbench: dict[str, dict] | None = None,
                     followbench: dict[str, dict] | None = None):
    """One row per checkpoint: the four IFEval metrics (in %), IFBench's prompt- and instruction-level strict
    scores when given, and the held-out pass rate, each with its standard error (binomial for Pr(S); the sample
    standard error of the mean for the pass rate)."""
    import pandas as pd

    rows = []
    for name, s in summaries.items():
        h = heldout.get(name, {})
        rows.append({"checkpoint": name, "Pr(S)": 100 * s["prompt_strict"],
                     # binomial standard error: on a 16-prompt subset one prompt moves Pr by 6 points
                     "Pr(S) s.e.": 100 * (binomial_se(s["prompt_strict"], s["n_prompts"]) or 0.0), "Pr(L)": 100 * s["prompt_loose"],
                     "Ins(S)": 100 * s["inst_strict"], "Ins(L)": 100 * s["inst_loose"],
                     "heldout pass rate": None if h.get("mean_pass_rate") is None else 100 * h["mean_pass_rate"],
                     "heldout s.e.": None if h.get("mean_pass_rate_se") is None else 100 * h["mean_pass_rate_se"],
                     "n prompts": s["n_prompts"], "n heldout": h.get("n", 0)})
        b = (ifbench or {}).get(name)
        if b:
            rows[-1].update({"IFBench Pr(S)": 100 * b["prompt_strict"],
                             "IFBench Pr(S) s.e.": 100 * (binomial_se(b["prompt_strict"], b["n_prompts"]) or 0.0),
                             "IFBench Ins(S)": 100 * b["inst_strict"], "n IFBench": b["n_prompts"]})
        f = (followbench or {}).get(name)
        if f and f.get("ssr_avg") is not None:
            rows[-1].update({"FollowBench SSR": 100 * f["ssr_avg"], "FollowBench HSR": 100 * f["hsr_avg"],
                             "FollowBench CSL": f["csl"]})
    return pd.DataFrame(rows).set_index("checkpoint").round(1)


def plot_comparison(table):
    import matplotlib.pyplot as plt

    cols = [c for c in ("Pr(S)", "Pr(L)", "Ins(S)", "Ins(L)", "IFBench Pr(S)", "IFBench Ins(S)", "FollowBench SSR",
                        "FollowBench HSR", "heldout pass rate")
            if c in table]
    fig, ax = plt.subplots(figsize=(8, 3.4))
    table[cols].astype(float).T.plot.bar(ax=ax, rot=0, fontsize=7)
    ax.set_ylabel("%")
    ax.set_title("IFEval (prompt/instruction × strict/loose), IFBench (strict) and held-out verifier pass rate", fontsize=9)
    ax.legend(title="checkpoint", fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_heatmap(summaries: dict[str, dict], metric: str = "strict", bench: str = "IFEval"):
    """Per-instruction-type accuracy, checkpoints as columns (checkpoints without a summary are left out)."""
    import matplotlib.pyplot as plt
    import numpy as np

    summaries = {k: v for k, v in summaries.items() if v}
    if not summaries:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{bench} was not run", ha="center", va="center")
        plt.close(fig)
        return fig
    types_ = sorted({t for s in summaries.values() for t in s["per_instruction"]})
    names = list(summaries)
    grid = np.array([[summaries[n]["per_instruction"].get(t, {}).get(metric, np.nan) for n in names] for t in types_],
                    dtype=float)
    fig, ax = plt.subplots(figsize=(1.4 + 1.2 * len(names), 0.28 * len(types_) + 1.2))
    im = ax.imshow(grid, aspect="auto", vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(types_)), [f"{t} (n={max(summaries[n]['per_instruction'].get(t, {}).get('n', 0) for n in names)})" for t in types_], fontsize=7)
    for i in range(len(types_)):
        for j in range(len(names)):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if grid[i, j] < 0.5 else "black")
    fig.colorbar(im, ax=ax, label=f"accuracy ({metric})")
    ax.set_title(f"{bench} per instruction type ({metric})")
    fig.tight_layout()
    plt.close(fig)
    return fig


# -- per-item scores, confidence intervals, paired tests against the base ----------------------------------

SPLITS = {"ifeval": "IFEval Pr(S)", "ifbench": "IFBench Pr(S)", "followbench": "FollowBench SSR (by item)", "trained_instructions": "trained instr., held-out queries",
          "online_instructions": "online-DPO-trained instr., held-out queries",
          "heldout_instructions": "held-out instructions"}


def item_scores(pairs: Sequence[dict], outs: Sequence[Sequence[str]], instructions: Sequence[dict], runner) -> list[dict]:
    """One record per (item, response) with its verifier pass rate (greedy evaluation: one response per item)."""
    if not pairs:
        return []
    filled = [dict(p, responses=list(o)) for p, o in zip(pairs, outs)]
    return scoring.pass_rates(filled, scoring.functions_of(instructions), runner)


def subset_split(items: dict[str, dict[str, dict]], clusters: dict[str, dict], src: str, dst: str,
                 keep: set[str]) -> bool:
    """Add split ``dst``: the items of ``src`` whose instruction (``clusters[src]``) is in ``keep``, for every
    checkpoint (e.g. the trained instructions online DPO actually found pairs for). Added only when it is a
    proper, non-empty part of ``src``; returns whether it was."""
    ids = {k for k, ins in clusters.get(src, {}).items() if ins in keep}
    if not ids or ids == set(clusters.get(src, {})):
        return False
    clusters[dst] = {k: clusters[src][k] for k in ids}
    for by_split in items.values():
        if src in by_split:
            by_split[dst] = {k: v for k, v in by_split[src].items() if k in ids}
    return True


def paired_stats(items: dict[str, dict[str, dict]], clusters: dict[str, dict] | None = None, base: str = "base",
                 inits: dict[str, str] | None = None) -> list[dict]:
    """Per checkpoint and split: the mean score with its 95% interval and, for every checkpoint but ``base``,
    the paired difference from ``base`` on the same items (``delta_*``: 95% interval, two-sided p, interval
    and p by instruction). With ``inits`` (checkpoint -> the checkpoint it was trained from, e.g. DPO -> SFT)
    also the paired difference from its own init (``init_*``), the contrast the papers' "+DPO" rows make;
    skipped where the init is the base itself or was not evaluated.

    ``items``: checkpoint -> split -> {item id: score in [0, 1]}; ``clusters``: split -> {item id: instruction}."""
    from . import stats

    def delta(prefix, ref, scores, split):
        return {f"{prefix}_{k}": v for k, v in stats.paired(ref, scores, (clusters or {}).get(split)).items()
                if k not in ("base", "other")}

    rows = []
    for name, by_split in items.items():
        for split, scores in by_split.items():
            if not scores:
                continue
            row = {"checkpoint": name, "split": split, **{f"score_{k}": v for k, v in stats.mean_ci(list(scores.values())).items()}}
            ref = items.get(base, {}).get(split)
            if name != base and ref:
                row.update(delta("delta", ref, scores, split))
            init = (inits or {}).get(name)
            init_scores = items.get(init, {}).get(split) if init not in (None, base, name) else None
            if init_scores:
                row.update(init=init, **delta("init", init_scores, scores, split))
            rows.append(row)
    return rows


def ci_table(rows: Sequence[dict]):
    """The paired-statistics rows as a readable table: percent, 95% intervals, the tests against the base and
    against each checkpoint's own init."""
    import pandas as pd

    def pct(x):
        return None if x is None else round(100 * x, 1)

    def pval(x):
        return None if x is None else float(f"{x:.3g}")

    out = []
    for r in rows:
        d = {"checkpoint": r["checkpoint"], "split": SPLITS.get(r["split"], r["split"]), "n": r["score_n"],
             "score %": pct(r["score_mean"]), "95% CI": f"[{pct(r['score_lo'])}, {pct(r['score_hi'])}]"}
        for prefix, label in (("delta", "vs base"), ("init", "vs init")):
            if r.get(f"{prefix}_diff") is None:
                continue
            if prefix == "init":
                d["init"] = r["init"]
            d.update({f"Δ {label}": pct(r[f"{prefix}_diff"]),
                      f"Δ {label} 95% CI": f"[{pct(r[f'{prefix}_lo'])}, {pct(r[f'{prefix}_hi'])}]",
                      f"p {label}": pval(r[f"{prefix}_p"]),
                      f"wins/losses {label}": f"{r[f'{prefix}_wins']}/{r[f'{prefix}_losses']}"})
            if r.get(f"{prefix}_cluster_lo") is not None:
                d[f"Δ {label} 95% CI by instruction (t, G-1 df)"] = (
                    f"[{pct(r[f'{prefix}_cluster_lo'])}, {pct(r[f'{prefix}_cluster_hi'])}], "
                    f"G={r[f'{prefix}_n_clusters']}, p={pval(r[f'{prefix}_cluster_p'])}")
        out.append(d)
    return pd.DataFrame(out)


def plot_ci(rows: Sequence[dict], title: str = "score with 95% CI, by split"):
    """Dot-and-whisker: one panel per split, one point per checkpoint, the base's interval shaded."""
    import matplotlib.pyplot as plt

    splits = list(dict.fromkeys(r["split"] for r in rows))
    fig, axes = plt.subplots(1, max(1, len(splits)), figsize=(3.2 * max(1, len(splits)), 2.8), squeeze=False)
    for ax, split in zip(axes[0], splits):
        rs = [r for r in rows if r["split"] == split]
        x = list(range(len(rs)))
        m = [100 * r["score_mean"] for r in rs]
        ax.errorbar(x, m, yerr=[[mi - 100 * r["score_lo"] for mi, r in zip(m, rs)],
                                [100 * r["score_hi"] - mi for mi, r in zip(m, rs)]], fmt="o", capsize=3)
        base = next((r for r in rs if "delta_diff" not in r), None)
        if base is not None:
            ax.axhspan(100 * base["score_lo"], 100 * base["score_hi"], color="#8c959f", alpha=0.15)
        ax.set_xticks(x, [r["checkpoint"] for r in rs], rotation=30, fontsize=8)
        ax.set_title(f"{SPLITS.get(split, split)} (n={rs[0]['score_n']})", fontsize=8)
        ax.set_ylabel("%")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_deltas(rows: Sequence[dict], title: str = "paired differences with 95% CI (thick: by item; thin: by instruction, t)"):
    """The contrasts themselves, one panel per split: each checkpoint's difference from the base (circle) and
    from its own init (square), with the by-item 95% interval (thick) and the by-instruction one (thin, t with
    G - 1 df). The marginal intervals of ``plot_ci`` overlap even where the paired difference is clear."""
    import matplotlib.pyplot as plt

    splits = [s for s in dict.fromkeys(r["split"] for r in rows) if any(r.get("delta_diff") is not None for r in rows
                                                                         if r["split"] == s)]
    fig, axes = plt.subplots(1, max(1, len(splits)), figsize=(3.3 * max(1, len(splits)), 2.9), squeeze=False)
    for ax, split in zip(axes[0], splits):
        labels, y = [], 0
        for r in (r for r in rows if r["split"] == split):
            for prefix, marker, colour, vs in (("delta", "o", "#0969da", "base"), ("init", "s", "#bf3989", r.get("init"))):
                if r.get(f"{prefix}_diff") is None:
                    continue
                d = 100 * r[f"{prefix}_diff"]
                if r.get(f"{prefix}_cluster_lo") is not None:
                    ax.plot([100 * r[f"{prefix}_cluster_lo"], 100 * r[f"{prefix}_cluster_hi"]], [y, y], color=colour, lw=0.8, alpha=0.6)
                ax.plot([100 * r[f"{prefix}_lo"], 100 * r[f"{prefix}_hi"]], [y, y], color=colour, lw=3, alpha=0.8)
                ax.plot([d], [y], marker=marker, color=colour)
                labels.append(f"{r['checkpoint']} - {vs}\np={r[f'{prefix}_p']:.2g}")
                y += 1
        ax.axvline(0, color="#57606a", lw=0.8, ls="--")
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("difference, points", fontsize=8)
        ax.set_title(SPLITS.get(split, split), fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig


def by_instruction(items: dict[str, dict[str, dict]], clusters: dict[str, dict], split: str):
    """Items passed per instruction and checkpoint on one split (a sum of pass rates; greedy answers score 0/1):
    where a difference comes from, one instruction or all of them."""
    import pandas as pd

    ids = clusters.get(split, {})
    table: dict[str, dict[str, float]] = {}
    for name, by_split in items.items():
        for k, v in (by_split.get(split) or {}).items():
            table.setdefault(ids[k], {}).setdefault(name, 0.0)
            table[ids[k]][name] += v
    n = {ins: sum(1 for k in ids if ids[k] == ins) for ins in table}
    df = pd.DataFrame.from_dict(table, orient="index")[[c for c in items if any(c in t for t in table.values())]]
    df.insert(0, "n", pd.Series(n))
    return df.sort_index()

