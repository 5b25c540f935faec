"""Robust parsers for LLM completions in the AutoIF pipeline.

Every LLM call in AutoIF (arXiv 2406.13542) returns free text that a script must
turn into data: self-instruct lists of new instructions (S1), a JSON object with
a verification function and test cases (S2), back-translated instruction lists
(S4), an NLI-style verdict when an LLM plays the entailment judge (S5), and the
judge's ``Score: N`` line (S7/S8). The reference scripts parse these with one
strict regex each and silently drop everything else. The workbench's default
model is a 135M model, so most completions are malformed; these parsers accept
every reasonable variant and, where something is dropped, say why with a short
snake_case reason from :data:`REJECT_REASONS` so stage funnels can count it.

Public API::

    parse_instruction_list(text) -> (instructions, reject_counter)
    normalize_instruction(s) -> str
    dedup_key(s) -> str
    near_duplicate(a, b, threshold=0.85) -> bool
    dedup(instructions, existing=(), threshold=0.85) -> (kept, reject_counter)
    parse_verifier_sample(text) -> ParsedSample
    parse_string_list(text) -> list[str]
    parse_score(text, lo=0, hi=10) -> float | None
    parse_nli_label(text) -> "entailment" | "neutral" | "contradiction" | None

Design choices worth knowing:

* ``parse_verifier_sample`` sets ``reject`` only when nothing at all is usable
  (no function with ``def evaluate`` *and* no valid case). A sample with just a
  function or just cases is returned with ``reject=None`` and ``"no_cases"`` /
  ``"no_func"`` in ``notes``, so callers decide (cross-validation can still pool
  cases from a sample whose function is missing). Python syntax is not checked
  here; the sandbox precheck does that.
* ``near_duplicate`` is token-set Jaccard on :func:`dedup_key` strings, plus a
  guard that the tokens containing digits must match: "exactly 3 bullet points"
  and "exactly 5 bullet points" are different constraints, which a character
  ratio (difflib) would call duplicates.

Pure functions, standard library only; nothing here executes model output
(``ast.literal_eval`` only builds literals).
"""

from __future__ import annotations

import ast
import json
import re
import unicodedata
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from ..instruction_sets import dedup_key, near_duplicate, near_features, token_features  # shared by every method's split

__all__ = [
    "REJECT_REASONS",
    "ParsedSample",
    "parse_instruction_list",
    "normalize_instruction",
    "dedup_key",
    "near_duplicate",
    "dedup",
    "parse_verifier_sample",
    "parse_string_list",
    "parse_score",
    "parse_nli_label",
]

REJECT_REASONS: dict[str, str] = {
    # parse_instruction_list: one count per dropped candidate (no_list once per call)
    "no_list": "no bullet, numbered or JSON/Python list items found in the completion",
    "too_short": "instruction has fewer than 4 words",
    "too_long": "instruction has more than 60 words or 400 characters",
    "no_letters": "instruction contains no letters",
    "not_an_instruction": "a question to the user, a heading/preamble, a refusal, code, or a non-string list item",
    "duplicate_in_call": "same dedup_key as an earlier instruction in the same completion",
    # dedup
    "exact_duplicate": "same dedup_key as an existing or earlier instruction",
    "near_duplicate": "token-set Jaccard >= threshold (with equal numbers) against an existing or earlier instruction",
    # parse_verifier_sample: sample-level (ParsedSample.reject)
    "empty": "the completion is empty or whitespace",
    "no_json_no_func": "neither a function with def evaluate nor a valid test case was found",
    "no_evaluate_def": "function text found but it has no `def evaluate(`, and no valid test case either",
    # parse_verifier_sample: also written to notes when the sample is kept
    "no_func": "note: the sample has no usable function (cases may still be used)",
    "no_cases": "note: the sample has no valid test case (the function may still be used)",
    # parse_verifier_sample: per test case (ParsedSample.case_rejects)
    "case_not_dict": "a test case is neither an object nor an [input, output] pair",
    "case_missing_input": "a test case has no input/response/text key",
    "case_input_not_str": "a test case input is not a string",
    "case_bad_label": "a test case output is missing or not a boolean (after coercing 'true'/'no'/0/1 etc.)",
}

