"""SPaR's evaluation, per iteration: the actor on IFEval (and IFBench) with and without inference-time tree search, the
refiner's judging accuracy against labels no model gives, and the pair similarity of refined vs sampled pairs.

Labels for the refiner come from two places: IFEval responses of M0 labelled by Google's checkers (does the
response follow every instruction, strict), and AutoIF's held-out responses labelled by the seeds'
reference verifiers. Accuracy and F1 (positive = follows) for the majority vote and for one judgment.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Sequence

from .. import io
from ..models import SamplingParams
from ..stats import binomial_se
from . import roles, search
from .pipeline import models_source, stage_name


def models_per_iteration(ctx) -> dict[int, dict]:
    """{t: {"actor", "refiner"}} for t = 0 (M0, R0) .. iterations."""
    out = {0: io.read_json(ctx.input("01_init", "models.json"))}
    for t in range(1, ctx.p.iterations + 1):
        out[t] = io.read_json(ctx.input(models_source(t + 1) if t < 3 else stage_name(3, "refiner"), "models.json"))
    return out


def labelled_items(ctx, examples: Sequence[dict]) -> dict[str, list[dict]]:
    """Ground truth for judging: AutoIF held-out responses (reference verifiers). IFEval items are added
    once M0 has answered (``evaluate_all``)."""
    from ..seeds import load_heldout_responses, load_seeds

    seeds = {s["id"]: s for s in load_seeds()}
    held = [{"prompt": seeds[r["seed_id"]]["instruction"], "response": r["response"], "label": r["label"],
             "family": seeds[r["seed_id"]].get("family", r["seed_id"])}
            for r in load_heldout_responses() if r["seed_id"] in seeds]
    n = ctx.p.judge_eval_items
    if n and n < len(held):
        held = random.Random(ctx.p.seed).sample(held, n)
    return {"heldout": held}


def _binary_metrics(pred: Sequence[bool | None], gold: Sequence[bool]) -> dict:
    """Accuracy (a dropped verdict counts as wrong) and F1 with 'follows' as the positive class."""
    n = len(gold)
    if not n:
        return {"n": 0, "acc": None, "f1": None, "dropped": 0}
    tp = sum(1 for p, g in zip(pred, gold) if p is True and g)
    fp = sum(1 for p, g in zip(pred, gold) if p is True and not g)
    fn = sum(1 for p, g in zip(pred, gold) if p is not True and g)
    correct = sum(1 for p, g in zip(pred, gold) if p is not None and p == g)
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0
    return {"n": n, "acc": round(correct / n, 4), "f1": round(f1, 4), "dropped": sum(p is None for p in pred),
            "acc_se": round(binomial_se(correct / n, n), 4)}


def judging_accuracy(ctx, refiner: str, items: Sequence[dict]) -> dict:
    """The refiner's majority vote and its single judgment against the labels, overall and per family."""
    majority = llm_judge(ctx, refiner)
    pairs = [(it["prompt"], it["response"]) for it in items]
    voted = [r["label"] for r in majority.judge_many(pairs)]
    single_judge = llm_judge(ctx, refiner, n=1, max_rounds=1)
    single = [r["label"] for r in single_judge.judge_many(pairs)]
    gold = [bool(it["label"]) for it in items]
    fams: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        fams.setdefault(it.get("family", "all"), []).append(i)
    return {"majority": _binary_metrics(voted, gold), "single": _binary_metrics(single, gold),
            "per_family": {f: _binary_metrics([voted[i] for i in ix], [gold[i] for i in ix]) for f, ix in fams.items()},
            "calls": {"majority": majority.calls, "single": single_judge.calls}}


def llm_judge(ctx, refiner: str, n: int | None = None, max_rounds: int | None = None) -> roles.Judge:
    """The refiner's own vote (no verifiers exist for IFEval prompts or for these labelled items)."""
    p = ctx.p
    gen = ctx.generator(dataclasses.replace(p.generation, model=refiner))
    return roles.Judge("llm", gen, n or p.n_judgments, p.judge_temperature, p.judge_max_new_tokens,
                       max_rounds or p.max_rounds, p.seed, p.judge_prefill, style=p.judge_style)


