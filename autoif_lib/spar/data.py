"""Training data for SPaR from search trees and voted actor samples. Pure functions over records.

* ``refinement_pairs``: actor DPO pairs, one per successful tree: chosen = the final (refined)
  response, rejected = the ROOT response. Refinement keeps the two close, so the pair isolates
  what the constraint changed (the paper's point); ``pair_similarity`` measures that.
* ``sampled_pairs``: the "without refinement" ablation: a positive and a negative actor sample.
* ``rft_data``: refiner RFT conversations in five capped parts (refinement chains, tree
  judgments Yes/No, sample judgments No/Yes).
* ``to_trl``: TRL's conversational preference format.

Trees look like ``{"prompt", "success", "final", "nodes": [{"id", "parent", "depth", "response",
"critique", "value", "refine_cot", "status"}, ...]}``; ``value`` is the fraction of Yes votes,
``final`` the id of the node that passed (or the node itself).
"""

from __future__ import annotations

import difflib
import random
import statistics
from collections.abc import Sequence

from . import prompts as P

RFT_PARTS = ("refinement_chains", "tree_positive_judgments", "tree_negative_judgments",
             "sample_negative_judgments", "sample_positive_judgments")
RFT_CAPS = {  # the paper's defaults
    "refinement_chains": 4000,
    "tree_positive_judgments": 1500,
    "tree_negative_judgments": 1000,
    "sample_negative_judgments": 500,
    "sample_positive_judgments": 2500,
}



# ---------------------------------------------------------------------------- trees

def _nodes_by_id(tree: dict) -> dict:
    return {n["id"]: n for n in tree.get("nodes", [])}


def root_node(tree: dict) -> dict | None:
    """Node 0, else the node without a parent."""
    nodes = tree.get("nodes", [])
    for n in nodes:
        if n.get("id") == 0:
            return n
    for n in nodes:
        if n.get("parent") is None:
            return n
    return None


def final_node(tree: dict) -> dict | None:
    """The node ``final`` names (an id or the node dict), or None."""
    final = tree.get("final")
    if isinstance(final, dict):
        return _nodes_by_id(tree).get(final.get("id"), final)
    if final is None:
        return None
    return _nodes_by_id(tree).get(final)


def refinement_pairs(trees: Sequence[dict]) -> list[dict]:
    """One DPO pair per successful tree: chosen = final node's response, rejected = the root's.

    Trees that failed, have no final node, whose final node is the root, or whose two texts are
    equal give no pair. Record: ``prompt``, ``chosen``, ``rejected``, ``depth`` (final node),
    ``chosen_value``, ``rejected_value``, ``final_id``, ``tree`` (index in ``trees``),
    ``origin="refinement"`` (and ``prompt_id`` when the tree has an ``id``/``prompt_id``).
    """
    out = []
    for t_idx, tree in enumerate(trees):
        if not tree.get("success"):
            continue
        final, root = final_node(tree), root_node(tree)
        if final is None or root is None or final.get("id") == root.get("id"):
            continue
        chosen, rejected = final.get("response"), root.get("response")
        if not chosen or not rejected or chosen.strip() == rejected.strip():
            continue
        rec = {"prompt": tree["prompt"], "chosen": chosen, "rejected": rejected,
               "depth": final.get("depth"), "chosen_value": final.get("value"),
               "rejected_value": root.get("value"), "final_id": final.get("id"), "tree": t_idx,
               "origin": "refinement"}
        pid = tree.get("prompt_id", tree.get("id"))
        if pid is not None:
            rec["prompt_id"] = pid
        out.append(rec)
    return out


def to_trl(pairs: Sequence[dict]) -> list[dict]:
    """TRL conversational preference rows: prompt = [user], chosen / rejected = [assistant]."""
    return [{"prompt": [{"role": "user", "content": p["prompt"]}],
             "chosen": [{"role": "assistant", "content": p["chosen"]}],
             "rejected": [{"role": "assistant", "content": p["rejected"]}]} for p in pairs]


# ---------------------------------------------------------------------------- sampled pairs

