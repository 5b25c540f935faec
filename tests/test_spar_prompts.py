"""SPaR prompts (autoif_lib.spar.prompts) and prompt construction (autoif_lib.spar.evolve).

Pure functions, no model, no files.

    pytest -q tests/test_spar_prompts.py
"""

from __future__ import annotations

from collections import Counter

import pytest

from autoif_lib.spar import evolve as E
from autoif_lib.spar import prompts as P

# ====================================================================== taxonomy

def test_taxonomy_shape():
    assert set(P.TAXONOMY) == {"Format", "Content", "General"}
    assert len(P.SUBCATEGORIES) == 14
    assert [len(P.TAXONOMY[c]) for c in ("Format", "Content", "General")] == [6, 4, 4]
    assert ("Format", "Length") in P.SUBCATEGORIES and ("General", "Sentiment") in P.SUBCATEGORIES
    assert "Marathi" in P.TAXONOMY["General"]["Language"]
    assert "postscript" in P.TAXONOMY["Format"]["Text format"]
    assert all(opts and all(isinstance(o, str) for o in opts) for subs in P.TAXONOMY.values() for opts in subs.values())


# ====================================================================== prompt builders

def _is_messages(msgs):
    return isinstance(msgs, list) and all(set(m) == {"role", "content"} and isinstance(m["content"], str) for m in msgs)


def test_evolve_prompt():
    msgs = P.evolve("Suggest a weekend plan for a rainy day.", ("Content", "Genre"))
    assert _is_messages(msgs) and [m["role"] for m in msgs] == ["user"]
    text = msgs[0]["content"]
    assert "Suggest a weekend plan for a rainy day." in text
    assert "Content / Genre" in text and "poetry" in text            # the main constraint and its options
    assert "[[start]]" in text and "[[end]]" in text
    assert "None" in text                                             # math / coding refusal
    assert "Constraints:" in text
    assert text.index("Constraints:") > text.rindex("[[end]]") - 200  # the line comes after the block
    for sub in ("Length", "Keyword", "Language style"):               # the whole taxonomy is shown
        assert sub in text
    assert "bullet" in text.lower() and "length" in text.lower()


def test_judge_prompt():
    msgs = P.judge("Write a haiku in lowercase.", "Autumn wind blows")
    assert _is_messages(msgs) and [m["role"] for m in msgs] == ["user"]
    text = msgs[0]["content"]
    assert "Write a haiku in lowercase." in text and "Autumn wind blows" in text
    assert "step by step" in text.lower()
    assert "Final Judgement: Yes" in text and "Final Judgement: No" in text
    assert text.index("Write a haiku") < text.index("Autumn wind blows")


def test_refine_prompt_three_turns():
    msgs = P.refine("Write a haiku in lowercase.", "Autumn wind blows", "It uses a capital A.\nFinal Judgement: No")
    assert _is_messages(msgs)
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert msgs[0] == P.judge("Write a haiku in lowercase.", "Autumn wind blows")[0]
    assert msgs[1]["content"] == "It uses a capital A.\n\nFinal Judgement: No"   # one verdict line, normalised
    assert P.refine("p", "r", "It uses a capital A.")[1] == msgs[1]                 # a bare critique gets it too
    last = msgs[2]["content"]
    assert "Refined response:" in last and "[[start]]" in last and "[[end]]" in last
    assert last == P.refine_instruction()


# ====================================================================== main constraints

def test_choose_main_constraints_seeded_and_balanced():
    a, b = E.choose_main_constraints(30, seed=1), E.choose_main_constraints(30, seed=1)
    assert a == b and len(a) == 30
    assert E.choose_main_constraints(30, seed=2) != a
    assert set(a) <= set(P.SUBCATEGORIES)
    counts = Counter(a)
    assert set(counts) == set(P.SUBCATEGORIES) and max(counts.values()) - min(counts.values()) <= 1
    assert E.choose_main_constraints(0, seed=0) == []


# ====================================================================== math / code filter

