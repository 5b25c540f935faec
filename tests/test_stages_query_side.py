"""Stages 05-07 on hand-made records: pairing, pass rates, thresholds, judge scores, layout, DPO pairs."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest

from autoif_lib.autoif import export, prompts, responses

INSTR = [{"id": f"i{k}", "instruction": f"Rule number {k}.", "origin": "seed"} for k in range(10)]
QUERIES = [{"id": f"q{k}", "query": f"Question {k}?"} for k in range(30)]


def test_split_heldout_is_seeded_and_disjoint():
    train, held = responses.split_heldout(INSTR, 0.2, seed=3)
    assert len(held) == 2 and len(train) == 8
    assert not {r["id"] for r in train} & {r["id"] for r in held}
    assert responses.split_heldout(INSTR, 0.2, seed=3) == (train, held)
    assert responses.split_heldout(INSTR[:1], 0.5, 0) == (INSTR[:1], [])  # never hold out the only one
    assert responses.split_heldout(INSTR[:2], 0.01, 0)[1] != []  # at least one when asked for any


def test_split_heldout_keeps_near_duplicate_paraphrases_together():
    ins = [{"id": "a", "instruction": "Write every word in lowercase letters only."},
           {"id": "b", "instruction": "Write every word in lowercase letters only, please."},
           {"id": "c", "instruction": "End the answer with the word STOP."},
           {"id": "d", "instruction": "Use exactly three sentences."},
           {"id": "e", "instruction": "Answer in the future tense only."}]
    for seed in range(20):
        train, held = responses.split_heldout(ins, 0.2, seed)
        ids_t, ids_h = {r["id"] for r in train}, {r["id"] for r in held}
        assert ids_h and ids_t and not ids_t & ids_h and ids_t | ids_h == set("abcde")
        assert {"a", "b"} <= ids_t or {"a", "b"} <= ids_h, (seed, ids_h)  # never split across


def test_pair_is_seeded_per_instruction_and_uses_layout():
    a = responses.pair(INSTR[:3], QUERIES, m=4, seed=0)
    assert len(a) == 12 and a == responses.pair(INSTR[:3], QUERIES, m=4, seed=0)
    # adding an instruction does not change the queries of the others
    b = responses.pair(INSTR[:4], QUERIES, m=4, seed=0)
    assert b[:12] == a
    assert len({p["query_id"] for p in a if p["instruction_id"] == "i0"}) == 4  # no repeats
    assert a[0]["prompt"] == f"{a[0]['instruction']}\n\n{a[0]['query']}"
    q = responses.pair(INSTR[:1], QUERIES, m=1, seed=0, layout="query_first")[0]
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
    scored = responses.pass_rates(pairs, fns, _runner)
    assert [s["pass_rate"] for s in scored] == [round(2 / 3, 4), round(1 / 3, 4), round(1 / 3, 4)]
    assert scored[0]["statuses"] == {"pass": 2, "exception": 1} and scored[0]["n_functions"] == 3
    # no functions: pass rate 0, never silently 'passing'
    assert responses.pass_rates(pairs, {}, _runner)[0]["pass_rate"] == 0.0


@pytest.mark.parametrize("thr, inclusive, kept", [(0.5, False, [0.8, 1.0]), (0.5, True, [0.5, 0.8, 1.0]),
                                                  (0.8, False, [1.0]), (0.0, False, [0.5, 0.8, 1.0])])
def test_pass_threshold(thr, inclusive, kept):
    recs = [{"pass_rate": r} for r in (0.0, 0.5, 0.8, 1.0)]
    assert [r["pass_rate"] for r in responses.keep_by_pass_rate(recs, thr, inclusive)] == kept


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
