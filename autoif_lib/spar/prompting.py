"""Stage 00 of SPaR: the plain requests, the evolved or composed prompts, the split and its funnel."""

from __future__ import annotations

import random
from collections import Counter
from typing import Sequence

from ..models import SamplingParams
from . import evolve, prompts


def load_requests(ctx) -> list[dict]:
    """The plain requests: the shipped everyday queries (or ``queries_file``), a seeded sample of ``n_requests``."""
    from ..autoif.seeds import load_queries  # the same request pool AutoIF pairs its instructions with

    queries, _ = load_queries(ctx.input(ctx.p.queries_file) if ctx.p.queries_file else None)
    reqs = [{"id": q["id"], "request": q["query"]} for q in queries]
    if ctx.p.n_requests and ctx.p.n_requests < len(reqs):
        reqs = random.Random(ctx.p.seed).sample(reqs, ctx.p.n_requests)
    return reqs


def seed_constraints() -> list[dict]:
    """AutoIF's seed constraints with their reference verifiers (the verifiable pool for ``compose``)."""
    from ..autoif.seeds import load_seeds

    return [s for s in load_seeds() if s.get("verifier")]


def make_prompts(ctx, requests: Sequence[dict]) -> dict:
    """{"prompts", "rejects", "log"}: evolved by the supervisor (one call per request, one main constraint
    each) or composed from seed constraints with verifiers."""
    p = ctx.p
    if p.source == "compose":
        recs = evolve.compose(requests, seed_constraints(), p.min_constraints, p.max_constraints, p.seed)
        return {"prompts": recs, "rejects": Counter(), "log": []}
    mains = evolve.choose_main_constraints(len(requests), p.seed)
    convs = [prompts.evolve(evolve.request_text(r), m) for r, m in zip(requests, mains)]
    sp = SamplingParams.of(p)
    outs = [o[0] for o in ctx.generator(p.supervisor).generate(convs, sp, desc="evolve")] if convs else []
    res = evolve.collect(requests, outs, mains)
    res["rejected"] = [dict(e, completion=outs[i]) for i, e in enumerate(res["log"]) if e["status"] == "rejected"]
    return res


def split(records: Sequence[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, heldout) by request: every prompt made from one request lands on the same side."""
    ids = sorted({r["request_id"] for r in records})
    if fraction <= 0 or len(ids) < 2:
        return list(records), []
    n = min(len(ids) - 1, max(1, round(fraction * len(ids))))
    held = set(random.Random(seed).sample(ids, n))
    return [r for r in records if r["request_id"] not in held], [r for r in records if r["request_id"] in held]


def constraint_counts(records: Sequence[dict]) -> dict[str, int]:
    c = Counter(len(r.get("constraints") or []) for r in records)
    return {f"{k} constraints": c[k] for k in sorted(c)}


def funnel(requests, refused, res, train, heldout):
    from ..reporting import Funnel

    f = Funnel("prompts")
    f.step("plain requests", 0, len(requests), allow_growth=True)
    f.step("not math or code", len(requests), len(requests) - len(refused), {"refused_math_or_code": len(refused)})
    n_in = len(requests) - len(refused)
    f.step("evolved / composed and parsed", n_in, len(res["prompts"]),
           {k: v for k, v in res["rejects"].items() if k != evolve.PREFILTER_REASON})
    f.step("train (the rest held out)", len(res["prompts"]), len(train), {"held_out": len(heldout)})
    return f
