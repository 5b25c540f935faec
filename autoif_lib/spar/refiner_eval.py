"""SPaR's refiner evaluation (paper §3.3): judging on LLMBar (Table 2) and refinement accuracy (Table 3).

**Table 2: judging on LLMBar.** LLMBar (Zeng et al. 2023, github.com/princeton-nlp/LLMBar) is pairwise: an
instruction, two outputs, and ``label`` (1 or 2) naming the one that follows it. SPaR turns it pointwise: each
output becomes a (prompt, response) item whose gold label is "follows" for the better output and "does not
follow" for the other, and the refiner answers Yes/No for each item on its own. The layout read here is the
published one, ``Dataset/LLMBar/Natural/dataset.json`` and ``Dataset/LLMBar/Adversarial/{Neighbor, GPTInst,
GPTOut, Manual}/dataset.json``, each a JSON list of ``{input, output_1, output_2, label}``.

The paper's columns are Natural, Adversarial and Overall, each Acc and F1 (positive class: follows).
*Adversarial* is the unweighted average over the adversarial subsets (the note calls it "Adversarial-average";
LLMBar's own paper reports it that way), not one accuracy over all adversarial items pooled: the subsets
differ in size (134/92/47/46 pairs) and pooling would weight Neighbor three times as much as Manual.
*Overall* is the unweighted average over all five subsets (Natural + four adversarial). That one is [INF]: it
is what the table's numbers say. For every row with both columns, ``(Natural + 4 * Adversarial) / 5``
reproduces Overall to the rounding (GPT-4o-mini (74.5 + 4 * 65.7) / 5 = 67.46 -> 67.4; LLaMA3-8B 53.76 -> 53.8;
SELF 63.66 -> 63.7; GLM-4 F1 (76.5 + 4 * 66.7) / 5 = 68.66 -> 68.6), while an item-weighted overall would sit
near 67.8 for GPT-4o-mini. The pooled numbers are reported too, under ``pooled``, so the two can be compared.

``autoif_lib/data/llmbar_sample/`` is an in-house sample in the published layout (our own instructions and
outputs, 6 natural pairs and 7 adversarial ones over Neighbor/GPTInst/GPTOut): a smoke test for the code
path. Numbers measured on it are not Table 2; point ``load_llmbar`` at a checkout of the real data for that.

**Table 3: refinement accuracy.** The paper gives each refiner 200 held-out refinement tasks, a prompt and a
response that does not follow it, and asks whether the refinement follows. It has two graders: GPT-4o
(Acc-GPT) and SPaR-8B-RFT-iter3 itself (Acc-SPaR). The paper flags the gap between them (90.5 vs 79.0 for
RFT-iter3) as possible self-evaluation bias. Here the held-out prompts of ``00_prompts`` that carry sandboxed
verifiers (``source: compose``) give labels no model gives: a task is (prompt, one of the actor's responses
that fails the verifiers). *Acc-verifier* (the analogue of Acc-GPT) asks whether the refinement passes every
verifier of the prompt. *Acc-self* (the analogue of Acc-SPaR) asks whether the refiner's own majority vote
says it follows. The tasks are built once, from one actor (M0), so every refiner R_t refines the same tasks.

Everything that scores is a pure function over records; the model and sandbox calls sit in
``llmbar_judging``, ``build_refinement_tasks`` and ``run_refinement_eval``, which take the objects the
20_evaluate stage already has: a ``roles.Judge`` (or any ``judge_many``), a ``roles.Refiner``, a generator and
the sandbox's ``box.verdicts``.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any, Callable, Sequence

from ..stats import binomial_se, wilson
from .evaluation import _binary_metrics

__all__ = [
    "LLMBAR_SAMPLE",
    "ADVERSARIAL_SUBSETS",
    "load_llmbar",
    "pointwise",
    "judge_labels",
    "llmbar_metrics",
    "llmbar_judging",
    "passes_verifiers",
    "refinement_tasks",
    "build_refinement_tasks",
    "refinement_accuracy",
    "run_refinement_eval",
    "row_columns",
]

LLMBAR_SAMPLE = Path(__file__).resolve().parent.parent / "data" / "llmbar_sample"
ADVERSARIAL_SUBSETS = ("Neighbor", "GPTInst", "GPTOut", "Manual")  # LLMBar's order; others follow, sorted

JudgeLike = Any  # an object with ``judge_many(pairs) -> [{"label": bool | None, ...}]``, or that callable itself


# -- LLMBar ------------------------------------------------------------------------------------------


def _llmbar_root(folder: Path) -> Path:
    """The folder holding ``Natural/`` and ``Adversarial/``: the given one, or its ``LLMBar/`` or
    ``Dataset/LLMBar/`` (so a checkout of the repository itself works too)."""
    for cand in (folder, folder / "LLMBar", folder / "Dataset" / "LLMBar"):
        if (cand / "Natural").is_dir() or (cand / "Adversarial").is_dir():
            return cand
    raise FileNotFoundError(f"{folder}: no LLMBar layout (expected Natural/dataset.json and/or "
                            f"Adversarial/<subset>/dataset.json, here or under LLMBar/ or Dataset/LLMBar/)")


def _subset_files(root: Path) -> list[tuple[str, Path]]:
    out = []
    if (root / "Natural" / "dataset.json").is_file():
        out.append(("Natural", root / "Natural" / "dataset.json"))
    adv = root / "Adversarial"
    if adv.is_dir():
        names = [d.name for d in adv.iterdir() if (d / "dataset.json").is_file()]
        rank = {n: i for i, n in enumerate(ADVERSARIAL_SUBSETS)}
        for name in sorted(names, key=lambda n: (rank.get(n, len(rank)), n)):
            out.append((f"Adversarial/{name}", adv / name / "dataset.json"))
    if not out:
        raise FileNotFoundError(f"{root}: no dataset.json under Natural/ or Adversarial/<subset>/")
    return out


def _subset_of_file(path: Path) -> str:
    """The subset a lone ``dataset.json`` belongs to, from where it sits in the published layout."""
    if path.parent.name == "Natural":
        return "Natural"
    if path.parent.parent.name == "Adversarial":
        return f"Adversarial/{path.parent.name}"
    raise ValueError(f"{path}: cannot tell its LLMBar subset from the path (not under Natural/ or "
                     f"Adversarial/<subset>/); pass subset='Natural' or subset='Adversarial/<name>'")


def _group(subset: str) -> str:
    return "natural" if subset == "Natural" else "adversarial"


def pointwise(pairs: Sequence[Any], subset: str, where: str = "<records>") -> list[dict]:
    """LLMBar pairs -> pointwise items, two per pair (output_1 first): ``{prompt, response, label, subset,
    group, family, pair_id, output}``; ``label`` is True for the better output. ``family`` repeats the subset
    so ``evaluation.judging_accuracy``'s per-family breakdown works on these items too. A malformed record
    is a ValueError naming ``where`` and its index: a silently skipped pair would shift every accuracy."""
    if not isinstance(pairs, list):
        raise ValueError(f"{where}: expected a JSON list of LLMBar records, got {type(pairs).__name__}")
    if subset != "Natural" and not subset.startswith("Adversarial/"):
        raise ValueError(f"{where}: subset {subset!r} is neither 'Natural' nor 'Adversarial/<name>'")
    items = []
    for i, rec in enumerate(pairs):
        if not isinstance(rec, dict):
            raise ValueError(f"{where}: record {i}: expected an object, got {type(rec).__name__}")
        missing = [k for k in ("input", "output_1", "output_2", "label") if k not in rec]
        if missing:
            raise ValueError(f"{where}: record {i}: missing field(s) {', '.join(missing)}")
        for k in ("input", "output_1", "output_2"):
            if not isinstance(rec[k], str):
                raise ValueError(f"{where}: record {i}: {k!r} must be a string, got {type(rec[k]).__name__}")
        if not rec["input"].strip():
            raise ValueError(f"{where}: record {i}: empty 'input'")
        label = rec["label"]
        if isinstance(label, bool) or label not in (1, 2):  # bool is an int: True would read as 1
            raise ValueError(f"{where}: record {i}: 'label' must be 1 or 2, got {label!r}")
        for k in (1, 2):
            items.append({"prompt": rec["input"], "response": rec[f"output_{k}"], "label": k == label,
                          "subset": subset, "group": _group(subset), "family": subset,
                          "pair_id": f"{subset}/{i}", "output": k})
    return items


def load_llmbar(source: str | Path | None = None, subset: str | None = None) -> list[dict]:
    """LLMBar as pointwise items (see ``pointwise``), subsets in LLMBar's order (Natural, then Neighbor,
    GPTInst, GPTOut, Manual).

    ``source``: a folder in the published layout (``.../Dataset/LLMBar``, or a checkout of the repository),
    or a single ``dataset.json`` (its subset read from its path, or given as ``subset``). None: the shipped
    in-house sample (``LLMBAR_SAMPLE``), a smoke test and not the benchmark.
    """
    path = Path(source) if source is not None else LLMBAR_SAMPLE
    if path.is_file():
        files = [(subset or _subset_of_file(path), path)]
    elif path.is_dir():
        files = _subset_files(_llmbar_root(path))
        if subset is not None:
            files = [(s, f) for s, f in files if s == subset]
            if not files:
                raise ValueError(f"{path}: no subset {subset!r}")
    else:
        raise FileNotFoundError(f"{path}: no such file or folder (LLMBar is read from a local copy of "
                                f"github.com/princeton-nlp/LLMBar's Dataset/LLMBar)")
    items: list[dict] = []
    for name, f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{f}: not valid JSON ({e})") from e
        items.extend(pointwise(data, name, where=str(f)))
    return items


# -- judging metrics (Table 2) -------------------------------------------------------------------------


def judge_labels(judge: JudgeLike, items: Sequence[dict]) -> list[bool | None]:
    """The judge's verdict per item: True (follows), False, None (dropped: a tied or invalid vote).

    ``judge`` is a ``roles.Judge`` (its majority vote over N judgments, as in ``evaluation.judging_accuracy``)
    or any callable ``judge_many(pairs) -> [{"label": ...}]``, e.g. a fake in tests."""
    fn: Callable = judge.judge_many if hasattr(judge, "judge_many") else judge
    recs = list(fn([(it["prompt"], it["response"]) for it in items]))
    if len(recs) != len(items):
        raise ValueError(f"judge returned {len(recs)} verdicts for {len(items)} items")
    return [_verdict(r.get("label") if isinstance(r, dict) else r) for r in recs]


def _verdict(v) -> bool | None:
    """True, False or None; a numpy bool becomes a bool (``_binary_metrics`` tests ``p is True``, which a
    numpy True fails). Anything else (1, "Yes") is an error, not a guess."""
    if v is None or isinstance(v, bool):
        return v
    if getattr(v, "dtype", None) is not None and str(v.dtype) == "bool":
        return bool(v)
    raise ValueError(f"verdict {v!r} is not True, False or None")


def _mean_of(metrics: Sequence[dict]) -> dict:
    """The unweighted average of per-subset ``_binary_metrics``: acc, f1, and the s.e. of the average acc
    (subsets independent: sqrt(sum se_i^2) / k). The two items of a pair share an instruction and may be
    correlated; the per-subset s.e. (``_binary_metrics``) treats them as independent, so read it as rough."""
    ms = [m for m in metrics if m["n"]]
    if not ms:
        return {"acc": None, "f1": None, "acc_se": None, "n": 0, "dropped": 0, "subsets": 0}
    k = len(ms)
    return {"acc": round(sum(m["acc"] for m in ms) / k, 4), "f1": round(sum(m["f1"] for m in ms) / k, 4),
            "acc_se": round(math.sqrt(sum(m["acc_se"] ** 2 for m in ms)) / k, 4),
            "n": sum(m["n"] for m in ms), "dropped": sum(m["dropped"] for m in ms), "subsets": k}


def llmbar_metrics(items: Sequence[dict], verdicts: Sequence[bool | None]) -> dict:
    """Table 2's columns from pointwise items and the judge's verdicts (None: dropped, counted wrong).

    ``{"natural", "adversarial", "overall", "per_subset", "n", "dropped"}``. ``natural`` is
    ``_binary_metrics`` on the Natural items. ``adversarial`` is the average over the adversarial subsets
    present, and ``overall`` the average over every subset present (see the module docstring). Both carry
    ``pooled``: the same metrics over their items pooled, for comparison only.
    """
    if len(verdicts) != len(items):
        raise ValueError(f"{len(verdicts)} verdicts for {len(items)} items")
    verdicts = [_verdict(v) for v in verdicts]
    by_subset: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_subset.setdefault(it["subset"], []).append(i)
    rank = {n: i for i, n in enumerate(("Natural", *(f"Adversarial/{s}" for s in ADVERSARIAL_SUBSETS)))}
    order = sorted(by_subset, key=lambda s: (rank.get(s, len(rank)), s))

    def metrics(ix: Sequence[int]) -> dict:  # reuse evaluation's definition: one Acc/F1 for the whole project
        return _binary_metrics([verdicts[i] for i in ix], [bool(items[i]["label"]) for i in ix])

    per = {s: metrics(by_subset[s]) for s in order}
    adv = [s for s in order if _group(s) == "adversarial"]
    nat_ix = by_subset.get("Natural", [])
    adv_ix = [i for s in adv for i in by_subset[s]]
    return {
        "natural": per.get("Natural") or _binary_metrics([], []),
        "adversarial": {**_mean_of([per[s] for s in adv]), "pooled": metrics(adv_ix)},
        "overall": {**_mean_of(list(per.values())), "pooled": metrics(nat_ix + adv_ix)},
        "per_subset": per,
        "n": len(items),
        "dropped": sum(v is None for v in verdicts),
    }


def llmbar_judging(judge: JudgeLike, items: Sequence[dict], single_judge: JudgeLike | None = None) -> dict:
    """The refiner judges every LLMBar item: ``{"majority": llmbar_metrics, "single": ... | None, "calls"}``.

    ``judge``: the refiner's majority vote (``evaluation.llm_judge(ctx, refiner)``); ``single_judge``: one
    judgment, no resampling (``llm_judge(ctx, refiner, n=1, max_rounds=1)``), as ``judging_accuracy`` reports.
    """
    out = {"majority": llmbar_metrics(items, judge_labels(judge, items)), "single": None,
           "calls": {"majority": dict(getattr(judge, "calls", {}))}}
    if single_judge is not None:
        out["single"] = llmbar_metrics(items, judge_labels(single_judge, items))
        out["calls"]["single"] = dict(getattr(single_judge, "calls", {}))
    return out


# -- refinement accuracy (Table 3) ---------------------------------------------------------------------


def passes_verifiers(records: Sequence[dict], texts: Sequence[str | None], runner) -> list[bool | None]:
    """Whether each text passes every verifier of its record's prompt (one sandbox batch for all).

    ``records[i]["verifiers"]``: the prompt's verifier sources (``00_prompts``, ``source: compose``).
    None when the record has no verifiers (nothing to say); False for a missing text (no refinement was
    parsed) without running anything. A verifier that errors or times out is a fail, as in ``roles.Judge``.
    ``runner``: the sandbox's ``box.verdicts``."""
    from ..scoring import completion_pass_rates

    if len(records) != len(texts):
        raise ValueError(f"{len(texts)} texts for {len(records)} records")
    out: list[bool | None] = [None if not r.get("verifiers") else False for r in records]
    todo = [i for i, (r, t) in enumerate(zip(records, texts)) if r.get("verifiers") and t is not None]
    if todo:
        rates = completion_pass_rates([texts[i] for i in todo], [list(records[i]["verifiers"]) for i in todo],
                                      runner)
        for i, rate in zip(todo, rates):
            out[i] = rate == 1.0  # pass rate 1.0 <=> every verifier of the prompt returned a real True
    return out


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def refinement_tasks(heldout_prompts: Sequence[dict], responses: Sequence[str | Sequence[str]],
                     verdicts: Sequence[bool | None | Sequence[bool | None]], n: int = 200,
                     seed: int = 0) -> list[dict]:
    """Refinement tasks: (held-out prompt, one response that fails its verifiers), at most ``n`` (0: all).

    ``responses[i]`` (a string or a list of K strings) answers ``heldout_prompts[i]``; ``verdicts[i]`` has the
    same shape, from ``passes_verifiers``. Only a verdict of False makes a candidate (None: the prompt had
    no verifiers, nothing is known); an empty response is left out, as ``selfplay.pick_roots`` leaves it out
    of the search, since "refining" nothing is a different task. One failing response per prompt is drawn
    (seeded), as SPaR picks one negative per prompt as a tree root; then ``n`` prompts are drawn (seeded),
    kept in held-out order. Task: ``{task_id, prompt_id, prompt, response, k, constraints, verifiers}``.
    """
    if not (len(heldout_prompts) == len(responses) == len(verdicts)):
        raise ValueError(f"{len(heldout_prompts)} prompts, {len(responses)} response lists, "
                         f"{len(verdicts)} verdict lists: they must align")
    rng = random.Random(seed)
    cands = []
    for i, (rec, rs, vs) in enumerate(zip(heldout_prompts, responses, verdicts)):
        rs, vs = _as_list(rs), _as_list(vs)
        if len(rs) != len(vs):
            raise ValueError(f"held-out prompt {i}: {len(rs)} responses but {len(vs)} verdicts")
        if not rec.get("verifiers"):
            continue
        failing = [k for k, (r, v) in enumerate(zip(rs, vs)) if v is False and isinstance(r, str) and r.strip()]
        if not failing:
            continue
        k = rng.choice(failing)
        pid = str(rec.get("id", i))
        cands.append({"task_id": pid, "prompt_id": pid, "prompt": rec["prompt"], "response": rs[k], "k": k,
                      "constraints": list(rec.get("constraints") or []), "verifiers": list(rec["verifiers"])})
    if n and n < len(cands):
        keep = set(rng.sample(range(len(cands)), n))
        cands = [c for j, c in enumerate(cands) if j in keep]
    return cands