MATH_CODE = [
    "Write a Python function that reverses a linked list.",
    "```\nfor i in range(3): print(i)\n```\nWhat does this print?",
    "Write a program that prints the first 100 primes.",
    "How do I write a SQL query to find duplicate rows?",
    "Give me a regex that matches email addresses.",
    "Solve for x: 3x + 5 = 20.",
    "Calculate the compound interest on $1000 at 5% for 3 years.",
    "What is 17 * 23?",
    "Prove that the square root of 2 is irrational.",
    "Find the derivative of x^2 + 3x.",
    "Can you help me understand how to solve quadratic equations?",
    "My script throws TypeError: 'NoneType' object is not subscriptable.",
    "How do I undo the last commit in git?",
    "Write a bash script to back up my home folder.",
    "What is the probability that two dice sum to 7?",
    "Implement quicksort in C++.",
    "Why does SELECT name FROM users return nothing?",
]

PLAIN = [
    "Suggest a weekend plan for a rainy day.",
    "Write a script for a short film about two sisters.",
    "I need to return a gift my aunt sent. How do I say so politely?",
    "Pack list for a 3-4 day hiking trip?",
    "Give me a recipe that uses 1/2 cup of flour.",
    "Evaluate my essay introduction for clarity.",
    "How can I solve a conflict with my roommate?",
    "What were the causes of the First World War?",
    "Write a poem about the sea in the style of a sailor.",
    "Create a workout program for a beginner.",
    "Draft a code of conduct for our book club.",
    "Explain the reign of terror in the French Revolution.",
    "I'm 34 with 12,000 in savings; should I invest?",
]


@pytest.mark.parametrize("text", MATH_CODE)
def test_math_or_code_detected(text):
    assert E.looks_like_math_or_code(text)


@pytest.mark.parametrize("text", PLAIN)
def test_plain_request_not_flagged(text):
    assert not E.looks_like_math_or_code(text)


def test_prefilter():
    reqs = [{"id": "a", "query": "Plan a picnic."}, {"id": "b", "query": "Write a Python function to sort a list."},
            {"id": "c", "request": "Describe a sunset."}]
    kept, rejected = E.prefilter(reqs)
    assert [r["id"] for r in kept] == ["a", "c"]
    assert rejected == [{"id": "b", "query": "Write a Python function to sort a list.", "reject": E.PREFILTER_REASON}]


# ====================================================================== parse_evolved

REQ = "Suggest a weekend plan for a rainy day."
GOOD = ("Suggest a weekend plan for a rainy day, written as a diary entry from a cat, "
        "and make sure the word 'umbrella' appears exactly twice.")