# Key synonyms seen in model output, matched case-insensitively, first hit wins.
FUNC_KEYS = ("func", "function", "code", "evaluate", "eval_func", "evaluate_func", "verification_function")
CASE_KEYS = ("cases", "test_cases", "tests", "examples", "testcases", "test_case")
INPUT_KEYS = ("input", "response", "text")
OUTPUT_KEYS = ("output", "expected", "label", "result", "expected_output")

# Limits for parse_instruction_list (AutoIF asks for one short constraint per line).
MIN_WORDS = 4
MAX_WORDS = 60
MAX_CHARS = 400

# Scanning every "{" of a long garbage completion is quadratic; a real answer
# has its object within the first few dozen braces.
_MAX_BRACE_STARTS = 64

_TRUE_STRINGS = {"true", "yes", "1"}
_FALSE_STRINGS = {"false", "no", "0"}

_EVALUATE_RE = re.compile(r"def\s+evaluate\s*\(")
_WS_RE = re.compile(r"\s+")
_WORD_RE = re.compile(r"[A-Za-z_]\w*")
# ``` fences; an unclosed fence (completion cut at max_tokens) runs to the end.
_FENCE_RE = re.compile(r"```[ \t]*([\w+.#-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
_PY_LANGS = {"python", "py", "python3", "py3", "ipython"}
_ANY_DEF_RE = re.compile(r"\bdef\s+\w+\s*\(")

# List item markers for instruction/back-translation lists. "* " and "+ " need a
# space so markdown emphasis (**bold**) is not taken for a bullet.
_ITEM_RE = re.compile(
    r"^\s*(?:[-*\u2022\u2023\u25e6\u25aa\u25cf+]\s+"
    r"|\(?\d{1,3}[.):]\s+"
    r"|\(\d{1,3}\)\s*"
    r"|#\d{1,3}[.):]?\s+"
    r"|(?:instruction|rule|constraint)\s*#?\d{1,3}\s*[:.)]\s+)"
    r"(?P<body>\S.*)$",
    re.I,
)
# Leading markers stripped by normalize_instruction (looser: "-Word" too).
_LEAD_RE = re.compile(
    r"^(?:[-\u2022\u2023\u25e6\u25aa\u25cf]+\s*"
    r"|[*+]\s+"
    r"|\(?\d{1,3}[.):]\s+"
    r"|\(\d{1,3}\)\s*"
    r"|#\d{1,3}[.):]?\s+"
    r"|(?:instruction|rule|constraint)\s*(?:#?\d{1,3}\s*[:.)]|:)\s*)",
    re.I,
)
_QUOTE_PAIRS = {'"': '"', "'": "'", "`": "`", "\u201c": "\u201d", "\u2018": "\u2019", "\u00ab": "\u00bb", "\u201e": "\u201c"}

# "Obviously code" (case-sensitive: "Return the text in capitals" is an instruction):
# a def/import/print statement, a fence, a comparison, a lambda, a method call, or "f(x):".
_CODE_RE = re.compile(
    r"\bdef\s+\w+\s*\(|^\s*(?:import\s+[\w.]+(?:\s+as\s+\w+)?\s*$|from\s+[\w.]+\s+import\s|print\s*\(|return\s+[\w.]+\()"
    r"|```|==|!=|\blambda\b[^:]*:|\b[A-Za-z_]\w*\.[A-Za-z_]\w*\(|\w\([^()]*\)\s*:\s*$"
)
_REFUSAL_RE = re.compile(r"^(?:i'?m sorry|sorry,|i cannot|i can'?t|i am unable|as an ai)\b", re.I)


# ====================================================================== helpers


def _collapse(s: str) -> str:
    """Collapse runs of whitespace to one space and strip."""
    return _WS_RE.sub(" ", s).strip()


def _uniq(items: Iterable[str]) -> list[str]:
    """Drop repeats, keep order."""
    return list(dict.fromkeys(items))


def _balanced_spans(text: str, open_ch: str, close_ch: str) -> Iterator[tuple[int, int]]:
    """Yield (start, end) of each balanced open..close span, trying every opener in order.

    Quoted strings ('...' or "...", with backslash escapes) are skipped so braces
    inside a function's source do not count. Each opener is scanned separately
    because prose apostrophes before an object would break one global scan.
    """
    starts = 0
    pos = text.find(open_ch)
    while pos != -1 and starts < _MAX_BRACE_STARTS:
        starts += 1
        depth, quote, escape = 0, "", False
        for i in range(pos, len(text)):
            c = text[i]
            if quote:
                if escape:
                    escape = False
                elif c == "\\":
                    escape = True
                elif c == quote:
                    quote = ""
            elif c in "\"'":
                quote = c
            elif c == open_ch:
                depth += 1
            elif c == close_ch:
                depth -= 1
                if depth == 0:
                    yield pos, i + 1
                    break
        pos = text.find(open_ch, pos + 1)


def _repair_strings(s: str, quotes: str, fix_escapes: bool, pythonize: bool) -> str:
    """Escape raw control chars inside quoted strings; optionally fix bad JSON escapes and map true/false/null.

    Models often put real newlines inside the JSON ``func`` string and write
    regexes like ``\\d`` without doubling the backslash; both are invalid JSON.
    With ``pythonize`` the bare words true/false/null outside strings become
    Python literals so ``ast.literal_eval`` accepts mixed JSON/Python dicts.
    """
    out: list[str] = []
    quote = ""
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if quote:
            if c == "\\" and i + 1 < n:
                nxt = s[i + 1]
                valid = nxt in "\"\\/bfnrt" or (nxt == "u" and re.match(r"[0-9a-fA-F]{4}", s[i + 2:i + 6]))
                if not fix_escapes or valid or nxt == quote:
                    out.append(c + nxt)
                elif nxt == "'":  # \' is Python, not JSON: the quote needs no escape
                    out.append(nxt)
                else:
                    out.append("\\\\" + (nxt if ord(nxt) >= 0x20 else _ctrl_escape(nxt)))
                i += 2
                continue
            if c == quote:
                quote = ""
                out.append(c)
            elif ord(c) < 0x20:
                out.append(_ctrl_escape(c))
            else:
                out.append(c)
        elif c in quotes:
            quote = c
            out.append(c)
        elif pythonize and c.isalpha():
            m = _WORD_RE.match(s, i)
            word = m.group(0) if m else c
            out.append({"true": "True", "false": "False", "null": "None"}.get(word, word))
            i += len(word)
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _ctrl_escape(c: str) -> str:
    """JSON escape for one control character."""
    return {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}.get(c, f"\\u{ord(c):04x}")


def _load_literal(s: str, want: type) -> tuple[Any, list[str]] | None:
    """Parse s as JSON, repaired JSON, or a Python literal; return (obj, notes) if it is a ``want``."""
    attempts = [(lambda: json.loads(s), [])]
    repaired = _repair_strings(s, '"', fix_escapes=True, pythonize=False)
    if repaired != s:
        attempts.append((lambda: json.loads(repaired), ["repaired json strings"]))
    attempts.append((lambda: ast.literal_eval(s), ["python literal"]))
    py = _repair_strings(s, "\"'", fix_escapes=False, pythonize=True)
    if py != s:
        attempts.append((lambda: ast.literal_eval(py), ["python literal", "repaired python strings"]))
    for attempt, notes in attempts:
        try:
            with warnings.catch_warnings():
                # literal_eval warns on "\d"-style escapes; those strings are still fine.
                warnings.simplefilter("ignore")
                obj = attempt()
        except Exception:  # JSONDecodeError, SyntaxError, ValueError, RecursionError, ...
            continue
        if isinstance(obj, want):
            return obj, notes
    return None


def _iter_literals(text: str, want: type) -> Iterator[tuple[Any, tuple[int, int], list[str]]]:
    """Yield (obj, span, notes) for each balanced span of text that parses as a ``want`` (dict or list)."""
    open_ch, close_ch = ("{", "}") if want is dict else ("[", "]")
    for start, end in _balanced_spans(text, open_ch, close_ch):
        got = _load_literal(text[start:end], want)
        if got is not None:
            yield got[0], (start, end), got[1]


def _lower_keys(d: dict) -> dict:
    """Map str keys to stripped lowercase (first wins); other keys dropped."""
    out: dict = {}
    for k, v in d.items():
        if isinstance(k, str):
            out.setdefault(k.strip().lower(), v)
    return out


def _pick(d: dict, keys: tuple[str, ...]) -> tuple[bool, Any]:
    """(found, value) for the first synonym present in a lowercase-keyed dict."""
    for k in keys:
        if k in d:
            return True, d[k]
    return False, None


# ====================================================================== instructions


def _clean_item(s: str) -> str:
    """Strip list markers, markdown bold, wrapping quotes and trailing commas; collapse whitespace."""
    s = unicodedata.normalize("NFC", str(s)).replace("**", "").replace("__", "")
    s = _collapse(s)
    prev = None
    while s != prev:
        prev = s
        s = _LEAD_RE.sub("", s).strip()
        s = s.rstrip(",;").rstrip()
        # Quotes around the whole item, possibly followed by its punctuation: "Do X". -> Do X.
        if len(s) >= 2 and s[0] in _QUOTE_PAIRS:
            close = _QUOTE_PAIRS[s[0]]
            tail = s[-1] if s[-1] in ".!?:;," and len(s) >= 3 else ""
            body_end = len(s) - len(tail)
            inner = s[1:body_end - 1]
            if s[body_end - 1] == close and s[0] not in inner and close not in inner:
                s = (inner + tail).strip()
        # *italic* around the whole item.
        if len(s) >= 2 and s[0] == s[-1] and s[0] in "*_":
            s = s[1:-1].strip()
    return s


def _finish(s: str) -> str:
    """Capitalize the first letter and end with exactly one '.', or keep a final '?'/'!'."""
    if not s:
        return ""
    if s[0].isalpha():
        s = s[0].upper() + s[1:]
    base = re.sub(r"[\s.,;:\u2026]+$", "", s)
    if not base:
        return ""
    if base[-1] in "?!" or re.search(r"[.?!][\"'\u201d\u2019)\]]+$", base):
        return base
    return base + "."


def normalize_instruction(s: str) -> str:
    """Clean an instruction: whitespace, bullets/numbering/quotes/bold stripped, capitalized, ending in one period."""
    out = _finish(_clean_item(s))
    # Finishing can expose another layer ('"x":' -> '"x".'); iterate so normalizing twice changes nothing.
    for _ in range(3):
        again = _finish(_clean_item(out))
        if again == out:
            break
        out = again
    return out


def _instruction_reject(clean: str) -> str | None:
    """Reason a cleaned candidate is not a usable instruction, or None."""
    if not any(c.isalpha() for c in clean):
        return "no_letters"
    if clean.endswith(("?", ":")) or _CODE_RE.search(clean) or _REFUSAL_RE.search(clean):
        return "not_an_instruction"
    words = len(clean.split())
    if words < MIN_WORDS:
        return "too_short"
    if words > MAX_WORDS or len(clean) > MAX_CHARS:
        return "too_long"
    return None


def _item_lines(text: str) -> list[str]:
    """Bodies of bullet/numbered lines; anything else (preamble, headings, prose) is dropped."""
    return [m.group("body") for line in text.splitlines() if (m := _ITEM_RE.match(line))]


def parse_instruction_list(text: str) -> tuple[list[str], Counter]:
    """Extract normalized instructions from a self-instruct completion; count each drop by reason."""
    rejects: Counter = Counter()
    text = text if isinstance(text, str) else ""
    candidates: list[Any] = _item_lines(text)
    if not candidates:
        # Only when there are no list lines: an inline "[...]" inside a bullet is not the list.
        for obj, _, _ in _iter_literals(text, list):
            if any(isinstance(x, str) for x in obj):
                candidates = list(obj)
                break
    if not candidates:
        rejects["no_list"] += 1
        return [], rejects
    kept: list[str] = []
    seen: set[str] = set()
    for cand in candidates:
        if not isinstance(cand, str):
            rejects["not_an_instruction"] += 1
            continue
        clean = _clean_item(cand)
        reason = _instruction_reject(clean)
        if reason is None:
            key = dedup_key(clean)
            if key in seen:
                reason = "duplicate_in_call"
            seen.add(key)
        if reason:
            rejects[reason] += 1
        else:
            kept.append(normalize_instruction(clean))
    return kept, rejects


# ====================================================================== dedup


def dedup(instructions: list[str], existing: Iterable[str] = (), threshold: float = 0.85) -> tuple[list[str], Counter]:
    """Drop exact and near duplicates against ``existing`` and earlier items; keep first occurrences."""
    rejects: Counter = Counter()
    keys = {dedup_key(e) for e in existing}
    pool = [token_features(k) for k in keys]
    kept: list[str] = []
    for s in instructions:
        key = dedup_key(s)
        if key in keys:
            rejects["exact_duplicate"] += 1
            continue
        feat = token_features(key)
        if any(near_features(feat, other, threshold) for other in pool):
            rejects["near_duplicate"] += 1
            continue
        keys.add(key)
        pool.append(feat)
        kept.append(s)
    return kept, rejects


# ====================================================================== verifier samples


@dataclass(frozen=True)
class ParsedSample:
    """One parsed verification-function completion (AutoIF S2)."""

    func: str | None
    cases: list[dict] = field(default_factory=list)  # {"input": str, "output": bool}
    reject: str | None = None  # why the whole sample is unusable (None if a func or a case is usable)
    case_rejects: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)