def _label(value) -> bool | None:
    """True / False from a vote label (bool, "Yes"/"No", 1/0); None when absent or unreadable."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("yes", "true", "1"):
            return True
        if v in ("no", "false", "0"):
            return False
    return None


def sampled_pairs(samples: Sequence[dict], seed: int = 0) -> list[dict]:
    """Per prompt, one positive (label True) and one negative (label False) actor sample, drawn
    seeded; prompts lacking either side give no pair. Prompts keep first-seen order.
    Record: ``prompt``, ``chosen``, ``rejected``, ``chosen_value``, ``rejected_value``,
    ``origin="sampled"``."""
    rng = random.Random(seed)
    groups: dict[str, tuple[list, list]] = {}
    for s in samples:
        label = _label(s.get("label"))
        if label is None or not s.get("response"):
            continue
        pos, neg = groups.setdefault(s["prompt"], ([], []))
        (pos if label else neg).append(s)
    out = []
    for prompt, (pos, neg) in groups.items():
        if not pos or not neg:
            continue
        c, r = rng.choice(pos), rng.choice(neg)
        out.append({"prompt": prompt, "chosen": c["response"], "rejected": r["response"],
                    "chosen_value": c.get("value"), "rejected_value": r.get("value"), "origin": "sampled"})
    return out


# ---------------------------------------------------------------------------- refiner RFT

def verdict(text: str | None) -> bool | None:
    """The last ``Final Judgement: Yes/No`` in ``text`` (True / False), None when there is none."""
    found = P._VERDICT_RE.findall(text or "")
    return None if not found else found[-1].lower() == "yes"


def judgment_text(critique: str, label: bool) -> str | None:
    """``critique`` ending with exactly ``Final Judgement: Yes/No`` for ``label``; None when the
    critique's own verdict contradicts the label (such a critique argues for the other side)."""
    own = verdict(critique)
    if own is not None and own != label:
        return None
    return P.judgment(critique, label)


def _judgment_conv(prompt: str, response: str, critique: str, label: bool) -> list[dict] | None:
    text = judgment_text(critique, label)
    if text is None:
        return None
    return P.judge(prompt, response) + [{"role": "assistant", "content": text}]


def _pick_node(tree: dict, lo: float, hi: float, rng: random.Random) -> dict | None:
    """A random refinement (never the root: the actor's sample, judged in the sample parts) with lo < value < hi,
    a response and a critique."""
    root = root_node(tree)
    cands = [n for n in tree.get("nodes", [])
             if n is not root and isinstance(n.get("value"), (int, float)) and lo < n["value"] < hi
             and n.get("response") and n.get("critique")]
    return rng.choice(cands) if cands else None