PARSE_CASES = [
    pytest.param(f"[[start]]\n{GOOD}\n[[end]]\nConstraints: diary genre; keyword frequency",
                 GOOD, ["diary genre", "keyword frequency"], None, id="plain"),
    pytest.param(f"Here is the rewrite:\n[[start]]{GOOD}[[end]]\nConstraints: diary; umbrella twice; cat persona\nHope it helps!",
                 GOOD, ["diary", "umbrella twice", "cat persona"], None, id="extra-text"),
    pytest.param(f"[[start]]\n{GOOD}\n[[end]]", GOOD, [], None, id="no-constraints-line"),
    pytest.param("None", None, [], "refused_math_or_code", id="none"),
    pytest.param("**None**", None, [], "refused_math_or_code", id="none-bold"),
    pytest.param("[[start]]None[[end]]", None, [], "refused_math_or_code", id="none-in-markers"),
    pytest.param(GOOD, None, [], "no_markers", id="no-markers"),
    pytest.param("[[start]]\n  \n[[end]]\nConstraints: a", None, ["a"], "empty", id="empty"),
    pytest.param(f"[[start]]\n{GOOD}", GOOD, [], None, id="missing-end"),
    pytest.param(f"[[start]]\n{GOOD}\nConstraints: diary; keyword", GOOD, ["diary", "keyword"], None,
                 id="missing-end-with-constraints"),
    pytest.param(f"**[[start]]**\n{GOOD}\n**[[end]]**\n**Constraints:** diary; keyword", GOOD, ["diary", "keyword"], None,
                 id="markdown-bold"),
    pytest.param(f"[[start]]\n```\n{GOOD}\n```\n[[end]]\nConstraints: diary", GOOD, ["diary"], None, id="code-fence"),
    pytest.param(f"\\[\\[start\\]\\] {GOOD} \\[\\[end\\]\\]\nConstraints: diary", GOOD, ["diary"], None, id="escaped-markers"),
    pytest.param(f"[[START]]\n{GOOD}\n[[END]]\nconstraints: diary", GOOD, ["diary"], None, id="upper-case-markers"),
    pytest.param(f"[[start]]\n{GOOD}\n[[end]]\nConstraints:\n- diary\n- keyword frequency\n", GOOD,
                 ["diary", "keyword frequency"], None, id="constraints-as-bullets"),
    pytest.param(f"[[start]]\n{GOOD}\n[[end]]\nConstraints:", None, [], "no_constraints", id="constraints-empty"),
    pytest.param(f"[[start]]\n{GOOD}\n[[end]]\nConstraints: a; b; c; d", GOOD, ["a", "b", "c", "d"], None, id="four-ok"),
    pytest.param(f"[[start]]\n{GOOD}\n[[end]]\nConstraints: a; b; c; d; e", None, ["a", "b", "c", "d", "e"],
                 "too_many_constraints", id="five-too-many"),
    pytest.param(f"[[start]]\n{REQ}\n[[end]]\nConstraints: a", None, ["a"], "unchanged", id="unchanged"),
    pytest.param("[[start]]\nsuggest a weekend plan for a rainy day!!\n[[end]]", None, [], "unchanged",
                 id="unchanged-normalized"),
    pytest.param("[[start]]\n" + "word " * 500 + "\n[[end]]", None, [], "too_long", id="too-long"),
    pytest.param("[[start]]\nSure! Here is a weekend plan: visit a museum, then bake bread.\n[[end]]", None, [],
                 "answer_not_prompt", id="answer"),
    pytest.param(f"[[start]]\nRewritten request: {GOOD}\n[[end]]\nConstraints: diary", GOOD, ["diary"], None,
                 id="label-prefix"),
]


@pytest.mark.parametrize("text,prompt,constraints,reason", PARSE_CASES)
def test_parse_evolved(text, prompt, constraints, reason):
    assert E.parse_evolved(text, request=REQ) == (prompt, constraints, reason)


def test_parse_evolved_notes_and_no_request():
    r = E.parse_evolved_full(f"[[start]]\n{GOOD}")
    assert r.prompt == GOOD and "missing_end" in r.notes and "no_constraints_line" in r.notes
    # without request= nothing is "unchanged"
    assert E.parse_evolved(f"[[start]]{REQ}[[end]]") == (REQ, [], None)
    assert set(E.REJECT_REASONS) >= {"refused_math_or_code", "no_markers", "empty", "too_long", "unchanged",
                                     "no_constraints", "too_many_constraints", "answer_not_prompt"}


# ====================================================================== collect

def test_collect():
    reqs = [{"id": "q1", "query": REQ}, {"id": "q2", "query": "Describe a sunset."},
            {"id": "q3", "query": "Tips for a job interview?"}, {"id": "q1", "query": REQ}]
    mains = [("Content", "Genre"), ("General", "Sentiment"), ("Format", "Length"), ("Content", "Keyword")]
    other = "Describe a sunset in exactly three sentences, all in a hopeful tone."
    completions = [f"[[start]]{GOOD}[[end]]\nConstraints: diary; keyword",
                   f"[[start]]{other}[[end]]\nConstraints: sentences; hopeful",
                   "None",
                   f"[[start]]{GOOD}[[end]]\nConstraints: diary"]  # duplicate of the first
    _, pre = E.prefilter([{"id": "q9", "query": "What is 2 + 2?"}])
    res = E.collect(reqs, completions, mains, prefiltered=pre)
    assert [p["id"] for p in res["prompts"]] == ["q1-e0", "q2-e0"]
    p0 = res["prompts"][0]
    assert p0 == {"id": "q1-e0", "request_id": "q1", "request": REQ, "prompt": GOOD,
                  "main_constraint": ["Content", "Genre"], "constraints": ["diary", "keyword"], "origin": "evolved"}
    assert res["rejects"] == Counter({"refused_math_or_code": 1, "duplicate": 1, E.PREFILTER_REASON: 1})
    assert len(res["log"]) == 5
    assert [e["status"] for e in res["log"]] == ["rejected", "kept", "kept", "rejected", "rejected"]
    with pytest.raises(ValueError):
        E.collect(reqs, completions[:2], mains)


