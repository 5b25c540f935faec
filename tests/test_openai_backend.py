"""OpenAIBackend dialects against a local OpenAI-compatible HTTP server (stdlib, offline).

The strict server answers HTTP 400 to any body key outside the official Chat Completions
fields, as hosted APIs do; the permissive one accepts anything (like ``vllm serve``).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from autoif_lib.models import Generator, ModelSpec, SamplingParams
from autoif_lib.models.backends import OpenAIBackend
from autoif_lib.params import ParamsError, build

# Written out here rather than taken from the backend, so the test pins the contract.
OFFICIAL = {"model", "messages", "n", "temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "stop"}
VLLM_ONLY = {"repetition_penalty", "add_generation_prompt", "continue_final_message", "echo"}

SCORE = [{"role": "user", "content": "Rate this answer from 1 to 10."}, {"role": "assistant", "content": "Score: "}]
CODE_PRIMER = "```python\ndef evaluate(response):\n    "
CODE = [{"role": "system", "content": "You write Python."},
        {"role": "user", "content": "Write evaluate()."}, {"role": "assistant", "content": CODE_PRIMER}]

_ASK_HEAD = OpenAIBackend.PREFILL_INSTRUCTION.split("{primer}")[0]


def asked_primer(messages) -> str | None:
    """The primer a folded request asks for (what an obedient hosted model would start with)."""
    content = messages[-1]["content"]
    if _ASK_HEAD not in content:
        return None
    return json.loads(content[content.rindex(_ASK_HEAD) + len(_ASK_HEAD):])


def obedient(body) -> str:
    """A deterministic 'model': starts with the asked primer, then something from the prompt."""
    msgs = body["messages"]
    primer = asked_primer(msgs)
    if primer is None:
        last = msgs[-1]
        if last["role"] == "assistant":  # vLLM continue_final_message: only the continuation comes back
            return "7"
        return f"echo: {last['content']}"
    return primer + ("return True\n```" if primer.startswith("```") else "7")


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def _send(self, status: int, obj) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with srv.lock:
            srv.requests.append(body)
            status = srv.statuses.pop(0) if srv.statuses else 200
        if self.path != "/v1/chat/completions":
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        unknown = sorted(set(body) - OFFICIAL)
        if srv.strict and unknown:
            with srv.lock:
                srv.rejected.append(unknown)
            return self._send(400, {"error": {"message": f"Unrecognized request argument supplied: {unknown[0]}",
                                              "type": "invalid_request_error", "param": unknown[0], "code": None}})
        if srv.strict and len(body.get("stop") or []) > 4:
            return self._send(400, {"error": {"message": "'stop': array too long", "type": "invalid_request_error"}})
        if status != 200:
            return self._send(status, {"error": {"message": "try again"}})
        self._send(200, {"object": "chat.completion", "model": body["model"],
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": srv.reply(body)}}]})


def _serve(strict: bool):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.lock = threading.Lock()
    srv.strict, srv.requests, srv.rejected, srv.statuses, srv.reply = strict, [], [], [], obedient
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    return srv


@pytest.fixture
def strict():
    srv = _serve(strict=True)
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def permissive():
    srv = _serve(strict=False)
    yield srv
    srv.shutdown()
    srv.server_close()


def _gen(srv, sleeps=None, **spec_kw):
    spec = ModelSpec(backend="openai", model="served", base_url=f"http://127.0.0.1:{srv.server_port}/v1",
                     **spec_kw)
    sleep = (lambda s: sleeps.append(s)) if sleeps is not None else (lambda s: None)
    return Generator(spec, None, backend=OpenAIBackend(spec, sleep=sleep), progress=False)


def test_dialect_defaults_to_standard_and_is_checked():
    assert ModelSpec().openai_dialect == "standard"
    assert build(ModelSpec, {"backend": "openai", "openai_dialect": "vllm"}).openai_dialect == "vllm"
    with pytest.raises(ParamsError, match="openai_dialect"):
        build(ModelSpec, {"openai_dialect": "hosted"})


def test_standard_dialect_runs_prefill_and_repetition_penalty_on_a_strict_server(strict):
    g = _gen(strict)
    sp = SamplingParams(repetition_penalty=1.15, temperature=0.0, max_new_tokens=32, seed=1)
    with pytest.warns(UserWarning, match="repetition_penalty"):
        out = g.generate([SCORE, CODE, "plain question"], sp)
    assert strict.rejected == []  # the server saw no unknown field
    assert len(strict.requests) == 3
    for body in strict.requests:
        assert set(body) <= OFFICIAL and not set(body) & VLLM_ONLY
        assert body["messages"][-1]["role"] == "user"  # the primer is not sent as an assistant turn
        assert body["n"] == 1 and body["max_tokens"] == 32 and isinstance(body["seed"], int)
        assert "stop" not in body  # empty stop is omitted
    by_last = {b["messages"][-1]["content"].split("\n")[0]: b for b in strict.requests}
    score = by_last["Rate this answer from 1 to 10."]
    assert score["messages"] == [{"role": "user", "content": SCORE[0]["content"] + "\n\n"
                                  + OpenAIBackend.PREFILL_INSTRUCTION.format(primer=json.dumps("Score: "))}]
    code = by_last["Write evaluate()."]
    assert [m["role"] for m in code["messages"]] == ["system", "user"]
    assert asked_primer(code["messages"]) == CODE_PRIMER  # folded verbatim, trailing indent included
    # Returned text has the same shape as with real prefill: the primer once, then the continuation.
    assert out == [["Score: 7"], [CODE_PRIMER + "return True\n```"], ["echo: plain question"]]


def test_standard_reply_that_ignores_the_primer_still_starts_with_it(strict):
    strict.reply = lambda body: "  I would say 7"
    out = _gen(strict).generate([SCORE], SamplingParams())
    assert out == [["Score: I would say 7"]]
    strict.reply = lambda body: "Score:8"  # echoed with different trailing whitespace: not doubled
    assert _gen(strict).generate([SCORE], SamplingParams(seed=5)) == [["Score: 8"]]


def test_repetition_penalty_is_never_sent_in_standard_mode(permissive):
    g = _gen(permissive)  # permissive: a leaked field would not be caught by a 400, only here
    with pytest.warns(UserWarning, match="repetition_penalty"):
        for rp in (0.5, 1.15, 3.0):
            for conv in (SCORE, CODE, "no prefill"):
                g.generate([conv], SamplingParams(n=2, repetition_penalty=rp, stop=("###",)))
    assert len(permissive.requests) == 18
    for body in permissive.requests:
        assert "repetition_penalty" not in body
        assert set(body) <= OFFICIAL, set(body) - OFFICIAL


def test_standard_stop_strings_fit_the_official_limit(strict):
    strict.reply = lambda body: "a1b2c3d4e5f6"
    sp = SamplingParams(stop=("6", "5", "4", "3", "2", "", "1"))
    out = _gen(strict).generate(["count"], sp)
    assert strict.rejected == [] and strict.requests[0]["stop"] == ["6", "5", "4", "3"]
    assert out == [["a"]]  # every stop string is still applied client-side
    # A stop string inside the primer is not sent (it would end the reply while the primer is echoed).
    strict.requests.clear()
    strict.reply = obedient
    out = _gen(strict).generate([CODE], SamplingParams(stop=("```", "\n\n")))
    assert strict.requests[0]["stop"] == ["\n\n"]
    assert out == [[CODE_PRIMER + "return True\n"]]  # cut at the closing fence, after the primer


def test_vllm_dialect_sends_vllm_fields(permissive):
    g = _gen(permissive, openai_dialect="vllm")
    out = g.generate([SCORE, "plain"], SamplingParams(repetition_penalty=1.15, stop=("###",)))
    assert out == [["Score: 7"], ["echo: plain"]]
    by_role = {b["messages"][-1]["role"]: b for b in permissive.requests}
    pre = by_role["assistant"]
    assert pre["messages"] == SCORE  # the primer is sent as the final assistant message, unchanged
    assert pre["add_generation_prompt"] is False and pre["continue_final_message"] is True
    assert pre["repetition_penalty"] == 1.15 and pre["stop"] == ["###"]
    plain = by_role["user"]
    assert plain["repetition_penalty"] == 1.15
    assert "continue_final_message" not in plain and "add_generation_prompt" not in plain
    permissive.requests.clear()
    g.generate([SCORE], SamplingParams(repetition_penalty=1.0))
    # sent even at their neutral values: the server's generation_config defaults must not apply
    assert permissive.requests[0]["repetition_penalty"] == 1.0
    assert permissive.requests[0]["top_k"] == 0 and permissive.requests[0]["min_p"] == 0.0


def test_rejected_request_fails_at_once_without_retries(strict):
    sleeps = []
    g = _gen(strict, sleeps=sleeps, openai_dialect="vllm", max_retries=5)
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"HTTP 400.*Unrecognized request argument.*'standard'"):
        g.generate([SCORE], SamplingParams(repetition_penalty=1.15))
    assert time.perf_counter() - t0 < 2.0
    assert len(strict.requests) == 1 and sleeps == []  # a 400 is final: no retry, no backoff


@pytest.mark.parametrize("status", [401, 404, 422])
def test_other_client_errors_are_not_retried(strict, status):
    strict.statuses = [status]
    sleeps = []
    with pytest.raises(RuntimeError, match=f"HTTP {status}"):
        _gen(strict, sleeps=sleeps, max_retries=3).generate(["q"])
    assert len(strict.requests) == 1 and sleeps == []


def test_rate_limit_is_retried_with_backoff(strict):
    strict.statuses = [429, 503]
    sleeps = []
    out = _gen(strict, sleeps=sleeps, max_retries=3).generate(["q"])
    assert out == [["echo: q"]] and len(strict.requests) == 3 and len(sleeps) == 2
    assert strict.requests[0] == strict.requests[-1]  # a retry resends the same body


def test_fold_prefill_shapes():
    fold = OpenAIBackend.fold_prefill
    original = [dict(m) for m in SCORE]
    folded = fold(original, "Score: ")
    assert original == SCORE  # the input is not mutated
    assert len(folded) == 1 and folded[0]["content"].startswith(SCORE[0]["content"] + "\n\n")
    # No user turn right before the primer: the request becomes its own user turn.
    only_sys = fold([{"role": "system", "content": "s"}, {"role": "assistant", "content": "- "}], "- ")
    assert [m["role"] for m in only_sys] == ["system", "user"] and asked_primer(only_sys) == "- "
    # An empty assistant turn primes nothing and is dropped; a conversation ending in user is kept.
    assert fold([{"role": "user", "content": "u"}, {"role": "assistant", "content": ""}], "") == [
        {"role": "user", "content": "u"}]
    assert fold([{"role": "user", "content": "u"}], "") == [{"role": "user", "content": "u"}]


def test_strip_echoed_primer():
    strip = OpenAIBackend.strip_echoed_primer
    assert strip("Score: 7", "Score: ") == "7"
    assert strip("\nScore: 7", "Score: ") == "7"
    assert strip("Score:\n7", "Score: ") == "7"
    assert strip("7", "Score: ") == "7"
    assert strip(" 7", "Score: ") == "7"  # the primer already ends in a space
    assert strip(" 7", "(") == " 7"
    assert strip("- a\n- b", "- ") == "a\n- b"
    assert strip(CODE_PRIMER + "return 1", CODE_PRIMER) == "return 1"
    # Different indent after the echoed primer: the primer's own indent is kept, not doubled.
    assert strip("```python\ndef evaluate(response):\n  return 1", CODE_PRIMER) == "return 1"
