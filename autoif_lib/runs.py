"""Stage outputs addressed by their inputs, run folders that list them, and the stage context.

Layout under the outputs root (``outputs/``)::

    store/<pipeline>/<stage>/<key>/    one stage output: data, metrics.json, manifest.json, notebook.ipynb
    <experiment>/<run_id>/recipe.json  a run: its resolved recipe and the key of every stage
    <experiment>/<run_id>/<stage>      a link to that stage's store folder (browse a run as before)
    cache/generations.sqlite           every LLM completion (cache/nodes/: per-job files under Slurm)

A stage's key hashes its own params, the files they name and its upstreams' keys
(``recipes.stage_key``), so recipes that agree on a stage and its upstreams share the
folder, and a changed value re-runs exactly that stage and what depends on it.

Every notebook starts with ``ctx = open_stage("autoif/NN_name", globals())``: the
parameters cell's values are validated (an unknown name fails, naming it), seeds
are set and the stage folder its params address is opened. Upstream data comes
through ``ctx.input`` / ``ctx.read_jsonl`` (declared upstreams only; fingerprinted
into the manifest), data goes out through ``ctx.write_jsonl`` (atomic), and the last
cell calls ``ctx.finish(metrics)``, which writes ``metrics.json`` and ``manifest.json``.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import random
import sys
import time
import types
from pathlib import Path
from typing import Any, Iterable, Mapping

from . import io
from .params import ParamsError, build, did_you_mean, resolve_path
from .pipeline import RUNNER_KEYS, Pipeline, get_pipeline
from . import methods
from .recipes import load_recipe, repo_root, stage_key

MANIFEST = "manifest.json"
FAILED = "failed.json"
PLAN = "recipe.json"
_NOT_DIGESTED = {MANIFEST, FAILED, "metrics.json", "notebook.ipynb"}  # vary with timings, not content


def seed_everything(seed: int) -> None:
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)  # for subprocesses; this process is already started
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:
        pass
    if "torch" in sys.modules:  # don't pay torch's import just to seed it
        sys.modules["torch"].manual_seed(seed)


def split_stage(qualified: str, namespace: Mapping[str, Any] | None = None) -> tuple[Pipeline, str]:
    """``"autoif/06_verify_score"`` (or a bare stage name of the default pipeline) -> (pipeline, stage).

    A notebook several stages share names itself (``"spar/it_judge"``); the stage is the one whose
    pipeline-set values (``iteration``) match the parameters cell's."""
    name, _, stage = qualified.rpartition("/")
    pipe = get_pipeline(name or methods.default_name())
    shared = [s for s in pipe.stages if s.notebook == stage]
    if shared:
        ns = namespace or {}
        hit = [s for s in shared if all(ns.get(k) == v for k, v in s.fixed)]
        if len(hit) != 1:
            wanted = ", ".join(f"{k}={v}" for k, v in shared[0].fixed)
            raise ParamsError(f"{qualified}: {len(hit)} stages match the parameters ({wanted} style values pick one)")
        return pipe, hit[0].name
    return pipe, pipe.stage(stage).name


def output_digest(stage_dir: Path) -> str | None:
    """Fingerprint of what a complete stage produced (from its manifest), for staleness checks downstream."""
    try:
        return io.read_json(stage_dir / MANIFEST).get("digest")
    except (FileNotFoundError, ValueError):
        return None


