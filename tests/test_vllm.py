"""The real vLLM backend (vLLM 0.31's CPU build, no fake module) on the embedded model.

One fp32 engine serves the module (an engine starts in ~20 s here): fp32 because vLLM's CPU kernels give
batch-dependent numbers in bf16, and a test must not depend on the batch or the instruction set. Numbers
compared with the transformers backend run it in fp32 too, so the tolerance is fp32's (observed: 5e-6 nats).

AUTOIF_SKIP_VLLM=1 skips the module on a machine without vLLM; `make setup` installs it, so CI runs it.
"""

from __future__ import annotations

import os

import psutil
import pytest

from autoif_lib import io, judge
from autoif_lib.models import Generator, ModelSpec, SamplingParams

pytestmark = pytest.mark.vllm

if os.environ.get("AUTOIF_SKIP_VLLM") == "1":
    pytest.skip("AUTOIF_SKIP_VLLM=1", allow_module_level=True)

VLLM = ModelSpec(backend="vllm", model="embedded", dtype="float32", enforce_eager=True, kv_cache_gb=1)
HF = ModelSpec(backend="transformers", model="embedded", dtype="float32")
PROMPTS = ["Write a haiku about rain.", "List three colours.", "Say hello in French.", "Name a prime number.",
           "Describe a cat in five words.", "What is 2 + 2?", "Give a tip for sleeping well.", "Name a fruit."]
FP32_TOL = 1e-3  # nats, for a sum of a few fp32 log-probabilities from two implementations of the same model


def _engine_pids() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True) if p.is_running()
            and p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(p.cmdline())}


@pytest.fixture(scope="module")
def vgen():
    g = Generator(VLLM, None, progress=False)
    g.backend  # start the engine once for the module
    yield g
    g.close()


@pytest.fixture(scope="module")
def hgen():
    g = Generator(HF, None, progress=False)
    yield g
    g.close()


def test_per_request_seeds_reproduce_across_calls_and_batch_compositions(vgen):
    sp = SamplingParams(n=2, temperature=0.9, max_new_tokens=24, seed=3)
    full = vgen.generate(PROMPTS, sp)
    assert vgen.generate(PROMPTS, sp) == full                                      # the same call again
    assert vgen.generate([PROMPTS[5]], sp) == [full[5]]                            # alone
    assert vgen.generate([PROMPTS[6], PROMPTS[1]], sp) == [full[6], full[1]]       # another batch, another order
    other = vgen.generate(PROMPTS, SamplingParams(n=2, temperature=0.9, max_new_tokens=24, seed=4))
    assert other != full                                                           # the seed is used


def test_n_samples_are_distinct_draws(vgen):
    outs = vgen.generate([PROMPTS[0]], SamplingParams(n=4, temperature=1.0, max_new_tokens=24, seed=0))
    assert len(outs[0]) == 4 and len(set(outs[0])) > 1
    assert all(o.strip() for o in outs[0])


def test_stop_strings_cut_exactly_where_the_unstopped_text_would(vgen):
    free = vgen.generate(PROMPTS, SamplingParams(temperature=0.0, max_new_tokens=48))
    stopped = vgen.generate(PROMPTS, SamplingParams(temperature=0.0, max_new_tokens=48, stop=("\n", ".")))
    for f, s in zip(free, stopped):
        cut = min([i for i in (f[0].find("\n"), f[0].find(".")) if i != -1], default=len(f[0]))
        assert s[0] == f[0][:cut]
    assert any("." in f[0] or "\n" in f[0] for f in free)  # the rule was exercised


def test_assistant_prefill_is_continued_and_matches_transformers(vgen, hgen):
    conv = [{"role": "user", "content": "List three colours."}, {"role": "assistant", "content": "1."}]
    assert vgen.backend.render(conv).endswith("1.")  # continued, not closed with an end-of-turn
    sp = SamplingParams(temperature=0.0, max_new_tokens=12)
    v, h = vgen.generate([conv], sp)[0][0], hgen.generate([conv], sp)[0][0]
    assert v.startswith("1.") and len(v) > 2
    assert v == h  # greedy, fp32: the same tokens on both backends


def test_greedy_text_equals_the_transformers_backend(vgen, hgen):
    sp = SamplingParams(temperature=0.0, max_new_tokens=16)
    assert vgen.generate(PROMPTS[:4], sp) == hgen.generate(PROMPTS[:4], sp)


def test_choice_logprobs_equal_the_transformers_backend(vgen, hgen):
    from autoif_lib.autoif import nli, prompts
    from autoif_lib.spar import prompts as sp_prompts

    convs = [prompts.nli("Answer in lowercase.", "Write only lowercase letters."),
             prompts.nli("Use exactly three bullet points.", "Write a poem about the sea.")]
    convs += [sp_prompts.judge("Reply in one word.", r) + [{"role": "assistant", "content": "Final Judgement: "}]
              for r in ("Yes.", "Here is a long answer with many words in it.")]
    for choices in (list(nli.LABELS), ["Yes", "No"]):
        v_labels, v = judge.choose(vgen, convs, choices)
        h_labels, h = judge.choose(hgen, convs, choices)
        for rv, rh in zip(v, h):
            assert all(abs(a - b) < FP32_TOL for a, b in zip(rv, rh)), (rv, rh)
        assert v_labels == h_labels


