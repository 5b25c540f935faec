"""SPaR's tree search over refinements, batched across many trees.

Each tree starts from one of the actor's negative responses (the root: the response, the
refiner's majority "No" critique and its vote value). A node is expanded by asking the refiner
for refinements of (prompt, response, critique); each refinement is judged (vote value and
majority critique). A refinement whose value exceeds ``success`` (strictly) ends the tree with
success; the chain root..node gives the refinement pairs SPaR trains on.

Model calls are made through two batched callables, so that a step of the search over many
trees is one refine call and one judge call:

* ``refine(requests, n)``: for each ``(prompt, response, critique)``, ``n`` candidates
  ``(refined_text or None when unparseable, cot_text)``;
* ``judge(requests)``: for each ``(prompt, response)``, ``(value or None when dropped, critique)``.

Within a tree, judgments are cached by response text (the prompt is fixed per tree): the same
text is never judged twice, the root's text included (its given value and critique stand).

Algorithms: ``bfs`` (the paper's default: layer by layer, success checked after the whole
layer, top-``keep`` children carried on), ``dfs`` (one node's children at a time, depth-first,
return at the first success), ``greedy`` (a single chain, branch 1 and keep 1) and
``best_of_n`` (one layer of ``branch`` refinements of the root). All of them advance every
tree in lockstep, so each step batches over trees.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

__all__ = [
    "ALGORITHMS",
    "Node",
    "Tree",
    "run_search",
    "search_stats",
    "path_to",
    "refinement_chain",
]

ALGORITHMS = ("bfs", "dfs", "greedy", "best_of_n")

RefineFn = Callable[[list[tuple[str, str, str]], int], list[list[tuple[str | None, str]]]]
JudgeFn = Callable[[list[tuple[str, str]]], list[tuple[float | None, str | None]]]


@dataclass
class Node:
    """One response in a tree. ``status``: ok, refine_failed (no parseable refinement), judge_dropped."""

    id: int
    parent: int | None
    depth: int
    response: str
    critique: str | None
    value: float | None
    refine_cot: str | None = None
    status: str = "ok"
    cached: bool = False  # the judgment came from the tree's cache (an identical earlier text)

    @property
    def selectable(self) -> bool:
        return self.status == "ok" and self.value is not None

    def to_dict(self) -> dict:
        return asdict(self)


def _new_calls() -> dict:
    return {"refine": 0, "judge": 0, "judge_cached": 0, "budget_hit": False}


@dataclass
class Tree:
    """A search tree; node 0 is the root. ``final`` is the returned node's id (None: no valued node)."""

    prompt: str
    nodes: list[Node]
    success: bool = False
    final: int | None = None
    calls: dict = field(default_factory=_new_calls)

    def to_dict(self) -> dict:
        return {
            "prompt": self.prompt,
            "nodes": [n.to_dict() for n in self.nodes],
            "success": self.success,
            "final": self.final,
            "calls": dict(self.calls),
        }


class _State:
    """A tree under search plus what the algorithm still has to expand."""

    def __init__(self, tree: Tree):
        self.tree = tree
        root = tree.nodes[0]
        self.cache: dict[str, tuple[float | None, str | None]] = {root.response: (root.value, root.critique)}
        self.todo: list[int] = [0]  # bfs: the frontier, in order; dfs: a stack (top = last)
        self.expanded: set[str] = set()  # texts already expanded: a text is refined once per tree
        self.done = False


def _rank(nodes: Sequence[Node]) -> list[Node]:
    """Selectable nodes by value, highest first; ties keep the earlier node first."""
    return sorted((n for n in nodes if n.selectable), key=lambda n: -n.value)  # sort is stable


def _final_on_failure(tree: Tree) -> int | None:
    """The highest-value selectable node of the tree (root included); ties go to the later node."""
    best = None
    for n in tree.nodes:
        if n.selectable and (best is None or n.value >= best.value):
            best = n
    return None if best is None else best.id


