"""Paper figures and tables from a hand-made results table, and the analysis notebooks that draw them."""

from __future__ import annotations

import math

import nbformat
import pytest

from autoif_lib import results
from autoif_lib.reporting import paper

ANALYSIS = ("ablation_deltas", "factor_curves", "spar_iterations", "method_comparison", "generalization")


def _row(variant, seed, pipeline, ck, metric, value, se=None, factors=None, iteration=None):
    return {"sweep": "hand", "variant": variant, "seed": seed, "pipeline": pipeline, "checkpoint": ck,
            "iteration": iteration, "metric": metric, "value": value, "se": se, "n": 16,
            "factors": factors or {}, "run_id": f"{variant}-{seed}", "recipe_key": "k", "base_recipe": "r.yaml",
            "overrides": {}, "git_commit": "abc", "stage_keys": {}, "finished_at": "2026-12-03T00:00:00"}


def _table(tmp_path):
    rows = []
    # two seeds of a baseline and one ablated variant (Table 3 shape)
    for seed, (b, a) in zip((0, 1), ((40.0, 35.0), (44.0, 33.0))):
        rows += [_row("full", seed, "autoif", "sft", "prompt_strict", b, 5.0),
                 _row("no_nli", seed, "autoif", "sft", "prompt_strict", a, 5.0)]
    # a one-seed threshold grid (Fig. 4 shape)
    for t, v in ((0.5, 20.0), (0.8, 30.0)):
        rows.append(_row(f"pt={t}", 0, "autoif", "dpo", "prompt_loose", v, 4.0,
                         factors={"stages.06_verify_score.pass_threshold": t}))
    # SPaR iterations
    for t, v in ((0, 18.75), (1, 12.5), (2, 25.0)):
        rows.append(_row("spar", 0, "spar", "base" if t == 0 else f"spar_t{t}", "prompt_strict", v, 9.8, iteration=t))
    rows.append(_row("full", 0, "autoif", "base", "prompt_strict", 18.75, 9.8))
    # paired gains over the base, in distribution (IFEval, held-out instructions) and out of it (IFBench)
    for seed, (g_in, g_ood) in zip((0, 1), ((10.0, 2.0), (14.0, 4.0))):
        rows += [_row("full", seed, "autoif", "sft", "delta_prompt_strict", g_in, 3.0),
                 _row("full", seed, "autoif", "sft", "delta_ifbench_prompt_strict", g_ood, 2.0)]
    rows += [_row("full", 0, "autoif", "sft", "delta_heldout_pass_rate", 5.0, 2.5),
             _row("spar", 0, "spar", "spar_t1", "delta_prompt_strict", -6.25, 4.0, iteration=1),
             _row("spar", 0, "spar", "spar_t1", "delta_ifbench_prompt_strict", 0.0, 3.0, iteration=1)]
    return results.write_table(rows, tmp_path / "results.csv")


def test_aggregate_uses_seed_spread_with_seeds_and_the_row_error_without(tmp_path):
    df = paper.read_results(_table(tmp_path))
    agg = paper.aggregate(df[df.metric == "prompt_strict"], ["variant", "checkpoint"]).set_index(["variant", "checkpoint"])
    # two seeds: mean 42, sample sd of (40, 44) = 2.828, s.e. = sd / sqrt(2) = 2.0
    assert agg.loc[("full", "sft"), "mean"] == pytest.approx(42.0)
    assert agg.loc[("full", "sft"), "se"] == pytest.approx(2.0)
    assert agg.loc[("full", "sft"), "seeds"] == 2
    # one seed: the row's own (binomial) standard error
    assert agg.loc[("spar", "spar_t1"), "se"] == pytest.approx(9.8)


def test_ablation_bars_draw_the_delta_from_the_baseline_with_combined_errors(tmp_path):
    df = paper.read_results(_table(tmp_path))
    fig = paper.ablation_bars(df[df.checkpoint == "sft"], "prompt_strict", baseline="full")
    ax = fig.axes[0]
    (bar,) = ax.patches
    assert bar.get_width() == pytest.approx(34.0 - 42.0)
    # s.e. over seeds: full (40, 44) -> 2.0, no_nli (35, 33) -> 1.0; combined sqrt(5)
    (err,) = [c for c in ax.containers if hasattr(c, "has_xerr") and c.has_xerr]
    seg = err.lines[2][0].get_segments()[0]
    assert seg[1][0] - seg[0][0] == pytest.approx(2 * math.sqrt(5.0))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["no_nli"]


def test_ablation_needs_a_baseline_that_exists(tmp_path):
    df = paper.read_results(_table(tmp_path))
    with pytest.raises(ValueError, match="baseline 'nope'"):
        paper.ablation_bars(df, "prompt_strict", baseline="nope")
    with pytest.raises(ValueError, match="no rows for metric 'missing'"):
        paper.factor_curve(df, "x", "missing")


def test_factor_curve_plots_the_grid_values_in_order(tmp_path):
    df = paper.read_results(_table(tmp_path))
    fig = paper.factor_curve(df, "stages.06_verify_score.pass_threshold", "prompt_loose")
    (line,) = fig.axes[0].get_lines()
    assert list(line.get_xdata()) == [0.5, 0.8] and list(line.get_ydata()) == [20.0, 30.0]
    assert fig.axes[0].get_xlabel() == "pass_threshold"