def _coerce_label(v: Any) -> tuple[bool | None, str | None]:
    """(bool or None if not coercible, note if coerced)."""
    if isinstance(v, bool):
        return v, None
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v), "coerced int booleans"
    if isinstance(v, str):
        low = v.strip().lower()
        if low in _TRUE_STRINGS:
            return True, "coerced string booleans"
        if low in _FALSE_STRINGS:
            return False, "coerced string booleans"
    return None, None


def _parse_cases(raw: Any, notes: list[str]) -> tuple[list[dict], Counter]:
    """Validate raw cases into {"input": str, "output": bool} dicts, counting rejects."""
    rejects: Counter = Counter()
    if raw is None:
        return [], rejects
    if isinstance(raw, dict):
        if any(k in _lower_keys(raw) for k in INPUT_KEYS):
            raw = [raw]  # a single case not wrapped in a list
        else:
            notes.append("cases given as mapping")
            raw = [[k, v] for k, v in raw.items()]
    if not isinstance(raw, (list, tuple)):
        notes.append("cases not a list")
        return [], rejects
    cases: list[dict] = []
    for item in raw:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            notes.append("cases given as pairs")
            item = {"input": item[0], "output": item[1]}
        if not isinstance(item, dict):
            rejects["case_not_dict"] += 1
            continue
        d = _lower_keys(item)
        has_in, inp = _pick(d, INPUT_KEYS)
        if not has_in:
            rejects["case_missing_input"] += 1
            continue
        if not isinstance(inp, str):
            rejects["case_input_not_str"] += 1
            continue
        has_out, out = _pick(d, OUTPUT_KEYS)
        label, note = _coerce_label(out) if has_out else (None, None)
        if label is None:
            rejects["case_bad_label"] += 1
            continue
        if note:
            notes.append(note)
        cases.append({"input": inp, "output": label})
    return cases, rejects