# ====================================================================== compose

def _constraints():
    recs = []
    for fam in ("letters", "length", "case", "punctuation", "keywords", "format"):
        for j in range(3):
            recs.append({"id": f"{fam}_{j}", "family": fam, "instruction": f"Rule {j} about {fam}",
                         "verifier": f"def evaluate(response):\n    return '{fam}{j}' != ''\n"})
    recs.append({"id": "noverif", "family": "orphan", "instruction": "Unverifiable rule."})
    recs.append({"id": "autoif_1", "family": "autoif", "instruction": "Use at most two commas.",
                 "functions": [{"src": "def evaluate(r): return False", "accuracy": 0.5},
                               {"src": "def evaluate(r): return r.count(',') <= 2", "accuracy": 0.9}]})
    return recs


def test_compose_families_counts_verifiers():
    cons = _constraints()
    by_id = {c["id"]: c for c in cons}
    reqs = [{"id": f"q{i}", "query": f"Request number {i}."} for i in range(200)]
    out = E.compose(reqs, cons, seed=3)
    assert len(out) == 200
    sizes = Counter(len(r["constraint_ids"]) for r in out)
    assert set(sizes) == {1, 2, 3, 4}
    for r in out:
        fams = [by_id[c]["family"] for c in r["constraint_ids"]]
        assert len(fams) == len(set(fams)) == len(r["families"])
        assert "noverif" not in r["constraint_ids"]
        assert r["main_constraint"] == r["constraint_ids"][0]
        assert len(r["verifiers"]) == len(r["constraint_ids"])
        for cid, src in zip(r["constraint_ids"], r["verifiers"]):
            expected = by_id[cid].get("verifier") or "def evaluate(r): return r.count(',') <= 2"
            assert src == expected
        assert r["origin"] == "composed"
        assert r["prompt"].startswith(r["request"])
        for c in r["constraints"]:
            assert c in r["prompt"] and c.endswith(".")
        assert r["prompt"].index(r["constraints"][0]) > len(r["request"])
    assert out == E.compose(reqs, cons, seed=3)
    assert out != E.compose(reqs, cons, seed=4)


def test_compose_bounds():
    cons = _constraints()
    reqs = [{"id": f"q{i}", "query": "Plan a trip."} for i in range(50)]
    assert all(len(r["constraint_ids"]) == 2 for r in E.compose(reqs, cons, k_min=2, k_max=2))
    # fewer families than k_max: capped at the number of families, never a repeat
    two = [c for c in cons if c["family"] in ("letters", "case")]
    assert all(len(r["constraint_ids"]) <= 2 for r in E.compose(reqs, two, k_min=1, k_max=4))
    with pytest.raises(ValueError):
        E.compose(reqs, two, k_min=3, k_max=4)
    with pytest.raises(ValueError):
        E.compose(reqs, cons, k_min=0)


# ---------------------------------------------------------------------------- paper-scale inputs

def _ctx(**p):
    from types import SimpleNamespace

    from autoif_lib.spar.stages import PromptsParams

    params = PromptsParams(**p)
    return SimpleNamespace(p=params, input=lambda path: path)


