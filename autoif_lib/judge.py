"""The LLM judge, shared by both methods: likelihood choice among fixed labels, scores, votes.

A judge call is a model call: the generator is passed in. Three ways to read a verdict:

* ``choose``: rank fixed answers (``entailment``/``neutral``/``contradiction``, ``Yes``/``No``)
  by their log-probability as the continuation of the conversation (lm-eval's multiple-choice
  scoring), where the backend can score text; a model too small to follow an output format
  still gives a label. Each row is scored on its own, so a label never depends on which other
  rows share the batch (``TransformersBackend.choice_logprobs``).
* ``parse_score``: the last ``Score: N`` of a generated judgment (AutoIF's quality judge).
* ``majority``: a vote over several sampled verdicts with invalid ones set aside and ties
  reported, not broken silently (SPaR's refiner votes).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Sequence


def can_score(generator) -> bool:
    """Whether the generator's backend can rank fixed answers by likelihood."""
    return hasattr(generator, "backend") and hasattr(generator.backend, "choice_logprobs")


def choose(generator, conversations: Sequence[list[dict]], choices: Sequence[str]) -> tuple[list[str], list[list[float]]]:
    """The most likely of ``choices`` after each conversation, and the log-probabilities behind it."""
    if not conversations:
        return [], []
    scores = generator.backend.choice_logprobs(list(conversations), list(choices))
    return [choices[max(range(len(choices)), key=row.__getitem__)] for row in scores], scores


def majority(verdicts: Sequence[Any]) -> tuple[Any, dict]:
    """Majority over the valid verdicts (None is invalid): (winner or None on a tie / no valid vote, counts)."""
    valid = [v for v in verdicts if v is not None]
    counts = Counter(valid)
    info = {"votes": dict(counts), "invalid": len(verdicts) - len(valid), "n": len(verdicts)}
    if not counts:
        return None, dict(info, outcome="no_valid_vote")
    ranked = counts.most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None, dict(info, outcome="tie")
    return ranked[0][0], dict(info, outcome="majority", share=ranked[0][1] / len(valid))


_SCORE_RE = re.compile(
    r"\bscore\b(?:\s*\([^)\n]*\))?[\s*_]*(?:[:=]|\bis\b)[\s*_]*[\[({]?\s*"
    r"(?P<v>-?\d+(?:\.\d+)?)\s*[\])}]?(?:\s*/\s*(?P<d>\d+(?:\.\d+)?))?",
    re.I,
)


def parse_score(text: str, lo: float = 0, hi: float = 10) -> float | None:
    """The last `Score: N` in text (markdown, `N/10`, `= N`, `[N]` tolerated); None if absent or out of [lo, hi].

    A denominator other than ``hi`` rescales (``Score: 4/5`` -> 8.0 on 0-10).
    """
    if not isinstance(text, str):
        return None
    matches = list(_SCORE_RE.finditer(text))
    if not matches:
        return None
    m = matches[-1]  # the judge's analysis may quote scores; the verdict comes last
    v = float(m.group("v"))
    if m.group("d"):
        d = float(m.group("d"))
        if d <= 0:
            return None
        if d != hi:
            v = lo + v / d * (hi - lo)
    return v if lo <= v <= hi else None
