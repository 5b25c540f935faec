"""Stages 05-06: pair instructions with queries, sample responses, verify by execution, judge quality.

Pure over records; the sandbox runner and the generator are passed in.

The held-out split, the (instruction, query) pairing, the probe of the learnable range and the evaluation
items are shared with the other methods: ``autoif_lib.instruction_sets``.

* ``pass_rates`` (``autoif_lib.scoring``): every response through every kept function of its
  instruction; pass rate = mean over functions, errors counting as failures;
* ``judge_requests`` / ``attach_scores``: an LLM quality judgment ending in
  ``Score: N``, n judgments averaged; unparseable ones are counted.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from ..judge import parse_score
from . import prompts


def judge_requests(records: Sequence[dict], style: str = "reasoned", lo: int = 1) -> list[list[dict]]:
    """``reasoned``: analysis, then ``Score: N`` (the paper). ``score_only``: the reply is primed with
    ``Score: `` so a small model gives a number at once (its analysis is noise anyway)."""
    reqs = [prompts.quality_judge(r["instruction"], r["query"], r["response"], lo) for r in records]
    if style == "score_only":
        reqs = [m + [{"role": "assistant", "content": "Score: "}] for m in reqs]
    elif style != "reasoned":
        raise ValueError(f"unknown judge style {style!r}; use reasoned or score_only")
    return reqs


def attach_scores(records: Sequence[dict], judgments: Sequence[Sequence[str]], lo: int = 1) -> list[dict]:
    """Mean of each record's parseable scores on the ``lo``-10 scale; a score outside it is unparsed."""
    out = []
    for r, texts in zip(records, judgments):
        scores = [parse_score(t, lo=lo) for t in texts]
        valid = [s for s in scores if s is not None]
        out.append(dict(r, judge_scores=scores, judge_unparsed=len(scores) - len(valid),
                        score=round(sum(valid) / len(valid), 3) if valid else None))
    return out


def keep_by_score(records: Sequence[dict], threshold: float, inclusive: bool = False) -> tuple[list[dict], Counter]:
    kept, rejects = [], Counter()
    for r in records:
        s = r.get("score")
        if s is None:
            rejects["score_unparsed"] += 1
        elif (s >= threshold if inclusive else s > threshold):
            kept.append(r)
        else:
            rejects["score_below_threshold"] += 1
    return kept, rejects


def funnel(pairs: Sequence[dict], scored: Sequence[dict], passed: Sequence[dict], judged_kept: Sequence[dict],
           judge_rejects: Counter, pass_threshold: float, judged: bool, pass_inclusive: bool = False):
    from ..reporting import Funnel

    f = Funnel("responses")
    n = len(scored)
    f.step("pairs × K → responses", n, n, note=f"{len(pairs)} (instruction, query) pairs")
    empty = sum(1 for r in scored if not r["response"].strip())
    f.step(f"responses → pass rate {'>=' if pass_inclusive else '>'} {pass_threshold}", n, len(passed),
           {"below_pass_threshold": n - len(passed) - empty, "empty_response": empty})
    if judged:
        f.step("passed → judge score kept", len(passed), len(judged_kept), dict(judge_rejects))
    return f




def sample_responses(ctx, pairs: Sequence[dict]) -> list[dict]:
    """Stage 05's model calls: ``responses_per_query`` sampled responses per pair, attached as ``responses``."""
    from ..instruction_sets import response_requests
    from ..models import SamplingParams

    p = ctx.p
    outs = ctx.generator(p.supervisor).generate(response_requests(pairs), SamplingParams.of(p, n=p.responses_per_query),
                                                desc="responses")
    return [dict(q, responses=o) for q, o in zip(pairs, outs)]


def judge(ctx, passed: Sequence[dict]) -> tuple[list[dict], list[dict], dict]:
    """Stage 06's quality judge over the responses that passed the verifiers: (passed with their scores, kept,
    rejects by reason). ``run_judge: false`` (or nothing passed): every passing response is kept, unscored."""
    from ..models import SamplingParams

    p = ctx.p
    if not (p.run_judge and passed):
        return list(passed), list(passed), {}
    sp = SamplingParams(n=p.n_judgments, temperature=p.judge_temperature, max_new_tokens=p.judge_max_new_tokens,
                        seed=p.seed)
    judgments = ctx.generator(p.supervisor).generate(judge_requests(passed, p.judge_style, p.score_min), sp, desc="judge")
    print(judgments[0][0][-300:])
    scored = attach_scores(passed, judgments, p.score_min)
    kept, rejects = keep_by_score(scored, p.score_threshold, p.score_inclusive)
    return scored, kept, rejects
