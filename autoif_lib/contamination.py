"""Contamination of generated training data against an evaluation set (AutoIF Table 4's check, offline).

Two measures between the *prompts* a run trains on and the evaluation's prompts (IFEval's 541 by default):

- **n-gram overlap** (the paper's 13-gram test): a training prompt is contaminated when it shares any
  word 13-gram with any evaluation prompt; reported as counts and percentages of both sides.
- **near-duplicates** (a lexical stand-in for the paper's LMSYS rephrase detector, which asks an LLM about
  embedding-retrieved candidates): word-trigram Jaccard similarity of each training prompt's closest
  evaluation prompt, flagged at ``threshold``. A rephrase that changes most words is not caught; the
  candidates listed are the ones to read (or to hand to an LLM judge).

Tokens: lowercase runs of letters and digits, so punctuation and spacing differences do not hide a copy.
Which files of a run hold training prompts is each method's business (its declaration's ``training_files``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Mapping, Sequence

from . import io, methods

_WORD = re.compile(r"[a-z0-9]+")

def words(text: str) -> list[str]:
    return _WORD.findall(str(text).lower())


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def ngram_overlap(train: Sequence[str], test: Sequence[str], n: int = 13) -> dict:
    """Which training and test prompts share a word n-gram; counts, percentages and the hit indices."""
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for j, t in enumerate(test):
        for g in ngrams(t, n):
            index[g].append(j)
    train_hits: dict[int, set[int]] = {}
    for i, t in enumerate(train):
        js = {j for g in ngrams(t, n) for j in index.get(g, ())}
        if js:
            train_hits[i] = js
    test_hit = sorted({j for js in train_hits.values() for j in js})

    def pct(a: int, b: int) -> float:
        return 100.0 * a / b if b else 0.0

    return {"n": n, "n_train": len(train), "n_test": len(test),
            "train_contaminated": len(train_hits), "train_pct": pct(len(train_hits), len(train)),
            "test_hit": len(test_hit), "test_pct": pct(len(test_hit), len(test)),
            "hits": [{"train": i, "test": sorted(js)} for i, js in sorted(train_hits.items())]}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def near_duplicates(train: Sequence[str], test: Sequence[str], threshold: float = 0.5, k: int = 3) -> list[dict]:
    """Per training prompt its closest test prompt by word-``k``-gram Jaccard; those at or above ``threshold``,
    most similar first. Candidates come from an inverted index, so only pairs sharing a k-gram are scored."""
    test_sh = [ngrams(t, k) or {tuple(words(t))} for t in test]
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for j, sh in enumerate(test_sh):
        for g in sh:
            index[g].append(j)
    out = []
    for i, t in enumerate(train):
        sh = ngrams(t, k) or {tuple(words(t))}
        cands = {j for g in sh for j in index.get(g, ())}
        if not cands:
            continue
        sim, j = max((jaccard(sh, test_sh[j]), j) for j in cands)
        if sim >= threshold:
            out.append({"train": i, "test": j, "similarity": round(sim, 4), "train_text": train[i], "test_text": test[j]})
    return sorted(out, key=lambda r: -r["similarity"])


def _prompts_of(rec: Mapping) -> list[str]:
    """The user-side text of one training record, whatever its format (messages, prompt, instruction)."""
    out: list[str] = []
    msgs = rec.get("messages") or (rec.get("prompt") if isinstance(rec.get("prompt"), list) else None)
    if isinstance(msgs, list):
        out += [m.get("content", "") for m in msgs if isinstance(m, Mapping) and m.get("role") == "user"]
    elif isinstance(rec.get("prompt"), str):
        out.append(rec["prompt"])
    elif isinstance(rec.get("instruction"), str):
        out.append(rec["instruction"] + ("\n" + rec["input"] if rec.get("input") else ""))
    return [t for t in out if t.strip()]


def training_prompts(run_dir: Path, pipeline: str | None = None) -> dict:
    """Distinct training prompts of a finished run, read from the stage files its method declares
    (``methods.Method.training_files``).

    Returns {"prompts": [...], "files": {path: n_records}}; a missing run folder is an error, a stage the run
    switched off simply contributes nothing (and is not listed)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run folder")
    if pipeline is None:
        recipe = io.read_json(run_dir / "recipe.json") if (run_dir / "recipe.json").exists() else {}
        pipeline = methods.of_run(run_dir, recipe.get("pipeline"))
    declared = methods.get(pipeline).training_files
    if not declared:
        raise ValueError(f"pipeline {pipeline!r}: its method declares no training files")
    seen: dict[str, None] = {}
    files: dict[str, int] = {}
    for stage, fname in declared:
        for d in sorted(p for p in run_dir.iterdir() if p.name == stage or (stage.startswith("_") and p.name.endswith(stage))):
            f = d / fname
            if not f.exists():
                continue
            recs = io.read_jsonl(f)
            files[str(f)] = len(recs)
            for r in recs:
                for t in _prompts_of(r):
                    seen.setdefault(t.strip())
    return {"prompts": list(seen), "files": files, "pipeline": pipeline}


def report(train: Sequence[str], test: Sequence[str], n: int = 13, threshold: float = 0.5) -> dict:
    """Both measures in one JSON-able dict (the contamination notebook writes it)."""
    ov = ngram_overlap(train, test, n)
    nd = near_duplicates(train, test, threshold)
    return {"ngram": ov, "near_duplicates": {"threshold": threshold, "count": len(nd),
                                             "train_pct": 100.0 * len(nd) / len(train) if train else 0.0,
                                             "pairs": nd}}


def ifeval_prompts(path: str = "") -> list[str]:
    """IFEval's prompts (the bundled canonical file unless ``path`` names another JSONL with a ``prompt`` field)."""
    from .ifeval import load_ifeval

    return [ex["prompt"] for ex in load_ifeval(path or "builtin")]


def similarity_profile(train: Sequence[str], test: Sequence[str], k: int = 3) -> list[float]:
    """Each training prompt's best Jaccard similarity to any test prompt (0 when none shares a k-gram)."""
    best = {r["train"]: r["similarity"] for r in near_duplicates(train, test, threshold=0.0, k=k)}
    return [best.get(i, 0.0) for i in range(len(train))]


__all__ = ["words", "ngrams", "ngram_overlap", "jaccard", "near_duplicates", "training_prompts", "report",
           "ifeval_prompts", "similarity_profile"]
