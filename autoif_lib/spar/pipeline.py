"""The SPaR pipeline: prompts, M0/R0, then per iteration sample -> judge -> search -> data -> actor DPO ->
refiner RFT, then evaluation. Iterations 1-3 are declared (the paper runs 3); ``iterations`` switches later
ones off. Each iteration's stages share one notebook per step and get ``iteration`` from here.

Models pass between stages as ``models.json`` ({"actor": path, "refiner": path}): the initial stage, and
every iteration's refiner stage (which closes the iteration), name the pair the next iteration starts from.
"""

from __future__ import annotations

from ..pipeline import Pipeline, Stage, register
from . import stages as S

STEPS = ("sample", "judge", "search", "data", "actor", "refiner")


def stage_name(t: int, step: str) -> str:
    """``stage_name(2, "judge") == "09_t2_judge"``: two-digit numbers keep `--stages` selections working."""
    return f"{2 + 6 * (t - 1) + STEPS.index(step):02d}_t{t}_{step}"


def models_source(t: int) -> str:
    """The stage whose ``models.json`` holds M_{t-1} and R_{t-1}, the models iteration t starts from."""
    return "01_init" if t == 1 else stage_name(t - 1, "refiner")


def _iteration(t: int) -> tuple[Stage, ...]:
    n = lambda step: stage_name(t, step)  # noqa: E731
    prev = models_source(t)
    fixed = (("iteration", t),)
    mk = lambda step, params, upstream, products, doc: Stage(  # noqa: E731
        n(step), params, upstream, products, doc=doc, notebook=f"it_{step}", fixed=fixed, enabled_if="active")
    return (
        mk("sample", S.SampleParams, ("00_prompts", prev), ("samples.jsonl",), f"M_{t - 1} samples K responses per prompt"),
        mk("judge", S.JudgeParams, ("00_prompts", prev, n("sample")), ("votes.jsonl", "roots.jsonl"),
           f"R_{t - 1} judges every sample N times; majority vote; one negative per prompt as a tree root"),
        mk("search", S.SearchParams, ("00_prompts", prev, n("judge")), ("trees.jsonl",),
           "tree search over refinements of each root, judged by the refiner"),
        mk("data", S.DataParams, (n("judge"), n("search")), ("pairs.jsonl", "rft.jsonl"),
           "actor preference pairs (root as rejected) and refiner RFT conversations"),
        mk("actor", S.ActorParams, (prev, n("data")), ("models.json",), f"DPO + SFT term: M_{t - 1} -> M_{t}"),
        mk("refiner", S.RefinerParams, (prev, n("data"), n("actor")), ("models.json",), f"RFT: R_{t - 1} -> R_{t}"),
    )


PIPELINE = register(Pipeline(
    name="spar",
    notebooks="notebooks/spar",
    default_recipe="params/spar/quickstart.yaml",
    stages=(
        Stage("00_prompts", S.PromptsParams, (), ("prompts.jsonl", "heldout_prompts.jsonl"),
              doc="plain requests -> prompts with 1-4 constraints (evolved or composed)"),
        Stage("01_init", S.InitParams, ("00_prompts",), ("models.json",), doc="M0 and R0: base, or SFT on supervisor data"),
        *_iteration(1), *_iteration(2), *_iteration(3),
        Stage("20_evaluate", S.EvaluateParams,
              ("00_prompts", "01_init", *(stage_name(t, s) for t in (1, 2, 3) for s in ("data", "actor", "refiner"))),
              ("comparison.json",),
              doc="IFEval per iteration with and without inference-time search; the refiner's judging accuracy"),
    ),
))

STAGES = PIPELINE.params_classes()
