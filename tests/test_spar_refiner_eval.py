"""SPaR's refiner tables as library functions (``autoif_lib.spar.refiner_eval``): the LLMBar loader and its
pointwise items, Table 2's Acc/F1 (Adversarial and Overall as averages over subsets, not pooled), and Table 3's
refinement accuracy graded by verifiers and by the refiner itself. Plain callables only: no model runs."""

from __future__ import annotations

import json
import math
import shutil
from types import SimpleNamespace

import pytest

from autoif_lib.spar import refiner_eval as R
from autoif_lib.stats import wilson

# -- LLMBar loader ---------------------------------------------------------------------------------------

SAMPLE_PAIRS = {"Natural": 6, "Adversarial/Neighbor": 3, "Adversarial/GPTInst": 2, "Adversarial/GPTOut": 2}


def test_sample_loads_two_items_per_pair_in_llmbar_order():
    items = R.load_llmbar()  # the shipped in-house sample
    assert len(items) == 2 * sum(SAMPLE_PAIRS.values()) == 26
    subsets = list(dict.fromkeys(it["subset"] for it in items))
    assert subsets == list(SAMPLE_PAIRS)  # Natural first, then LLMBar's adversarial order
    for s, pairs in SAMPLE_PAIRS.items():
        assert sum(it["subset"] == s for it in items) == 2 * pairs
    assert {it["group"] for it in items if it["subset"] == "Natural"} == {"natural"}
    assert {it["group"] for it in items if it["subset"] != "Natural"} == {"adversarial"}
    # each pair: exactly one output follows, and the two items share the pair's instruction
    by_pair: dict[str, list[dict]] = {}
    for it in items:
        by_pair.setdefault(it["pair_id"], []).append(it)
    assert len(by_pair) == 13
    for pid, two in by_pair.items():
        assert [it["output"] for it in two] == [1, 2]
        assert sorted(it["label"] for it in two) == [False, True], pid
        assert two[0]["prompt"] == two[1]["prompt"]
    # labels read from the file: Natural pair 0 has label 1, pair 1 label 2
    raw = json.loads((R.LLMBAR_SAMPLE / "Natural" / "dataset.json").read_text())
    assert [raw[0]["label"], raw[1]["label"]] == [1, 2]
    assert [it["label"] for it in items[:4]] == [True, False, False, True]
    assert items[0]["response"] == raw[0]["output_1"] and items[0]["pair_id"] == "Natural/0"


def test_loader_finds_the_repository_layout_and_single_files(tmp_path):
    shutil.copytree(R.LLMBAR_SAMPLE, tmp_path / "Dataset" / "LLMBar")
    assert R.load_llmbar(tmp_path) == R.load_llmbar()  # a checkout of princeton-nlp/LLMBar
    one = R.load_llmbar(tmp_path / "Dataset" / "LLMBar" / "Adversarial" / "GPTInst" / "dataset.json")
    assert len(one) == 4 and {it["subset"] for it in one} == {"Adversarial/GPTInst"}
    assert len(R.load_llmbar(tmp_path, subset="Natural")) == 12
    loose = tmp_path / "pairs.json"
    loose.write_text(json.dumps([{"input": "Say hi.", "output_1": "hi", "output_2": "bye", "label": 1}]))
    with pytest.raises(ValueError, match="cannot tell its LLMBar subset"):
        R.load_llmbar(loose)
    assert [it["label"] for it in R.load_llmbar(loose, subset="Adversarial/Manual")] == [True, False]


@pytest.mark.parametrize("bad, why", [
    ({"input": "q", "output_1": "a", "output_2": "b"}, "record 1: missing field"),
    ({"input": "q", "output_1": "a", "output_2": "b", "label": 3}, "record 1: 'label' must be 1 or 2"),
    ({"input": "q", "output_1": "a", "output_2": "b", "label": True}, "record 1: 'label' must be 1 or 2"),
    ({"input": "q", "output_1": None, "output_2": "b", "label": 1}, "record 1: 'output_1' must be a string"),
    ({"input": "  ", "output_1": "a", "output_2": "b", "label": 1}, "record 1: empty 'input'"),
    ("not a record", "record 1: expected an object"),
])
def test_malformed_record_names_the_file_and_index(tmp_path, bad, why):
    f = tmp_path / "LLMBar" / "Adversarial" / "Neighbor" / "dataset.json"
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps([{"input": "q", "output_1": "a", "output_2": "b", "label": 2}, bad]))
    with pytest.raises(ValueError) as e:
        R.load_llmbar(tmp_path)
    assert str(f) in str(e.value) and why in str(e.value)


