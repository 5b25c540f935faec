"""Python-level guards inside a sandbox child, and how a return value becomes a verdict.

The kernel layers (``kernel``) are what actually contain hostile code;
these guards exist to give precise verdicts (``forbidden_import: os`` rather
than a bare PermissionError) and to stop the easy tricks before they reach
the kernel. They are built once in the fork server and armed in each
child after the kernel layers, before the untrusted source is executed:

* restricted builtins for the verifier's namespace: ``__import__`` enforces
  the allowlist at run time (covers ``__import__("os")`` built from
  strings), getattr/hasattr/setattr/delattr refuse the attribute names the
  AST pre-check refuses, ``vars`` refuses modules, exec/eval/compile
  pre-check code given as text and never fall back to the real builtins;
* an audit hook (PEP 578; cannot be removed once added) that refuses
  process, socket, ctypes, gc-introspection and signalling events, writes
  outside the private temp dir, and reads outside the allowed roots. It
  also sees code that escaped the restricted builtins.

A refusal is remembered for the current input: even if the verifier catches
the exception and returns True, the verdict is ``forbidden``/``forbidden_import``.

Usage (see ``server``)::

    g = Guards(policy, allowed_imports, tmpdir, read_roots)    # in the fork server
    g.builtins(); g.install_audit_hook()                       # built once, hook unarmed
    ...fork...
    g.armed = True                                             # in the child
    exec(compile(src, "<verifier>", "exec"), {"__name__": "__verifier__", "__builtins__": g.builtins()})
    status, detail = classify(evaluate(response), "strict")

Loaded by file path in the fork server, so standard library only.
"""

from __future__ import annotations

import ast
import builtins
import os
import reprlib
import sys
from types import ModuleType

# Audit events refused outright (exact names or prefixes ending in ".").
_DENY_EVENTS = frozenset({
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "os.kill", "os.killpg", "os.putenv", "os.unsetenv", "os.symlink", "os.link",
    "os.chmod", "os.chown", "os.chflags", "os.lchflags", "os.setxattr", "os.removexattr",
    "os.startfile", "subprocess.Popen", "pty.spawn", "signal.pthread_kill",
    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames",
    "sys.settrace", "sys.setprofile", "sys.addaudithook", "code.__new__",
    "builtins.breakpoint", "mmap.__new__", "resource.setrlimit", "resource.prlimit",
    "pickle.find_class", "webbrowser.open", "urllib.Request", "sqlite3.connect",
})
_DENY_PREFIXES = ("socket.", "ctypes.", "http.client.", "ftplib.", "smtplib.", "poplib.",
                  "imaplib.", "nntplib.", "telnetlib.", "shutil.", "syslog.", "_winapi.", "winreg.")
# Filesystem mutations: allowed only inside the private temp dir.
_WRITE_EVENTS = frozenset({"os.remove", "os.rmdir", "os.rename", "os.mkdir", "os.truncate", "os.utime"})
# Directory reads: allowed only inside the readable roots.
_READ_EVENTS = frozenset({"os.listdir", "os.scandir", "glob.glob", "os.chdir", "os.fwalk"})
# Modules that add capabilities; nobody (trusted library or not) may load them in a child.
_DENY_IMPORTS = frozenset({
    "ctypes", "_ctypes", "mmap", "resource", "pty", "multiprocessing", "_multiprocessing",
    "_posixshmem", "socket", "_socket", "ssl", "_ssl", "cffi", "_cffi_backend", "sqlite3", "_sqlite3",
})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")
# Not needed by verifiers; __loader__ would load builtin modules (posix) directly.
_BUILTINS_REMOVED = ("breakpoint", "help", "copyright", "credits", "license", "__loader__", "__spec__")


class SandboxViolation(Exception):
    """Raised (into the verifier) when it attempts an operation the sandbox refuses."""


