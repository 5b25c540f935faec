"""Verifiable instruction sets: what every method that trains on instructions with verifiers shares.

An instruction record has ``id``, ``instruction`` and ``functions`` (its kept verifiers' ``src``); a query record
``id`` and ``query``. Pure over records; the sandbox runner and the generator are passed in.

* ``split_heldout``: a seeded share of the instructions held out for evaluation, whole families at a time
  (variants of one constraint: ``family_groups``), so no variant leaks across the split;
* ``split_queries``: a seeded share of the queries no training prompt may use;
* ``pair``: each instruction with M seeded queries; the user turn is built once (``combine_turn``) and used
  verbatim for generation, training data and evaluation;
* ``probe_table`` / ``select_learnable``: the base policy's pass rate per instruction on sampled answers, and the
  instructions in the learnable range (never-passed ones give no signal, always-passed ones nothing to learn);
* ``evaluation_items``: the held-out verifier items every method's evaluation scores (trained instructions on
  held-out queries, held-out instructions).

Seeded by the run's seed and the record ids only, so two methods given the same seeds, queries and params get
the same instruction set, the same split and the same evaluation items: the condition of a paired comparison.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter
from typing import Sequence

from .io import stable_hash
from .scoring import functions_of, pass_rates

_WS_RE = re.compile(r"\s+")


def _collapse_ws(s: str) -> str:
    return _WS_RE.sub(" ", s).strip()


# -- near duplicates --------------------------------------------------------------------------------------

def dedup_key(s: str) -> str:
    """Lowercase (casefold, NFKC), punctuation/symbols to spaces, whitespace collapsed."""
    s = unicodedata.normalize("NFKC", str(s)).casefold()
    # Keep letters, combining marks and numbers; everything else separates words.
    return _collapse_ws("".join(c if unicodedata.category(c)[0] in "LMN" else " " for c in s))


def token_features(key: str) -> tuple[frozenset[str], frozenset[str]]:
    """(token set, tokens containing digits) of a dedup key."""
    toks = frozenset(key.split())
    return toks, frozenset(t for t in toks if any(ch.isdigit() for ch in t))


def near_features(fa: tuple[frozenset, frozenset], fb: tuple[frozenset, frozenset], threshold: float) -> bool:
    """Jaccard(token sets) >= threshold and identical numeric tokens."""
    (ta, na), (tb, nb) = fa, fb
    if na != nb:
        return False
    if not ta or not tb:
        return ta == tb
    small, big = sorted((len(ta), len(tb)))
    if small / big < threshold:  # Jaccard can never exceed the size ratio; skip the set ops
        return False
    return len(ta & tb) / len(ta | tb) >= threshold


def near_duplicate(a: str, b: str, threshold: float = 0.85) -> bool:
    """True if the dedup keys are equal, or token-set Jaccard >= threshold with the same numbers."""
    ka, kb = dedup_key(a), dedup_key(b)
    return ka == kb or near_features(token_features(ka), token_features(kb), threshold)



# -- families and the held-out split -----------------------------------------------------------------

_QUOTED = r"""(["'`\u201c\u2018])(?:(?!\1).){1,80}?(\1|[\u201d\u2019])"""
_NUMBER_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                 "sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred "
                 "thousand once twice thrice first second third fourth fifth sixth seventh eighth ninth tenth").split()


def template_key(text: str) -> str:
    """An instruction with its arguments masked: quoted strings, numbers (digits or words) and single letters
    become placeholders, so "Begin with the letter B" and "Begin with the letter C", or "fewer than 50 words"
    and "fewer than 120 words", share one key."""
    import re

    s = re.sub(_QUOTED, " qqq ", str(text))
    toks = dedup_key(s).split()
    return " ".join("nnn" if t.isdigit() or t in _NUMBER_WORDS or any(c.isdigit() for c in t)
                    else "lll" if len(t) == 1 else t for t in toks)


def verifier_skeleton(src: str) -> str:
    """A verification function's token stream with literals masked and comments, docstrings and layout
    dropped: two functions that differ only in a constant (a letter, a keyword, a count) share it. A string
    that looks like a regular expression stays (it is the logic: ``re.search(S, response)`` alone would make
    every regex verifier one family). Source that does not tokenize gives "" (no skeleton)."""
    import io as _io
    import tokenize

    out, prev = [], None
    try:
        for tok in tokenize.generate_tokens(_io.StringIO(src).readline):
            if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER):
                continue
            layout = tok.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
            if not layout and not (tok.type == tokenize.STRING and prev in (None, tokenize.NEWLINE, tokenize.INDENT,
                                                                            tokenize.DEDENT)):  # not a docstring
                # a regular expression is the verifier's logic, not its argument: kept verbatim
                regex = tok.type == tokenize.STRING and any(c in tok.string for c in "\\[](){}*+?|^$")
                out.append(tok.string if regex else {tokenize.STRING: "S", tokenize.NUMBER: "N"}.get(tok.type, tok.string))
            prev = tok.type
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return ""
    return " ".join(out)


