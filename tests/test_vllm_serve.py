"""The OpenAI backend against a real `vllm serve` (vLLM's CPU build), in both dialects: generation, n, seeds,
prefill, stop lists. Greedy text is compared with the transformers backend in fp32 (the server runs fp32):
the server renders the chat template itself, so equality also shows it sees the same prompt we do."""

from __future__ import annotations

import pytest

from autoif_lib.models import Generator, ModelSpec, SamplingParams

pytestmark = pytest.mark.vllm

PROMPTS = ["Write a haiku about rain.", "List three colours.", "Say hello in French.", "Name a prime number."]


def _gen(server, dialect: str) -> Generator:
    spec = ModelSpec(backend="openai", model=server["model"], base_url=server["base_url"], openai_dialect=dialect,
                     max_concurrency=4, max_retries=1, request_timeout_s=120)
    return Generator(spec, None, progress=False)


@pytest.fixture(scope="module")
def hgen():
    g = Generator(ModelSpec(backend="transformers", model="embedded", dtype="float32"), None, progress=False)
    yield g
    g.close()


@pytest.mark.parametrize("dialect", ["vllm", "standard"])
def test_greedy_text_equals_the_transformers_backend(vllm_server, hgen, dialect):
    sp = SamplingParams(temperature=0.0, max_new_tokens=16)
    assert _gen(vllm_server, dialect).generate(PROMPTS, sp) == hgen.generate(PROMPTS, sp)


@pytest.mark.parametrize("dialect", ["vllm", "standard"])
def test_n_samples_and_per_row_seeds_reproduce(vllm_server, dialect):
    g = _gen(vllm_server, dialect)
    sp = SamplingParams(n=3, temperature=1.0, max_new_tokens=16, seed=5)
    first = g.generate(PROMPTS[:2], sp)
    assert [len(o) for o in first] == [3, 3] and len(set(first[0])) > 1  # n rows, each its own seed
    assert g.generate(PROMPTS[:2], sp) == first                          # the same seeds, the same text
    assert g.generate([PROMPTS[1]], sp) == [first[1]]                    # whatever else is in flight
    assert g.generate(PROMPTS[:2], SamplingParams(n=3, temperature=1.0, max_new_tokens=16, seed=6)) != first


@pytest.mark.parametrize("dialect", ["vllm", "standard"])
def test_stop_list_cuts_where_the_free_text_would(vllm_server, dialect):
    g = _gen(vllm_server, dialect)
    free = g.generate(PROMPTS, SamplingParams(temperature=0.0, max_new_tokens=48))
    stopped = g.generate(PROMPTS, SamplingParams(temperature=0.0, max_new_tokens=48, stop=("\n", ".")))
    for f, s in zip(free, stopped):
        cut = min([i for i in (f[0].find("\n"), f[0].find(".")) if i != -1], default=len(f[0]))
        assert s[0] == f[0][:cut]
    assert any("." in f[0] or "\n" in f[0] for f in free)


def test_vllm_dialect_prefill_is_a_true_continuation(vllm_server, hgen):
    conv = [{"role": "user", "content": "List three colours."}, {"role": "assistant", "content": "1."}]
    sp = SamplingParams(temperature=0.0, max_new_tokens=12, repetition_penalty=1.1)
    out = _gen(vllm_server, "vllm").generate([conv], sp)[0][0]
    assert out.startswith("1.") and out == hgen.generate([conv], sp)[0][0]


def test_standard_dialect_prefill_still_returns_text_starting_with_the_primer(vllm_server):
    conv = [{"role": "user", "content": "List three colours."}, {"role": "assistant", "content": "- "}]
    out = _gen(vllm_server, "standard").generate([conv], SamplingParams(temperature=0.0, max_new_tokens=12))[0][0]
    assert out.startswith("- ") and len(out) > 2