class SandboxImportError(ImportError):
    """Raised (into the verifier) when it imports a module outside the allowlist."""


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class Guards:
    """Per-child guard state: the allowlist, the paths, and the refusal recorded for the current input."""

    def __init__(self, policy, allowed_imports, tmpdir: str, read_roots):
        self.policy = policy
        self.allowed = frozenset(allowed_imports)
        self.tmpdir = os.path.realpath(tmpdir)
        self.read_roots = tuple(os.path.realpath(p) for p in read_roots) + (self.tmpdir,)
        self.violation: tuple[str, str] | None = None
        self._builtins: dict | None = None
        # The fork server builds the guards and installs the hook once, unarmed
        # (it must keep forking and writing); each child arms its own copy.
        self.armed = False
        self.detail_limit = 300

    # -------------------------------------------------------------- refusals
    def refuse(self, status: str, detail: str, exc_type=SandboxViolation):
        """Record the first refusal for this input and raise it into the verifier."""
        detail = clip(detail, self.detail_limit)  # paths and names in it come from the verifier
        if self.violation is None:
            self.violation = (status, detail)
        raise exc_type(detail)

    def reset(self) -> None:
        self.violation = None

    # ------------------------------------------------------ restricted builtins
    def builtins(self) -> dict:
        """A private copy of the builtins namespace with the guarded replacements."""
        if self._builtins is not None:
            return self._builtins
        g = self
        real_import, real_getattr, real_setattr, real_delattr = (
            builtins.__import__, builtins.getattr, builtins.setattr, builtins.delattr)
        real_exec, real_eval, real_compile, real_vars = builtins.exec, builtins.eval, builtins.compile, builtins.vars
        forbidden_attrs = g.policy.FORBIDDEN_ATTRIBUTES | g.policy.FORBIDDEN_MODULE_ATTRS
        allowed = g.allowed
        importable = allowed | frozenset(g.policy.RUNTIME_IMPLICIT_IMPORTS)
        missing = object()

        def check_name(obj, name):
            if type(name) is str and (name in forbidden_attrs or (
                    isinstance(obj, ModuleType) and name.startswith("_") and not name.startswith("__"))):
                g.refuse("forbidden", f"forbidden_attribute: {name} (at run time)")

        def check_module(value):
            if isinstance(value, ModuleType):
                top = (real_getattr(value, "__name__", "") or "").split(".", 1)[0]
                if top not in importable:
                    g.refuse("forbidden_import", f"forbidden_import: {top} (at run time)", SandboxImportError)
            return value

        def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
            if level:
                g.refuse("forbidden_import", "forbidden_import: relative import (at run time)", SandboxImportError)
            top = str(name).split(".", 1)[0]
            if top not in importable:
                g.refuse("forbidden_import", f"forbidden_import: {name} (at run time)", SandboxImportError)
            for item in fromlist or ():
                if item in forbidden_attrs:
                    g.refuse("forbidden_import", f"forbidden_import: {name}.{item} (at run time)", SandboxImportError)
            module = real_import(name, globals, locals, fromlist, level)
            for item in fromlist or ():
                if item != "*":
                    check_module(real_getattr(module, item, None))
            return module

        def guarded_getattr(obj, name, default=missing):
            check_name(obj, name)
            value = real_getattr(obj, name) if default is missing else real_getattr(obj, name, default)
            return check_module(value)

        def guarded_hasattr(obj, name):
            check_name(obj, name)
            try:
                real_getattr(obj, name)
            except AttributeError:
                return False
            return True

        def guarded_setattr(obj, name, value):
            check_name(obj, name)
            real_setattr(obj, name, value)

        def guarded_delattr(obj, name):
            check_name(obj, name)
            real_delattr(obj, name)

        def guarded_vars(*args):
            if not args:
                return sys._getframe(1).f_locals
            if isinstance(args[0], ModuleType):
                g.refuse("forbidden", "forbidden: vars() of a module (at run time)")
            return real_vars(*args)

        def check_code(source):
            if isinstance(source, (str, bytes, bytearray)):
                text = source if isinstance(source, str) else bytes(source).decode("utf-8", "replace")
                reason = g.policy.check_snippet(text, allowed)
            elif isinstance(source, ast.AST):
                reason = g.policy.check_tree(source, allowed)
            else:
                reason = None  # a code object: it came from this guarded compile()
            if reason:
                g.refuse(g.policy.reason_status(reason), f"{reason} (in code passed to exec/eval/compile)")

        def namespaces(globals, locals):
            # Without an explicit __builtins__ the real exec/eval would insert
            # the *calling* frame's builtins -- this guard's, i.e. the real ones.
            if globals is None:
                caller = sys._getframe(2)
                globals = caller.f_globals
                locals = caller.f_locals if locals is None else locals
            if isinstance(globals, dict):
                globals.setdefault("__builtins__", g.builtins())
            return globals, locals

        def guarded_exec(source, globals=None, locals=None, /, **kw):
            check_code(source)
            globals, locals = namespaces(globals, locals)
            return real_exec(source, globals, locals, **kw)

        def guarded_eval(source, globals=None, locals=None, /):
            check_code(source)
            globals, locals = namespaces(globals, locals)
            return real_eval(source, globals, locals)

        def guarded_compile(source, filename, mode, flags=0, dont_inherit=False, optimize=-1, **kw):
            check_code(source)
            return real_compile(source, filename, mode, flags, dont_inherit, optimize, **kw)

        b = dict(builtins.__dict__)
        for name in _BUILTINS_REMOVED:
            b.pop(name, None)
        b.update({
            "__import__": guarded_import, "getattr": guarded_getattr, "hasattr": guarded_hasattr,
            "setattr": guarded_setattr, "delattr": guarded_delattr, "vars": guarded_vars,
            "exec": guarded_exec, "eval": guarded_eval, "compile": guarded_compile,
        })
        self._builtins = b
        return b

    # ------------------------------------------------------------- audit hook
    def _path(self, path) -> str | None:
        try:
            path = os.fsdecode(os.fspath(path))
        except TypeError:
            return None
        return os.path.realpath(path)

    def _may_read(self, path) -> bool:
        real = self._path(path)
        return real is not None and (real in _DEVICES or any(_within(real, r) for r in self.read_roots))

    def _may_write(self, path) -> bool:
        real = self._path(path)
        return real is not None and (real in _DEVICES or _within(real, self.tmpdir))

    def install_audit_hook(self) -> None:
        """Add the (irremovable) audit hook that enforces the event, path and import rules."""
        g = self
        deny, deny_prefixes, write_events, read_events = _DENY_EVENTS, _DENY_PREFIXES, _WRITE_EVENTS, _READ_EVENTS
        deny_imports = _DENY_IMPORTS

        def hook(event, args):
            if not g.armed:
                return
            if event == "open":
                path, mode, flags = (tuple(args) + (None, None, None))[:3]
                if isinstance(path, int):
                    return  # an already-open descriptor
                writing = bool((flags or 0) & _WRITE_FLAGS) or (isinstance(mode, str) and any(c in mode for c in "wax+"))
                if writing and not g._may_write(path):
                    g.refuse("forbidden", f"forbidden: open {path!r} for writing (outside the sandbox temp dir)")
                if not writing and not g._may_read(path):
                    g.refuse("forbidden", f"forbidden: open {path!r} (outside the readable roots)")
            elif event == "import":
                if args and str(args[0]).split(".", 1)[0] in deny_imports:
                    g.refuse("forbidden_import", f"forbidden_import: {args[0]} (at run time)", SandboxImportError)
            elif event in deny or event.startswith(deny_prefixes):
                g.refuse("forbidden", f"forbidden: {event} (at run time)")
            elif event in write_events:
                # Path arguments come first (rename has two); dir_fd-relative
                # paths are judged as if relative to cwd -- Landlock has the final word.
                for p in (a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))):
                    if not g._may_write(p):
                        g.refuse("forbidden", f"forbidden: {event} {p!r} (outside the sandbox temp dir)")
            elif event in read_events:
                p = args[0] if args else None
                if p is not None and not isinstance(p, int) and not g._may_read(p):
                    g.refuse("forbidden", f"forbidden: {event} {p!r} (outside the readable roots)")

        sys.addaudithook(hook)


