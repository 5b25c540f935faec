"""Run LLM-generated verification functions ``evaluate(response) -> bool`` safely, and fast.

AutoIF asks an LLM for Python verifiers and then executes them to
cross-validate test cases, filter responses and score online-DPO samples.
That code is untrusted; this module is the only place that runs it.

Usage::

    from autoif_lib.sandbox import SandboxConfig, Sandbox, run_verifiers, precheck

    cfg = SandboxConfig(timeout_s=5.0, memory_mb=512)
    res = run_verifiers([src_a, src_b], ["response 1", "response 2"], config=cfg)
    res.verdicts[0][1].status          # "pass", "fail", "timeout", ...
    res.isolation["level"]             # "full" when every kernel layer held

    with Sandbox(cfg) as sb:           # keep the fork servers warm across many calls
        for batch in batches:
            sb.run(batch.functions, batch.inputs)

    precheck("import os\\ndef evaluate(r): ...")   # -> "forbidden_import: os"

Verdicts
    ``Verdict(status, detail, ok)``; ``ok`` is True only for ``"pass"``.
    Statuses (``STATUSES``): pass, fail, syntax_error, no_evaluate,
    forbidden_import, forbidden, exception, timeout, memory, non_bool, killed.
    Verdicts never raise into the caller: whatever a function does becomes a
    status. (Malformed *arguments* -- e.g. a per-function input list of the
    wrong length -- still raise ValueError.)

Non-bool returns (``SandboxConfig.non_bool``)
    ``"strict"`` (default): only True/False count, anything else is
    ``non_bool``. ``"coerce"``: also "true"/"false" strings (any case) and
    the ints 0/1. ``"truthy"``: Python truthiness of anything.

How it runs
    Per worker (default: one per core) the host keeps a fork server: a
    separate interpreter that has preloaded the allowlisted modules, prepared
    the isolation layers, and never executes untrusted code. Functions
    importing a *heavy* module (nltk, langdetect) go to a second fork server
    that preloads those too, because fork() cost grows with the parent's
    memory. Each function gets one freshly forked child that runs all of its
    inputs, so nothing one function does to builtins, modules or globals can
    reach another. The fork server times every input (to within
    timeout_s / 10, at most 0.25 s); on a timeout or crash it kills the
    child's process group and forks a new child that resumes after the bad
    input (at most ``max_respawns`` times per function). Identical
    (source, inputs) pairs run once. Verdicts do not depend on the number of
    workers: children are independent; hash seed, langdetect seed and the
    environment are fixed.

Isolation layers (``res.isolation`` records what held: the fork server
probes them at start-up with a self-test, and a child whose layers differ
from the probe's runs nothing -- its verdicts are ``killed``)
    1. AST pre-check (``precheck``): allowlisted imports only, no dunder
       escapes, a usable ``evaluate``. Reason strings are shared with reports.
    2. Python guards in the child: restricted ``__import__`` (allowlist at
       run time), guarded getattr/vars/exec/eval/compile, and an audit hook
       refusing process/socket/ctypes/gc/kill events, writes outside the
       private temp dir and reads outside the interpreter/data roots. These
       give precise verdicts; they are not the security boundary (Python
       introspection has known escapes -- the hostile tests use one), the
       kernel layers below are.
    3. Namespaces (fork server): new network namespace (no interfaces but a
       down loopback) and IPC namespace; new PID namespace with the fork
       server as PID 1, so every descendant dies with it. Fallback when not
       root: the same inside a user namespace; else ``shared`` / recorded
       as ``unavailable`` (seccomp's socket ban and Landlock's TCP rules
       still stop networking).
    4. Landlock: read-only access to the interpreter, site-packages and NLTK
       data; read-write only to the child's private temp dir (emptied
       between functions); no TCP; no signals outside the domain. Fallback:
       the audit hook's path rules and the privilege drop.
    5. Privilege drop: root becomes uid 65534 (keeping only
       CAP_DAC_READ_SEARCH so a Python under /root stays readable).
    6. seccomp-BPF: fork/vfork/clone-without-CLONE_THREAD/execve*, sockets,
       ptrace, kill/tgkill, mounts, namespaces, io_uring, chmod/chown,
       setrlimit -> EPERM; clone3 -> ENOSYS (threads fall back to clone).
       This is the fork-bomb defence that also holds for root (RLIMIT_NPROC
       does not). Fallback where seccomp is unavailable: RLIMIT_NPROC=0
       (binds for every uid but root's, so after the privilege drop).
    7. rlimits: address space (baseline + ``memory_mb``), CPU seconds, file
       size, open files, no core dumps; a scrubbed environment (the host's
       variables never reach the fork server: PATH, LANG, TZ, PYTHONHASHSEED,
       NLTK_DATA, HOME=/nonexistent, TMPDIR=.); stdout/stderr to /dev/null.

Modules: ``policy`` (allowlist, pre-check, statuses), ``kernel``
(kernel layers), ``guards`` (Python guards, return-value policy),
``server`` (the fork server), this one (host side and API).

Importing this module is cheap: standard library only (no torch/transformers).
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
import weakref
from collections import deque
from dataclasses import asdict, dataclass, field

from .policy import (
    DEFAULT_ALLOWED_IMPORTS,
    DEFAULT_HEAVY_MODULES,
    STATUSES,
    imported_modules,
    precheck as _precheck,
    reason_status,
)

__all__ = [
    "DEFAULT_ALLOWED_IMPORTS", "DEFAULT_HEAVY_MODULES", "STATUSES", "Sandbox", "SandboxConfig",
    "SandboxResult", "Verdict", "precheck", "reason_status", "run_verifiers",
]

_CHILD_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "server.py")
_NON_BOOL_POLICIES = ("strict", "coerce", "truthy")
_PIPELINE = 2  # jobs in flight per fork server


def precheck(src, allowed_imports=DEFAULT_ALLOWED_IMPORTS) -> str | None:
    """Static check of a verifier source: None if it may run, else a reason like ``forbidden_import: os``.

    See ``autoif_lib.sandbox.policy.precheck`` for the reason vocabulary;
    ``reason_status(reason)`` gives the verdict status it maps to.
    """
    return _precheck(src, allowed_imports)


@dataclass(frozen=True)
class SandboxConfig:
    """Limits and policy for running generated verifiers (see the module docstring)."""

    timeout_s: float = field(default=5.0, metadata={"help": "Wall-clock limit per input (and for the source's module-level code)."})
    memory_mb: int = field(default=512, metadata={"help": "Address space a function may add on top of the preloaded interpreter (RLIMIT_AS)."})
    workers: int = field(default=0, metadata={"help": "Parallel fork servers; 0 = one per available core."})
    allowed_imports: tuple[str, ...] = field(default=DEFAULT_ALLOWED_IMPORTS, metadata={"help": "Top-level modules a verifier may import (submodules follow their package)."})
    non_bool: str = field(default="strict", metadata={"help": "Non-bool return policy: 'strict' (non_bool verdict), 'coerce' ('true'/'false' strings, 0/1), 'truthy'."})
    heavy_modules: tuple[str, ...] = field(default=DEFAULT_HEAVY_MODULES, metadata={"help": "Allowlisted modules preloaded only in the second ('heavy') fork server; functions importing them are routed there."})
    max_respawns: int = field(default=3, metadata={"help": "Timeouts/crashes tolerated per function; its remaining inputs are then marked without running."})
    file_size_mb: int = field(default=16, metadata={"help": "Largest file a function may write in its private temp dir (RLIMIT_FSIZE)."})
    max_detail_chars: int = field(default=300, metadata={"help": "Verdict details (exception messages, reprs) are clipped to this length."})
    max_source_chars: int = field(default=100_000, metadata={"help": "Longer sources are rejected as syntax_error before parsing."})
    python_guards: bool = field(default=True, metadata={"help": "AST pre-check, runtime import allowlist, restricted builtins and audit hook. False leaves only the kernel layers (for testing those)."})
    namespaces: bool = field(default=True, metadata={"help": "Put fork servers in new network/IPC namespaces (recorded fallback if the kernel refuses)."})
    pid_namespace: bool = field(default=True, metadata={"help": "Also a new PID namespace with the fork server as PID 1, so no descendant can outlive it."})
    sandbox_uid: int = field(default=65534, metadata={"help": "When running as root, children drop to this uid (nobody)."})
    sandbox_gid: int = field(default=65534, metadata={"help": "... and this gid (nogroup)."})
    grace_s: float = field(default=5.0, metadata={"help": "Allowance for a child's own set-up (fork, layers) before its timeout clock starts."})
    nltk_data: tuple[str, ...] = field(default=(), metadata={"help": "Extra NLTK data dirs (read-only in children); NLTK_DATA and NLTK's default locations that exist are added."})
    langdetect_seed: int = field(default=0, metadata={"help": "DetectorFactory.seed set in the fork server; langdetect is random without it."})
    python: str = field(default=sys.executable, metadata={"help": "Interpreter for the fork servers (needs the allowlisted packages)."})
    startup_timeout_s: float = field(default=120.0, metadata={"help": "How long a fork server may take to preload and probe."})
    progress_min_functions: int = field(default=100, metadata={"help": "Show a progress bar for calls with at least this many functions (0: never)."})

    def __post_init__(self):
        # Normalise list/set arguments so the config stays hashable and frozen.
        for name in ("allowed_imports", "heavy_modules", "nltk_data"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise ValueError(f"{name} must be a sequence of names, not a string")
            object.__setattr__(self, name, tuple(value))
        if self.non_bool not in _NON_BOOL_POLICIES:
            raise ValueError(f"non_bool must be one of {_NON_BOOL_POLICIES}, got {self.non_bool!r}")
        if not self.timeout_s > 0 or not self.grace_s > 0:
            raise ValueError("timeout_s and grace_s must be positive")
        if self.memory_mb < 16 or self.workers < 0 or self.max_respawns < 0:
            raise ValueError("memory_mb must be >= 16, workers and max_respawns >= 0")


@dataclass(frozen=True)
class Verdict:
    """Outcome of one function on one input. ``ok`` is True only for status ``"pass"``."""

    status: str = field(metadata={"help": "One of STATUSES."})
    detail: str = field(default="", metadata={"help": "Human-readable reason, e.g. 'ZeroDivisionError: division by zero'."})
    ok: bool = field(init=False, metadata={"help": "status == 'pass' (errors count as failures downstream)."})

    def __post_init__(self):
        object.__setattr__(self, "ok", self.status == "pass")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Verdict":
        return cls(d["status"], d.get("detail", ""))


@dataclass
class SandboxResult:
    """Verdicts of one ``Sandbox.run`` call plus the isolation actually used."""

    verdicts: list[list[Verdict]] = field(metadata={"help": "verdicts[i][j]: function i on input j."})
    isolation: dict = field(metadata={"help": "Isolation layers that held (from the fork servers' probe), workers, preloads."})
    stats: dict = field(metadata={"help": "Counts and timings of this call."})

    def pass_rates(self) -> list[float]:
        """Fraction of inputs each function passed (0.0 for a function with no inputs)."""
        return [sum(v.ok for v in row) / len(row) if row else 0.0 for row in self.verdicts]

    def to_dict(self) -> dict:
        return {"verdicts": [[v.to_dict() for v in row] for row in self.verdicts],
                "isolation": self.isolation, "stats": self.stats}


# ------------------------------------------------------------------ host side

class _ServerError(Exception):
    """A fork server died, hung, or answered nonsense."""


def _nltk_data_dirs(extra) -> list[str]:
    """NLTK's default search locations that exist (computed without importing nltk) plus explicit ones."""
    candidates = list(extra) + [p for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    for prefix in (sys.prefix, sys.base_prefix):
        candidates += [os.path.join(prefix, d) for d in ("nltk_data", "share/nltk_data", "lib/nltk_data")]
    candidates += ["/usr/share/nltk_data", "/usr/local/share/nltk_data", "/usr/lib/nltk_data",
                   "/usr/local/lib/nltk_data", os.path.expanduser("~/nltk_data")]
    seen, out = set(), []
    for p in candidates:
        real = os.path.realpath(p)
        if os.path.isdir(real) and real not in seen:
            seen.add(real)
            out.append(real)
    return out


def _read_roots(python: str, nltk_dirs) -> list[str]:
    """Directories children may read: the interpreter's prefixes and library dirs, NLTK data, zoneinfo."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p:
            roots.add(p)
    if python != sys.executable:
        roots.add(os.path.dirname(os.path.dirname(os.path.realpath(python))))
    roots.update(nltk_dirs)
    roots.add("/usr/share/zoneinfo")
    return sorted(os.path.realpath(r) for r in roots if os.path.exists(r))


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a fork server's process group (the PID-namespace waiter and the server itself)."""
    # Only while the leader is unreaped: until then its pid, and so the group
    # id, cannot have been handed to an unrelated process.
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


class _Server:
    """Host handle on one fork server process: JSON lines over its stdin/stdout."""

    def __init__(self, python: str, cfg_msg: dict, log_path: str, env: dict, cwd: str):
        self.log_path = log_path
        self.inputs_key: str | None = None
        self.ready: dict = {}
        self._buf = b""
        try:
            with open(log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [python, "-s", "-P", "-B", _CHILD_SCRIPT],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, cwd=cwd,
                    start_new_session=True, close_fds=True)
        except OSError as exc:  # e.g. a wrong SandboxConfig.python
            raise _ServerError(f"cannot start {python}: {exc}") from None
        self.send(cfg_msg)

    def send(self, msg: dict) -> None:
        try:
            self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise _ServerError(f"fork server not accepting input: {exc}{self._log_tail()}") from None

    def recv(self, deadline: float) -> dict:
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buf:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _ServerError("fork server did not answer in time")
                if not sel.select(remaining):
                    continue
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise _ServerError(f"fork server exited (code {self.proc.poll()}){self._log_tail()}")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            raise _ServerError("fork server sent malformed output") from None

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 800))
                tail = fh.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""
        return f"; log: ...{tail[-600:]}" if tail else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """Drop a failed server at once (its process group included)."""
        try:
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass
        _kill_group(self.proc)

    def close(self, wait_s: float = 2.0) -> None:
        """Ask the server to exit (EOF on its stdin); after ``wait_s``, kill its process group if it lingers."""
        try:
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass
        if wait_s <= 0:
            return
        try:
            self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            pass
        _kill_group(self.proc)
        try:
            self.proc.stdout.close()
        except OSError:
            pass


