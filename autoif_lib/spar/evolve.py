"""Prompt construction for SPaR: evolve plain requests with an LLM, or compose verifiable ones.

Pure functions over records; the model calls happen elsewhere.

* ``choose_main_constraints``: one (category, subcategory) per request, seeded and balanced.
* ``prefilter`` / ``looks_like_math_or_code``: drop math and coding requests before the call.
* ``parse_evolved``: read one ``prompts.evolve`` reply -> (prompt, constraints, reject reason).
* ``collect``: parse a batch of replies into prompt records, a reject counter and a log.
* ``compose``: the verifiable alternative for small models: request + 1-4 constraint sentences
  drawn from AutoIF-style records (each with a verifier), never two of one family.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from . import prompts as P

MAX_PROMPT_CHARS = 2000
MIN_CONSTRAINTS, MAX_CONSTRAINTS = 1, 4

REJECT_REASONS = (
    "refused_math_or_code",   # the model answered None (math/code request)
    "no_markers",             # no [[start]] marker
    "empty",                  # nothing between the markers
    "answer_not_prompt",      # the text reads like an answer, not a request
    "too_long",               # more than MAX_PROMPT_CHARS characters
    "unchanged",              # same as the request after normalisation
    "no_constraints",         # a Constraints line with nothing on it
    "too_many_constraints",   # a Constraints line with more than MAX_CONSTRAINTS items
)
PREFILTER_REASON = "prefilter_math_or_code"
DUPLICATE_REASON = "duplicate"

REQUEST_KEYS = ("request", "query", "prompt", "instruction", "text")


# ---------------------------------------------------------------------------- main constraints

def choose_main_constraints(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (category, subcategory) pairs, seeded; balanced: each pass over the 14 subcategories
    is a fresh shuffle, so counts differ by at most one."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    while len(out) < n:
        block = list(P.SUBCATEGORIES)
        rng.shuffle(block)
        out.extend(block[: n - len(out)])
    return out


# ---------------------------------------------------------------------------- math / code filter

_MATH_CODE_PATTERNS = [re.compile(p, re.IGNORECASE | re.MULTILINE) for p in (
    r"```",                                                               # code fence
    (r"\b(?:write|implement|code|debug|refactor)\s+(?:me\s+)?(?:a|an|the|some|this|my)?\s*(?:[\w+#-]+\s+){0,2}"
    r"(?:function|program|algorithm|snippet|regex|endpoint|unit tests?|code(?!\s+of\b))\b"),
    r"\b(?:shell|bash|python|powershell|batch|sql|javascript|js)\s+(?:script|code|function|program)\b",
    (r"\b(?:python|javascript|typescript|golang|php|kotlin|sql|mysql|postgresql|sqlite|regex|"
    r"regular expressions?|numpy|pytorch|tensorflow|html|css)\b|\bc\+\+|\bc#"),
    (r"\b(?:java(?!\s+(?:coffee|island|sea))|git|github|docker|kubernetes|dataframes?|groupby|recursion|"
    r"recursive function|multithread\w*|big o|abstract class|http requests?|api|sdk|compiler|"
    r"stack trace|react (?:app|component|hook)s?|segfault|null pointer)\b|(?-i:\b[A-Z]\w*Error\b)"),
    r"\bdef\s+\w+\s*\(|\bprint\s*\(|\bconsole\.log\b|#include\b|(?-i:\bSELECT\s[^\n]{0,200}?\sFROM\s)",
    r"\bfunction\s*\w*\s*\(|=>|\)\s*\{|;\s*\}",                         # code syntax
    r"\b(?:calculate|compute)\b",
    (r"\bsolve\s+(?:for\b|the\s+(?:equation|system|integral|inequality)|"
    r"this\s+(?:equation|problem|system|integral|inequality)|\d|[a-z]\s*[=+^])"),
    (r"\b(?:equations?|integrals?|polynomials?|theorems?|prove that|probability that|algebra(?:ic)?|"
    r"calculus|eigen\w+|quadratic|logarithms?)\b"),
    r"\d\s*[+*^×÷=]\s*\d|\d\s+[-/]\s+\d|\d\s*[<>]=?\s*\d",              # digits with operators
    r"\b[a-z]\s*\^\s*\d|\b[a-z]\s*=\s*-?\d|\d[a-z]\s*[+=]\s*\d|\d[a-z]\s+-\s+\d",  # x^2, x = 3, 2x + 1
    r"\bwhat\s+is\s+\d+(?:\.\d+)?\s*(?:%|percent\b|[+*x×/-])|\bhow\s+much\s+is\s+\d",
    r"[√∑∫≤≥π]",
)]


def looks_like_math_or_code(request: str) -> bool:
    """Heuristic: does ``request`` ask for mathematics or programming (SPaR does not evolve those)?"""
    text = request or ""
    return any(p.search(text) for p in _MATH_CODE_PATTERNS)


def request_text(rec: dict) -> str:
    for k in REQUEST_KEYS:
        if isinstance(rec.get(k), str):
            return rec[k]
    raise KeyError(f"request record has none of {REQUEST_KEYS}: {sorted(rec)}")


def _request_id(rec: dict, i: int) -> str:
    return str(rec.get("id", f"r{i:06d}"))


def prefilter(requests: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """Split requests into (kept, rejected); each rejected record gains ``reject`` = the reason."""
    kept, rejected = [], []
    for rec in requests:
        if looks_like_math_or_code(request_text(rec)):
            rejected.append(dict(rec, reject=PREFILTER_REASON))
        else:
            kept.append(rec)
    return kept, rejected


# ---------------------------------------------------------------------------- parsing

def _marker_re(word: str) -> re.Pattern:
    # [[start]], [[ start ]], \[\[start\]\], **[[start]]**, `[[start]]`, [[START]]
    return re.compile(r"\\?\[\\?\[\s*" + word + r"\s*\\?\]\\?\]", re.IGNORECASE)


_START_RE, _END_RE = _marker_re("start"), _marker_re("end")
_CONSTRAINTS_RE = re.compile(r"^[ \t>*_#`-]*constraints?[ \t]*[*_`]*[ \t]*[:：][ \t]*[*_`]*(.*)$",
                             re.IGNORECASE | re.MULTILINE)
_ITEM_RE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(.+)$")
_NONE_RE = re.compile(r"^[\s*_`\"'“”.]*none[\s*_`\"'“”.!]*$", re.IGNORECASE)
_ANSWER_OPENERS = re.compile(
    r"^\s*(sure|certainly|of course|absolutely|great question|as an ai|i'?m sorry|i cannot|"
    r"here(?:'s| is| are) (?:the|an?|my|your) (?:answer|response|solution|poem|story|essay|letter))\b",
    re.IGNORECASE)


def normalize(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed: for the ``unchanged`` test."""
    return " ".join(re.sub(r"[^\w\s]", " ", (text or "").lower()).split())


