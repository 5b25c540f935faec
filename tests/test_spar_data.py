"""SPaR training data (autoif_lib.spar.data): refinement pairs, sampled pairs, refiner RFT, similarity.

Pure functions over hand-made trees and votes; no model, no files.

    pytest -q tests/test_spar_data.py
"""

from __future__ import annotations

import pytest

from autoif_lib.spar import data as D
from autoif_lib.spar import prompts as P


def node(i, parent, depth, response, value, critique=None, refine_cot=None, status="expanded"):
    return {"id": i, "parent": parent, "depth": depth, "response": response, "value": value,
            "critique": critique if critique is not None else f"critique of {response}\nFinal Judgement: "
            + ("Yes" if value >= 0.5 else "No"),
            "refine_cot": refine_cot, "status": status}


def deep_tree(prompt="Write about cats in lowercase."):
    """Root fails, a depth-1 child fails, its depth-2 child passes: final = node 3."""
    return {"prompt": prompt, "success": True, "final": 3, "nodes": [
        node(0, None, 0, "Cats Are Great.", 0.0),
        node(1, 0, 1, "cats Are great.", 0.25, refine_cot="fix case\nRefined response: [[start]]cats Are great.[[end]]"),
        node(2, 0, 1, "Cats are great.", 0.0, refine_cot="..."),
        node(3, 1, 2, "cats are great.", 1.0, refine_cot="lower the A\nRefined response: [[start]]cats are great.[[end]]",
             status="success"),
    ]}


def split_tree(prompt="Answer in French."):
    """Not successful; has a majority-Yes split node (0.75) and a majority-No split node (0.25)."""
    return {"prompt": prompt, "success": False, "final": None, "nodes": [
        node(0, None, 0, "Bonjour, hello.", 0.25),
        node(1, 0, 1, "Bonjour.", 0.75),
        node(2, 0, 1, "Hello.", 0.0),
    ]}


# ====================================================================== refinement pairs

def test_refinement_pair_uses_root_not_parent():
    pairs = D.refinement_pairs([deep_tree()])
    assert len(pairs) == 1
    p = pairs[0]
    assert p["chosen"] == "cats are great."
    assert p["rejected"] == "Cats Are Great."          # node 0, not node 1 (the final node's parent)
    assert p["depth"] == 2 and p["final_id"] == 3 and p["tree"] == 0
    assert p["chosen_value"] == 1.0 and p["rejected_value"] == 0.0
    assert p["prompt"] == "Write about cats in lowercase."


def test_refinement_pairs_skip_failed_and_trivial():
    root_only = {"prompt": "x", "success": True, "final": 0, "nodes": [node(0, None, 0, "ok", 1.0)]}
    final_as_dict = deep_tree("Prompt B")
    final_as_dict["final"] = final_as_dict["nodes"][3]
    pairs = D.refinement_pairs([split_tree(), root_only, deep_tree("Prompt A"), final_as_dict])
    assert [p["tree"] for p in pairs] == [2, 3]
    assert all(p["rejected"] == "Cats Are Great." for p in pairs)


def test_to_trl():
    rows = D.to_trl(D.refinement_pairs([deep_tree()]))
    assert rows == [{"prompt": [{"role": "user", "content": "Write about cats in lowercase."}],
                     "chosen": [{"role": "assistant", "content": "cats are great."}],
                     "rejected": [{"role": "assistant", "content": "Cats Are Great."}]}]


# ====================================================================== sampled pairs

def test_sampled_pairs():
    samples = [{"prompt": "A", "response": f"a-pos-{i}", "label": True, "value": 1.0} for i in range(5)]
    samples += [{"prompt": "A", "response": f"a-neg-{i}", "label": "No", "value": 0.0} for i in range(5)]
    samples += [{"prompt": "B", "response": "b-pos", "label": True, "value": 1.0}]       # no negative
    samples += [{"prompt": "C", "response": "c-neg", "label": False, "value": 0.25},
                {"prompt": "C", "response": "c-pos", "label": "Yes", "value": 0.75},
                {"prompt": "C", "response": "c-bad", "label": None, "value": None}]
    pairs = D.sampled_pairs(samples, seed=0)
    assert [p["prompt"] for p in pairs] == ["A", "C"]
    a, c = pairs
    assert a["chosen"].startswith("a-pos-") and a["rejected"].startswith("a-neg-")
    assert (c["chosen"], c["rejected"]) == ("c-pos", "c-neg")
    assert c["chosen_value"] == 0.75 and c["rejected_value"] == 0.25
    assert pairs == D.sampled_pairs(samples, seed=0)
    picks = {(D.sampled_pairs(samples, seed=s)[0]["chosen"], D.sampled_pairs(samples, seed=s)[0]["rejected"])
             for s in range(20)}
    assert len(picks) > 1                                 # the seed matters


