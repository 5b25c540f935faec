"""Tests for autoif_lib.sandbox: the interface, the pre-check, and a hostile suite against the isolation.

    pytest -q tests/test_sandbox.py            # ~20-30 s on 2 cores; `-m slow` adds the quick benchmark

The hostile programs live in tests/hostile/, one file each, with the statuses
they may receive on a ``# expect:`` line. They all run in one batch (with
honest functions interleaved), against a canary file outside the sandbox and
a fake secret put into this process's environment before the sandbox starts.
A second sandbox with ``python_guards=False`` checks that the kernel layers
(seccomp, Landlock, privilege drop, rlimits) hold on their own. Everything is
offline; fork bombs and the like are contained by seccomp, so nothing here
can reach the host.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from autoif_lib.sandbox.host import (
    DEFAULT_ALLOWED_IMPORTS,
    STATUSES,
    Sandbox,
    SandboxConfig,
    Verdict,
    precheck,
    reason_status,
    run_verifiers,
)

HOSTILE_DIR = Path(__file__).parent / "hostile"
HOSTILE = sorted(HOSTILE_DIR.glob("*.py"))
SECRET_NAME = "AUTOIF_FAKE_SECRET"
PWNED_GLOB = "/tmp/autoif_hostile_pwned*"
CFG = SandboxConfig(timeout_s=1.0, memory_mb=256, workers=2)
# Auxiliary sandboxes start fast: no nltk/langdetect fork server.
LIGHT = dict(timeout_s=1.0, memory_mb=256, heavy_modules=(), allowed_imports=("re", "json", "string", "collections"))

HONEST = {
    "nonempty": ("def evaluate(response):\n    return len(response) > 0\n", ["pass", "pass"]),
    "digits_only": ("import re\n\ndef evaluate(response):\n    return re.fullmatch(r'[0-9]+', response) is not None\n",
                    ["fail", "fail"]),
    "startswith_slash": ("def evaluate(response):\n    return str(response).startswith('/')\n", ["pass", "pass"]),
    "re_intact": ("import re\n\ndef evaluate(response):\n"
                  "    return re.search('a', 'a') is not None and not hasattr(re, 'POISONED')\n", ["pass", "pass"]),
    "builtins_intact": ("def evaluate(response):\n    return len('abc') == 3 and isinstance(response, str) and str(1) == '1'\n",
                        ["pass", "pass"]),
    "nltk_tokens": ("import nltk\n\ndef evaluate(response):\n"
                    "    return len(nltk.tokenize.wordpunct_tokenize(response)) > 1\n", ["pass", "pass"]),
}


def _expected(path: Path) -> set[str]:
    for line in path.read_text().splitlines():
        if line.startswith("# expect:"):
            return set(line.split(":", 1)[1].split())
    raise AssertionError(f"{path.name} has no '# expect:' line")


def _statuses(row) -> list[str]:
    return [v.status for v in row]


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def secret():
    """A fake secret in os.environ *before* any sandbox starts: it must not reach the children."""
    value = "autoif-fake-secret-" + uuid.uuid4().hex
    old = os.environ.get(SECRET_NAME)
    os.environ[SECRET_NAME] = value
    yield value
    if old is None:
        os.environ.pop(SECRET_NAME, None)
    else:
        os.environ[SECRET_NAME] = old


@pytest.fixture(scope="module")
def sandbox(secret):
    with Sandbox(CFG) as sb:
        yield sb


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    path = tmp_path_factory.mktemp("canary") / "canary.txt"
    path.write_text("precious data\n")
    return path


@pytest.fixture(scope="module")
def hostile_run(sandbox, canary):
    """All hostile programs in one batch, each followed by a distinct honest function."""
    for leftover in glob.glob(PWNED_GLOB):
        os.remove(leftover)
    inputs = [str(canary), f"/proc/{os.getpid()}/environ"]
    honest = list(HONEST.items())
    functions, layout = [], []
    for k, path in enumerate(HOSTILE):
        functions.append(path.read_text())
        layout.append(("hostile", path.name))
        name, (src, want) = honest[k % len(honest)]
        functions.append(src + f"# after {path.name}\n")  # distinct source: no dedup with other runs
        layout.append(("honest", name))
    for name, (src, want) in honest:
        functions.append(src + "# at the end\n")
        layout.append(("honest", name))
    env_before = dict(os.environ)
    result = sandbox.run(functions, inputs)
    return {"result": result, "layout": layout, "inputs": inputs, "env_before": env_before, "env_after": dict(os.environ)}


# ------------------------------------------------------------ hostile suite
def test_hostile_suite_is_large_enough():
    assert len(HOSTILE) >= 30


@pytest.mark.parametrize("path", HOSTILE, ids=[p.stem for p in HOSTILE])
def test_hostile_program_gets_expected_verdict(hostile_run, path):
    rows = {name: row for (kind, name), row in zip(hostile_run["layout"], hostile_run["result"].verdicts)
            if kind == "hostile"}
    got = _statuses(rows[path.name])
    assert len(got) == len(hostile_run["inputs"])
    assert set(got) <= _expected(path), [v.detail for v in rows[path.name]]
    assert all(not v.ok for v in rows[path.name]) or set(got) == {"pass"}


def test_honest_functions_in_the_same_batch_are_unaffected(hostile_run):
    for (kind, name), row in zip(hostile_run["layout"], hostile_run["result"].verdicts):
        if kind == "honest":
            assert _statuses(row) == HONEST[name][1], (name, [v.detail for v in row])


def test_honest_functions_in_a_later_batch_are_unaffected(sandbox, hostile_run):
    res = sandbox.run([src for src, _ in HONEST.values()], hostile_run["inputs"])
    assert [_statuses(r) for r in res.verdicts] == [want for _, want in HONEST.values()]


def test_host_is_unharmed(hostile_run, canary):
    assert canary.read_text() == "precious data\n"
    assert glob.glob(PWNED_GLOB) == []
    assert hostile_run["env_after"] == hostile_run["env_before"]
    assert psutil.Process().status() != psutil.STATUS_ZOMBIE


def test_secret_is_neither_visible_nor_leaked(hostile_run, secret):
    res = hostile_run["result"]
    rows = dict(zip([n for _, n in hostile_run["layout"]], res.verdicts))
    assert _statuses(rows["21_read_env_secret.py"]) == ["fail", "fail"]  # not in the child's environment
    dump = json.dumps(res.to_dict())
    assert secret not in dump


def test_details_are_clipped(hostile_run):
    limit = CFG.max_detail_chars
    for row in hostile_run["result"].verdicts:
        for v in row:
            assert len(v.detail) <= limit


def test_poisoning_does_not_cross_functions(sandbox):
    poison = ("import re, json, collections\n"
              "re.compile = re.search = None\n"
              "json.loads = lambda s: 'poisoned'\n"
              "collections.Counter = None\n"
              "def evaluate(response):\n    return True\n")
    victim = ("import re, json, collections\n"
              "def evaluate(response):\n"
              "    return (re.search('b', response) is not None and json.loads('[1]') == [1]\n"
              "            and collections.Counter('aab')['a'] == 2)\n")
    res = sandbox.run([poison, victim, poison + "# 2\n", victim + "# 2\n"], ["abc"])
    assert [_statuses(r) for r in res.verdicts] == [["pass"], ["pass"], ["pass"], ["pass"]]


# ------------------------------------------------- kernel layers on their own
RAW_CASES = [
    # name, source (os & co are importable: python_guards=False), expected status, layer it relies on
    ("fork", "import os\ndef evaluate(r):\n    os.fork()\n    return True\n", "exception", "syscalls"),
    ("fork_bomb", "import os\ndef evaluate(r):\n    while True:\n        os.fork()\n", "exception", "syscalls"),
    ("os_system", "import os\ndef evaluate(r):\n    return os.system('touch /tmp/autoif_hostile_pwned_raw') == 0\n",
     "fail", "syscalls"),
    ("subprocess", "import subprocess\ndef evaluate(r):\n    return subprocess.run(['true']).returncode == 0\n",
     "exception", "syscalls"),
    ("socket", "import socket\ndef evaluate(r):\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n    return True\n",
     "exception", "syscalls"),
    ("kill_everything", "import os\ndef evaluate(r):\n    os.kill(-1, 9)\n    return True\n", "exception", "syscalls"),
    ("chmod", "import os\ndef evaluate(r):\n    open('f', 'w').close()\n    os.chmod('f', 0o6777)\n    return True\n",
     "exception", "syscalls"),
    ("write_outside", "def evaluate(r):\n    open('/tmp/autoif_hostile_pwned_landlock', 'w').write('x')\n    return True\n",
     "exception", "filesystem"),
    ("read_shadow", "def evaluate(r):\n    return len(open('/etc/shadow').read()) > 0\n", "exception", "filesystem"),
    ("write_private_tmp", "def evaluate(r):\n    open('x.txt', 'w').write('ok')\n    return open('x.txt').read() == 'ok'\n",
     "pass", None),
    ("threads_still_work", "import threading\ndef evaluate(r):\n    t = threading.Thread(target=lambda: None)\n"
     "    t.start()\n    t.join()\n    return True\n", "pass", None),
    ("memory_cap", "def evaluate(r):\n    return len(bytearray(2 ** 34)) > 0\n", "memory", None),
    ("secret_not_in_env", f"import os\ndef evaluate(r):\n    return {SECRET_NAME!r} in os.environ\n", "fail", None),
    ("dropped_root", "import os\ndef evaluate(r):\n    return os.getuid() == 65534 and os.geteuid() == 65534\n",
     "pass", "privileges"),
]
if platform.machine() == "x86_64":
    RAW_CASES.append(("raw_fork_syscall", "import ctypes\ndef evaluate(r):\n    return ctypes.CDLL(None).syscall(57) == -1\n",
                      "pass", "syscalls"))


@pytest.fixture(scope="module")
def raw_sandbox(secret):
    with Sandbox(SandboxConfig(python_guards=False, workers=2, **LIGHT)) as sb:
        yield sb


@pytest.fixture(scope="module")
def raw_run(raw_sandbox, canary):
    host_pid = os.getpid()
    cases = RAW_CASES + [
        ("delete_canary", f"import os\ndef evaluate(r):\n    os.remove({str(canary)!r})\n    return True\n",
         "exception", "filesystem"),
        ("read_host_environ", f"def evaluate(r):\n    return len(open('/proc/{host_pid}/environ', 'rb').read()) > 0\n",
         "exception", "filesystem"),
        ("signal_host", f"import os\ndef evaluate(r):\n    os.kill({host_pid}, 0)\n    return True\n",
         "exception", "syscalls"),
    ]
    before = len(psutil.pids())
    res = raw_sandbox.run([c[1] for c in cases], ["x"])
    return {c[0]: (c, row) for c, row in zip(cases, res.verdicts)}, before


@pytest.mark.parametrize("name", [c[0] for c in RAW_CASES] + ["delete_canary", "read_host_environ", "signal_host"])
def test_kernel_layers_hold_without_python_guards(raw_sandbox, raw_run, name):
    (_, src, want, layer), row = raw_run[0][name]
    if layer and str(raw_sandbox.isolation.get(layer, "")).startswith(("unavailable", "unchanged")):
        pytest.skip(f"{layer} layer not available here: {raw_sandbox.isolation.get(layer)}")
    assert _statuses(row) == [want], row[0].detail
    if want == "exception" and layer in ("syscalls", "filesystem"):
        assert row[0].detail.startswith("PermissionError"), row[0].detail


def test_raw_run_left_no_trace(raw_run, canary):
    assert canary.read_text() == "precious data\n"
    assert glob.glob(PWNED_GLOB) == []
    assert len(psutil.pids()) < raw_run[1] + 50  # the fork bomb did not spill onto the host


def test_fork_servers_live_in_their_own_namespaces(sandbox):
    if sandbox.isolation.get("network") != "namespace":
        pytest.skip(f"no network namespace here: {sandbox.isolation.get('network')}")
    me = os.readlink("/proc/self/ns/net")
    server = sandbox._servers[0]["light"]
    family = psutil.Process(server.proc.pid).children(recursive=True) + [psutil.Process(server.proc.pid)]
    inner = [p for p in family if os.readlink(f"/proc/{p.pid}/ns/net") != me]
    assert inner, "no fork-server process in a separate network namespace"
    assert os.readlink(f"/proc/{inner[0].pid}/ns/pid") != os.readlink("/proc/self/ns/pid")


@pytest.mark.skipif(os.geteuid() != 0 or sys.platform != "linux", reason="full isolation needs root on Linux")
def test_isolation_is_full_here_and_recorded(sandbox):
    iso = sandbox.isolation
    assert iso["level"] == "full", iso
    assert iso["syscalls"].startswith("seccomp") and iso["filesystem"].startswith("landlock")
    assert iso["privileges"].startswith("uid 65534")
    assert all(v.startswith("denied") for k, v in iso["verified"].items() if k != "write_inside_tmp")
    res = sandbox.run(["def evaluate(r):\n    return True\n"], ["x"])
    assert res.isolation["level"] == "full"


# --------------------------------------------------------------- interface
PRECHECK_CASES = [
    ("ok", "import re\ndef evaluate(response):\n    return bool(re.match('a', response))\n", None),
    ("ok_lambda", "evaluate = lambda response: True\n", None),
    ("ok_docstring_mentions_dunders", 'def evaluate(r):\n    """uses no __globals__ at all"""\n    return True\n', None),
    ("syntax", "def evaluate(response)\n    return True\n", "syntax_error: line 1: expected ':'"),
    ("syntax_line3", "import re\n\ndef evaluate(r):\nreturn 1\n", "syntax_error: line 4: expected an indented block after function definition on line 3"),
    ("not_str", None, "syntax_error: source is NoneType, not str"),
    ("too_long", "#" * 200_001, "syntax_error: source too long (200001 > 100000 chars)"),
    ("no_evaluate", "def check(response):\n    return True\n", "no_evaluate"),
    ("evaluate_nested_only", "def outer():\n    def evaluate(r):\n        return True\n", "no_evaluate"),
    ("evaluate_two_args", "def evaluate(response, instruction):\n    return True\n",
     "no_evaluate: evaluate() must accept exactly one positional argument"),
    ("evaluate_async", "async def evaluate(response):\n    return True\n",
     "no_evaluate: evaluate is async (returns a coroutine, not a bool)"),
    ("import_os", "import os\ndef evaluate(r):\n    return True\n", "forbidden_import: os"),
    ("from_import", "from subprocess import run\ndef evaluate(r):\n    return True\n", "forbidden_import: subprocess"),
    ("submodule_ok", "from nltk.tokenize import wordpunct_tokenize\ndef evaluate(r):\n    return True\n", None),
    ("relative", "from . import x\ndef evaluate(r):\n    return True\n", "forbidden_import: relative import"),
    ("import_in_function", "def evaluate(r):\n    import shutil\n    return True\n", "forbidden_import: shutil"),
    ("leaky_member", "from nltk import os\ndef evaluate(r):\n    return True\n", "forbidden_import: nltk.os"),
    ("subclasses", "def evaluate(r):\n    return object.__subclasses__()\n", "forbidden_attribute: __subclasses__"),
    ("globals", "def evaluate(r):\n    return evaluate.__globals__\n", "forbidden_attribute: __globals__"),
    ("builtins_name", "def evaluate(r):\n    return __builtins__\n", "forbidden_name: __builtins__"),
    ("dunder_import", "def evaluate(r):\n    return __import__('os')\n", "forbidden_name: __import__"),
    ("string_trick", "def evaluate(r):\n    return getattr(r, '__globals__')\n", "forbidden_attribute: __globals__ (in a string)"),
    ("frame", "import sys\ndef evaluate(r):\n    return True\n", "forbidden_import: sys"),
    ("gen_frame", "def evaluate(r):\n    return (x for x in r).gi_frame\n", "forbidden_attribute: gi_frame"),
    ("earliest_wins", "def evaluate(r):\n    return r.__dict__\nimport os\n", "forbidden_attribute: __dict__"),
]


@pytest.mark.parametrize("src,reason", [c[1:] for c in PRECHECK_CASES], ids=[c[0] for c in PRECHECK_CASES])
def test_precheck_reasons(src, reason):
    assert precheck(src) == reason
    if reason:
        assert reason_status(reason) in STATUSES


def test_precheck_respects_a_custom_allowlist():
    src = "import os\ndef evaluate(r):\n    return True\n"
    assert precheck(src, allowed_imports=DEFAULT_ALLOWED_IMPORTS + ("os",)) is None
    assert precheck("import re\ndef evaluate(r):\n    return 1\n", allowed_imports=("json",)) == "forbidden_import: re"


def test_reason_status_mapping():
    assert reason_status("syntax_error: line 3: x") == "syntax_error"
    assert reason_status("no_evaluate") == "no_evaluate"
    assert reason_status("forbidden_import: os") == "forbidden_import"
    assert reason_status("forbidden_attribute: __dict__") == "forbidden"
    assert reason_status("forbidden_name: __builtins__") == "forbidden"


COMPAT = {
    # Honest verifiers that lean on lazy imports, exec-based helpers or nltk data: the guards must not break them.
    "strptime": "import datetime\ndef evaluate(r):\n    return datetime.datetime.strptime('2024-01-02', '%Y-%m-%d').day == 2\n",
    "dataclass": "from dataclasses import dataclass\n@dataclass\nclass P:\n    x: int = 1\ndef evaluate(r):\n    return P().x == 1\n",
    "namedtuple": "from collections import namedtuple\nP = namedtuple('P', 'a b')\ndef evaluate(r):\n    return P(1, 2).b == 2\n",
    "statistics": "import statistics\ndef evaluate(r):\n    return statistics.mean([len(w) for w in r.split()]) > 1\n",
    "eval_arith": "def evaluate(r):\n    return eval('2 + 3 * 4') == 14\n",
    "super_init": ("class A:\n    def __init__(self):\n        self.v = 1\nclass B(A):\n    def __init__(self):\n"
                   "        super().__init__()\ndef evaluate(r):\n    return B().v == 1\n"),
    "hasattr_dunder": "def evaluate(r):\n    return hasattr(r, '__len__')\n",
    "encode": "def evaluate(r):\n    return r.encode('cp1252').decode('latin-1') == r\n",
    "sent_tokenize": "import nltk\ndef evaluate(r):\n    return len(nltk.sent_tokenize(r + ' Another one.')) == 2\n",
    "langdetect": "from langdetect import detect\ndef evaluate(r):\n    return detect(r) == 'en'\n",
}


def test_honest_verifiers_that_lean_on_the_runtime(sandbox):
    res = sandbox.run(list(COMPAT.values()), ["This is a plain English sentence about the weather today."])
    got = {k: (row[0].status, row[0].detail) for k, row in zip(COMPAT, res.verdicts)}
    if not os.path.isdir(os.path.join(sys.prefix, "nltk_data", "tokenizers", "punkt_tab")):
        got.pop("sent_tokenize")  # punkt_tab is built by `python -m autoif_lib.nltk_setup`
    assert {k: v for k, v in got.items() if v[0] != "pass"} == {}


def test_runs_without_namespaces():
    with Sandbox(SandboxConfig(namespaces=False, workers=1, **LIGHT)) as sb:
        assert sb.isolation["network"].startswith("shared")
        res = sb.run(["def evaluate(r):\n    return r == 'a'\n", "def evaluate(r):\n    while True:\n        pass\n"],
                     ["a", "b"])
    assert [_statuses(r) for r in res.verdicts] == [["pass", "fail"], ["timeout", "timeout"]]


def test_verdicts_shape_and_json(sandbox):
    fns = ["def evaluate(r):\n    return r == 'a'\n", "import os\n", "def evaluate(r):\n    return 1 / 0\n",
           "def evaluate(r):\n    return None\n", "x = 1 / 0\ndef evaluate(r):\n    return True\n"]
    res = sandbox.run(fns, ["a", "b", "c"])
    assert [_statuses(r) for r in res.verdicts] == [
        ["pass", "fail", "fail"], ["forbidden_import"] * 3, ["exception"] * 3, ["non_bool"] * 3, ["exception"] * 3]
    assert res.verdicts[2][0].detail == "ZeroDivisionError: division by zero"
    assert res.verdicts[3][0].detail == "returned NoneType: None"
    assert res.verdicts[4][0].detail.startswith("at module level: ZeroDivisionError")
    assert [v.ok for v in res.verdicts[0]] == [True, False, False]
    blob = json.loads(json.dumps(res.to_dict()))
    assert blob["verdicts"][0][0] == {"status": "pass", "detail": "", "ok": True}
    assert dataclasses.asdict(res.verdicts[2][1])["status"] == "exception"
    assert Verdict.from_dict(blob["verdicts"][2][1]) == res.verdicts[2][1]
    assert res.pass_rates()[0] == pytest.approx(1 / 3)
    assert res.isolation["level"] and res.stats["checks"] == 15


def test_per_function_inputs_and_edge_cases(sandbox):
    fns = ["def evaluate(r):\n    return r.isupper()\n", "def evaluate(r):\n    return len(r) == 2\n", None]
    res = sandbox.run(fns, [["AB", "ab"], ["xy"], ["z"]])
    assert [_statuses(r) for r in res.verdicts] == [["pass", "fail"], ["pass"], ["syntax_error"]]
    assert sandbox.run([], ["x"]).verdicts == []
    assert sandbox.run(fns[:1], []).verdicts == [[]]
    with pytest.raises(ValueError):
        sandbox.run(fns, [["a"], ["b"]])
    odd = sandbox.run(["def evaluate(r):\n    return r is None or isinstance(r, (int, str))\n"], ["s", 3, object()])
    assert _statuses(odd.verdicts[0]) == ["pass", "pass", "exception"]
    assert "not JSON-serialisable" in odd.verdicts[0][2].detail


def test_identical_sources_run_once(sandbox):
    src = "def evaluate(r):\n    return 'x' in r\n"
    res = sandbox.run([src, src, src + "\n"], ["x", "y"])
    assert res.stats["unique_jobs"] == 2
    assert [_statuses(r) for r in res.verdicts] == [["pass", "fail"]] * 3


def test_results_do_not_depend_on_worker_count(sandbox):
    fns = [p.read_text() for p in HOSTILE if not (_expected(p) & {"timeout", "killed", "memory"})]
    fns += [src for src, _ in HONEST.values()]
    inputs = ["Hello World", "abc 123", ""]
    two = sandbox.run(fns, inputs)
    with Sandbox(SandboxConfig(workers=1, timeout_s=1.0, memory_mb=256)) as one_worker:
        one = one_worker.run(fns, inputs)
    assert [[(v.status, v.detail) for v in r] for r in one.verdicts] == \
           [[(v.status, v.detail) for v in r] for r in two.verdicts]


def test_a_timeout_does_not_cost_the_other_inputs(sandbox):
    src = "def evaluate(r):\n    while r == 'hang':\n        pass\n    return r.startswith('ok')\n"
    res = sandbox.run([src], ["ok1", "hang", "ok2", "nope", "hang", "ok3"])
    assert _statuses(res.verdicts[0]) == ["pass", "timeout", "pass", "fail", "timeout", "pass"]
    assert res.stats["respawns"] == 2


def test_respawns_are_capped():
    with Sandbox(SandboxConfig(max_respawns=1, workers=1, **dict(LIGHT, timeout_s=0.3))) as sb:
        res = sb.run(["def evaluate(r):\n    while True:\n        pass\n"], list("abcdef"))
    row = res.verdicts[0]
    assert _statuses(row) == ["timeout"] * 6
    assert "wall-clock" in row[1].detail and row[2].detail.startswith("not run")


@pytest.mark.parametrize("policy,want", [
    ("strict", ["pass", "fail", "non_bool", "non_bool", "non_bool", "non_bool", "non_bool"]),
    ("coerce", ["pass", "fail", "pass", "fail", "pass", "fail", "non_bool"]),
    ("truthy", ["pass", "fail", "pass", "pass", "pass", "fail", "pass"]),
])
def test_non_bool_policy(policy, want):
    values = ["True", "False", "' TRUE '", "'false'", "1", "0", "[0]"]
    fns = [f"def evaluate(r):\n    return {v}\n" for v in values]
    with Sandbox(SandboxConfig(non_bool=policy, workers=1, **LIGHT)) as sb:
        res = sb.run(fns, ["x"])
    assert [r[0].status for r in res.verdicts] == want


def test_config_validation():
    with pytest.raises(ValueError):
        SandboxConfig(non_bool="maybe")
    with pytest.raises(ValueError):
        SandboxConfig(timeout_s=0)
    assert SandboxConfig(allowed_imports=["re", "json"]).allowed_imports == ("re", "json")


def test_run_verifiers_docstring_example():
    src = "def evaluate(response):\n    return len(response.split()) <= 5\n"
    res = run_verifiers([src, "import os\ndef evaluate(r): return True"],
                        ["short answer", "this one has far more than five words"],
                        config=SandboxConfig(**LIGHT))
    assert [_statuses(r) for r in res.verdicts] == [["pass", "fail"], ["forbidden_import", "forbidden_import"]]
    assert res.verdicts[1][0].detail == "forbidden_import: os"


def test_dead_fork_server_is_replaced(secret):
    with Sandbox(SandboxConfig(workers=1, **LIGHT)) as sb:
        src = "def evaluate(r):\n    return r == 'a'\n"
        assert _statuses(sb.run([src], ["a"]).verdicts[0]) == ["pass"]
        os.killpg(sb._servers[0]["light"].proc.pid, signal.SIGKILL)
        time.sleep(0.2)
        res = sb.run([src + "# again\n"], ["a", "b"])
        assert _statuses(res.verdicts[0]) == ["pass", "fail"]


FAIL_CLOSED_SCRIPT = r"""
import importlib.util, json, os, sys, tempfile
from autoif_lib.sandbox import host as S
spec = importlib.util.spec_from_file_location("zygote", os.path.join(os.path.dirname(S.__file__), "server.py"))
zygote = importlib.util.module_from_spec(spec); spec.loader.exec_module(zygote)
base = tempfile.mkdtemp(); os.chmod(base, 0o711)
cfg = {"timeout_s": 2.0, "grace_s": 5.0, "memory_mb": 256, "file_size_mb": 16, "allowed_imports": ["re"],
       "non_bool": "strict", "python_guards": False, "max_detail_chars": 300, "max_respawns": 3,
       "uid": 65534, "gid": 65534, "read_roots": S._read_roots(sys.executable, []), "nltk_data": [],
       "langdetect_seed": 0, "namespaces": False, "pid_namespace": False, "preload": ["re"], "tmp_dir": base}
