"""Recipes: YAML files resolved into one validated plan of typed stage params.

A recipe (``params/<method>/<experiment>.yaml``) holds everything a run needs::

    pipeline: autoif              # which method's stages (default autoif)
    experiment: quickstart        # names outputs/<experiment>/
    seed: 0
    common:                       # injected into every stage that declares the key
      supervisor: {backend: transformers, model: embedded}
    stages:
      00_environment: {n_prompts: 3}

Composition. ``base: other.yaml`` (a path relative to this file) inherits another
recipe, recursively; a cycle fails naming the files. Mappings merge deeply at every
level, so ``dpo: {beta: 0.1}`` changes beta and keeps the base's learning rate. A
dict-valued stage param (a TRL dict, ``lora``) merges the same way over the stage's own
default, so a recipe that sets ``dpo: {bf16: true}`` keeps every paper value the stage
declares. Two YAML tags say otherwise explicitly: ``dpo: !replace {beta: 0.1}`` replaces
the whole mapping (base recipes' and stage default alike), ``warmup_steps: !delete``
removes a key a base recipe or the stage default set. The tags survive the base chain,
so a child's plain mapping over a parent's ``!replace`` still replaces the default.

The resolved recipe names, for every stage, the key of its output folder
(``stage_keys``): a hash of the stage's own params, the fingerprints of the files
its params name, and its upstreams' keys. Two recipes that agree on a stage and
everything upstream of it share that stage's output on disk.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from . import io
from .models.checks import check_stage
from .params import ParamsError, build, check_value, did_you_mean, field_default, resolve_path
from . import methods
from .pipeline import RUNNER_KEYS, Pipeline, get_pipeline

_TOP_KEYS = {"pipeline", "experiment", "seed", "outputs", "description", "common", "stages", "base"}


def repo_root() -> Path:
    """The repository root: where ``params/`` and ``notebooks/`` live."""
    env = os.environ.get("AUTOIF_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------
# stage keys: outputs addressed by their inputs
# ---------------------------------------------------------------------------

def _path_fields(params: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(params) if f.metadata.get("path")]


def stage_key(pipeline: str, stage: str, params: Any, upstream_keys: Mapping[str, str], root: Path) -> str:
    """Key of a stage's output folder: its params (without location keys), the files they name, its upstreams."""
    d = dataclasses.asdict(params)
    unkeyed = {f.name for f in dataclasses.fields(params) if f.metadata.get("unkeyed")}
    files = {}
    for name in _path_fields(params):
        value = getattr(params, name)
        if value:
            p = resolve_path(value, root)
            files[name] = io.file_fingerprint(p) if p.exists() else "missing"
    return io.stable_hash({"pipeline": pipeline, "stage": stage,
                           "params": {k: v for k, v in d.items() if k not in RUNNER_KEYS and k not in unkeyed},
                           "files": files, "upstream": dict(sorted(upstream_keys.items()))})[:16]


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
    pipeline_name: str
    stages: dict[str, Any]  # stage name -> frozen params dataclass (all stages, pipeline order)
    raw: dict               # the merged recipe (base chain and overrides applied), for `autoif show`
    chain: tuple[str, ...] = ()  # the files it was composed from, most basic first
    root: Path = field(default_factory=repo_root)
    notes: tuple[str, ...] = ()  # what could not be checked on this machine (models not here), for `autoif check`

    @property
    def pipeline(self) -> Pipeline:
        return get_pipeline(self.pipeline_name)

    @property
    def stage_keys(self) -> dict[str, str]:
        keys: dict[str, str] = {}
        for st in self.pipeline.stages:
            keys[st.name] = stage_key(self.pipeline_name, st.name, self.stages[st.name],
                                      {u: keys[u] for u in st.upstream}, self.root)
        return keys

    @property
    def run_id(self) -> str:
        """A run is its experiment plus the list of stage keys: same params, same run folder."""
        return f"{self.experiment}-{io.stable_hash(self.stage_keys)[:8]}"

    @property
    def run_dir(self) -> Path:
        return self.outputs / self.experiment / self.run_id

    @property
    def store(self) -> Path:
        return self.outputs / "store" / self.pipeline_name

    def stage_dir(self, stage: str, key: str | None = None) -> Path:
        """Where a stage's outputs live: ``<outputs>/store/<pipeline>/<stage>/<key>``."""
        return self.store / stage / (key or self.stage_keys[stage])

    def stage_params(self, stage: str) -> dict:
        """Flat dict for papermill injection (nested dataclasses become dicts)."""
        return dataclasses.asdict(self.stages[stage])

    def plan(self) -> dict:
        """What ``recipe.json`` in the run folder records: stages in order with keys and upstreams."""
        keys = self.stage_keys
        return {"pipeline": self.pipeline_name, "experiment": self.experiment, "run_id": self.run_id,
                "outputs": str(self.outputs), "params_file": str(self.path), "chain": list(self.chain),
                "stages": {st.name: {"key": keys[st.name], "upstream": list(st.upstream),
                                     "dir": str(self.stage_dir(st.name, keys[st.name])),
                                     "enabled": st.is_enabled(self.stages[st.name])}
                           for st in self.pipeline.stages},
                "resolved": self.raw}