def _strip_fence(src: str) -> tuple[str, bool]:
    """Remove a ``` fence wrapped around a whole function source; (src, was_fenced)."""
    s = src.strip()
    if s.startswith("```"):
        m = _FENCE_RE.match(s)
        if m:
            return m.group(2).strip(), True
    return s, False


def _code_like(line: str) -> bool:
    """A line that plausibly belongs to a top-level Python block (def, import, indented, ...)."""
    return bool(re.match(r"(?:\s+\S|import\s|from\s+\S+\s+import\s|def\s|class\s|@|#|[A-Za-z_][\w.]*\s*=[^=])", line))


def _bare_def(text: str) -> str | None:
    """The `def evaluate` block written as plain text, with adjacent imports/helpers; None if absent."""
    m = re.search(r"^[ \t]*def\s+evaluate\s*\(", text, re.M) or _EVALUATE_RE.search(text)
    if not m:
        return None
    # "Here it is: def evaluate(...)" -> start the block on its own line at the def.
    head = text[:m.start()].rstrip(" \t")
    if head and not head.endswith("\n"):
        head += "\n"
    lines = (head + text[m.start():].lstrip(" \t")).splitlines()
    i = head.count("\n")
    start = i
    k = i - 1
    while k >= 0 and (not lines[k].strip() or _code_like(lines[k])):
        if lines[k].strip():
            start = k
        k -= 1
    end = i
    k = i + 1
    while k < len(lines) and (not lines[k].strip() or _code_like(lines[k])):
        if lines[k].strip():
            end = k
        k += 1
    return "\n".join(lines[start:end + 1]).strip()


