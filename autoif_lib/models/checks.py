"""Model settings checked when a recipe loads, before any work: what would otherwise fail at engine start.

Reads only what is on this machine: a local folder, the embedded model, or a hub model already in the
Hugging Face cache (``config.json``, ``tokenizer_config.json``, ``chat_template.jinja``). Where a hub
model is not cached nothing can be read; :func:`check_spec` then returns a note instead of failing, and
the same checks run again when the model loads (``load_tokenizer``, vLLM's own validation).

Definite failures raise ``ParamsError`` naming the key:
* vLLM tensor parallelism that does not divide the attention heads (or the KV heads);
* ``data_parallel_size`` / ``tensor_parallel_size`` > 1 on a backend that has no such thing;
* a model without a chat template and no ``chat_template`` for it (base models, e.g. Meta-Llama-3-8B);
* a ``chat_template`` file that does not exist;
* a model named by a path that does not exist.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..params import ParamsError, resolve_path
from .spec import EMBEDDED, ModelSpec


def _local_file(model: str, filename: str) -> Path | None | bool:
    """The file of a local, embedded or cached hub model: a Path, False (the model is readable here and
    has no such file), or None (nothing of the model is on this machine)."""
    if model == EMBEDDED:
        from ..embedded import embedded_model_dir

        try:
            folder = embedded_model_dir(convert=False)
        except FileNotFoundError:
            return None
        return folder / filename if (folder / filename).exists() else False
    folder = Path(model).expanduser()
    if folder.is_dir():
        return folder / filename if (folder / filename).exists() else False
    if model.startswith((".", "/", "~")):
        return None  # a path that is not there: the path check reports it
    try:
        from huggingface_hub import try_to_load_from_cache
        from huggingface_hub.file_download import _CACHED_NO_EXIST
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return None
    hit = try_to_load_from_cache(model, filename)
    if isinstance(hit, str):
        return Path(hit)
    if hit is _CACHED_NO_EXIST:
        return False
    return None


# The hub models the shipped recipes name, as their config.json and tokenizer_config.json give them, so a
# recipe is checked on a machine that has never downloaded them. A local or cached copy always wins.
KNOWN_MODELS = {
    "Qwen/Qwen2-7B": {"num_attention_heads": 28, "num_key_value_heads": 4},
    "Qwen/Qwen2-7B-Instruct": {"num_attention_heads": 28, "num_key_value_heads": 4, "chat_template": True},
    "Qwen/Qwen2-72B": {"num_attention_heads": 64, "num_key_value_heads": 8},
    "Qwen/Qwen2-72B-Instruct": {"num_attention_heads": 64, "num_key_value_heads": 8, "chat_template": True},
    "meta-llama/Meta-Llama-3-8B": {"num_attention_heads": 32, "num_key_value_heads": 8, "chat_template": False},
    "meta-llama/Meta-Llama-3-8B-Instruct": {"num_attention_heads": 32, "num_key_value_heads": 8, "chat_template": True},
    "meta-llama/Meta-Llama-3-70B": {"num_attention_heads": 64, "num_key_value_heads": 8, "chat_template": False},
    "meta-llama/Meta-Llama-3-70B-Instruct": {"num_attention_heads": 64, "num_key_value_heads": 8, "chat_template": True},
}


def model_config(model: str) -> dict | None:
    """``config.json`` of a model readable here (else what :data:`KNOWN_MODELS` records), else None."""
    f = _local_file(model, "config.json")
    if not f:
        return KNOWN_MODELS.get(model)
    try:
        return json.loads(Path(f).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def has_chat_template(model: str) -> bool | None:
    """Whether the model's tokenizer ships a chat template; None when its files are not on this machine."""
    jinja = _local_file(model, "chat_template.jinja")
    if jinja:
        return True
    cfg = _local_file(model, "tokenizer_config.json")
    if cfg is None or jinja is None:
        return KNOWN_MODELS.get(model, {}).get("chat_template")
    if cfg is False:
        return False
    try:
        return bool(json.loads(Path(cfg).read_text(encoding="utf-8")).get("chat_template"))
    except (OSError, ValueError):
        return None


