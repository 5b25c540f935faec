"""Paper figures and tables from a sweep's results table (``results.py``'s tidy CSV).

Everything here reads the table only: no run folders, no models. One style (``style()``: 8-pt fonts,
a 3.3-inch single column, TrueType fonts embedded in the PDF), each figure saved as vector PDF + PNG.

Error bars: with several seeds, the standard error of the mean over seeds; with one seed, the row's own
standard error (binomial over IFEval prompts, or over held-out responses) — both in the metric's units.
An ablation delta's error combines the variant's and the baseline's errors in quadrature (independent runs).
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Iterable, Sequence

from .. import methods

COLUMN_IN = 3.3   # one column of a two-column paper, inches
DOUBLE_IN = 6.9   # the full text width
CHECKPOINT_ORDER = ("base", "sft", "dpo", "online_dpo")  # then spar_t1, spar_t2, ... by iteration

RC = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.5, "lines.linewidth": 1.2, "lines.markersize": 4,
    "errorbar.capsize": 2, "figure.dpi": 150, "savefig.dpi": 300, "savefig.bbox": "tight",
    "pdf.fonttype": 42, "ps.fonttype": 42,  # TrueType in the PDF: editable text, accepted by publishers
}


@contextlib.contextmanager
def style():
    """The figures' matplotlib style, for the ``with`` block only."""
    import matplotlib as mpl

    with mpl.rc_context(RC):
        yield


def resolve(path) -> Path:
    """A path as the notebooks take it: absolute, or relative to the repository root (wherever the kernel runs)."""
    from ..params import resolve_path
    from ..recipes import repo_root

    return resolve_path(path, repo_root())


def read_results(path) -> "pd.DataFrame":  # noqa: F821
    """A sweep's ``results.csv`` (JSON columns parsed; relative paths from the repository root).
    A clear error when the file is missing."""
    from ..results import read_table

    path = resolve(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no results table (run `autoif sweep <file>` first, or `--collect`)")
    return read_table(path)


def _ck_key(ck: str) -> tuple:
    if ck in CHECKPOINT_ORDER:
        return (0, CHECKPOINT_ORDER.index(ck), ck)
    if ck.startswith("spar_t") and ck[6:].isdigit():
        return (1, int(ck[6:]), ck)
    return (2, 0, ck)


def checkpoints(df) -> list[str]:
    """The table's checkpoints in training order (base, sft, dpo, online_dpo, spar_t1, ...)."""
    return sorted(set(df["checkpoint"]), key=_ck_key)


def aggregate(df, by: Sequence[str]) -> "pd.DataFrame":  # noqa: F821
    """Mean over seeds per ``by`` group with its standard error (see the module docstring) and seed count."""
    import pandas as pd

    rows = []
    for key, g in df.groupby(list(by), sort=False, dropna=False):
        vals = g["value"].astype(float).tolist()
        k = len(vals)
        mean = sum(vals) / k
        if k > 1:
            var = sum((v - mean) ** 2 for v in vals) / (k - 1)
            se = math.sqrt(var / k)
        else:
            se = float(g["se"].iloc[0]) if pd.notna(g["se"].iloc[0]) else float("nan")
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), "mean": mean, "se": se, "seeds": k})
    return pd.DataFrame(rows, columns=[*by, "mean", "se", "seeds"])


def _metric(df, metric: str):
    sub = df[df["metric"] == metric]
    if sub.empty:
        raise ValueError(f"no rows for metric {metric!r} (the table has: {sorted(set(df['metric']))})")
    return sub


def _label(metric: str) -> str:
    names = {"prompt_strict": "IFEval Pr(S) %", "prompt_loose": "IFEval Pr(L) %", "inst_strict": "IFEval Ins(S) %",
             "inst_loose": "IFEval Ins(L) %", "heldout_pass_rate": "held-out pass rate %",
             "search_prompt_strict": "Pr(S) with tree search %", "judge_heldout_acc": "judging accuracy (held-out)",
             "judge_ifeval_acc": "judging accuracy (IFEval)", "ifbench_prompt_strict": "IFBench Pr(S) %",
             "ifbench_inst_strict": "IFBench Ins(S) %", "trained_pass_rate": "trained instr. pass rate %"}
    for prefix, what in (("init_delta_", "vs init"), ("delta_", "vs base")):
        if metric.startswith(prefix):
            return f"Δ {names.get(metric[len(prefix):], metric[len(prefix):]).removesuffix(' %')} {what}, points"
    return names.get(metric, metric)


