"""Notebook reporting: funnels (``funnels``), plots (``plots``), record browser and metrics (``browser``)."""

from .browser import RecordBrowser, metrics_summary, render_record, show_records
from .funnels import HTMLText, Funnel, by_origin, origin_table
from .plots import plot_bars, plot_hist, plot_hists

__all__ = [
    "Funnel", "by_origin", "origin_table", "HTMLText",
    "plot_hist", "plot_hists", "plot_bars",
    "RecordBrowser", "render_record", "show_records", "metrics_summary",
]
