"""Stage 07: training data in the formats trainers read, plus a held-out split and a dataset card.

* SFT: TRL conversational (``{"messages": [...]}``) and LLaMA-Factory alpaca
  (``instruction/input/output/history``). The user turn is the one the response
  was generated and verified for (``prompt`` of stage 05), so the layout of
  instruction and query is the same in generation and training.
* Query-level DPO pairs: chosen pass rate >= ``chosen_min`` (paper: 0.5),
  rejected pass rate <= ``rejected_max`` (paper: 0), at most ``max_pairs`` per
  prompt, seeded. Optionally instruction-level pairs: the instruction as the
  prompt, a test case its functions pass vs one they fail.
* TRL preference format (conversational ``prompt``/``chosen``/``rejected``) and
  LLaMA-Factory's (``instruction/input/chosen/rejected`` + ``dataset_info.json``).
"""

from __future__ import annotations

import itertools
import random
from typing import Sequence

from .io import stable_hash


def sft_messages(records: Sequence[dict]) -> list[dict]:
    return [{"messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}],
             "instruction_id": r["instruction_id"], "query_id": r["query_id"]} for r in records]


def sft_alpaca(records: Sequence[dict]) -> list[dict]:
    return [{"instruction": r["prompt"], "input": "", "output": r["response"], "history": []} for r in records]


def dpo_pairs(scored: Sequence[dict], chosen_min: float = 0.5, rejected_max: float = 0.0, max_pairs: int = 4,
              seed: int = 0) -> list[dict]:
    """Query-level pairs from responses to the same prompt, by verifier pass rate."""
    by_prompt: dict[str, list[dict]] = {}
    for r in scored:
        by_prompt.setdefault(r["prompt"], []).append(r)
    pairs = []
    for prompt, group in by_prompt.items():
        good = _unique([r for r in group if r["pass_rate"] >= chosen_min])
        bad = _unique([r for r in group if r["pass_rate"] <= rejected_max])
        combos = [(g, b) for g, b in itertools.product(good, bad) if g["response"] != b["response"]]
        if not combos:
            continue
        rng = random.Random(int(stable_hash([seed, prompt], 8), 16))
        for g, b in rng.sample(combos, min(max_pairs, len(combos))):
            pairs.append({"prompt": prompt, "chosen": g["response"], "rejected": b["response"],
                          "chosen_pass_rate": g["pass_rate"], "rejected_pass_rate": b["pass_rate"],
                          "instruction_id": g["instruction_id"], "level": "query"})
    return pairs


def _unique(rs: Sequence[dict]) -> list[dict]:
    seen, out = set(), []
    for r in rs:
        if r["response"] not in seen and r["response"].strip():
            seen.add(r["response"])
            out.append(r)
    return out


def instruction_pairs(instructions: Sequence[dict], max_pairs: int = 2, seed: int = 0) -> list[dict]:
    """Instruction-level pairs: prompt = the instruction, chosen = a passing case, rejected = a failing one."""
    pairs = []
    for ins in instructions:
        good = [c["input"] for c in ins.get("cases", []) if c["output"] is True and c["input"].strip()]
        bad = [c["input"] for c in ins.get("cases", []) if c["output"] is False and c["input"].strip()]
        combos = list(itertools.product(good, bad))
        rng = random.Random(int(stable_hash([seed, ins["id"]], 8), 16))
        for g, b in rng.sample(combos, min(max_pairs, len(combos))):
            pairs.append({"prompt": ins["instruction"], "chosen": g, "rejected": b, "chosen_pass_rate": 1.0,
                          "rejected_pass_rate": 0.0, "instruction_id": ins["id"], "level": "instruction"})
    return pairs


def dpo_trl(pairs: Sequence[dict]) -> list[dict]:
    """TRL's conversational preference format."""
    return [{"prompt": [{"role": "user", "content": p["prompt"]}],
             "chosen": [{"role": "assistant", "content": p["chosen"]}],
             "rejected": [{"role": "assistant", "content": p["rejected"]}],
             "level": p["level"], "instruction_id": p["instruction_id"]} for p in pairs]


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


def online_prompts(instructions: Sequence[dict], pairs: Sequence[dict]) -> list[dict]:
    """Prompts for online DPO (stage 10): each (instruction, query) turn with its functions."""
    fns = {i["id"]: [f["src"] for f in i["functions"]] for i in instructions}
    seen, out = set(), []
    for p in pairs:
        if p["prompt"] in seen or not fns.get(p["instruction_id"]):
            continue
        seen.add(p["prompt"])
        out.append({"prompt": [{"role": "user", "content": p["prompt"]}], "instruction_id": p["instruction_id"],
                    "verifiers": fns[p["instruction_id"]]})
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
