"""Shipped seeds, queries and held-out responses, and the loaders in autoif_lib.seeds.

Covers: the 36 seeds' schema and cases; every reference verifier agrees with
its cases and held-out labels (in-process exec here, and through
``autoif_lib.sandbox.run_verifiers`` when that module exists); loaders for
.txt / .jsonl / ShareGPT / plain files with malformed-line errors and length
filter counts; the query pool. In-memory plus tmp_path, no network.

    pytest -q tests/test_seeds.py
"""

from __future__ import annotations

import ast
import json
from collections import Counter

import pytest

from autoif_lib.seeds import (
    QUERY_REJECT_REASONS,
    load_heldout_responses,
    load_queries,
    load_seeds,
)

# The verifiers ship as data, so they must run anywhere: stdlib text modules only.
ALLOWED_IMPORTS = {"re", "string", "json", "math", "collections", "itertools", "functools", "unicodedata"}
FAMILIES = {"letters", "vocabulary", "length", "format", "verse", "encoding", "tense"}


@pytest.fixture(scope="module")
def seeds():
    return load_seeds()


@pytest.fixture(scope="module")
def heldout():
    return load_heldout_responses()


@pytest.fixture(scope="module")
def expectations(seeds, heldout):
    """Per seed: (source, [(input, expected bool), ...]) over cases then held-out responses."""
    by_seed = {s["id"]: [(c["input"], c["output"]) for c in s["cases"]] for s in seeds}
    for h in heldout:
        by_seed[h["seed_id"]].append((h["response"], h["label"]))
    return [(s["id"], s["verifier"], by_seed[s["id"]]) for s in seeds]


def _exec_evaluate(src: str, name: str):
    namespace: dict = {"__name__": f"verifier_{name}"}  # fresh dict per verifier: helpers resolve
    exec(compile(src, f"<{name}>", "exec"), namespace)
    return namespace["evaluate"]


# ---------------------------------------------------------------- (a) seed schema


def test_36_seeds_unique_ids_and_schema(seeds):
    assert len(seeds) == 36
    ids = [s["id"] for s in seeds]
    assert len(set(ids)) == 36
    assert len({s["instruction"] for s in seeds}) == 36
    for s in seeds:
        assert set(s) == {"id", "family", "instruction", "verifier", "cases"}, s["id"]
        assert s["id"].startswith("seed_") and s["family"] in FAMILIES, s["id"]
        assert isinstance(s["instruction"], str) and 20 <= len(s["instruction"]) <= 300, s["id"]
        cases = s["cases"]
        assert len(cases) >= 6, s["id"]
        labels = [c["output"] for c in cases]
        assert all(type(v) is bool for v in labels), s["id"]
        assert labels.count(True) >= 2 and labels.count(False) >= 2, s["id"]
        assert len({c["input"] for c in cases}) == len(cases), s["id"]
    # all families of the paper's seed set are represented
    assert set(Counter(s["family"] for s in seeds)) == FAMILIES


def test_verifiers_import_only_stdlib_text_modules(seeds):
    for s in seeds:
        tree = ast.parse(s["verifier"])
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert {a.name for a in node.names} <= ALLOWED_IMPORTS, s["id"]
            elif isinstance(node, ast.ImportFrom):
                assert node.module in ALLOWED_IMPORTS, s["id"]
        assert any(isinstance(n, ast.FunctionDef) and n.name == "evaluate" for n in tree.body), s["id"]
        assert ast.get_docstring(tree), f"{s['id']}: document the check in a module docstring"


def test_verifiers_pass_the_sandbox_precheck(seeds):
    policy = pytest.importorskip("autoif_lib.sandbox.policy")
    for s in seeds:
        assert policy.precheck(s["verifier"], allowed_imports=tuple(ALLOWED_IMPORTS)) is None, s["id"]


def test_heldout_schema(seeds, heldout):
    ids = {s["id"] for s in seeds}
    per_seed = Counter(h["seed_id"] for h in heldout)
    assert set(per_seed) == ids and set(per_seed.values()) == {8}
    case_inputs = {(s["id"], c["input"]) for s in seeds for c in s["cases"]}
    for sid in ids:
        labels = [h["label"] for h in heldout if h["seed_id"] == sid]
        assert labels.count(True) >= 2 and labels.count(False) >= 2, sid
        responses = [h["response"] for h in heldout if h["seed_id"] == sid]
        assert len(set(responses)) == 8, sid
        assert not any((sid, r) in case_inputs for r in responses), f"{sid}: held-out response repeats a case"


