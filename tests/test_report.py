"""autoif_lib.reporting: funnel arithmetic, plots (headless, Agg), record HTML and the widget pager."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from autoif_lib import reporting as report  # noqa: E402
from autoif_lib.reporting import Funnel, RecordBrowser  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _funnel() -> Funnel:
    f = Funnel("instructions")
    f.step("seeds", 0, 10, allow_growth=True, note="reference seeds")
    f.step("augment", 10, 110, allow_growth=True)
    f.step("dedup", 110, 100, rejects={"duplicate": 10})
    f.step("cross-validate", 100, 60, rejects={"accuracy < 0.5": 25, "no function": 5})
    return f


# --------------------------------------------------------------------------- funnel


def test_funnel_arithmetic_and_unexplained():
    f = _funnel()
    steps = f.steps
    assert [s["dropped"] for s in steps] == [0, 0, 10, 40]
    assert [s["added"] for s in steps] == [10, 100, 0, 0]
    assert steps[2]["unexplained"] == 0
    assert steps[3]["unexplained"] == 10           # 40 dropped, 30 explained
    assert steps[3]["kept_pct"] == 60.0
    assert steps[0]["kept_pct"] is None            # n_in == 0
    assert f.final == 60 and len(f) == 4
    assert f.gaps() == []


def test_funnel_rejects_given_empty_means_all_unexplained():
    f = Funnel().step("judge", 5, 2, rejects={})
    assert f.steps[0]["unexplained"] == 3
    assert f.table()["reasons"][0] == "unexplained: 3"
    g = Funnel().step("judge", 5, 2)               # no rejects: loss is the dropped column only
    assert g.steps[0]["unexplained"] == 0 and g.table()["reasons"][0] == ""


def test_funnel_errors():
    with pytest.raises(ValueError, match="allow_growth"):
        Funnel().step("merge", 5, 6)
    with pytest.raises(ValueError, match="add up"):
        Funnel().step("filter", 10, 8, rejects={"a": 2, "b": 1})
    with pytest.raises(ValueError):
        Funnel().step("filter", -1, 0)
    with pytest.raises(TypeError):
        Funnel().step("filter", 10, 7.5)
    with pytest.raises(ValueError):
        Funnel().step("filter", 10, 8, rejects={"a": -1})


def test_funnel_table():
    df = _funnel().table()
    assert list(df.columns) == ["step", "in", "out", "dropped", "kept_%", "reasons"]
    assert df["out"].tolist() == [10, 110, 100, 60]
    # Sorted by count, largest first, unexplained included.
    assert df["reasons"][3] == "accuracy < 0.5: 25, unexplained: 10, no function: 5"
    assert df["reasons"][1] == "+100 added"
    assert "note" in _funnel().table(notes=True).columns
    html = _funnel()._repr_html_()
    assert "<table" in html and "cross-validate" in html and "reference seeds" in html


def test_funnel_gaps():
    f = Funnel().step("a", 10, 8).step("b", 7, 7)
    assert f.gaps() == [("b", 8, 7)]
    assert "gaps" in f._repr_html_()


def test_funnel_round_trip():
    f = _funnel()
    d = json.loads(json.dumps(f.to_dict()))
    g = Funnel.from_dict(d)
    assert g.to_dict() == f.to_dict()
    assert g.name == "instructions"
    assert g.table().equals(f.table())


def test_funnel_rejects_numpy_counts():
    np = pytest.importorskip("numpy")
    f = Funnel().step("x", np.int64(5), np.int64(3), rejects={"r": np.int64(2)})
    json.dumps(f.to_dict())


# --------------------------------------------------------------------------- origins


def test_by_origin_and_origin_table():
    pool = [{"origin": "reference"}] * 3 + [{"origin": "model"}] * 5 + [{}]
    kept = [{"origin": "model"}] * 2 + [{"origin": "reference"}]
    assert report.by_origin(pool) == {"model": 5, "reference": 3, "unknown": 1}
    df = report.origin_table({"pool": pool, "kept": kept, "none": []})
    assert list(df.columns) == ["step", "model", "reference", "unknown", "total"]
    assert df.set_index("step").loc["kept"].tolist() == [2, 1, 0, 3]
    assert df.set_index("step").loc["none"].tolist() == [0, 0, 0, 0]
    assert report.by_origin([{"src": "m"}], key="src") == {"m": 1}


# --------------------------------------------------------------------------- plots


def _assert_png(fig, path):
    assert isinstance(fig, Figure)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_plots_save_png(tmp_path):
    _assert_png(_funnel().plot(), tmp_path / "funnel.png")
    _assert_png(Funnel("empty").plot(), tmp_path / "sub" / "funnel_empty.png")
    fig = report.plot_hist([0.1, 0.5, 0.9, None, float("nan")], "functions", "pass rate", threshold=0.5)
    assert "n=3, 2 missing" in fig.axes[0].get_title()
    _assert_png(fig, tmp_path / "hist.png")
    empty = report.plot_hist([], "functions", "pass rate", threshold=0.5)
    assert any(t.get_text() == "no data" for t in empty.axes[0].texts)
    _assert_png(empty, tmp_path / "hist_empty.png")
    fig = report.plot_hists({"a": [1, 2, 3], "b": [], "c": [0.5]}, title="rates", xlabel="x", threshold=1)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 3
    _assert_png(fig, tmp_path / "hists.png")
    _assert_png(report.plot_hists({}), tmp_path / "hists_empty.png")
    _assert_png(report.plot_bars({"timeout": 3, "syntax": 7}, "reject reasons"), tmp_path / "bars.png")
    _assert_png(report.plot_bars({}, "reject reasons"), tmp_path / "bars_empty.png")
    many = report.plot_bars({f"r{i}": i for i in range(30)}, "many", top=5)
    assert len(many.axes[0].patches) == 5


def test_plot_on_given_axes(tmp_path):
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2)
    try:
        assert _funnel().plot(ax=a) is fig
        assert report.plot_hist([1, 2], ax=b) is fig
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------- record HTML

RECORD = {
    "instruction": "Answer in <b>bold</b> and <script>alert('x')</script>",
    "origin": "model",
    "functions": [
        {"func": "def evaluate(response):\n    return '<' not in response", "accuracy": 0.75, "kept": True},
        {"func": "def evaluate(response):\n    return False", "accuracy": 0.0, "kept": False},
    ],
    "cases": [{"input": "<img src=x onerror=alert(1)>", "expected": False, "verdict": "fail"}],
    "scores": [1, 2.5, None],
    "meta": {"round": 1, "ok": True},
}


def test_render_record_escapes_and_structures():
    html = report.render_record(RECORD)
    assert isinstance(html, str)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<img" not in html and "&lt;img" in html
    assert "<b>bold</b>" not in html
    assert "<pre" in html and "def evaluate" in html           # code in <pre>
    assert "<table" in html and "accuracy" in html              # list of dicts as a table
    assert "#1a7f37" in html and "#cf222e" in html              # pass/fail colours
    assert report.HTMLText(html)._repr_html_() == html


def test_render_record_non_dict_and_truncation():
    assert "&lt;x&gt;" in report.render_record("<x>")
    html = report.render_record({"response": "y" * 5000}, max_chars=100)
    assert "+4900 chars" in html


def test_show_records():
    html = report.show_records([RECORD] * 5, n=2)
    assert "showing 2 of 5 records" in html and html.count("autoif-record") == 2
    assert "<script>" not in html


# --------------------------------------------------------------------------- browser


def _records():
    return [{"id": i, "text": f"item {i}", "tag": "even" if i % 2 == 0 else "odd"} for i in range(6)] + [RECORD]


def test_browser_pages_and_filters():
    b = RecordBrowser(_records(), title="demo")
    assert b.widget is not None
    assert "item 0" in b.render_index(0) and "demo" in b.render_index(0)
    assert "<script>" not in b.render_index(6) and "&lt;script&gt;" in b.render_index(6)
    b.next_button.click()
    assert b.index == 1 and "item 1" in b.html.value
    b.prev_button.click()
    b.prev_button.click()                     # clamps at 0
    assert b.index == 0 and b.prev_button.disabled
    b.slider.value = 3
    assert b.index == 3 and "item 3" in b.html.value
    b.filter_box.value = "ODD"                # case-insensitive, via the widget
    assert b.view == [1, 3, 5] and b.index == 0 and b.slider.max == 2
    assert "item 1" in b.html.value and "(of 7)" in b.position_label.value
    b.next_button.click()
    assert b.current["id"] == 3
    assert b.filter("nothing matches this") == 0
    assert b.current is None and "no records match" in b.html.value
    assert b.next_button.disabled and b.slider.disabled
    b.filter("")
    assert len(b.view) == 7 and b.filter_box.value == ""
    with pytest.raises(IndexError):
        b.render_index(99)


def test_browser_custom_render_and_errors():
    b = RecordBrowser([{"a": 1}], render=lambda r: f"<i>{r['a']}</i>")
    assert "<i>1</i>" in b.render_index(0)
    bad = RecordBrowser([{"a": 1}], render=lambda r: r["missing"])
    assert "render failed" in bad.render_index(0) and "KeyError" in bad.render_index(0)


def test_browser_empty_and_display_headless(capsys):
    b = RecordBrowser([])
    assert b.current is None and "no records" in b.html.value
    b._ipython_display_()                    # no kernel: IPython prints, must not raise
    RecordBrowser(_records())._ipython_display_()


def test_browser_without_ipywidgets(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "ipywidgets":
            raise ImportError("no widgets here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    b = RecordBrowser(_records(), fallback_n=2)
    assert b.widget is None
    b.next()
    assert b.index == 1 and b.filter("odd") == 3
    assert "showing 2 of 7" in b.static_html()
    b._ipython_display_()


# --------------------------------------------------------------------------- metrics


def test_metrics_summary():
    m = {"n": 3, "pass": {"rate": 0.5, "by": {"model": 2}}, "tags": ["a", "b"], "empty": {},
         "funnel": Funnel("x").step("s", 2, 1).to_dict()}
    df = report.metrics_summary(m)
    assert list(df.columns) == ["key", "value"]
    d = dict(zip(df["key"], df["value"]))
    assert d["n"] == 3 and d["pass.rate"] == 0.5 and d["pass.by.model"] == 2
    assert d["tags"] == '["a", "b"]' and d["empty"] == "{}"
    assert d["funnel.steps[0].out"] == 1
    assert report.metrics_summary({}).empty
