"""Fork server ("zygote") for autoif_lib.sandbox: runs as its own interpreter, forks one child per verifier.

Not imported by anything; the host starts it as a script::

    python -s -P -B autoif_lib/sandbox/server.py     # then speaks JSON lines on stdin/stdout

Lifecycle:

1. Read the config line. Enter fresh network/IPC/PID namespaces (as PID 1 of
   its own PID namespace, so everything it spawns dies with it). Preload the
   allowlisted modules for its profile (nltk/langdetect only in the "heavy"
   profile), warm langdetect with a fixed seed, prepare every layer that can
   be prepared (Landlock rulesets, the BPF program, rlimit values, guards),
   gc.freeze(), then fork one probe child to record which isolation layers
   really hold, and report ``{"ready": ...}``.
2. For each job ``{"op": "job", "src", "inputs" | "inputs_key"}`` fork a child
   that applies every layer (kernel + guards), executes the
   source once, and streams one result line per input. The zygote itself
   never executes untrusted code, so every child starts from the same clean
   state. A per-input wall-clock deadline is enforced here: on expiry the
   child is SIGKILLed and a new one resumes after the offending input.
3. Answer ``{"id", "verdicts": [[status, detail], ...]}``; exit on EOF.

Messages from a child are untrusted (the verifier shares its process): they
are size-limited, validated, and can only ever affect that child's own
function.
"""

from __future__ import annotations

