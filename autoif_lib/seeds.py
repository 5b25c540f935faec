"""Seed instructions, everyday queries and held-out responses: the shipped data and user files.

The workbench ships three files under ``autoif_lib/data/`` (all written for
this project):

* ``seeds.jsonl``: 36 atomic, code-checkable seed instructions written for
  this project, in the families of the AutoIF paper's seed set (letters,
  vocabulary, length, format, verse, encodings, tense). They are not the
  paper's seeds: those are not all code-checkable, and some are IFEval types
  ("Respond with a list of bullet points" is IFEval's number_bullet_lists).
  Ours are chosen apart from IFEval's 25 instruction types on purpose, so
  IFEval measures transfer (checked by ``tests/test_seed_disjointness.py``;
  the README lists what was dropped, reworded and added). Each has a
  hand-written reference ``verifier`` (Python source defining
  ``evaluate(response) -> bool``, stdlib only) and labelled ``cases``.
* ``queries.jsonl``: everyday user requests (cooking, travel, emails, code,
  money, ...) with no formatting demands; stage B pairs them with
  instructions, as AutoIF does with ShareGPT queries.
* ``heldout_responses.jsonl``: 8 extra responses per seed, labelled by the
  reference verifier, to score how well an LLM writes verifiers.

Usage::

    from autoif_lib.seeds import load_seeds, load_queries, load_heldout_responses
    seeds = load_seeds()                              # shipped seeds
    seeds = load_seeds("my_instructions.txt")         # one instruction per line
    queries, rejects = load_queries("sharegpt.json")  # first user turn, 20-300 chars

Everything here is pure standard library (no torch) and only reads files.
Malformed input raises ``ValueError`` naming the file and line (or item).
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path
from typing import Any, Iterator

from .io import iter_jsonl_numbered

DATA_DIR = Path(__file__).resolve().parent / "data"
SEEDS_PATH = DATA_DIR / "seeds.jsonl"
CPU_SEEDS_PATH = DATA_DIR / "seeds_cpu.jsonl"  # 14 lighter seeds a 135M model sometimes satisfies (params/autoif/cpu_effect.yaml)
QUERIES_PATH = DATA_DIR / "queries.jsonl"
HELDOUT_PATH = DATA_DIR / "heldout_responses.jsonl"

# Reasons load_queries counts when it drops a record (always all present, 0 if unused).
QUERY_REJECT_REASONS: tuple[str, ...] = (
    "no_text",      # the record has no query/text/prompt field and no user turn
    "empty",        # the text is blank after stripping
    "too_short",    # fewer than min_chars characters
    "too_long",     # more than max_chars characters
    "duplicate",    # the same text (after stripping) was already kept
)

_BULLETS = ("- ", "* ", "\u2022 ")
_USER_ROLES = {"human", "user"}
_TEXT_FIELDS = ("query", "text", "prompt")


# ---------------------------------------------------------------- reading


def _resolve(path: str | os.PathLike | None, default: Path) -> Path:
    return default if path is None else Path(path)


def _bool_label(value: Any) -> bool | None:
    """True/False, also from the strings "true"/"false" (LLMs often write them); None if neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


# ---------------------------------------------------------------- seeds


def _check_verifier(src: Any, where: str) -> None:
    """Shape check only (parses, defines evaluate); what it may import is the sandbox's business."""
    if not isinstance(src, str) or not src.strip():
        raise ValueError(f"{where}: 'verifier' must be a non-empty string of Python source")
    try:
        tree = ast.parse(src)
    except SyntaxError as e:
        raise ValueError(f"{where}: 'verifier' does not parse (line {e.lineno}: {e.msg})") from None
    if not any(isinstance(n, ast.FunctionDef) and n.name == "evaluate" for n in tree.body):
        raise ValueError(f"{where}: 'verifier' does not define evaluate(response)")


def _check_cases(cases: Any, where: str) -> list[dict]:
    if not isinstance(cases, list):
        raise ValueError(f"{where}: 'cases' must be a list")
    out = []
    for i, case in enumerate(cases):
        if not isinstance(case, dict) or not isinstance(case.get("input"), str):
            raise ValueError(f"{where}: case {i} must be an object with a string 'input'")
        label = _bool_label(case.get("output"))
        if label is None:
            raise ValueError(f"{where}: case {i} 'output' must be true or false, got {case.get('output')!r}")
        out.append({**case, "output": label})
    return out


