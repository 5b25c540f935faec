"""AutoIF's declaration for the core (``autoif_lib.methods``): its pipeline, results and training data."""

from ..methods import Method

METHOD = Method(
    name="autoif",
    display="AutoIF",
    color="tab:blue",
    pipeline="autoif_lib.autoif.pipeline",
    results="autoif_lib.autoif.results",
    training_files=(("07_export", "sft_messages.jsonl"), ("07_export", "dpo_trl.jsonl"),
                    ("07_export", "online_prompts.jsonl")),
    training_kinds=(("online_dpo", "autoif_lib.autoif.training:train_online_dpo"),),
    default=True,  # recipes written before SPaR name no pipeline
    doc="instructions, verifiers and responses filtered by executing generated code (arXiv 2406.13542)",
)
