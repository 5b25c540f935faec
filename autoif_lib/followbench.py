"""FollowBench (Jiang et al., ACL 2024): multi-level constraint following, loaded and scored (HSR, SSR, CSL).

Data. The benchmark is published as one JSON list per constraint category in the authors' repository
(github.com/YJiangcm/FollowBench, ``data/{content,situation,style,format,example,mixed}_constraints.json``) and
as the hub dataset ``YuxinJiang/FollowBench`` (the same files). A record holds ``example_id``, ``category``,
``source``, ``level``, ``instruction``, ``target`` (``answer`` too in the example category). Records of one
``example_id`` within a file form an *instruction family*: level 0 is the original instruction (absent in the
example category), and level L adds one constraint to level L-1, so a level-L instruction carries L constraints.
In the mixed file ``category`` names the type of each added constraint (``"content, format"``); the family's
category is the file's.

What is offline:

* ``load_followbench(folder_or_file)`` reads a local copy of those files; nothing is downloaded.
* ``load_followbench("sample")`` reads ``autoif_lib/data/followbench_sample``: a tiny sample written for this
  project in the published format (7 families, levels 0-3). It is *not* benchmark data; it exercises the
  loader, the rules and the judge path in smoke runs and tests, and its numbers mean nothing else.
* Only ``load_followbench(HF_DATASET)`` touches the network, through ``huggingface_hub`` (installed with
  ``datasets``), imported only then. The files are fetched and read like a local folder rather than through
  ``datasets.load_dataset``: the categories' files have different columns (``answer`` only in one), which
  one ``datasets`` split cannot hold.

Scoring (``score``), one verdict per added constraint of every level >= 1 record:

* ``rule``: what the published evaluation checks by program, with our own checkers:

  - the whole *example* category: the answer must reproduce the output template its demonstrations show
    (``target`` is that template, ``{answer}`` standing for any answer text);
  - sources with a reference answer in ``target`` (``_ANSWER_RULES``: attribute extraction, entity lists,
    text editing, multiple choice, dates, arithmetic). The answer is right or wrong as a whole, so all L
    constraints share one verdict, as the published evaluation credits them;
  - seven single families whose constraints are all countable (sentence/word counts, required and forbidden
    words, paragraph markers; ``_FAMILY_RULES``). Each constraint gets its own verdict. Each spec names a cue
    from the instruction text of every constraint, and applies only where the record's instruction shows all
    cues of its level, so another family that happens to share a source name is never checked by the wrong
    rules (it goes to the judge).

* ``llm``: everything else is judged by an LLM given the evolution path (the level-0..L instructions) and
  the response; it answers one ``Constraint k: YES|NO`` line per added constraint (``judge_prompt``), read
  by ``parse_judgment``. Greedy (temperature 0).
* ``unparsed``: a judgment without exactly L verdicts: fail closed (no constraint satisfied), counted in the
  summary (``n_unparsed``) with the reason in the item; never an exception.
* ``no_judge``: an LLM-judged item when no judge generator was given: *not scored*, left out of HSR/SSR/CSL
  and counted (``n_not_scored``), never silently dropped.

Metrics (fractions in [0, 1], as :func:`autoif_lib.ifeval.summarize`; CSL in levels), over scored items:
HSR = mean over items of "every constraint satisfied"; SSR = mean over items of the fraction satisfied; both
per level 1..5 and averaged over the levels present (the published average of the five level numbers);
CSL = per family, how many consecutive levels from level 1 are hard-satisfied, averaged over families.
Where this differs from the published scripts, on purpose: SSR of a family-rule item is its fraction of
satisfied constraints (the published script credits rule items all-or-nothing in SSR); responses are compared
after trimming outer whitespace and ``<think>`` blocks; the family rules are our reading of each instruction
(e.g. the ``**`` speech is checked in the order its instruction adds the constraints).
"""

from __future__ import annotations

import ast
import json
import math
import random
import re
import string
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .ifeval import strip_think_blocks
from .stats import binomial_se

HF_DATASET = "YuxinJiang/FollowBench"
SAMPLE = "sample"  # load_followbench(SAMPLE): the in-house sample shipped with the package
SAMPLE_DIR = Path(__file__).resolve().parent / "data" / "followbench_sample"
CATEGORIES = ("content", "situation", "style", "format", "example", "mixed")
MAX_LEVEL = 5
METHODS = ("rule", "llm", "unparsed", "no_judge")


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def _file_category(path: Path) -> str | None:
    """``content_constraints.json`` -> ``content``; None for a file not named after a category."""
    stem = path.name.split(".")[0]
    name = stem[: -len("_constraints")] if stem.endswith("_constraints") else stem
    return name if name in CATEGORIES else None