# ---------------------------------------------------------------- (b) reference verifiers agree with labels


def test_reference_verifiers_in_process(expectations):
    """Plain exec into a fresh dict per verifier; returns must be real bools and deterministic."""
    for sid, src, items in expectations:
        evaluate = _exec_evaluate(src, sid)
        for text, expected in items:
            got = evaluate(text)
            assert type(got) is bool, f"{sid}: returned {type(got).__name__} for {text!r}"
            assert got is expected, f"{sid}: expected {expected} for {text!r}"
            assert evaluate(text) is got, f"{sid}: not deterministic on {text!r}"


def test_reference_verifiers_robust_to_odd_inputs(seeds):
    """Empty, whitespace-only and symbol-only responses give a bool, never an exception."""
    odd = ["", "   \n\t", "...", "\U0001F600", "12345", "a", "\u200d\ufe0f", "-" * 500]
    for s in seeds:
        evaluate = _exec_evaluate(s["verifier"], s["id"])
        for text in odd:
            assert type(evaluate(text)) is bool, (s["id"], text)


def test_reference_verifiers_in_sandbox(expectations):
    sandbox = pytest.importorskip("autoif_lib.sandbox")
    run_verifiers = getattr(sandbox, "run_verifiers", None)
    if run_verifiers is None:
        pytest.skip("autoif_lib.sandbox has no run_verifiers yet")
    sources = [src for _, src, _ in expectations]
    inputs = [[text for text, _ in items] for _, _, items in expectations]
    res = run_verifiers(sources, inputs)
    assert len(res.verdicts) == len(sources)
    for (sid, _, items), verdicts in zip(expectations, res.verdicts):
        assert len(verdicts) == len(items), sid
        for (text, expected), v in zip(items, verdicts):
            assert v.status == ("pass" if expected else "fail"), f"{sid}: {v.status} for {text!r}"
            assert v.ok is expected, sid


# ---------------------------------------------------------------- (c) loaders


def test_load_seeds_txt(tmp_path):
    p = tmp_path / "augment_instructions.txt"
    p.write_text(
        "# generated by step 1\n"
        "Answer in exactly two sentences.\n"
        "\n"
        "- Do not use any digits.\n"
        "* End with the word 'Done'.\n",
        encoding="utf-8",
    )
    recs = load_seeds(p)
    assert [r["instruction"] for r in recs] == [
        "Answer in exactly two sentences.",
        "Do not use any digits.",
        "End with the word 'Done'.",
    ]
    assert [r["id"] for r in recs] == ["augment_instructions_0001", "augment_instructions_0002", "augment_instructions_0003"]
    assert all(set(r) == {"id", "instruction"} for r in recs)


def test_load_seeds_txt_plain_list_like_the_papers(tmp_path):
    """The paper publishes its seeds as bare lines (no bullets, no verifiers); a file saved on
    Windows adds a byte-order mark and CRLF line ends. Such seeds load without a verifier."""
    p = tmp_path / "seed_instruction.txt"
    lines = [
        "Reply using only words that rhyme with 'cat'",
        "Write the answer as a ship's log entry",
        "Answer so that every line is a question (e.g., \"why?\")",
    ]
    p.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    recs = load_seeds(p)
    assert [r["instruction"] for r in recs] == lines
    assert [r["id"] for r in recs] == ["seed_instruction_0001", "seed_instruction_0002", "seed_instruction_0003"]
    assert all(set(r) == {"id", "instruction"} for r in recs)  # no verifier, no cases


