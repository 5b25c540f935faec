"""The three generation backends. Each turns a batch of rows into completions.

A *row* is one completion to produce: (messages, sample index, seed). The
:class:`~autoif_lib.models.generator.Generator` plans rows into batches, asks the
backend for the missing ones and caches the results; backends only generate.

* ``TransformersBackend``: in-process, CPU or GPU, left-padded batches.
* ``VLLMBackend`` (``vllm_engine.py``): vLLM's offline engine, one or several replicas; imported only when chosen.
* ``OpenAIBackend``: any OpenAI-compatible ``/chat/completions`` server,
  bounded concurrency, retries with exponential backoff.
"""

from __future__ import annotations

import json
import os
import random
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .spec import EMBEDDED, ModelSpec, SamplingParams

Messages = list[dict]


@dataclass(frozen=True)
class Row:
    key: str
    messages: tuple  # tuple of (role, content) pairs; hashable and cheap to compare
    sample_idx: int
    seed: int  # per-row seed, derived from the sampling seed and the key

    def as_messages(self) -> Messages:
        return [{"role": r, "content": c} for r, c in self.messages]

    @property
    def prefill(self) -> str:
        """A final assistant message is a prefix the completion continues (response priming)."""
        return self.messages[-1][1] if self.messages and self.messages[-1][0] == "assistant" else ""


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut ``text`` at the first stop string (servers do this; HF generate keeps it)."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]


def resolve_model_path(name: str) -> str:
    if name == EMBEDDED:
        from ..embedded import embedded_model_dir

        return str(embedded_model_dir())
    return name


def model_fingerprint(spec: ModelSpec) -> str:
    """Identity of the model for the cache key: local folders by content, plus a chat template given for it."""
    base = _weights_fingerprint(spec)
    # A template named in the recipe changes every prompt; the model's own is part of its folder's content.
    return f"{base}:template={spec.chat_template}" if spec.chat_template else base


def _weights_fingerprint(spec: ModelSpec) -> str:
    if spec.backend == "openai":  # the dialect changes what a prefilled prompt looks like to the server
        return f"openai:{spec.base_url}:{spec.model}:{spec.openai_dialect}"
    name = spec.model
    if name == EMBEDDED:
        from ..embedded import CONVERSION_VERSION, FOLDER_NAME

        return f"{EMBEDDED}:{FOLDER_NAME}:v{CONVERSION_VERSION}"
    p = Path(name).expanduser()
    if p.is_dir():
        return f"content:{folder_digest(p)}"
    return f"hub:{name}"


# What decides a local model's generations: weights, configs, tokenizer and chat template.
_MODEL_FILES = (".safetensors", ".bin", ".json", ".jinja", ".model", ".txt")
_SKIP_FILES = ("training_args.bin", "trainer_state.json", "optimizer.pt", "scheduler.pt")
_DIGESTS: dict[tuple, str] = {}


def folder_digest(folder: Path) -> str:
    """Content hash of a local model folder, independent of its path and file times.

    By content, so the same weights at another store path (an identical upstream in another sweep variant, a
    fresh rerun of the same recipe) get the same cache entries and the same sampling seeds, and a folder
    re-trained in place never reuses stale generations. ``_name_or_path`` is dropped from JSON files (it
    records where the weights were loaded from). Memoized per (path, sizes, mtimes) within a process."""
    import hashlib

    files = sorted(f for f in Path(folder).iterdir()
                   if f.is_file() and f.suffix in _MODEL_FILES and f.name not in _SKIP_FILES)
    memo = (str(Path(folder).resolve()), tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files))
    if memo in _DIGESTS:
        return _DIGESTS[memo]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0")
        if f.suffix == ".json":
            try:
                obj = json.loads(f.read_text(encoding="utf-8"))
                if isinstance(obj, dict):
                    obj.pop("_name_or_path", None)
                h.update(json.dumps(obj, sort_keys=True).encode())
                continue
            except (ValueError, UnicodeDecodeError):
                pass  # not JSON after all: hash its bytes
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                h.update(block)
    _DIGESTS[memo] = h.hexdigest()[:32]
    return _DIGESTS[memo]


def cpu_supports_bf16() -> bool:
    """bf16 on CPU is only fast with native instructions (avx512_bf16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def free_accelerator_memory() -> None:
    """Collect garbage and hand cached CUDA blocks back, so the next engine's free-memory check sees them."""
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class ChatTemplateMissing(ValueError):
    """A model whose tokenizer has no chat template, and no ``chat_template`` given for it."""


