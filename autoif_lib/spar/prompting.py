"""Stage 00 of SPaR: the plain requests, the evolved or composed prompts, the split and its funnel."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Sequence

from ..models import SamplingParams
from . import evolve, prompts


def load_requests(ctx) -> tuple[list[dict], dict]:
    """(inputs, counts ``{"read", "kept", "rejects": {reason: n}}``): the plain requests (the shipped everyday queries, or ``queries_file``), or
    with ``source: file`` the prompts of ``prompts_file``; the length filter applied and counted, then a seeded
    sample of ``n_requests``."""
    from ..seeds import load_queries  # the same request pool AutoIF pairs its instructions with

    p = ctx.p
    limit = p.max_chars or 10 ** 9
    if p.source == "file":
        recs, rejects = load_prompts_file(ctx.input(p.prompts_file), p.min_chars, limit)
    else:
        queries, rejects = load_queries(ctx.input(p.queries_file) if p.queries_file else None, p.min_chars, limit)
        recs = [{"id": q["id"], "request": q["query"]} for q in queries]
    counts = {"read": len(recs) + sum(rejects.values()), "kept": len(recs),
              "rejects": {k: v for k, v in rejects.items() if v}}
    if p.n_requests and p.n_requests < len(recs):
        recs = random.Random(p.seed).sample(recs, p.n_requests)
    return recs, counts


def load_prompts_file(path, min_chars: int = 1, max_chars: int = 10 ** 9) -> tuple[list[dict], dict[str, int]]:
    """Already-evolved prompts as prompt records, and rejects by reason (nothing dropped silently).

    A record gives its prompt as ``prompt`` (a string or a conversation), ``conversations``/``messages`` (the first
    user turn), or as the released evolve output: a raw ``response`` holding ``[[start]] ... [[end]]`` and a
    Constraints line, parsed as our own evolve step parses it (its reject reasons counted). ``constraints`` and
    ``verifiers`` are kept when present; ``request_id`` (else ``origin``, else the id) groups the split.
    """
    from ..seeds import _iter_query_source, _query_text

    out: list[dict] = []
    rejects: Counter = Counter()
    seen: set[str] = set()
    for where, default_id, rec in _iter_query_source(Path(path)):
        constraints = rec.get("constraints") if isinstance(rec.get("constraints"), list) else []
        raw = rec.get("response")
        if isinstance(raw, str) and ("[[start]]" in raw.lower() or evolve._NONE_RE.match(raw.strip())):
            parsed = evolve.parse_evolved_full(raw)
            if parsed.reason:
                rejects[parsed.reason] += 1
                continue
            text, constraints = parsed.prompt, parsed.constraints
        else:
            text = _query_text(rec, where)
        if not isinstance(text, str):
            rejects["no_text"] += 1
        elif not (text := text.strip()):
            rejects["empty"] += 1
        elif len(text) < min_chars:
            rejects["too_short"] += 1
        elif len(text) > max_chars:
            rejects["too_long"] += 1
        elif evolve.normalize(text) in seen:
            rejects["duplicate"] += 1
        else:
            seen.add(evolve.normalize(text))
            rid = str(rec.get("id") or default_id)
            group = rec.get("request_id", rec.get("origin"))
            r = {"id": rid, "request_id": str(group) if isinstance(group, (str, int)) else rid, "prompt": text,
                 "constraints": [c for c in constraints if isinstance(c, str)], "origin": "file"}
            if isinstance(rec.get("main_constraint"), (list, str)):
                r["main_constraint"] = rec["main_constraint"]
            if isinstance(rec.get("verifiers"), list) and all(isinstance(v, str) for v in rec["verifiers"]):
                r["verifiers"] = rec["verifiers"]
            out.append(r)
    return out, dict(rejects)


def prefilter(ctx, requests: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """(kept, refused): the regex math/code heuristic when ``math_code_filter: regex``; otherwise nothing is refused
    here (``llm``: the supervisor refuses them itself while evolving, counted among its rejects)."""
    if ctx.p.math_code_filter == "regex" and ctx.p.source != "file":
        return evolve.prefilter(requests)
    return list(requests), []


def seed_constraints(path=None) -> list[dict]:
    """Seed constraints with their reference verifiers (the verifiable pool for ``compose``): the shipped seeds, or
    the seed file ``path`` (``seeds.load_seeds``'s format)."""
    from ..seeds import load_seeds

    return [s for s in load_seeds(path) if s.get("verifier")]


def make_prompts(ctx, requests: Sequence[dict]) -> dict:
    """{"prompts", "rejects", "log"}: evolved by the supervisor (one call per request, one main constraint
    each) or composed from seed constraints with verifiers."""
    p = ctx.p
    if p.source == "file":  # already evolved: nothing to write
        return {"prompts": list(requests), "rejects": Counter(), "log": []}
    if p.source == "compose":
        recs = evolve.compose(requests, seed_constraints(ctx.input(p.seeds_file) if p.seeds_file else None), p.min_constraints, p.max_constraints, p.seed)
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


def funnel(requests, refused, res, train, heldout, inputs: dict | None = None, math_code_filter: str = "regex"):
    """The stage's funnel: inputs read -> length filter -> sample -> math/code (the regex prefilter; the LLM's
    own refusals are rejects of the evolve step) -> prompts -> train split."""
    from ..reporting import Funnel

    f = Funnel("prompts")
    if inputs:
        f.step("inputs read", 0, inputs["read"], allow_growth=True)
        f.step("length filter and checks", inputs["read"], inputs["kept"], inputs["rejects"])
        f.step("seeded sample (n_requests)", inputs["kept"], len(requests), {"not_sampled": inputs["kept"] - len(requests)})
    else:
        f.step("inputs read", 0, len(requests), allow_growth=True)
    if math_code_filter == "regex":
        f.step("not math or code (regex)", len(requests), len(requests) - len(refused), {"refused_math_or_code": len(refused)})
    n_in = len(requests) - len(refused)
    f.step("evolved / composed / read", n_in, len(res["prompts"]),
           {k: v for k, v in res["rejects"].items() if k != evolve.PREFILTER_REASON})
    f.step("train (the rest held out)", len(res["prompts"]), len(train), {"held_out": len(heldout)})
    return f
