"""Record HTML and the record browser: LLM output, escaped, browsable live and static.

* Record content is LLM output: every string that comes from a record is
  HTML-escaped. A custom ``render`` callable given to :class:`RecordBrowser`
  returns trusted HTML, so it must escape what it embeds (``html.escape``).
* :class:`RecordBrowser` displays as the ipywidgets pager *and* a static HTML
  rendering of its first records in one output; live frontends pick the
  widget, static ones (nbconvert, GitHub, a papermill output opened later,
  where the widget state is not saved) show the HTML. Without ipywidgets it is
  only the HTML.
"""

from __future__ import annotations

import html
import json
import math
import numbers
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from .funnels import HTMLText

# --------------------------------------------------------------------------- record HTML

_PASS = "#1a7f37"
_FAIL = "#cf222e"
_MUTED = "#6e7781"
_CODE_KEYS = {"src", "func", "function", "code", "source", "eval_func", "verifier"}
# Short status strings coloured like booleans (sandbox verdicts, labels).
_PASS_WORDS = {"pass", "passed", "ok", "true", "yes", "correct", "kept", "accept", "accepted"}
_FAIL_WORDS = {"fail", "failed", "false", "no", "error", "timeout", "killed", "wrong", "rejected",
               "reject", "refused", "exception"}
_PRE = ("margin:2px 0;padding:4px 6px;background:#f6f8fa;border-radius:4px;white-space:pre-wrap;"
        "max-height:24em;overflow:auto;font-size:12px")
_TD = "border:1px solid #d0d7de;padding:2px 6px;vertical-align:top;text-align:left"


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _trunc(text: str, max_chars: int) -> str:
    if max_chars and len(text) > max_chars:
        return text[:max_chars] + f"… [+{len(text) - max_chars} chars]"
    return text


def _is_code(key: str, value: str) -> bool:
    return key.lower() in _CODE_KEYS or "def " in value


def _bool_html(b: bool) -> str:
    return (f"<span style='color:{_PASS};font-weight:bold'>✓ True</span>" if b
            else f"<span style='color:{_FAIL};font-weight:bold'>✗ False</span>")


def _str_html(key: str, s: str, max_chars: int) -> str:
    if _is_code(key, s):
        return f"<pre style='{_PRE}'>{_esc(_trunc(s, max_chars))}</pre>"
    word = s.strip().lower()
    if word in _PASS_WORDS:
        return f"<span style='color:{_PASS};font-weight:bold'>{_esc(s)}</span>"
    if word in _FAIL_WORDS:
        return f"<span style='color:{_FAIL};font-weight:bold'>{_esc(s)}</span>"
    return f"<span style='white-space:pre-wrap'>{_esc(_trunc(s, max_chars))}</span>"


def _num_html(x: numbers.Number) -> str:
    if isinstance(x, numbers.Integral):
        return _esc(x)
    x = float(x)
    return _esc(f"{x:.4g}") if math.isfinite(x) else f"<span style='color:{_MUTED}'>{_esc(x)}</span>"


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, bool, numbers.Number))


def _value_html(value: Any, key: str, depth: int, max_chars: int, max_rows: int) -> str:
    """HTML for any JSON-like value; every string from the record goes through _esc."""
    if isinstance(value, bool):
        return _bool_html(value)
    if value is None:
        return f"<span style='color:{_MUTED}'>null</span>"
    if isinstance(value, numbers.Number):
        return _num_html(value)
    if isinstance(value, str):
        return _str_html(key, value, max_chars)
    if depth >= 4:  # deep nesting: compact JSON beats a table in a table in a table
        text = json.dumps(value, ensure_ascii=False, default=str)
        return f"<pre style='{_PRE}'>{_esc(_trunc(text, max_chars))}</pre>"
    if isinstance(value, Mapping):
        if not value:
            return f"<span style='color:{_MUTED}'>{{}}</span>"
        rows = "".join(f"<tr><th style='{_TD}'>{_esc(k)}</th>"
                       f"<td style='{_TD}'>{_value_html(v, str(k), depth + 1, max_chars, max_rows)}</td></tr>"
                       for k, v in value.items())
        return f"<table style='border-collapse:collapse;font-size:12px'>{rows}</table>"
    if isinstance(value, (list, tuple)):
        return _list_html(list(value), key, depth, max_chars, max_rows)
    return _esc(_trunc(repr(value), max_chars))