def link_stage(run_dir: Path, stage: str, target: Path) -> None:
    """``<run_dir>/<stage>`` -> the store folder (relative, so an outputs folder can move)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    link = run_dir / stage
    rel = os.path.relpath(target, run_dir)
    if link.is_symlink():
        if os.readlink(link) == rel:
            return
        link.unlink()
    elif link.exists():  # a folder from before stage outputs moved to the store: keep it aside
        link.rename(run_dir / f"{stage}.pre-store")
    os.symlink(rel, link)


class UntrainedCheckpoint(LookupError):
    """A training stage saved its initial model unchanged (no data): it must not be evaluated under its name."""


class StageContext:
    """One stage execution: where its outputs go, what it read, and its manifest."""

    def __init__(self, pipeline: Pipeline, stage: str, params: Any, key: str, store: Path,
                 upstream_keys: Mapping[str, str], root: Path, run_dir: Path | None = None):
        self.pipeline = pipeline
        self.stage = stage
        self.spec = pipeline.stage(stage)
        self.p = params
        self.key = key
        self.store = store
        self.dir = store / stage / key
        self.upstream_keys = dict(upstream_keys)
        self.root = root
        self.run_dir = run_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.inputs: dict[str, str] = {}
        self.upstream: dict[str, dict] = {}
        self.outputs: dict[str, str] = {}
        self.started = time.time()
        self._generators: list = []

    # -- paths ----------------------------------------------------------------
    def path(self, name: str) -> Path:
        return self.dir / name

    def upstream_dir(self, stage: str) -> Path:
        """The output folder of a declared upstream stage (complete, else a clear error)."""
        if stage not in self.spec.upstream:
            hint = did_you_mean(stage, self.spec.upstream)
            raise PermissionError(
                f"{self.stage} may read only its declared upstreams ({', '.join(self.spec.upstream) or 'none'}), "
                f"not {stage!r}{hint}: declare it in autoif_lib/{self.pipeline.name}/pipeline.py")
        d = self.store / stage / self.upstream_keys[stage]
        man = d / MANIFEST
        if not man.exists():
            raise FileNotFoundError(
                f"{self.stage} needs stage {stage} first (with this recipe's params): run "
                f"`autoif run {self.p.params_file} --stages {stage[:2]}` (looked in {d})")
        if stage not in self.upstream:
            self.upstream[stage] = {"key": self.upstream_keys[stage], "digest": output_digest(d)}
        return d

    def input(self, stage_or_path: str, name: str | None = None) -> Path:
        """Path of an upstream output (``ctx.input("03_cross_validate", "kept.jsonl")``) or of a file a
        path param names; its fingerprint is recorded. Undeclared or missing -> a clear error."""
        if name is not None:
            p = self.upstream_dir(stage_or_path) / name
        else:
            declared = {str(getattr(self.p, f.name)) for f in dataclasses.fields(self.p) if f.metadata.get("path")}
            if str(stage_or_path) not in declared:
                raise PermissionError(f"{self.stage}: {stage_or_path!r} is not a file named by a path param of this stage")
            p = resolve_path(stage_or_path, self.root)
        if not p.exists():
            raise FileNotFoundError(f"{self.stage}: input not found: {p}")
        self.inputs[str(p)] = io.file_fingerprint(p)
        return p

    def upstream_manifest(self, stage: str) -> dict:
        return io.read_json(self.upstream_dir(stage) / MANIFEST)

    def upstream_params(self, stage: str) -> dict:
        """The params a declared upstream ran with (e.g. the layout stage 05 used)."""
        return self.upstream_manifest(stage)["params"]

    def upstream_metrics(self, stage: str) -> dict:
        return io.read_json(self.upstream_dir(stage) / "metrics.json")

    def checkpoint(self, name: str, base_model: str, trained_only: bool = False) -> str:
        """Model path of checkpoint ``name``: ``base`` is the untrained policy, the rest come from the
        stage that declares it (``Stage.checkpoint``). ``trained_only`` (evaluation): a stage that had no
        data and passed its initial model on unchanged raises ``UntrainedCheckpoint`` instead."""
        from .models.backends import resolve_model_path

        if name == "base":
            return resolve_model_path(base_model)
        owners = self.pipeline.checkpoints()
        if name not in owners:
            raise ParamsError(f"{self.stage}: unknown checkpoint {name!r}; this pipeline makes: base, {', '.join(owners)}")
        path = str(self.input(owners[name], "model"))
        if trained_only and self.upstream_metrics(owners[name]).get("trained") is False:
            raise UntrainedCheckpoint(f"stage {owners[name]} had no data and passed its initial model on unchanged: "
                                      f"not evaluated as {name!r}")
        return path

    def init_of(self, name: str) -> str:
        """The checkpoint ``name`` was trained from: its stage's ``init_from`` param as it ran, else the base
        (the contrast of the papers' "+DPO over SFT" rows is a checkpoint against its own init)."""
        if name == "base":
            return "base"
        return self.upstream_params(self.pipeline.checkpoints()[name]).get("init_from", "base")

    # -- data -------------------------------------------------------------------
    def write_jsonl(self, name: str, records: Iterable[dict]) -> Path:
        p = io.write_jsonl(self.dir / name, records)
        self.outputs[name] = io.file_fingerprint(p)
        return p

    def write_json(self, name: str, obj: Any) -> Path:
        p = io.write_json(self.dir / name, obj)
        self.outputs[name] = io.file_fingerprint(p)
        return p

    def write_text(self, name: str, text: str) -> Path:
        p = io.atomic_write_text(self.dir / name, text)
        self.outputs[name] = io.file_fingerprint(p)
        return p

    def read_jsonl(self, stage: str, name: str) -> list[dict]:
        return io.read_jsonl(self.input(stage, name))

    def savefig(self, fig, name: str):
        """Save a figure into the stage folder and return it, so a cell ending in this call shows it."""
        p = self.dir / name
        fig.savefig(p, dpi=110, bbox_inches="tight")
        self.outputs[name] = io.file_fingerprint(p)
        return fig

    def sandbox(self):
        """The sandbox with this stage's execution settings (``SandboxFields``); use as a context manager."""
        from .sandbox import Sandbox, SandboxConfig

        return Sandbox(SandboxConfig(timeout_s=self.p.exec_timeout_s, memory_mb=self.p.exec_memory_mb,
                                     non_bool=self.p.non_bool))

    # -- models -------------------------------------------------------------------
    @property
    def cache_path(self) -> Path:
        """One generation cache per outputs root, shared by runs: same request, same answer. Under Slurm a
        file per job beside it, which a sweep's collect job merges in (``models.cache``: SQLite's WAL does not
        work across machines on a network filesystem)."""
        from .models.cache import cache_file

        return cache_file(self.store.parent.parent / "cache")

    def generator(self, spec, progress: bool = True):
        """The generator for ``spec``; asking twice for the same spec returns the same one (one model load).

        One model in memory at a time: asking for another model releases the engines of the others first
        (and says so). On a GPU a second vLLM engine would fail its free-memory check while the first lives;
        a released generator that is used again reloads its model."""
        from .models import Generator

        g = next((g for g in self._generators if g.spec == spec), None)
        self.release_models(keep=g, reason=f"before using {spec.model}")
        if g is None:
            g = Generator(spec, cache_path=self.cache_path, progress=progress)
            self._generators.append(g)
        return g

    def release_models(self, keep=None, reason: str = "") -> int:
        """Release every loaded generator's model except ``keep`` (an HTTP client holds nothing); the count."""
        n = 0
        for g in self._generators:
            if g is not keep and g.spec.backend != "openai" and g.close():
                n += 1
                print(f"[{self.stage}] released the {g.spec.backend} model {g.spec.model}" + (f" {reason}" if reason else ""),
                      flush=True)
        return n

    # -- completion ---------------------------------------------------------------
    def digest(self) -> str:
        files = {k: v for k, v in self.outputs.items() if k not in _NOT_DIGESTED}
        for product in self.spec.products:
            if product not in files:
                files[product] = io.file_fingerprint(self.dir / product)
        return io.stable_hash(files)[:16]

    def finish(self, metrics: Mapping[str, Any] | None = None) -> dict:
        """Write metrics.json and the manifest; from now on the stage counts as complete."""
        from .envinfo import git_state, machine, package_versions

        missing = [p for p in self.spec.products if not (self.dir / p).exists()]
        if missing:
            raise RuntimeError(f"{self.stage}: declared products not written: {', '.join(missing)}")
        metrics = dict(metrics or {})
        self.release_models(reason="at the end of the stage")
        if self._generators:
            metrics.setdefault("generation", [dict(g.stats, model=g.fingerprint, backend=g.spec.backend)
                                              for g in self._generators])
        self.write_json("metrics.json", metrics)
        manifest = {
            "stage": self.stage,
            "pipeline": self.pipeline.name,
            "key": self.key,
            "status": "complete",
            "run_id": self.run_dir.name if self.run_dir else None,
            "params": dataclasses.asdict(self.p),
            "params_hash": io.stable_hash({k: v for k, v in dataclasses.asdict(self.p).items() if k not in RUNNER_KEYS}),
            "seed": self.p.seed,
            "upstream": dict(self.upstream),  # the upstream outputs it read (a switched-off one never is)
            "digest": self.digest(),
            "git": git_state(self.root),
            "packages": package_versions(),
            "machine": machine(),
            "inputs": self.inputs,
            "outputs": self.outputs,
            "started": self.started,
            "finished": time.time(),
            "seconds": round(time.time() - self.started, 3),
        }
        io.write_json(self.dir / MANIFEST, manifest)
        try:
            (self.dir / FAILED).unlink()
        except FileNotFoundError:
            pass
        return manifest


# ---------------------------------------------------------------------------
# opening a stage from a notebook
# ---------------------------------------------------------------------------

_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}
_PARAM_CELL_HEADS = ("# Parameters", "# parameters")  # papermill's injected cell; our tagged cell


