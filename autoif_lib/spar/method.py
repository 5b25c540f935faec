"""SPaR's declaration for the core (``autoif_lib.methods``): its pipeline, results and training data."""

from ..methods import Method

METHOD = Method(
    name="spar",
    display="SPaR",
    color="tab:orange",
    pipeline="autoif_lib.spar.pipeline",
    results="autoif_lib.spar.results",
    # the prompts, and every iteration's preference pairs and refiner data (06_t1_data, 12_t2_data, ...)
    training_files=(("00_prompts", "prompts.jsonl"), ("_data", "pairs.jsonl"), ("_data", "rft.jsonl")),
    iteration_metrics=("prompt_strict", "search_prompt_strict", "judge_heldout_acc"),
    marker_stage="00_prompts",
    doc="actor-refiner self-play with tree-search refinement (arXiv 2412.11605)",
)