def _seed_record(rec: dict, where: str, default_id: str) -> dict:
    instruction = rec.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError(f"{where}: missing or empty 'instruction'")
    out = dict(rec)
    out["instruction"] = instruction.strip()
    sid = rec.get("id", default_id)
    if not isinstance(sid, str) or not sid.strip():
        raise ValueError(f"{where}: 'id' must be a non-empty string")
    out["id"] = sid
    if "family" in rec and not isinstance(rec["family"], str):
        raise ValueError(f"{where}: 'family' must be a string")
    if "verifier" in rec:
        _check_verifier(rec["verifier"], where)
    if "cases" in rec:
        out["cases"] = _check_cases(rec["cases"], where)
    return out


def load_seeds(path: str | os.PathLike | None = None) -> list[dict]:
    """Seed instructions as records ``{id, instruction, [family, verifier, cases]}``.

    ``path=None`` loads the 36 shipped seeds. A ``.txt`` file holds one
    instruction per line (blank lines and ``#`` comments skipped, a leading
    ``- ``/``* `` bullet stripped, as in AutoIF's augmentation output; a
    UTF-8 byte-order mark and CRLF line ends are fine), the format of the
    paper's published seed list, and yields ``{id, instruction}`` records
    (no verifier) with ids ``<file stem>_<nnnn>``. A
    ``.jsonl`` file needs at least ``instruction`` per line; ``id`` defaults
    to ``<file stem>_<line>``; optional ``verifier`` must parse and define
    ``evaluate``; optional ``cases`` are ``{input: str, output: bool}``
    ("true"/"false" strings are converted). Duplicate ids or instructions
    raise ``ValueError`` naming both lines.
    """
    p = _resolve(path, SEEDS_PATH)
    suffix = p.suffix.lower()
    records: list[tuple[int, dict]] = []
    if suffix == ".txt":
        with open(p, encoding="utf-8-sig") as f:  # -sig: drop a BOM (files saved on Windows)
            for lineno, line in enumerate(f, 1):
                text = line.strip()
                if not text or text.startswith("#"):
                    continue
                if text.startswith(_BULLETS):
                    text = text[2:].strip()
                if not text:
                    raise ValueError(f"{p}:{lineno}: empty instruction after the bullet")
                records.append((lineno, {"id": f"{p.stem}_{len(records) + 1:04d}", "instruction": text}))
    elif suffix == ".jsonl":
        for lineno, rec in iter_jsonl_numbered(p):
            records.append((lineno, _seed_record(rec, f"{p}:{lineno}", f"{p.stem}_{lineno:04d}")))
    else:
        raise ValueError(f"{p}: unsupported seed file type {suffix!r} (use .txt or .jsonl)")

    seen_ids: dict[str, int] = {}
    seen_text: dict[str, int] = {}
    for lineno, rec in records:
        if rec["id"] in seen_ids:
            raise ValueError(f"{p}:{lineno}: duplicate id {rec['id']!r} (first on line {seen_ids[rec['id']]})")
        key = " ".join(rec["instruction"].split()).lower()
        if key in seen_text:
            raise ValueError(f"{p}:{lineno}: duplicate instruction (first on line {seen_text[key]})")
        seen_ids[rec["id"]] = seen_text[key] = lineno
    if not records:
        raise ValueError(f"{p}: no instructions found")
    return [rec for _, rec in records]


# ---------------------------------------------------------------- queries