def _salvage_func(text: str) -> str | None:
    """The func string of a JSON object that never closes (cut at max_tokens), decoded; None if absent."""
    m = re.search(r"([\"'])(?:%s)\1\s*:\s*([\"'])" % "|".join(FUNC_KEYS), text, re.I)
    if not m:
        return None
    quote, i, body = m.group(2), m.end(), []
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            body.append(text[i:i + 2])
            i += 2
            continue
        if c == quote:
            break
        body.append(c)
        i += 1
    raw = "".join(body)
    literal = quote + _repair_strings(quote + raw + quote, quote, fix_escapes=quote == '"', pythonize=False)[1:-1] + quote
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            val = json.loads(literal) if quote == '"' else ast.literal_eval(literal)
    except Exception:
        return None
    return val if isinstance(val, str) else None


def _func_value(v: Any) -> str | None:
    """A func field as source text: a string, or a list of lines joined."""
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, str) for x in v):
        return "\n".join(v)
    return None


def parse_verifier_sample(text: str) -> ParsedSample:
    """Parse one S2 completion (JSON with func + cases, in any of the usual broken forms)."""
    if not isinstance(text, str) or not text.strip():
        return ParsedSample(None, [], "empty", Counter(), ["no_func", "no_cases"])
    notes: list[str] = []
    candidates: list[tuple[str, str]] = []  # (note saying where it came from, source)
    raw_cases: Any = None
    rest = text

    # The first object whose func has `def evaluate` wins; failing that, the first with
    # a func or cases key (a later echo of the format, or a retry, is ignored).
    obj = None
    parsed: list[dict] = []  # every dict seen, for salvaging case fragments without a rescan
    for cand, (s, e), parse_notes in _iter_literals(text, dict):
        parsed.append(cand)
        low = _lower_keys(cand)
        has_func, fval = _pick(low, FUNC_KEYS)
        if not (has_func or _pick(low, CASE_KEYS)[0]):
            continue
        good = _EVALUATE_RE.search(_func_value(fval) or "") is not None
        if obj is None or good:
            obj, obj_notes, rest = low, parse_notes, text[:s] + "\n" + text[e:]
        if good:
            break
    if obj is not None:
        notes += obj_notes
        has_func, fval = _pick(obj, FUNC_KEYS)
        src = _func_value(fval) if has_func else None
        if src is not None:
            candidates.append(("", src))
        elif has_func:
            notes.append("func not a string")
        for k, v in obj.items():  # e.g. {"solution": "def evaluate(...)"}
            if k not in FUNC_KEYS and isinstance(v, str) and _EVALUATE_RE.search(v):
                candidates.append((f"func from key {k!r}", v))
                break
        raw_cases = _pick(obj, CASE_KEYS)[1]
    else:
        salvaged = _salvage_func(text)
        if salvaged is not None:
            candidates.append(("func salvaged from broken json", salvaged))
        fragments = [d for d in parsed if any(k in _lower_keys(d) for k in INPUT_KEYS)]
        if fragments:
            notes.append("cases salvaged from fragments")
            raw_cases = fragments

    # Functions written outside the JSON: a python fence, then bare text.
    for m in _FENCE_RE.finditer(rest):
        lang, body = m.group(1).lower(), m.group(2)
        if lang in _PY_LANGS or (not lang and _ANY_DEF_RE.search(body)):
            candidates.append(("func from python fence", body))
    bare = _bare_def(rest)
    if bare:
        candidates.append(("func from bare def", bare))

    func = None
    for origin, src in candidates:
        src, fenced = _strip_fence(src)
        if _EVALUATE_RE.search(src):
            func = src
            notes += [n for n in (origin, "func fence stripped" if fenced else "") if n]
            break

    cases, case_rejects = _parse_cases(raw_cases, notes)
    reject = None
    if func is None:
        if candidates:
            notes.append("no_evaluate_def")
        notes.append("no_func")
    if not cases:
        notes.append("no_cases")
    if func is None and not cases:
        reject = "no_evaluate_def" if candidates else "no_json_no_func"
    return ParsedSample(func, cases, reject, case_rejects, _uniq(notes))