# ---------------------------------------------------------------------------
# loading: YAML with !replace / !delete, base chains, deep merge
# ---------------------------------------------------------------------------

class Replace(dict):
    """``!replace {...}``: this mapping replaces the base's instead of merging into it."""


class _Delete(str):
    """``!delete``. A str, so a recipe record with one still writes as JSON (as "!delete")."""

    def __repr__(self):
        return "!delete"


DELETE = _Delete("!delete")


def _loader():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def _replace(loader, node):
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(None, None, "!replace applies to a mapping", node.start_mark)
        return Replace(loader.construct_mapping(node, deep=True))

    def _delete(loader, node):
        return DELETE

    Loader.add_constructor("!replace", _replace)
    Loader.add_constructor("!delete", _delete)
    return Loader


def _load_yaml(path: Path) -> dict:
    import yaml

    if not path.exists():
        raise ParamsError(f"{path}: params file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_loader())
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _plain(v: Any) -> Any:
    """Drop merge markers: a Replace becomes a dict, deleted keys disappear."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items() if x is not DELETE}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict:
    """Deep merge: mappings merge key by key; ``Replace`` replaces; ``DELETE`` removes; the rest overrides.

    The markers stay in the result (a ``Replace`` stays one when merged into; a ``DELETE`` stays where the
    base had nothing to remove) because a stage's dict param merges once more, over its default, when the
    recipe is built; ``_plain`` drops them.
    """
    out = Replace(base) if isinstance(base, Replace) else dict(base)
    for k, v in over.items():
        if v is DELETE or isinstance(v, Replace):
            out[k] = v
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        elif isinstance(v, dict):
            out[k] = merge({}, v)
        else:
            out[k] = v
    return out


def _dict_params(cls: type) -> set[str]:
    """The stage's dict-valued params: a recipe's mapping for one merges over the stage default."""
    return {f.name for f in dataclasses.fields(cls) if isinstance(field_default(cls, f.name), dict)}


def _stage_values(cls: type, layers: list[Mapping[str, Any]]) -> dict:
    """A stage's values from its recipe layers (common, then its own block), markers applied.

    Scalars first, so a class's ``recipe_default(name, values)`` hook can shape a dict default from them
    (TrainFields drops the default's gradient accumulation when the recipe sets a global batch).
    """
    dicts = _dict_params(cls)
    values: dict[str, Any] = {}
    for layer in layers:
        for k, v in layer.items():
            if k not in dicts:
                if v is DELETE:
                    values.pop(k, None)
                else:
                    values[k] = v
    hook = getattr(cls, "recipe_default", None)
    for layer in layers:
        for k, v in layer.items():
            if k not in dicts:
                continue
            if v is DELETE:
                values.pop(k, None)
            elif isinstance(v, Replace) or not isinstance(v, dict):
                values[k] = v      # a non-mapping is the builder's type error to report
            else:
                below = values.get(k)
                if not isinstance(below, dict):
                    below = hook(k, values) if hook else field_default(cls, k)
                values[k] = merge(below, v)
    return {k: _plain(v) for k, v in values.items()}


def resolve_chain(path: Path, _stack: tuple[Path, ...] = ()) -> tuple[dict, tuple[Path, ...]]:
    """The recipe at ``path`` with its ``base:`` chain merged in (recursively); and the chain's files."""
    path = Path(path).resolve() if Path(path).exists() else Path(path)
    if path in _stack:
        cycle = " -> ".join(str(p) for p in (*_stack[_stack.index(path):], path))
        raise ParamsError(f"{_stack[0]}: base: cycle: {cycle}")
    data = _load_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return merge({}, data), (*_stack, path)[len(_stack):]
    if not isinstance(base, str):
        raise ParamsError(f"{path}: base: expected a file name, got {base!r}")
    base_path = resolve_path(base, path.parent)
    if not base_path.exists():
        raise ParamsError(f"{path}: base: file not found: {base!r} (looked at {base_path})")
    parent, chain = resolve_chain(base_path, (*_stack, path))
    return merge(parent, data), (*chain, path)


def load_recipe(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None,
                root: Path | None = None) -> Recipe:
    """Load and validate a recipe YAML; raise ParamsError naming file and key path.

    ``base: other.yaml`` inherits another recipe (ablations are lists of overrides);
    ``overrides`` is a dict in the same shape as the file, applied last.
    """
    path = Path(path)
    root = root or repo_root()
    data, chain = resolve_chain(path)
    if overrides:
        data = merge(data, dict(overrides))
    where = str(path)
    try:
        for key in data:
            if key not in _TOP_KEYS:
                raise ParamsError(f"{key}: unknown top-level key{did_you_mean(key, sorted(_TOP_KEYS))}")
        pipeline_name = data.get("pipeline") or methods.default_name()
        if not isinstance(pipeline_name, str):
            raise ParamsError(f"pipeline: expected a name, got {pipeline_name!r}")
        pipe = get_pipeline(pipeline_name)
        STAGES = pipe.params_classes()
        experiment = data.get("experiment")
        if not isinstance(experiment, str) or not experiment.replace("-", "").replace("_", "").isalnum():
            raise ParamsError(f"experiment: required, letters/digits/-/_ only, got {experiment!r}")
        seed = check_value(data.get("seed", 0), int, "seed", root)
        outputs = check_value(data.get("outputs", "outputs"), str, "outputs", root)
        description = check_value(data.get("description", ""), str, "description", root)
        common = data.get("common") or {}
        if not isinstance(common, dict):
            raise ParamsError(f"common: expected a mapping, got {type(common).__name__}")
        stages_raw = data.get("stages") or {}
        if not isinstance(stages_raw, dict):
            raise ParamsError(f"stages: expected a mapping, got {type(stages_raw).__name__}")
        for name in stages_raw:
            if name not in STAGES:
                raise ParamsError(f"stages.{name}: unknown stage{did_you_mean(name, STAGES)}; known: {', '.join(STAGES)}")
        # A common key must be declared by at least one stage, else it is a typo.
        declared = {f.name for cls in STAGES.values() for f in dataclasses.fields(cls)}
        for key in common:
            if key not in declared:
                raise ParamsError(f"common.{key}: no stage declares this key{did_you_mean(key, sorted(declared))}")
        stages = {}
        notes: list[str] = []
        for name, cls in STAGES.items():
            names = {f.name for f in dataclasses.fields(cls)}
            values: dict[str, Any] = {}
            if "experiment" in names:
                values["experiment"] = experiment
            if "seed" in names:
                values["seed"] = seed
            from_common = {k: v for k, v in common.items() if k in names and k not in dict(pipe.stage(name).fixed)}
            own = stages_raw.get(name) or {}
            if not isinstance(own, dict):
                raise ParamsError(f"stages.{name}: expected a mapping, got {type(own).__name__}")
            for k in RUNNER_KEYS:
                if k in own or k in common:
                    raise ParamsError(f"{'stages.' + name if k in own else 'common'}.{k}: set by the runner, not in a recipe")
            fixed = dict(pipe.stage(name).fixed)
            for k in fixed:
                if k in own:
                    raise ParamsError(f"stages.{name}.{k}: set by the pipeline for this stage, not in a recipe")
            values.update(_stage_values(cls, [from_common, own]))
            values.update(fixed)
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
            if pipe.stage(name).is_enabled(stages[name]):
                notes += check_stage(stages[name], _where_of(name, own, common), root)
    except ParamsError as e:
        raise ParamsError(f"{where}: {e}") from None
    return Recipe(path=path, experiment=experiment, seed=seed,
                  outputs=resolve_path(outputs, root), description=description, pipeline_name=pipeline_name,
                  stages=stages, raw=_plain(data), chain=tuple(str(p) for p in chain), root=root,
                  notes=tuple(dict.fromkeys(notes)))


def _where_of(stage: str, own: Mapping[str, Any], common: Mapping[str, Any]):
    """The key path a check names for a field: where the recipe set it (its stage, else common)."""
    return lambda key: f"common.{key}" if key in common and key not in own else f"stages.{stage}.{key}"


def _batch_line(params) -> dict:
    """A training stage's batch as it will train: per-device x accumulation x world = global."""
    if not hasattr(params, "batch_plan"):
        return {}
    b = params.batch_plan()
    return {"batch": f"per-device {b['per_device']} x accumulation {b['accumulation']} x world {b['world']} = {b['global']}"}


def show(recipe: Recipe) -> str:
    """The fully resolved recipe as YAML: every stage's every value, defaults included."""
    import yaml

    doc = {"pipeline": recipe.pipeline_name, "experiment": recipe.experiment, "seed": recipe.seed,
           "outputs": str(recipe.outputs), "description": recipe.description,
           "composed_from": list(recipe.chain), "run_id": recipe.run_id,
           "stages": {name: {"key": key, **_batch_line(recipe.stages[name]),
                             **{k: v for k, v in recipe.stage_params(name).items() if k not in RUNNER_KEYS}}
                      for name, key in recipe.stage_keys.items()}}
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=110)
