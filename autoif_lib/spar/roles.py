"""The actor and the refiner as batched callables: where SPaR's model calls and verifier runs happen.

``Judge`` turns (prompt, response) pairs into votes: the refiner's N sampled judgments with a majority
vote (``judge: llm``), the prompt's sandboxed verifiers (``judge: verifiers``: success means every
constraint passes), or both at once (``both``: the LLM's majority Yes *and* every verifier). Every judgment of one response text is cached for the life of the object, so
a search never judges the same text twice. ``Refiner`` rewrites a response given its critique. Both
count their model calls, which the search and the evaluation report.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

from .. import io
from ..models import Generator, SamplingParams
from . import prompts, voting

_START, _END = re.escape(prompts.START), re.escape(prompts.END)
_PAIR_RE = re.compile(_START + r"(.*?)" + _END, re.S)


def models_before(ctx) -> dict:
    """{"actor": path, "refiner": path} this iteration starts from (M_{t-1}, R_{t-1})."""
    from .pipeline import models_source

    return io.read_json(ctx.input(models_source(ctx.p.iteration), "models.json"))


def parse_refined(text: str) -> tuple[str | None, str]:
    """(refined response or None, the reflection before it). The response sits between the markers: the last
    complete ``[[start]]...[[end]]`` pair with a body (the refine prompt names the markers, so a reflection may
    mention them before the answer), else a last ``[[start]]`` whose ``[[end]]`` was cut off."""
    text = text or ""
    pairs = [m for m in _PAIR_RE.finditer(text) if m.group(1).strip()]
    if pairs:
        m = pairs[-1]
        return m.group(1).strip(), text[: m.start()].strip()
    start = text.rfind(prompts.START)
    if start < 0:
        return None, text.strip()
    body = text[start + len(prompts.START):].split(prompts.END, 1)[0].strip()
    return (body or None), text[:start].strip()


def verifier_critique(failed: Sequence[str]) -> str:
    """A critique written from the verifiers' verdicts, for the refiner to act on."""
    if not failed:
        return "Step-by-step verification: every constraint is met."
    lines = "\n".join(f"- not met: {c}" for c in failed)
    return f"Step-by-step verification:\n{lines}"


def verifier_score(rate: float | None) -> float | None:
    """The verifiers' verdict on the search's value scale: 1.0 when every constraint passes, else half the pass
    rate (below 0.5, so never a success; a response that passes more constraints still ranks higher)."""
    if rate is None:
        return None
    return 1.0 if rate >= 1.0 else 0.5 * rate