# ====================================================================== back-translation lists


def parse_string_list(text: str) -> list[str]:
    """Items of a list reply: bullet/numbered lines, else a JSON/Python list (fenced or not), quoted lines, or one line.

    Items are cleaned (markers, quotes, bold, whitespace) but not capitalized or
    punctuated; pass them through :func:`normalize_instruction` for that.
    Several lines of unmarked prose give [] rather than a guess.
    """
    if not isinstance(text, str) or not text.strip():
        return []
    # Bullet lines first: an inline ["a", "b"] inside a bullet is not the list.
    items = [c for c in (_clean_item(b) for b in _item_lines(text)) if c]
    if items:
        return items
    for obj, _, _ in _iter_literals(text, list):
        items = []
        for x in obj:
            if isinstance(x, dict):  # [{"instruction": "..."}]
                x = next((v for v in x.values() if isinstance(v, str)), None)
            if isinstance(x, str) and _clean_item(x):
                items.append(_clean_item(x))
        if items:
            return items
    # Prose left after dropping fence markers and "Here are ...:" preambles.
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("```") and not ln.endswith(":")]
    if lines and all(ln[0] in _QUOTE_PAIRS for ln in lines):
        return [c for c in (_clean_item(ln) for ln in lines) if c]
    if len(lines) == 1 and _load_literal(lines[0], list) is None:  # "[]" is an empty list, not an item
        one = _clean_item(lines[0])
        return [one] if one else []
    return []


