"""Declared pipelines: each method registers its stages, their params, upstreams and products.

A stage is one notebook. It declares:

- ``params``: the frozen dataclass that is its whole interface (its parameters cell);
- ``upstream``: the stages whose outputs it reads; the stage context refuses any other;
- ``products``: the files and folders it writes for others (``model`` for a checkpoint);
- ``checkpoint``: the name under which its ``model`` product is evaluated (``sft``, ``dpo``).

Stage outputs are addressed by their inputs (``runs.stage_key``: own params plus the
keys of the upstream outputs), so the declaration is also what decides which stages a
change of params re-runs. Method packages register a ``Pipeline`` in the module their
declaration names (``autoif_lib.methods``); nothing in the core imports them by name:
``get_pipeline(name)`` imports that module on demand.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from . import methods
from .params import ParamsError, did_you_mean, param


@dataclass(frozen=True)
class StageParams:
    """Fields every stage has. ``params_file``/``run_dir`` are set by the runner."""

    params_file: str = param("", "recipe this run belongs to (relative to the repo root; empty: the method's "
                                 "default recipe)")
    run_dir: str = param("", "run folder, set by the runner; empty means derived from params_file")
    seed: int = param(0, "seeds python, numpy, torch and sampling")


# Location keys: never written in a recipe, never part of a stage's key.
RUNNER_KEYS = ("params_file", "run_dir")


@dataclass(frozen=True)
class Stage:
    name: str                      # "06_verify_score": its notebook is <pipeline notebooks>/<name>.ipynb
    params: type                   # frozen dataclass, subclass of StageParams
    upstream: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    checkpoint: str | None = None  # evaluation name of the ``model`` product, if it makes one
    doc: str = ""
    notebook: str = ""             # notebook stem when several stages share one (iterations); default: name
    fixed: tuple[tuple[str, object], ...] = ()  # param values the pipeline sets (e.g. iteration=2), not the recipe
    enabled_if: str = ""           # a bool-valued params attribute/property; false: the stage is switched off

    def is_enabled(self, params) -> bool:
        return bool(getattr(params, self.enabled_if)) if self.enabled_if else True


@dataclass(frozen=True)
class Pipeline:
    name: str
    stages: tuple[Stage, ...]
    notebooks: str                 # folder of the stage notebooks, relative to the repo root
    default_recipe: str            # recipe a notebook opened by hand belongs to
    _by_name: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        seen: dict[str, Stage] = {}
        for s in self.stages:
            if s.name in seen:
                raise ValueError(f"pipeline {self.name}: stage {s.name} declared twice")
            for u in s.upstream:
                if u not in seen:
                    raise ValueError(f"pipeline {self.name}: {s.name} reads {u!r}, which is not an earlier stage")
            if s.checkpoint and "model" not in s.products:
                raise ValueError(f"pipeline {self.name}: {s.name} names a checkpoint but produces no 'model'")
            seen[s.name] = s
        self._by_name.update(seen)

    @property
    def order(self) -> list[str]:
        return [s.name for s in self.stages]

    def stage(self, name: str) -> Stage:
        try:
            return self._by_name[name]
        except KeyError:
            raise ParamsError(f"pipeline {self.name}: unknown stage {name!r}{did_you_mean(name, self.order)}; known: {', '.join(self.order)}") from None

    def params_classes(self) -> dict[str, type]:
        return {s.name: s.params for s in self.stages}

    def notebook(self, name: str, root: Path) -> Path:
        st = self.stage(name)
        return root / self.notebooks / f"{st.notebook or st.name}.ipynb"

    def downstream(self, name: str) -> list[str]:
        """Every stage that reads ``name``'s outputs, directly or through others, in pipeline order."""
        hit = {name}
        for s in self.stages:
            if hit & set(s.upstream):
                hit.add(s.name)
        return [s for s in self.order if s in hit and s != name]

    def checkpoints(self) -> dict[str, str]:
        """Checkpoint name -> the stage that produces it, as the stages declare."""
        return {s.checkpoint: s.name for s in self.stages if s.checkpoint}


_REGISTRY: dict[str, Pipeline] = {}


def register(p: Pipeline) -> Pipeline:
    _REGISTRY[p.name] = p
    return p


def get_pipeline(name: str) -> Pipeline:
    """The registered pipeline ``name``, importing its method's pipeline module on first use
    (``autoif_lib.methods``: the methods shipped here and any installed through entry points)."""
    if name not in _REGISTRY:
        importlib.import_module(methods.get(name).pipeline)
    if name not in _REGISTRY:
        raise ParamsError(f"pipeline: {methods.get(name).pipeline} registers no pipeline named {name!r}")
    return _REGISTRY[name]