def _list_html(items: list, key: str, depth: int, max_chars: int, max_rows: int) -> str:
    if not items:
        return f"<span style='color:{_MUTED}'>[]</span>"
    more = len(items) - max_rows
    shown = items[:max_rows] if more > 0 else items
    tail = f"<div style='color:{_MUTED}'>… {more} more</div>" if more > 0 else ""
    sub = lambda v, k: _value_html(v, k, depth + 1, max_chars, max_rows)  # noqa: E731
    cell = f"<td style='{_TD}'>"
    table = "<div style='overflow-x:auto'><table style='border-collapse:collapse;font-size:12px'>"
    if all(isinstance(v, Mapping) for v in shown):
        # Functions with accuracies, cases with expected/verdict, responses with scores: one row each.
        cols: list[str] = []
        for v in shown:
            cols += [str(k) for k in v if str(k) not in cols]
        head = f"<th style='{_TD}'>#</th>" + "".join(f"<th style='{_TD}'>{_esc(c)}</th>" for c in cols)
        body = "".join(
            f"<tr>{cell}{i}</td>" + "".join(
                f"{cell}{sub(_get(v, c), c) if _has(v, c) else ''}</td>" for c in cols) + "</tr>"
            for i, v in enumerate(shown))
        return f"{table}<tr>{head}</tr>{body}</table></div>{tail}"
    if all(isinstance(v, (list, tuple)) for v in shown):
        body = "".join(f"<tr>{cell}{i}</td>" + "".join(f"{cell}{sub(x, key)}</td>" for x in v) + "</tr>"
                       for i, v in enumerate(shown))
        return f"{table}{body}</table></div>{tail}"
    if all(_is_scalar(v) for v in shown) and all(not isinstance(v, str) or len(v) <= 80 for v in shown):
        return ", ".join(sub(v, key) for v in shown) + tail
    return "<ol style='margin:2px 0' start='0'>" + "".join(f"<li>{sub(v, key)}</li>" for v in shown) + f"</ol>{tail}"


def _has(d: Mapping, col: str) -> bool:
    return col in d or any(str(k) == col for k in d)


def _get(d: Mapping, col: str) -> Any:
    if col in d:
        return d[col]
    return next(v for k, v in d.items() if str(k) == col)


def render_record(rec: Any, title: str = "", max_chars: int = 4000, max_rows: int = 100) -> HTMLText:
    """A readable, escaped HTML view of one record.

    Short scalars become ``key: value`` lines; long or multi-line strings a
    heading and a paragraph; code (``src``, ``func``, anything containing
    ``def ``) a ``<pre>`` block; lists of dicts a table (functions with
    accuracy, cases with expected/verdict); booleans and pass/fail words are
    green/red. Strings longer than ``max_chars`` and lists longer than
    ``max_rows`` are cut, with a note saying how much.
    """
    head = f"<div style='font-weight:bold;font-size:14px;margin-bottom:4px'>{_esc(title)}</div>" if title else ""
    if not isinstance(rec, Mapping):
        body = _value_html(rec, "", 0, max_chars, max_rows)
        return HTMLText(f"<div class='autoif-record'>{head}{body}</div>")
    parts = []
    for k, v in rec.items():
        key = str(k)
        inline = (_is_scalar(v) and not (isinstance(v, str) and (len(v) > 80 or "\n" in v or _is_code(key, v))))
        if inline:
            parts.append(f"<div><b>{_esc(key)}</b>: {_value_html(v, key, 0, max_chars, max_rows)}</div>")
        else:
            parts.append(f"<div style='margin-top:6px'><div style='font-weight:bold;border-bottom:1px solid #d0d7de'>"
                         f"{_esc(key)}</div>{_value_html(v, key, 0, max_chars, max_rows)}</div>")
    return HTMLText(f"<div class='autoif-record' style='font-size:13px'>{head}{''.join(parts)}</div>")


def _safe_render(render: Callable[[Any], str], rec: Any) -> str:
    # A broken custom renderer should show its error in place, not kill the browser.
    try:
        return str(render(rec))
    except Exception:  # noqa: BLE001 - any renderer failure is shown to the user
        return (f"<div style='color:{_FAIL}'>render failed:</div>"
                f"<pre style='{_PRE}'>{_esc(traceback.format_exc())}</pre>")