def make_refiner(ctx, refiner: str) -> roles.Refiner:
    p = ctx.p
    return roles.Refiner(ctx.generator(dataclasses.replace(p.generation, model=refiner)), p.refine_temperature,
                         p.refine_max_new_tokens, p.seed, p.refine_prefill, p.refine_retries)


def refiner_tables(ctx, models: dict[int, dict], runner) -> dict[int, dict]:
    """The paper's refiner tables per iteration t: R_t's judging on LLMBar turned pointwise (Table 2) and its
    refinement accuracy (Table 3) on held-out tasks built once from M0's failing answers, so every R_t refines
    the same ones; graded by the prompts' verifiers (``runner``: the sandbox) and by R_t's own vote.
    Returns {t: {"columns": row columns, "llmbar": ..., "refinement": ..., "records": [...]}} and, under
    key ``"tasks"``, how the tasks were drawn."""
    from . import refiner_eval

    p = ctx.p
    out: dict = {}
    llmbar = (refiner_eval.load_llmbar(None if p.llmbar_source == "sample" else p.llmbar_source)
              if p.llmbar_source else [])
    tasks: list[dict] = []
    if p.refine_eval_tasks:
        actor0 = ctx.generator(dataclasses.replace(p.generation, model=models[0]["actor"]))
        tasks, out["tasks"] = refiner_eval.build_refinement_tasks(
            actor0, ctx.read_jsonl("00_prompts", "heldout_prompts.jsonl"), runner, n=p.refine_eval_tasks,
            k=p.refine_eval_samples, seed=p.seed, max_new_tokens=p.max_new_tokens)
        del actor0
    for t, m in models.items():
        res: dict = {"columns": {}}
        if llmbar:
            res["llmbar"] = refiner_eval.llmbar_judging(llm_judge(ctx, m["refiner"]), llmbar,
                                                        single_judge=llm_judge(ctx, m["refiner"], n=1, max_rounds=1))
            res["columns"].update(refiner_eval.row_columns(llmbar=res["llmbar"]["majority"]))
        if tasks:
            ref = refiner_eval.run_refinement_eval(tasks, make_refiner(ctx, m["refiner"]), llm_judge(ctx, m["refiner"]),
                                                   runner)
            res["refinement"], res["records"] = ref["metrics"], ref["records"]
            res["columns"].update(refiner_eval.row_columns(refinement=ref["metrics"]))
        out[t] = res
    return out


def with_tree_search(ctx, refiner: str, examples: Sequence[dict], outs: Sequence[str]) -> tuple[list[str], dict]:
    """Inference-time search: the refiner judges each answer; failures are refined by tree search and the
    search's final node answers instead. Returns the new answers and the extra model calls."""
    p = ctx.p
    judge = llm_judge(ctx, refiner)
    refiner_fn = make_refiner(ctx, refiner)
    judged = judge.judge_many([(ex["prompt"], o) for ex, o in zip(examples, outs)])
    roots = [{"prompt": ex["prompt"], "response": o, "critique": j["critique"], "value": j["value"] or 0.0, "i": i}
             for i, (ex, o, j) in enumerate(zip(examples, outs, judged)) if j["label"] is False]
    trees = search.run_search(roots, refiner_fn, judge, algorithm=p.algorithm, branch=p.branch, keep=p.keep,
                              max_depth=p.max_depth, success=p.success, budget=p.budget) if roots else []
    new = list(outs)
    replaced = 0
    for root, tree in zip(roots, trees):
        t = tree.to_dict()
        if t["success"] and t["final"] is not None:
            new[root["i"]] = t["nodes"][t["final"]]["response"]
            replaced += 1
    extra = judge.calls["judgment_completions"] + judge.calls["likelihood_scores"] + refiner_fn.calls["refine_completions"]
    calls = {"judged": judge.calls["judged"], "judgment_completions": judge.calls["judgment_completions"],
             "likelihood_scores": judge.calls["likelihood_scores"],
             "refine_completions": refiner_fn.calls["refine_completions"], "trees": len(trees), "replaced": replaced,
             "extra_model_calls_per_prompt": round(extra / max(1, len(examples)), 2)}
    return new, calls