def test_invalid_json_and_missing_layout(tmp_path):
    f = tmp_path / "Natural" / "dataset.json"
    f.parent.mkdir()
    f.write_text("[{")
    with pytest.raises(ValueError, match="not valid JSON") as e:
        R.load_llmbar(tmp_path)
    assert str(f) in str(e.value)
    with pytest.raises(FileNotFoundError, match="no LLMBar layout"):
        R.load_llmbar(tmp_path / "Natural")
    with pytest.raises(FileNotFoundError):
        R.load_llmbar(tmp_path / "nowhere")


# -- Table 2 metrics -------------------------------------------------------------------------------------

def _items() -> list[dict]:
    """Natural 2 pairs, Neighbor 4 pairs, GPTInst 1 pair (subsets of unequal size, as in LLMBar)."""
    def pairs(s, labels):
        return [{"input": f"{s}: q{i}", "output_1": f"a{i}", "output_2": f"b{i}", "label": l}
                for i, l in enumerate(labels)]

    return (R.pointwise(pairs("nat", [1, 2]), "Natural")
            + R.pointwise(pairs("nb", [1, 2, 1, 2]), "Adversarial/Neighbor")
            + R.pointwise(pairs("gi", [2]), "Adversarial/GPTInst"))


def _verdicts(items) -> list[bool | None]:
    v: list[bool | None] = []
    # Natural: pair 0 (label 1): the follower accepted, the other dropped; pair 1 (label 2): both accepted
    v += [True, None, True, True]
    # Neighbor: every item right
    v += [it["label"] for it in items[4:12]]
    # GPTInst: both wrong
    v += [not it["label"] for it in items[12:14]]
    return v


def test_llmbar_metrics_average_the_adversarial_subsets_not_pool_them():
    items = _items()
    m = R.llmbar_metrics(items, _verdicts(items))
    # Natural: 2 of 4 right (the dropped verdict counts wrong); tp 2, fp 1, fn 0 -> F1 4/5
    assert m["natural"]["n"] == 4 and m["natural"]["acc"] == 0.5 and m["natural"]["f1"] == 0.8
    assert m["natural"]["dropped"] == 1
    assert m["per_subset"]["Adversarial/Neighbor"]["acc"] == 1.0 and m["per_subset"]["Adversarial/GPTInst"]["acc"] == 0.0
    # Adversarial: the average of 1.0 and 0.0; pooled it would be 8/10 (Neighbor outweighs GPTInst 4:1)
    adv = m["adversarial"]
    assert adv["acc"] == 0.5 and adv["f1"] == 0.5 and adv["subsets"] == 2 and adv["n"] == 10
    assert adv["pooled"]["acc"] == 0.8 and adv["pooled"]["f1"] == 0.8
    # Overall: the average of all three subsets (paper: Natural + 4 adversarial, / 5)
    ov = m["overall"]
    assert ov["acc"] == 0.5 and ov["f1"] == pytest.approx(0.6) and ov["subsets"] == 3 and ov["n"] == 14
    assert ov["pooled"]["acc"] == round(10 / 14, 4) and ov["pooled"]["f1"] == 0.8  # tp 6, fp 2, fn 1
    # s.e. of an average of independent subsets: only Natural (0.5 of 4) varies
    assert ov["acc_se"] == round(math.sqrt(0.25 / 4) / 3, 4)
    assert m["n"] == 14 and m["dropped"] == 1


def test_llmbar_metrics_checks_its_inputs():
    items = _items()
    with pytest.raises(ValueError, match="13 verdicts for 14 items"):
        R.llmbar_metrics(items, _verdicts(items)[:-1])
    with pytest.raises(ValueError, match="not True, False or None"):
        R.llmbar_metrics(items, [1] * len(items))  # 1 is not a verdict (it would pass `== True` but not `is True`)


def test_llmbar_judging_takes_a_judge_object_or_a_plain_callable():
    items = _items()
    truth = dict(zip(((it["prompt"], it["response"]) for it in items), _verdicts(items)))

    def judge_many(pairs):
        return [{"label": truth[p], "critique": "..."} for p in pairs]

    class FakeJudge:
        calls = {"judged": 0}

        def judge_many(self, pairs):
            self.calls = {"judged": self.calls["judged"] + len(pairs)}
            return judge_many(pairs)

    expected = R.llmbar_metrics(items, _verdicts(items))
    got = R.llmbar_judging(FakeJudge(), items, single_judge=judge_many)
    assert got["majority"] == expected and got["single"] == expected
    assert got["calls"]["majority"] == {"judged": 14}
    assert R.llmbar_judging(judge_many, items)["single"] is None
    with pytest.raises(ValueError, match="2 verdicts for 14 items"):
        R.judge_labels(lambda pairs: [{"label": True}] * 2, items)