def resolve_chat_template(value: str, trust_remote_code: bool = False) -> str:
    """The Jinja text a ``chat_template`` value names: a literal template, a ``.jinja`` file (relative paths
    from the repository root), or a tokenizer (hub id or local folder) whose own template to borrow."""
    if "{%" in value or "{{" in value:
        return value
    if value.endswith(".jinja"):
        from ..params import resolve_path
        from ..recipes import repo_root

        p = resolve_path(value, repo_root())
        if not p.exists():
            raise FileNotFoundError(f"chat_template: file not found: {value!r} (looked at {p})")
        return p.read_text(encoding="utf-8")
    from transformers import AutoTokenizer

    tpl = AutoTokenizer.from_pretrained(resolve_model_path(value), trust_remote_code=trust_remote_code).chat_template
    if not tpl:
        raise ChatTemplateMissing(f"chat_template: {value!r} names a tokenizer without a chat template")
    return tpl


def load_tokenizer(spec: ModelSpec):
    """The model's HF tokenizer, left-padding, with ``spec.chat_template`` applied; a clear error if it
    has no chat template at all (a base model: name one with ``chat_template``)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model_path(spec.model), trust_remote_code=spec.trust_remote_code)
    if spec.chat_template:
        tok.chat_template = resolve_chat_template(spec.chat_template, spec.trust_remote_code)
    if not tok.chat_template:
        raise ChatTemplateMissing(
            f"model {spec.model!r} has no chat template (a base model?): set chat_template in its model spec "
            "to a .jinja file or to a tokenizer whose template to use, e.g. the instruct variant's hub id")
    tok.padding_side = "left"  # decoder-only: pad on the left so new tokens line up
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def render(tokenizer, messages: Messages) -> str:
    """The prompt text of a conversation; a final assistant message is continued, not closed."""
    if messages and messages[-1]["role"] == "assistant":
        return tokenizer.apply_chat_template(messages, continue_final_message=True, tokenize=False)
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def choice_tokens(tokenizer, conversation: Messages, choices: Sequence[str]) -> tuple[list[list[int]], list[int]]:
    """Token ids of ``conversation`` continued by each choice, and where each choice's scored tokens start.

    "Label: " + "entailment" tokenizes as "Label:" + " entailment": each choice is scored with its leading
    space, counting only the tokens past the longest prefix it shares with the conversation alone. Every
    backend scores exactly these tokens, so their numbers are comparable."""
    prefix = render(tokenizer, list(conversation)).rstrip()
    p_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    fulls = [tokenizer(f"{prefix} {ch}", add_special_tokens=False)["input_ids"] for ch in choices]
    starts = []
    for ids in fulls:
        k = 0
        while k < min(len(p_ids), len(ids) - 1) and p_ids[k] == ids[k]:
            k += 1
        starts.append(max(1, k))  # the first token has no prediction to score
    return fulls, starts


class TransformersBackend:
    name = "transformers"

    def __init__(self, spec: ModelSpec):
        import torch
        from transformers import AutoModelForCausalLM

        self.spec = spec
        self.torch = torch
        path = resolve_model_path(spec.model)
        device = spec.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.dtype = self._pick_dtype(spec.dtype, device)
        self.tokenizer = load_tokenizer(spec)
        self.model = AutoModelForCausalLM.from_pretrained(
            path, dtype=self.dtype, trust_remote_code=spec.trust_remote_code).to(device)
        self.model.eval()

    def _pick_dtype(self, dtype: str, device: str):
        torch = self.torch
        if dtype != "auto":
            return getattr(torch, dtype)
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_supports_bf16() else torch.float32

    def render(self, messages: Messages) -> str:
        return render(self.tokenizer, messages)

    def generate_batch(self, rows: Sequence[Row], sp: SamplingParams) -> list[str]:
        torch = self.torch
        texts = [self.render(r.as_messages()) for r in rows]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        # One RNG per batch seeded from its rows: a re-run of the same batch gives the same text.
        torch.manual_seed(rows[0].seed)
        kwargs = dict(max_new_tokens=sp.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                      repetition_penalty=sp.repetition_penalty)
        if sp.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=sp.temperature, top_p=sp.top_p, top_k=0)
        if sp.stop:
            kwargs.update(stop_strings=list(sp.stop), tokenizer=self.tokenizer)
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1]:]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return [truncate_at_stop(t, sp.stop) for t in texts]

    def choice_logprobs(self, conversations: Sequence[Messages], choices: Sequence[str]) -> list[list[float]]:
        """Log-probability of each choice as the continuation of each conversation.

        Ranking fixed answers by likelihood (as lm-eval does for multiple choice) gets a usable
        label out of a model too small to follow an output format. Every conversation is scored on
        its own, without padding: in bf16 a padded batch changes the matmul shapes and so the numbers
        (AMX/AVX512-BF16 kernels differ by batch shape), and a judge's label must not depend on which
        other rows share its batch. The conversation is run once and its KV cache reused for every
        choice; log-softmax is taken in fp32. The token plan is :func:`choice_tokens`, shared with vLLM.
        """
        import copy

        torch = self.torch
        out = []
        for conv in conversations:
            fulls, starts = choice_tokens(self.tokenizer, conv, choices)
            shared = min(starts) - 1  # tokens every choice shares, run once: positions [0, shared)
            with torch.inference_mode():
                past = None
                if shared > 0:
                    past = self.model(input_ids=torch.tensor([fulls[0][:shared]], device=self.device),
                                      use_cache=True).past_key_values
                row = []
                for ids, start in zip(fulls, starts):
                    tail = torch.tensor([ids[shared:]], device=self.device)
                    logits = self.model(input_ids=tail, past_key_values=copy.deepcopy(past) if past is not None else None,
                                        use_cache=past is not None).logits[0].float()
                    logp = torch.log_softmax(logits, dim=-1)  # row i predicts token shared + i + 1
                    targets = ids[start:]
                    rows = [t - shared - 1 for t in range(start, len(ids))]
                    row.append(float(sum(logp[r, tok] for r, tok in zip(rows, targets))))
            out.append(row)
        return out

    def close(self) -> None:
        """Drop the weights (and, on GPU, their memory) now rather than whenever the object is collected."""
        self.model = None
        free_accelerator_memory()


class OpenAIBackend:
    """Chat Completions over HTTP, in one of two dialects (``ModelSpec.openai_dialect``).

    * ``standard`` (hosted APIs, which reject unknown fields): the body holds only official
      Chat Completions fields (:attr:`STANDARD_FIELDS`). ``repetition_penalty`` is not sent
      (with a warning), and an assistant prefill is folded into the prompt as a plain request
      (:meth:`fold_prefill`); see :meth:`strip_echoed_primer` for how replies are shaped.
    * ``vllm`` (``vllm serve``): also real assistant prefill through vLLM's
      ``add_generation_prompt=False, continue_final_message=True`` and ``repetition_penalty``.

    Either way the text returned is the continuation *after* the primer: the Generator
    prepends the primer, so callers see ``primer + continuation`` on every backend.
    """

    name = "openai"
    # 408/409 are transient by definition (timeout, lock conflict); the official SDK retries them
    # too. Any other 4xx (400 unknown field, 401 bad key, 404 model, 422 ...) fails at once.
    RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
    # Every key a "standard" request body may hold: official Chat Completions fields only.
    STANDARD_FIELDS = frozenset({"model", "messages", "n", "temperature", "top_p", "max_tokens", "seed", "stop"})
    MAX_STOP = 4  # the official API takes at most 4 stop strings; all of them are applied client-side anyway
    PREFILL_INSTRUCTION = ("Start your reply with exactly this text (given here as a JSON string), "
                           "then continue from it: {primer}")

    def __init__(self, spec: ModelSpec, sleep=time.sleep):
        import httpx

        self.spec = spec
        self.dialect = getattr(spec, "openai_dialect", "standard")
        if self.dialect not in ("standard", "vllm"):
            raise ValueError(f"openai_dialect must be 'standard' or 'vllm', got {self.dialect!r}")
        self.sleep = sleep
        self._warned_rp = False
        key = os.environ.get(spec.api_key_env, "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(base_url=spec.base_url.rstrip("/"), headers=headers,
                                   timeout=spec.request_timeout_s)

    @classmethod
    def fold_prefill(cls, messages: Messages, primer: str) -> Messages:
        """Standard dialect: replace a final assistant primer by a plain request for it.

        The trailing assistant message is dropped (a hosted API would start a *new* assistant
        turn after it, not continue it) and the last user message gets an instruction to begin
        the reply with the primer, JSON-quoted so trailing spaces and newlines stay visible. If
        the message before the primer is not a user message, the instruction is a new user turn.
        """
        msgs = [dict(m) for m in messages]
        if not msgs or msgs[-1]["role"] != "assistant":
            return msgs
        msgs.pop()
        if not primer:
            return msgs  # an empty assistant turn primes nothing
        ask = cls.PREFILL_INSTRUCTION.format(primer=json.dumps(primer, ensure_ascii=False))
        if msgs and msgs[-1]["role"] == "user":
            msgs[-1]["content"] = f"{msgs[-1]['content']}\n\n{ask}"
        else:
            msgs.append({"role": "user", "content": ask})
        return msgs

    @staticmethod
    def strip_echoed_primer(text: str, primer: str) -> str:
        """Standard dialect: the continuation after the primer, from a reply asked to start with it.

        Real prefill returns only the continuation and the Generator prepends the primer. Here the
        model was *asked* to write the primer itself, so a reply that starts with it (leading
        whitespace, or different whitespace at the primer's end such as "Score:7" for "Score: ",
        tolerated) has it cut off; a reply that ignored the request is kept whole, and the
        Generator still prepends the primer. Either way callers get text that starts with the
        primer, the same shape as with real prefill, and parsers that rely on it keep working.
        """
        body = text.lstrip()
        if body.startswith(primer):
            return body[len(primer):]
        core = primer.rstrip()
        if core != primer and core and body.startswith(core):
            return body[len(core):].lstrip()  # the primer supplies the trailing whitespace
        return body if primer[-1:].isspace() else text

    def request_body(self, row: Row, sp: SamplingParams) -> dict:
        """The JSON body for one completion of ``row`` in this backend's dialect."""
        body = {"model": self.spec.model, "n": 1, "temperature": sp.temperature, "top_p": sp.top_p,
                "max_tokens": sp.max_new_tokens, "seed": row.seed}
        if self.dialect == "vllm":
            body["messages"] = row.as_messages()
            if sp.stop:
                body["stop"] = list(sp.stop)
            # vLLM extensions, always sent: a field left out takes the served model's generation_config.json
            # default (some models set a repetition penalty or top-k there), and the offline engine never
            # applies those, so the same row would sample differently on the two vLLM backends.
            body.update(repetition_penalty=sp.repetition_penalty, top_k=0, min_p=0.0)
            if row.prefill:
                # vLLM-serve extension: continue the final assistant message instead of starting a new one.
                body.update(add_generation_prompt=False, continue_final_message=True)
            return body
        body["messages"] = self.fold_prefill(row.as_messages(), row.prefill)
        # A stop string inside the primer would end the reply while the model echoes the primer:
        # those are applied client-side only, to the continuation (as with real prefill).
        stop = [s for s in sp.stop if s and s not in row.prefill][:self.MAX_STOP]
        if stop:
            body["stop"] = stop
        if sp.repetition_penalty != 1.0 and not self._warned_rp:
            self._warned_rp = True
            warnings.warn(f"openai backend (openai_dialect='standard'): repetition_penalty="
                          f"{sp.repetition_penalty} is not an official Chat Completions field and is not sent; "
                          "set openai_dialect='vllm' for a `vllm serve` server", stacklevel=2)
        return body

    def _one(self, row: Row, sp: SamplingParams) -> str:
        body = self.request_body(row, sp)
        last = ""
        for attempt in range(self.spec.max_retries + 1):
            try:
                r = self.client.post("/chat/completions", json=body)
                if r.status_code == 200:
                    text = r.json()["choices"][0]["message"].get("content") or ""
                    if self.dialect == "standard" and row.prefill:
                        text = self.strip_echoed_primer(text, row.prefill)
                    return truncate_at_stop(text, sp.stop)
                last = f"HTTP {r.status_code}: {r.text[:200]}"
                if r.status_code not in self.RETRY_STATUS:
                    break
            except Exception as e:  # connection errors, timeouts, bad JSON
                last = f"{type(e).__name__}: {e}"
            if attempt < self.spec.max_retries:
                # Exponential backoff with jitter so parallel workers do not retry in lockstep.
                self.sleep(min(60.0, 0.5 * 2 ** attempt) * (0.5 + random.random()))
        hint = ""
        if self.dialect == "vllm" and last.startswith("HTTP 400"):
            hint = " (openai_dialect='vllm' sends vLLM-only fields; use 'standard' for a hosted API)"
        raise RuntimeError(f"openai backend: request to {self.spec.base_url} failed: {last}{hint}")

    def generate_batch(self, rows: Sequence[Row], sp: SamplingParams) -> list[str]:
        with ThreadPoolExecutor(max_workers=self.spec.max_concurrency) as pool:
            return list(pool.map(lambda r: self._one(r, sp), rows))


def make_backend(spec: ModelSpec):
    if spec.backend == "transformers":
        return TransformersBackend(spec)
    if spec.backend == "vllm":
        from .vllm_engine import VLLMBackend

        return VLLMBackend(spec)
    if spec.backend == "openai":
        return OpenAIBackend(spec)
    raise ValueError(f"unknown backend {spec.backend!r}")


def batch_size_for(spec: ModelSpec) -> int:
    """Rows per backend call: also the granularity at which progress is cached."""
    if spec.backend == "transformers":
        return spec.batch_size
    if spec.backend == "openai":
        return spec.max_concurrency * 4
    # vLLM schedules inside each call, so a chunk waits for its longest row: large chunks keep the engine busy;
    # they also bound what a crash can lose (each chunk is committed to the cache).
    return 1024 * spec.data_parallel_size