# ------------------------------------------------------------------ verdicts

_repr = reprlib.Repr()
_repr.maxstring = 80
_repr.maxother = 80
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 6
_TRUE_STRINGS = {"true": True, "false": False}


def clip(text: str, limit: int) -> str:
    """Shorten ``text`` to at most ``limit`` characters, saying so."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 20)] + f"... [{len(text)} chars]"


def _type_name(value) -> str:
    return str(type.__dict__["__name__"].__get__(type(value)))


def describe_value(value) -> str:
    """Short ``type: repr`` of a returned value without reading more of it than needed."""
    if type(value) is str:
        shown = repr(value[:60]) + (f"... [{len(value)} chars]" if len(value) > 60 else "")
    else:
        try:
            shown = _repr.repr(value)
        except BaseException as exc:  # a hostile __repr__
            shown = f"<unrepresentable: {_type_name(exc)}>"
    return f"returned {_type_name(value)}: {shown}"


def describe_exception(exc: BaseException, limit: int) -> str:
    """``Type: message`` for an exception, clipped, surviving a hostile ``__str__``."""
    name = _type_name(exc)
    try:
        msg = str(exc)
    except BaseException:
        msg = "<unprintable message>"
    return clip(f"{name}: {msg}" if msg else name, limit)


def classify(value, non_bool: str) -> tuple[str, str]:
    """Map evaluate()'s return value to (status, detail) under the non_bool policy.

    * ``strict`` (default): only True/False count; anything else is ``non_bool``.
    * ``coerce``: also accept the strings "true"/"false" (any case, surrounding
      whitespace ignored) and the ints 0/1 -- what careless generated code and
      AutoIF's own ``int(res)`` / ``res == "True"`` handling amount to.
    * ``truthy``: Python truthiness of any value (AutoIF's most lenient reading).
    """
    if value is True:
        return "pass", ""
    if value is False:
        return "fail", ""
    if non_bool == "coerce":
        if type(value) is str and value.strip().lower() in _TRUE_STRINGS:
            ok = _TRUE_STRINGS[value.strip().lower()]
            return ("pass" if ok else "fail"), f"coerced from str {value.strip()!r}"
        if type(value) is int and value in (0, 1):
            return ("pass" if value else "fail"), f"coerced from int {value}"
    elif non_bool == "truthy":
        ok = bool(value)
        return ("pass" if ok else "fail"), f"truthiness of {_type_name(value)}"
    return "non_bool", describe_value(value)