def show_records(records: Sequence[Any], n: int = 3, render: Callable[[Any], str] | None = None,
                 title: str = "") -> HTMLText:
    """Static HTML of the first ``n`` records (for headless outputs and as the browser's fallback)."""
    render = render or render_record
    records = list(records)
    shown = records[: max(n, 0)]
    head = f"<b>{_esc(title)}</b> " if title else ""
    head += f"<span style='color:{_MUTED}'>showing {len(shown)} of {len(records)} records</span>"
    blocks = [f"<div style='color:{_MUTED};margin-top:8px'>record {i + 1}/{len(records)}</div>"
              f"{_safe_render(render, r)}" for i, r in enumerate(shown)]
    return HTMLText(f"<div>{head}{'<hr>'.join(blocks)}</div>")


# --------------------------------------------------------------------------- browser


def _search_blob(rec: Any) -> str:
    return json.dumps(rec, ensure_ascii=False, default=str).lower()


class RecordBrowser:
    """Pages through records: Prev/Next, a slider, and a filter box (case-insensitive text in the record's JSON).

    ``render`` maps a record to HTML (default :func:`render_record`; a custom
    one must escape record content itself). Positions (``index``, ``go``,
    ``render_index``) refer to the current filtered view; ``view`` maps them
    to indices into ``records``. ``widget`` is the ipywidgets box, or None when
    ipywidgets is missing, in which case displaying shows the first
    ``fallback_n`` records as static HTML.
    """

    def __init__(self, records: Sequence[Any], render: Callable[[Any], str] | None = None,
                 title: str = "", fallback_n: int = 3):
        self.records = list(records)
        self.render = render or render_record
        self.title = str(title)
        self.fallback_n = fallback_n
        self._blobs: list[str] | None = None  # built on the first filter: most browsers are never filtered
        self._view = list(range(len(self.records)))
        self._pos = 0
        self._query = ""
        self._syncing = False
        self.widget = self._build()

    # -- state

    @property
    def view(self) -> list[int]:
        """Indices into ``records`` of the records passing the current filter."""
        return list(self._view)

    @property
    def index(self) -> int:
        """Position in the current view."""
        return self._pos

    @property
    def current(self) -> Any:
        """The record shown now (None when the filter matches nothing)."""
        return self.records[self._view[self._pos]] if self._view else None

    def filter(self, text: str) -> int:
        """Keep records whose JSON contains ``text`` (case-insensitive; empty = all); returns how many."""
        self._query = str(text or "")
        q = self._query.strip().lower()
        if not q:
            self._view = list(range(len(self.records)))
        else:
            if self._blobs is None:
                self._blobs = [_search_blob(r) for r in self.records]
            self._view = [i for i, b in enumerate(self._blobs) if q in b]
        self._pos = 0
        if self.widget is not None and self.filter_box.value != self._query:
            self._syncing = True
            try:
                self.filter_box.value = self._query
            finally:
                self._syncing = False
        self._refresh()
        return len(self._view)

    def go(self, pos: int) -> int:
        """Move to position ``pos`` of the view (clamped); returns the new position."""
        self._pos = min(max(int(pos), 0), max(len(self._view) - 1, 0))
        self._refresh()
        return self._pos

    def next(self) -> int:
        return self.go(self._pos + 1)

    def prev(self) -> int:
        return self.go(self._pos - 1)

    def render_index(self, i: int) -> HTMLText:
        """HTML for position ``i`` of the current view (raises IndexError when out of range)."""
        if not 0 <= i < len(self._view):
            raise IndexError(f"position {i} out of range for a view of {len(self._view)} records")
        orig = self._view[i]
        where = f"record {orig + 1} of {len(self.records)}"
        if len(self._view) != len(self.records):
            where += f" (match {i + 1} of {len(self._view)} for {self._query!r})"
        head = (f"<div style='color:{_MUTED};margin-bottom:4px'>"
                f"{_esc(self.title) + ' · ' if self.title else ''}{_esc(where)}</div>")
        return HTMLText(head + _safe_render(self.render, self.records[orig]))

    def current_html(self) -> HTMLText:
        if not self._view:
            what = f"no records match {self._query!r}" if self._query.strip() else "no records"
            return HTMLText(f"<div style='color:{_MUTED}'>{_esc(what)}</div>")
        return self.render_index(self._pos)

    # -- widgets

    def _build(self):
        try:
            import ipywidgets as w
        except ImportError:
            return None
        n = len(self.records)
        self.prev_button = w.Button(description="◀ Prev", layout=w.Layout(width="80px"))
        self.next_button = w.Button(description="Next ▶", layout=w.Layout(width="80px"))
        # continuous_update=False: dragging renders once on release, not for every record passed.
        self.slider = w.IntSlider(value=0, min=0, max=max(n - 1, 0), readout=False,
                                  continuous_update=False, layout=w.Layout(width="300px"))
        self.position_label = w.Label()
        self.filter_box = w.Text(placeholder="filter: text in the record's JSON", layout=w.Layout(width="400px"))
        self.html = w.HTML()
        self.prev_button.on_click(lambda _b: self.prev())
        self.next_button.on_click(lambda _b: self.next())
        self.slider.observe(self._on_slider, names="value")
        self.filter_box.observe(self._on_filter, names="value")
        children = [w.HBox([self.prev_button, self.next_button, self.slider, self.position_label]),
                    self.filter_box, self.html]
        if self.title:
            children.insert(0, w.HTML(f"<b>{_esc(self.title)}</b>"))
        box = w.VBox(children)
        self.widget = box
        self._refresh()
        return box

    def _on_slider(self, change) -> None:
        if not self._syncing:
            self.go(change["new"])

    def _on_filter(self, change) -> None:
        if not self._syncing:
            self.filter(change["new"])

    def _refresh(self) -> None:
        if self.widget is None:
            return
        n = len(self._view)
        # Guard: moving the slider's max/value fires its observer, which would call go() again.
        self._syncing = True
        try:
            self.slider.max = max(n - 1, 0)
            self.slider.value = self._pos
            self.slider.disabled = n <= 1
            self.prev_button.disabled = self._pos <= 0
            self.next_button.disabled = self._pos >= n - 1
            total = len(self.records)
            self.position_label.value = (f"{self._pos + 1 if n else 0} / {n}"
                                         + (f" (of {total})" if n != total else ""))
            self.html.value = self.current_html()
        finally:
            self._syncing = False

    def static_html(self) -> HTMLText:
        """The static view shown where widgets cannot render: the first ``fallback_n`` records."""
        return show_records(self.records, self.fallback_n, self.render, self.title)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        fallback = str(self.static_html())
        bundle = None
        if self.widget is not None:
            repr_bundle = getattr(self.widget, "_repr_mimebundle_", None)
            bundle = repr_bundle() if repr_bundle else None
        if self.widget is None:
            display({"text/html": fallback, "text/plain": repr(self)}, raw=True)
        elif bundle:
            # One output with both: live frontends render the widget; static ones the HTML.
            display({**bundle, "text/html": fallback}, raw=True)
        else:
            display(self.widget)

    def __repr__(self) -> str:
        return f"RecordBrowser({len(self.records)} records, {len(self._view)} shown, title={self.title!r})"


# --------------------------------------------------------------------------- metrics


def metrics_summary(metrics: Mapping[str, Any], sep: str = ".") -> pd.DataFrame:
    """Flatten nested metrics into rows (key, value): ``{"a": {"b": 1}} -> "a.b", 1``.

    Lists holding dicts or lists are indexed (``steps[0].in``); lists of
    scalars stay one row, as compact JSON.
    """
    rows: list[tuple[str, Any]] = []

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, Mapping) and v:
            for k, x in v.items():
                walk(f"{prefix}{sep}{k}" if prefix else str(k), x)
        elif isinstance(v, (list, tuple)) and any(isinstance(x, (Mapping, list, tuple)) for x in v):
            for i, x in enumerate(v):
                walk(f"{prefix}[{i}]", x)
        elif isinstance(v, (list, tuple, Mapping)):
            rows.append((prefix, json.dumps(v if isinstance(v, Mapping) else list(v), ensure_ascii=False,
                                            default=str)))
        else:
            rows.append((prefix, v))

    if isinstance(metrics, Mapping):
        for k, v in metrics.items():
            walk(str(k), v)
    else:
        walk("", metrics)
    return pd.DataFrame({"key": [k for k, _ in rows], "value": pd.Series([v for _, v in rows], dtype=object)})