def _clean_prompt(text: str) -> str:
    text = text.strip()
    fence = re.match(r"^```[\w-]*\n(.*?)\n?```$", text, re.DOTALL)
    if fence:
        text = fence.group(1).strip()
    # bold/italic/backtick residue of a wrapped marker, e.g. "**[[start]]**"
    text = re.sub(r"^[*_`]+\s*", "", text)
    text = re.sub(r"\s*[*_`]+$", "", text)
    text = re.sub(r"^(rewritten|evolved|new)\s+(request|prompt|instruction)\s*[:：]\s*", "", text, flags=re.IGNORECASE)
    return text.strip().strip('"“”').strip()


def _split_constraints(rest: str, following: list[str]) -> list[str]:
    rest = rest.strip().strip("*_`").strip()
    if rest:
        items = rest.split(";")
    else:  # "Constraints:" then a bullet list
        items = []
        for line in following:
            m = _ITEM_RE.match(line)
            if not m:
                if line.strip():
                    break
                continue
            items.append(m.group(1))
    return [c.strip().strip("*_`.").strip() for c in items if c.strip().strip("*_`.").strip()]


def _find_constraints(text: str) -> tuple[list[str] | None, int | None]:
    """(items, start offset of the line) of the last Constraints line, or (None, None)."""
    matches = list(_CONSTRAINTS_RE.finditer(text))
    if not matches:
        return None, None
    m = matches[-1]
    following = text[m.end():].splitlines()[1:]
    return _split_constraints(m.group(1), following), m.start()