def _err(se) -> list[float]:
    return [0.0 if (s is None or (isinstance(s, float) and math.isnan(s))) else float(s) for s in se]


def factor_curve(df, factor: str, metric: str, checkpoints_: Iterable[str] | None = None, ax=None):
    """Fig. 4 shape: the metric against one swept key (``factors`` column), a line per checkpoint."""
    import matplotlib.pyplot as plt

    sub = _metric(df, metric).copy()
    sub["x"] = sub["factors"].map(lambda f: f.get(factor) if isinstance(f, dict) else None)
    sub = sub[sub["x"].notna()]
    if sub.empty:
        raise ValueError(f"no rows of {metric!r} carry the factor {factor!r}")
    agg = aggregate(sub, ["checkpoint", "x"])
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(COLUMN_IN, 2.2))
    for ck in [c for c in checkpoints(agg) if checkpoints_ is None or c in set(checkpoints_)]:
        g = agg[agg["checkpoint"] == ck].sort_values("x")
        ax.errorbar(g["x"].astype(float), g["mean"], yerr=_err(g["se"]), marker="o", label=ck)
    ax.set_xlabel(factor.split(".")[-1])
    ax.set_ylabel(_label(metric))
    xs = sorted(set(sub["x"].astype(float)))
    if len(xs) > 2 and xs[0] > 0 and xs[-1] / xs[0] >= 16:  # data-scaling fractions 1/64 ... 1
        ax.set_xscale("log", base=2)
    ax.legend(frameon=False)
    return fig


def ablation_bars(df, metric: str, baseline: str | None = None, checkpoints_: Iterable[str] | None = None, ax=None):
    """Table 3 shape: each variant's change from the baseline variant, a bar per checkpoint, error bars."""
    import matplotlib.pyplot as plt
    import numpy as np

    sub = _metric(df, metric)
    variants = list(dict.fromkeys(sub["variant"]))
    baseline = baseline or variants[0]
    if baseline not in variants:
        raise ValueError(f"baseline {baseline!r} has no {metric!r} rows (variants: {variants})")
    agg = aggregate(sub, ["variant", "checkpoint"])
    cks = [c for c in checkpoints(agg) if checkpoints_ is None or c in set(checkpoints_)]
    others = [v for v in variants if v != baseline]
    if not others:
        raise ValueError("an ablation figure needs a variant besides the baseline")
    base = agg[agg["variant"] == baseline].set_index("checkpoint")
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(COLUMN_IN, 0.45 * len(others) + 1.0))
    width = 0.8 / max(1, len(cks))
    y = np.arange(len(others))
    for j, ck in enumerate(cks):
        deltas, errs = [], []
        for v in others:
            row = agg[(agg["variant"] == v) & (agg["checkpoint"] == ck)]
            if row.empty or ck not in base.index:
                deltas.append(float("nan"))
                errs.append(0.0)
                continue
            deltas.append(float(row["mean"].iloc[0]) - float(base.loc[ck, "mean"]))
            e = _err([row["se"].iloc[0]])[0], _err([base.loc[ck, "se"]])[0]
            errs.append(math.hypot(*e))
        ax.barh(y + (j - (len(cks) - 1) / 2) * width, deltas, height=width, xerr=errs, label=ck)
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_yticks(y, others)
    ax.invert_yaxis()
    ax.set_xlabel(f"Δ {_label(metric)} vs {baseline}")
    if len(cks) > 1:
        ax.legend(frameon=False)
    return fig


def method_comparison(df, metric: str, ax=None):
    """Methods side by side (e.g. AutoIF vs SPaR): one bar per checkpoint of each variant (base once if every variant measured it alike)."""
    import matplotlib.pyplot as plt

    sub = _metric(df, metric)
    agg = aggregate(sub, ["variant", "pipeline", "checkpoint"])
    bars = []
    bases = agg[agg["checkpoint"] == "base"]
    same_base = len(bases) > 0 and (bases["mean"].max() - bases["mean"].min()) < 1e-9
    for v in dict.fromkeys(agg["variant"]):
        g = agg[agg["variant"] == v]
        for ck in checkpoints(g):
            if ck == "base" and same_base and bars and any(b[0] == "base" for b in bars):
                continue
            r = g[g["checkpoint"] == ck].iloc[0]
            name = "base" if ck == "base" and same_base else f"{v}: {ck}"
            bars.append((name, float(r["mean"]), _err([r["se"]])[0], r["pipeline"]))
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(COLUMN_IN, 2.4))
    ax.bar(range(len(bars)), [b[1] for b in bars], yerr=[b[2] for b in bars],
           color=["tab:gray" if b[0] == "base" else methods.color(b[3]) for b in bars])
    ax.set_xticks(range(len(bars)), [b[0] for b in bars], rotation=30, ha="right")
    ax.set_ylabel(_label(metric))
    return fig


GENERALIZATION_IN = ("delta_prompt_strict", "delta_trained_pass_rate", "delta_heldout_pass_rate")
GENERALIZATION_OOD = "delta_ifbench_prompt_strict"