def evaluate_all(ctx, models: dict[int, dict], examples: Sequence[dict], labelled: dict,
                 ifbench_examples: Sequence[dict] = (), refiner: dict | None = None,
                 followbench_examples: Sequence[dict] = ()) -> tuple[list[dict], dict]:
    """Per iteration t: M_t on IFEval (and IFBench, FollowBench when given), with and without tree search; R_t's judging.
    ``details["paired"]``: each M_t against M0 and against the actor it was trained from, item by item on the
    same prompts (IFEval, IFBench), as AutoIF's stage 11 compares its checkpoints; an iteration whose actor did
    not change is not a checkpoint of its own there. ``refiner``: ``refiner_tables``' result, merged into the
    rows (``llmbar_*``, ``refine_*`` columns) and details."""
    from .. import ifeval
    from ..evaluation import general_abilities, paired_stats, score_benchmarks, score_followbench
    from .results import checkpoint_name

    rows, details, items, inits, seen = [], {}, {}, {}, []
    clusters: dict[str, dict] = {}
    general: dict[str, dict] = {}
    fb_judge = ctx.generator(ctx.p.followbench_judge) if followbench_examples else None
    labelled = dict(labelled)
    benchmarks = {"ifeval": examples, "ifbench": list(ifbench_examples)}
    sp = SamplingParams(temperature=0.0, max_new_tokens=ctx.p.max_new_tokens, seed=ctx.p.seed)
    for t, m in models.items():
        gen = ctx.generator(dataclasses.replace(ctx.p.generation, model=m["actor"]))
        summaries, scores, per = score_benchmarks(ctx, gen, f"t{t}", benchmarks, sp)
        fb, scores["followbench"], clusters["followbench"] = score_followbench(ctx, gen, f"t{t}", followbench_examples,
                                                                               sp, fb_judge)
        del gen
        summary, per_prompt = summaries["ifeval"], per["ifeval"]
        outs = [r["response"] for r in per_prompt]  # the answers as scored (<think> stripped)
        # M_t is M_{t-1} when its actor step did not train (no pairs): not a checkpoint of its own
        if t == 0 or ctx.upstream_metrics(stage_name(t, "actor")).get("trained", True):
            name = checkpoint_name(t)
            items[name] = scores
            general[name] = general_abilities(ctx, name, m["actor"])
            if seen:
                inits[name] = seen[-1]
            seen.append(name)
        if t == 0:  # M0's IFEval answers, labelled by Google's checkers, test every refiner's judging
            items0 = [{"prompt": ex["prompt"], "response": o, "label": bool(pp["follow_all_strict"]),
                       "family": ex["instruction_id_list"][0].split(":")[0]}
                      for ex, o, pp in zip(examples, outs, per_prompt)]
            labelled["ifeval"] = items0[: ctx.p.judge_eval_items or None]
        # full precision here (the results table and its standard errors read these); table() rounds for display
        row = {"iteration": t, "actor": m["actor"], "refiner": m["refiner"], "n_prompts": summary["n_prompts"],
               "n_instructions": sum(len(ex["instruction_id_list"]) for ex in examples),
               **{k: 100 * summary[k] for k in ("prompt_strict", "prompt_loose", "inst_strict", "inst_loose")},
               "prompt_strict_se": 100 * (binomial_se(summary["prompt_strict"], summary["n_prompts"]) or 0.0)}
        if "ifbench" in summaries:
            b = summaries["ifbench"]
            row.update({f"ifbench_{k}": 100 * b[k] for k in ("prompt_strict", "prompt_loose", "inst_strict", "inst_loose")})
            row.update(ifbench_n_prompts=b["n_prompts"], ifbench_n_not_scored=b["n_not_scored"],
                       ifbench_n_instructions=sum(v["n"] for v in b["per_instruction"].values()))
        if fb.get("ssr_avg") is not None:
            row.update(followbench_ssr=100 * fb["ssr_avg"], followbench_hsr=100 * fb["hsr_avg"], followbench_csl=fb["csl"])
        if ctx.p.tree_search:
            new, calls = with_tree_search(ctx, m["refiner"], examples, outs)
            _, s2 = ifeval.score_responses(examples, new)
            row.update({f"search_{k}": 100 * s2[k] for k in ("prompt_strict", "prompt_loose", "inst_strict", "inst_loose")})
            row["search_extra_calls_per_prompt"] = calls["extra_model_calls_per_prompt"]
            details[f"t{t}_search_calls"] = calls
        tab = (refiner or {}).get(t) or {}
        row.update(tab.get("columns", {}))
        for key in ("llmbar", "refinement"):
            if key in tab:
                details[f"t{t}_{key}"] = tab[key]
        if tab.get("records"):
            ctx.write_jsonl(f"refinement_t{t}.jsonl", tab["records"])
        for source, its in labelled.items():
            acc = judging_accuracy(ctx, m["refiner"], its)
            row[f"judge_{source}_acc"] = acc["majority"]["acc"]
            row[f"judge_{source}_f1"] = acc["majority"]["f1"]
            row[f"judge_{source}_single_acc"] = acc["single"]["acc"]
            details[f"t{t}_judge_{source}"] = acc
        rows.append(row)
    details["paired"] = paired_stats(items, clusters, base=checkpoint_name(0), inits=inits)
    if any(general.values()):  # the results themselves are in general_<name>.json (per-item scores: large)
        details["general"] = [n for n, g in general.items() if g]
    if refiner and "tasks" in refiner:
        details["refinement_tasks"] = refiner["tasks"]
    return rows, details