def test_iteration_curves_and_comparison_order_checkpoints_by_training(tmp_path):
    df = paper.read_results(_table(tmp_path))
    fig = paper.iteration_curves(df[df.pipeline == "spar"], ["prompt_strict"])
    (line,) = fig.axes[0].get_lines()
    assert list(line.get_xdata()) == [0, 1, 2] and list(line.get_ydata()) == [18.75, 12.5, 25.0]
    fig = paper.method_comparison(df[df.variant.isin(["full", "spar"]) & (df.metric == "prompt_strict")], "prompt_strict")
    # both variants measured base at 18.75: it is drawn once
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["base", "full: sft", "spar: spar_t1", "spar: spar_t2"]
    assert [p.get_height() for p in fig.axes[0].patches] == [18.75, 42.0, 12.5, 25.0]


def test_tables_export_mean_and_error_to_latex_and_markdown(tmp_path):
    df = paper.read_results(_table(tmp_path))
    t = paper.summary_table(df[df.pipeline == "autoif"], ["prompt_strict"])
    assert t.to_dict("records") == [{"variant": "full", "checkpoint": "base", "prompt_strict": "18.8 ± 9.8"},
                                    {"variant": "full", "checkpoint": "sft", "prompt_strict": "42.0 ± 2.0"},
                                    {"variant": "no_nli", "checkpoint": "sft", "prompt_strict": "34.0 ± 1.0"}]
    tex = paper.to_latex(t, tmp_path / "t.tex", caption="50% of runs")
    assert r"prompt\_strict" in tex and r"42.0 $\pm$ 2.0" in tex and r"50\% of runs" in tex and r"\toprule" in tex
    acc = df[df.metric == "prompt_strict"].assign(metric="judge_heldout_acc", value=0.4583, se=0.1017)
    assert paper.summary_table(acc[acc.variant == "spar"], ["judge_heldout_acc"]).iloc[0, 2] == "0.458 ± 0.102"
    md = paper.to_markdown(t, tmp_path / "t.md")
    assert md.splitlines()[2] == "| full | base | 18.8 ± 9.8 |"
    assert (tmp_path / "t.tex").read_text() == tex


def test_generalization_plots_each_checkpoints_in_and_out_of_distribution_gain_with_95_intervals(tmp_path):
    df = paper.read_results(_table(tmp_path))
    fig = paper.generalization(df, ["delta_prompt_strict", "delta_heldout_pass_rate", "delta_no_such"])
    axes = fig.axes
    assert len(axes) == 2  # a panel per in-distribution gain present in the table
    # IFEval panel: autoif sft (two seeds: mean 12, 3; seed-spread s.e. 2, 1) and spar_t1 (one run: -6.25, 0)
    pts = sorted((round(l.get_xdata()[0], 6), round(l.get_ydata()[0], 6)) for l in axes[0].lines if l.get_marker() == "o")
    assert pts == [(-6.25, 0.0), (12.0, 3.0)]
    # 95% interval = 1.96 x s.e.: autoif sft's x bar spans 12 +- 1.96 * 2 (s.e. over two seeds: |14 - 10| / 2)
    spans = sorted(round(float(seg[1][0] - seg[0][0]), 6) for c in axes[0].collections for seg in c.get_segments()
                   if seg[0][1] == seg[1][1])
    assert round(2 * 1.96 * 2.0, 6) in spans and round(2 * 1.96 * 4.0, 6) in spans
    assert [l.get_xdata()[0] for l in axes[1].lines if l.get_marker() == "o"] == [5.0]  # spar has no held-out split
    with pytest.raises(ValueError, match="none of"):
        paper.generalization(df, ["delta_no_such"])


def test_save_writes_vector_and_png(tmp_path):
    df = paper.read_results(_table(tmp_path))
    with paper.style():
        paths = paper.save(paper.iteration_curves(df, ["prompt_strict"]), tmp_path / "f", "it", close=True)
    assert [p.suffix for p in paths] == [".pdf", ".png"]
    assert paths[0].read_bytes()[:5] == b"%PDF-" and paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_table_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results table"):
        paper.read_results(tmp_path / "none.csv")


@pytest.mark.parametrize("name", ANALYSIS)
def test_analysis_notebook_runs_on_a_hand_made_table_and_writes_its_files(name, tmp_path, root):
    import papermill as pm

    table = _table(tmp_path)
    src = root / "notebooks" / "analysis" / f"{name}.ipynb"
    nb0 = nbformat.read(str(src), as_version=4)
    assert nb0.cells[0].source.startswith("# ") and "parameters" in nb0.cells[1].metadata.get("tags", [])
    assert not any(c.get("outputs") for c in nb0.cells if c.cell_type == "code"), "commit analysis notebooks without outputs"
    params = {"results": str(table), "out_dir": str(tmp_path / "figs"), "metrics": ["prompt_strict", "prompt_loose"],
              "name": "x"}
    params |= {"ablation_deltas": {"baseline": "full"},
               "factor_curves": {"metric": "prompt_loose"},
               "spar_iterations": {"metrics": ["prompt_strict"]},
               "method_comparison": {},
               "generalization": {"metrics": ["delta_prompt_strict", "delta_ifbench_prompt_strict"]}}[name]
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(str(src), str(out), parameters=params, kernel_name="autoif-workbench", cwd=str(root),
                        progress_bar=False)
    files = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert "x.tex" in files and "x.md" in files
    assert any(f.endswith(".pdf") for f in files) and any(f.endswith(".png") for f in files)
    nb = nbformat.read(str(out), as_version=4)
    figure_cells = [c for c in nb.cells if c.cell_type == "code" and "paper.show(" in c.source]
    assert figure_cells and all(sum("image/png" in o.get("data", {}) for o in c.outputs) == 1 for c in figure_cells)
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "error"]