def test_load_seeds_txt_duplicates_and_empty(tmp_path):
    p = tmp_path / "dup.txt"
    p.write_text("Use no commas.\nuse  no commas.\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"dup\.txt:2: duplicate instruction \(first on line 1\)"):
        load_seeds(p)
    q = tmp_path / "empty.txt"
    q.write_text("# only a comment\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no instructions"):
        load_seeds(q)


def test_load_seeds_jsonl_minimal_and_full(tmp_path):
    p = tmp_path / "mine.jsonl"
    lines = [
        {"instruction": "Answer in French."},
        {"id": "x1", "instruction": "Use no commas.", "family": "format",
         "verifier": "def evaluate(response):\n    return ',' not in response\n",
         "cases": [{"input": "a b", "output": True}, {"input": "a, b", "output": "false"}]},
    ]
    p.write_text("\n".join(json.dumps(r) for r in lines) + "\n\n", encoding="utf-8")
    recs = load_seeds(p)
    assert recs[0] == {"id": "mine_0001", "instruction": "Answer in French."}
    assert recs[1]["id"] == "x1"
    assert recs[1]["cases"][1]["output"] is False  # "false" string normalised


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"id": "a"}', "missing or empty 'instruction'"),
        ('{"instruction": "   "}', "missing or empty 'instruction'"),
        ('{"instruction": "x", "id": 3}', "'id' must be a non-empty string"),
        ('{"instruction": "x", "verifier": "def evaluate(:"}', "does not parse"),
        ('{"instruction": "x", "verifier": "def check(r):\\n    return True"}', "does not define evaluate"),
        ('{"instruction": "x", "cases": {"input": "a"}}', "'cases' must be a list"),
        ('{"instruction": "x", "cases": [{"input": "a", "output": "maybe"}]}', "must be true or false"),
        ('{"instruction": "x", "cases": [{"output": true}]}', "string 'input'"),
    ],
)
def test_load_seeds_jsonl_malformed_line_names_file_and_line(tmp_path, bad_line, message):
    p = tmp_path / "seeds_bad.jsonl"
    p.write_text('{"instruction": "Answer in one sentence."}\n\n' + bad_line + "\n", encoding="utf-8")
    with pytest.raises(ValueError) as err:
        load_seeds(p)
    assert f"{p}:3:" in str(err.value) and message in str(err.value)


def test_load_seeds_duplicate_id_and_unknown_suffix(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"id": "a", "instruction": "One."}\n{"id": "a", "instruction": "Two."}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"d\.jsonl:2: duplicate id 'a'"):
        load_seeds(p)
    q = tmp_path / "seeds.csv"
    q.write_text("instruction\nx\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unsupported seed file type"):
        load_seeds(q)


def _sharegpt(i, user_text, first="human"):
    turns = [{"from": first, "value": user_text}, {"from": "gpt", "value": "Sure, here you go."}]
    if first != "human":
        turns = [{"from": "system", "value": "You are helpful."},
                 {"from": "human", "value": user_text}, {"from": "gpt", "value": "Ok."}]
    return {"id": f"sg{i}", "conversations": turns}


def test_load_queries_sharegpt_json_with_length_filter(tmp_path):
    long_q = "Tell me about the history of the bicycle. " * 10  # > 300 chars
    data = [
        _sharegpt(1, "How do I keep basil alive on a windowsill?"),
        _sharegpt(2, "Hi"),                                              # too short
        _sharegpt(3, long_q),                                            # too long
        _sharegpt(4, "  What is a good first programming language?  ", first="system"),
        _sharegpt(5, "How do I keep basil alive on a windowsill?"),      # duplicate
        {"id": "sg6", "conversations": [{"from": "gpt", "value": "I start the chat?"}]},  # no user turn
        _sharegpt(7, "   "),                                             # empty
    ]
    p = tmp_path / "sharegpt.json"
    p.write_text(json.dumps(data), encoding="utf-8")
    recs, rejects = load_queries(p)
    assert [r["query"] for r in recs] == [
        "How do I keep basil alive on a windowsill?",
        "What is a good first programming language?",
    ]
    assert [r["id"] for r in recs] == ["sg1", "sg4"]
    assert rejects == {"no_text": 1, "empty": 1, "too_short": 1, "too_long": 1, "duplicate": 1}
    assert set(rejects) == set(QUERY_REJECT_REASONS)
    # the bounds are inclusive and configurable
    recs2, rejects2 = load_queries(p, min_chars=2, max_chars=len(long_q.strip()))
    assert len(recs2) == 4 and rejects2["too_short"] == 0 and rejects2["too_long"] == 0