@dataclass
class EvolvedParse:
    prompt: str | None
    constraints: list[str] = field(default_factory=list)
    reason: str | None = None
    notes: list[str] = field(default_factory=list)   # e.g. "missing_end", "multiple_blocks", "no_constraints_line"


def parse_evolved_full(text: str, request: str | None = None) -> EvolvedParse:
    """``parse_evolved`` with notes on what was repaired."""
    text = (text or "").strip()
    notes: list[str] = []
    if _NONE_RE.match(text):
        return EvolvedParse(None, [], "refused_math_or_code")
    start = _START_RE.search(text)
    if not start:
        return EvolvedParse(None, [], "no_markers")
    end = _END_RE.search(text, start.end())
    if end:
        body, tail = text[start.end():end.start()], text[end.end():]
        if _START_RE.search(tail):
            notes.append("multiple_blocks")
        constraints, _ = _find_constraints(tail)
    else:
        notes.append("missing_end")
        body = text[start.end():]
        constraints, at = _find_constraints(body)
        if at is not None:
            body = body[:at]
    prompt = _clean_prompt(body)
    if constraints is None:
        notes.append("no_constraints_line")
        constraints = []
    if not prompt:
        return EvolvedParse(None, constraints, "empty", notes)
    if _NONE_RE.match(prompt):
        return EvolvedParse(None, constraints, "refused_math_or_code", notes)
    if len(prompt) > MAX_PROMPT_CHARS:
        return EvolvedParse(None, constraints, "too_long", notes)
    if request is not None and normalize(prompt) == normalize(request):
        return EvolvedParse(None, constraints, "unchanged", notes)
    if _ANSWER_OPENERS.match(prompt):
        return EvolvedParse(None, constraints, "answer_not_prompt", notes)
    if "no_constraints_line" not in notes:
        if len(constraints) < MIN_CONSTRAINTS:
            return EvolvedParse(None, constraints, "no_constraints", notes)
        if len(constraints) > MAX_CONSTRAINTS:
            return EvolvedParse(None, constraints, "too_many_constraints", notes)
    return EvolvedParse(prompt, constraints, None, notes)


def parse_evolved(text: str, request: str | None = None) -> tuple[str | None, list[str], str | None]:
    """Read a ``prompts.evolve`` reply: (prompt or None, constraints named on the Constraints line,
    reject reason or None). Without a Constraints line the constraints are ``[]`` and nothing is
    rejected for it; a missing ``[[end]]`` takes the text to the end (see ``parse_evolved_full``)."""
    r = parse_evolved_full(text, request)
    return r.prompt, r.constraints, r.reason


# ---------------------------------------------------------------------------- collect

def collect(requests: Sequence[dict], completions: Sequence[str], mains: Sequence,
            prefiltered: Iterable[dict] = ()) -> dict:
    """Parse one completion per request (lists aligned) into evolved prompt records.

    Returns ``{"prompts": [...], "rejects": Counter(reason), "log": [...]}``. Prompt records:
    ``id`` (``<request_id>-e<k>``, k counting repeats of a request), ``request_id``, ``request``,
    ``prompt``, ``main_constraint`` ([category, subcategory]), ``constraints``, ``origin="evolved"``.
    ``prefiltered`` (the second value of ``prefilter``) is counted in rejects and the log.
    A prompt identical (normalised) to one already kept is rejected as ``duplicate``.
    """
    if not (len(requests) == len(completions) == len(mains)):
        raise ValueError(f"lengths differ: {len(requests)} requests, {len(completions)} completions, {len(mains)} mains")
    rejects: Counter = Counter()
    log: list[dict] = []
    for i, rec in enumerate(prefiltered):
        rejects[rec.get("reject", PREFILTER_REASON)] += 1
        log.append({"request_id": _request_id(rec, i), "main_constraint": None, "status": "rejected",
                    "reason": rec.get("reject", PREFILTER_REASON), "notes": [], "n_constraints": 0})
    out: list[dict] = []
    seen: set[str] = set()
    repeats: Counter = Counter()
    for i, (rec, completion, main) in enumerate(zip(requests, completions, mains)):
        rid, request = _request_id(rec, i), request_text(rec)
        main = list(main) if main is not None else None
        parsed = parse_evolved_full(completion, request=request)
        reason = parsed.reason
        if reason is None and normalize(parsed.prompt) in seen:
            reason = DUPLICATE_REASON
        entry = {"request_id": rid, "main_constraint": main, "status": "rejected" if reason else "kept",
                 "reason": reason, "notes": parsed.notes, "n_constraints": len(parsed.constraints)}
        if reason:
            rejects[reason] += 1
        else:
            seen.add(normalize(parsed.prompt))
            k = repeats[rid]
            repeats[rid] += 1
            entry["id"] = f"{rid}-e{k}"
            out.append({"id": entry["id"], "request_id": rid, "request": request, "prompt": parsed.prompt,
                        "main_constraint": main, "constraints": parsed.constraints, "origin": "evolved"})
        log.append(entry)
    return {"prompts": out, "rejects": rejects, "log": log}