# ====================================================================== RFT data

def _last(conv):
    return conv["messages"][-1]["content"]


def test_rft_parts_and_formats():
    votes = [
        {"prompt": "P1", "response": "r1", "critique": "misses rule 2.\nFinal Judgement: No", "label": False, "value": 0.25},
        {"prompt": "P2", "response": "r2", "critique": "all rules met", "label": True, "value": 0.75},
        {"prompt": "P3", "response": "r3", "critique": "fine\nFinal Judgement: Yes", "label": True, "value": 1.0},  # unanimous
        {"prompt": "P4", "response": "r4", "critique": "bad\nFinal Judgement: No", "label": "No", "value": 0.0},   # unanimous
    ]
    convs, counts = D.rft_data([deep_tree(), split_tree()], votes, caps={}, seed=0)
    by_part = {p: [c for c in convs if c["part"] == p] for p in D.RFT_PARTS}

    chains = by_part["refinement_chains"]
    assert len(chains) == 1
    msgs = chains[0]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    # judged response is the final node's PARENT (node 1), its critique, then node 3's refine_cot
    assert msgs[0] == P.judge("Write about cats in lowercase.", "cats Are great.")[0]
    assert msgs[1]["content"].startswith("critique of cats Are great.")
    assert msgs[1]["content"].endswith("Final Judgement: No")
    assert msgs[2]["content"] == P.refine_instruction()
    assert msgs[3]["content"] == "lower the A\nRefined response: [[start]]cats are great.[[end]]"

    pos = by_part["tree_positive_judgments"]
    assert len(pos) == 1                                   # deep_tree has no 0.5 < v < 1 node; split_tree has 0.75
    assert "Bonjour." in pos[0]["messages"][0]["content"] and _last(pos[0]).endswith("Final Judgement: Yes")
    # 0.25 nodes: node 1 of deep_tree (the chain's parent: its judge prompt is the chain's, a global duplicate)
    # and node 0 of split_tree (a root: an actor sample, never a tree judgment)
    assert by_part["tree_negative_judgments"] == []
    assert counts["tree_negative_judgments"] == {"candidates": 1, "duplicates": 1, "inconsistent": 0,
                                                 "before_cap": 0, "after_cap": 0}
    neg = []
    # unanimous nodes (0.0 / 1.0) never appear as judgments
    judged = [c["messages"][0]["content"] for c in pos + neg]
    assert not any("Cats Are Great." in j or "Response:\ncats are great." in j or "Hello." in j for j in judged)

    assert [c["source"]["sample"] for c in by_part["sample_negative_judgments"]] == [0]
    assert [c["source"]["sample"] for c in by_part["sample_positive_judgments"]] == [1]
    assert _last(by_part["sample_positive_judgments"][0]) == "all rules met\n\nFinal Judgement: Yes"
    assert _last(by_part["sample_negative_judgments"][0]) == "misses rule 2.\n\nFinal Judgement: No"
    assert counts["sample_negative_judgments"]["candidates"] == 1   # the unanimous vote is not a candidate
    assert sum(v["after_cap"] for v in counts.values()) == len(convs) == 4


def test_rft_every_judgment_ends_with_consistent_verdict():
    trees = [deep_tree(f"prompt {i}") for i in range(10)] + [split_tree(f"other {i}") for i in range(10)]
    convs, _ = D.rft_data(trees, [], caps={}, seed=1)
    for c in convs:
        last = _last(c) if c["part"] != "refinement_chains" else c["messages"][1]["content"]
        expected = "Yes" if c["part"] == "tree_positive_judgments" else "No"
        assert last.endswith(f"Final Judgement: {expected}")
        assert last.count("Final Judgement") == 1


def test_rft_contradicting_critique_dropped():
    t = split_tree()
    t["nodes"][1]["critique"] = "Actually it fails.\nFinal Judgement: No"   # value 0.75 but the critique says No
    _, counts = D.rft_data([t], [], caps={}, seed=0)
    assert counts["tree_positive_judgments"]["inconsistent"] == 1
    assert counts["tree_positive_judgments"]["after_cap"] == 0


