"""The AutoIF pipeline: its stages, what each reads and what each makes.

Upstreams are the stages whose files a notebook reads (the stage context refuses
others); they also decide what re-runs: a stage's output folder is keyed by its own
params plus its upstreams' keys (``autoif_lib.runs.stage_key``).
"""

from __future__ import annotations

from ..pipeline import Pipeline, Stage, register
from . import stages as S

PIPELINE = register(Pipeline(
    name="autoif",
    notebooks="notebooks/autoif",
    default_recipe="params/autoif/quickstart.yaml",
    stages=(
        Stage("00_environment", S.EnvironmentParams, (), ("demo_answers.jsonl",),
              doc="backends and devices found, the model answering a few prompts, throughput"),
        Stage("01_augment", S.AugmentParams, (), ("instructions.jsonl", "calls.jsonl"),
              doc="self-instruct: new verifiable instructions from the seeds"),
        Stage("02_verifiers", S.VerifiersParams, ("01_augment",), ("candidates.jsonl", "samples.jsonl"),
              doc="K samples per instruction of an evaluate() function + test cases"),
        Stage("03_cross_validate", S.CrossValidateParams, ("02_verifiers",),
              ("kept.jsonl", "rejected.jsonl", "verifier_quality.jsonl"),
              doc="every function on every case in the sandbox; paper/reference presets"),
        Stage("04_backtranslate", S.BacktranslateParams, ("03_cross_validate",), ("instructions.jsonl", "rejected.jsonl"),
              doc="functions -> instructions again; NLI drops contradictions"),
        Stage("05_responses", S.ResponsesParams, ("04_backtranslate",),
              ("pairs.jsonl", "heldout_instructions.jsonl", "train_instructions.jsonl", "queries.jsonl",
               "heldout_queries.jsonl", "probe.jsonl"),
              doc="instructions x user queries -> K responses; held-out split"),
        Stage("06_verify_score", S.VerifyScoreParams, ("04_backtranslate", "05_responses"), ("scored.jsonl", "kept.jsonl"),
              doc="pass rate by execution, then an LLM quality score"),
        Stage("07_export", S.ExportParams,
              ("01_augment", "03_cross_validate", "04_backtranslate", "05_responses", "06_verify_score"),
              ("sft_messages.jsonl", "sft_alpaca.json", "dpo_trl.jsonl", "dpo_llamafactory.json", "dataset_info.json",
               "heldout.jsonl", "online_prompts.jsonl", "README.md"),
              doc="SFT + DPO data for TRL and LLaMA-Factory, held-out set, dataset card"),
        Stage("08_sft", S.SFTParams, ("05_responses", "07_export"), ("model",), checkpoint="sft",
              doc="TRL SFTTrainer (full or LoRA; accelerate + ZeRO-3 on several GPUs)"),
        Stage("09_dpo", S.DPOParams, ("07_export", "08_sft"), ("model",), checkpoint="dpo",
              doc="TRL DPOTrainer on verifier-ranked pairs"),
        Stage("10_online_dpo", S.OnlineDPOParams, ("05_responses", "07_export", "08_sft", "09_dpo"), ("model",), checkpoint="online_dpo",
              doc="on-policy DPO rewarded by the sandboxed verifiers (TRL or explicit loop)"),
        Stage("11_evaluate", S.EvaluateParams, ("05_responses", "07_export", "08_sft", "09_dpo", "10_online_dpo"),
              ("comparison.json",),
              doc="IFEval offline (4 metrics, per type) + held-out verifier pass rate"),
    ),
))

STAGES = PIPELINE.params_classes()