def attention_heads(cfg: dict) -> tuple[int | None, int | None]:
    """(attention heads, KV heads) of a config, looking into ``text_config`` for multimodal wrappers."""
    for c in (cfg, cfg.get("text_config") or {}):
        heads = c.get("num_attention_heads")
        if heads:
            return int(heads), int(c.get("num_key_value_heads") or heads)
    return None, None


def looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~"))


def check_path(model: str, where: str) -> None:
    """A model named by a path (absolute, ./, ../, ~) must be there: a hub lookup of it fails obscurely."""
    if looks_like_path(model) and not Path(model).expanduser().exists():
        raise ParamsError(f"{where}: model folder not found: {model!r}")


def check_template(model: str, template: str, where: str, root: Path | None) -> list[str]:
    """A chat model must have a template: its own or the one ``template`` names."""
    if template:
        if template.endswith(".jinja") and "{" not in template:
            p = resolve_path(template, root)
            if not p.exists():
                raise ParamsError(f"{where}.chat_template: file not found: {template!r} (looked at {p})")
        return []
    own = has_chat_template(model)
    if own is False:
        also = " (common.chat_template sets it for every stage)" if where.startswith("stages.") else ""
        raise ParamsError(f"{where}: model {model!r} has no chat template (a base model?); set {where}.chat_template"
                          f"{also} to a .jinja file or to a tokenizer whose template to use, e.g. the instruct "
                          "variant's hub id")
    if own is None:
        return [f"{model!r}: not on this machine; whether it has a chat template is checked when it loads"]
    return []


def check_spec(spec: ModelSpec, where: str, root: Path | None = None) -> list[str]:
    """Raise ``ParamsError`` for settings that cannot work with this model; return notes on what could not
    be checked here."""
    if spec.backend == "openai":
        return []
    check_path(spec.model, f"{where}.model")
    if spec.backend != "vllm":
        for key in ("tensor_parallel_size", "data_parallel_size"):
            if getattr(spec, key) > 1:
                raise ParamsError(f"{where}.{key}: a vllm setting; backend {spec.backend!r} runs one model "
                                  "in one process (use backend: vllm)")
    notes = check_template(spec.model, spec.chat_template, where, root)
    if spec.backend == "vllm":
        cfg = model_config(spec.model)
        tp = spec.tensor_parallel_size
        if cfg is None:
            if tp > 1:
                notes.append(f"{spec.model!r}: config not on this machine; tensor_parallel_size {tp} is checked "
                             "against its attention heads when the engine starts")
        else:
            heads, kv = attention_heads(cfg)
            if heads and heads % tp:
                ok = [d for d in range(1, heads + 1) if heads % d == 0 and d <= 8 and (kv is None or kv % d == 0 or d % kv == 0)]
                raise ParamsError(f"{where}.tensor_parallel_size: {tp} does not divide the {heads} attention heads of "
                                  f"{spec.model}; vLLM refuses it. Use one of {ok} (and data_parallel_size for "
                                  "more GPUs)")
            if kv and heads and not heads % tp and kv % tp and tp % kv:
                raise ParamsError(f"{where}.tensor_parallel_size: {tp} and the {kv} KV heads of {spec.model}: "
                                  "one must divide the other")
    return notes


def check_stage(params, where_of, root: Path | None = None) -> list[str]:
    """Every model a stage's params name: its ModelSpec fields and a training stage's ``base_model``.
    ``where_of(field)`` is the key path a message names (``common.supervisor`` or ``stages.05_x.supervisor``)."""
    import dataclasses

    notes: list[str] = []
    for f in dataclasses.fields(params):
        v = getattr(params, f.name)
        if isinstance(v, ModelSpec):
            notes += check_spec(v, where_of(f.name), root)
    if hasattr(params, "base_model") and hasattr(params, "chat_template"):
        check_path(params.base_model, where_of("base_model"))
        where = where_of("chat_template").rpartition(".")[0]
        notes += check_template(params.base_model, params.chat_template, where, root)
    return notes
