"""Verifier scoring, in one place: how a response's pass rate is computed and what it decides.

Used by AutoIF's response filtering (stage 06), the online-DPO reward and loop, and the
held-out evaluation, so all three agree on the rule: a response's pass rate is the share
of its instruction's verification functions that return ``True`` on it in the sandbox;
any other verdict (``False``, exception, timeout, non-bool) counts as a failure, and a
response with no functions has pass rate 0.

``runner(functions, inputs) -> verdict matrix`` is ``Sandbox.verdicts``; everything here
is pure over records.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from typing import Callable, Sequence

from .io import stable_hash


def pass_rates(pairs: Sequence[dict], functions_by_instruction: dict[str, list[str]], runner) -> list[dict]:
    """One record per response (``pairs[i]["responses"]``) with its pass rate and per-function statuses."""
    jobs, where = [], []
    by_instruction: dict[str, list[tuple[int, int]]] = {}
    for pi, p in enumerate(pairs):
        for ri, _ in enumerate(p["responses"]):
            by_instruction.setdefault(p["instruction_id"], []).append((pi, ri))
    for iid, slots in by_instruction.items():
        inputs = [pairs[pi]["responses"][ri] for pi, ri in slots]
        for fi, src in enumerate(functions_by_instruction.get(iid, [])):
            jobs.append((src, inputs))
            where.append((iid, fi))
    statuses: dict[tuple[int, int], list[str]] = {}
    if jobs:
        verdicts = runner([s for s, _ in jobs], [i for _, i in jobs])
        for (iid, _), row in zip(where, verdicts):
            for (pi, ri), v in zip(by_instruction[iid], row):
                statuses.setdefault((pi, ri), []).append(v.status)
    out = []
    for pi, p in enumerate(pairs):
        for ri, text in enumerate(p["responses"]):
            st = statuses.get((pi, ri), [])
            out.append({k: v for k, v in p.items() if k != "responses"} | {
                "response_idx": ri, "response": text, "pass_rate": round(rate_of(st), 4),
                "n_functions": len(st), "statuses": dict(Counter(st))})
    return out


def functions_of(instructions: Sequence[dict]) -> dict[str, list[str]]:
    """Each instruction's verification function sources by id (the input ``pass_rates`` takes)."""
    return {i["id"]: [f["src"] for f in i.get("functions", [])] for i in instructions}


def rate_of(statuses: Sequence[str]) -> float:
    return sum(s == "pass" for s in statuses) / len(statuses) if statuses else 0.0


def completion_pass_rates(texts: Sequence[str], functions: Sequence[Sequence[str]], runner) -> list[float]:
    """Pass rate of each text under its own list of functions (one sandbox batch for all)."""
    pairs = [{"instruction_id": str(k), "responses": [t]} for k, t in enumerate(texts)]
    scored = pass_rates(pairs, {str(k): list(f or []) for k, f in enumerate(functions)}, runner)
    return [r["pass_rate"] for r in scored]


def verifier_reward(runner: Callable, mode: str = "pass_rate") -> Callable:
    """A TRL reward function ``(prompts, completions, verifiers, **kw) -> list[float]``: each completion's pass
    rate over its prompt's verifiers (``mode="pass_rate"``), or 1.0 only when every verifier passes
    (``"all_pass"``). Errors, timeouts and non-bool verdicts fail, as everywhere (``pass_rates``)."""
    if mode not in ("pass_rate", "all_pass"):
        raise ValueError(f"verifier reward mode: pass_rate or all_pass, got {mode!r}")

    def reward(prompts=None, completions=None, verifiers=None, **kwargs) -> list[float]:
        texts = [c[-1]["content"] if isinstance(c, list) else str(c) for c in completions]
        rates = completion_pass_rates(texts, verifiers, runner)
        return rates if mode == "pass_rate" else [float(r == 1.0) for r in rates]

    reward.__name__ = f"verifier_{mode}"
    return reward


def keep_by_pass_rate(records: Sequence[dict], threshold: float, inclusive: bool = False) -> list[dict]:
    return [r for r in records if (r["pass_rate"] >= threshold if inclusive else r["pass_rate"] > threshold)]


def _unique(rs: Sequence[dict]) -> list[dict]:
    seen, out = set(), []
    for r in rs:
        if r["response"] not in seen and r["response"].strip():
            seen.add(r["response"])
            out.append(r)
    return out


def passes(rate: float, threshold: float, inclusive: bool = False) -> bool:
    """The chosen side of a pair: pass rate above ``threshold`` (paper), or at least it (released code)."""
    return rate >= threshold if inclusive else rate > threshold


def preference_pairs(scored: Sequence[dict], chosen_min: float = 0.5, rejected_max: float = 0.0, *,
                     chosen_inclusive: bool = False, max_chosen: int = 2, max_rejected: int = 2, max_pairs: int = 0,
                     seed: int = 0) -> list[dict]:
    """Pairs of responses to the same prompt separated by their measured pass rates.

    chosen: pass rate > ``chosen_min`` (>= with ``chosen_inclusive``); rejected: pass rate <= ``rejected_max``.
    Per prompt, up to ``max_chosen`` distinct chosen and ``max_rejected`` distinct rejected responses are
    sampled (seeded) and every combination is a pair, at most 2 x 2 = 4 as in the released code;
    ``max_pairs`` > 0 caps that further. A prompt without both sides gives no pair: no tie ever trains.
    The recorded pass rates are the measured ones.
    """
    by_prompt: dict[str, list[dict]] = {}
    for r in scored:
        by_prompt.setdefault(r["prompt"], []).append(r)
    pairs = []
    for prompt, group in by_prompt.items():
        good = _unique([r for r in group if passes(r["pass_rate"], chosen_min, chosen_inclusive)])
        bad = _unique([r for r in group if r["pass_rate"] <= rejected_max])
        if not good or not bad:
            continue
        rng = random.Random(int(stable_hash([seed, prompt], 8), 16))
        good = rng.sample(good, min(max_chosen, len(good)))
        bad = rng.sample(bad, min(max_rejected, len(bad)))
        combos = [(g, b) for g, b in itertools.product(good, bad) if g["response"] != b["response"]]
        if max_pairs:
            combos = combos[:max_pairs]
        for g, b in combos:
            pairs.append({"prompt": prompt, "chosen": g["response"], "rejected": b["response"],
                          "chosen_pass_rate": g["pass_rate"], "rejected_pass_rate": b["pass_rate"],
                          "instruction_id": g["instruction_id"], "level": r_level(g)})
    return pairs


def r_level(record: dict) -> str:
    return record.get("level", "query")


def summarize(rates: Sequence[float]) -> dict:
    """Mean pass rate with its standard error, and the share of responses passing every function."""
    n = len(rates)
    if not n:
        return {"n": 0, "mean_pass_rate": None, "mean_pass_rate_se": None, "full_pass": None}
    mean = sum(rates) / n
    var = sum((r - mean) ** 2 for r in rates) / (n - 1) if n > 1 else 0.0
    return {"n": n, "mean_pass_rate": round(mean, 4), "mean_pass_rate_se": round(math.sqrt(var / n), 4),
            "full_pass": round(sum(r == 1.0 for r in rates) / n, 4)}