# ====================================================================== judge scores

# parse_score lives with the LLM judge (shared by both methods); re-exported here for the stage code.
from ..judge import parse_score  # noqa: E402,F401


# ====================================================================== NLI labels


# (pattern, label). The earliest match in the text wins, the longest on ties, so
# "not consistent" beats the "consistent" inside it and "No contradiction" beats "No".
_NLI_PATTERNS: list[tuple[re.Pattern, str]] = [
    (re.compile(r"\b(?:does\s*n[o']t|do\s*n[o']t|not|never)\s+(?:necessarily\s+)?(?:entail|impl(?:y|ies))\w*", re.I), "neutral"),
    (re.compile(r"\bno\s+(?:contradiction|conflict)s?\b|\b(?:does\s*n[o']t|do\s*n[o']t|not)\s+(?:contradict|conflict)\w*", re.I), "neutral"),
    (re.compile(r"\bnot\s+(?:consistent|the\s+same|equivalent|compatible)\b|\b(?:does\s*n[o']t|do\s*n[o']t)\s+(?:match|agree)\b", re.I), "contradiction"),
    (re.compile(r"\b(?:entailment|entails?|entailed|consistent|equivalent|same|identical|matches|agrees?)\b", re.I), "entailment"),
    (re.compile(r"\b(?:contradiction|contradicts?|contradictory|contradicting|inconsistent|conflicts?|conflicting|incompatible|disagrees?|opposite)\b", re.I), "contradiction"),
    (re.compile(r"\b(?:neutral|unclear|partially|partial|uncertain|unrelated|undetermined|not\s+sure|maybe|possibly)\b", re.I), "neutral"),
    # yes/no only as the first word: "no" mid-sentence ("uses no commas") says nothing.
    (re.compile(r"^\W*yes\b", re.I), "entailment"),
    (re.compile(r"^\W*no\b", re.I), "contradiction"),
]
_LABEL_LINE_RE = re.compile(
    r"^[\s*#>_-]*(?:final\s+)?(?:label|answer|verdict|relation(?:ship)?|classification|prediction|judg(?:e)?ment)"
    r"[\s*_]*[:=][\s*_]*(?P<v>.+?)\s*$",
    re.I | re.M,
)


def _nli_scan(text: str) -> str | None:
    """The label of the earliest (then longest) synonym match in text, or None."""
    best: tuple[int, int, str] | None = None
    for pat, label in _NLI_PATTERNS:
        m = pat.search(text)
        if m and (best is None or (m.start(), -len(m.group(0))) < best[:2]):
            best = (m.start(), -len(m.group(0)), label)
    return best[2] if best else None


def parse_nli_label(text: str) -> str | None:
    """Map a judge reply to entailment/neutral/contradiction, preferring the last `Label: X` line; None if unknown."""
    if not isinstance(text, str) or not text.strip():
        return None
    text = text.replace("\u2019", "'").replace("**", "")
    for m in reversed(list(_LABEL_LINE_RE.finditer(text))):
        label = _nli_scan(m.group("v"))
        if label:
            return label
    return _nli_scan(text)
