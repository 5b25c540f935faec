"""SPaR's refiner as a judge: read Yes/No verdicts, vote over samples, re-sample ties.

A judgment is a critique followed by a verdict line (``Final Judgement: Yes`` / ``No``).
``parse_verdict`` reads the verdict after the *last* verdict marker, so a critique that quotes
the template earlier does not count; ``split_critique`` returns the text before it.

``vote`` takes one round of sampled judgments for one (prompt, response): the label is the
majority of the valid verdicts, the value is ``#yes / (#yes + #no)``. A tie (including no valid
verdict at all) gives no label. ``vote_with_resampling`` re-samples the tied items, batched over
all still-undecided items, a fresh set each round (as in the released code: votes are not
accumulated across rounds), for at most ``max_rounds`` rounds in total.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

from autoif_lib.judge import majority

__all__ = [
    "Vote",
    "parse_verdict",
    "split_critique",
    "vote",
    "vote_with_resampling",
    "summarize",
    "OUTCOMES",
]

OUTCOMES = ("majority", "tie_dropped", "no_valid_vote")

_MARKER_RE = re.compile(r"\b(?:final\s+judge?ments?|verdict)\b", re.I)
# Markdown and quoting that may wrap the marker or the verdict word.
_WRAP = r"[ \t*_`\"'>#\[\]]*"
# The template's own hint, echoed: "(Yes or No)", "[Yes/No]".
_TEMPLATE = r"[(\[]?\s*(?:yes|no)\s*(?:or|/|\|)\s*(?:yes|no)\s*[)\]]?"
# What makes a marker occurrence a verdict line (rather than the word used in passing):
# a separator (":", "=", a dash, "is") or the verdict word right after it (across a line break too).
# The released judge template qualifies its marker: "Final Judgement (if the Output accurately follows the
# Prompt): Yes". A parenthetical other than the (Yes or No) hint may sit between marker and separator.
_QUALIFIER = r"\((?!\s*(?:yes|no)\s*(?:or|/|\|))[^()\n]{1,200}\)"
_AFTER_MARKER_RE = re.compile(
    rf"{_WRAP}(?:{_QUALIFIER}{_WRAP})?(?:{_TEMPLATE}{_WRAP})?"
    rf"(?:(?::|=|-|\u2013|\u2014|\bis\b:?)|(?=[\s*_`\"'>#\[\](]*(?:yes|no)\b))",
    re.I,
)
_ANSWER_RE = re.compile(
    rf"[\s*_`\"'>#\[\](]*(?:{_TEMPLATE}\s*[:=\-]?[\s*_`\"'>#\[\](]*)?"
    rf"(?P<w>yes|no)\b(?!\s*(?:or|/|\|)\s*(?:yes|no)\b)",
    re.I,
)
_BARE_RE = re.compile(r"\s*[*_`\"'\[(]*\s*(?P<w>yes|no)\s*[*_`\"'\])]*\s*[.!;,]*\s*[*_`\"']*\s*", re.I)


def _final_marker(text: str) -> tuple[int, int] | None:
    """(start, end) of the last verdict marker with its separator, or None when there is none."""
    for m in reversed(list(_MARKER_RE.finditer(text))):
        after = _AFTER_MARKER_RE.match(text, m.end())
        if after is not None:
            return m.start(), after.end()
    return None


def parse_verdict(text: str | None) -> bool | None:
    """The verdict of a judgment: True for Yes, False for No, None when absent or unreadable.

    Read after the last ``Final Judgement`` / ``Final judgment`` / ``Verdict`` marker (any case,
    markdown and trailing punctuation tolerated); an echoed ``(Yes or No)`` is not a verdict. The
    last marker decides: ``Final Judgement: Yes ... Final Judgement: maybe`` is None. Without a
    marker only a bare ``Yes`` / ``No`` reply counts (a model primed with ``Final Judgement: ``).
    """
    if not isinstance(text, str):
        return None
    span = _final_marker(text)
    if span is None:
        m = _BARE_RE.fullmatch(text)
        return None if m is None else m.group("w").lower() == "yes"
    m = _ANSWER_RE.match(text, span[1])
    return None if m is None else m.group("w").lower() == "yes"


def split_critique(text: str | None) -> str:
    """The critique part of a judgment: the text before the final verdict marker, stripped.

    Markdown left dangling before the marker (``**``) is stripped too; the whole text (stripped)
    when there is no marker.
    """
    if not isinstance(text, str):
        return ""
    span = _final_marker(text)
    if span is None:
        return text.strip()
    return text[: span[0]].rstrip(" \t\r\n*_#`>").strip()


@dataclass
class Vote:
    """One item's vote. ``label`` None means the item is dropped (tie or no valid verdict).

    ``yes`` / ``no`` / ``invalid`` count the deciding (last) round; ``history`` keeps
    ``(yes, no, invalid)`` for every round sampled, so totals over re-sampling are not lost.
    """

    label: bool | None
    value: float | None
    yes: int
    no: int
    invalid: int
    rounds: int
    critique: str | None
    outcome: str
    history: list[tuple[int, int, int]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def as_judgment(self) -> tuple[float | None, str | None]:
        """(value, critique) as the tree search's judge returns it; value None when dropped."""
        return (self.value if self.label is not None else None), self.critique