def test_prompts_file_reads_our_format_released_output_and_conversations(tmp_path):
    import json

    from autoif_lib.spar import prompting

    long_prompt = "Describe your favourite season in three sentences, all in lowercase, ending with a question. " * 3
    rows = [
        {"id": "a", "prompt": "Write a haiku about rain, in lowercase only.", "constraints": ["lowercase"]},
        {"origin": "req-7", "main_constraint": ["Format", "Length"],
         "response": "[[start]]Tell me about tea in exactly two paragraphs, no commas.[[end]]\n"
                     "Constraints: two paragraphs; no commas"},
        {"response": "None"},                                       # the released evolve's refusal, kept raw there
        {"messages": [{"role": "user", "content": long_prompt}, {"role": "assistant", "content": "x"}]},
        {"prompt": "Write a haiku about rain, in lowercase only."},  # duplicate
        {"prompt": "Hi"},                                            # below min_chars
        {"text_field": "nothing usable"},
    ]
    f = tmp_path / "evolved.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recs, rejects = prompting.load_prompts_file(f, min_chars=10, max_chars=200)
    assert [r["prompt"] for r in recs] == ["Write a haiku about rain, in lowercase only.",
                                           "Tell me about tea in exactly two paragraphs, no commas."]
    assert recs[1]["constraints"] == ["two paragraphs", "no commas"] and recs[1]["request_id"] == "req-7"
    assert recs[0]["constraints"] == ["lowercase"] and recs[0]["id"] == "a"
    assert rejects == {"refused_math_or_code": 1, "too_long": 1, "duplicate": 1, "too_short": 1, "no_text": 1}
    recs, rejects = prompting.load_prompts_file(f, min_chars=10, max_chars=10 ** 9)
    assert len(recs) == 3 and "too_long" not in rejects


def test_math_code_filter_is_a_switch_and_the_paper_default_asks_the_model():
    from autoif_lib.spar import prompting

    reqs = [{"id": "a", "request": "I want to learn Python, where do I start?"},
            {"id": "b", "request": "Plan a picnic for six people."}]
    assert prompting.prefilter(_ctx(), reqs) == (reqs, [])                    # llm (paper): no keyword filter
    kept, refused = prompting.prefilter(_ctx(math_code_filter="regex"), reqs)
    assert [r["id"] for r in kept] == ["b"] and [r["id"] for r in refused] == ["a"]
    assert prompting.prefilter(_ctx(math_code_filter="off"), reqs) == (reqs, [])
    # llm: the supervisor's own "None" is the refusal, counted by the evolve parser
    assert E.parse_evolved("None")[2] == "refused_math_or_code"


def test_length_filter_params_reach_the_request_pool(tmp_path):
    from autoif_lib.spar import prompting

    f = tmp_path / "q.jsonl"
    f.write_text('{"query": "short"}\n{"query": "' + "a long request " * 30 + '"}\n{"query": "a normal request here"}\n')
    reqs, counts = prompting.load_requests(_ctx(queries_file=str(f), min_chars=10, max_chars=100))
    assert [r["request"] for r in reqs] == ["a normal request here"]
    assert counts == {"read": 3, "kept": 1, "rejects": {"too_short": 1, "too_long": 1}}
    reqs, counts = prompting.load_requests(_ctx(queries_file=str(f)))       # defaults: no upper limit
    assert len(reqs) == 3 and counts["rejects"] == {}
    f2 = prompting.funnel(reqs[:2], [], {"prompts": reqs[:2], "rejects": {}}, reqs[:1], reqs[1:2],
                          {"read": 5, "kept": 3, "rejects": {"too_long": 2}})
    assert [s["out"] for s in f2.steps] == [5, 3, 2, 2, 2, 1] and f2.steps[1]["rejects"] == {"too_long": 2}
    # the llm filter (paper) or none: no regex step in the funnel (its refusals are evolve rejects)
    f3 = prompting.funnel(reqs[:2], [], {"prompts": reqs[:2], "rejects": {}}, reqs[:1], reqs[1:2],
                          {"read": 5, "kept": 3, "rejects": {"too_long": 2}}, math_code_filter="llm")
    assert [s["out"] for s in f3.steps] == [5, 3, 2, 2, 1] and not any("regex" in s["step"] for s in f3.steps)


def test_prompts_file_and_source_agree():
    from autoif_lib.params import ParamsError, build
    from autoif_lib.spar.stages import PromptsParams

    with pytest.raises((ParamsError, ValueError), match="needed by source: file"):
        build(PromptsParams, {"source": "file"})
    with pytest.raises((ParamsError, ValueError), match="max_chars"):
        build(PromptsParams, {"min_chars": 50, "max_chars": 10})
