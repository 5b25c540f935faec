"""Stage 07: training data in the formats trainers read, plus a held-out split and a dataset card.

* SFT: TRL conversational (``{"messages": [...]}``) and LLaMA-Factory alpaca
  (``instruction/input/output/history``). The user turn is the one the response
  was generated and verified for (``prompt`` of stage 05), so the layout of
  instruction and query is the same in generation and training.
* Query-level DPO pairs (``autoif_lib.scoring.preference_pairs``): chosen pass rate
  > ``chosen_min`` (paper: 0.5; ``>=`` is the released code's switch), rejected pass
  rate <= ``rejected_max`` (paper: 0), at most 2 chosen x 2 rejected per prompt,
  seeded. Instruction-level pairs: the instruction as the prompt, a test case its
  kept functions pass vs one they all fail, by measured pass rate.
* TRL preference format (conversational ``prompt``/``chosen``/``rejected``) and
  LLaMA-Factory's (``instruction/input/chosen/rejected`` + ``dataset_info.json``).
"""

from __future__ import annotations

import random
from typing import Sequence

from ..io import stable_hash

from ..scoring import functions_of
from ..scoring import preference_pairs as dpo_pairs  # noqa: F401  (query-level pairs: the shared rule)
from ..train import preference_records as dpo_trl  # noqa: F401  (TRL's conversational format)


def sft_messages(records: Sequence[dict]) -> list[dict]:
    return [{"messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}],
             "instruction_id": r["instruction_id"], "query_id": r["query_id"]} for r in records]


def sft_alpaca(records: Sequence[dict]) -> list[dict]:
    return [{"instruction": r["prompt"], "input": "", "output": r["response"], "history": []} for r in records]