# ---------------------------------------------------------------------------- compose

def verifier_sources(rec: dict) -> list[str]:
    """Verifier sources of a constraint record: ``verifier`` (str), ``verifiers`` (list of str),
    or AutoIF's kept ``functions`` ([{"src", "accuracy"}], best accuracy first)."""
    if isinstance(rec.get("verifier"), str) and rec["verifier"].strip():
        return [rec["verifier"]]
    if isinstance(rec.get("verifiers"), list):
        return [s for s in rec["verifiers"] if isinstance(s, str) and s.strip()]
    fns = rec.get("functions") or []
    fns = sorted((f for f in fns if isinstance(f, dict) and f.get("src")), key=lambda f: -f.get("accuracy", 0.0))
    return [f["src"] for f in fns]


def _sentence(s: str) -> str:
    s = s.strip()
    return s if s[-1:] in ".!?:;\"')" else s + "."


def compose(requests: Sequence[dict], constraints: Sequence[dict], k_min: int = 1, k_max: int = 4,
            seed: int = 0) -> list[dict]:
    """Each request + k (uniform in [k_min, k_max]) constraint sentences from distinct families.

    Families are drawn uniformly, then one constraint within each family. Constraint records need
    ``id`` and ``instruction``; ``family`` defaults to the id; records without a verifier are
    skipped. Record: ``id`` (``<request_id>-c``), ``request_id``, ``request``, ``prompt`` (request,
    blank line, the constraint sentences), ``constraint_ids``, ``constraints`` (the sentences),
    ``families``, ``main_constraint`` (id of the first), ``verifiers`` (one source per constraint,
    aligned with ``constraint_ids``), ``origin="composed"``.
    """
    if not 1 <= k_min <= k_max:
        raise ValueError(f"need 1 <= k_min <= k_max, got {k_min}, {k_max}")
    by_family: dict[str, list[dict]] = {}
    for c in constraints:
        if not verifier_sources(c) or not str(c.get("instruction", "")).strip():
            continue
        by_family.setdefault(str(c.get("family") or c["id"]), []).append(c)
    families = sorted(by_family)
    if len(families) < k_min:
        raise ValueError(f"{len(families)} verifiable constraint families, fewer than k_min={k_min}")
    rng = random.Random(seed)
    out = []
    for i, rec in enumerate(requests):
        rid, request = _request_id(rec, i), request_text(rec)
        k = min(rng.randint(k_min, k_max), len(families))
        chosen = [rng.choice(by_family[f]) for f in rng.sample(families, k)]
        sentences = [_sentence(c["instruction"]) for c in chosen]
        out.append({
            "id": f"{rid}-c", "request_id": rid, "request": request,
            "prompt": request.strip() + "\n\n" + " ".join(sentences),
            "constraint_ids": [c["id"] for c in chosen], "constraints": sentences,
            "families": [str(c.get("family") or c["id"]) for c in chosen],
            "main_constraint": chosen[0]["id"], "verifiers": [verifier_sources(c)[0] for c in chosen],
            "origin": "composed",
        })
    return out
