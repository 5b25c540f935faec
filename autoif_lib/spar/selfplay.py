"""One self-play iteration's glue, pure over records where it can be: which prompts, sampling, the
judged samples and their roots, funnels and views. Model calls go through ``roles``."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from typing import Sequence

from ..models import SamplingParams
from .pipeline import stage_name


def step(ctx, name: str) -> str:
    """This iteration's stage for ``name`` (``step(ctx, "judge") == "09_t2_judge"`` in iteration 2)."""
    return stage_name(ctx.p.iteration, name)


def iteration_prompts(prompts: Sequence[dict], max_prompts: int, seed: int, iteration: int) -> list[dict]:
    """A seeded sample drawn anew each iteration (all when ``max_prompts`` is 0 or covers them)."""
    if not max_prompts or max_prompts >= len(prompts):
        return list(prompts)
    return random.Random(seed * 1000 + iteration).sample(list(prompts), max_prompts)


def sample(ctx, actor: str, prompts: Sequence[dict]) -> list[dict]:
    """K responses per prompt from the actor: one record per response (``id = <prompt id>_<k>``)."""
    p = ctx.p
    gen = ctx.generator(dataclasses.replace(p.generation, model=actor))
    sp = SamplingParams.of(p, n=p.n_samples, seed=p.seed + 100 * p.iteration)
    outs = gen.generate([[{"role": "user", "content": r["prompt"]}] for r in prompts], sp, desc="actor samples")
    return [{"id": f"{r['id']}_{k}", "prompt_id": r["id"], "prompt": r["prompt"], "response": text, "k": k}
            for r, o in zip(prompts, outs) for k, text in enumerate(o)]


def judge_samples(judge, samples: Sequence[dict]) -> list[dict]:
    """Every sample with its judgment: value, label (None: dropped), critique, votes, verifier result."""
    recs = judge.judge_many([(s["prompt"], s["response"]) for s in samples])
    return [dict(s, **r) for s, r in zip(samples, recs)]


def pick_roots(votes: Sequence[dict], seed: int) -> list[dict]:
    """For every prompt with a negative sample, one negative (seeded) becomes a tree root."""
    by_prompt: dict[str, list[dict]] = {}
    for v in votes:
        if v["label"] is False and v["response"].strip():
            by_prompt.setdefault(v["prompt_id"], []).append(v)
    rng = random.Random(seed)
    roots = []
    for pid in sorted(by_prompt):
        r = rng.choice(by_prompt[pid])
        roots.append({"prompt_id": pid, "prompt": r["prompt"], "response": r["response"],
                      "critique": r["critique"], "value": r["value"], "sample_id": r["id"]})
    return roots


def vote_summary(votes: Sequence[dict]) -> dict:
    out = Counter()
    for v in votes:
        out["yes" if v["label"] else "no" if v["label"] is False else "dropped"] += 1
        info = v.get("votes") or {}
        out["invalid_judgments"] += info.get("invalid", 0)
        if info.get("outcome") and info["outcome"] != "majority":
            out[info["outcome"]] += 1
        if info.get("rounds", 1) > 1:
            out["resampled"] += 1
    return dict(out)


def judge_funnel(samples, votes, roots):
    from ..reporting import Funnel

    s = vote_summary(votes)
    f = Funnel("judged samples")
    f.step("actor samples", 0, len(samples), allow_growth=True)
    labelled = s.get("yes", 0) + s.get("no", 0)
    f.step("judged: a majority label", len(samples), labelled,
           {"tie_dropped": s.get("tie_dropped", 0), "no_valid_vote": s.get("no_valid_vote", 0),
            "verifier_or_vote_missing": len(samples) - labelled - s.get("tie_dropped", 0) - s.get("no_valid_vote", 0)})
    f.step("negatives", labelled, s.get("no", 0), {"positive": s.get("yes", 0)})
    f.step("one root per prompt with a negative", s.get("no", 0), len(roots),
           {"other negatives of the same prompt": s.get("no", 0) - len(roots)})
    return f


def labelled_samples(votes: Sequence[dict]) -> list[dict]:
    """The judged samples with a label, in the shape ``data.sampled_pairs`` / ``data.rft_data`` read."""
    return [{"prompt": v["prompt"], "prompt_id": v["prompt_id"], "response": v["response"], "critique": v["critique"],
             "label": v["label"], "value": v["value"]} for v in votes if v["label"] is not None]


def refiner_spec(ctx, refiner: str):
    return dataclasses.replace(ctx.p.generation, model=refiner)


def search_funnel(roots, trees):
    from ..reporting import Funnel

    t = [x.to_dict() if hasattr(x, "to_dict") else x for x in trees]
    ok = sum(1 for x in t if x["success"])
    f = Funnel("trees")
    f.step("roots (one negative per prompt)", 0, len(roots), allow_growth=True)
    f.step("tree with a node valued > 0.5", len(roots), ok, {"no_success_within_depth": len(roots) - ok})
    return f


def tree_view(tree) -> dict:
    """A tree for the record browser: root, then each node with its parent, depth, value and critique."""
    t = tree.to_dict() if hasattr(tree, "to_dict") else tree
    nodes = t["nodes"]
    return {"prompt": t["prompt"], "success": t["success"], "final": t["final"], "calls": t["calls"],
            "nodes": [{"id": n["id"], "parent": n["parent"], "depth": n["depth"], "value": n["value"],
                       "status": n["status"], "response": n["response"], "critique": n["critique"]} for n in nodes]}


def rft_caps(p) -> dict:
    return {"refinement_chains": p.cap_refinement_chains, "tree_positive_judgments": p.cap_tree_positive,
            "tree_negative_judgments": p.cap_tree_negative, "sample_negative_judgments": p.cap_sample_negative,
            "sample_positive_judgments": p.cap_sample_positive}
