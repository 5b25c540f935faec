"""Plots for notebooks: histograms and bar charts that show in Jupyter and save headless.

Every function returns a ``matplotlib.figure.Figure`` and never calls ``plt.show()``.
A figure made here is closed from pyplot straight away, so it shows exactly once in
Jupyter when it is the cell's value (end the cell with the call, no ``;``) or is passed
to ``display``, and never leaks in loops. Given ``ax=...``, they draw on that axes and
return its figure, which the caller owns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# --------------------------------------------------------------------------- plots


def _figure_ax(ax, figsize, nrows: int = 1, ncols: int = 1):
    """(fig, ax) on the given axes, or on a new figure already closed from pyplot (see module doc)."""
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt  # lazy: importing this module must not pick a backend

    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False)
    plt.close(fig)
    return fig, (axes[0, 0] if nrows == ncols == 1 else axes)


def _no_data(ax, title: str) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="gray", fontsize=12)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)


def _short(text: str, n: int) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"


def _finite(values) -> tuple[list[float], int]:
    """Finite floats from ``values`` (None, NaN, inf and non-numbers skipped) and how many were skipped."""
    out, skipped = [], 0
    for v in ([] if values is None else values):
        try:
            x = float(v)
        except (TypeError, ValueError):
            skipped += 1
            continue
        if math.isfinite(x):
            out.append(x)
        else:
            skipped += 1
    return out, skipped


def _draw_hist(ax, values, title: str, xlabel: str, bins, threshold: float | None) -> None:
    xs, skipped = _finite(values)
    n_text = f"n={len(xs)}" + (f", {skipped} missing" if skipped else "")
    full_title = f"{title} ({n_text})" if title else n_text
    if not xs:
        _no_data(ax, full_title)
        ax.set_xlabel(xlabel)
        return
    ax.hist(xs, bins=bins, color="#2f81f7", edgecolor="white")
    if threshold is not None:
        above = sum(x >= threshold for x in xs)
        ax.axvline(threshold, color="#cf222e", linestyle="--",
                   label=f"threshold {threshold:g} ({above}/{len(xs)} ≥)")
        ax.legend(fontsize=8)
    ax.set_title(full_title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")


def plot_hist(values, title: str = "", xlabel: str = "", bins=20, threshold: float | None = None, ax=None):
    """Histogram of the finite values, ``n`` in the title, dashed line at ``threshold``; returns the Figure.

    Empty input draws "no data" instead of failing, so a notebook on a tiny run still completes.
    """
    fig, ax = _figure_ax(ax, figsize=(6, 3.5))
    _draw_hist(ax, values, title, xlabel, bins, threshold)
    fig.tight_layout()
    return fig


def plot_hists(data: Mapping[str, Any], title: str = "", xlabel: str = "", bins=20,
               threshold: float | None = None, ncols: int | None = None):
    """One histogram per name, side by side (wrapping after ``ncols``, default up to 4); returns the Figure."""
    names = list(data)
    if not names:
        return plot_hist([], title, xlabel, bins, threshold)
    ncols = max(1, min(ncols or 4, len(names)))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = _figure_ax(None, figsize=(4.2 * ncols, 3.3 * nrows + (0.4 if title else 0)),
                           nrows=nrows, ncols=ncols)
    flat = list(axes.flat) if hasattr(axes, "flat") else [axes]
    for ax, name in zip(flat, names):
        _draw_hist(ax, data[name], str(name), xlabel, bins, threshold)
    for ax in flat[len(names):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_bars(mapping: Mapping[str, int | float], title: str = "", xlabel: str = "count",
              top: int = 20, ax=None):
    """Horizontal bars, largest first (e.g. reject reasons); beyond ``top`` they merge into "other"."""
    items = sorted(((str(k), float(v)) for k, v in (mapping or {}).items()), key=lambda kv: (-kv[1], kv[0]))
    if len(items) > top:
        rest = items[top - 1:]
        items = items[: top - 1] + [(f"other ({len(rest)} more)", sum(v for _, v in rest))]
    fig, ax = _figure_ax(ax, figsize=(7, 1.2 + 0.4 * max(len(items), 1)))
    if not items:
        _no_data(ax, title)
        return fig
    y = list(range(len(items)))
    values = [v for _, v in items]
    ax.barh(y, values, color="#cf222e" if "reject" in title.lower() else "#2f81f7")
    peak = max(values) or 1
    for yi, v in zip(y, values):
        ax.text(v + peak * 0.01, yi, f"{v:,.0f}" if float(v).is_integer() else f"{v:,.3g}",
                va="center", fontsize=9)
    ax.set_yticks(y, [_short(k, 50) for k, _ in items])
    ax.invert_yaxis()
    ax.set_xlim(0, peak * 1.15)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    fig.tight_layout()
    return fig