# -- Table 3: refinement accuracy ------------------------------------------------------------------------

def _runner(functions, inputs):
    """A stand-in for ``box.verdicts``: verifier ``"must:<word>"`` passes a text that contains the word."""
    return [[SimpleNamespace(status="pass" if f.split(":", 1)[1] in t else "fail") for t in ins]
            for f, ins in zip(functions, inputs)]


def test_passes_verifiers():
    recs = [{"verifiers": ["must:a", "must:b"]}, {"verifiers": ["must:a"]}, {"verifiers": []}, {"verifiers": ["must:z"]}]
    assert R.passes_verifiers(recs, ["a b", "b", "a", None], _runner) == [True, False, None, False]


def test_refinement_tasks_pick_one_failing_response_per_prompt():
    held = [{"id": "p0", "prompt": "P0", "verifiers": ["v"], "constraints": ["c"]},
            {"id": "p1", "prompt": "P1", "verifiers": ["v"]},        # every response passes: no task
            {"id": "p2", "prompt": "P2"},                            # no verifiers: nothing known, no task
            {"id": "p3", "prompt": "P3", "verifiers": ["v"]}]        # its empty response is not a task
    responses = [["a", "b", "c"], ["d", "e"], ["f"], ["", "g"]]
    verdicts = [[True, False, False], [True, True], [False], [False, False]]
    tasks = R.refinement_tasks(held, responses, verdicts, n=0, seed=3)
    assert [t["prompt_id"] for t in tasks] == ["p0", "p3"]
    assert tasks[0]["response"] in ("b", "c") and tasks[1]["response"] == "g" and tasks[1]["k"] == 1
    assert tasks[0]["constraints"] == ["c"] and tasks[0]["verifiers"] == ["v"]
    assert R.refinement_tasks(held, responses, verdicts, n=0, seed=3) == tasks  # seeded
    assert len(R.refinement_tasks(held, responses, verdicts, n=1, seed=3)) == 1
    # one response per prompt may be a plain string
    assert R.refinement_tasks(held[:1], ["a"], [False], n=5)[0]["response"] == "a"
    with pytest.raises(ValueError, match="must align"):
        R.refinement_tasks(held, responses, verdicts[:2])
    with pytest.raises(ValueError, match="held-out prompt 0: 3 responses but 2 verdicts"):
        R.refinement_tasks(held[:1], responses[:1], [[True, False]])


def test_refinement_accuracy_exact():
    tasks = [{"task_id": str(i), "prompt": f"P{i}", "response": f"bad {i}"} for i in range(7)]
    refined = ["good 0",      # passes, accepted
               "bad 1",       # identical to the failing response: fails; the judge accepts it anyway
               "other 2",     # fails the verifiers, the judge accepts: self-evaluation bias
               "good 3",      # passes; the judge's vote was dropped: not accepted
               None,          # nothing parseable: fails both, whatever verdicts come with it
               "other 5",     # fails, rejected
               "bad 6  \n"]   # identical but for whitespace, and a (flaky) verifier pass: still a fail
    verifier = [True, False, False, True, True, False, True]
    judge = [True, True, True, None, True, False, False]
    m = R.refinement_accuracy(tasks, refined, verifier, judge)
    assert m["n"] == 7
    av, aself = m["acc_verifier"], m["acc_self"]
    assert (av["k"], av["n"], av["acc"]) == (2, 7, round(2 / 7, 4))
    assert av["se"] == round(math.sqrt((2 / 7) * (5 / 7) / 7), 4)
    assert av["ci95"] == [round(x, 4) for x in wilson(2, 7)]
    assert (aself["k"], aself["acc"], aself["se"]) == (3, round(3 / 7, 4), round(math.sqrt((3 / 7) * (4 / 7) / 7), 4))
    assert m["unparsed"] == 1 and m["unchanged"] == 2 and m["self_dropped"] == 1
    assert m["self_accepts_unchanged"] == 1 and m["self_accepts_failing"] == 2
    assert m["agreement"] == round(4 / 7, 4)  # tasks 0, 4, 5, 6
    no_self = R.refinement_accuracy(tasks, refined, verifier)
    assert no_self["acc_self"] is None and no_self["acc_verifier"] == av
    with pytest.raises(ValueError, match="7 tasks but 6 refinements"):
        R.refinement_accuracy(tasks, refined[:6], verifier, judge)


