"""Stage 02: K verification-function samples per instruction, parsed into functions and cases.

Each sample should be one JSON object ``{"func": ..., "cases": [...]}``; the
parser copes with fences, prose, single quotes, string booleans and functions
given outside the JSON. Every unusable sample or case is counted by reason.
With ``add_reference`` the seeds' hand-written verifiers and cases join the
pool, labelled ``origin: reference`` so the funnel can tell them apart.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from . import parsing, prompts


def build_requests(instructions: Sequence[dict], n_cases: int) -> list[list[dict]]:
    return [prompts.verifier(r["instruction"], n_cases) for r in instructions]


def collect(instructions: Sequence[dict], samples: Sequence[Sequence[str]], add_reference: bool = False) -> dict:
    """Turn K raw samples per instruction into candidate functions and cases.

    Returns ``{"candidates": [...], "samples": [...], "sample_rejects": Counter,
    "case_rejects": Counter, "notes": Counter}``.
    """
    candidates, log = [], []
    sample_rejects: Counter = Counter()
    case_rejects: Counter = Counter()
    notes: Counter = Counter()
    for rec, texts in zip(instructions, samples):
        functions, cases = [], []
        for k, text in enumerate(texts):
            ps = parsing.parse_verifier_sample(text)
            case_rejects.update(ps.case_rejects)
            notes.update(ps.notes)
            status = ps.reject or "ok"
            if ps.reject:
                sample_rejects[ps.reject] += 1
            else:
                if ps.func:
                    functions.append({"src": ps.func, "origin": "model", "sample": k})
                for c in ps.cases:
                    cases.append({"input": c["input"], "output": c["output"], "origin": "model", "sample": k})
            log.append({"id": rec["id"], "sample": k, "status": status, "has_func": bool(ps.func),
                        "n_cases": len(ps.cases), "notes": list(ps.notes), "completion": text})
        if add_reference and rec.get("verifier"):
            functions.append({"src": rec["verifier"], "origin": "reference", "sample": -1})
            for c in rec.get("cases", []):
                cases.append({"input": c["input"], "output": c["output"], "origin": "reference", "sample": -1})
        candidates.append({k: v for k, v in rec.items() if k not in ("verifier", "cases")}
                          | {"functions": functions, "cases": cases})
    return {"candidates": candidates, "samples": log, "sample_rejects": sample_rejects,
            "case_rejects": case_rejects, "notes": notes}


def select(instructions: Sequence[dict], max_n: int, seed: int) -> list[dict]:
    """A seeded, balanced subset when capped: up to half new instructions, the rest seeds.

    Taking "the first N" would only ever test seeds, since they come first in the file.
    """
    if not max_n or len(instructions) <= max_n:
        return list(instructions)
    import random

    rng = random.Random(seed)
    new = [r for r in instructions if r.get("origin") != "seed"]
    old = [r for r in instructions if r.get("origin") == "seed"]
    take_new = rng.sample(new, min(len(new), max_n // 2))
    take_old = rng.sample(old, min(len(old), max_n - len(take_new)))
    if len(take_new) + len(take_old) < max_n:  # not enough seeds: top up with new ones
        rest = [r for r in new if r not in take_new]
        take_new += rng.sample(rest, min(len(rest), max_n - len(take_new) - len(take_old)))
    chosen = {id(r) for r in take_new + take_old}
    return [r for r in instructions if id(r) in chosen]  # keep file order


def funnel(res: dict):
    """samples → parsed samples; then functions and cases found, by origin."""
    from ..reporting import Funnel

    n_samples = len(res["samples"])
    ok = sum(1 for s in res["samples"] if s["status"] == "ok")
    f = Funnel("verifier samples")
    f.step("samples → usable", n_samples, ok, dict(res["sample_rejects"]))
    with_func = sum(1 for s in res["samples"] if s["status"] == "ok" and s["has_func"])
    f.step("usable → with a function", ok, with_func, {"no_func": ok - with_func})
    n_cases_raw = sum(s["n_cases"] for s in res["samples"] if s["status"] == "ok") + sum(res["case_rejects"].values())
    n_cases = sum(s["n_cases"] for s in res["samples"] if s["status"] == "ok")
    f.step("cases proposed → valid", n_cases_raw, n_cases, dict(res["case_rejects"]))
    return f


def sample(ctx, instructions: Sequence[dict]) -> list[list[str]]:
    """Stage 02's model calls: ``n_samples`` verifier samples per instruction from the supervisor; with
    ``n_samples: 0`` none (the reference verifiers only, no model call), one empty list per instruction."""
    from ..models import SamplingParams

    p = ctx.p
    if not p.n_samples:
        print("n_samples is 0: no model-written verifiers; the seeds' reference verifiers only")
        return [[] for _ in instructions]
    out = ctx.generator(p.supervisor).generate(build_requests(instructions, p.cases_per_sample),
                                               SamplingParams.of(p, n=p.n_samples), desc="verifiers")
    print(out[0][0][:1200] if out and out[0] else "(no sample)")
    return out
