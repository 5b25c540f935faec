"""RLVR's declaration for the core (``autoif_lib.methods``): its pipeline, results, training data and GRPO."""

from ..methods import Method

METHOD = Method(
    name="rlvr",
    display="RLVR (GRPO)",
    color="tab:green",
    pipeline="autoif_lib.rlvr.pipeline",
    results="autoif_lib.rlvr.results",
    training_files=(("00_instructions", "prompts.jsonl"),),
    training_kinds=(("grpo", "autoif_lib.rlvr.training:train_grpo"),),
    marker_stage="01_grpo",
    doc="GRPO with rewards from sandboxed verification functions (IF-RLVR, arXiv 2507.02833; GRPO: arXiv 2402.03300)",
)