def rft_data(trees: Sequence[dict], sample_votes: Sequence[dict], caps: dict | None = None,
             seed: int = 0) -> tuple[list[dict], dict]:
    """Refiner RFT conversations in five parts, deduplicated by first user message, shuffled, capped.

    (a) ``refinement_chains``: per successful tree, [judge(prompt, parent response), parent
        critique (ending "Final Judgement: No"), refine instruction, final node's ``refine_cot``];
    (b) ``tree_positive_judgments``: per tree (successful or not) one refinement (the root never: it is an actor
        sample) with 0.5 < value < 1:
        [judge(prompt, response), critique ending "Final Judgement: Yes"];
    (c) ``tree_negative_judgments``: per tree one node with 0 < value < 0.5, judgment No;
    (d) ``sample_negative_judgments`` / (e) ``sample_positive_judgments``: actor samples with a
        split vote (0 < value < 1), by label No / Yes.

    A critique whose own verdict contradicts the label is dropped (counted as ``inconsistent``).
    Dedup is by first user message across all parts, before the caps, parts in the order above (a chain
    trains its parent's No judgment as well, so a standalone judgment of the same response is a duplicate).
    ``caps`` overrides ``RFT_CAPS`` per part; ``None`` means no cap.
    Returns (conversations ``{"messages", "part", "source"}`` shuffled together, counts:
    ``{part: {"candidates", "duplicates", "inconsistent", "before_cap", "after_cap"}}``).
    """
    caps = {**RFT_CAPS, **(caps or {})}
    unknown = set(caps) - set(RFT_PARTS)
    if unknown:
        raise ValueError(f"unknown RFT parts in caps: {sorted(unknown)}")
    rng = random.Random(seed)
    parts: dict[str, list[dict]] = {p: [] for p in RFT_PARTS}
    inconsistent = dict.fromkeys(RFT_PARTS, 0)

    def add(part: str, messages: list[dict] | None, source: dict) -> None:
        if messages is None:
            inconsistent[part] += 1
        else:
            parts[part].append({"messages": messages, "part": part, "source": source})

    for t_idx, tree in enumerate(trees):
        prompt = tree.get("prompt", "")
        if tree.get("success"):
            final = final_node(tree)
            parent = _nodes_by_id(tree).get(final.get("parent")) if final else None
            if final and parent and final.get("refine_cot") and parent.get("response") and parent.get("critique"):
                # the very conversation the search sent (P.refine), the refiner's completion as the target
                msgs = None if judgment_text(parent["critique"], False) is None else (
                    P.refine(prompt, parent["response"], parent["critique"])
                    + [{"role": "assistant", "content": final["refine_cot"]}])
                add("refinement_chains", msgs, {"tree": t_idx, "node": final.get("id"), "parent": parent.get("id")})
        for part, lo, hi, label in (("tree_positive_judgments", 0.5, 1.0, True),
                                    ("tree_negative_judgments", 0.0, 0.5, False)):
            node = _pick_node(tree, lo, hi, rng)
            if node is not None:
                add(part, _judgment_conv(prompt, node["response"], node["critique"], label),
                    {"tree": t_idx, "node": node.get("id"), "value": node["value"]})

    for s_idx, s in enumerate(sample_votes):
        value, label = s.get("value"), _label(s.get("label"))
        if label is None or not isinstance(value, (int, float)) or not 0 < value < 1:
            continue
        if not s.get("response") or not s.get("critique"):
            continue
        part = "sample_positive_judgments" if label else "sample_negative_judgments"
        add(part, _judgment_conv(s["prompt"], s["response"], s["critique"], label),
            {"sample": s_idx, "value": value})

    out: list[dict] = []
    counts: dict[str, dict] = {}
    seen: set[str] = set()
    for part in RFT_PARTS:
        unique = []
        for conv in parts[part]:
            key = next(m["content"] for m in conv["messages"] if m["role"] == "user")
            if key not in seen:
                seen.add(key)
                unique.append(conv)
        rng.shuffle(unique)
        cap = caps.get(part)
        kept = unique if cap is None else unique[:max(0, int(cap))]
        counts[part] = {"candidates": len(parts[part]), "duplicates": len(parts[part]) - len(unique),
                        "inconsistent": inconsistent[part], "before_cap": len(unique), "after_cap": len(kept)}
        out.extend(kept)
    rng.shuffle(out)
    return out, counts


# ---------------------------------------------------------------------------- similarity

def _text(x) -> str:
    if isinstance(x, list):  # TRL conversational: [{"role", "content"}]
        return "\n".join(m.get("content", "") for m in x)
    return x or ""


def pair_similarity(pairs: Sequence[dict]) -> dict:
    """difflib ``SequenceMatcher.ratio`` between chosen and rejected: ``{"n", "mean", "median",
    "min", "max"}`` (None values when there are no pairs). Accepts plain or TRL-format pairs.
    The paper reports about 0.90 for refinement pairs and 0.85 for independently sampled ones."""
    ratios = [difflib.SequenceMatcher(None, _text(p["chosen"]), _text(p["rejected"])).ratio() for p in pairs]
    if not ratios:
        return {"n": 0, "mean": None, "median": None, "min": None, "max": None}
    return {"n": len(ratios), "mean": statistics.fmean(ratios), "median": statistics.median(ratios),
            "min": min(ratios), "max": max(ratios)}