class Judge:
    def __init__(self, mode: str, generator: Generator | None, n: int, temperature: float, max_new_tokens: int,
                 max_rounds: int, seed: int, prefill: str = "", verifiers: dict | None = None, runner=None,
                 style: str = "generate"):
        if mode in ("verifiers", "both") and (not verifiers or runner is None):
            raise ValueError(f"judge: {mode} needs prompts with verifiers (00_prompts source: compose) and a sandbox")
        if mode in ("llm", "both") and generator is None:
            raise ValueError(f"judge: {mode} needs the refiner as a generator")
        self.mode, self.gen, self.n, self.max_rounds, self.seed = mode, generator, n, max_rounds, seed
        self.sp = SamplingParams(n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
        self.prefill = prefill
        self.style, self.temperature = style, temperature
        if style == "likelihood" and not prefill:
            raise ValueError("judge_style: likelihood needs judge_prefill (e.g. 'Final Judgement: ')")
        self.verifiers = verifiers or {}  # prompt text -> [(constraint text, verifier source), ...]
        self.runner = runner
        self.cache: dict[tuple[str, str], dict] = {}
        self.calls = {"judged": 0, "cached": 0, "judgment_completions": 0, "likelihood_scores": 0, "verifier_runs": 0}

    # -- the two sources of a verdict --------------------------------------------------------
    def _llm(self, items: list[tuple[str, str]]) -> list[voting.Vote]:
        convs = [prompts.judge(p, r) + ([{"role": "assistant", "content": self.prefill}] if self.prefill else [])
                 for p, r in items]
        if self.style == "likelihood":
            return self._likelihood_votes(items, convs)

        def sample(indices, rnd):
            sp = dataclasses.replace(self.sp, seed=self.seed + 1000 * rnd)
            outs = self.gen.generate([convs[i] for i in indices], sp, desc=f"judge (round {rnd + 1})")
            self.calls["judgment_completions"] += sum(len(o) for o in outs)
            return outs

        return voting.vote_with_resampling(sample, len(items), n=self.n, max_rounds=self.max_rounds)

    def _likelihood_votes(self, items, convs) -> list[voting.Vote]:
        """Votes drawn from the refiner's own verdict distribution: P(Yes) against P(No) after the primer,
        sharpened by the judgment temperature, N seeded draws per round (ties re-sampled as usual)."""
        import math
        import random

        from .. import judge as llm_judge

        # P(Yes)/P(No) depend only on the conversation: kept on the generator, so every judge of the same
        # model (the majority vote, the single-judgment baseline, the search) scores a text once.
        memo = self.gen.__dict__.setdefault("_verdict_logprobs", {})
        keys = [io.stable_hash(c) for c in convs]
        todo = [k for k in dict.fromkeys(keys) if k not in memo]
        if todo:
            conv_of = dict(zip(keys, convs))
            _, fresh = llm_judge.choose(self.gen, [conv_of[k] for k in todo], ["Yes", "No"])
            memo.update(zip(todo, fresh))
            self.calls["likelihood_scores"] += 2 * len(todo)
        scores = [memo[k] for k in keys]
        def p_of(y, n):  # P(Yes) among {Yes, No}, sharpened by the temperature; 0 is a plain comparison
            if self.temperature == 0:
                return 1.0 if y > n else 0.0 if y < n else 0.5
            z = (y - n) / self.temperature
            return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

        p_yes = [p_of(y, n) for y, n in scores]
        head = self.prefill.rstrip()

        def sample(indices, rnd):
            out = []
            for i in indices:
                rng = random.Random(io.stable_hash([self.seed, items[i], rnd]))
                out.append([f"{head} {'Yes' if rng.random() < p_yes[i] else 'No'}" for _ in range(self.n)])
            return out

        return voting.vote_with_resampling(sample, len(items), n=self.n, max_rounds=self.max_rounds)

    def _verify(self, items: list[tuple[str, str]]) -> list[tuple[float | None, list[str]]]:
        from ..scoring import pass_rates

        records, fns = [], {}
        for k, (p, r) in enumerate(items):
            cons = self.verifiers.get(p)
            if cons:
                for j, (text, src) in enumerate(cons):
                    records.append({"instruction_id": f"{k}:{j}", "responses": [r]})
                    fns[f"{k}:{j}"] = [src]
        scored = pass_rates(records, fns, self.runner) if records else []
        self.calls["verifier_runs"] += len(scored)
        per: dict[int, list[tuple[str, bool]]] = {}
        for rec in scored:
            k, j = map(int, rec["instruction_id"].split(":"))
            per.setdefault(k, []).append((self.verifiers[items[k][0]][j][0], rec["pass_rate"] == 1.0))
        out = []
        for k in range(len(items)):
            res = per.get(k)
            if not res:
                out.append((None, []))
                continue
            out.append((sum(ok for _, ok in res) / len(res), [c for c, ok in res if not ok]))
        return out


    # -- the judgment -----------------------------------------------------------------------------
    def judge_many(self, items: Sequence[tuple[str, str]]) -> list[dict]:
        """One record per (prompt, response): value (None: dropped), label, critique, votes, source."""
        todo = [it for it in dict.fromkeys(items) if it not in self.cache]
        self.calls["cached"] += len(items) - len(todo)
        self.calls["judged"] += len(todo)
        if todo:
            llm = self._llm(todo) if self.mode in ("llm", "both") else [None] * len(todo)
            ver = self._verify(todo) if self.mode in ("verifiers", "both") else [(None, [])] * len(todo)
            for it, v, (rate, failed) in zip(todo, llm, ver):
                rec = {"llm_value": v.value if v and v.outcome == "majority" else None,
                       "votes": dataclasses.asdict(v) if v else None, "verifier_value": rate, "failed": failed}
                if self.mode == "llm":
                    rec["value"], rec["critique"] = rec["llm_value"], v.critique
                elif self.mode == "verifiers":
                    rec["value"], rec["critique"] = verifier_score(rate), verifier_critique(failed)
                else:
                    rec["value"], rec["critique"] = _both(rec["llm_value"], v, rate, failed)
                rec["label"] = None if rec["value"] is None else rec["value"] > 0.5
                self.cache[it] = rec
        return [self.cache[it] for it in items]

    def __call__(self, items: Sequence[tuple[str, str]]) -> list[tuple[float | None, str | None]]:
        """The search's interface: (value, critique) per (prompt, response)."""
        return [(r["value"], r["critique"]) for r in self.judge_many(items)]


def _both(llm_value: float | None, vote, rate: float | None, failed: list[str]) -> tuple[float | None, str | None]:
    """``both``: success needs the LLM's majority Yes and every verifier, so the value is the lower of the vote
    share and the verifier score. The critique never argues against the verdict: when the verifiers fail a
    response the LLM passed, only the failed constraints are the critique (the LLM's text calls it fine)."""
    score = verifier_score(rate)
    if llm_value is None or score is None:
        return None, None
    llm_crit = vote.critique if vote else None
    if rate >= 1.0:
        return min(llm_value, score), llm_crit
    if llm_value > 0.5:
        return min(llm_value, score), verifier_critique(failed)
    return min(llm_value, score), "\n".join(filter(None, [llm_crit, verifier_critique(failed)]))


class Refiner:
    """R_t rewrites responses. A candidate without a readable answer between the markers, or cut off at
    ``max_new_tokens`` (its ``[[end]]`` may be missing, its answer half-written), is sampled again, ``retries``
    more times at most (released code: 3 tries), each retry with fresh seeds; what still fails is
    ``(None, completion)``, which the search records as ``refine_failed``."""

    def __init__(self, generator: Generator, temperature: float, max_new_tokens: int, seed: int, prefill: str = "",
                 retries: int = 0):
        self.gen, self.seed, self.prefill, self.retries = generator, seed, prefill, retries
        self.temperature, self.max_new_tokens = temperature, max_new_tokens
        self.calls = {"refine_completions": 0, "unparsed": 0, "truncated": 0, "retried": 0, "recovered": 0}
        self._round = 0

    def _sample(self, convs: list, n: int, seed: int) -> list[list[tuple[str | None, str]]]:
        sp = SamplingParams(n=n, temperature=self.temperature, max_new_tokens=self.max_new_tokens, seed=seed)
        outs = self.gen.generate(convs, sp, desc="refine")
        self.calls["refine_completions"] += sum(len(o) for o in outs)
        flat = [t for o in outs for t in o]
        hit = getattr(self.gen, "hit_limit", None)
        cut = iter(hit(flat, sp, self.prefill) if hit else [None] * len(flat))
        res = []
        for o in outs:
            row = []
            for t in o:
                if next(cut):  # cut off: a half-written answer is not a refinement
                    self.calls["truncated"] += 1
                    row.append((None, t))
                else:
                    row.append((parse_refined(t)[0], t))
            res.append(row)
        return res

    def __call__(self, requests: Sequence[tuple[str, str, str]], n: int) -> list[list[tuple[str | None, str]]]:
        if not requests:
            return []
        self._round += 1  # each layer samples anew
        tail = [{"role": "assistant", "content": self.prefill}] if self.prefill else []
        convs = [prompts.refine(p, r, c or "") + tail for p, r, c in requests]
        # (refined response, the whole completion): the completion is what RFT teaches the refiner to write
        res = self._sample(convs, n, self.seed + 7919 * self._round)
        for attempt in range(1, self.retries + 1):
            failed = [(i, k) for i, row in enumerate(res) for k, (t, _) in enumerate(row) if t is None]
            if not failed:
                break
            self.calls["retried"] += len(failed)
            slots: dict[int, list[int]] = {}  # request -> its failed candidate slots
            for i, k in failed:
                slots.setdefault(i, []).append(k)
            by_count: dict[int, list[int]] = {}  # requests by how many candidates failed: one call per count
            for i, ks in slots.items():
                by_count.setdefault(len(ks), []).append(i)
            for m, idx in by_count.items():
                again = self._sample([convs[i] for i in idx], m, self.seed + 7919 * self._round + 104729 * attempt)
                for i, new in zip(idx, again):
                    for k, cand in zip(slots[i], new):
                        res[i][k] = cand
                        self.calls["recovered"] += cand[0] is not None
        self.calls["unparsed"] += sum(1 for o in res for t, _ in o if t is None)
        return res


def verifier_index(prompt_records: Sequence[dict]) -> dict:
    """prompt text -> [(constraint text, verifier source)] for the composed prompts that have verifiers."""
    out = {}
    for r in prompt_records:
        srcs = r.get("verifiers") or []
        texts = r.get("constraints") or [f"constraint {i + 1}" for i in range(len(srcs))]
        if srcs:
            out[r["prompt"]] = list(zip(texts, srcs))
    return out


def make_judge(ctx, refiner_path: str | None, prompt_records: Sequence[dict], runner=None) -> Judge:
    """The judge a stage's ``JudgeFields`` describe, with R_t as the model."""
    p = ctx.p
    gen = ctx.generator(dataclasses.replace(p.generation, model=refiner_path)) if p.judge != "verifiers" else None
    return Judge(p.judge, gen, p.n_judgments, p.judge_temperature, p.judge_max_new_tokens, p.max_rounds, p.seed,
                 p.judge_prefill, verifier_index(prompt_records) if p.judge != "llm" else None, runner, p.judge_style)