def general_results(ctx, details: dict) -> dict[str, dict]:
    """The lm-eval results ``evaluate_all`` wrote, per checkpoint (``general_<name>.json``)."""
    return {n: io.read_json(ctx.path(f"general_{n}.json")) for n in details.get("general", [])}


def table(rows: Sequence[dict]):
    import pandas as pd

    cols = [c for c in rows[0] if c not in ("actor", "refiner")] if rows else []
    return pd.DataFrame(rows)[cols].set_index("iteration").round(3)


def similarity(ctx) -> dict[int, dict]:
    out = {}
    for t in range(1, ctx.p.iterations + 1):
        m = ctx.upstream_metrics(stage_name(t, "data"))
        out[t] = m["similarity"]
    return out


def plot_iterations(tab):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    x = list(tab.index)
    for col, label in (("prompt_strict", "Pr(S)"), ("inst_strict", "Ins(S)"), ("search_prompt_strict", "Pr(S) + search")):
        if col in tab:
            axes[0].plot(x, tab[col], marker="o", label=label)
    axes[0].set_xlabel("iteration (M_t)")
    axes[0].set_ylabel("IFEval %")
    axes[0].set_xticks(x)
    axes[0].legend(fontsize=8)
    for col in [c for c in tab.columns if c.startswith("judge_") and c.endswith("_acc")]:
        axes[1].plot(x, tab[col], marker="o", label=col.replace("judge_", "").replace("_acc", ""))
    axes[1].set_xlabel("iteration (R_t)")
    axes[1].set_ylabel("judging accuracy")
    axes[1].set_xticks(x)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_similarity(sim: dict):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    its = sorted(sim)
    for k, label in (("refined", "refinement pairs"), ("sampled", "sampled pairs")):
        ys = [sim[t][k].get("mean") for t in its]
        ax.plot(its, [y if y is not None else float("nan") for y in ys], marker="o", label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel("chosen-rejected similarity")
    ax.set_xticks(its)
    ax.set_title("pair similarity (paper: 0.90 refined vs 0.85 sampled)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig
