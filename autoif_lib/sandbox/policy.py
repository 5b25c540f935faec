"""What generated verifier code may do: the import allowlist, the AST pre-check, verdict statuses.

This module is pure standard library and has no side effects, because it is
loaded twice: by the host (``autoif_lib.sandbox`` re-exports ``precheck``) and,
by file path, inside the sandbox's fork server, which must not import the
``autoif_lib`` package. Keeping the reason strings here means the sandbox, the
reject reports and the tests all speak the same vocabulary.

Usage::

    from autoif_lib.sandbox.policy import precheck, reason_status
    reason = precheck(src)                 # None if OK, else e.g. "forbidden_import: os"
    status = reason_status(reason)         # -> "forbidden_import"

The pre-check is a fast first filter with readable reasons, not the security
boundary: string tricks (``getattr(x, "__glo" + "bals__")``) get past any AST
check, so the sandbox also enforces the same rules at run time and, below
that, with kernel-level isolation (see ``autoif_lib.sandbox``).
"""

from __future__ import annotations

import ast

# Modules a verifier may import (top-level names; submodules such as
# ``nltk.tokenize`` follow their package). Chosen from what AutoIF-style
# verifiers actually use: text munging, counting, regexes, language id.
# Deliberately absent: os, sys, io, subprocess, socket, importlib, builtins,
# ctypes, threading, signal, gc, inspect, types, pickle, marshal (process,
# file, network or interpreter access), and random/time (they make verdicts
# non-deterministic).
DEFAULT_ALLOWED_IMPORTS: tuple[str, ...] = (
    "abc", "bisect", "calendar", "collections", "copy", "dataclasses", "datetime",
    "decimal", "difflib", "enum", "fractions", "functools", "heapq", "html",
    "itertools", "json", "keyword", "langdetect", "math", "nltk", "numbers",
    "operator", "re", "statistics", "string", "textwrap", "typing",
    "unicodedata",
)

# Modules that allowlisted C code imports lazily on the verifier's behalf
# (datetime.strptime -> _strptime, str.encode -> encodings.*, locale-aware
# formatting -> locale). C imports go through the *calling frame's*
# __import__, i.e. the sandbox's restricted one, so the run-time guard must
# let these through; an explicit ``import _strptime`` is still refused by
# the pre-check. None of them grants process, file or network access.
RUNTIME_IMPLICIT_IMPORTS: tuple[str, ...] = ("_strptime", "encodings", "locale", "_locale")

# Allowlisted modules that are slow to import or large in memory. The sandbox
# preloads them in a second fork server used only by functions importing them,
# because fork() cost grows with the parent's memory (nltk + langdetect's
# profiles make each fork ~10x dearer than a bare interpreter).
DEFAULT_HEAVY_MODULES: tuple[str, ...] = ("nltk", "langdetect")

# Every status a Verdict can carry. "forbidden" covers what is not an import
# but is refused all the same (dunder tricks, process/file/network access
# caught at run time). Everything except "pass" counts as a failure downstream.
STATUSES: tuple[str, ...] = (
    "pass",              # evaluate returned True (or a value the non_bool policy maps to True)
    "fail",              # evaluate returned False (or a value mapped to False)
    "syntax_error",      # the source does not parse (or is too long)
    "no_evaluate",       # no usable module-level evaluate(response)
    "forbidden_import",  # imports a module outside the allowlist (pre-check or run time)
    "forbidden",         # other refused constructs/operations (dunder escapes, os.system, writes outside tmp, ...)
    "exception",         # evaluate raised; detail is "Type: message"
    "timeout",           # wall-clock (or CPU) limit exceeded
    "memory",            # MemoryError under the address-space cap
    "non_bool",          # returned something the non_bool policy does not accept
    "killed",            # the child died (signal, os._exit, crash) without reporting
)

