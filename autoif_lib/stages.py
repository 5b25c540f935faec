"""The stage registry: one frozen params dataclass per numbered notebook.

A notebook's ``parameters`` cell mirrors its dataclass field for field (a test
keeps them in sync, ``autoif sync-notebooks`` rewrites the cells from here),
so the cell is the stage's whole interface and this file is its typed schema.
Defaults are the quickstart values: a notebook opened in JupyterLab with no
injection runs on them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import param
from .models.spec import ModelSpec


@dataclass(frozen=True)
class StageParams:
    """Fields every stage has. ``params_file``/``run_dir`` are set by the runner."""

    params_file: str = param("params/quickstart.yaml", "recipe this run belongs to (relative to the repo root)")
    run_dir: str = param("", "run folder, set by the runner; empty means derived from params_file")
    seed: int = param(0, "seeds python, numpy, torch and sampling")


RUNNER_KEYS = ("params_file", "run_dir")  # never written in a recipe


@dataclass(frozen=True)
class EnvironmentParams(StageParams):
    """00_environment: backends and devices found, the model answering a few prompts, throughput."""

    supervisor: ModelSpec = param(ModelSpec(), "generation model: backend + hub id / local path ('embedded' is the shipped SmolLM2)")
    n_prompts: int = param(3, "how many demo prompts the model answers", min=1, max=20)
    max_new_tokens: int = param(64, "new tokens per demo answer", min=1)
    temperature: float = param(0.0, "sampling temperature for the demo answers (0 is greedy)", min=0.0)
    repetition_penalty: float = param(1.2, "keeps a 135M model out of loops", min=0.5, max=3.0)
    throughput_batch: int = param(8, "prompts in the throughput measurement", min=1)
    throughput_tokens: int = param(32, "new tokens per prompt in the throughput measurement", min=1)


STAGES: dict[str, type] = {
    "00_environment": EnvironmentParams,
}
