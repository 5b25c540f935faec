"""SPaR tree search with a scripted refiner and judge (no model)."""

from __future__ import annotations

import json

import pytest

from autoif_lib.spar.search import Node, Tree, path_to, refinement_chain, run_search, search_stats


class Refiner:
    """Child j of response R is ``R/j`` unless ``script[R]`` lists the candidates (None = unparseable)."""

    def __init__(self, script=None):
        self.script = script or {}
        self.calls = []  # (requests, n) per call

    def __call__(self, requests, n):
        self.calls.append((list(requests), n))
        out = []
        for prompt, response, critique in requests:
            texts = self.script.get(response, [f"{response}/{j}" for j in range(n)])
            assert len(texts) >= n
            out.append([(t, f"cot for {t}") for t in texts[:n]])
        return out


class Judge:
    """Value from ``values[response]`` (default 0.1); None = dropped judgment. Records every call."""

    def __init__(self, values=None, default=0.1):
        self.values = values or {}
        self.default = default
        self.calls = []

    def __call__(self, requests):
        self.calls.append(list(requests))
        return [(self.values.get(r, self.default), f"critique of {r}") for _, r in requests]

    @property
    def judged(self):
        return [r for call in self.calls for _, r in call]


def root(prompt="p", response="r", value=0.2):
    return {"prompt": prompt, "response": response, "critique": f"critique of {response}", "value": value}


def expansions(tree: Tree):
    return [(n.depth, n.parent, n.id) for n in tree.nodes[1:]]


def test_bfs_visit_order_and_topk():
    ref, jud = Refiner(), Judge({"r/0": 0.2, "r/1": 0.4, "r/2": 0.3})
    (t,) = run_search([root()], ref, jud, branch=3, keep=2, max_depth=2)
    assert expansions(t) == [
        (1, 0, 1), (1, 0, 2), (1, 0, 3),
        (2, 2, 4), (2, 2, 5), (2, 2, 6),   # best child (r/1, 0.4) first
        (2, 3, 7), (2, 3, 8), (2, 3, 9),   # then r/2 (0.3); r/0 (0.2) is not kept
    ]
    assert [n.response for n in t.nodes[4:7]] == ["r/1/0", "r/1/1", "r/1/2"]
    assert [[req[1] for req in reqs] for reqs, _ in ref.calls] == [["r"], ["r/1", "r/2"]]
    assert all(n == 3 for _, n in ref.calls)
    # the critique passed to the refiner is the parent's critique
    assert ref.calls[1][0][0] == ("p", "r/1", "critique of r/1")
    assert not t.success and t.final == 2  # highest value on failure
    assert t.calls == {"refine": 9, "judge": 9, "judge_cached": 0, "budget_hit": False}


def test_bfs_topk_ties_keep_the_earlier_node():
    ref = Refiner()
    (t,) = run_search([root()], ref, Judge(default=0.3), branch=3, keep=2, max_depth=2)
    assert [req[1] for req in ref.calls[1][0]] == ["r/0", "r/1"]


def test_bfs_checks_success_after_the_whole_layer():
    jud = Judge({"r/0": 0.2, "r/1": 0.9, "r/2": 0.95})
    (t,) = run_search([root()], Refiner(), jud, branch=3, keep=2, max_depth=3)
    assert jud.judged == ["r/0", "r/1", "r/2"]  # the 3rd child is judged after the 2nd succeeded
    assert t.success and t.final == 3 and len(t.nodes) == 4  # the best of the layer, not the first > 0.5

    # across the frontier: the best child of the whole layer wins, whichever parent it has
    jud = Judge({"r/0": 0.3, "r/1": 0.4, "r/1/2": 0.6, "r/0/0": 0.8})
    (t,) = run_search([root()], Refiner(), jud, branch=3, keep=2, max_depth=3)
    assert len(t.nodes) == 1 + 3 + 6  # the layer is complete
    assert t.success and t.nodes[t.final].response == "r/0/0" and t.nodes[t.final].depth == 2

    # equal best values: the earlier node
    (t,) = run_search([root()], Refiner(), Judge({"r/1": 0.9, "r/2": 0.9}), branch=3)
    assert t.final == 2


