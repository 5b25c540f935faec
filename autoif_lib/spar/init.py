"""Stage 01 of SPaR: the initial actor M0 and refiner R0.

``init: base``: both are the base chat model. ``init: sft`` (the paper): a stronger supervisor answers a
sample of the training prompts (actor SFT data), judges its own answers (refiner judgment data) and
refines the ones it judges failed (refiner refinement data); both roles are then fine-tuned from the base.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Sequence

from ..models import SamplingParams
from . import prompts, roles, voting


def supervisor_data(ctx, prompt_records: Sequence[dict]) -> dict:
    """{"actor": [messages...], "refiner": [messages...], "rejects": {...}} written by the supervisor.

    An answer or a refinement cut off at ``max_new_tokens`` is rejected and counted (``truncated_*``; a chat API
    gives no token count, so nothing is counted there). The judgment target is the critique with one verdict line,
    and a refinement conversation's critique turn is that same text (``prompts.judgment``)."""
    p = ctx.p
    recs = list(prompt_records)
    if p.n_prompts and p.n_prompts < len(recs):
        recs = random.Random(p.seed).sample(recs, p.n_prompts)
    gen = ctx.generator(p.supervisor)
    sp = SamplingParams(temperature=0.7, max_new_tokens=p.max_new_tokens, seed=p.seed)
    answers = [o[0] for o in gen.generate([[{"role": "user", "content": r["prompt"]}] for r in recs], sp,
                                          desc="supervisor answers")]
    cut = gen.hit_limit(answers, sp)
    judgments = [o[0] for o in gen.generate([prompts.judge(r["prompt"], a) for r, a in zip(recs, answers)], sp,
                                            desc="supervisor judgments")]
    actor, refiner, failed = [], [], []
    rejects = {"empty_answer": 0, "truncated_answer": 0, "unparsed_judgment": 0, "unparsed_refinement": 0,
               "truncated_refinement": 0}
    for r, a, j, c in zip(recs, answers, judgments, cut):
        if not a.strip():
            rejects["empty_answer"] += 1
            continue
        if c:
            rejects["truncated_answer"] += 1
            continue
        verdict = voting.parse_verdict(j)
        if verdict is None:
            rejects["unparsed_judgment"] += 1
            continue
        critique = voting.split_critique(j)
        refiner.append({"messages": prompts.judge(r["prompt"], a)
                        + [{"role": "assistant", "content": prompts.judgment(critique, verdict)}]})
        if verdict is True:
            actor.append({"messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": a}]})
        else:
            failed.append((r["prompt"], a, critique))
    fixes = [o[0] for o in gen.generate([prompts.refine(*f) for f in failed], sp, desc="supervisor refinements")]
    for (prompt, a, critique), text, c in zip(failed, fixes, gen.hit_limit(fixes, sp)):
        if c:
            rejects["truncated_refinement"] += 1
            continue
        refined, _ = roles.parse_refined(text)
        if refined is None:
            rejects["unparsed_refinement"] += 1
            continue
        refiner.append({"messages": prompts.refine(prompt, a, critique) + [{"role": "assistant", "content": text}]})
        actor.append({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": refined}]})
    return {"actor": actor, "refiner": refiner, "rejects": rejects}


def initial_models(ctx, base: str, data: dict) -> dict:
    """{"actor", "refiner"} model paths, plus what was trained; separate SFT runs, one folder each."""
    from .. import io, train

    if ctx.p.init == "base":
        return {"actor": base, "refiner": base, "trained": {}}
    out, trained = {}, {}
    for role in ("actor", "refiner"):
        # the refiner's refinement conversations train the critique turn too (as RFT does, `train_turns: all`)
        records = train.sft_records(data[role], "all" if role == "refiner" else "last")
        if not records:  # nothing the supervisor wrote survived: the base model, said so
            out[role], trained[role] = base, False
            continue
        f = io.write_jsonl(Path(ctx.dir) / role / "train.jsonl", records)
        job = dataclasses.replace(train.job_for_stage(ctx, "sft", base, str(f)), output_dir=str(Path(ctx.dir) / role))
        res = train.run_for_stage(ctx, job)
        out[role], trained[role] = res["final_model"], True
    return {**out, "trained": trained}
