"""Filter funnels: counts in and out of every step, each loss under a named reason.

    from autoif_lib import reporting

    f = reporting.Funnel("instructions")
    f.step("generated", 0, 1200, allow_growth=True)          # a source step grows the pool
    f.step("dedup", 1200, 1013, rejects={"duplicate": 187})
    f                                        # HTML table: step, in, out, dropped, kept_%, reasons
    f.plot()                                 # horizontal bars; returns the Figure
    metrics["funnel"] = f.to_dict()          # JSON-able; Funnel.from_dict(...) reads it back
    reporting.origin_table({"seeds+aug": pool, "kept": kept})   # model- vs reference-made items per step
"""

from __future__ import annotations

import html
import operator
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from .plots import _figure_ax, _no_data, _short

TABLE_COLUMNS = ["step", "in", "out", "dropped", "kept_%", "reasons"]
UNEXPLAINED = "unexplained"


class HTMLText(str):
    """A ``str`` that Jupyter displays as HTML (tests can still compare and search it)."""

    def _repr_html_(self) -> str:
        return str(self)


# --------------------------------------------------------------------------- funnel


def _count(value: Any, what: str) -> int:
    # operator.index accepts ints and numpy ints but refuses floats, so a count
    # that went through a division is caught here instead of being truncated.
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer count, got {value!r}") from None
    if n < 0:
        raise ValueError(f"{what} must be >= 0, got {n}")
    return n


def _reasons_text(rejects: Mapping[str, int] | None, unexplained: int, added: int) -> str:
    parts = []
    if added:
        parts.append(f"+{added} added")
    items = [(str(k), v) for k, v in (rejects or {}).items() if v]
    if unexplained:
        items.append((UNEXPLAINED, unexplained))
    # Largest first: the reason worth reading is the one that cost the most.
    items.sort(key=lambda kv: (-kv[1], kv[0]))
    parts += [f"{k}: {v}" for k, v in items]
    return ", ".join(parts)