def vote(texts: Sequence[str]) -> Vote:
    """Majority over one round of judgments; the critique is that of the first agreeing judgment."""
    verdicts = [parse_verdict(t) for t in texts]
    label, info = majority(verdicts)
    yes = sum(v is True for v in verdicts)
    no = sum(v is False for v in verdicts)
    invalid = len(verdicts) - yes - no
    value = yes / (yes + no) if yes + no else None
    outcome = {"majority": "majority", "tie": "tie_dropped", "no_valid_vote": "no_valid_vote"}[info["outcome"]]
    critique = None
    if label is not None:
        critique = next(split_critique(t) for t, v in zip(texts, verdicts) if v is label)
    return Vote(label=label, value=value, yes=yes, no=no, invalid=invalid, rounds=1,
                critique=critique, outcome=outcome, history=[(yes, no, invalid)])


def vote_with_resampling(
    sample: Callable[[list[int], int], list[list[str]]],
    items: int,
    n: int = 5,
    max_rounds: int = 3,
) -> list[Vote]:
    """Vote on ``items`` items, re-sampling the tied ones, ``max_rounds`` rounds at most in all.

    ``sample(indices, round)`` returns ``n`` judgment texts for each requested index, in order;
    ``round`` counts from 0. Round 0 asks for every item, later rounds only for those still tied
    (ascending indices). Each round's vote stands alone. An item still tied after the last round
    is dropped with outcome ``tie_dropped`` or ``no_valid_vote`` (that of its last round).
    """
    if items < 0:
        raise ValueError(f"items must be >= 0, got {items}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if max_rounds < 1:
        raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
    votes: list[Vote | None] = [None] * items
    history: list[list[tuple[int, int, int]]] = [[] for _ in range(items)]
    pending = list(range(items))
    for rnd in range(max_rounds):
        if not pending:
            break
        batch = sample(list(pending), rnd)
        if len(batch) != len(pending):
            raise ValueError(f"sample returned {len(batch)} lists for {len(pending)} indices (round {rnd})")
        still = []
        for idx, texts in zip(pending, batch):
            if len(texts) != n:
                raise ValueError(f"sample returned {len(texts)} texts for item {idx}, expected n={n} (round {rnd})")
            v = vote(texts)
            history[idx].extend(v.history)
            v.history = history[idx]
            v.rounds = rnd + 1
            votes[idx] = v
            if v.label is None:
                still.append(idx)
        pending = still
    return votes  # type: ignore[return-value]


def summarize(votes: Sequence[Vote]) -> dict:
    """Counts over votes: outcomes, labels, judgments and invalid ones over all rounds, rounds used."""
    outcomes = Counter(v.outcome for v in votes)
    rounds = Counter(v.rounds for v in votes)
    judgments = sum(y + n + i for v in votes for (y, n, i) in (v.history or [(v.yes, v.no, v.invalid)]))
    invalid = sum(i for v in votes for (_, _, i) in (v.history or [(v.yes, v.no, v.invalid)]))
    return {
        "items": len(votes),
        "outcomes": {o: outcomes.get(o, 0) for o in OUTCOMES},
        "kept": sum(v.label is not None for v in votes),
        "dropped": sum(v.label is None for v in votes),
        "yes": sum(v.label is True for v in votes),
        "no": sum(v.label is False for v in votes),
        "judgments": judgments,
        "invalid_judgments": invalid,
        "rounds": dict(sorted(rounds.items())),
        "resampled": sum(v.rounds > 1 for v in votes),
    }
