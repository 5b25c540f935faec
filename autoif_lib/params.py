"""The typed-params engine: frozen dataclasses with help text, built from plain data with checks.

Every stage declares its parameters as a frozen dataclass (in its method package,
e.g. ``autoif_lib.autoif.stages``); ``param(default, help, min=, max=, choices=,
path=)`` carries the help text and the checks. ``build`` fails fast, before any
work, with one message that names the key path, e.g.
``stages.03_cross_validate.min_fn_acc: expected float, got str 'high'``.
Nothing here knows about recipes, runs or methods: it is the leaf everything imports.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import field
from pathlib import Path
from typing import Any, Mapping


class ParamsError(ValueError):
    """A recipe or stage parameter is invalid. The message names file and key path."""


def did_you_mean(name, choices) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to a mistyped ``name``, or ``""``: every
    unknown-name error in the workbench ends this way."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def param(default: Any, help: str, **checks: Any) -> Any:
    """A dataclass field with help text and validation metadata (min, max, choices, path)."""
    meta = {"help": help, **checks}
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda d=default: _copy(d), metadata=meta)
    return field(default=default, metadata=meta)


def _copy(v: Any) -> Any:
    import copy

    return copy.deepcopy(v)


# ---------------------------------------------------------------------------
# generic dataclass construction with type checks
# ---------------------------------------------------------------------------

def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def check_value(value: Any, tp: Any, where: str, base_dir: Path | None) -> Any:
    """Check ``value`` against annotation ``tp``; return the (possibly converted) value."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return check_value(value, a, where, base_dir)
            except ParamsError:
                pass
        raise ParamsError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ParamsError(f"{where}: expected a mapping for {tp.__name__}, got {type(value).__name__} {value!r}")
        return build(tp, value, where, base_dir)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        item_tp = args[0] if args else Any
        out = [check_value(v, item_tp, f"{where}[{i}]", base_dir) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ParamsError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): check_value(v, vt, f"{where}.{k}", base_dir) for k, v in value.items()}
    if origin is typing.Literal:
        if value not in args:
            raise ParamsError(f"{where}: must be one of {list(args)}, got {value!r}")
        return value
    if tp is float:
        # ints are fine for floats; YAML 1.1 reads 5e-7 (no dot) as a string: accept a numeric string.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{where}: expected float, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{where}: expected int, got {type(value).__name__} {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{where}: expected bool (true/false), got {type(value).__name__} {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{where}: expected str, got {type(value).__name__} {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ParamsError(f"{where}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def _check_meta(value: Any, meta: Mapping[str, Any], where: str, base_dir: Path | None) -> None:
    if value is None:
        return
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and value < lo:
        raise ParamsError(f"{where}: must be >= {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise ParamsError(f"{where}: must be <= {hi}, got {value!r}")
    choices = meta.get("choices")
    if choices is not None:
        items = value if isinstance(value, (list, tuple)) else [value]
        for v in items:
            if v not in choices:
                raise ParamsError(f"{where}: must be one of {list(choices)}, got {v!r}")
    if meta.get("path") and value:
        p = resolve_path(value, base_dir)
        if not p.exists():
            raise ParamsError(f"{where}: file not found: {value!r} (looked at {p})")


def resolve_path(value: str | os.PathLike, base_dir: Path | None) -> Path:
    """Relative paths in params are relative to the repository root (``base_dir``)."""
    p = Path(os.path.expanduser(str(value)))
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    return p


def build(cls: type, data: Mapping[str, Any], where: str = "", base_dir: Path | None = None):
    """Construct dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    prefix = f"{where}." if where else ""
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ParamsError(f"{prefix}{key}: unknown key{did_you_mean(key, fields)}; known keys: {', '.join(sorted(fields))}")
        f = fields[key]
        v = check_value(value, hints[key], f"{prefix}{key}", base_dir)
        _check_meta(v, f.metadata, f"{prefix}{key}", base_dir)
        kwargs[key] = v
    try:
        obj = cls(**kwargs)
    except ParamsError:
        raise
    except (TypeError, ValueError) as e:
        raise ParamsError(f"{where or cls.__name__}: {e}") from None
    # __post_init__ of the dataclass may raise ParamsError for cross-field rules.
    return obj


def field_default(cls: type, name: str) -> Any:
    """A fresh copy of field ``name``'s default (a factory's product for lists and dicts), None if it has none."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]


def describe(cls: type) -> list[dict]:
    """Field name, type, default and help, for docs and for rendering parameters cells."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        default = field_default(cls, f.name)
        if dataclasses.is_dataclass(default):
            default = dataclasses.asdict(default)
        out.append({"name": f.name, "type": _type_name(hints[f.name]), "default": default,
                    "help": f.metadata.get("help", "")})
    return out