out = sys.stdout
server = zygote.ForkServer(cfg, {"network": "shared", "ipc": "shared", "pid": "shared"})
server.preload(); server.prepare(); server.probe()
src = "def evaluate(r):\n    return True\n"
normal = server.run_job(src, ["a"])[0]
server.probe_layers = dict(server.probe_layers, syscalls="a layer this child will not report")
tampered = server.run_job(src, ["a", "b"])[0]
out.write(json.dumps({"normal": normal, "tampered": tampered}))
"""


def test_a_child_whose_layers_do_not_match_the_probe_runs_nothing():
    proc = subprocess.run([sys.executable, "-c", FAIL_CLOSED_SCRIPT], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["normal"] == [["pass", ""]]
    assert [s for s, _ in got["tampered"]] == ["killed", "killed"]
    assert got["tampered"][0][1].startswith("isolation layer failed in this child")


def test_close_leaves_no_processes_or_files():
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    sb = Sandbox(SandboxConfig(workers=2, **LIGHT)).start()
    root = sb._tmp_root
    sb.run(["def evaluate(r):\n    return True\n"], ["x"])
    assert {p.pid for p in me.children(recursive=True)} - before
    sb.close()
    deadline = time.monotonic() + 5
    while {p.pid for p in me.children(recursive=True)} - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not ({p.pid for p in me.children(recursive=True)} - before)
    assert not os.path.exists(root)


def test_importing_the_sandbox_is_light():
    code = "import sys, autoif_lib.sandbox; print(sorted(m for m in ('torch', 'transformers', 'nltk') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_benchmark_quick_run(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    try:
        import bench_sandbox
    finally:
        sys.path.pop(0)
    result = bench_sandbox.main(["--quick", "--out", str(tmp_path / "sandbox.json")])
    assert result["verdicts_identical"], result["mismatches"]
    assert json.loads((tmp_path / "sandbox.json").read_text())["bench"] == "sandbox"