@dataclass
class _Job:
    index: int
    src: str
    profile: str
    inputs: list
    inputs_key: str | None
    verdicts: list | None = None
    respawns: int = 0
    busy_s: float = 0.0
    attempts: int = 0


def _cleanup(servers: list, tmp_root: str | None) -> None:
    for server in servers:  # EOF to all first, so they shut down in parallel
        server.close(wait_s=0)
    for server in servers:
        server.close(wait_s=1.0)
    if tmp_root:
        shutil.rmtree(tmp_root, ignore_errors=True)


class Sandbox:
    """A pool of warm fork servers. Use as a context manager; ``run`` may be called many times."""

    def __init__(self, config: SandboxConfig | None = None):
        self.config = config or SandboxConfig()
        self.workers = self.config.workers or len(os.sched_getaffinity(0))
        allowed = set(self.config.allowed_imports)
        self.heavy = tuple(m for m in self.config.heavy_modules if m in allowed)
        light = tuple(m for m in self.config.allowed_imports if m not in self.heavy)
        self.profiles = {"light": light}
        if self.heavy:
            self.profiles["heavy"] = light + self.heavy
        self._servers: list[dict[str, _Server]] = []
        self._tmp_root: str | None = None
        self._lock = threading.Lock()
        self._spawn_lock = threading.Lock()
        self._all_servers: list[_Server] = []
        self._runs = 0
        self._started = False
        self._start_error: str | None = None
        self.isolation: dict = {}
        self._finalizer = None

    # ---------------------------------------------------------- lifecycle
    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> "Sandbox":
        """Start every fork server (in parallel) and record the isolation they report."""
        if self._started:
            return self
        self._started = True
        c = self.config
        self._tmp_root = tempfile.mkdtemp(prefix="autoif-sandbox-")
        os.chmod(self._tmp_root, 0o711)  # children (uid nobody) must traverse to their own dirs
        nltk_dirs = _nltk_data_dirs(c.nltk_data)
        self._env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC",
            # Fixed hash seed: set/dict-of-str order must not differ between
            # fork servers, or verdicts could depend on the worker count.
            "PYTHONHASHSEED": "0",
            # Fixed values (not the random temp root) so nothing a child can
            # observe differs between sandboxes; "." is the child's private dir.
            "HOME": "/nonexistent", "TMPDIR": ".",
        }
        if nltk_dirs:
            self._env["NLTK_DATA"] = os.pathsep.join(nltk_dirs)
        self._cfg_base = {
            "timeout_s": c.timeout_s, "grace_s": c.grace_s, "memory_mb": c.memory_mb,
            "file_size_mb": c.file_size_mb, "allowed_imports": list(c.allowed_imports),
            "non_bool": c.non_bool, "python_guards": c.python_guards, "max_detail_chars": c.max_detail_chars,
            "max_respawns": c.max_respawns, "uid": c.sandbox_uid, "gid": c.sandbox_gid,
            "read_roots": _read_roots(c.python, nltk_dirs), "nltk_data": nltk_dirs,
            "langdetect_seed": c.langdetect_seed, "namespaces": c.namespaces, "pid_namespace": c.pid_namespace,
        }
        self._servers = [{} for _ in range(self.workers)]
        self._all_servers = []  # every server ever spawned, for the finalizer
        self._finalizer = weakref.finalize(self, _cleanup, self._all_servers, self._tmp_root)
        try:
            for slot in range(self.workers):
                for profile in self.profiles:
                    self._spawn(slot, profile)
            for slot in range(self.workers):
                for profile in self.profiles:
                    self._await_ready(self._servers[slot][profile], time.monotonic() + c.startup_timeout_s)
        except _ServerError as exc:
            self._start_error = str(exc)
            warnings.warn(f"autoif sandbox could not start: {exc}", RuntimeWarning, stacklevel=2)
        first = self._servers[0].get("light") if self._servers else None
        self.isolation = dict(first.ready.get("isolation", {})) if first and first.ready else {
            "level": f"unavailable ({self._start_error})"}
        levels = {s.ready.get("isolation", {}).get("level") for slot in self._servers for s in slot.values() if s.ready}
        self.isolation.update({
            "workers": self.workers,
            "fork_servers": {p: (self._servers[0][p].ready.get("preloaded") if p in self._servers[0] else None)
                             for p in self.profiles} if self._servers else {},
            "preload_errors": (first.ready.get("preload_errors") if first and first.ready else {}),
            "servers_agree": len(levels) <= 1,
        })
        return self

    def _spawn(self, slot: int, profile: str) -> _Server:
        work = os.path.join(self._tmp_root, f"w{slot}-{profile}-{time.monotonic_ns()}")
        os.mkdir(work, 0o711)
        cfg = dict(self._cfg_base, preload=list(self.profiles[profile]), tmp_dir=work)
        server = _Server(self.config.python, cfg, os.path.join(self._tmp_root, f"w{slot}-{profile}.log"),
                         self._env, self._tmp_root)
        self._servers[slot][profile] = server
        with self._spawn_lock:
            self._all_servers.append(server)
        return server

    def _await_ready(self, server: _Server, deadline: float) -> None:
        msg = server.recv(deadline)
        if not msg.get("ready"):
            raise _ServerError(f"fork server failed to start: {msg}")
        server.ready = msg

    def close(self) -> None:
        """Stop the fork servers (and, through the PID namespace, everything they started); remove temp files."""
        if self._finalizer is not None:
            self._finalizer()
        self._servers = []
        self._started = False

    # ---------------------------------------------------------------- run
    def run(self, functions, inputs) -> SandboxResult:
        """Verdicts for every function on its inputs: ``result.verdicts[i][j]``.

        ``inputs`` is either one list used for every function, or one list per
        function (a list whose items are all lists/tuples, of the same length
        as ``functions``).
        """
        with self._lock:
            if not self._started:
                self.start()
            return self._run(list(functions), inputs)

    def verdicts(self, functions, inputs) -> list[list[Verdict]]:
        """Just the verdict matrix of :meth:`run`: the ``runner(functions, inputs)`` the stages take."""
        return self.run(functions, inputs).verdicts

    def _run(self, functions: list, inputs) -> SandboxResult:
        t0 = time.perf_counter()
        c = self.config
        self._runs += 1
        per_function = isinstance(inputs, (list, tuple)) and len(inputs) > 0 and all(
            isinstance(x, (list, tuple)) for x in inputs)
        if per_function and len(inputs) != len(functions):
            raise ValueError(f"got {len(inputs)} input lists for {len(functions)} functions")
        input_lists = [list(x) for x in inputs] if per_function else [list(inputs)] * len(functions)

        # Inputs travel as JSON; an unserialisable input gets an exception
        # verdict of its own instead of failing the whole call.
        bad_inputs: dict[int, dict[int, Verdict]] = {}
        encoded: dict[int, tuple[str, list]] = {}  # id(list) -> (json, cleaned list)
        for lst in input_lists:
            if id(lst) in encoded:
                continue
            try:
                encoded[id(lst)] = (json.dumps(lst), lst)
            except (TypeError, ValueError):
                cleaned = []
                for item in lst:
                    try:
                        json.dumps(item)
                        cleaned.append(item)
                    except (TypeError, ValueError):
                        cleaned.append(None)
                encoded[id(lst)] = (json.dumps(cleaned), cleaned)
        for i, lst in enumerate(input_lists):
            cleaned = encoded[id(lst)][1]
            if cleaned is not lst:
                bad_inputs[i] = {j: Verdict("exception", f"TypeError: input {j} is not JSON-serialisable ({type(x).__name__})")
                                 for j, x in enumerate(lst) if cleaned[j] is None and x is not None}

        verdicts: list[list[Verdict] | None] = [None] * len(functions)
        jobs: dict[tuple[str, str], _Job] = {}
        owner: list[_Job | None] = [None] * len(functions)
        prechecked: dict = {}
        shared_key = f"r{self._runs}" if not per_function else None
        for i, src in enumerate(functions):
            lst = input_lists[i]
            if not isinstance(src, str):
                verdicts[i] = [Verdict("syntax_error", f"syntax_error: source is {type(src).__name__}, not str")] * len(lst)
                continue
            if c.python_guards:
                if src not in prechecked:
                    prechecked[src] = _precheck(src, c.allowed_imports, max_source_chars=c.max_source_chars)
                reason = prechecked[src]
                if reason:
                    verdicts[i] = [Verdict(reason_status(reason), reason)] * len(lst)
                    continue
            if not lst:
                verdicts[i] = []
                continue
            text, cleaned = encoded[id(lst)]
            key = (src, text)
            if key not in jobs:
                profile = "heavy" if self.heavy and imported_modules(src) & set(self.heavy) else "light"
                jobs[key] = _Job(len(jobs), src, profile, cleaned, shared_key)
            owner[i] = jobs[key]

        job_list = sorted(jobs.values(), key=lambda j: -len(j.inputs))  # long jobs first: less idle tail
        if job_list:
            self._dispatch(job_list)

        cache: dict[tuple[str, str], Verdict] = {}
        respawns = sum(job.respawns for job in job_list)
        for i, job in enumerate(owner):
            if job is None:
                continue
            row = []
            for status, detail in job.verdicts:
                v = cache.get((status, detail))
                if v is None:
                    v = cache[(status, detail)] = Verdict(status, detail)
                row.append(v)
            for j, v in bad_inputs.get(i, {}).items():
                row[j] = v
            verdicts[i] = row
        elapsed = time.perf_counter() - t0
        n_checks = sum(len(r) for r in verdicts)
        isolation = dict(self.isolation)
        stats = {
            "functions": len(functions), "unique_jobs": len(job_list), "checks": n_checks,
            "checks_executed": sum(len(j.inputs) for j in job_list),
            "prechecked_rejects": sum(1 for r in prechecked.values() if r),
            "heavy_jobs": sum(j.profile == "heavy" for j in job_list),
            "respawns": respawns, "elapsed_s": round(elapsed, 4),
            "server_busy_s": round(sum(j.busy_s for j in job_list), 4),
            "checks_per_s": round(n_checks / elapsed, 1) if elapsed > 0 else None,
        }
        return SandboxResult(verdicts=verdicts, isolation=isolation, stats=stats)

    def _dispatch(self, job_list: list[_Job]) -> None:
        """Feed jobs to one host thread per worker slot; each keeps its slot's fork server busy.

        Up to ``_PIPELINE`` jobs are in flight per server, so the server
        starts the next function while the host is still decoding the last
        answer. Jobs in flight at once always target the same server (profile),
        so a slot never runs more than one child at a time.
        """
        queues = {p: deque(j for j in job_list if j.profile == p) for p in self.profiles}
        payloads = {j.inputs_key: j.inputs for j in job_list if j.inputs_key}
        lock = threading.Lock()
        from ..progress import bar as progress_bar

        n_min = self.config.progress_min_functions
        bar = progress_bar(len(job_list), "sandbox", unit="fn", leave=False,
                           disable=not n_min or len(job_list) < n_min)

        def take(profile: str | None) -> _Job | None:
            with lock:
                for p in ([profile] if profile else list(queues)):
                    if queues[p]:
                        return queues[p].popleft()
            return None

        def give_back(jobs: list[_Job], error: str) -> None:
            # A server failure is never the job's doing (children cannot reach
            # their server), so each job gets one retry on a fresh server.
            for job in jobs:
                job.attempts += 1
                if job.attempts >= 2:
                    job.verdicts = [("killed", f"sandbox failure: {error}"[: self.config.max_detail_chars])] * len(job.inputs)
                else:
                    with lock:
                        queues[job.profile].appendleft(job)

        def drive(slot: int) -> None:
            inflight: deque = deque()
            while True:
                while len(inflight) < _PIPELINE:
                    job = take(inflight[0][1].profile if inflight else None)
                    if job is None:
                        break
                    try:
                        server = self._server(slot, job.profile)
                        self._submit(server, job, payloads)
                        inflight.append((server, job))
                    except _ServerError as exc:
                        self._discard(slot, job.profile)
                        give_back([j for _, j in inflight] + [job], str(exc))
                        inflight.clear()
                if not inflight:
                    return
                server, job = inflight.popleft()
                try:
                    self._collect(server, job)
                    with lock:
                        bar.update(1)
                except _ServerError as exc:
                    self._discard(slot, job.profile)
                    give_back([job] + [j for _, j in inflight], str(exc))
                    inflight.clear()

        threads = [threading.Thread(target=drive, args=(s,), daemon=True)
                   for s in range(min(self.workers, len(job_list)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        bar.close()

    def _server(self, slot: int, profile: str) -> _Server:
        """This slot's live server for a profile, (re)starting it if needed."""
        if not self._servers:
            raise _ServerError(self._start_error or "sandbox closed")
        server = self._servers[slot].get(profile)
        if server is not None and server.alive() and server.ready:
            return server
        if server is not None:
            server.kill()
        server = self._spawn(slot, profile)
        self._await_ready(server, time.monotonic() + self.config.startup_timeout_s)
        return server

    def _discard(self, slot: int, profile: str) -> None:
        server = self._servers[slot].pop(profile, None) if self._servers else None
        if server is not None:
            server.kill()

    @staticmethod
    def _submit(server: _Server, job: _Job, payloads: dict) -> None:
        msg = {"op": "job", "id": job.index, "src": job.src}
        if job.inputs_key:
            if server.inputs_key != job.inputs_key:
                server.send({"op": "inputs", "key": job.inputs_key, "inputs": payloads[job.inputs_key]})
                server.inputs_key = job.inputs_key
            msg["inputs_key"] = job.inputs_key
        else:
            msg["inputs"] = job.inputs
        server.send(msg)

    def _collect(self, server: _Server, job: _Job) -> None:
        """Read the answer to ``job`` (the oldest in flight on ``server``)."""
        c = self.config
        # A safety net only: the server enforces the per-input limits itself.
        budget = len(job.inputs) * (c.timeout_s + 0.5) + (c.max_respawns + 2) * (c.grace_s + c.timeout_s) + 30
        reply = server.recv(time.monotonic() + budget)
        if reply.get("id") != job.index or len(reply.get("verdicts") or ()) != len(job.inputs):
            raise _ServerError(f"fork server answered out of turn: {str(reply)[:200]}")
        job.verdicts = [(s if s in STATUSES else "killed", str(d)) for s, d in reply["verdicts"]]
        job.respawns = int(reply.get("respawns", 0))
        job.busy_s = float(reply.get("busy_s", 0.0))


def run_verifiers(functions, inputs, config: SandboxConfig | None = None) -> SandboxResult:
    """Run every verifier source on its inputs in a fresh sandbox (started and stopped here).

    >>> src = "def evaluate(response):\\n    return len(response.split()) <= 5\\n"
    >>> res = run_verifiers([src, "import os\\ndef evaluate(r): return True"],
    ...                     ["short answer", "this one has far more than five words"])
    >>> [[v.status for v in row] for row in res.verdicts]
    [['pass', 'fail'], ['forbidden_import', 'forbidden_import']]
    >>> res.verdicts[1][0].detail
    'forbidden_import: os'

    For repeated calls keep a ``Sandbox`` open instead (start-up preloads
    nltk/langdetect, about a second).
    """
    with Sandbox(config) as sandbox:
        return sandbox.run(functions, inputs)
