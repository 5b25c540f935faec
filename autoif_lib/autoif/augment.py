"""Stage 01: self-instruct augmentation of the seed instructions.

Pure over records: ``build_calls`` makes the K prompts (each shows a seeded
sample of seeds, so calls differ even at low temperature), ``collect`` parses
the completions, normalizes, drops malformed, exact and near duplicates,
merges with the seeds and records the yield of every call.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Sequence

from . import parsing, prompts


def build_calls(seed_instructions: Sequence[str], n_calls: int, n_examples: int, n_new: int,
                seed: int) -> list[list[dict]]:
    rng = random.Random(seed)
    calls = []
    for _ in range(n_calls):
        shown = rng.sample(list(seed_instructions), min(n_examples, len(seed_instructions)))
        calls.append(prompts.augment(shown, n_new))
    return calls


def collect(seeds: list[dict], completions: Sequence[str], near_threshold: float = 0.85,
            max_new: int = 0) -> dict:
    """Parse every call's completion; return new records, per-call yields and reject counts.

    Returns ``{"instructions": seeds + new, "new": [...], "calls": [...], "rejects": Counter,
    "n_proposed": int}``; every proposed line is either kept or counted under a reason.
    """
    existing = [s["instruction"] for s in seeds]
    new: list[dict] = []
    calls: list[dict] = []
    rejects: Counter = Counter()
    n_proposed = 0
    for i, text in enumerate(completions):
        items, bad = parsing.parse_instruction_list(text)
        normalized = [parsing.normalize_instruction(x) for x in items]
        fresh, dups = parsing.dedup(normalized, existing + [r["instruction"] for r in new], near_threshold)
        kept = []
        for ins in fresh:
            if max_new and len(new) >= max_new:
                dups["over_max_new"] += 1
                continue
            rec = {"id": f"aug_{i:04d}_{len(kept):02d}", "instruction": ins, "origin": "augmented", "call": i}
            new.append(rec)
            kept.append(ins)
        call_rejects = Counter(bad) + Counter(dups)
        rejects.update(call_rejects)
        n_proposed += len(items) + sum(bad.values())
        calls.append({"call": i, "proposed": len(items) + sum(bad.values()), "well_formed": len(items),
                      "new": len(kept), "rejects": dict(call_rejects), "completion": text})
    return {"instructions": list(seeds) + new, "new": new, "calls": calls, "rejects": rejects,
            "n_proposed": n_proposed}


def funnel(res: dict, n_seeds: int):
    """proposed lines → well-formed → new (not a duplicate) → merged with the seeds."""
    from ..reporting import Funnel

    well_formed = sum(c["well_formed"] for c in res["calls"])
    parse_reasons = {k: v for k, v in res["rejects"].items()
                     if k not in ("exact_duplicate", "near_duplicate", "over_max_new")}
    dup_reasons = {k: v for k, v in res["rejects"].items() if k in ("exact_duplicate", "near_duplicate", "over_max_new")}
    f = Funnel("instructions")
    f.step("proposed → well-formed", res["n_proposed"], well_formed, parse_reasons)
    f.step("well-formed → new", well_formed, len(res["new"]), dup_reasons)
    f.step("+ seeds", len(res["new"]), len(res["instructions"]), allow_growth=True,
           note=f"{n_seeds} seeds merged")
    return f