def test_load_queries_messages_jsonl_and_content_parts(tmp_path):
    rows = [
        {"messages": [{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": "Why do cats purr when they are happy?"},
                      {"role": "assistant", "content": "Nobody knows for sure."}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is a good stretch for tight hips?"}]}]},
        {"prompt": [{"role": "user", "content": "How do I descale a kettle with vinegar?"}]},
    ]
    p = tmp_path / "chat.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    recs, rejects = load_queries(p)
    assert [r["query"] for r in recs] == [
        "Why do cats purr when they are happy?",
        "What is a good stretch for tight hips?",
        "How do I descale a kettle with vinegar?",
    ]
    assert [r["id"] for r in recs] == ["chat_000001", "chat_000002", "chat_000003"]
    assert sum(rejects.values()) == 0


def test_load_queries_plain_jsonl_fields(tmp_path):
    rows = [
        {"text": "How long should I boil an egg for a runny yolk?"},
        {"query": "What is the capital of Australia and why not Sydney?", "category": "geo"},
        {"prompt": "Suggest a name for a bakery that sells only rye bread."},
        {"title": "no usable field here"},
        {"text": "short"},
    ]
    p = tmp_path / "plain.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    recs, rejects = load_queries(p)
    assert len(recs) == 3
    assert recs[1] == {"id": "plain_000002", "query": rows[1]["query"], "category": "geo"}
    assert rejects["no_text"] == 1 and rejects["too_short"] == 1


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ('{"text": "How do I fix a flat bike tyre', "not valid JSON"),
        ('"just a string"', "expected a JSON object"),
        ('{"text": 42}', "must be a string"),
        ('{"conversations": "human: hi"}', "must be a list"),
    ],
)
def test_load_queries_malformed_line_names_line(tmp_path, bad_line, message):
    p = tmp_path / "q.jsonl"
    p.write_text('{"text": "What is the best way to learn to swim as an adult?"}\n' + bad_line + "\n", encoding="utf-8")
    with pytest.raises(ValueError) as err:
        load_queries(p)
    assert f"{p}:2:" in str(err.value) and message in str(err.value)


def test_load_queries_bad_json_file_and_suffix(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text('[{"text": "ok ok ok ok ok ok ok ok"},\n{"text": oops}]', encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.json:2: not valid JSON"):
        load_queries(p)
    q = tmp_path / "notalist.json"
    q.write_text('{"text": "hello there, how are you today?"}', encoding="utf-8")
    with pytest.raises(ValueError, match="expected a JSON list"):
        load_queries(q)
    r = tmp_path / "item.json"
    r.write_text('[{"text": "What is a good houseplant for low light?"}, 7]', encoding="utf-8")
    with pytest.raises(ValueError, match="item 1"):
        load_queries(r)
    with pytest.raises(ValueError, match="unsupported query file type"):
        load_queries(tmp_path / "queries.txt")
    with pytest.raises(ValueError, match="min_chars"):
        load_queries(min_chars=50, max_chars=10)


def test_load_heldout_malformed(tmp_path):
    p = tmp_path / "h.jsonl"
    p.write_text('{"seed_id": "s", "response": "x", "label": true}\n{"seed_id": "s", "response": "y", "label": 1}\n',
                 encoding="utf-8")
    with pytest.raises(ValueError, match=r"h\.jsonl:2: 'label' must be true or false"):
        load_heldout_responses(p)


# ---------------------------------------------------------------- (d) shipped queries


def test_shipped_queries():
    recs, rejects = load_queries()
    assert sum(rejects.values()) == 0, rejects
    assert len(recs) >= 200
    assert len({r["id"] for r in recs}) == len(recs)
    assert len({r["query"].lower() for r in recs}) == len(recs)
    assert all(20 <= len(r["query"]) <= 300 for r in recs)
    cats = Counter(r["category"] for r in recs)
    assert len(cats) >= 10 and max(cats.values()) <= 0.15 * len(recs)
    # queries carry no formatting demands: those are added by the instructions
    banned = ("bullet", "numbered list", "paragraph", "lowercase", "capital letters", "in exactly", "words or fewer")
    for r in recs:
        assert not any(b in r["query"].lower() for b in banned), r["query"]
