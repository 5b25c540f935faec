"""Model layer: one interface for chat generation on transformers, vLLM or an OpenAI-compatible server."""

from .generator import Generator, normalize_conversation
from .spec import EMBEDDED, ModelSpec, SamplingParams

__all__ = ["EMBEDDED", "Generator", "ModelSpec", "SamplingParams", "normalize_conversation"]
