"""Stages 05-07 on hand-made records: pairing, pass rates, thresholds, judge scores, layout, DPO pairs."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest

from autoif_lib import instruction_sets, scoring
from autoif_lib.autoif import export, prompts, responses

INSTR = [{"id": f"i{k}", "instruction": f"Rule number {k}.", "origin": "seed"} for k in range(10)]
QUERIES = [{"id": f"q{k}", "query": f"Question {k}?"} for k in range(30)]


DISTINCT = [{"id": f"d{k}", "instruction": text} for k, text in enumerate(
    ["Use no commas.", "End with a question.", "Write in lowercase.", "Start with a greeting.", "Use a semicolon.",
     "Mention a colour.", "Include an emoji.", "Avoid the word 'very'.", "Quote a proverb.", "Sign off with a name."])]


@pytest.mark.parametrize("grouping", ["families", "near_duplicates"])
def test_split_heldout_is_seeded_and_disjoint(grouping):
    train, held = instruction_sets.split_heldout(DISTINCT, 0.2, seed=3, grouping=grouping)
    assert len(held) == 2 and len(train) == 8
    assert not {r["id"] for r in train} & {r["id"] for r in held}
    assert instruction_sets.split_heldout(DISTINCT, 0.2, seed=3, grouping=grouping) == (train, held)
    assert instruction_sets.split_heldout(DISTINCT[:1], 0.5, 0, grouping=grouping) == (DISTINCT[:1], [])  # never the only one
    assert instruction_sets.split_heldout(DISTINCT[:2], 0.01, 0, grouping=grouping)[1] != []  # at least one when asked
    with pytest.raises(ValueError, match="grouping"):
        instruction_sets.split_heldout(DISTINCT, 0.2, 0, grouping="embedding")


def _fn(src):
    return [{"src": src}]


# Self-instruct variants as a 135M-72B supervisor writes them: one constraint, another argument.
VARIANTS = [
    {"id": "b", "instruction": "Begin your response with the letter B.",
     "functions": _fn("def evaluate(response):\n    return response.strip().startswith('B')\n")},
    {"id": "c", "instruction": "Begin your response with the letter C.",
     "functions": _fn("def evaluate(response):\n    return response.strip().startswith('C')\n")},
    {"id": "w50", "instruction": "Answer in fewer than 50 words.",
     "functions": _fn("def evaluate(response):\n    return len(response.split()) < 50\n")},
    {"id": "w80", "instruction": "Keep the answer under eighty words in total.",  # other wording, same verifier shape
     "functions": _fn('def evaluate(response):\n    """Under 80 words."""\n    return len(response.split()) < 80  # cap\n')},
    {"id": "kw1", "instruction": "Include the keyword 'apple' twice.",
     "functions": _fn("def evaluate(response):\n    return response.lower().count('apple') == 2\n")},
    {"id": "kw2", "instruction": 'Include the keyword "harbour" twice.',
     "functions": _fn("def evaluate(response):\n    return response.lower().count('harbour') == 2\n")},
    {"id": "q", "instruction": "End with a question to the reader.",
     "functions": _fn("import re\ndef evaluate(response):\n    return re.search(r'\\?\\s*$', response) is not None\n")},
    {"id": "pct", "instruction": "Mention a percentage such as 40%.",
     "functions": _fn("import re\ndef evaluate(response):\n    return re.search(r'\\d+%', response) is not None\n")},
]


def test_families_group_self_instruct_variants_and_keep_them_on_one_side():
    groups = [sorted(r["id"] for r in g) for g in instruction_sets.family_groups(VARIANTS)]
    # same template with another letter / quoted word; the same verifier but for a constant; regex verifiers
    # whose patterns differ are different constraints
    assert sorted(groups) == [["b", "c"], ["kw1", "kw2"], ["pct"], ["q"], ["w50", "w80"]]
    # the lexical grouping of before keeps none of them together (they are not paraphrases)
    assert all(len(g) == 1 for g in instruction_sets.near_duplicate_groups(VARIANTS))
    straddled = 0
    for seed in range(30):
        for grouping in ("families", "near_duplicates"):
            train, held = instruction_sets.split_heldout(VARIANTS, 0.3, seed, grouping=grouping)
            side = {r["id"]: "train" for r in train} | {r["id"]: "held" for r in held}
            split = [f for f in (("b", "c"), ("w50", "w80"), ("kw1", "kw2")) if side[f[0]] != side[f[1]]]
            if grouping == "families":
                assert held and not split, (seed, side)
            else:
                straddled += bool(split)
    assert straddled > 0  # the lexical split does leak variants across for some seeds


def test_template_key_and_verifier_skeleton_mask_arguments_only():
    assert instruction_sets.template_key("Use at least 3 bullets.") == instruction_sets.template_key("Use at least five bullets.")
    assert instruction_sets.template_key("Use at least 3 bullets.") != instruction_sets.template_key("Use at most 3 bullets.")
    a = instruction_sets.verifier_skeleton("def evaluate(response):\n    return 'x' in response\n")
    assert a == instruction_sets.verifier_skeleton("def evaluate(response):\n    # any\n    return \"yz\" in response\n")
    assert a != instruction_sets.verifier_skeleton("def evaluate(response):\n    return 'x' not in response\n")
    assert instruction_sets.verifier_skeleton("def evaluate(response:\n    return '") == ""  # does not tokenize: no key


def test_split_heldout_keeps_near_duplicate_paraphrases_together():
    ins = [{"id": "a", "instruction": "Write every word in lowercase letters only."},
           {"id": "b", "instruction": "Write every word in lowercase letters only, please."},
           {"id": "c", "instruction": "End the answer with the word STOP."},
           {"id": "d", "instruction": "Use exactly three sentences."},
           {"id": "e", "instruction": "Answer in the future tense only."}]
    for seed in range(20):
        train, held = instruction_sets.split_heldout(ins, 0.2, seed)
        ids_t, ids_h = {r["id"] for r in train}, {r["id"] for r in held}
        assert ids_h and ids_t and not ids_t & ids_h and ids_t | ids_h == set("abcde")
        assert {"a", "b"} <= ids_t or {"a", "b"} <= ids_h, (seed, ids_h)  # never split across


def test_pair_is_seeded_per_instruction_and_uses_layout():
    a = instruction_sets.pair(INSTR[:3], QUERIES, m=4, seed=0)
    assert len(a) == 12 and a == instruction_sets.pair(INSTR[:3], QUERIES, m=4, seed=0)
    # adding an instruction does not change the queries of the others
    b = instruction_sets.pair(INSTR[:4], QUERIES, m=4, seed=0)
    assert b[:12] == a
    assert len({p["query_id"] for p in a if p["instruction_id"] == "i0"}) == 4  # no repeats
    assert a[0]["prompt"] == f"{a[0]['instruction']}\n\n{a[0]['query']}"
    q = instruction_sets.pair(INSTR[:1], QUERIES, m=1, seed=0, layout="query_first")[0]
    assert q["prompt"] == f"{q['query']}\n\n{q['instruction']}" and q["layout"] == "query_first"
    with pytest.raises(ValueError, match="unknown layout"):
        prompts.combine_turn("a", "b", "sideways")


def _runner(functions, inputs):
    out = []
    for src, inp in zip(functions, inputs):
        ns = {}
        exec(src, ns)
        row = []
        for x in inp:
            try:
                r = ns["evaluate"](x)
                row.append(SimpleNamespace(status="pass" if r is True else "fail", ok=r is True))
            except Exception:
                row.append(SimpleNamespace(status="exception", ok=False))
        out.append(row)
    return out


def test_pass_rates_mean_over_functions_errors_fail():
    pairs = [{"pair_id": "p", "instruction_id": "i0", "instruction": "x", "query": "q", "query_id": "q0",
              "prompt": "x\n\nq", "responses": ["abc", "ABC", "a"]}]
    fns = {"i0": ["def evaluate(r):\n    return r.islower()", "def evaluate(r):\n    return len(r) > 1",
                  "def evaluate(r):\n    return 1/0"]}
    scored = scoring.pass_rates(pairs, fns, _runner)
    assert [s["pass_rate"] for s in scored] == [round(2 / 3, 4), round(1 / 3, 4), round(1 / 3, 4)]
    assert scored[0]["statuses"] == {"pass": 2, "exception": 1} and scored[0]["n_functions"] == 3
    # no functions: pass rate 0, never silently 'passing'
    assert scoring.pass_rates(pairs, {}, _runner)[0]["pass_rate"] == 0.0


@pytest.mark.parametrize("thr, inclusive, kept", [(0.5, False, [0.8, 1.0]), (0.5, True, [0.5, 0.8, 1.0]),
                                                  (0.8, False, [1.0]), (0.0, False, [0.5, 0.8, 1.0])])
def test_pass_threshold(thr, inclusive, kept):
    recs = [{"pass_rate": r} for r in (0.0, 0.5, 0.8, 1.0)]
    assert [r["pass_rate"] for r in scoring.keep_by_pass_rate(recs, thr, inclusive)] == kept


def test_judge_scores_averaged_and_threshold():
    recs = [{"id": k} for k in range(4)]
    judged = responses.attach_scores(recs, [["...\nScore: 9", "Score: 10"], ["Score: 8"], ["no score here"],
                                            ["Score: 9", "garbled"]])
    assert [r["score"] for r in judged] == [9.5, 8.0, None, 9.0]
    assert [r["judge_unparsed"] for r in judged] == [0, 0, 1, 1]
    kept, rej = responses.keep_by_score(judged, 8.0)  # reference: strictly greater than 8
    assert [r["id"] for r in kept] == [0, 3] and rej == Counter(score_below_threshold=1, score_unparsed=1)
    kept, _ = responses.keep_by_score(judged, 8.0, inclusive=True)  # the paper's wording
    assert [r["id"] for r in kept] == [0, 1, 3]


def _scored(prompt, rates, iid="i0"):
    return [{"prompt": prompt, "response": f"{prompt} answer {k}", "pass_rate": r, "instruction_id": iid}
            for k, r in enumerate(rates)]


def test_dpo_pairs_rules():
    s = _scored("P1", [1.0, 0.75, 0.5, 0.4, 0.0, 0.0]) + _scored("P2", [1.0, 1.0]) + _scored("P3", [0.0, 0.0])
    pairs = export.dpo_pairs(s, chosen_min=0.5, rejected_max=0.0, seed=0)
    # paper: chosen > 0.5 (so 0.5 is neither side), rejected == 0; P2 has no loser, P3 no winner
    assert {(p["chosen"], p["rejected"]) for p in pairs} == {
        ("P1 answer 0", "P1 answer 4"), ("P1 answer 0", "P1 answer 5"),
        ("P1 answer 1", "P1 answer 4"), ("P1 answer 1", "P1 answer 5")}
    assert sorted((p["chosen_pass_rate"], p["rejected_pass_rate"]) for p in pairs) == [
        (0.75, 0.0), (0.75, 0.0), (1.0, 0.0), (1.0, 0.0)]  # the measured rates, recorded
    # released code: chosen >= 0.5, at most 2 chosen x 2 rejected sampled per prompt
    inclusive = export.dpo_pairs(s, chosen_inclusive=True, seed=0)
    assert len(inclusive) == 4 and {p["chosen_pass_rate"] for p in inclusive} <= {1.0, 0.75, 0.5}
    assert inclusive == export.dpo_pairs(s, chosen_inclusive=True, seed=0)  # seeded
    one_each = export.dpo_pairs(s, max_chosen=1, max_rejected=1, seed=0)
    assert len(one_each) == 1
    assert len(export.dpo_pairs(s, max_pairs=3, seed=0)) == 3
    # identical texts never form a pair; a tie never forms a pair
    same = [{"prompt": "P", "response": "x", "pass_rate": 1.0, "instruction_id": "i"},
            {"prompt": "P", "response": "x", "pass_rate": 0.0, "instruction_id": "i"}]
    assert export.dpo_pairs(same) == []
    assert export.dpo_pairs(_scored("T", [0.0, 0.0, 0.0])) == []


def test_instruction_level_pairs_use_measured_pass_rates():
    from autoif_lib.sandbox import Sandbox, SandboxConfig

    # The stated labels lie: "Abc" is labelled True but both functions reject it; "xyz" is labelled False
    # but both accept it. Pairs follow what the functions measure, not the labels.
    ins = [{"id": "i0", "instruction": "Use lowercase.",
            "functions": [{"src": "def evaluate(r):\n    return r.islower()"},
                          {"src": "def evaluate(r):\n    return not r[:1].isupper()"}],
            "cases": [{"input": "abc", "output": True}, {"input": "Abc", "output": True},
                      {"input": "ABC", "output": False}, {"input": "xyz", "output": False}]}]
    with Sandbox(SandboxConfig(timeout_s=2.0)) as box:
        pairs, scored = export.instruction_pairs(ins, box.verdicts, max_pairs=5)
    rates = {r["response"]: r["pass_rate"] for r in scored}
    assert rates == {"abc": 1.0, "Abc": 0.0, "ABC": 0.0, "xyz": 1.0}
    assert {(p["chosen"], p["rejected"]) for p in pairs} == {("abc", "Abc"), ("abc", "ABC"), ("xyz", "Abc"),
                                                             ("xyz", "ABC")}
    assert all(p["level"] == "instruction" and p["chosen_pass_rate"] == 1.0 and p["rejected_pass_rate"] == 0.0
               for p in pairs)
    trl = export.dpo_trl(pairs)[0]
    assert trl["prompt"] == [{"role": "user", "content": "Use lowercase."}]
    assert trl["chosen"][0]["role"] == "assistant"
    lf = export.dpo_llamafactory(pairs)[0]
    assert set(lf) == {"instruction", "input", "chosen", "rejected"}


def test_sft_formats_use_the_verified_turn():
    rec = {"prompt": prompts.combine_turn("Use lowercase.", "What is tea?"), "response": "a drink",
           "instruction_id": "i0", "query_id": "q0"}
    m = export.sft_messages([rec])[0]["messages"]
    assert m == [{"role": "user", "content": "Use lowercase.\n\nWhat is tea?"}, {"role": "assistant", "content": "a drink"}]
    a = export.sft_alpaca([rec])[0]
    assert a == {"instruction": "Use lowercase.\n\nWhat is tea?", "input": "", "output": "a drink", "history": []}


def test_online_prompts_carry_functions_and_card():
    ins = [{"id": "i0", "functions": [{"src": "def evaluate(r):\n    return True"}]}, {"id": "i1", "functions": []}]
    pairs = [{"prompt": "a", "instruction_id": "i0"}, {"prompt": "a", "instruction_id": "i0"},
             {"prompt": "b", "instruction_id": "i1"}]
    out = export.online_prompts(ins, pairs)
    assert len(out) == 1 and out[0]["verifiers"] == ["def evaluate(r):\n    return True"]
    card = export.dataset_card({"SFT examples": 3}, {"seed": 0}, {"x.jsonl": "data"})
    assert "| SFT examples | 3 |" in card and "`x.jsonl`" in card


@pytest.mark.parametrize("inclusive,label", [(False, "responses → pass rate > 0.5"), (True, "responses → pass rate >= 0.5")])
def test_funnel_names_the_threshold_rule_it_applied(inclusive, label):
    scored = [{"response": "a", "pass_rate": 0.5}, {"response": "b", "pass_rate": 1.0}, {"response": "", "pass_rate": 0.0}]
    passed = [r for r in scored if (r["pass_rate"] >= 0.5 if inclusive else r["pass_rate"] > 0.5)]
    f = responses.funnel([{}], scored, passed, passed, Counter(), 0.5, False, pass_inclusive=inclusive)
    step = f.to_dict()["steps"][1]
    assert step["step"] == label and step["out"] == (2 if inclusive else 1)


def _online(n_per, ids="abcdefg"):
    return [{"prompt": [{"role": "user", "content": f"{i} {k}"}], "instruction_id": i, "verifiers": ["v"]}
            for i in ids for k in range(n_per)]  # ordered by instruction, as stage 07 writes them


def test_cap_prompts_covers_the_instructions_not_the_first_few():
    prompts = _online(12)  # 7 instructions x 12 queries (the CPU-effect recipe's shape)
    capped = export.cap_prompts(prompts, 24, seed=0)
    per = Counter(p["instruction_id"] for p in capped)
    assert len(capped) == 24 and len({p["prompt"][0]["content"] for p in capped}) == 24
    assert set(per) == set("abcdefg") and sorted(per.values()) == [3, 3, 3, 3, 4, 4, 4]  # prompts[:24]: 2 of 7
    assert export.cap_prompts(prompts, 24, seed=0) == capped  # seeded
    assert export.cap_prompts(prompts, 24, seed=1) != capped
    assert export.cap_prompts(prompts, 0, 0) == prompts and export.cap_prompts(prompts, 500, 0) == prompts
    # uneven instructions: one with 2 prompts gives both, the rest share what is left
    uneven = _online(2, "x") + _online(10, "yz")
    per = Counter(p["instruction_id"] for p in export.cap_prompts(uneven, 12, 0))
    assert per == {"x": 2, "y": 5, "z": 5}


def test_online_prompts_come_from_the_filtered_sft_data_or_every_pair():
    instructions = [{"id": "a", "functions": [{"src": "f_a"}]}, {"id": "b", "functions": [{"src": "f_b"}]},
                    {"id": "c", "functions": []}]
    pairs = [{"prompt": f"{i} {q}", "instruction_id": i} for i in "abc" for q in range(3)]
    kept = [pairs[0], pairs[0], pairs[4]]  # two kept responses of one prompt, one of another (stage 06's kept.jsonl)
    sft = export.online_prompts(instructions, kept)
    assert [(o["prompt"][0]["content"], o["instruction_id"], o["verifiers"]) for o in sft] == [
        ("a 0", "a", ["f_a"]), ("b 1", "b", ["f_b"])]  # distinct turns; an instruction without functions: none
    assert len(export.online_prompts(instructions, pairs)) == 6


def test_online_prompts_from_and_ref_model_default_to_the_paper():
    from autoif_lib.autoif.stages import ExportParams, OnlineDPOParams
    from autoif_lib.params import ParamsError, build

    assert build(ExportParams, {}, where="07").online_prompts_from == "sft"
    assert build(OnlineDPOParams, {}, where="10").ref_model == "init"
    with pytest.raises(ParamsError, match="ref_model"):
        build(OnlineDPOParams, {"ref_model": "latest"}, where="10")