def test_rft_caps_dedup_and_seed():
    trees = [deep_tree(f"prompt {i}") for i in range(30)]
    trees += [deep_tree("prompt 0")] * 5                    # duplicates of the first tree's prompt
    votes = [{"prompt": f"V{i}", "response": "r", "critique": "c", "label": i % 2 == 0, "value": 0.5} for i in range(40)]
    votes += [votes[0]] * 3
    caps = {"refinement_chains": 7, "tree_negative_judgments": 3, "sample_positive_judgments": 5,
            "sample_negative_judgments": None}
    convs, counts = D.rft_data(trees, votes, caps=caps, seed=0)
    assert counts["refinement_chains"] == {"candidates": 35, "duplicates": 5, "inconsistent": 0,
                                           "before_cap": 30, "after_cap": 7}
    # every tree's 0.25 node is its chain's parent: the same judge prompt, removed across parts before the cap
    assert counts["tree_negative_judgments"]["before_cap"] == 0 and counts["tree_negative_judgments"]["duplicates"] == 35
    assert counts["sample_positive_judgments"]["duplicates"] == 3
    assert counts["sample_positive_judgments"]["after_cap"] == 5
    assert counts["sample_negative_judgments"]["after_cap"] == 20          # None = uncapped
    assert counts["tree_positive_judgments"]["after_cap"] == 0            # deep trees have no 0.5 < v < 1 node
    firsts = [c["messages"][0]["content"] for c in convs]
    assert len(firsts) == len(set(firsts))                                # unique across parts
    assert convs == D.rft_data(trees, votes, caps=caps, seed=0)[0]
    kept_a = {c["messages"][0]["content"] for c in convs if c["part"] == "refinement_chains"}
    kept_b = {c["messages"][0]["content"] for c in D.rft_data(trees, votes, caps=caps, seed=5)[0]
              if c["part"] == "refinement_chains"}
    assert kept_a != kept_b


def test_rft_default_caps_and_unknown():
    assert D.RFT_CAPS == {"refinement_chains": 4000, "tree_positive_judgments": 1500, "tree_negative_judgments": 1000,
                          "sample_negative_judgments": 500, "sample_positive_judgments": 2500}
    votes = [{"prompt": f"V{i}", "response": "r", "critique": "c", "label": "No", "value": 0.4} for i in range(600)]
    _, counts = D.rft_data([], votes, caps={}, seed=0)
    assert counts["sample_negative_judgments"]["after_cap"] == 500
    with pytest.raises(ValueError):
        D.rft_data([], [], caps={"chains": 1})


# ====================================================================== similarity