def test_likelihood_judges_run_on_vllm(vgen):
    """The NLI judge and SPaR's likelihood votes pick the likelihood path on vLLM, as on transformers."""
    from autoif_lib.autoif import nli
    from autoif_lib.spar import roles

    assert judge.can_score(vgen)
    j = nli.LLMJudgeNLI(vgen, SamplingParams(temperature=0.0, max_new_tokens=12))
    assert j.mode == "likelihood"
    labels = j.predict([("Answer in lowercase.", "Write only lowercase letters.")])
    assert labels[0] in nli.LABELS
    votes = roles.Judge("llm", vgen, 3, 0.7, 3, 2, 0, "Final Judgement: ", style="likelihood").judge_many(
        [("Reply in one word.", "Yes.")])
    assert votes[0]["label"] in (True, False, None) and votes[0]["votes"]


def test_throughput_counts_tokens_with_the_vllm_tokenizer(vgen):
    from autoif_lib import throughput

    uncached = Generator(VLLM, None, progress=False, backend=vgen.backend)
    res = throughput.measure_layer(uncached, PROMPTS[:4], SamplingParams(temperature=0.0, max_new_tokens=8))
    assert res["completions"] == 4 and 0 < res["new_tokens"] <= 32 and res["tokens_per_s"] > 0


def test_replicas_give_the_single_engines_text_and_a_context_cap_is_honoured(vgen):
    """data_parallel_size 2: two engines in processes of their own, rows split between them; max_model_len
    caps the context: a longer prompt gets an empty, counted completion, the rest are cut to fit."""
    spec = ModelSpec(backend="vllm", model="embedded", dtype="float32", enforce_eager=True, kv_cache_gb=1,
                     data_parallel_size=2, max_model_len=160)
    before = _engine_pids()
    dp = Generator(spec, None, progress=False)
    sp = SamplingParams(n=2, temperature=0.9, max_new_tokens=24, seed=3)
    long_prompt = "Summarise this. " + "word " * 400
    try:
        assert dp.generate(PROMPTS, sp) == vgen.generate(PROMPTS, sp)
        assert len(_engine_pids() - before) >= 2 * 2  # each replica: its process and its engine's
        out = dp.generate([long_prompt, PROMPTS[0]], SamplingParams(temperature=0.0, max_new_tokens=24))
        assert out[0] == [""] and out[1][0]
        assert dp.backend.stats["over_context"] == 1
        near = "Repeat: " + "word " * 100  # ~130 prompt tokens: fewer than 24 new tokens fit under 160
        ids = dp.backend.prompt_ids([{"role": "user", "content": near}])
        assert 100 < len(ids) < 160
        text = dp.generate([near], SamplingParams(temperature=0.0, max_new_tokens=200))[0][0]
        assert len(dp.backend.tokenizer(text, add_special_tokens=False)["input_ids"]) <= 160 - len(ids) + 1
    finally:
        dp.close()
    assert _engine_pids() - before == set()  # every replica and its engine ended


def test_engines_are_released_in_sequence_within_a_stage(tmp_path, capsys, root):
    """A stage asking for a second model releases the first's engine before loading it (and says so); a
    released model asked for again is loaded again; the stage's end releases everything."""
    from autoif_lib.autoif.stages import EvaluateParams
    from autoif_lib.params import build
    from autoif_lib.pipeline import get_pipeline
    from autoif_lib.runs import StageContext

    ctx = StageContext(get_pipeline("autoif"), "11_evaluate", build(EvaluateParams, {}), "k", tmp_path / "store", {},
                       root)
    before = _engine_pids()
    sp = SamplingParams(temperature=0.0, max_new_tokens=4)
    a = ctx.generator(VLLM)
    a.generate(["Hi"], sp)
    a_pids = _engine_pids() - before
    assert a.loaded and a_pids
    other = ModelSpec(backend="vllm", model="embedded", dtype="float32", enforce_eager=True, kv_cache_gb=1,
                      max_model_len=512)
    b = ctx.generator(other)
    assert not a.loaded and not (a_pids & _engine_pids())  # A's engine ended before B was even asked for text
    assert "released the vllm model embedded before using embedded" in capsys.readouterr().out
    b.generate(["Hi there"], sp)
    assert b.loaded
    assert ctx.generator(VLLM) is a and not b.loaded  # back to A: B released, A reloads on use
    assert a.generate(["Hello again"], sp) and a.loaded and a.stats["loads"] == 2  # not a cached answer: reloaded
    ctx.release_models(reason="at the end")
    assert not a.loaded and _engine_pids() - before == set()


def test_a_checkpoint_just_trained_with_trl_loads_and_matches_transformers(tmp_path):
    """TRL saves fp32 weights and the tokenizer; vLLM serves them; greedy text equals the transformers
    backend's on the same checkpoint."""
    from autoif_lib import train
    from autoif_lib.train import TrainJob

    data = io.write_jsonl(tmp_path / "sft.jsonl", train.sft_records(
        [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "ok, done"}]}
         for q in PROMPTS[:4]]))
    job = TrainJob(kind="sft", model=str(__import__("autoif_lib.embedded", fromlist=["x"]).embedded_model_dir()),
                   train_file=str(data), output_dir=str(tmp_path / "sft"),
                   trl_args={"max_steps": 2, "per_device_train_batch_size": 2, "learning_rate": 1e-3, "bf16": False,
                             "max_length": 128})
    ckpt = train.run_job(job)["final_model"]
    sp = SamplingParams(temperature=0.0, max_new_tokens=12)
    v = Generator(ModelSpec(backend="vllm", model=ckpt, dtype="float32", enforce_eager=True, kv_cache_gb=1), None,
                  progress=False)
    h = Generator(ModelSpec(backend="transformers", model=ckpt, dtype="float32"), None, progress=False)
    try:
        assert v.generate(PROMPTS[:3], sp) == h.generate(PROMPTS[:3], sp)
    finally:
        v.close()
        h.close()