def test_stopping_rule_is_strict():
    jud = Judge({"r/0": 0.5, "r/0/0": 0.6})
    (t,) = run_search([root()], Refiner(), jud, branch=1, keep=1, max_depth=3)
    assert [n.value for n in t.nodes] == [0.2, 0.5, 0.6]
    assert t.success and t.final == 2
    (t,) = run_search([root()], Refiner(), Judge({"r/0": 0.5}), branch=1, keep=1, max_depth=1)
    assert not t.success and t.final == 1
    (t,) = run_search([root()], Refiner(), Judge({"r/0": 0.7}), branch=1, keep=1, success=0.7)
    assert not t.success and len(t.nodes) == 4


def test_max_depth_bounds_the_search():
    (t,) = run_search([root()], Refiner(), Judge(), branch=2, keep=1, max_depth=3)
    assert max(n.depth for n in t.nodes) == 3 and len(t.nodes) == 1 + 2 + 2 + 2
    (t,) = run_search([root()], Refiner(), Judge(), max_depth=0)
    assert len(t.nodes) == 1 and t.final == 0 and not t.success


def test_node_budget():
    ref = Refiner()
    (t,) = run_search([root()], ref, Judge(), branch=3, keep=2, max_depth=3, budget=4)
    assert len(t.nodes) - 1 == 3 and len(ref.calls) == 1 and t.calls["budget_hit"] is True
    # room for one more whole expansion: only the best frontier node is expanded
    ref = Refiner()
    (t,) = run_search([root()], ref, Judge({"r/2": 0.3}), branch=3, keep=2, max_depth=3, budget=7)
    assert len(t.nodes) - 1 == 6 and [req[1] for req in ref.calls[1][0]] == ["r/2"]
    assert t.calls["budget_hit"] is True and len(ref.calls) == 2
    # a budget that is exactly used up by the full search is not hit
    (t,) = run_search([root()], Refiner(), Judge(), branch=3, keep=2, max_depth=2, budget=9)
    assert len(t.nodes) - 1 == 9 and t.calls["budget_hit"] is False
    (t,) = run_search([root()], Refiner(), Judge(), algorithm="dfs", branch=2, keep=2, max_depth=3, budget=5)
    assert len(t.nodes) - 1 == 4 and t.calls["budget_hit"] is True


def test_dfs_order():
    ref = Refiner()
    jud = Judge({"r/0": 0.1, "r/1": 0.3, "r/1/0": 0.2, "r/1/1": 0.25})
    (t,) = run_search([root()], ref, jud, algorithm="dfs", branch=2, keep=2, max_depth=3)
    assert [req[0][0][1] for req in ref.calls] == [
        "r", "r/1", "r/1/1", "r/1/0", "r/0", "r/0/0", "r/0/1",
    ]  # one node per call, best child first, depth-first, leaves at max_depth are not expanded
    assert all(len(reqs) == 1 for reqs, _ in ref.calls)
    assert expansions(t)[:6] == [(1, 0, 1), (1, 0, 2), (2, 2, 3), (2, 2, 4), (3, 4, 5), (3, 4, 6)]
    assert not t.success and len(t.nodes) == 1 + 2 + 4 + 8


def test_dfs_returns_early():
    ref = Refiner()
    jud = Judge({"r/0": 0.1, "r/1": 0.3, "r/1/1": 0.7, "r/1/0": 0.8})
    (t,) = run_search([root()], ref, jud, algorithm="dfs", branch=2, keep=2, max_depth=3)
    assert [reqs[0][1] for reqs, _ in ref.calls] == ["r", "r/1"]  # r/0 is never expanded
    assert t.success and t.nodes[t.final].response == "r/1/0"
    assert [n.response for n in path_to(t, t.final)] == ["r", "r/1", "r/1/0"]


def test_dfs_batches_across_trees_one_node_each():
    ref = Refiner()
    run_search([root("a"), root("b")], ref, Judge(), algorithm="dfs", branch=2, keep=1, max_depth=2)
    assert [[req[0] for req in reqs] for reqs, _ in ref.calls] == [["a", "b"], ["a", "b"]]


