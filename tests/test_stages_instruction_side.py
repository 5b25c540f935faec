"""Stages 01, 02 and 04 on hand-made records: augmentation, verifier sampling, back-translation."""

from __future__ import annotations

from autoif_lib.autoif import augment, backtranslate, prompts, verifiers
from autoif_lib.reporting import Funnel

SEEDS = [{"id": "s1", "instruction": "Answer in all lowercase letters.", "origin": "seed",
          "verifier": "def evaluate(response):\n    return response == response.lower()",
          "cases": [{"input": "abc", "output": True}, {"input": "ABC", "output": False}]},
         {"id": "s2", "instruction": "Use exactly three bullet points.", "origin": "seed"}]


def test_build_calls_is_seeded_and_varied():
    a = augment.build_calls([s["instruction"] for s in SEEDS] * 5, 3, 2, 5, seed=1)
    b = augment.build_calls([s["instruction"] for s in SEEDS] * 5, 3, 2, 5, seed=1)
    assert a == b and len(a) == 3
    assert a[0][-1] == {"role": "assistant", "content": "- "}  # the reply is primed with a bullet


def test_collect_counts_every_line():
    completions = [
        "- Write every sentence in the passive voice please.\n- Answer in all lowercase letters.\n- ok\n",
        "Here you go:\n- Write every sentence in the passive voice, please.\n- End each line with an exclamation mark.",
        "I cannot help with that.",
    ]
    res = augment.collect(SEEDS, completions, near_threshold=0.85)
    new = [r["instruction"] for r in res["new"]]
    assert new == ["Write every sentence in the passive voice please.", "End each line with an exclamation mark."]
    assert all(r["origin"] == "augmented" for r in res["new"])
    assert res["rejects"]["exact_duplicate"] + res["rejects"]["near_duplicate"] == 2  # seed copy + near copy
    assert res["rejects"]["too_short"] == 1 and res["rejects"]["no_list"] == 1
    assert [c["new"] for c in res["calls"]] == [1, 1, 0]
    f = augment.funnel(res, len(SEEDS))
    assert isinstance(f, Funnel) and f.final == len(SEEDS) + 2
    # nothing lost silently: every proposed line is kept or has a reason
    assert res["n_proposed"] == sum(c["well_formed"] for c in res["calls"]) + sum(
        v for k, v in res["rejects"].items() if k not in ("exact_duplicate", "near_duplicate"))
    capped = augment.collect(SEEDS, completions, max_new=1)
    assert len(capped["new"]) == 1 and capped["rejects"]["over_max_new"] == 1


def test_verifier_collect_with_reference_and_rejects():
    instructions = [dict(SEEDS[0]), dict(SEEDS[1])]
    samples = [
        [prompts.VERIFIER_PREFILL + "return response.islower()\n```\n```json\n"
         '[{"input": "abc", "output": true}, {"input": "Abc", "output": "false"}, {"input": 3, "output": true}]\n```',
         "I do not know."],
        ['{"func": "def evaluate(response):\\n    return response.count(\'\\\\n- \') == 2", '
         '"cases": [{"input": "- a\\n- b\\n- c", "output": true}]}'],
    ]
    res = verifiers.collect(instructions, samples, add_reference=True)
    c1, c2 = res["candidates"]
    assert [f["origin"] for f in c1["functions"]] == ["model", "reference"]
    assert [(c["input"], c["output"], c["origin"]) for c in c1["cases"]][:2] == [("abc", True, "model"), ("Abc", False, "model")]
    assert res["case_rejects"]["case_input_not_str"] == 1
    assert res["sample_rejects"]["no_json_no_func"] == 1
    assert len(c2["functions"]) == 1 and "verifier" not in c1  # reference source lives in functions only
    f = verifiers.funnel(res)
    assert f.steps[0]["in"] == 3 and f.steps[0]["out"] == 2


def test_select_is_balanced_and_seeded():
    recs = [{"id": f"s{i}", "origin": "seed"} for i in range(10)] + [{"id": f"a{i}", "origin": "augmented"} for i in range(10)]
    a = verifiers.select(recs, 6, seed=0)
    assert a == verifiers.select(recs, 6, seed=0) and len(a) == 6
    assert sum(r["origin"] == "seed" for r in a) == 3
    few_new = recs[:10] + recs[10:11]
    b = verifiers.select(few_new, 6, seed=0)
    assert len(b) == 6 and sum(r["origin"] != "seed" for r in b) == 1
    assert verifiers.select(recs, 0, 0) == recs


def test_backtranslation_selection_parsing_and_filter():
    rec = {"id": "x", "instruction": "Answer in all lowercase letters.", "functions": [
        {"src": "a", "accuracy": 0.6}, {"src": "b", "accuracy": 1.0}, {"src": "c", "accuracy": 0.9}]}
    assert [f["src"] for f in backtranslate.select_functions(rec, 2)] == ["b", "c"]  # most accurate first
    items, reason = backtranslate.parse_backtranslations('["Write only in lowercase letters.", "Use no capital letters at all"]', 3)
    assert items == ["Write only in lowercase letters.", "Use no capital letters at all."] and reason is None
    assert backtranslate.parse_backtranslations("", 3) == ([], "no_backtranslation")
    recs = [dict(rec, id="a"), dict(rec, id="b"), dict(rec, id="c")]
    backs = [["x one two"], ["y one two", "z one two"], []]
    pairs = backtranslate.pairs_for(recs, backs)
    labels = backtranslate.group_labels(3, pairs, ["entailment", "contradiction", None])
    assert labels == [["entailment"], ["contradiction", None], []]
    res = backtranslate.apply_filter(recs, backs, labels, max_contradictions=0)
    assert [r["id"] for r in res["kept"]] == ["a", "c"] and res["rejects"] == {"nli_contradiction": 1}
    res = backtranslate.apply_filter(recs, backs, labels, max_contradictions=1, drop_unparsed=True)
    assert [r["id"] for r in res["kept"]] == ["a", "b"] and res["rejects"] == {"no_backtranslation": 1}
    assert res["labels"] == {"entailment": 1, "contradiction": 1, "None": 1}


def test_backtranslation_prompt_hides_docstrings_and_comments():
    src = '"""Every word starts with B."""\nimport re\n\ndef evaluate(response):\n    """All words start with b."""\n    # check each word\n    return all(w.lower().startswith("b") for w in re.findall(r"\\w+", response))\n'
    out = backtranslate.strip_docs(src)
    assert "Every word" not in out and "All words" not in out and "check each word" not in out
    ns = {}
    exec(out, ns)
    assert ns["evaluate"]("Big bold bears") and not ns["evaluate"]("Big red bears")
    assert backtranslate.strip_docs("def broken(:") == "def broken(:"
    req = backtranslate.build_requests([{"functions": [{"src": src, "accuracy": 1.0}]}], 3)[0][0]["content"]
    assert "Every word" not in req and "def evaluate" in req