def _grouped(instructions: Sequence[dict], linked) -> list[list[dict]]:
    """Connected components of ``linked(a, b)`` plus the shared-key links of the ``keys`` each record has."""
    parent = list(range(len(instructions)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i, j):
        parent[find(i)] = find(j)

    owner: dict = {}
    for i, r in enumerate(instructions):
        for k in linked.keys(r):
            union(i, owner.setdefault(k, i))
    for i in range(len(instructions)):
        for j in range(i):
            if find(i) != find(j) and linked.near(instructions[i], instructions[j]):
                union(i, j)
    groups: dict[int, list[dict]] = {}
    for i, r in enumerate(instructions):
        groups.setdefault(find(i), []).append(r)
    return list(groups.values())  # in order of each group's first member


class _NearDuplicates:
    def __init__(self, threshold: float):
        self.threshold = threshold

    def keys(self, r: dict) -> list:
        return []

    def near(self, a: dict, b: dict) -> bool:
        return near_duplicate(a["instruction"], b["instruction"], self.threshold)


class _Families(_NearDuplicates):
    """Same family: same masked template, a shared verifier skeleton, or near-duplicate masked texts."""

    def keys(self, r: dict) -> list:
        sk = {verifier_skeleton(f["src"]) for f in r.get("functions", []) if f.get("src")} - {""}
        return [("template", template_key(r["instruction"]))] + [("verifier", s) for s in sorted(sk)]

    def near(self, a: dict, b: dict) -> bool:
        return near_duplicate(template_key(a["instruction"]), template_key(b["instruction"]), self.threshold)


def near_duplicate_groups(instructions: Sequence[dict], threshold: float = 0.85) -> list[list[dict]]:
    """Instructions grouped so that near-duplicate paraphrases (:func:`near_duplicate`) share a group."""
    return _grouped(instructions, _NearDuplicates(threshold))


def family_groups(instructions: Sequence[dict], threshold: float = 0.85) -> list[list[dict]]:
    """Instructions grouped into semantic families: variants of one constraint that differ in an argument
    (self-instruct's "begin with B" / "begin with C", "under 50 words" / "under 80 words") or whose
    verification functions differ only in a constant share a family, as do near-duplicate paraphrases."""
    return _grouped(instructions, _Families(threshold))


def split_heldout(instructions: Sequence[dict], fraction: float, seed: int, threshold: float = 0.85,
                  grouping: str = "families") -> tuple[list[dict], list[dict]]:
    """(train, heldout): a seeded ``fraction`` held out, at least one when there are two or more groups.

    Groups are held out or kept whole, so no variant leaks across the split: ``families`` (default) groups
    variants of one constraint (``family_groups``), ``near_duplicates`` only paraphrases (lexical, the split
    before fidelity round two)."""
    if grouping not in ("families", "near_duplicates"):
        raise ValueError(f"unknown heldout grouping {grouping!r}; use families or near_duplicates")
    groups = (family_groups if grouping == "families" else near_duplicate_groups)(instructions, threshold)
    if fraction <= 0 or len(groups) < 2:
        return list(instructions), []
    want = max(1, round(fraction * len(instructions)))
    rng = random.Random(seed)
    ids: set[str] = set()
    for g in rng.sample(groups, len(groups)):
        if len(ids) >= want:
            break
        if len(ids) + len(g) < len(instructions):  # always keep something to train on
            ids |= {r["id"] for r in g}
    return [r for r in instructions if r["id"] not in ids], [r for r in instructions if r["id"] in ids]



# -- prompts: one user turn per (instruction, query) ------------------------------------------------

def combine_turn(instruction: str, query: str, layout: str = "instruction_first") -> str:
    """The single user turn used for generation *and* for the exported training data.

    The reference code puts the instruction before the query when generating but after it in the SFT
    data; we use one layout for both, chosen by a param, so the model is trained on what was verified.
    """
    instruction = instruction.strip()
    query = query.strip()
    if layout == "instruction_first":
        return f"{instruction}\n\n{query}"
    if layout == "query_first":
        return f"{query}\n\n{instruction}"
    raise ValueError(f"unknown layout {layout!r}; use instruction_first or query_first")


def pair(instructions: Sequence[dict], queries: Sequence[dict], m: int, seed: int,
         layout: str = "instruction_first") -> list[dict]:
    """Each instruction with ``m`` queries sampled for it (seeded by seed and instruction id)."""
    pairs = []
    for ins in instructions:
        rng = random.Random(int(stable_hash([seed, ins["id"]], 8), 16))
        for q in rng.sample(list(queries), min(m, len(queries))):
            pairs.append({"pair_id": f"{ins['id']}__{q['id']}", "instruction_id": ins["id"],
                          "instruction": ins["instruction"], "origin": ins.get("origin"),
                          "query_id": q["id"], "query": q["query"], "layout": layout,
                          "prompt": combine_turn(ins["instruction"], q["query"], layout)})
    return pairs


def response_requests(pairs: Sequence[dict]) -> list[list[dict]]:
    return [[{"role": "user", "content": p["prompt"]}] for p in pairs]


def heldout_pairs(heldout: Sequence[dict], queries: Sequence[dict], m: int, seed: int, layout: str) -> list[dict]:
    """Held-out instructions with queries they were never trained on (same layout as training)."""
    return pair(heldout, queries, m, seed + 1, layout) if m else []


# -- the learnable range and held-out queries (stage 05) -------------------------------------------------

def split_queries(queries: Sequence[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, heldout): a seeded ``fraction`` of the query pool that no training pair may use."""
    if fraction <= 0 or len(queries) < 2:
        return list(queries), []
    want = min(len(queries) - 1, max(1, round(fraction * len(queries))))
    ids = {q["id"] for q in random.Random(int(stable_hash([seed, "heldout_queries"], 8), 16)).sample(list(queries), want)}
    return [q for q in queries if q["id"] not in ids], [q for q in queries if q["id"] in ids]


def probe_pairs(instructions: Sequence[dict], queries: Sequence[dict], n: int, seed: int, layout: str) -> list[dict]:
    """``n`` probe pairs per instruction (a seed stream apart from the training pairs')."""
    return pair(instructions, queries, n, seed + 2, layout) if n else []


def probe_table(pairs: Sequence[dict], outs: Sequence[Sequence[str]], instructions: Sequence[dict], runner,
                lo: float, hi: float) -> list[dict]:
    """Per instruction: the probed pass rate of the model's sampled responses, and whether it lies in [lo, hi]."""
    filled = [dict(p, responses=list(o)) for p, o in zip(pairs, outs)]
    rates: dict[str, list[float]] = {}
    for r in pass_rates(filled, functions_of(instructions), runner):
        rates.setdefault(r["instruction_id"], []).append(r["pass_rate"])
    rows = []
    for ins in instructions:
        v = rates.get(ins["id"], [])
        rate = sum(v) / len(v) if v else None
        where = ("no_probe" if rate is None else "probe_below_range" if rate < lo
                 else "probe_above_range" if rate > hi else "in_range")
        rows.append({"instruction_id": ins["id"], "instruction": ins["instruction"], "origin": ins.get("origin"),
                     "n": len(v), "pass_rate": rate, "lo": lo, "hi": hi, "kept": where == "in_range", "reason": where})
    return rows


def select_learnable(instructions: Sequence[dict], table: Sequence[dict]) -> tuple[list[dict], Counter]:
    """The instructions the probe kept, and the others counted by reason (``probe_below_range`` ...)."""
    verdict = {r["instruction_id"]: r for r in table}
    kept = [i for i in instructions if verdict[i["id"]]["kept"]]
    return kept, Counter(verdict[i["id"]]["reason"] for i in instructions if not verdict[i["id"]]["kept"])


def plot_probe(table: Sequence[dict], title: str = "probed pass rate per instruction (base model)"):
    """One bar per instruction, the learnable band shaded, kept ones coloured."""
    import matplotlib.pyplot as plt

    rows = sorted((r for r in table if r["pass_rate"] is not None), key=lambda r: r["pass_rate"])
    fig, ax = plt.subplots(figsize=(7, 1.0 + 0.22 * max(1, len(rows))))
    if rows:
        ax.axvspan(rows[0]["lo"], rows[0]["hi"], color="#2f81f7", alpha=0.08, label="learnable range")
    y = list(range(len(rows)))
    ax.barh(y, [r["pass_rate"] for r in rows], color=["#2f81f7" if r["kept"] else "#8c959f" for r in rows])
    ax.set_yticks(y, [f"{r['instruction_id'][:34]} (n={r['n']})" for r in rows], fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("pass rate of sampled responses")
    ax.set_title(title)
    if rows:
        ax.legend(fontsize=7, loc="lower right")
    else:
        ax.text(0.5, 0.5, "no probe (probe_samples: 0): every instruction kept", ha="center", va="center",
                transform=ax.transAxes, color="#57606a")
    fig.tight_layout()
    plt.close(fig)
    return fig


def eval_pairs(instructions: Sequence[dict], queries: Sequence[dict], m: int, seed: int, layout: str,
               split: str) -> list[dict]:
    """Evaluation items: each instruction with ``m`` of ``queries`` (seeded apart from training and probes),
    tagged with the ``split`` they measure (``trained_instructions`` / ``heldout_instructions``)."""
    return [dict(p, split=split) for p in pair(instructions, queries, m, seed + 3, layout)] if m else []


def evaluation_items(trained: Sequence[dict], heldout: Sequence[dict], queries: Sequence[dict],
                     heldout_queries: Sequence[dict], n_trained: int, n_heldout: int, seed: int,
                     layout: str) -> dict[str, list[dict]]:
    """The evaluation's verifier items by split: trained instructions on held-out queries (``n_trained`` each),
    held-out instructions (``n_heldout`` each) on the held-out queries, or on the pool when none are held out."""
    if n_trained and not heldout_queries:
        raise ValueError("trained_queries: the trained instructions can only be scored on queries no training pair "
                         "used; set 05_responses.heldout_query_fraction > 0 (or trained_queries: 0)")
    return {"trained_instructions": eval_pairs(trained, heldout_queries, n_trained, seed, layout, "trained_instructions"),
            "heldout_instructions": [dict(p, split="heldout_instructions")
                                     for p in heldout_pairs(heldout, heldout_queries or queries, n_heldout, seed, layout)]}


def as_probe_items(evals: dict[str, list[dict]], instructions: Sequence[dict]) -> list[dict]:
    """Evaluation items as chat prompts with their verifiers and split (the format a training probe reads)."""
    fns = functions_of(instructions)
    return [{"prompt": [{"role": "user", "content": p["prompt"]}], "instruction_id": p["instruction_id"],
             "verifiers": fns[p["instruction_id"]], "split": split}
            for split, ps in evals.items() for p in ps if fns.get(p["instruction_id"])]


def probe_rows(items: Sequence[dict], outs: Sequence[Sequence[str]], runner, **tags) -> list[dict]:
    """Answers ``outs`` to the probe items (``as_probe_items``), scored by their verifiers with ``runner``
    (the sandbox's ``verdicts``): one row per split, in the items' order, with the mean pass rate over the
    items, its 95% interval and n, plus ``tags`` (the training step, the iteration)."""
    from .stats import mean_ci

    scored = pass_rates([{"instruction_id": p["instruction_id"], "responses": o, "split": p["split"]}
                         for p, o in zip(items, outs)], {p["instruction_id"]: p["verifiers"] for p in items}, runner)
    rows = []
    for split in dict.fromkeys(p["split"] for p in items):
        ci = mean_ci([r["pass_rate"] for r in scored if r["split"] == split])
        rows.append({**tags, "split": split, "pass_rate": ci["mean"], "lo": ci["lo"], "hi": ci["hi"], "n": ci["n"]})
    return rows


def probe_learnable(ctx, instructions: Sequence[dict], queries: Sequence[dict], model) -> tuple[list[dict], list[dict], Counter]:
    """The learnable-range probe of a stage (its params ``probe_samples``, ``learnable_range``, ``layout``, ``seed``
    and sampling fields): ``probe_samples`` sampled answers per instruction from ``model`` (a ``ModelSpec``: the
    policy to train), scored by the instruction's verifiers in the sandbox. Returns (the instructions kept, the
    probe table, the dropped ones counted by reason); with ``probe_samples: 0`` every instruction is kept."""
    from .models import SamplingParams

    p = ctx.p
    if not p.probe_samples:
        return list(instructions), [], Counter()
    ppairs = probe_pairs(instructions, queries, p.probe_samples, p.seed, p.layout)
    outs = ctx.generator(model).generate(response_requests(ppairs), SamplingParams.of(p, n=1), desc="probe")
    with ctx.sandbox() as box:
        table = probe_table(ppairs, outs, instructions, box.verdicts, *p.learnable_range)
    kept, drops = select_learnable(instructions, table)
    return kept, table, drops