import fcntl
import gc
import importlib.util
import json
import os
import select
import shutil
import signal
import stat
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name: str):
    """Load a sibling module by path (the package itself is never imported here)."""
    spec = importlib.util.spec_from_file_location(f"_autoif_{name}", os.path.join(_HERE, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


policy = _load("policy")
sos = _load("kernel")
guards_mod = _load("guards")

MAX_LINE = 64 * 1024  # longest message a child may send
PROBE_SRC = "def evaluate(response):\n    return response == 'probe'\n"


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _exit_status(status: int) -> tuple[str, str]:
    """(status, detail) for a child that died without reporting."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU:
            return "timeout", "CPU time limit exceeded (SIGXCPU)"
        hint = {signal.SIGSEGV: " (likely a C stack overflow from deep recursion)",
                signal.SIGABRT: " (likely the interpreter aborting when out of memory)",
                signal.SIGKILL: " (killed from outside the sandbox)"}.get(sig, "")
        return "killed", f"child died from {_signal_name(sig)}{hint}"
    return "killed", f"child exited with code {os.WEXITSTATUS(status)} before reporting"


# --------------------------------------------------------------------- child

def _send(fd: int, msg: dict) -> None:
    data = (json.dumps(msg, ensure_ascii=True) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


def _self_test(tmp: str) -> dict:
    """Probe only: check that the layers deny what they claim to (recorded in results.isolation)."""
    import socket
    checks = {}

    def attempt(name, fn):
        try:
            fn()
            checks[name] = "ALLOWED"
        except OSError as exc:
            checks[name] = f"denied ({type(exc).__name__}: errno {exc.errno})"
    attempt("fork", lambda: os._exit(0) if os.fork() == 0 else None)
    attempt("socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
    attempt("write_outside_tmp", lambda: open(os.path.join(os.path.dirname(tmp), "probe-escape"), "w").close())
    attempt("read_proc_environ", lambda: open("/proc/1/environ", "rb").read(1))
    attempt("kill_parent", lambda: os.kill(os.getppid(), 0))
    with open(os.path.join(tmp, "probe"), "w") as fh:
        checks["write_inside_tmp"] = "allowed" if fh.write("x") else "?"
    return checks


def child_main(server: "ForkServer", src: str, inputs: list, start: int, ctl: int, dat: int, probe: bool) -> None:
    """Body of a forked child: isolate, execute the source once, report each input. Never returns.

    Everything that can be prepared is prepared by the fork server; what is
    left here is a handful of syscalls, because each Python-level step in a
    fresh fork pays copy-on-write page faults.
    """
    os.setsid()  # own process group, so the zygote can kill it (and any thread) wholesale
    if server.pid != 1:
        # Outside a PID namespace nothing else ties us to the zygote's lifetime.
        sos.set_pdeathsig(signal.SIGKILL)
        if os.getppid() != server.pid:
            os._exit(71)  # the zygote died before prctl took effect
    for fd in (0, 1, 2):
        os.dup2(server.devnull, fd)
    sys.stderr = server.null_out  # (sys.stdout/stdin already point to /dev/null in the zygote)
    tmp = server.tmp
    os.chdir(tmp)

    cfg = server.cfg
    layers = {"rlimits": sos.apply_rlimits(server.rlimits, cfg["timeout_s"] * (len(inputs) - start + 1) + 1)}
    sos.set_no_new_privs()
    ruleset = server.ruleset
    layers["filesystem"] = server.landlock_desc if ruleset is None or sos.enforce_landlock(ruleset) \
        else "unavailable: landlock_restrict_self failed"
    privileges = server.privileges
    layers["privileges"] = server.privileges_desc if privileges is None or sos.enforce_privileges(privileges) \
        else "unavailable: could not drop root"
    layers["syscalls"] = server.seccomp_desc if server.seccomp is None or sos.enforce_seccomp(server.seccomp) \
        else "unavailable: seccomp filter refused"
    # Only the result pipes (and the /dev/null behind sys.stdout/stdin)
    # survive: no host/zygote pipes, rulesets or log file.
    low = 3
    for keep in sorted({ctl, dat, *server.null_fds}):
        os.closerange(low, keep)
        low = keep + 1
    os.closerange(low, 1 << 16)
    if probe:
        layers["verified"] = _self_test(tmp)

    if server.probe_layers is not None and layers != server.probe_layers:
        # Fail closed: a layer that held in the probe did not hold here, so
        # the source is not run at all (the verdict names the layer).
        lost = {k: v for k, v in layers.items() if server.probe_layers.get(k) != v}
        _send(ctl, {"t": "ready", "layers": layers})
        _send(ctl, {"t": "all", "s": "killed", "d": guards_mod.clip(f"isolation layer failed in this child: {lost}", 300)})
        os._exit(0)
    gc.enable()
    guards = server.guards
    if guards is not None:
        guards.armed = True
    if layers == server.probe_layers:
        os.write(ctl, server.ready_line)  # the usual case, pre-encoded
    else:
        _send(ctl, {"t": "ready", "layers": layers})  # the probe

    limit = cfg["max_detail_chars"]
    classify, describe_exception, clip = guards_mod.classify, guards_mod.describe_exception, guards_mod.clip

    def outcome_of_exception(exc: BaseException) -> tuple[str, str]:
        if isinstance(exc, MemoryError):
            return "memory", describe_exception(exc, limit)
        if isinstance(exc, guards_mod.SandboxImportError):
            return "forbidden_import", describe_exception(exc, limit)
        if isinstance(exc, guards_mod.SandboxViolation):
            return "forbidden", describe_exception(exc, limit)
        return "exception", describe_exception(exc, limit)

    # ---- module level: once per child. The namespace is a real module in
    # sys.modules, as exec'd code would have in AutoIF's scripts: dataclasses,
    # typing and pickle look classes up by their __module__.
    module = type(sys)("__verifier__")
    ns = module.__dict__
    ns["__builtins__"] = server.ns_builtins
    sys.modules["__verifier__"] = module
    outcome = None
    try:
        exec(compile(src, "<verifier>", "exec"), ns)
        evaluate = ns.get("evaluate")
        if not callable(evaluate):
            outcome = ("no_evaluate", "no_evaluate: no callable evaluate after running the source")
    except SyntaxError as exc:
        outcome = ("syntax_error", clip(f"syntax_error: line {exc.lineno}: {exc.msg}", limit))
    except BaseException as exc:
        status, detail = outcome_of_exception(exc)
        outcome = (status, f"at module level: {detail}")
    if guards is not None and guards.violation is not None:
        outcome = guards.violation  # a refusal sticks even if the source swallowed it
    if outcome is not None:
        _send(ctl, {"t": "all", "s": outcome[0], "d": clip(str(outcome[1]), limit)})
        os._exit(0)
    _send(ctl, {"t": "loaded"})

    # ---- one result line per input on the data pipe (read by the zygote in
    # batches, so an input costs one write, not a wake-up); "done" on the
    # control pipe wakes it at the end.
    non_bool = cfg["non_bool"]
    dumps, write = json.dumps, os.write
    for j in range(start, len(inputs)):
        if guards is not None:
            guards.reset()
        try:
            status, detail = classify(evaluate(inputs[j]), non_bool)
        except BaseException as exc:
            try:
                status, detail = outcome_of_exception(exc)
            except BaseException:
                status, detail = "exception", "<exception while describing the exception>"
        if guards is not None and guards.violation is not None:
            status, detail = guards.violation  # refused, even if the verifier caught it
        data = ('[%d,%s,%s]\n' % (j, dumps(status), dumps(clip(str(detail), limit)))).encode()
        while data:
            data = data[write(dat, data):]
    _send(ctl, {"t": "done"})
    os._exit(0)


# ---------------------------------------------------------------- fork server

class ForkServer:
    """The zygote: preloaded modules, prepared isolation layers, a private temp dir, a loop of jobs."""

    def __init__(self, cfg: dict, namespaces: dict):
        self.cfg = cfg
        self.namespaces = namespaces
        self.base = cfg["tmp_dir"]
        self.pid = os.getpid()
        self.child: int | None = None  # the running child's pid, until reaped
        self.probe_layers: dict | None = None  # what every child should report (set by probe())
        self.ready_line = b""
        self.jobs_done = 0
        self.inputs_cache: tuple[str, list] | None = None
        self.preloaded: list[str] = []
        self.preload_errors: dict[str, str] = {}
        self.root = os.geteuid() == 0
        self.dir_uid = cfg["uid"] if self.root else os.geteuid()
        self.dir_gid = cfg["gid"] if self.root else os.getegid()

    # ----------------------------------------------------------- startup
    def preload(self) -> None:
        for name in self.cfg["preload"]:
            try:
                __import__(name)
                self.preloaded.append(name)
            except Exception as exc:  # not installed / broken: recorded, not fatal
                self.preload_errors[name] = f"{type(exc).__name__}: {exc}"
        if "langdetect" in self.preloaded:
            try:
                # Load the profiles once here (not per child) and pin the seed:
                # langdetect is random unless DetectorFactory.seed is set.
                from langdetect import DetectorFactory, detect
                DetectorFactory.seed = self.cfg["langdetect_seed"]
                detect("warm up the language profiles")
                self._compact_langdetect()
            except Exception as exc:
                self.preload_errors["langdetect.profiles"] = f"{type(exc).__name__}: {exc}"
        if "nltk" in self.preloaded and self.cfg.get("nltk_data"):
            import nltk
            for path in reversed(self.cfg["nltk_data"]):
                if path not in nltk.data.path:
                    nltk.data.path.insert(0, path)

    @staticmethod
    def _compact_langdetect() -> None:
        """Store langdetect's n-gram probabilities as ``array('d')`` instead of lists of floats.

        Same values, same arithmetic (the detector only indexes them), so the
        same results -- but reading an array element creates a new float
        instead of touching a shared one. With lists, every float a child
        reads gets its refcount bumped, i.e. its page copied: thousands of
        copy-on-write faults per detect() call, which made langdetect
        verifiers ~1.5x slower in a child than in-process. It also shrinks the
        heavy fork server by ~50 MB, which makes every fork of it cheaper.
        """
        from array import array

        import langdetect.detector_factory as df
        table = getattr(getattr(df, "_factory", None), "word_lang_prob_map", None)
        if isinstance(table, dict) and all(type(v) is list for v in list(table.values())[:100]):
            for word, probs in table.items():
                table[word] = array("d", probs)

    def prepare(self) -> None:
        """Do once what every child needs: temp dirs, Landlock rulesets, the BPF program, guards, I/O sinks."""
        # Children inherit these dispositions: SIGXFSZ ignored so oversize
        # writes raise OSError(EFBIG) instead of killing; the rest default.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        self.devnull = os.open(os.devnull, os.O_RDWR)
        self.null_out = open(os.devnull, "w")
        # The zygote never uses Python-level stdin/stdout (its protocol runs on
        # private descriptors), so point them at /dev/null once, here.
        sys.stdout, sys.stdin = self.null_out, open(os.devnull)
        self.null_fds = (self.null_out.fileno(), sys.stdin.fileno())
        self.statm = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
        # One private temp dir, emptied between children (each child is reaped
        # before the next fork), so its Landlock ruleset -- bound to the dir's
        # inode -- is built once.
        self.tmp = os.path.join(self.base, "tmp")
        self.ruleset: int | None = None
        self.landlock_desc = ""
        self._make_dir()
        self.seccomp, self.seccomp_desc = sos.prepare_seccomp()
        self.privileges, self.privileges_desc = sos.prepare_privileges(self.cfg["uid"], self.cfg["gid"])
        self.guards = None
        self.ns_builtins = __builtins__ if isinstance(__builtins__, dict) else __builtins__.__dict__
        if self.cfg["python_guards"]:
            self.guards = guards_mod.Guards(policy, self.cfg["allowed_imports"], self.tmp, self.cfg["read_roots"])
            self.guards.detail_limit = self.cfg["max_detail_chars"]
            self.ns_builtins = self.guards.builtins()
            self.guards.install_audit_hook()  # unarmed here; armed in each child
            # Capability-granting modules the preloads dragged in (nltk pulls in
            # ctypes, socket, ssl): drop them from sys.modules so that importing
            # them again has to pass the audit hook, which refuses them. Code
            # holding a reference (kernel.py's ctypes) keeps working.
            for name in [m for m in sys.modules if m.split(".", 1)[0] in guards_mod._DENY_IMPORTS]:
                del sys.modules[name]

    def _make_dir(self) -> None:
        """(Re)create the temp dir, owned by the sandbox uid, and its Landlock ruleset."""
        shutil.rmtree(self.tmp, ignore_errors=True)
        os.mkdir(self.tmp, 0o700)
        if self.root:
            os.chown(self.tmp, self.dir_uid, self.dir_gid)
        if self.ruleset is not None:
            os.close(self.ruleset)
        self.ruleset, self.landlock_desc = sos.prepare_landlock(self.cfg["read_roots"], [self.tmp, os.devnull])

    def _reset_dir(self) -> None:
        """Empty the temp dir left by the previous child; rebuild it if it was tampered with.

        (Tampering should be impossible -- seccomp denies chmod/chown and
        Landlock symlinks -- but a rebuilt dir costs little and is certain.)
        """
        try:
            st = os.lstat(self.tmp)
            intact = stat.S_ISDIR(st.st_mode) and st.st_uid == self.dir_uid and stat.S_IMODE(st.st_mode) == 0o700
            if intact:
                with os.scandir(self.tmp) as it:
                    leftovers = list(it)
                for entry in leftovers:
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)
                intact = not leftovers or not os.listdir(self.tmp)
        except OSError:
            intact = False
        if not intact:
            self._make_dir()

    def _reap_orphans(self) -> None:
        if self.pid == 1:  # PID 1 of our namespace inherits any orphan
            try:
                while os.waitpid(-1, os.WNOHANG)[0] > 0:
                    pass
            except ChildProcessError:
                pass

    def probe(self) -> dict:
        """Fork one child through every layer and record what held; children must then match it."""
        verdicts, info = self.run_job(PROBE_SRC, ["probe"], probe=True)
        layers = info.get("layers") or {}
        seccomp_ok = str(layers.get("syscalls", "")).startswith("seccomp")
        dropped = str(layers.get("privileges", "")).startswith("uid")
        if not seccomp_ok and (dropped or not self.root):
            # Last-resort fork defence: RLIMIT_NPROC=0 binds for any uid but
            # root's (it also stops threads). Probe again so the recorded
            # layers include it.
            self.rlimit_nproc = 0
            verdicts, info = self.run_job(PROBE_SRC, ["probe"], probe=True)
            layers = info.get("layers") or {}
        self.probe_layers = {k: v for k, v in layers.items() if k != "verified"}
        self.ready_line = (json.dumps({"t": "ready", "layers": self.probe_layers}) + "\n").encode()
        missing = [k for k in ("filesystem", "syscalls") if str(layers.get(k, "unavailable")).startswith("unavailable")]
        if not str(self.namespaces.get("network", "")).startswith("namespace"):
            missing.append("network")
        if not dropped:
            missing.append("privileges")
        fork_defence = ("seccomp (fork/vfork/clone without CLONE_THREAD/execve -> EPERM)" if seccomp_ok else
                        "RLIMIT_NPROC=0" if self.rlimit_nproc == 0 else
                        "none (no seccomp, running as root): relies on the timeout and process-group kill")
        ok = not missing and verdicts == [["pass", ""]]
        return {
            "level": "full" if ok else f"partial (missing: {', '.join(missing) or 'probe failed'})",
            "network": self.namespaces.get("network"),
            "pid_namespace": self.namespaces.get("pid"),
            "ipc_namespace": self.namespaces.get("ipc"),
            "filesystem": layers.get("filesystem"),
            "privileges": layers.get("privileges"),
            "syscalls": layers.get("syscalls"),
            "fork_defence": fork_defence,
            "rlimits": layers.get("rlimits"),
            "environment": "scrubbed by the host; children see only " + ", ".join(sorted(os.environ)),
            "python_guards": ("ast precheck + runtime import allowlist + restricted builtins + audit hook"
                              if self.cfg["python_guards"] else "off"),
            "process_model": "fork server; one fresh child per function (per input after a timeout)",
            "verified": layers.get("verified", {}),
            "probe_verdict": verdicts[0] if verdicts else None,
        }

    # ---------------------------------------------------------- children
    rlimit_nproc: int | None = None

    def run_child(self, src, inputs, start, out, info, probe=False) -> int:
        """Run one child over inputs[start:], filling ``out``; return where the next child should start.

        Timing: the child reports results on a data pipe that is read every
        ``poll`` seconds (and on every control message), so the per-input
        wall-clock limit holds to within ``poll`` (timeout_s / 10, at most
        0.25 s) without waking this process once per input.
        """
        self._reset_dir()
        # Recomputed per child: the address-space baseline is the server's current size.
        self.rlimits = sos.rlimit_plan(memory_mb=self.cfg["memory_mb"], file_size_mb=self.cfg["file_size_mb"],
                                       nproc=self.rlimit_nproc, statm_fd=self.statm)
        ctl_r, ctl_w = os.pipe()
        dat_r, dat_w = os.pipe()
        try:
            fcntl.fcntl(dat_w, fcntl.F_SETPIPE_SZ, 1 << 20)  # room for ~20k results between reads
        except OSError:
            pass
        # O(1): moves everything tracked so far out of the collector's view, so
        # the child's first collection does not walk (and copy) zygote objects.
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(ctl_r)
                os.close(dat_r)
                child_main(self, src, inputs, start, ctl_w, dat_w, probe)
            finally:
                os._exit(70)
        os.close(ctl_w)
        os.close(dat_w)
        os.set_blocking(dat_r, False)
        self.child = pid
        timeout, grace = self.cfg["timeout_s"], self.cfg["grace_s"]
        poll = min(timeout / 10, 0.25)
        n = len(inputs)
        state = {"phase": "start", "nxt": start, "cbuf": b"", "dbuf": b""}
        deadline = time.monotonic() + grace
        try:
            while True:
                now = time.monotonic()
                if state["phase"] == "loaded":
                    before = state["nxt"]
                    bad = self._drain(dat_r, state, out, n)
                    if bad:
                        return self._violation(out, "loaded", state["nxt"], bad)
                    if state["nxt"] >= n:
                        return n
                    if state["nxt"] != before:
                        deadline = now + timeout
                if now >= deadline:
                    nxt = state["nxt"]
                    if state["phase"] == "loaded":
                        out[nxt] = ["timeout", f"exceeded the {timeout:g}s wall-clock limit"]
                        return nxt + 1
                    if state["phase"] == "ready":
                        self._fill(out, nxt, "timeout", f"module-level code exceeded the {timeout:g}s limit")
                    else:
                        self._fill(out, nxt, "killed", f"sandbox child did not start within {grace:g}s")
                    return n
                wait = deadline - now
                if state["phase"] == "loaded":
                    wait = min(wait, poll)
                if not select.select([ctl_r], [], [], wait)[0]:
                    continue
                data = os.read(ctl_r, 65536)
                if not data:  # EOF: the child is gone (or closed its pipe)
                    phase = state["phase"]
                    if phase == "loaded":
                        bad = self._drain(dat_r, state, out, n)
                        if bad:
                            return self._violation(out, phase, state["nxt"], bad)
                        if state["nxt"] >= n:
                            return n
                    status, detail = self._death(pid)
                    nxt = state["nxt"]
                    if phase == "loaded":
                        out[nxt] = [status, detail]
                        return nxt + 1
                    self._fill(out, nxt, status, ("at module level: " if phase == "ready" else "during start-up: ") + detail)
                    return n
                state["cbuf"] += data
                if len(state["cbuf"]) > MAX_LINE:
                    return self._violation(out, state["phase"], state["nxt"], "an oversized message")
                while b"\n" in state["cbuf"]:
                    line, state["cbuf"] = state["cbuf"].split(b"\n", 1)
                    msg = self._control(line, state["phase"])
                    if msg is None:
                        return self._violation(out, state["phase"], state["nxt"], "a malformed message")
                    kind, payload = msg
                    if kind == "ready":
                        state["phase"], info["layers"] = "ready", payload
                    elif kind == "loaded":
                        state["phase"] = "loaded"
                    elif kind == "all":
                        self._fill(out, state["nxt"], *payload)
                        return n
                    elif kind == "done":
                        bad = self._drain(dat_r, state, out, n)
                        if bad or state["nxt"] < n:
                            return self._violation(out, "loaded", state["nxt"], bad or "'done' before all results")
                        return n
                    deadline = time.monotonic() + timeout
        finally:
            os.close(ctl_r)
            os.close(dat_r)
            if self.child is not None:
                # Kill and reap before anything else: the next fork is much
                # cheaper when no previous child is still tearing down, and the
                # temp dir is only emptied once nobody can write to it.
                for kill in (os.killpg, os.kill):
                    try:
                        kill(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                self._wait(pid, block=True)
            self._reap_orphans()

    def _wait(self, pid: int, block: bool) -> int | None:
        """Reap the child; its wait status, or None if it is still running."""
        try:
            done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            self.child = None
            return 0
        if not done:
            return None
        self.child = None
        return status

    def _drain(self, fd: int, state: dict, out: list, n: int) -> str | None:
        """Read every result the child has written so far into ``out``; a complaint string on bad data."""
        while True:
            try:
                chunk = os.read(fd, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                break
            state["dbuf"] += chunk
        buf = state["dbuf"]
        if b"\n" not in buf:
            return "an oversized result" if len(buf) > MAX_LINE else None
        complete, _, state["dbuf"] = buf.rpartition(b"\n")
        try:
            rows = json.loads(b"[" + complete.replace(b"\n", b",") + b"]")
        except ValueError:
            return "a malformed result"
        limit = self.cfg["max_detail_chars"]
        for row in rows:
            nxt = state["nxt"]
            if (not isinstance(row, list) or len(row) != 3 or row[0] != nxt or nxt >= n
                    or row[1] not in policy.STATUSES or not isinstance(row[2], str)):
                return "a malformed result"
            out[nxt] = [row[1], guards_mod.clip(row[2], limit)]
            state["nxt"] = nxt + 1
        return None

    def _violation(self, out, phase: str, nxt: int, what: str) -> int:
        """A child broke the protocol: it is killed; blame the input (or, before loading, all inputs)."""
        detail = f"child sent {what} (protocol violation)"
        if phase == "loaded":
            out[nxt] = ["killed", detail]
            return nxt + 1
        self._fill(out, nxt, "killed", detail)
        return len(out)

    def _death(self, pid: int) -> tuple[str, str]:
        """Wait briefly for a child that closed its pipe and describe how it ended."""
        deadline = time.monotonic() + 1.0
        while True:
            status = self._wait(pid, block=False)
            if status is not None:
                return _exit_status(status)
            if time.monotonic() > deadline:
                return "killed", "child closed its result pipe and did not exit"
            time.sleep(0.002)

    def _control(self, line: bytes, phase: str):
        """Validate one control message from a child; None means protocol violation."""
        if len(line) > MAX_LINE:
            return None
        try:
            msg = json.loads(line)
            kind = msg["t"]
        except (ValueError, KeyError, TypeError):
            return None
        if kind == "ready" and phase == "start" and isinstance(msg.get("layers"), dict):
            return "ready", msg["layers"]
        if kind == "loaded" and phase == "ready":
            return "loaded", None
        if kind == "done" and phase == "loaded":
            return "done", None
        if kind == "all" and phase == "ready":
            status, detail = msg.get("s"), msg.get("d", "")
            if status not in policy.STATUSES or not isinstance(detail, str):
                return None
            return "all", [status, guards_mod.clip(detail, self.cfg["max_detail_chars"])]
        return None

    @staticmethod
    def _fill(out, start, status, detail) -> None:
        for j in range(start, len(out)):
            out[j] = [status, detail]

    def run_job(self, src: str, inputs: list, probe: bool = False):
        """All verdicts for one function; respawns after a timeout/crash up to max_respawns times."""
        n = len(inputs)
        out: list = [None] * n
        info: dict = {"respawns": 0}
        start = 0
        while start < n:
            start = self.run_child(src, inputs, start, out, info, probe=probe)
            if start < n:
                info["respawns"] += 1
                if info["respawns"] > self.cfg["max_respawns"]:
                    self._fill(out, start, out[start - 1][0],
                               f"not run: the function already failed {info['respawns']} inputs by timeout/crash")
                    break
        return out, info

    # -------------------------------------------------------------- loop
    def serve(self, proto_in, proto_out: int, ready: dict) -> None:
        _send(proto_out, ready)
        for line in proto_in:
            msg = json.loads(line)
            op = msg.get("op")
            if op == "exit":
                break
            if op == "inputs":
                self.inputs_cache = (msg["key"], msg["inputs"])
                continue
            if op != "job":
                continue
            if "inputs" in msg:
                inputs = msg["inputs"]
            elif self.inputs_cache and self.inputs_cache[0] == msg.get("inputs_key"):
                inputs = self.inputs_cache[1]
            else:
                _send(proto_out, {"id": msg["id"], "error": "unknown inputs_key"})
                continue
            t0 = time.perf_counter()
            verdicts, info = self.run_job(msg["src"], inputs)
            info["busy_s"] = time.perf_counter() - t0
            self.jobs_done += 1
            if self.jobs_done % 10000 == 0:  # a full sweep now and then, just in case
                gc.unfreeze()
                gc.collect()
            _send(proto_out, {"id": msg["id"], "verdicts": verdicts, "respawns": info["respawns"],
                                "busy_s": round(info["busy_s"], 6)})


def main() -> None:
    # Protocol on private descriptors; fd 0 -> /dev/null and fd 1 -> the
    # stderr log, so stray prints from preloaded libraries cannot corrupt it.
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    cfg = json.loads(proto_in.readline())
    namespaces = sos.enter_namespaces(want_pid=cfg["pid_namespace"]) if cfg["namespaces"] else {
        "network": "shared (namespaces disabled)", "ipc": "shared", "pid": "shared"}
    if not str(namespaces["pid"]).startswith(("unavailable", "shared")):
        # unshare(CLONE_NEWPID) applies to our children: fork once, the child
        # is PID 1 of the new namespace and becomes the server; we just wait.
        pid = os.fork()
        if pid:
            proto_in.close()
            os.close(proto_out)
            _, status = os.waitpid(pid, 0)
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
        sos.set_pdeathsig(signal.SIGKILL)
    server = ForkServer(cfg, namespaces)
    server.preload()
    server.prepare()
    gc.collect()
    gc.freeze()  # keep the preloaded heap out of the children's collections (fewer copy-on-write faults)
    # No automatic collections in the zygote: one right after a fork writes to
    # every tracked object's header, i.e. faults in page after page that the
    # child still shares. Its own garbage is acyclic; serve() collects rarely.
    # Children re-enable the collector for the verifier (run_child freezes
    # the zygote's objects before each fork so that it only sees the child's).
    gc.disable()
    isolation = server.probe()
    ready = {"ready": True, "isolation": isolation, "preloaded": server.preloaded,
             "preload_errors": server.preload_errors, "pid": os.getpid()}
    try:
        server.serve(proto_in, proto_out, ready)
    except BrokenPipeError:
        pass


if __name__ == "__main__":
    main()