def test_greedy_is_a_single_chain():
    ref = Refiner()
    (t,) = run_search([root()], ref, Judge(), algorithm="greedy", branch=5, keep=3, max_depth=4)
    assert [n.response for n in t.nodes] == ["r", "r/0", "r/0/0", "r/0/0/0", "r/0/0/0/0"]
    assert [n.parent for n in t.nodes] == [None, 0, 1, 2, 3]
    assert all(n == 1 for _, n in ref.calls) and len(ref.calls) == 4
    (t,) = run_search([root()], Refiner(), Judge({"r/0/0": 0.9}), algorithm="greedy", max_depth=4)
    assert t.success and t.nodes[t.final].depth == 2 and len(t.nodes) == 3


def test_best_of_n_is_one_layer():
    ref = Refiner()
    (t,) = run_search([root()], ref, Judge({"r/2": 0.4}), algorithm="best_of_n", branch=4, max_depth=3)
    assert len(ref.calls) == 1 and ref.calls[0][1] == 4
    assert expansions(t) == [(1, 0, 1), (1, 0, 2), (1, 0, 3), (1, 0, 4)]
    assert not t.success and t.final == 3
    (t,) = run_search([root()], Refiner(), Judge({"r/3": 0.8}), algorithm="best_of_n", branch=4)
    assert t.success and t.final == 4


def test_judgment_cache_per_tree():
    script = {"r": ["x", "y", "x"], "x": ["y", "r", "z"], "y": ["z", "z", "w"]}
    jud = Judge({"x": 0.3, "y": 0.2})
    (t,) = run_search([root()], Refiner(script), jud, branch=3, keep=2, max_depth=2)
    assert jud.judged == ["x", "y", "z", "w"]  # each text judged once in the tree
    # layer 1: the 2nd x; layer 2: y (seen), r (the root), z twice after the first
    assert t.calls["judge"] == 4 and t.calls["judge_cached"] == 5
    assert [n.cached for n in t.nodes[1:]] == [False, False, True, True, True, False, True, True, False]
    assert t.nodes[3].value == 0.3 and t.nodes[3].critique == "critique of x"
    assert t.nodes[5].value == 0.2 and t.nodes[5].critique == "critique of r"  # the root's given judgment
    # the cache is per tree: the same text under another tree is judged again
    jud = Judge()
    trees = run_search([root("a"), root("b")], Refiner({"r": ["x", "x"]}), jud, branch=2, max_depth=1)
    assert jud.judged == ["x", "x"] and [t.calls["judge_cached"] for t in trees] == [1, 1]


def test_duplicate_texts_do_not_fill_the_frontier():
    # layer 1: x (0.3), x again (cached), y (0.2): the frontier is x and y, not x twice
    ref = Refiner({"r": ["x", "x", "y"], "x": ["r", "u", "v"]})
    (t,) = run_search([root()], ref, Judge({"x": 0.3, "y": 0.2, "r": 0.9}), branch=3, keep=2, max_depth=3)
    assert [req[1] for req in ref.calls[1][0]] == ["x", "y"]
    # the root's text reappearing is not expanded again (and keeps the root's own value)
    assert t.nodes[4].response == "r" and t.nodes[4].value == 0.2 and t.nodes[4].cached
    assert "r" not in [req[1] for reqs, _ in ref.calls[1:] for req in reqs]
    # dfs: a text expanded on one branch is not expanded again on another
    ref = Refiner({"r": ["a", "b"], "a": ["c", "a2"], "b": ["c", "b2"]})
    jud = Judge({"a": 0.3, "b": 0.2, "c": 0.25})
    run_search([root()], ref, jud, algorithm="dfs", branch=2, keep=2, max_depth=3)
    assert [reqs[0][1] for reqs, _ in ref.calls].count("c") == 1


def test_failed_refinements_and_dropped_judgments_are_never_selected():
    script = {"r": [None, "d", "ok"], "ok": [None, None, None]}
    jud = Judge({"d": None, "ok": 0.05})
    (t,) = run_search([root(value=0.0)], Refiner(script), jud, branch=3, keep=2, max_depth=3)
    assert [n.status for n in t.nodes] == ["ok", "refine_failed", "judge_dropped", "ok",
                                            "refine_failed", "refine_failed", "refine_failed"]
    assert "" not in jud.judged and jud.judged == ["d", "ok"]
    assert t.nodes[1].value is None and t.nodes[2].value is None
    assert t.nodes[1].refine_cot == "cot for None"
    # only "ok" was expanded; its failed children end the tree
    assert not t.success and t.final == 3
    stats = search_stats([t])
    assert stats["refine_failed"] == 4 and stats["judge_dropped"] == 1

    # a dropped judgment is not the final node even when every other value is lower
    (t,) = run_search([root(value=None)], Refiner({"r": ["d"]}), Judge({"d": None}), branch=1, max_depth=1)
    assert t.final is None and not t.success