def build_refinement_tasks(actor, heldout_prompts: Sequence[dict], runner, n: int = 200, k: int = 5,
                           seed: int = 0, temperature: float = 0.9, top_p: float = 0.9,
                           max_new_tokens: int = 2048) -> tuple[list[dict], dict]:
    """(tasks, counts): the actor (a ``Generator``; M0, so every refiner gets the same tasks) answers each
    held-out prompt that has verifiers K times with SPaR's sampling settings (0.9 / 0.9), the sandbox checks
    every answer, and ``refinement_tasks`` picks the tasks. ``counts`` is the funnel, for the report."""
    from ..models import SamplingParams

    with_v = [r for r in heldout_prompts if r.get("verifiers")]
    counts = {"heldout_prompts": len(heldout_prompts), "with_verifiers": len(with_v)}
    if not with_v:  # evolved prompts carry no verifiers: Table 3 needs source: compose (or a file with them)
        return [], {**counts, "responses": 0, "failing": 0, "prompts_with_failure": 0, "tasks": 0}
    sp = SamplingParams(n=k, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed)
    outs = actor.generate([[{"role": "user", "content": r["prompt"]}] for r in with_v], sp,
                          desc="held-out responses")
    flat_recs = [r for r, o in zip(with_v, outs) for _ in o]
    flat_verdicts = iter(passes_verifiers(flat_recs, [t for o in outs for t in o], runner))
    verdicts = [[next(flat_verdicts) for _ in o] for o in outs]
    tasks = refinement_tasks(with_v, [list(o) for o in outs], verdicts, n=n, seed=seed)
    counts.update({"responses": len(flat_recs), "failing": sum(v is False for vs in verdicts for v in vs),
                   "prompts_with_failure": sum(any(v is False for v in vs) for vs in verdicts),
                   "tasks": len(tasks)})
    return tasks, counts