def instruction_pairs(instructions: Sequence[dict], runner, chosen_min: float = 0.5, chosen_inclusive: bool = False,
                      rejected_max: float = 0.0, max_pairs: int = 2, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Instruction-level pairs (paper): prompt = the instruction, chosen / rejected = two of its test-case
    inputs, ranked by the pass rate its kept functions measure on them in the sandbox (chosen > 0.5,
    rejected = 0), not by the labels the cases state. Returns (pairs, the scored cases)."""
    from ..scoring import pass_rates

    items = [{"instruction_id": ins["id"], "prompt": ins["instruction"], "level": "instruction",
              "responses": [c["input"] for c in ins.get("cases", []) if c["input"].strip()]} for ins in instructions]
    fns = {ins["id"]: [f["src"] for f in ins["functions"]] for ins in instructions}
    scored = pass_rates([i for i in items if i["responses"]], fns, runner)
    pairs = dpo_pairs(scored, chosen_min, rejected_max, chosen_inclusive=chosen_inclusive, max_chosen=max_pairs,
                      max_rejected=max_pairs, max_pairs=max_pairs, seed=seed)
    return pairs, scored


def dpo_llamafactory(pairs: Sequence[dict]) -> list[dict]:
    return [{"instruction": p["prompt"], "input": "", "chosen": p["chosen"], "rejected": p["rejected"]} for p in pairs]


def llamafactory_dataset_info(prefix: str = "autoif") -> dict:
    """``dataset_info.json`` entries so LLaMA-Factory finds both files in this folder."""
    return {
        f"{prefix}_sft": {"file_name": "sft_alpaca.json",
                          "columns": {"prompt": "instruction", "query": "input", "response": "output", "history": "history"}},
        f"{prefix}_dpo": {"file_name": "dpo_llamafactory.json", "ranking": True,
                          "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"}},
    }


def online_prompts(instructions: Sequence[dict], records: Sequence[dict]) -> list[dict]:
    """Prompts for online DPO (stage 10): each distinct user turn of ``records`` whose instruction has functions.

    ``records`` are the SFT examples kept after the function and judge filters (paper §3.4: the policy samples
    "for each training sample") or, with ``online_prompts_from: pairs``, every (instruction, query) pair of
    stage 05 (this workbench's earlier behaviour, kept as a switch; the released code has no online loop)."""
    fns = functions_of(instructions)
    seen, out = set(), []
    for p in records:
        if p["prompt"] in seen or not fns.get(p["instruction_id"]):
            continue
        seen.add(p["prompt"])
        out.append({"prompt": [{"role": "user", "content": p["prompt"]}], "instruction_id": p["instruction_id"],
                    "verifiers": fns[p["instruction_id"]]})
    return out


def cap_prompts(prompts: Sequence[dict], n: int, seed: int) -> list[dict]:
    """At most ``n`` prompts (0: all), stratified by instruction: the instructions in a seeded order take turns,
    each giving its next prompt from a seeded shuffle, so a cap below the total still covers as many
    instructions as it can (a plain ``prompts[:n]`` of a list ordered by instruction covers the first few)."""
    if not n or n >= len(prompts):
        return list(prompts)
    rng = random.Random(int(stable_hash([seed, "online_prompts"], 8), 16))
    groups: dict[str, list[dict]] = {}
    for p in prompts:
        groups.setdefault(p["instruction_id"], []).append(p)
    queues = [rng.sample(g, len(g)) for g in rng.sample(list(groups.values()), len(groups))]
    out: list[dict] = []
    while len(out) < n:
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


def dataset_card(counts: dict, settings: dict, files: dict) -> str:
    """A README.md next to the files: how the data was made, stage by stage."""
    lines = ["# AutoIF dataset", "",
             "Self-generated, execution-verified instruction-following data made with the AutoIF workbench.", "",
             "## Files", ""]
    lines += [f"- `{name}`: {desc}" for name, desc in files.items()]
    lines += ["", "## Counts per stage", "", "| stage | count |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in counts.items()]
    lines += ["", "## Settings", "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | `{v}` |" for k, v in settings.items()]
    lines += ["", "The user turn is built once by `prompts.combine_turn` with the layout above and used both to",
              "generate the verified responses and in the training files.", ""]
    return "\n".join(lines)


FILES = {"sft_messages.jsonl": "SFT, TRL conversational", "sft_alpaca.json": "SFT, LLaMA-Factory alpaca",
         "dpo_trl.jsonl": "DPO, TRL conversational preference", "dpo_llamafactory.json": "DPO, LLaMA-Factory (ranking)",
         "dataset_info.json": "LLaMA-Factory dataset registry", "heldout.jsonl": "held-out instructions with functions",
         "online_prompts.jsonl": "online-DPO prompts with their verification functions"}


def write_card(ctx, n_sft: int, n_dpo: int, n_online: int, n_heldout: int, layout: str) -> dict:
    """The dataset card (README.md) and its counts, read from the declared upstreams' metrics and params."""
    m = {s: ctx.upstream_metrics(s) for s in ("01_augment", "03_cross_validate", "04_backtranslate",
                                              "05_responses", "06_verify_score")}
    counts = {"instructions after augmentation": m["01_augment"]["n_instructions"],
              "instructions after cross-validation": m["03_cross_validate"]["n_kept"],
              "instructions after back-translation/NLI": m["04_backtranslate"]["n_kept"],
              "held-out instructions": n_heldout, "(instruction, query) pairs": m["05_responses"]["n_pairs"],
              "responses": m["06_verify_score"]["n_responses"],
              "responses passing verifiers": m["06_verify_score"]["n_passed"],
              "SFT examples": n_sft, "DPO pairs": n_dpo, "online-DPO prompts": n_online}
    p3, p6, p5 = (ctx.upstream_params(s) for s in ("03_cross_validate", "06_verify_score", "05_responses"))
    settings = {"03_cross_validate.preset": p3["preset"],
                **{f"06_verify_score.{k}": p6[k] for k in ("pass_threshold", "run_judge", "score_threshold")},
                "supervisor": p5["supervisor"]["model"], "layout": layout, "seed": ctx.p.seed,
                "dpo": f"chosen {'>=' if ctx.p.chosen_inclusive else '>'} {ctx.p.chosen_min_pass}, "
                       f"rejected <= {ctx.p.rejected_max_pass}, <= {ctx.p.max_chosen_per_prompt} x "
                       f"{ctx.p.max_rejected_per_prompt} per prompt"}
    ctx.write_json("card_counts.json", counts)
    ctx.write_text("README.md", dataset_card(counts, settings, FILES))
    return counts


def instruction_level(ctx, instructions: Sequence[dict], train_ids: set[str]) -> list[dict]:
    """Stage 07's instruction-level pairs for the training instructions (``instruction_level_pairs``; [] when off):
    ranked by the pass rates their kept functions measure on the test cases, in the sandbox."""
    p = ctx.p
    if not p.instruction_level_pairs:
        return []
    with ctx.sandbox() as box:
        pairs, _ = instruction_pairs([i for i in instructions if i["id"] in train_ids], box.verdicts, p.chosen_min_pass,
                                     p.chosen_inclusive, p.rejected_max_pass, p.max_instruction_pairs, p.seed)
    return pairs


def load_back(ctx, expected: dict[str, Sequence[str]]) -> dict:
    """The written training files loaded as Hugging Face datasets (what a trainer will see), each checked for the
    columns TRL expects (``expected``: file -> columns): name -> (rows, columns); an empty file is left out."""
    import datasets

    out = {}
    for name, columns in expected.items():
        if ctx.path(name).stat().st_size:
            ds = datasets.load_dataset("json", data_files=str(ctx.path(name)), split="train")
            missing = sorted(set(columns) - set(ds.column_names))
            if missing:
                raise ValueError(f"{name}: loaded without the column(s) {missing} TRL needs; it has {ds.column_names}")
            out[name] = (ds.num_rows, ds.column_names)
    return out
