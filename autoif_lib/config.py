"""Typed, frozen parameters: recipe YAML files → validated dataclasses.

A recipe (``params/<experiment>.yaml``) holds everything a run needs::

    experiment: quickstart        # names outputs/<experiment>/
    seed: 0
    common:                       # injected into every stage that declares the key
      supervisor: {backend: transformers, model: embedded}
    stages:
      00_environment: {n_prompts: 3}

Every stage declares its parameters as a frozen dataclass (``autoif_lib.stages``);
``field(metadata=...)`` carries the help text and the checks (``min``/``max``,
``choices``, ``path`` = must exist). Loading fails fast, before any work, with
one message that names the file and the key path, e.g.
``params/x.yaml: stages.03_cross_validate.min_fn_acc: expected float, got str 'high'``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .io import stable_hash


class ParamsError(ValueError):
    """A recipe or stage parameter is invalid. The message names file and key path."""


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


def _check_value(value: Any, tp: Any, where: str, base_dir: Path | None) -> Any:
    """Check ``value`` against annotation ``tp``; return the (possibly converted) value."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_value(value, a, where, base_dir)
            except ParamsError as e:
                errors.append(str(e))
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
        out = [_check_value(v, item_tp, f"{where}[{i}]", base_dir) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ParamsError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _check_value(v, vt, f"{where}.{k}", base_dir) for k, v in value.items()}
    if origin is typing.Literal:
        if value not in args:
            raise ParamsError(f"{where}: must be one of {list(args)}, got {value!r}")
        return value
    if tp is float:
        # YAML writes 1e-6 as a string in some dialects; ints are fine for floats.
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
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ParamsError(f"{prefix}{key}: unknown key{hint}; known keys: {', '.join(sorted(fields))}")
        f = fields[key]
        v = _check_value(value, hints[key], f"{prefix}{key}", base_dir)
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


def describe(cls: type) -> list[dict]:
    """Field name, type, default and help, for docs and for rendering parameters cells."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        if dataclasses.is_dataclass(default):
            default = dataclasses.asdict(default)
        out.append({"name": f.name, "type": _type_name(hints[f.name]), "default": default,
                    "help": f.metadata.get("help", "")})
    return out


# ---------------------------------------------------------------------------
# recipes
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Recipe:
    """A loaded, validated recipe: one experiment, all stages' parameters resolved."""

    path: Path
    experiment: str
    seed: int
    outputs: Path
    description: str
    stages: dict[str, Any]  # stage name -> frozen params dataclass (all known stages)
    raw: dict

    @property
    def run_id(self) -> str:
        """Same params → same run id → the same run folder is continued."""
        return f"{self.experiment}-{self.params_hash[:8]}"

    @property
    def params_hash(self) -> str:
        return stable_hash({"experiment": self.experiment, "seed": self.seed,
                            "stages": {k: dataclasses.asdict(v) for k, v in self.stages.items()}})

    @property
    def run_dir(self) -> Path:
        return self.outputs / self.experiment / self.run_id

    def stage_params(self, stage: str) -> dict:
        """Flat dict for papermill injection (nested dataclasses become dicts)."""
        return dataclasses.asdict(self.stages[stage])


_TOP_KEYS = {"experiment", "seed", "outputs", "description", "common", "stages", "base"}


def repo_root() -> Path:
    """The repository root: where ``params/`` and ``notebooks/`` live."""
    env = os.environ.get("AUTOIF_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parent.parent
    return here


def _load_yaml(path: Path) -> dict:
    import yaml

    if not path.exists():
        raise ParamsError(f"{path}: params file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k in ("common", "stages"):
            out[k] = {**out[k], **{kk: (_merge_leaf(out[k].get(kk), vv)) for kk, vv in v.items()}}
        else:
            out[k] = v
    return out


def _merge_leaf(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        return {**a, **b}
    return b


def load_recipe(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None,
                root: Path | None = None) -> Recipe:
    """Load and validate a recipe YAML; raise ParamsError naming file and key path.

    ``base: other.yaml`` inherits another recipe (ablations are lists of overrides);
    ``overrides`` is a dict in the same shape as the file, applied last.
    """
    from .stages import RUNNER_KEYS, STAGES  # local import: stages imports this module

    path = Path(path)
    root = root or repo_root()
    data = _load_yaml(path)
    if "base" in data:
        base_path = resolve_path(data["base"], path.parent)
        if not base_path.exists():
            raise ParamsError(f"{path}: base: file not found: {data['base']!r}")
        data = _merge(_load_yaml(base_path), {k: v for k, v in data.items() if k != "base"})
    if overrides:
        data = _merge(data, dict(overrides))
    where = str(path)
    try:
        for key in data:
            if key not in _TOP_KEYS:
                close = difflib.get_close_matches(str(key), sorted(_TOP_KEYS), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ParamsError(f"{key}: unknown top-level key{hint}")
        experiment = data.get("experiment")
        if not isinstance(experiment, str) or not experiment.replace("-", "").replace("_", "").isalnum():
            raise ParamsError(f"experiment: required, letters/digits/-/_ only, got {experiment!r}")
        seed = _check_value(data.get("seed", 0), int, "seed", root)
        outputs = _check_value(data.get("outputs", "outputs"), str, "outputs", root)
        description = _check_value(data.get("description", ""), str, "description", root)
        common = data.get("common") or {}
        if not isinstance(common, dict):
            raise ParamsError(f"common: expected a mapping, got {type(common).__name__}")
        stages_raw = data.get("stages") or {}
        if not isinstance(stages_raw, dict):
            raise ParamsError(f"stages: expected a mapping, got {type(stages_raw).__name__}")
        for name in stages_raw:
            if name not in STAGES:
                close = difflib.get_close_matches(str(name), list(STAGES), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ParamsError(f"stages.{name}: unknown stage{hint}; known: {', '.join(STAGES)}")
        # A common key must be declared by at least one stage, else it is a typo.
        declared = {f.name for cls in STAGES.values() for f in dataclasses.fields(cls)}
        for key in common:
            if key not in declared:
                close = difflib.get_close_matches(str(key), sorted(declared), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ParamsError(f"common.{key}: no stage declares this key{hint}")
        stages = {}
        for name, cls in STAGES.items():
            names = {f.name for f in dataclasses.fields(cls)}
            values: dict[str, Any] = {}
            if "experiment" in names:
                values["experiment"] = experiment
            if "seed" in names:
                values["seed"] = seed
            values.update({k: v for k, v in common.items() if k in names})
            own = stages_raw.get(name) or {}
            if not isinstance(own, dict):
                raise ParamsError(f"stages.{name}: expected a mapping, got {type(own).__name__}")
            for k in RUNNER_KEYS:
                if k in own or k in common:
                    raise ParamsError(f"{'stages.' + name if k in own else 'common'}.{k}: set by the runner, not in a recipe")
            values.update(own)
            try:
                stages[name] = build(cls, values, f"stages.{name}", root)
            except ParamsError as e:
                # A bad value that came from `common` is reported at its own key path.
                msg = str(e)
                for k in common:
                    if k not in own and msg.startswith((f"stages.{name}.{k}:", f"stages.{name}.{k}.",
                                                        f"stages.{name}.{k}[")):
                        raise ParamsError("common." + msg[len(f"stages.{name}."):]) from None
                raise
    except ParamsError as e:
        raise ParamsError(f"{where}: {e}") from None
    return Recipe(path=path, experiment=experiment, seed=seed,
                  outputs=resolve_path(outputs, root), description=description,
                  stages=stages, raw=data)