class Funnel:
    """Counts in and out of each filter step, with reject reasons, for one kind of record.

    A step's ``rejects`` should account for its losses. When they are given but
    add up to less than ``n_in - n_out``, the gap is stored as ``unexplained``
    (and shown as a reason), so no loss is silent; when they add up to more,
    :meth:`step` raises. Without ``rejects`` the loss is just the ``dropped``
    column. Output larger than input is an error unless ``allow_growth=True``
    (merge or generation steps such as "add seeds"); the growth then shows as
    "+N added".
    """

    def __init__(self, name: str = ""):
        self.name = str(name)
        self._steps: list[dict[str, Any]] = []

    # -- building

    def step(self, name: str, n_in: int, n_out: int, rejects: Mapping[str, int] | None = None,
             note: str = "", *, allow_growth: bool = False) -> "Funnel":
        """Record one step; returns the funnel so calls can be chained."""
        n_in = _count(n_in, f"step {name!r}: n_in")
        n_out = _count(n_out, f"step {name!r}: n_out")
        if n_out > n_in and not allow_growth:
            raise ValueError(f"step {name!r}: n_out ({n_out}) > n_in ({n_in}); "
                             "pass allow_growth=True for a merge or generation step")
        clean = None
        if rejects is not None:
            clean = {str(k): _count(v, f"step {name!r}: rejects[{k!r}]") for k, v in rejects.items()}
        dropped = max(n_in - n_out, 0)
        added = max(n_out - n_in, 0)
        unexplained = 0
        if clean is not None and not added:
            total = sum(clean.values())
            if total > dropped:
                raise ValueError(f"step {name!r}: rejects add up to {total} but only {dropped} "
                                 f"were dropped ({n_in} -> {n_out}): {clean}")
            unexplained = dropped - total
        self._steps.append({
            "step": str(name), "in": n_in, "out": n_out, "dropped": dropped, "added": added,
            "kept_pct": round(100.0 * n_out / n_in, 2) if n_in else None,
            "rejects": clean, "unexplained": unexplained, "note": str(note),
            "allow_growth": bool(allow_growth),
        })
        return self

    # -- reading

    @property
    def steps(self) -> list[dict[str, Any]]:
        """The recorded steps (copies), in order."""
        return [dict(s, rejects=None if s["rejects"] is None else dict(s["rejects"])) for s in self._steps]

    @property
    def final(self) -> int | None:
        """``n_out`` of the last step (None for an empty funnel)."""
        return self._steps[-1]["out"] if self._steps else None

    def __len__(self) -> int:
        return len(self._steps)

    def gaps(self) -> list[tuple[str, int, int]]:
        """Steps whose ``n_in`` differs from the previous ``n_out``: (step, previous out, in).

        Not an error (a step may start from another pool), but often a loss
        between two steps that nobody recorded.
        """
        out = []
        for prev, cur in zip(self._steps, self._steps[1:]):
            if cur["in"] != prev["out"]:
                out.append((cur["step"], prev["out"], cur["in"]))
        return out

    def table(self, notes: bool = False) -> pd.DataFrame:
        """One row per step: step, in, out, dropped, kept_%, reasons (+ note with ``notes=True``)."""
        rows = []
        for s in self._steps:
            row = {
                "step": s["step"], "in": s["in"], "out": s["out"], "dropped": s["dropped"],
                "kept_%": float("nan") if s["kept_pct"] is None else s["kept_pct"],
                "reasons": _reasons_text(s["rejects"], s["unexplained"], s["added"]),
            }
            if notes:
                row["note"] = s["note"]
            rows.append(row)
        columns = TABLE_COLUMNS + (["note"] if notes else [])
        df = pd.DataFrame(rows, columns=columns)
        return df.astype({"in": "int64", "out": "int64", "dropped": "int64", "kept_%": "float64"})

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (for metrics.json); :meth:`from_dict` reads it back."""
        return {"name": self.name, "steps": self.steps}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Funnel":
        """Rebuild from :meth:`to_dict` output; each step is validated again."""
        f = cls(d.get("name", ""))
        for s in d.get("steps", []):
            f.step(s["step"], s["in"], s["out"], rejects=s.get("rejects"), note=s.get("note", ""),
                   allow_growth=s.get("allow_growth", False))
        return f

    def __repr__(self) -> str:
        return f"Funnel({self.name!r}, {len(self._steps)} steps, final={self.final})"

    def _repr_html_(self) -> str:
        title = f"<b>Funnel: {html.escape(self.name)}</b>" if self.name else "<b>Funnel</b>"
        if not self._steps:
            return f"{title}<p><i>no steps</i></p>"
        body = self.table(notes=any(s["note"] for s in self._steps)).to_html(
            index=False, na_rep="–", float_format=lambda x: f"{x:.1f}")
        warn = "".join(f"<li>{html.escape(step)}: starts from {n_in}, previous step ended with {prev}</li>"
                       for step, prev, n_in in self.gaps())
        if warn:
            warn = f"<p style='color:#9a6700;margin:4px 0'>gaps between steps:</p><ul>{warn}</ul>"
        return f"{title}{body}{warn}"

    def plot(self, ax=None):
        """Horizontal bars per step (in, light; out, solid) labelled with out and kept %; returns the Figure."""
        fig, ax = _figure_ax(ax, figsize=(8, 1.2 + 0.45 * max(len(self._steps), 1)))
        title = f"{self.name} funnel" if self.name else "funnel"
        if not self._steps:
            _no_data(ax, title)
            return fig
        names = [s["step"] for s in self._steps]
        y = list(range(len(names)))
        ins = [s["in"] for s in self._steps]
        outs = [s["out"] for s in self._steps]
        ax.barh(y, ins, height=0.8, color="#d0d7de", label="in")
        ax.barh(y, outs, height=0.5, color="#2f81f7", label="out")
        top = max(ins + outs) or 1
        for yi, s in zip(y, self._steps):
            # A growth step reads better as "+N" than as a kept % above 100.
            kept = (f" (+{s['added']:,})" if s["added"] else
                    "" if s["kept_pct"] is None else f" ({s['kept_pct']:.0f}%)")
            ax.text(max(s["in"], s["out"]) + top * 0.01, yi, f"{s['out']:,}{kept}", va="center", fontsize=9)
        ax.set_yticks(y, [_short(n, 40) for n in names])
        ax.invert_yaxis()                      # first step on top, like a funnel
        ax.set_xlim(0, top * 1.25)             # room for the labels
        ax.set_xlabel("records")
        ax.set_title(title)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        return fig


# --------------------------------------------------------------------------- origins


def by_origin(records: Iterable[Mapping[str, Any]], key: str = "origin") -> dict[str, int]:
    """Count records per ``record[key]`` (missing -> "unknown"), largest first."""
    counts = Counter(str(r.get(key, "unknown")) if isinstance(r, Mapping) else "unknown" for r in records)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def origin_table(stages: Mapping[str, Sequence[Mapping[str, Any]]], key: str = "origin") -> pd.DataFrame:
    """Counts per origin at each stage: columns step, <origin>..., total (one row per stage, in order).

    Shows, e.g., how many of the kept instructions the model produced itself
    versus how many are reference seeds carried along.
    """
    per_stage = {name: by_origin(recs, key) for name, recs in stages.items()}
    origins: list[str] = []
    for counts in per_stage.values():
        origins += [o for o in counts if o not in origins]
    rows = [{"step": name, **{o: counts.get(o, 0) for o in origins}, "total": sum(counts.values())}
            for name, counts in per_stage.items()]
    df = pd.DataFrame(rows, columns=["step", *origins, "total"])
    return df.astype({c: "int64" for c in [*origins, "total"]})