def generalization(df, in_metrics: Sequence[str] = GENERALIZATION_IN, ood_metric: str = GENERALIZATION_OOD,
                   z: float = 1.96):
    """Does a gain carry over to constraints unlike the training ones? One panel per in-distribution gain
    (IFEval, held-out queries, held-out instructions: each checkpoint minus the base, paired), against the
    out-of-distribution gain on IFBench, a point per variant x checkpoint with 95% intervals both ways
    (``z`` x the standard error: paired per run, over seeds when there are several). On the diagonal the gain
    transfers in full; on the horizontal zero line not at all."""
    import matplotlib.pyplot as plt

    ood = aggregate(_metric(df, ood_metric), ["variant", "pipeline", "checkpoint"])
    panels = [m for m in in_metrics if m in set(df["metric"])]
    if not panels:
        raise ValueError(f"none of {list(in_metrics)} is in the table (it has: {sorted(set(df['metric']))})")
    fig, axes = plt.subplots(1, len(panels), figsize=(min(DOUBLE_IN, 2.6 * len(panels)), 2.5), squeeze=False)
    for ax, m in zip(axes[0], panels):
        ind = aggregate(_metric(df, m), ["variant", "pipeline", "checkpoint"])
        both = ind.merge(ood, on=["variant", "pipeline", "checkpoint"], suffixes=("_in", "_ood"))
        lo = min([0.0, *(both["mean_in"] - z * both["se_in"].fillna(0)), *(both["mean_ood"] - z * both["se_ood"].fillna(0))])
        hi = max([0.0, *(both["mean_in"] + z * both["se_in"].fillna(0)), *(both["mean_ood"] + z * both["se_ood"].fillna(0))])
        ax.plot([lo, hi], [lo, hi], ls="--", color="tab:gray", lw=0.7)
        ax.axhline(0, color="black", lw=0.5)
        ax.axvline(0, color="black", lw=0.5)
        for r in both.itertuples():
            ax.errorbar([r.mean_in], [r.mean_ood], xerr=[z * _err([r.se_in])[0]], yerr=[z * _err([r.se_ood])[0]],
                        marker="o", ms=4, capsize=2, color=methods.color(r.pipeline))
            ax.annotate(f"{r.variant}: {r.checkpoint}" if both["variant"].nunique() > 1 else r.checkpoint,
                        (r.mean_in, r.mean_ood), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(f"in distribution: {_label(m)}")
        ax.set_ylabel(f"out of distribution: {_label(ood_metric)}")
    fig.tight_layout()
    return fig


def iteration_curves(df, metrics: Sequence[str]):
    """A method that iterates (SPaR), per iteration: a panel per metric, a line per variant, iteration 0 = the base model."""
    import matplotlib.pyplot as plt

    metrics = [m for m in metrics if m in set(df["metric"])]
    if not metrics:
        raise ValueError("none of the metrics is in the table")
    fig, axes = plt.subplots(1, len(metrics), figsize=(min(DOUBLE_IN, 2.3 * len(metrics)), 2.0), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        sub = _metric(df, m)
        sub = sub[sub["iteration"].notna()]
        agg = aggregate(sub, ["variant", "iteration"])
        for v in dict.fromkeys(agg["variant"]):
            g = agg[agg["variant"] == v].sort_values("iteration")
            ax.errorbar(g["iteration"].astype(int), g["mean"], yerr=_err(g["se"]), marker="o", label=v)
        ax.set_xlabel("iteration")
        ax.set_ylabel(_label(m))
        ax.set_xticks(sorted(set(agg["iteration"].astype(int))))
    axes[0][-1].legend(frameon=False)
    fig.tight_layout()
    return fig


def save(fig, out_dir, name: str, close: bool = False) -> list[Path]:
    """``<out_dir>/<name>.pdf`` (vector) and ``.png``; returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.pdf", out_dir / f"{name}.png"]
    for p in paths:
        fig.savefig(p)
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return paths


def show(*figs) -> None:
    """Display each figure once in a notebook (closed first, so the inline backend does not show it again)."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    for fig in figs:
        plt.close(fig)
        display(fig)


# ---------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------

# Metrics in percent even when small (a 0.0 % pass rate must not print as a fraction).
_PERCENT = {"prompt_strict", "prompt_loose", "inst_strict", "inst_loose", "heldout_pass_rate", "trained_pass_rate",
            *(f"{p}{k}" for p in ("search_", "ifbench_") for k in ("prompt_strict", "prompt_loose", "inst_strict", "inst_loose"))}
_PERCENT |= {f"{p}{m}" for p in ("delta_", "init_delta_") for m in _PERCENT}


def summary_table(df, metrics: Sequence[str] | None = None, decimals: int = 1) -> "pd.DataFrame":  # noqa: F821
    """Rows variant x checkpoint (training order), a column per metric holding ``mean ± se`` text.

    ``decimals`` for percentages; a metric whose values are all fractions (judging accuracy) gets 3."""
    import pandas as pd

    metrics = list(metrics or dict.fromkeys(df["metric"]))
    agg = aggregate(df[df["metric"].isin(metrics)], ["variant", "checkpoint", "metric"])
    places = {m: 3 if len(g) and g["mean"].abs().max() <= 1.0 and m not in _PERCENT else decimals
              for m, g in agg.groupby("metric")}
    rows = []
    for v in dict.fromkeys(agg["variant"]):
        g = agg[agg["variant"] == v]
        for ck in checkpoints(g):
            row = {"variant": v, "checkpoint": ck}
            for m in metrics:
                r = g[(g["checkpoint"] == ck) & (g["metric"] == m)]
                if r.empty:
                    row[m] = ""
                    continue
                mean, se, d = float(r["mean"].iloc[0]), float(r["se"].iloc[0]), places[m]
                row[m] = f"{mean:.{d}f}" + ("" if math.isnan(se) else f" ± {se:.{d}f}")
            rows.append(row)
    return pd.DataFrame(rows, columns=["variant", "checkpoint", *metrics])


def to_markdown(table, path=None) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency); written to ``path`` when given."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    text = "\n".join(lines) + "\n"
    if path:
        Path(path).write_text(text)
    return text


def _tex(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("Δ", r"$\Delta$")):
        s = s.replace(a, b)
    return s


def to_latex(table, path=None, caption: str = "", label: str = "") -> str:
    """A booktabs ``table`` environment; written to ``path`` when given."""
    cols = list(table.columns)
    body = [" & ".join(_tex(str(v)) for v in row) + r" \\" for row in table.itertuples(index=False)]
    lines = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{" + "l" * 2 + "r" * (len(cols) - 2) + "}",
             r"\toprule", " & ".join(_tex(c) for c in cols) + r" \\", r"\midrule", *body, r"\bottomrule",
             r"\end{tabular}"]
    if caption:
        lines.append(r"\caption{" + _tex(caption) + "}")
    if label:
        lines.append(r"\label{" + label + "}")
    lines.append(r"\end{table}")
    text = "\n".join(lines) + "\n"
    if path:
        Path(path).write_text(text)
    return text