def _read_records(path: Path) -> list[tuple[str, Any]]:
    """(location for messages, raw record) of a JSON list or a JSONL file."""
    if path.suffix == ".jsonl":
        from .io import iter_jsonl_numbered

        return [(f"{path}:{lineno}", rec) for lineno, rec in iter_jsonl_numbered(path)]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of FollowBench records, got {type(data).__name__}")
    return [(f"{path}[{i}]", rec) for i, rec in enumerate(data)]


def _normalise(rec: Any, where: str, file_category: str | None, file: str) -> dict:
    """Validate one published record and give it the fields the scorer reads."""
    if not isinstance(rec, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    required = ["example_id", "level", "instruction"] + ([] if file_category else ["category"])
    missing = [k for k in required if k not in rec]
    if missing:
        raise ValueError(f"{where}: FollowBench record lacks {missing}")
    level = rec["level"]
    # bool is an int in Python; a level of True is a broken file, not level 1
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"{where}: level must be an integer 0..{MAX_LEVEL}, got {level!r}")
    if not isinstance(rec["instruction"], str) or (level > 0 and not rec["instruction"].strip()):
        raise ValueError(f"{where}: instruction of a level-{level} record must be a non-empty string")
    raw_cat = str(rec.get("category") or "")
    types = [t.strip() for t in raw_cat.split(",") if t.strip()]
    category = file_category or (types[0] if len(types) == 1 else "mixed")
    if category not in CATEGORIES:
        raise ValueError(f"{where}: unknown category {raw_cat!r} (known: {', '.join(CATEGORIES)})")
    if category != "mixed" or not types or types == ["mixed"]:
        types = [category] * level
    target = rec.get("target")
    family = f"{category}-{rec['example_id']}"
    out = {
        "id": f"{family}-L{level}",
        "family": family,
        "category": category,
        "example_id": rec["example_id"],
        "source": str(rec.get("source") or ""),
        "level": level,
        "instruction": rec["instruction"],
        # the published files write "" for "no reference answer"
        "target": target if isinstance(target, str) and target.strip() else None,
        "constraint_types": types,
        "file": file,
    }
    if "answer" in rec:
        out["answer"] = rec["answer"]
    return out


def _read_file(path: Path) -> list[tuple[str, dict]]:
    """(location, normalised record) of every record in one file."""
    cat = _file_category(path)
    return [(where, _normalise(rec, where, cat, str(path))) for where, rec in _read_records(path)]


def _data_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*_constraints.json")) + sorted(folder.glob("*_constraints.jsonl"))
    if not files:  # a folder of differently named files: take every JSON(L) in it
        files = sorted(folder.glob("*.json")) + sorted(folder.glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no FollowBench *_constraints.json files in {folder}")
    return files


def _hub_folder(name: str) -> Path:
    # Imported lazily: only users with hub access take this path.
    from huggingface_hub import snapshot_download

    # data/ holds the English files, as in the GitHub repository (data_zh/ the Chinese ones, not fetched)
    root = Path(snapshot_download(repo_id=name, repo_type="dataset", allow_patterns=["data/*.json"]))
    if not (root / "data").is_dir():
        raise FileNotFoundError(f"hub dataset {name} has no data/*.json files (looked in {root})")
    return root / "data"


def select_families(examples: Sequence[dict], n: int, seed: int = 0) -> list[dict]:
    """Every record of a fixed, seeded choice of ``n`` families, in original order.

    Whole families are kept so each chosen family still has all its levels (CSL needs them). A seeded
    shuffle then a prefix, so for one seed the subsets are nested (the 10-family subset holds the 5-family one).
    """
    families = list(dict.fromkeys(ex["family"] for ex in examples))
    if not 0 < n <= len(families):
        raise ValueError(f"subset must be in 1..{len(families)} families, got {n}")
    random.Random(seed).shuffle(families)
    keep = set(families[:n])
    return [ex for ex in examples if ex["family"] in keep]


def load_followbench(source: str | Path, categories: Sequence[str] | None = None, subset: int = 0,
                     seed: int = 0) -> list[dict]:
    """FollowBench records ``{id, family, category, example_id, source, level, instruction, target,
    constraint_types, file[, answer]}``, level 0..5 (0 = the instruction before any constraint).

    ``source``: a folder of the published ``*_constraints.json`` files, one JSON/JSONL file, ``"sample"``
    (the in-house sample) or ``HF_DATASET`` (downloads). ``categories``: keep only these. ``subset=N``: a
    fixed seeded subset of N whole families. A malformed record raises ValueError naming file and index.

    The family's category comes from the file name (``mixed_constraints.json`` -> mixed). A file named
    otherwise takes each record's ``category``, which in the mixed file names constraint types instead:
    keep the published file names for mixed data.
    """
    if str(source) == SAMPLE:
        source = SAMPLE_DIR
    path = _hub_folder(HF_DATASET) if str(source) == HF_DATASET else Path(source)
    if path.is_dir():
        files = _data_files(path)
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"FollowBench source not found: {source}")
    if categories is not None:
        unknown = sorted(set(categories) - set(CATEGORIES))
        if unknown:
            raise ValueError(f"unknown FollowBench categories {unknown} (known: {', '.join(CATEGORIES)})")
        # skip files named after another category before reading them (the example file is the largest)
        files = [f for f in files if _file_category(f) in (None, *categories)]
    examples: list[dict] = []
    seen: dict[str, str] = {}
    for f in files:
        for where, ex in _read_file(f):
            if ex["id"] in seen:
                raise ValueError(f"{where}: family {ex['family']} has level {ex['level']} twice "
                                 f"(first at {seen[ex['id']]})")
            seen[ex["id"]] = where
            examples.append(ex)
    if categories is not None:
        examples = [ex for ex in examples if ex["category"] in categories]
    return select_families(examples, subset, seed) if subset else examples


