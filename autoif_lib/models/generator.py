"""One interface to generate chat completions, on any backend, through a persistent cache.

    from autoif_lib.models import Generator, ModelSpec, SamplingParams
    gen = Generator(ModelSpec(backend="transformers", model="embedded"), cache_path="outputs/cache/generations.sqlite")
    outs = gen.generate([[{"role": "user", "content": "Hi"}]], SamplingParams(n=2, temperature=0.7))
    outs[0]  # -> two completions for the first conversation

A conversation may end with an assistant message: the model continues it
(priming a small model with "- " or a code fence helps a lot) and the returned
text includes that prefix.

Resumability: rows are planned into batches over the *whole* request (cached or
not), longest first, so a re-run after a crash sees exactly the same batches,
skips the ones already committed and regenerates the rest with the same seeds:
the final outputs equal those of an uninterrupted run. The model is loaded only
when something is missing, so a fully cached stage never touches the weights.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from ..io import stable_hash, to_jsonable
from .backends import Row, batch_size_for, make_backend, model_fingerprint
from .cache import GenerationCache
from .spec import ModelSpec, SamplingParams

Conversation = list[dict] | str


def normalize_conversation(conv: Conversation) -> tuple:
    if isinstance(conv, str):
        return (("user", conv),)
    out = []
    for m in conv:
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ValueError(f"a message must be a dict with 'role' and 'content', got {m!r}")
        out.append((str(m["role"]), str(m["content"])))
    return tuple(out)


class Generator:
    def __init__(self, spec: ModelSpec, cache_path: str | Path | None = None, progress: bool = True,
                 backend=None):
        self.spec = spec
        self.cache = GenerationCache(cache_path) if cache_path else None
        self.progress = progress
        self._backend = backend  # injected in tests; else created lazily
        self.fingerprint = model_fingerprint(spec)
        self.stats = {"rows": 0, "cache_hits": 0, "generated": 0, "gen_seconds": 0.0, "batches": 0,
                      "loads": 0, "load_seconds": 0.0, "over_context": 0}

    @property
    def backend(self):
        if self._backend is None:
            t0 = time.perf_counter()
            self._backend = make_backend(self.spec)
            self.stats["loads"] += 1  # > 1: released and loaded again
            self.stats["load_seconds"] += time.perf_counter() - t0
        return self._backend

    @property
    def loaded(self) -> bool:
        """Whether a model is in memory (an engine, weights) behind this generator."""
        return self._backend is not None

    def close(self) -> bool:
        """Release the backend now: a vLLM engine's processes end, weights and GPU memory are freed. The
        generator stays usable (the next call that needs the model loads it again). True if one was loaded."""
        backend, self._backend = self._backend, None
        if backend is None:
            return False
        if hasattr(backend, "close"):
            backend.close()
        return True

    def hit_limit(self, texts: Sequence[str], sp: SamplingParams, prefill: str = "") -> list[bool | None]:
        """Whether each completion used all of ``sp.max_new_tokens`` (so it was cut off, not finished): its
        continuation re-tokenized with the model's tokenizer. A finished completion ends with an end-of-turn
        token the text does not show, so it holds at most ``max_new_tokens - 1`` visible tokens. None per text
        where no local tokenizer exists (a chat API). The tokenizer alone is loaded, never the weights."""
        if self.spec.backend == "openai":
            return [None] * len(texts)
        if getattr(self, "_tokenizer", None) is None:
            from .backends import load_tokenizer

            self._tokenizer = load_tokenizer(self.spec)
        out = []
        for t in texts:
            cont = t[len(prefill):] if prefill and t.startswith(prefill) else t
            out.append(len(self._tokenizer(cont, add_special_tokens=False)["input_ids"]) >= sp.max_new_tokens)
        return out

    def row_key(self, messages: tuple, sp: SamplingParams, sample_idx: int) -> str:
        # n is not part of the key: asking for 8 samples later reuses the first 4.
        sampling = {k: v for k, v in to_jsonable(sp).items() if k != "n"}
        return stable_hash({"model": self.fingerprint, "backend": self.spec.backend, "dtype": self.spec.dtype,
                            "sampling": sampling, "messages": messages, "i": sample_idx})

    def plan(self, conversations: Sequence[Conversation], sp: SamplingParams) -> list[Row]:
        rows = []
        for conv in conversations:
            msgs = normalize_conversation(conv)
            for i in range(sp.n):
                key = self.row_key(msgs, sp, i)
                rows.append(Row(key=key, messages=msgs, sample_idx=i,
                                seed=int(stable_hash([sp.seed, key], 8), 16)))
        return rows

    def generate(self, conversations: Sequence[Conversation], sp: SamplingParams | None = None,
                 desc: str = "generate") -> list[list[str]]:
        """Return ``sp.n`` completions for each conversation, in input order."""
        sp = sp or SamplingParams()
        rows = self.plan(conversations, sp)
        self.stats["rows"] += len(rows)
        done: dict[str, str] = self.cache.get_many(r.key for r in rows) if self.cache is not None else {}
        self.stats["cache_hits"] += sum(1 for r in rows if r.key in done)
        unique = list({r.key: r for r in rows}.values())
        # Longest first: padding waste is lowest and the memory peak comes early.
        order = sorted(unique, key=lambda r: (-sum(len(c) for _, c in r.messages), r.key))
        bs = batch_size_for(self.spec)
        batches = [order[i:i + bs] for i in range(0, len(order), bs)]
        todo = [b for b in batches if any(r.key not in done for r in b)]
        cached = set(done)
        if todo:
            from ..progress import bar as progress_bar

            # Load first (an engine start, counted apart from generating): what loading prints comes before
            # the bar, not in the middle of its line.
            backend = self.backend
            n_todo = sum(len(b) for b in todo)
            bar = progress_bar(n_todo, desc, unit="gen", disable=not self.progress)
            try:
                for batch in todo:
                    t0 = time.perf_counter()
                    over = getattr(backend, "stats", {}).get("over_context", 0)
                    texts = backend.generate_batch(batch, sp)
                    self.stats["gen_seconds"] += time.perf_counter() - t0
                    # prompts longer than the context (vLLM): empty completions, counted in the stage's metrics
                    self.stats["over_context"] += getattr(backend, "stats", {}).get("over_context", 0) - over
                    self.stats["generated"] += len(batch)
                    self.stats["batches"] += 1
                    # A prefilled row's text is prefix + continuation: callers parse whole replies.
                    texts = [r.prefill + t for r, t in zip(batch, texts)]
                    # A row this request found cached keeps its cached text: the batch was regenerated whole
                    # (the batches of an interrupted run), but a batch's rows can come out differently next to
                    # other rows, and the first answer stands (same request, same answer, whichever stage asks).
                    for r, t in zip(batch, texts):
                        done.setdefault(r.key, t)
                    if self.cache is not None:
                        # Commit per batch: a crash loses at most the batch in flight.
                        self.cache.put_many((r.key, done[r.key], {"i": r.sample_idx}) for r in batch
                                            if r.key not in cached)
                    bar.update(len(batch))
            finally:
                bar.close()
        out: list[list[str]] = []
        for j in range(0, len(rows), sp.n):
            out.append([done[r.key] for r in rows[j:j + sp.n]])
        return out