def _assigned_names(src: str) -> list[str]:
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return []
    out = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        out += [t.id for t in targets if isinstance(t, ast.Name)]
    return out


def injected_names(namespace: Mapping[str, Any]) -> list[str]:
    """Names the parameters cells of this kernel assigned (from IPython's input history), or, for a
    plain dict, every value that is not a module, function, class or private name."""
    history = namespace.get("_ih")
    if isinstance(history, list):
        names: list[str] = []
        for src in history:
            if isinstance(src, str) and src.lstrip().startswith(_PARAM_CELL_HEADS):
                names += [n for n in _assigned_names(src) if n not in names]
        return names
    return [k for k, v in namespace.items() if not k.startswith("_") and k not in _KERNEL_NAMES
            and not isinstance(v, (types.ModuleType, types.FunctionType, type))]


def stage_params_from(pipe: Pipeline, stage: str, namespace: Mapping[str, Any], root: Path):
    cls = pipe.stage(stage).params
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [n for n in injected_names(namespace) if n not in names]
    if unknown:
        msgs = []
        for n in unknown:
            msgs.append(f"{n}: unknown parameter{did_you_mean(n, names)}")
        raise ParamsError(f"{pipe.name}/{stage} parameters: {'; '.join(msgs)}; known: {', '.join(names)}")
    values = {k: namespace[k] for k in names if k in namespace}
    return build(cls, values, f"{stage} parameters", root)