def _content_text(content: Any) -> str | None:
    """Message content as text: a string, or OpenAI-style parts [{"type": "text", "text": ...}]."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [c.get("text") for c in content if isinstance(c, dict) and isinstance(c.get("text"), str)]
        return "\n".join(parts) if parts else None
    return None


def _first_user_turn(turns: Any, where: str) -> str | None:
    """Text of the first human/user turn of a ShareGPT ``conversations`` or chat ``messages`` list."""
    if not isinstance(turns, list):
        raise ValueError(f"{where}: conversation must be a list of turns, got {type(turns).__name__}")
    for turn in turns:
        if not isinstance(turn, dict):
            raise ValueError(f"{where}: every turn must be an object")
        role = turn.get("from", turn.get("role"))
        if isinstance(role, str) and role.lower() in _USER_ROLES:
            return _content_text(turn.get("value", turn.get("content")))
    return None


def _query_text(rec: dict, where: str) -> str | None:
    for key in ("conversations", "messages"):
        if key in rec:
            return _first_user_turn(rec[key], where)
    for key in _TEXT_FIELDS:
        if key in rec:
            value = rec[key]
            if isinstance(value, list):  # trl conversational prompt: a list of messages
                return _first_user_turn(value, where)
            if not isinstance(value, str):
                raise ValueError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
            return value
    return None


def _iter_query_source(p: Path) -> Iterator[tuple[str, str, dict]]:
    """(where, default id, record) for each record of a .jsonl or .json (list) file."""
    if p.suffix.lower() == ".json":
        try:
            with open(p, encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{p}:{e.lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(data, list):
            raise ValueError(f"{p}: expected a JSON list of records, got {type(data).__name__}")
        for i, rec in enumerate(data):
            if not isinstance(rec, dict):
                raise ValueError(f"{p}: item {i}: expected a JSON object, got {type(rec).__name__}")
            yield f"{p}: item {i}", f"{p.stem}_{i + 1:06d}", rec
    elif p.suffix.lower() == ".jsonl":
        for lineno, rec in iter_jsonl_numbered(p):
            yield f"{p}:{lineno}", f"{p.stem}_{lineno:06d}", rec
    else:
        raise ValueError(f"{p}: unsupported query file type {p.suffix!r} (use .jsonl or .json)")


def _iter_hub_dataset(dataset: str, split: str = "train") -> Iterator[tuple[str, str, dict]]:
    """Records of a hub dataset (users with hub access; imported only when asked for)."""
    import datasets  # noqa: PLC0415

    ds = datasets.load_dataset(dataset, split=split)
    stem = dataset.rsplit("/", 1)[-1]
    for i, rec in enumerate(ds):
        yield f"{dataset}[{i}]", f"{stem}_{i + 1:06d}", dict(rec)


def load_queries(
    path: str | os.PathLike | None = None,
    min_chars: int = 20,
    max_chars: int = 300,
    dataset: str | None = None,
) -> tuple[list[dict], dict[str, int]]:
    """Queries as ``({id, query[, category]} records, rejects_by_reason)``.

    Reads the shipped queries (``path=None``), ShareGPT-style files (JSON list
    or JSONL with ``conversations`` [{from, value}] or ``messages`` [{role,
    content}]: the first human/user turn is the query), or plain JSONL with a
    ``query``/``text``/``prompt`` field. Texts are stripped and kept when
    ``min_chars <= len <= max_chars`` (AutoIF's script uses the exclusive
    20 < len < 300); exact duplicates are dropped. Every dropped record is
    counted under a reason from ``QUERY_REJECT_REASONS``. ``dataset`` names a
    hub dataset (same record shapes) instead of a file.
    """
    if min_chars < 0 or max_chars < min_chars:
        raise ValueError(f"need 0 <= min_chars <= max_chars, got {min_chars}, {max_chars}")
    p = _resolve(path, QUERIES_PATH)
    rejects = {reason: 0 for reason in QUERY_REJECT_REASONS}
    records: list[dict] = []
    seen_text: set[str] = set()
    seen_ids: set[str] = set()
    source = _iter_hub_dataset(dataset) if dataset else _iter_query_source(p)
    for where, default_id, rec in source:
        text = _query_text(rec, where)
        if text is None:
            rejects["no_text"] += 1
            continue
        text = text.strip()
        if not text:
            rejects["empty"] += 1
        elif len(text) < min_chars:
            rejects["too_short"] += 1
        elif len(text) > max_chars:
            rejects["too_long"] += 1
        elif text in seen_text:
            rejects["duplicate"] += 1
        else:
            qid = rec.get("id")
            qid = str(qid) if isinstance(qid, (str, int)) and str(qid).strip() else default_id
            if qid in seen_ids:  # ShareGPT dumps reuse ids across split conversations
                qid = f"{qid}_{default_id.rsplit('_', 1)[-1]}"
            out = {"id": qid, "query": text}
            if isinstance(rec.get("category"), str):
                out["category"] = rec["category"]
            records.append(out)
            seen_text.add(text)
            seen_ids.add(qid)
    return records, rejects


# ---------------------------------------------------------------- held-out responses


def load_heldout_responses(path: str | os.PathLike | None = None) -> list[dict]:
    """Held-out ``{seed_id, response, label}`` records (label = the reference verifier's verdict)."""
    p = _resolve(path, HELDOUT_PATH)
    out = []
    for lineno, rec in iter_jsonl_numbered(p):
        where = f"{p}:{lineno}"
        if not isinstance(rec.get("seed_id"), str) or not rec["seed_id"]:
            raise ValueError(f"{where}: missing or empty 'seed_id'")
        if not isinstance(rec.get("response"), str):
            raise ValueError(f"{where}: 'response' must be a string")
        label = _bool_label(rec.get("label"))
        if label is None:
            raise ValueError(f"{where}: 'label' must be true or false, got {rec.get('label')!r}")
        out.append({**rec, "label": label})
    return out