# Attribute names that hand out interpreter internals: globals/builtins of
# other modules, frames, code objects, loaders, the class hierarchy. Blocked
# as attributes (AST), as dunder string literals (AST), and at run time in
# getattr/hasattr/setattr/delattr. Harmless dunders (__name__, __init__,
# __len__, __class__ ...) stay allowed because honest verifiers use them and
# type() already gives what __class__ gives.
FORBIDDEN_ATTRIBUTES: frozenset[str] = frozenset({
    "__subclasses__", "__globals__", "__builtins__", "__code__", "__closure__",
    "__dict__", "__bases__", "__base__", "__mro__", "__getattribute__",
    "__import__", "__loader__", "__spec__", "__self__", "__func__",
    "__reduce__", "__reduce_ex__", "__objclass__", "__wrapped__",
    "__subclasshook__", "__init_subclass__", "__set_name__", "__class_getitem__",
    "__setattr__", "__delattr__",
    "f_globals", "f_locals", "f_back", "f_builtins", "f_code", "f_trace",
    "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code",
    "tb_frame", "tb_next", "co_code", "co_consts",
})

# Module-valued attributes through which an allowlisted package leaks a
# forbidden one (``nltk.os``, ``collections._sys``, ``nltk.internals.subprocess``).
FORBIDDEN_MODULE_ATTRS: frozenset[str] = frozenset({
    "os", "_os", "sys", "_sys", "subprocess", "_subprocess", "socket", "_socket",
    "shutil", "ctypes", "_ctypes", "builtins", "_builtins", "importlib",
    "_imp", "imp", "signal", "_signal", "threading", "_thread", "multiprocessing",
    "pty", "posix", "_posixsubprocess", "gc", "inspect", "marshal", "pickle",
    "io", "_io", "mmap", "resource", "urllib", "http", "requests",
})

# Bare names with no business in a verifier: ways to import or to reach the
# real builtins, and the debugger.
FORBIDDEN_NAMES: frozenset[str] = frozenset({
    "__builtins__", "__import__", "__loader__", "__spec__", "breakpoint",
})

# Guard against pathological inputs to the (host-side) parser.
DEFAULT_MAX_SOURCE_CHARS = 100_000

# Reason prefix -> verdict status.
_PREFIX_STATUS = {
    "syntax_error": "syntax_error",
    "no_evaluate": "no_evaluate",
    "forbidden_import": "forbidden_import",
    "forbidden_attribute": "forbidden",
    "forbidden_name": "forbidden",
    "forbidden": "forbidden",
}


def reason_status(reason: str) -> str:
    """Map a pre-check reason string (``"forbidden_import: os"``) to its verdict status."""
    return _PREFIX_STATUS.get(reason.split(":", 1)[0].strip(), "forbidden")


def _parse(src: str, max_chars: int) -> tuple[ast.Module | None, str | None]:
    """Parse untrusted source, turning every way it can fail into a syntax_error reason."""
    if not isinstance(src, str):
        return None, f"syntax_error: source is {type(src).__name__}, not str"
    if len(src) > max_chars:
        return None, f"syntax_error: source too long ({len(src)} > {max_chars} chars)"
    try:
        return ast.parse(src), None
    except SyntaxError as exc:
        return None, f"syntax_error: line {exc.lineno}: {exc.msg}"
    except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
        # ValueError: NUL bytes; RecursionError/MemoryError: absurd nesting.
        return None, f"syntax_error: {type(exc).__name__}: {exc}"


def _top(name: str | None) -> str:
    return (name or "").split(".", 1)[0]


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring constants in a tree (inert text, exempt from the string check)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                out.add(id(first.value))
    return out


