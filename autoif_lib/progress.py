"""Progress bars that read right both live and in a saved notebook.

Live (a notebook opened by hand, a terminal) the bar is ``tqdm.auto``'s: a widget in Jupyter. A headless run
(``autoif run``, sweeps) saves the notebook, and a saved widget shows only its text fallback, which is its
*first* state: ``0%| | 0/60`` for a loop that finished. So the runner sets ``AUTOIF_TEXT_PROGRESS=1`` for
its kernels and bars are plain text there: JupyterLab applies the carriage returns of a saved stream, so the
cell shows the bar's last state (``100%|...| 60/60``). Text bars redraw at most every few seconds, so a long
stage does not write thousands of lines into its notebook.
"""

from __future__ import annotations

import os
import sys

TEXT_ENV = "AUTOIF_TEXT_PROGRESS"
TEXT_MININTERVAL_S = 5.0


def text_mode() -> bool:
    return os.environ.get(TEXT_ENV) == "1"


def bar(total: int, desc: str, unit: str = "it", disable: bool = False, leave: bool = True):
    """A tqdm bar: a widget live, text (final state kept) in a headless run's saved notebook."""
    if text_mode():
        from tqdm.std import tqdm

        return tqdm(total=total, desc=desc, unit=unit, disable=disable, leave=leave, file=sys.stderr,
                    mininterval=TEXT_MININTERVAL_S, dynamic_ncols=False, ncols=100)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=disable, leave=leave)
