"""Stage 00: the instructions with their verifiers, and the training prompts GRPO samples from.

Pure over records, except ``load_instructions`` (reads the declared file). The splits, pairing and the probe are
the shared ones (``autoif_lib.instruction_sets``).
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Sequence

from .. import io, seeds
from ..instruction_sets import pair
from ..io import stable_hash
from ..scoring import functions_of


def load_instructions(path: str | Path | None) -> tuple[list[dict], Counter]:
    """Instruction records ``{id, instruction, functions: [{src, origin}], family?}`` and the ones dropped, counted
    by reason. A file of records with ``functions`` (an AutoIF stage's instructions) is read as is; otherwise it is
    read as seeds (``seeds.load_seeds``) and each seed's reference ``verifier`` becomes its one function. An
    instruction without a verifier cannot give a reward: dropped as ``no_verifier``."""
    recs = io.read_jsonl(path) if path and str(path).endswith(".jsonl") else []
    if recs and all("functions" in r for r in recs):
        out = [dict(r, functions=[f for f in r["functions"] if f.get("src")]) for r in recs]
        for i, r in enumerate(out):
            if not isinstance(r.get("id"), str) or not isinstance(r.get("instruction"), str):
                raise ValueError(f"{path}:{i + 1}: an instruction record needs string 'id' and 'instruction'")
    else:
        out = [{"id": s["id"], "instruction": s["instruction"], "family": s.get("family"), "origin": "reference",
                "functions": [{"src": s["verifier"], "origin": "reference"}] if s.get("verifier") else []}
               for s in seeds.load_seeds(path)]
    kept = [r for r in out if r["functions"]]
    return kept, Counter({"no_verifier": len(out) - len(kept)} if len(out) > len(kept) else {})


def training_prompts(instructions: Sequence[dict], queries: Sequence[dict], m: int, seed: int, layout: str) -> list[dict]:
    """GRPO's dataset: each training instruction with ``m`` seeded queries (the pairing AutoIF's stage 05 uses) as
    a chat prompt with the instruction's verifier sources, the reward function's input."""
    fns = functions_of(instructions)
    return [{"prompt": [{"role": "user", "content": p["prompt"]}], "verifiers": fns[p["instruction_id"]],
             "instruction_id": p["instruction_id"], "query_id": p["query_id"], "pair_id": p["pair_id"]}
            for p in pair(instructions, queries, m, seed, layout)]


def cap(prompts: Sequence[dict], n: int, seed: int) -> list[dict]:
    """At most ``n`` prompts (0: all), a seeded sample kept in the original order."""
    if not n or n >= len(prompts):
        return list(prompts)
    keep = set(random.Random(int(stable_hash([seed, "max_prompts"], 8), 16)).sample(range(len(prompts)), n))
    return [p for i, p in enumerate(prompts) if i in keep]


def per_instruction(prompts: Sequence[dict]) -> dict[str, int]:
    """Training prompts per instruction."""
    return dict(Counter(p["instruction_id"] for p in prompts))