def run_search(
    roots: Sequence[dict],
    refine: RefineFn,
    judge: JudgeFn,
    algorithm: str = "bfs",
    branch: int = 3,
    keep: int = 2,
    max_depth: int = 3,
    success: float = 0.5,
    budget: int = 1000,
) -> list[Tree]:
    """Search refinements for every root; one tree per root, in order.

    Each root is a dict with ``prompt``, ``response``, ``critique`` and ``value``. ``budget`` caps
    the nodes of a tree, root excluded; a node is expanded only when all ``branch`` of its
    children fit (so one refine call per step keeps a single ``n``), and a tree that wanted to
    expand but could not records ``calls["budget_hit"] = True``. The root itself is never tested
    for success: the search always refines.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {ALGORITHMS}")
    if algorithm == "greedy":
        branch, keep = 1, 1
    elif algorithm == "best_of_n":
        max_depth = min(max_depth, 1)
    if branch < 1 or keep < 1:
        raise ValueError(f"branch and keep must be >= 1, got branch={branch}, keep={keep}")
    if max_depth < 0 or budget < 0:
        raise ValueError(f"max_depth and budget must be >= 0, got max_depth={max_depth}, budget={budget}")
    depth_first = algorithm == "dfs"

    states = []
    for r in roots:
        root = Node(id=0, parent=None, depth=0, response=r["response"], critique=r.get("critique"), value=r.get("value"))
        states.append(_State(Tree(prompt=r["prompt"], nodes=[root])))
    if max_depth == 0:
        for st in states:
            st.done = True

    while True:
        # 1. What each live tree expands this step.
        plan: list[tuple[_State, list[int]]] = []
        for st in states:
            if st.done:
                continue
            tree = st.tree
            if not st.todo:
                st.done = True
                continue
            room = (budget - (len(tree.nodes) - 1)) // branch  # whole nodes that still fit
            if depth_first:
                while st.todo and tree.nodes[st.todo[-1]].response in st.expanded:
                    st.todo.pop()  # the same text was expanded elsewhere in the tree meanwhile
                if not st.todo:
                    st.done = True
                    continue
                expand = [st.todo.pop()] if room >= 1 else []
            else:
                expand = st.todo[: max(room, 0)]
                if len(expand) < len(st.todo):
                    tree.calls["budget_hit"] = True
                st.todo = []
            if not expand:
                tree.calls["budget_hit"] = True
                st.done = True
                continue
            st.expanded.update(tree.nodes[i].response for i in expand)
            plan.append((st, expand))
        if not plan:
            break

        # 2. One refine call for every expanded node of every tree.
        requests = [
            (st.tree.prompt, st.tree.nodes[i].response, st.tree.nodes[i].critique or "")
            for st, expand in plan
            for i in expand
        ]
        outs = refine(requests, branch)
        if len(outs) != len(requests):
            raise ValueError(f"refine returned {len(outs)} results for {len(requests)} requests")
        children: list[list[Node]] = []
        k = 0
        for st, expand in plan:
            tree = st.tree
            made = []
            for i in expand:
                cands = outs[k]
                k += 1
                if len(cands) != branch:
                    raise ValueError(f"refine returned {len(cands)} candidates, expected n={branch}")
                tree.calls["refine"] += branch
                parent = tree.nodes[i]
                for text, cot in cands:
                    node = Node(id=len(tree.nodes), parent=parent.id, depth=parent.depth + 1,
                                response=text if text is not None else "", critique=None, value=None,
                                refine_cot=cot)
                    if text is None:
                        node.status = "refine_failed"
                    tree.nodes.append(node)
                    made.append(node)
            children.append(made)

        # 3. One judge call for every new, uncached text of every tree.
        jreq: list[tuple[str, str]] = []
        owners: list[tuple[_State, str]] = []
        for (st, _), made in zip(plan, children):
            asked = set()
            for node in made:
                if node.status == "refine_failed":
                    continue
                if node.response in st.cache or node.response in asked:
                    continue
                asked.add(node.response)
                jreq.append((st.tree.prompt, node.response))
                owners.append((st, node.response))
        if jreq:
            verdicts = judge(jreq)
            if len(verdicts) != len(jreq):
                raise ValueError(f"judge returned {len(verdicts)} results for {len(jreq)} requests")
            for (st, text), (value, critique) in zip(owners, verdicts):
                st.cache[text] = (value, critique)
                st.tree.calls["judge"] += 1
        fresh = {(id(st), text) for st, text in owners}
        for (st, _), made in zip(plan, children):
            for node in made:
                if node.status == "refine_failed":
                    continue
                if (id(st), node.response) in fresh:
                    fresh.discard((id(st), node.response))
                else:
                    node.cached = True
                    st.tree.calls["judge_cached"] += 1
                node.value, node.critique = st.cache[node.response]
                if node.value is None:
                    node.status = "judge_dropped"

        # 4. Success after the whole step (a bfs layer, a dfs node's children); else carry on.
        for (st, _), made in zip(plan, children):
            tree = st.tree
            ranked = _rank(made)
            if ranked and ranked[0].value > success:
                tree.success, tree.final, st.done = True, ranked[0].id, True
                continue
            carry: list[int] = []
            texts: set[str] = set()
            for n in ranked:  # the top-`keep` distinct texts not yet expanded in this tree
                if len(carry) == keep or n.depth >= max_depth:
                    break
                if n.response not in st.expanded and n.response not in texts:
                    carry.append(n.id)
                    texts.add(n.response)
            if depth_first:
                st.todo.extend(reversed(carry))  # the best child is expanded next
            else:
                st.todo = carry
            if not st.todo:
                st.done = True

    for st in states:
        if not st.tree.success:
            st.tree.final = _final_on_failure(st.tree)
    return [st.tree for st in states]


def path_to(tree: Tree, node_id: int) -> list[Node]:
    """The nodes from the root down to ``node_id``."""
    path = []
    cur: int | None = node_id
    while cur is not None:
        node = tree.nodes[cur]
        path.append(node)
        cur = node.parent
    return path[::-1]


def refinement_chain(tree: Tree) -> list[dict]:
    """The refinement steps root..final: each step's parent response and critique, child response and cot."""
    if tree.final is None:
        return []
    path = path_to(tree, tree.final)
    return [
        {
            "depth": child.depth,
            "parent_id": parent.id,
            "child_id": child.id,
            "parent_response": parent.response,
            "parent_critique": parent.critique,
            "parent_value": parent.value,
            "child_response": child.response,
            "child_cot": child.refine_cot,
            "child_value": child.value,
        }
        for parent, child in zip(path, path[1:])
    ]


def search_stats(trees: Sequence[Tree]) -> dict:
    """Totals over trees: success rate, mean calls and nodes (root excluded), depths of successes."""
    n = len(trees)

    def mean(xs):
        xs = list(xs)
        return sum(xs) / len(xs) if xs else 0.0

    succ = [t for t in trees if t.success]
    return {
        "trees": n,
        "success": len(succ),
        "success_rate": len(succ) / n if n else 0.0,
        "mean_refine_calls": mean(t.calls.get("refine", 0) for t in trees),
        "mean_judge_calls": mean(t.calls.get("judge", 0) for t in trees),
        "mean_judge_cached": mean(t.calls.get("judge_cached", 0) for t in trees),
        "mean_nodes": mean(len(t.nodes) - 1 for t in trees),
        "success_depth": dict(sorted(Counter(t.nodes[t.final].depth for t in succ).items())),
        "refine_failed": sum(nd.status == "refine_failed" for t in trees for nd in t.nodes),
        "judge_dropped": sum(nd.status == "judge_dropped" for t in trees for nd in t.nodes),
        "budget_hit": sum(bool(t.calls.get("budget_hit")) for t in trees),
    }