def _proportion(k: int, n: int) -> dict:
    """k of n with the binomial s.e. sqrt(p(1-p)/n) and the 95% Wilson interval (``stats.wilson``)."""
    if not n:
        return {"acc": None, "k": 0, "n": 0, "se": None, "ci95": None}
    p = k / n
    lo, hi = wilson(k, n)
    return {"acc": round(p, 4), "k": k, "n": n, "se": round(binomial_se(p, n), 4),
            "ci95": [round(lo, 4), round(hi, 4)]}


def _same_text(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.strip() == b.strip()


def refinement_accuracy(tasks: Sequence[dict], refined: Sequence[str | None],
                        verifier_verdicts: Sequence[bool | None],
                        judge_verdicts: Sequence[bool | None] | None = None) -> dict:
    """Table 3 from per-task results: ``acc_verifier`` (the refinement passes every verifier of the prompt)
    and ``acc_self`` (the refiner's own majority vote says it follows; None without ``judge_verdicts``),
    each ``{acc, k, n, se, ci95}`` over all tasks.

    What counts as a failure, and why:
    * no refinement (``refined[i]`` None: nothing parseable between the markers) fails both;
    * a refinement identical to the task's response (whitespace aside) fails Acc-verifier whatever verdict
      is passed: the task was made from that very text failing the verifiers, so a pass now could only be a
      flaky verifier. Acc-self keeps the judge's verdict (the self-evaluation bias the paper flags is what it
      measures); ``unchanged`` and ``self_accepts_unchanged`` show how often it matters;
    * a dropped judge verdict (None: tied or invalid votes) is not an acceptance;
    * a missing verifier verdict (None) is not a pass (``verifier_missing`` counts them).
    ``self_accepts_failing``: refinements the refiner accepts but the verifiers reject, the gap behind the
    paper's 90.5 vs 79.0; ``agreement``: the share of tasks where the two graders agree.
    """
    n = len(tasks)
    if len(refined) != n or len(verifier_verdicts) != n or (judge_verdicts is not None and len(judge_verdicts) != n):
        raise ValueError(f"{n} tasks but {len(refined)} refinements, {len(verifier_verdicts)} verifier verdicts"
                         + ("" if judge_verdicts is None else f", {len(judge_verdicts)} judge verdicts"))
    verifier_verdicts = [_verdict(v) for v in verifier_verdicts]
    judge_verdicts = None if judge_verdicts is None else [_verdict(j) for j in judge_verdicts]
    unchanged = [_same_text(r, t["response"]) for t, r in zip(tasks, refined)]
    v_ok = [r is not None and not same and v is True
            for r, same, v in zip(refined, unchanged, verifier_verdicts)]
    out = {
        "n": n,
        "acc_verifier": _proportion(sum(v_ok), n),
        "acc_self": None,
        "unparsed": sum(r is None for r in refined),
        "unchanged": sum(unchanged),
        "verifier_missing": sum(r is not None and v is None for r, v in zip(refined, verifier_verdicts)),
    }
    if judge_verdicts is not None:
        s_ok = [r is not None and j is True for r, j in zip(refined, judge_verdicts)]
        out["acc_self"] = _proportion(sum(s_ok), n)
        out["self_dropped"] = sum(r is not None and j is None for r, j in zip(refined, judge_verdicts))
        out["self_accepts_unchanged"] = sum(s and u for s, u in zip(s_ok, unchanged))
        out["self_accepts_failing"] = sum(s and not v for s, v in zip(s_ok, v_ok))
        out["agreement"] = round(sum(s == v for s, v in zip(s_ok, v_ok)) / n, 4) if n else None
    return out


def run_refinement_eval(tasks: Sequence[dict], refiner, judge: JudgeLike, runner,
                        critic: JudgeLike | None = None) -> dict:
    """One refiner on the tasks: critique, refine once, grade twice. ``{"metrics", "records", "calls"}``.

    * ``refiner``: a ``roles.Refiner`` (R_t), or any ``refine(requests, n)`` with the search's interface.
    * ``judge``: R_t's own LLM vote (``evaluation.llm_judge(ctx, refiner_path)``), the Acc-self grader. It must
      not consult the verifiers (mode ``llm``): Acc-self is the model's word alone.
    * ``critic``: what writes the critique the refinement acts on. Default: ``judge`` itself, as in SPaR's
      search and inference-time search (the refiner judges, then refines given its own judgment). A
      ``roles.Judge("verifiers", ...)`` would hand the refiner the failed constraints instead (an oracle).
    * ``runner``: the sandbox's ``box.verdicts``, the Acc-verifier grader.
    One refinement per task (the table grades a single refinement, not a search).
    """
    if not tasks:
        return {"metrics": refinement_accuracy([], [], [], []), "records": [], "calls": {}}
    critic = judge if critic is None else critic
    cfn: Callable = critic.judge_many if hasattr(critic, "judge_many") else critic
    crit = list(cfn([(t["prompt"], t["response"]) for t in tasks]))
    outs = refiner([(t["prompt"], t["response"], (c.get("critique") or "")) for t, c in zip(tasks, crit)], 1)
    refined = [o[0][0] if o else None for o in outs]
    cots = [o[0][1] if o else None for o in outs]
    v = passes_verifiers(tasks, refined, runner)
    todo = [i for i, r in enumerate(refined) if r is not None]  # nothing to judge without a refinement
    judged = judge_labels(judge, [{"prompt": tasks[i]["prompt"], "response": refined[i]} for i in todo]) if todo else []
    j: list[bool | None] = [None] * len(tasks)
    for i, lab in zip(todo, judged):
        j[i] = lab
    records = [{"task_id": t["task_id"], "prompt": t["prompt"], "response": t["response"],
                "critique": c.get("critique"), "critic_label": c.get("label"), "refined": r, "refine_cot": cot,
                "unchanged": _same_text(r, t["response"]), "verifier_pass": vv, "self_accept": jj}
               for t, c, r, cot, vv, jj in zip(tasks, crit, refined, cots, v, j)]
    calls = {"refiner": dict(getattr(refiner, "calls", {})), "judge": dict(getattr(judge, "calls", {}))}
    return {"metrics": refinement_accuracy(tasks, refined, v, j), "records": records, "calls": calls}


def row_columns(llmbar: dict | None = None, refinement: dict | None = None) -> dict:
    """Flat columns for ``evaluation.evaluate_all``'s per-iteration row (fractions, like its judge_* columns):
    ``llmbar``: an ``llmbar_metrics`` result; ``refinement``: a ``refinement_accuracy`` result."""
    row: dict = {}
    if llmbar is not None:
        for col in ("natural", "adversarial", "overall"):
            row[f"llmbar_{col}_acc"] = llmbar[col]["acc"]
            row[f"llmbar_{col}_f1"] = llmbar[col]["f1"]
    if refinement is not None:
        row["refine_n"] = refinement["n"]
        row["refine_acc_verifier"] = refinement["acc_verifier"]["acc"]
        row["refine_acc_verifier_se"] = refinement["acc_verifier"]["se"]
        if refinement.get("acc_self"):
            row["refine_acc_self"] = refinement["acc_self"]["acc"]
            row["refine_acc_self_se"] = refinement["acc_self"]["se"]
    return row