def _offences(tree: ast.AST, allowed: frozenset[str]) -> list[tuple[int, int, str]]:
    """All refused constructs as (line, col, reason), so the earliest can be reported."""
    found: list[tuple[int, int, str]] = []
    docstrings = _docstrings(tree)

    def add(node: ast.AST, reason: str) -> None:
        found.append((getattr(node, "lineno", 0), getattr(node, "col_offset", 0), reason))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _top(alias.name) not in allowed:
                    add(node, f"forbidden_import: {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                add(node, "forbidden_import: relative import")
            elif _top(node.module) not in allowed:
                add(node, f"forbidden_import: {node.module}")
            else:
                for alias in node.names:
                    if alias.name in FORBIDDEN_MODULE_ATTRS or alias.name in FORBIDDEN_ATTRIBUTES:
                        add(node, f"forbidden_import: {node.module}.{alias.name}")
        elif isinstance(node, ast.Attribute):
            if node.attr in FORBIDDEN_ATTRIBUTES or node.attr in FORBIDDEN_MODULE_ATTRS:
                add(node, f"forbidden_attribute: {node.attr}")
        elif isinstance(node, ast.Name):
            if node.id in FORBIDDEN_NAMES:
                add(node, f"forbidden_name: {node.id}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            # getattr(obj, "__globals__") and string.Formatter field names
            # ("0.__globals__") smuggle attribute access through a string.
            if "__" in node.value:
                for name in FORBIDDEN_ATTRIBUTES:
                    if name.startswith("__") and name in node.value:
                        add(node, f"forbidden_attribute: {name} (in a string)")
                        break
    return found


def _evaluate_problem(tree: ast.Module) -> str | None:
    """None if the module binds a callable-looking ``evaluate`` at top level, else a reason."""
    problem = "no_evaluate"
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "evaluate":
            a = node.args
            positional = len(a.posonlyargs) + len(a.args)
            required = positional - len(a.defaults)
            required_kwonly = sum(d is None for d in a.kw_defaults)
            if (positional >= 1 or a.vararg) and required <= 1 and not required_kwonly:
                problem = None  # a later redefinition wins, as it does at run time
            else:
                problem = "no_evaluate: evaluate() must accept exactly one positional argument"
        elif isinstance(node, ast.AsyncFunctionDef) and node.name == "evaluate":
            problem = "no_evaluate: evaluate is async (returns a coroutine, not a bool)"
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "evaluate" for t in targets):
                problem = None  # evaluate = lambda r: ...; callability is checked at run time
        elif isinstance(node, ast.ClassDef) and node.name == "evaluate":
            problem = "no_evaluate: evaluate is a class"
    return problem


def check_tree(tree: ast.AST, allowed_imports=DEFAULT_ALLOWED_IMPORTS) -> str | None:
    """The earliest refused construct in an already-parsed tree (for compile() of an AST at run time)."""
    found = _offences(tree, frozenset(allowed_imports))
    return min(found)[2] if found else None


def check_snippet(src, allowed_imports=DEFAULT_ALLOWED_IMPORTS, *, max_source_chars=DEFAULT_MAX_SOURCE_CHARS) -> str | None:
    """Like ``precheck`` but without requiring ``evaluate``; used on code passed to exec/eval/compile at run time."""
    tree, reason = _parse(src, max_source_chars)
    if reason:
        return reason
    found = _offences(tree, frozenset(allowed_imports))
    return min(found)[2] if found else None


def precheck(src, allowed_imports=DEFAULT_ALLOWED_IMPORTS, *, max_source_chars=DEFAULT_MAX_SOURCE_CHARS) -> str | None:
    """Static check of a verifier source: None if it may run, else a reason string.

    Reasons (the part before the first colon maps to a verdict status via
    ``reason_status``)::

        syntax_error: line 3: invalid syntax
        forbidden_import: os
        forbidden_attribute: __subclasses__
        forbidden_name: __builtins__
        no_evaluate
        no_evaluate: evaluate() must accept exactly one positional argument

    The earliest offence in the source is reported; a source with several
    problems is rejected for the first one.
    """
    tree, reason = _parse(src, max_source_chars)
    if reason:
        return reason
    found = _offences(tree, frozenset(allowed_imports))
    if found:
        return min(found)[2]
    return _evaluate_problem(tree)


def imported_modules(src) -> frozenset[str]:
    """Top-level module names a source imports anywhere (empty if it does not parse)."""
    tree, reason = _parse(src, DEFAULT_MAX_SOURCE_CHARS)
    if reason:
        return frozenset()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(_top(a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(_top(node.module))
    return frozenset(names)