def test_pair_similarity():
    pairs = [{"chosen": "abcd", "rejected": "abcd"}, {"chosen": "abcd", "rejected": "abxy"},
             {"chosen": "abcd", "rejected": "wxyz"}]
    s = D.pair_similarity(pairs)
    assert s["n"] == 3
    assert s["mean"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert s["median"] == pytest.approx(0.5)
    assert (s["min"], s["max"]) == (0.0, 1.0)
    assert D.pair_similarity([])["n"] == 0 and D.pair_similarity([])["mean"] is None
    # TRL rows give the same numbers
    trl = D.to_trl([dict(p, prompt="x") for p in pairs])
    assert D.pair_similarity(trl) == s


def test_refinement_pairs_more_similar_than_sampled():
    base = "The quick brown fox jumps over the lazy dog near the river bank at dawn."
    refined = [{"chosen": base.lower(), "rejected": base}]
    sampled = [{"chosen": base, "rejected": "A slow red hen walks past a sleepy cat by the barn."}]
    assert D.pair_similarity(refined)["mean"] > D.pair_similarity(sampled)["mean"]


def test_judgment_texts_read_by_vote_parser():
    """Every RFT judgment ends in a verdict the vote parser reads as the part's label."""
    voting = pytest.importorskip("autoif_lib.spar.voting")
    trees = [deep_tree(f"prompt {i}") for i in range(5)] + [split_tree(f"other {i}") for i in range(5)]
    votes = [{"prompt": f"V{i}", "response": "r", "critique": "**Final Judgement:** Yes" if i % 2 else "no verdict here",
              "label": i % 2 == 1, "value": 0.6 if i % 2 else 0.4} for i in range(10)]
    convs, _ = D.rft_data(trees, votes, caps={}, seed=0)
    want = {"tree_positive_judgments": True, "sample_positive_judgments": True,
            "tree_negative_judgments": False, "sample_negative_judgments": False}
    for c in convs:
        text = c["messages"][1]["content"] if c["part"] == "refinement_chains" else _last(c)
        assert voting.parse_verdict(text) is want.get(c["part"], False)
        assert D.verdict(text) is want.get(c["part"], False)


# ====================================================================== refiner data as released

def test_roots_are_never_tree_judgments():
    t = {"prompt": "P", "success": False, "final": None, "nodes": [
        node(0, None, 0, "root text", 0.4), node(1, 0, 1, "child text", 0.0), node(2, 0, 1, "other", 1.0)]}
    convs, counts = D.rft_data([t], [], caps={}, seed=0)
    assert convs == [] and counts["tree_negative_judgments"]["candidates"] == 0   # the root's 0.4 is not picked
    t["nodes"][1]["value"] = 0.2
    convs, _ = D.rft_data([t], [], caps={}, seed=0)
    assert [c["source"]["node"] for c in convs] == [1]


def test_global_dedup_comes_before_the_caps():
    # a sample judgment whose judge prompt equals a chain's: removed before capping, so the cap keeps other items
    tree = deep_tree()
    dup = {"prompt": tree["prompt"], "response": "cats Are great.", "critique": "no\nFinal Judgement: No",
           "label": False, "value": 0.25}
    others = [{"prompt": f"V{i}", "response": "r", "critique": "c", "label": False, "value": 0.25} for i in range(3)]
    convs, counts = D.rft_data([tree], [dup, *others], caps={"sample_negative_judgments": 3}, seed=0)
    neg = [c for c in convs if c["part"] == "sample_negative_judgments"]
    assert counts["sample_negative_judgments"] == {"candidates": 4, "duplicates": 1, "inconsistent": 0,
                                                   "before_cap": 3, "after_cap": 3}
    assert sorted(c["source"]["sample"] for c in neg) == [1, 2, 3]


def test_chain_trains_the_conversation_the_search_sent():
    """The critique turn of a refinement chain is the text the refiner saw during the search, verdict line included."""
    from autoif_lib.spar import roles, search

    class Gen:
        def __init__(self):
            self.convs = []

        def generate(self, convs, sp, desc=""):
            self.convs += convs
            return [[f"Fix the case.\nRefined response: [[start]]cats are great {k}.[[end]]" for k in range(sp.n)]
                    for _ in convs]

    gen = Gen()
    refiner = roles.Refiner(gen, temperature=0.7, max_new_tokens=64, seed=0)
    root = {"prompt": "Write about cats in lowercase.", "response": "Cats Are Great.",
            "critique": "Step-by-step verification: uppercase letters.", "value": 0.0}
    trees = search.run_search([root], refiner, lambda items: [(1.0, "all good") for _ in items], branch=1, keep=1)
    assert trees[0].success
    convs, _ = D.rft_data([trees[0].to_dict()], [], caps={}, seed=0)
    (chain,) = [c for c in convs if c["part"] == "refinement_chains"]
    assert chain["messages"][:3] == gen.convs[0]
    assert gen.convs[0][1]["content"] == "Step-by-step verification: uppercase letters.\n\nFinal Judgement: No"
    assert chain["messages"][3]["content"].endswith("[[start]]cats are great 0.[[end]]")


def test_sft_records_train_every_assistant_turn():
    from autoif_lib import train

    chain = P.refine("P", "bad", "wrong case") + [{"role": "assistant", "content": "fixed: [[start]]good[[end]]"}]
    judgment = P.judge("P", "bad") + [{"role": "assistant", "content": P.judgment("wrong case", False)}]
    recs = train.sft_records([{"messages": chain}, {"messages": judgment}], "all")
    # the chain's critique turn, its refinement turn; the standalone judgment is the same record as the first
    assert [r["completion"][0]["content"] for r in recs] == ["wrong case\n\nFinal Judgement: No",
                                                             "fixed: [[start]]good[[end]]"]
    assert recs[0]["prompt"] == chain[:1] and recs[1]["prompt"] == chain[:3]
    last = train.sft_records([{"messages": chain}, {"messages": judgment}], "last")
    assert [r["completion"][0]["content"] for r in last] == ["fixed: [[start]]good[[end]]",
                                                             "wrong case\n\nFinal Judgement: No"]