def test_final_on_failure_ties_go_to_the_later_node():
    (t,) = run_search([root(value=0.1)], Refiner(), Judge({"r/0": 0.3, "r/1": 0.3, "r/2": 0.2}),
                      branch=3, keep=1, max_depth=1)
    assert t.final == 2
    (t,) = run_search([root(value=0.4)], Refiner(), Judge({"r/0": 0.4}), branch=1, max_depth=1)
    assert t.final == 1  # ties with the root: the refinement
    (t,) = run_search([root(value=0.45)], Refiner(), Judge({"r/0": 0.4}), branch=1, max_depth=1)
    assert t.final == 0


def test_bfs_batches_across_trees():
    ref, jud = Refiner(), Judge()
    roots = [root("a"), root("b"), root("c")]
    trees = run_search(roots, ref, jud, algorithm="bfs", branch=3, keep=2, max_depth=3)
    assert len(ref.calls) == 3 and len(jud.calls) == 3  # one per layer, all trees together
    assert [len(reqs) for reqs, _ in ref.calls] == [3, 6, 6]
    assert [len(c) for c in jud.calls] == [9, 18, 18]
    assert [req[0] for req in ref.calls[1][0]] == ["a", "a", "b", "b", "c", "c"]
    assert [t.prompt for t in trees] == ["a", "b", "c"]
    # a tree that succeeds leaves the batch; the others carry on
    ref = Refiner()
    trees = run_search(roots, ref, Judge({"r/1": 0.9}), branch=3, keep=2, max_depth=3)
    assert all(t.success and t.final == 2 for t in trees) and len(ref.calls) == 1
    ref = Refiner()
    trees = run_search([root("a"), root("b", response="s")], ref,
                       Judge({"s/0": 0.9}), branch=2, keep=1, max_depth=3)
    assert [len(reqs) for reqs, _ in ref.calls] == [2, 1, 1]
    assert trees[1].success and not trees[0].success


def test_chain_stats_and_serialization():
    jud = Judge({"r/0": 0.3, "r/0/1": 0.7})
    trees = run_search([root(), root("q")], Refiner(), jud, branch=2, keep=1, max_depth=2)
    t = trees[0]
    chain = refinement_chain(t)
    assert [(c["parent_response"], c["child_response"]) for c in chain] == [("r", "r/0"), ("r/0", "r/0/1")]
    assert chain[0]["parent_critique"] == "critique of r" and chain[1]["parent_critique"] == "critique of r/0"
    assert chain[1]["child_cot"] == "cot for r/0/1" and chain[1]["child_value"] == 0.7
    assert refinement_chain(Tree(prompt="p", nodes=[Node(0, None, 0, "r", None, None)])) == []
    data = json.loads(json.dumps([tr.to_dict() for tr in trees]))
    assert data[0]["final"] == t.final and data[0]["nodes"][0]["parent"] is None

    stats = search_stats(trees)
    assert stats["trees"] == 2
    assert stats["success"] == 2 and stats["success_rate"] == 1.0
    assert stats["success_depth"] == {2: 2}
    assert stats["mean_refine_calls"] == 4 and stats["mean_judge_calls"] == 4 and stats["mean_nodes"] == 4
    assert stats["refine_failed"] == 0 and stats["judge_dropped"] == 0 and stats["budget_hit"] == 0
    assert search_stats([])["trees"] == 0
    json.dumps(stats)


def test_argument_and_callable_checks():
    with pytest.raises(ValueError):
        run_search([root()], Refiner(), Judge(), algorithm="mcts")
    with pytest.raises(ValueError):
        run_search([root()], Refiner(), Judge(), branch=0)
    with pytest.raises(ValueError):
        run_search([root()], lambda reqs, n: [], Judge())
    with pytest.raises(ValueError):
        run_search([root()], lambda reqs, n: [[("x", "")]] * len(reqs), Judge(), branch=2)
    with pytest.raises(ValueError):
        run_search([root()], Refiner(), lambda reqs: [])
    assert run_search([], Refiner(), Judge()) == []
