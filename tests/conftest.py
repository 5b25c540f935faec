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