def test_run_refinement_eval_with_plain_callables():
    tasks = [{"task_id": "t0", "prompt": "P0", "response": "no fruit", "verifiers": ["must:apple"]},
             {"task_id": "t1", "prompt": "P1", "response": "a pear", "verifiers": ["must:pear", "must:plum"]},
             {"task_id": "t2", "prompt": "P2", "response": "nothing", "verifiers": ["must:fig"]},
             {"task_id": "t3", "prompt": "P3", "response": "a melon", "verifiers": ["must:kiwi"]}]
    asked = []

    def refiner(requests, n):
        asked.extend(requests)
        assert n == 1
        fixes = {"P0": "an apple", "P1": "a pear", "P2": None, "P3": "a kiwi"}  # P1 unchanged, P2 unparseable
        return [[(fixes[p], f"cot {p}")] for p, _, _ in requests]

    judged = []

    def judge_many(pairs):
        judged.extend(pairs)
        return [{"label": {"P3": None}.get(p, True), "critique": f"critique of {r}"} for p, r in pairs]

    res = R.run_refinement_eval(tasks, refiner, judge_many, _runner)
    # the refiner acts on the judge's own critique of the failing response (SPaR's refine prompt)
    assert asked == [(t["prompt"], t["response"], f"critique of {t['response']}") for t in tasks]
    # no refinement, nothing to judge: the judge saw the 4 roots and 3 refinements
    assert len(judged) == 7 and ("P2", None) not in judged
    m = res["metrics"]
    assert m["acc_verifier"]["k"] == 2 and m["acc_verifier"]["n"] == 4    # t0 and t3 pass
    assert m["acc_self"]["k"] == 2                                         # t0, and t1 unchanged; t3 dropped
    assert m["unchanged"] == 1 and m["unparsed"] == 1 and m["self_dropped"] == 1
    assert [r["verifier_pass"] for r in res["records"]] == [True, False, False, True]
    assert [r["self_accept"] for r in res["records"]] == [True, True, None, None]
    assert res["records"][0]["refine_cot"] == "cot P0"
    # an oracle critic (e.g. a verifiers-mode Judge) may write the critique instead
    asked.clear()
    R.run_refinement_eval(tasks[:1], refiner, judge_many, _runner,
                          critic=lambda pairs: [{"label": False, "critique": "not met: apple"}] * len(pairs))
    assert asked == [("P0", "no fruit", "not met: apple")]
    assert R.run_refinement_eval([], refiner, judge_many, _runner)["metrics"]["n"] == 0
    cols = R.row_columns(refinement=m)
    assert cols["refine_acc_verifier"] == 0.5 and cols["refine_acc_self"] == 0.5 and cols["refine_n"] == 4


def test_build_refinement_tasks_samples_the_actor_and_verifies():
    class Actor:
        def generate(self, convs, sp, desc=""):
            assert sp.n == 2 and sp.temperature == 0.9
            return [[f"{c[0]['content']} apple", f"{c[0]['content']} pear"] for c in convs]

    held = [{"id": "a", "prompt": "A", "verifiers": ["must:apple"]},  # one of two fails
            {"id": "b", "prompt": "B", "verifiers": ["must:fruit"]},  # both fail
            {"id": "c", "prompt": "C", "verifiers": ["must:p"]},      # neither fails: both contain a "p"
            {"id": "d", "prompt": "D"}]                               # no verifiers: not sampled
    tasks, counts = R.build_refinement_tasks(Actor(), held, _runner, n=0, k=2, seed=0)
    assert [t["prompt_id"] for t in tasks] == ["a", "b"] and tasks[0]["response"] == "A pear"
    assert counts == {"heldout_prompts": 4, "with_verifiers": 3, "responses": 6, "failing": 3,
                      "prompts_with_failure": 2, "tasks": 2}
    assert R.build_refinement_tasks(Actor(), held[3:], _runner)[0] == []
    cols = R.row_columns(llmbar=R.llmbar_metrics(_items(), _verdicts(_items())))
    assert cols["llmbar_adversarial_acc"] == 0.5 and cols["llmbar_natural_f1"] == 0.8