# --------------------------------------------------------------------------
# Rule checkers (our own; which items they cover follows the published evaluation)
# --------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_LIST_MARK = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")


def sentences(text: str) -> list[str]:
    """Sentences: split after . ! ? (and closing quotes) followed by space, so "3.5" stays whole; blanks dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip(" \n.!?")]


def words(text: str) -> list[str]:
    return text.split()


def has_word(text: str, word: str) -> bool:
    """The word (or its plural) as a whole word, any case: "bus" is not found in "business"."""
    return re.search(rf"\b{re.escape(word)}(?:s|es)?\b", text, re.I) is not None


def _present_continuous(text: str) -> bool:
    return re.search(r"\b(?:am|is|are|'m|'re|'s)\s+(?:not\s+|\w+ly\s+)?\w+ing\b", text, re.I) is not None


def _present_perfect(text: str) -> bool:
    # has/have + a participle; "have to" (obligation) and "has a/the/his ..." (possession) are not the perfect
    return re.search(r"\b(?:has|have|'ve)\s+(?:not\s+|never\s+|\w+ly\s+)?(?!(?:to|a|an|the|no|some|any|many|much"
                     r"|his|her|their|its|my|our|your|this|that|these|those)\b)[a-z]+\b", text, re.I) is not None


_NOT_LY_SUFFIX = {"family", "reply", "supply", "apply", "rely", "ally", "fly", "july", "italy", "assembly",
                  "anomaly", "monopoly", "comply", "multiply", "belly", "jelly", "bully", "rally", "holy"}


def _has_ly_word(text: str) -> bool:
    """A word ending in the suffix -ly; a short list of words where "ly" is part of the stem is let through."""
    for w in words(text):
        w = w.strip(string.punctuation + "\u201c\u201d\u2019").lower()
        if len(w) > 3 and w.endswith("ly") and w not in _NOT_LY_SUFFIX:
            return True
    return False


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def _plain_sentences(text: str) -> list[str]:
    """Sentences of text with markdown emphasis and list markers removed (so "1." is not a sentence)."""
    lines = [_LIST_MARK.sub("", ln.replace("**", "")).strip() for ln in text.splitlines()]
    return [s for ln in lines if ln for s in sentences(ln)]


# --- answers checked against the record's target (the whole answer is right or wrong) ---

def _exact(response: str, target: str) -> bool:
    return response.strip() == target.strip()


def _lines_within(response: str, target: str) -> bool:
    """Every line the response gives is one of the reference lines (event-argument filling)."""
    allowed = {ln.strip() for ln in target.splitlines() if ln.strip()}
    given = [ln.strip() for ln in response.splitlines() if ln.strip()]
    return bool(given) and all(ln in allowed for ln in given)


def _one_of(response: str, target: str) -> bool:
    """The answer is one of the accepted answers; target is a Python/JSON list literal of them."""
    accepted = ast.literal_eval(target)  # a literal only: never evaluates code
    if isinstance(accepted, str):
        accepted = [accepted]
    return response.strip() in {str(a).strip() for a in accepted}


def _last(pattern: str, response: str) -> str | None:
    found = re.findall(pattern, response)
    return found[-1] if found else None


def _last_option(response: str, target: str) -> bool:
    """The last "(X)" the response names is the right option (the answer comes after the reasoning)."""
    want = target.strip()
    want = want if want.startswith("(") else f"({want})"
    return _last(r"\([A-Z]\)", response) == want


def _last_date(response: str, target: str) -> bool:
    return _last(r"\b\d{2}/\d{2}/\d{4}\b", response) == target.strip()


def _contains(response: str, target: str) -> bool:
    return target.strip().lower() in response.lower()


def _money(s: str) -> float | None:
    m = _last(r"\$\s?(\d[\d,]*(?:\.\d+)?)", s)
    return float(m.replace(",", "")) if m is not None else None


def _last_dollar(response: str, target: str) -> bool:
    """The last dollar amount in the response equals the reference one ($7 == $7.00 == $7,0)."""
    got, want = _money(response), _money(target)
    return got is not None and want is not None and abs(got - want) < 1e-9


_ANSWER_RULES: dict[str, Callable[[str, str], bool]] = {
    "E2E": _exact,
    "text_editing": _exact,
    "WIKIEVENTS": _lines_within,
    "CONLL2003": _one_of,
    "BBH_logical": _last_option,
    "BBH_time": _last_date,
    "self_made_space": _contains,
    "gsm_8k": _last_dollar,
}


def example_template_match(response: str, target: str) -> bool:
    """Example category: the response has the shape its demonstrations show.

    ``target`` is a str.format template such as ``"{instruction}\\n{{'bot': '{answer}'}}"``: the part after
    ``{instruction}`` is what the response must be, literally, with ``{answer}`` standing for any text.
    """
    template = target.split("{instruction}", 1)[1] if "{instruction}" in target else target
    template = template.lstrip("\n")
    parts = []
    for literal, field, _, _ in string.Formatter().parse(template):  # unescapes {{ }} in the literal text
        parts.append(re.escape(literal))
        if field is not None:
            if field != "answer":
                raise ValueError(f"example template has a field {{{field}}} other than {{answer}}")
            parts.append(r".*")
    # DOTALL: an answer may span lines (a one-line match would reject even the reference answer of the
    # bill-summary family, whose answer has paragraphs)
    return re.fullmatch("".join(parts), response.strip(), re.DOTALL) is not None


# --- single families whose every constraint is countable ---

@dataclass(frozen=True)
class _Constraint:
    cue: str  # text the instruction shows once this constraint has been added
    test: Callable[[str], bool]


@dataclass(frozen=True)
class _FamilyRule:
    name: str
    category: str
    source: str
    constraints: tuple[_Constraint, ...]  # in the order the levels add them
    example_id: int | None = None  # where the source name alone does not single out the family

    def applies(self, ex: Mapping) -> bool:
        if ex["category"] != self.category or ex["source"] != self.source:
            return False
        if self.example_id is not None and ex["example_id"] != self.example_id:
            return False
        text = ex["instruction"].lower()
        return 0 < ex["level"] <= len(self.constraints) and all(
            c.cue.lower() in text for c in self.constraints[: ex["level"]])


def _nth_sentence(text: str, n: int) -> str:
    ss = sentences(text)
    return ss[n - 1] if len(ss) >= n else ""


def _body_paragraphs(text: str, closing: str) -> list[str]:
    """Paragraphs, less a last one that is only the requested closing phrase."""
    ps = _paragraphs(text)
    if ps and ps[-1].strip(string.punctuation + " ").lower() == closing.lower():
        ps = ps[:-1]
    return ps


_NUMBERED = re.compile(r"^\s*\**\s*\d+[.)]")
_POINT = re.compile(r"^\s*(?:[-*\u2022]\s+|\d+[.)]\s*)?\*\*")  # a line that opens a "**" point
_KEYWORD_POINT = re.compile(r"^\s*(?:[-*\u2022]\s+|\d+[.)]\s*)?\*\*[^*\n]{1,60}?(?::\*\*|\*\*\s*:)")


def _points(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if _POINT.match(ln)]


_TABLE_CLOSING = "Those are suggestions"

_FAMILY_RULES: tuple[_FamilyRule, ...] = (
    _FamilyRule("news_three_sentences", "mixed", "cnn_dailymail", (
        _Constraint("3 sentences", lambda t: len(sentences(t)) == 3),
        _Constraint("less than 15 words", lambda t: all(len(words(s)) < 15 for s in sentences(t))),
        _Constraint("'Potter', 'actor', 'films'", lambda t: has_word(_nth_sentence(t, 1), "Potter")
                    and has_word(_nth_sentence(t, 2), "actor") and has_word(_nth_sentence(t, 3), "film")),
        _Constraint("'lavish'", lambda t: not has_word(_nth_sentence(t, 2), "lavish")),
        _Constraint("present perfect", lambda t: _present_perfect(_nth_sentence(t, 3))),
    )),
    _FamilyRule("flood_one_sentence", "mixed", "xsum", (
        _Constraint("one sentence", lambda t: len(sentences(t)) == 1),
        _Constraint("less than 20 words", lambda t: len(words(t)) < 20),
        _Constraint("'Newton Stewart'", lambda t: "newton stewart" not in t.lower()),
        _Constraint("present progress", _present_continuous),
        _Constraint("'operation'", lambda t: has_word(t, "operation")),
    )),
    _FamilyRule("dialogue_one_sentence", "mixed", "samsum", (
        _Constraint("one sentence", lambda t: len(sentences(t)) == 1),
        _Constraint("less than 15 words", lambda t: len(words(t)) < 15),
        _Constraint("'stuff'", lambda t: has_word(t, "stuff")),
        _Constraint("'procrast'", lambda t: "procrast" not in t.lower()),
        _Constraint("only one punctuation", lambda t: sum(ch in string.punctuation for ch in t) == 1),
    )),
    _FamilyRule("headline_eight_words", "mixed", "gigaword", (
        _Constraint("8-word summary", lambda t: len(words(t)) == 8),
        _Constraint("punctuation", lambda t: not any(ch in string.punctuation for ch in t)),
        _Constraint("lowercase", lambda t: t == t.lower() and any(ch.isalpha() for ch in t)),
        _Constraint("'bus'", lambda t: not has_word(t, "bus")),
        _Constraint("'in'", lambda t: re.search(r"\bin\b", t, re.I) is not None),
    )),
    _FamilyRule("abstract_one_sentence", "mixed", "arxiv", (
        _Constraint("one sentence", lambda t: len(sentences(t)) == 1),
        _Constraint("within 20 words", lambda t: len(words(t)) <= 20),
        _Constraint("begin with the word 'we'", lambda t: re.match(r"\s*We\b", t) is not None),
        _Constraint("'activations'", lambda t: has_word(t, "activation")),
        _Constraint("'transformer'", lambda t: not has_word(t, "transformer")),
    )),
    _FamilyRule("table_care_paragraphs", "format", "helpful_base", (
        _Constraint("three paragraphs", lambda t: len(_body_paragraphs(t, _TABLE_CLOSING)) == 3),
        _Constraint("less than three sentences", lambda t: all(
            len(_plain_sentences(p)) < 3 for p in _body_paragraphs(t, _TABLE_CLOSING))),
        _Constraint("more than 20", lambda t: all(
            len(words(s)) > 20 for p in _body_paragraphs(t, _TABLE_CLOSING) for s in _plain_sentences(p))),
        _Constraint("number markers", lambda t: bool(_body_paragraphs(t, _TABLE_CLOSING)) and all(
            _NUMBERED.match(p) for p in _body_paragraphs(t, _TABLE_CLOSING))),
        _Constraint("'those are suggestions'", lambda t: re.search(
            rf"{_TABLE_CLOSING}[\s.!'\"\u2019\u201d]*$", t.strip(), re.I) is not None),
    ), example_id=22),
    _FamilyRule("speech_marked_points", "format", "koala", (
        _Constraint('marker "**"', lambda t: "**" in t),
        _Constraint("less than 2 sentences", lambda t: bool(_points(t)) and all(
            len(_plain_sentences(p)) < 2 for p in _points(t))),
        _Constraint("10-15 words", lambda t: bool(_plain_sentences(t)) and all(
            10 <= len(words(s)) <= 15 for s in _plain_sentences(t))),
        _Constraint("-ly", lambda t: not _has_ly_word(t)),
        _Constraint("first present a keyword", lambda t: sum(
            bool(_KEYWORD_POINT.match(ln)) for ln in t.splitlines()) == 5),
    ), example_id=30),
)


def rule_for(example: Mapping) -> str | None:
    """Name of the rule that scores this record, or None when an LLM judges it (level 0: None)."""
    if example["level"] < 1:
        return None
    if example["category"] == "example":
        return "example_template" if example.get("target") else None
    if example["source"] in _ANSWER_RULES and example.get("target"):
        return f"answer:{example['source']}"
    for fam in _FAMILY_RULES:
        if fam.applies(example):
            return f"family:{fam.name}"
    return None


def rule_check(example: Mapping, response: str) -> list[bool] | None:
    """One verdict per added constraint for a rule-scored record; None where the judge decides.

    A whole-answer rule (reference answer, example template) gives the same verdict to all L constraints.
    Raises ValueError for a malformed target (the scorer records it and fails the item closed).
    """
    name = rule_for(example)
    if name is None:
        return None
    level = example["level"]
    if name == "example_template":
        return [example_template_match(response, example["target"])] * level
    if name.startswith("answer:"):
        try:
            ok = _ANSWER_RULES[example["source"]](response, example["target"])
        except (ValueError, SyntaxError, TypeError) as e:
            raise ValueError(f"{example['id']}: target {example['target']!r} cannot be checked ({e})") from None
        return [bool(ok)] * level
    fam = next(f for f in _FAMILY_RULES if f"family:{f.name}" == name)
    return [bool(c.test(response)) for c in fam.constraints[:level]]


# --------------------------------------------------------------------------
# LLM judge: prompt and parsing
# --------------------------------------------------------------------------

_CATEGORY_NOTE = {
    "content": "Content constraints narrow what the answer must contain or do.",
    "situation": "Situation constraints describe a background or scenario the answer must fit and use.",
    "style": "Style constraints fix the tone, voice or manner of the answer.",
    "format": "Format constraints fix the layout, length or structure of the answer.",
    "mixed": "The added constraints are of different kinds (content, format, style).",
}


def judge_prompt(path: Mapping[int, str], level: int, response: str, category: str,
                 constraint_types: Sequence[str] = ()) -> str:
    """Our judge prompt: the evolution path (level 0..``level`` instructions) and the response to the last one;
    the judge names each added constraint, then gives one ``Constraint k: YES|NO`` line per constraint."""
    out = [
        "You are grading how well a response follows an instruction's constraints.",
        "",
        f"The instruction was built in {level} step{'s' if level > 1 else ''}: it began as a base instruction, "
        f"and each step rewrote it to add exactly one new constraint. {_CATEGORY_NOTE.get(category, '')}".rstrip(),
        "",
        "### Base instruction",
        path.get(0) or "(not given: infer it from step 1)",
    ]
    for k in range(1, level + 1):
        kind = f" ({constraint_types[k - 1]} constraint)" if len(constraint_types) >= k else ""
        out += ["", f"### After step {k}{kind}", path.get(k) or "(not given)"]
    out += [
        "", f"### Response to the instruction after step {level}", response, "",
        "### Your task",
        f"1. For each step from 1 to {level}, say in one sentence which constraint that step added.",
        "2. For each of those constraints, decide whether the response satisfies it. Judge only the added "
        "constraints, not the quality of the answer otherwise.",
        f"3. End with exactly {level} line{'s' if level > 1 else ''} in this form, in step order, "
        "and nothing after them:",
    ]
    out += [f"Constraint {k}: YES or NO" for k in range(1, level + 1)]
    return "\n".join(out)


_YES = {"yes", "y", "true", "satisfied", "met", "pass"}
_NO = {"no", "n", "false", "not satisfied", "unsatisfied", "not met", "fail", "partial", "partially",
       "maybe", "unknown", "unclear", "n/a", "na"}
_VERDICT = r"(yes|no|y|n|true|false|satisfied|not satisfied|unsatisfied|met|not met|pass|fail|partial(?:ly)?" \
           r"|maybe|unknown|unclear|n/a|na)"
_LINE_RE = re.compile(rf"^[\s>*_#`-]*constraint\s*#?\s*(\d+)(?:\s*\([^)\n]*\))?"  # "Constraint 2 (tone)"
                      rf"\s*[*_`]*\s*[:=\-\u2013]\s*[*_`\[\"']*\s*{_VERDICT}\b", re.I | re.M)
# a bare numbered verdict line ("2. NO"): only the verdict on the line, so the numbered analysis never matches
_NUMBERED_LINE_RE = re.compile(rf"^[\s*_`]*(\d+)\s*[.):]\s*[*_`\[\"']*{_VERDICT}[*_`\]\"'.!\s]*$", re.I | re.M)
_LIST_RE = re.compile(r"\[([^\[\]]*)\]")


def _verdict(token: str) -> bool | None:
    t = token.strip().strip("'\"`*_ .").lower()
    return True if t in _YES else False if t in _NO else None


def parse_judgment(text: Any, n: int) -> tuple[list[bool] | None, str]:
    """(one verdict per constraint, how it was read) or (None, why not) from a judge's output.

    Read, in order: ``Constraint k: YES|NO`` lines (the last one per k wins: analysis may come first), else
    bare ``k. YES|NO`` lines, a bracketed list like ``['YES', 'NO']``, and for one constraint a lone YES/NO
    on the last line. Fewer or
    more than ``n`` verdicts is not a verdict: it is returned as None (the caller fails it closed).
    """
    if not isinstance(text, str) or not text.strip():
        return None, "empty judge output"
    text = strip_think_blocks(text)
    if not text.strip():
        return None, "judge output holds only reasoning (<think>), no verdict"
    by_index: dict[int, bool] = {}
    line_re, kind = (_LINE_RE, "constraint lines") if _LINE_RE.search(text) else (_NUMBERED_LINE_RE, "numbered lines")
    for m in line_re.finditer(text):
        by_index[int(m.group(1))] = _verdict(m.group(2))
    if by_index:
        extra = sorted(k for k in by_index if not 1 <= k <= n)
        if extra:
            return None, f"verdict for constraint {extra[0]} but only {n} were added"
        if len(by_index) < n:
            return None, f"judge gave {len(by_index)} of {n} constraint verdicts"
        return [by_index[k] for k in range(1, n + 1)], kind
    for m in reversed(list(_LIST_RE.finditer(text))):
        items = [x for x in re.split(r"[,;]", m.group(1)) if x.strip()]
        verdicts = [_verdict(x) for x in items]
        if items and all(v is not None for v in verdicts):
            if len(verdicts) != n:
                return None, f"judge's list has {len(verdicts)} verdicts for {n} constraints"
            return verdicts, "list"
    if n == 1:
        last = [ln for ln in text.splitlines() if ln.strip()][-1]
        found = {w.lower() for w in re.findall(r"\b(YES|NO)\b", last, re.I)}
        if len(found) == 1:
            return [found.pop() == "yes"], "last line"
    return None, "no verdict found (expected 'Constraint k: YES/NO' lines)"


# --------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------


def _response_lookup(examples: Sequence[dict], responses) -> list[str | None]:
    """Align responses to examples: a dict by record id, or a list in the order of ``examples``."""
    if isinstance(responses, Mapping):
        return [responses.get(ex["id"]) for ex in examples]
    responses = list(responses)
    if len(responses) != len(examples):
        raise ValueError(f"{len(responses)} responses for {len(examples)} examples "
                         "(a dict by record id may leave out level 0)")
    return responses


def _verdict_row(ex: dict, method: str, satisfied: list[bool] | None, **extra) -> dict:
    scored = satisfied is not None
    return {
        "id": ex["id"], "family": ex["family"], "category": ex["category"], "source": ex["source"],
        "level": ex["level"], "constraint_types": list(ex["constraint_types"]),
        "method": method, "scored": scored, "satisfied": satisfied,
        "hard": all(satisfied) if scored else None,
        "soft": sum(satisfied) / len(satisfied) if scored and satisfied else (0.0 if scored else None),
        **extra,
    }


def score(examples: Sequence[dict], responses: Mapping[str, str | None] | Sequence[str | None],
          judge_generator=None, max_new_tokens: int = 512, seed: int = 0,
          strip_think: bool = True) -> tuple[list[dict], dict]:
    """Score responses on FollowBench records; returns ``(per_item, summary)`` (see the module docstring).

    ``responses``: dict record id -> response, or a list aligned with ``examples`` (level-0 entries are
    ignored). A missing response is scored as "" and counted. ``judge_generator``: a
    :class:`autoif_lib.models.Generator` (anything with its ``generate``) for the non-rule items; None
    leaves them not scored. Level-0 records are not scored but give the judge the base instruction.
    """
    paths: dict[str, dict[int, str]] = defaultdict(dict)
    for ex in examples:
        paths[ex["family"]][ex["level"]] = ex["instruction"]
    raw = _response_lookup(examples, responses)
    rows: list[dict | None] = []
    pending: list[tuple[int, dict, str, dict]] = []  # (row index, example, response, info) for the judge
    for ex, r in zip(examples, raw):
        if ex["level"] < 1:
            continue
        text = "" if r is None else str(r)
        resp = strip_think_blocks(text) if strip_think else text
        info = {"missing_response": r is None, "think_stripped": resp != text}
        name = rule_for(ex)
        if name is not None:
            try:
                rows.append(_verdict_row(ex, "rule", rule_check(ex, resp), rule=name, **info))
            except ValueError as e:  # a broken target must not pass, nor abort the run
                rows.append(_verdict_row(ex, "rule", [False] * ex["level"], rule=name, rule_error=str(e), **info))
        elif judge_generator is None:
            rows.append(_verdict_row(ex, "no_judge", None, reason="an LLM judges this item; no judge given", **info))
        else:
            rows.append(None)
            pending.append((len(rows) - 1, ex, resp, info))
    if pending:
        from .models import SamplingParams

        convs = [[{"role": "user", "content": judge_prompt(paths[ex["family"]], ex["level"], resp, ex["category"],
                                                           ex["constraint_types"])}]
                 for _, ex, resp, _ in pending]
        sp = SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=seed)
        outs = list(judge_generator.generate(convs, sp, desc="FollowBench judge"))
        outs += [[]] * (len(pending) - len(outs))  # a short reply list: the rest is unparsed, never dropped
        for (i, ex, _, info), out in zip(pending, outs):
            judgment = out[0] if out else ""
            verdicts, how = parse_judgment(judgment, ex["level"])
            if verdicts is None:
                rows[i] = _verdict_row(ex, "unparsed", [False] * ex["level"], reason=how, judgment=judgment, **info)
            else:
                rows[i] = _verdict_row(ex, "llm", verdicts, parsed_from=how, judgment=judgment, **info)
    per_item = [r for r in rows if r is not None]
    summary = summarize(per_item)
    summary["judge"] = ({"temperature": 0.0, "max_new_tokens": max_new_tokens, "seed": seed}
                        if judge_generator is not None else None)
    return per_item, summary


# --------------------------------------------------------------------------
# Metrics (pure functions over per-item verdicts)
# --------------------------------------------------------------------------


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def _se(xs: Sequence[float]) -> float | None:
    """Standard error of the mean (sample variance); None for fewer than two values."""
    if len(xs) < 2:
        return None
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs))


def _scored(per_item: Iterable[dict]) -> list[dict]:
    return [r for r in per_item if r.get("scored") and r["level"] >= 1]


def level_metrics(per_item: Iterable[dict]) -> dict:
    """HSR and SSR per level and averaged, over scored items (not-scored items are left out).

    ``per_level``: rows ``{level, n, hsr, hsr_se, ssr, ssr_se}`` for the levels present (SE of a mean of
    per-item scores). ``hsr_avg`` / ``ssr_avg``: the mean of the per-level values (None with no scored item);
    their ``_se`` is taken over per-family means, families being the independent units (exact when every
    family has the same levels).
    """
    rows = _scored(per_item)
    by_level: dict[int, list[dict]] = defaultdict(list)
    by_family: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_level[r["level"]].append(r)
        by_family[r["family"]].append(r)
    per_level = []
    for lv in sorted(by_level):
        hard = [float(bool(r["hard"])) for r in by_level[lv]]
        soft = [float(r["soft"]) for r in by_level[lv]]
        p = _mean(hard)
        per_level.append({"level": lv, "n": len(hard), "hsr": p,
                          "hsr_se": binomial_se(p, len(hard)) if len(hard) > 1 else None,
                          "ssr": _mean(soft), "ssr_se": _se(soft)})
    fam_hard = [_mean([float(bool(r["hard"])) for r in rs]) for rs in by_family.values()]
    fam_soft = [_mean([float(r["soft"]) for r in rs]) for rs in by_family.values()]
    return {
        "per_level": per_level,
        "hsr_avg": _mean([x["hsr"] for x in per_level]) if per_level else None,
        "ssr_avg": _mean([x["ssr"] for x in per_level]) if per_level else None,
        "hsr_avg_se": _se(fam_hard),
        "ssr_avg_se": _se(fam_soft),
        "n_scored": len(rows),
        "n_families": len(by_family),
    }


def csl_per_family(per_item: Iterable[dict]) -> dict[str, int]:
    """Per family: consecutive hard-satisfied levels counted from level 1 (a missing level ends the run).

    Families with any not-scored item are left out: their run cannot be known.
    """
    fams: dict[str, dict[int, dict]] = defaultdict(dict)
    for r in per_item:
        if r["level"] >= 1:
            fams[r["family"]][r["level"]] = r
    out = {}
    for fam, levels in fams.items():
        if not all(r.get("scored") for r in levels.values()):
            continue
        run = 0
        while run + 1 in levels and levels[run + 1]["hard"]:
            run += 1
        out[fam] = run
    return out


def csl(per_item: Iterable[dict]) -> float | None:
    """Consistent satisfaction levels: mean over families of :func:`csl_per_family` (None with no family)."""
    runs = list(csl_per_family(per_item).values())
    return _mean(runs) if runs else None


def summarize(per_item: Sequence[dict]) -> dict:
    """HSR/SSR (fractions) per level and averaged, CSL, per-category figures and the counts behind them."""
    per_item = list(per_item)
    methods = Counter(r["method"] for r in per_item)
    runs = csl_per_family(per_item)
    out = level_metrics(per_item)
    out.update(
        csl=_mean(list(runs.values())) if runs else None,
        n_families_csl=len(runs),
        units="fractions in [0, 1]; csl in levels",
        n_items=len(per_item),
        n_not_scored=sum(not r["scored"] for r in per_item),
        n_unparsed=methods.get("unparsed", 0),
        n_rule_errors=sum(bool(r.get("rule_error")) for r in per_item),
        n_missing_responses=sum(bool(r.get("missing_response")) for r in per_item),
        methods={m: methods.get(m, 0) for m in METHODS},
        unparsed=[{"id": r["id"], "reason": r.get("reason")} for r in per_item if r["method"] == "unparsed"][:20],
    )
    cats: dict[str, list[dict]] = defaultdict(list)
    for r in per_item:
        cats[r["category"]].append(r)
    out["per_category"] = {}
    for cat in sorted(cats):
        rs = cats[cat]
        m = level_metrics(rs)
        out["per_category"][cat] = {
            "n_items": len(rs), "n_scored": m["n_scored"], "n_not_scored": len(rs) - m["n_scored"],
            "methods": dict(Counter(r["method"] for r in rs)),
            "hsr_avg": m["hsr_avg"], "ssr_avg": m["ssr_avg"], "csl": csl(rs), "per_level": m["per_level"],
        }
    return out