def open_stage(qualified: str, namespace: Mapping[str, Any]) -> StageContext:
    """Validate the parameters cell's values (from ``globals()``) and open the folder they address.

    Run by ``autoif run``: the run folder's plan gives the upstream keys. Run by papermill directly,
    or opened by hand: the recipe ``params_file`` gives them; a stage whose own values differ from the
    recipe's writes to the folder its values address, never over the recipe's outputs.
    """
    pipe, stage = split_stage(qualified, namespace)
    root = repo_root()
    params = stage_params_from(pipe, stage, namespace, root)
    if params.run_dir:
        run_dir = Path(params.run_dir)
        plan = io.read_json(run_dir / PLAN)
        if (plan.get("pipeline") or methods.default_name()) != pipe.name:
            raise ParamsError(f"{run_dir} is a {plan.get('pipeline')} run, not {pipe.name}")
        store = Path(plan["outputs"]) / "store" / pipe.name
        planned = {s: v["key"] for s, v in plan["stages"].items()}
    else:
        recipe = load_recipe(resolve_path(params.params_file or pipe.default_recipe, root), root=root)
        if recipe.pipeline_name != pipe.name:
            raise ParamsError(f"{params.params_file or pipe.default_recipe} is a {recipe.pipeline_name} recipe, not {pipe.name}")
        run_dir, store, planned = recipe.run_dir, recipe.store, recipe.stage_keys
    upstream = {u: planned[u] for u in pipe.stage(stage).upstream}
    key = stage_key(pipe.name, stage, params, upstream, root)
    seed_everything(params.seed)
    ctx = StageContext(pipe, stage, params, key, store, upstream, root, run_dir)
    if key == planned.get(stage):
        link_stage(run_dir, stage, ctx.dir)
    else:
        ctx.run_dir = None
        print(f"note: these params differ from {params.params_file}'s for {stage}: outputs go to {ctx.dir}; "
              f"the run {run_dir.name} is untouched")
    return ctx


# ---------------------------------------------------------------------------
# states
# ---------------------------------------------------------------------------

def stage_state(stage_dir: Path, _memo: dict | None = None) -> str:
    """complete | stale (an upstream output, directly or further up, or an input file changed since) |
    failed | partial | pending."""
    d = Path(stage_dir).resolve()  # a run folder's link -> the store folder (its upstreams are siblings there)
    memo = {} if _memo is None else _memo  # one check walks each upstream once, however many paths lead there
    if d in memo:
        return memo[d]
    memo[d] = state = _state(d, memo)
    return state


def _state(d: Path, memo: dict) -> str:
    m = d / MANIFEST
    if m.exists():
        try:
            man = io.read_json(m)
        except ValueError:
            return "partial"
        if man.get("status") != "complete":
            return "partial"
        store = d.parent.parent
        for s, up in (man.get("upstream") or {}).items():
            u = store / s / up["key"]
            if output_digest(u) != up.get("digest") or stage_state(u, memo) != "complete":
                return "stale"  # built from an output that has changed since, or from one that is itself stale
        for path, fp in (man.get("inputs") or {}).items():
            p = Path(path)
            if not p.exists() or io.file_fingerprint(p) != fp:
                return "stale"
        return "complete"
    if (d / FAILED).exists():
        return "failed"
    if d.exists() and any(d.iterdir()):
        return "partial"
    return "pending"
