"""Run folders: ``outputs/<experiment>/<run_id>/NN_stage/`` with data, metrics and a manifest.

Every notebook starts with ``ctx = open_stage("NN_name", globals())``: the
parameters cell's values are validated into the stage's frozen dataclass,
seeds are set and the stage folder is created. Data goes through
``ctx.write_jsonl`` (atomic), inputs through ``ctx.input`` (hashed into the
manifest) and the last cell calls ``ctx.finish(metrics)``, which writes
``metrics.json`` and ``manifest.json``. A stage is complete exactly when its
manifest says so with the current params hash; the runner skips it then.
"""

from __future__ import annotations

import dataclasses
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from . import io
from .config import ParamsError, build, load_recipe, repo_root, resolve_path
from .stages import RUNNER_KEYS, STAGES

MANIFEST = "manifest.json"
FAILED = "failed.json"
BIG_FILE = 64 << 20  # inputs above this are fingerprinted by size+mtime, not hashed


def stage_hash(params: Any) -> str:
    """Hash of a stage's params, without the runner-set location keys."""
    d = dataclasses.asdict(params) if dataclasses.is_dataclass(params) else dict(params)
    return io.stable_hash({k: v for k, v in d.items() if k not in RUNNER_KEYS})


def file_fingerprint(path: Path) -> str:
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return io.stable_hash([(str(p.relative_to(path)), file_fingerprint(p)) for p in files])
    st = path.stat()
    if st.st_size > BIG_FILE:
        return f"size={st.st_size},mtime={int(st.st_mtime)}"
    return "sha256:" + io.sha256_file(path)


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


class StageContext:
    def __init__(self, stage: str, params: Any, run_dir: Path, root: Path):
        self.stage = stage
        self.p = params
        self.run_dir = run_dir
        self.dir = run_dir / stage
        self.root = root
        self.dir.mkdir(parents=True, exist_ok=True)
        self.inputs: dict[str, str] = {}
        self.outputs: dict[str, str] = {}
        self.started = time.time()
        self._generators: list = []

    # -- paths ----------------------------------------------------------------
    def path(self, name: str) -> Path:
        return self.dir / name

    def stage_dir(self, stage: str) -> Path:
        return self.run_dir / stage

    def input(self, stage_or_path: str, name: str | None = None) -> Path:
        """Path of an upstream output (``ctx.input("03_cross_validate", "kept.jsonl")``) or a
        file named in params; its fingerprint is recorded. Missing → a clear error."""
        if name is not None:
            p = self.run_dir / stage_or_path / name
            if not (self.run_dir / stage_or_path / MANIFEST).exists():
                raise FileNotFoundError(
                    f"{self.stage} needs stage {stage_or_path} of this run first: run "
                    f"`autoif run {self.p.params_file} --stages {stage_or_path[:2]}` (looked in {p.parent})")
        else:
            p = resolve_path(stage_or_path, self.root)
        if not p.exists():
            raise FileNotFoundError(f"{self.stage}: input not found: {p}")
        self.inputs[str(p)] = file_fingerprint(p)
        return p

    # -- data -------------------------------------------------------------------
    def write_jsonl(self, name: str, records: Iterable[dict]) -> Path:
        p = io.write_jsonl(self.dir / name, records)
        self.outputs[name] = file_fingerprint(p)
        return p

    def write_json(self, name: str, obj: Any) -> Path:
        p = io.write_json(self.dir / name, obj)
        self.outputs[name] = file_fingerprint(p)
        return p

    def read_jsonl(self, stage: str, name: str) -> list[dict]:
        return io.read_jsonl(self.input(stage, name))

    def savefig(self, fig, name: str) -> Path:
        p = self.dir / name
        fig.savefig(p, dpi=110, bbox_inches="tight")
        self.outputs[name] = file_fingerprint(p)
        return p

    # -- models -------------------------------------------------------------------
    @property
    def cache_path(self) -> Path:
        """One generation cache per outputs root, shared by runs: same request, same answer."""
        return self.run_dir.parent.parent / "cache" / "generations.sqlite"

    def generator(self, spec, progress: bool = True):
        from .models import Generator

        g = Generator(spec, cache_path=self.cache_path, progress=progress)
        self._generators.append(g)
        return g

    # -- completion ---------------------------------------------------------------
    def finish(self, metrics: Mapping[str, Any] | None = None) -> dict:
        """Write metrics.json and the manifest; from now on the stage counts as complete."""
        from .envinfo import git_state, machine, package_versions

        metrics = dict(metrics or {})
        if self._generators:
            metrics.setdefault("generation", [dict(g.stats, model=g.fingerprint) for g in self._generators])
        self.write_json("metrics.json", metrics)
        manifest = {
            "stage": self.stage,
            "status": "complete",
            "run_id": self.run_dir.name,
            "params": dataclasses.asdict(self.p),
            "params_hash": stage_hash(self.p),
            "seed": self.p.seed,
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


def open_stage(stage: str, namespace: Mapping[str, Any]) -> StageContext:
    """Validate the parameters cell's values (from ``globals()``) and open the stage folder."""
    if stage not in STAGES:
        raise ParamsError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
    cls = STAGES[stage]
    root = repo_root()
    names = [f.name for f in dataclasses.fields(cls)]
    values = {k: namespace[k] for k in names if k in namespace}
    params = build(cls, values, f"{stage} parameters", root)
    if params.run_dir:
        run_dir = Path(params.run_dir)
    else:
        # Opened by hand: continue the run the recipe names (same params → same folder).
        run_dir = load_recipe(resolve_path(params.params_file, root), root=root).run_dir
    seed_everything(params.seed)
    return StageContext(stage, params, run_dir, root)


def stage_state(run_dir: Path, stage: str, params: Any) -> str:
    """complete | stale (params changed or an input changed) | failed | partial | pending."""
    d = run_dir / stage
    m = d / MANIFEST
    if m.exists():
        try:
            man = io.read_json(m)
        except ValueError:
            return "partial"
        if man.get("status") != "complete":
            return "partial"
        if params is not None and man.get("params_hash") != stage_hash(params):
            return "stale"
        for path, fp in (man.get("inputs") or {}).items():
            p = Path(path)
            if not p.exists() or file_fingerprint(p) != fp:
                return "stale"
        return "complete"
    if (d / FAILED).exists():
        return "failed"
    if d.exists():
        return "partial"
    return "pending"
