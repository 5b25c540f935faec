"""Paired tests between the runs of a sweep: methods (or variants) compared item by item.

Every method's evaluation scores the same items when the runs share a base, seeds and benchmark subsets: the same
IFEval and IFBench prompts (seeded subsets), and, for methods trained on one instruction set, the same held-out
verifier items (``instruction_sets.evaluation_items``: ids ``<instruction>__<query>``). A method's results module
exposes them (``items(run_dir) -> checkpoint -> split -> {item: score}``); here each trained checkpoint is
compared with its own run's base and with every trained checkpoint of the other variants of the same seed, on the
items both scored (items only one side has are left out and counted: ``n_unpaired``). Differences are in
percentage points; p is two-sided (exact McNemar for 0/1 verdicts, a paired z otherwise).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Mapping, Sequence

from . import methods, stats

COLUMNS = ("seed", "split", "a", "b", "n", "n_unpaired", "a_mean", "b_mean", "diff", "lo", "hi", "p", "test",
           "wins", "losses")


def run_items(run_dir: Path, pipeline: str) -> dict[str, dict[str, dict]]:
    """The per-item scores a run's method reports ({} when its results module has no ``items``)."""
    mod = importlib.import_module(methods.get(pipeline).results)
    fn = getattr(mod, "items", None)
    return fn(Path(run_dir)) if fn else {}


def _row(seed, split, a: str, b: str, sa: Mapping, sb: Mapping) -> dict | None:
    r = stats.paired(sa, sb)
    if not r["n"]:
        return None
    pct = {k: None if r.get(k) is None else 100 * r[k] for k in ("base", "other", "diff", "lo", "hi")}
    return {"seed": seed, "split": split, "a": a, "b": b, "n": r["n"], "n_unpaired": r["n_unpaired"],
            "a_mean": pct["base"], "b_mean": pct["other"], "diff": pct["diff"], "lo": pct["lo"], "hi": pct["hi"],
            "p": r["p"], "test": r["test"], "wins": r.get("wins"), "losses": r.get("losses")}


def paired_table(cells: Sequence[Mapping]) -> list[dict]:
    """``cells``: finished runs ``{variant, seed, pipeline, run_dir}``. Rows ``b - a``: every trained checkpoint
    (``<variant>:<checkpoint>``) against its run's base (``a`` = ``<variant>:base``), then every pair of trained
    checkpoints of different variants of one seed, in the cells' order."""
    rows: list[dict] = []
    for seed in dict.fromkeys(c["seed"] for c in cells):
        scored = []  # (label, variant, items by split), base first within each run
        for c in (c for c in cells if c["seed"] == seed):
            its = run_items(c["run_dir"], c["pipeline"])
            for ck, by_split in its.items():
                scored.append((f"{c['variant']}:{ck}", c["variant"], ck, by_split))
        bases = {v: s for _, v, ck, s in scored if ck == "base"}
        trained = [(label, v, s) for label, v, ck, s in scored if ck != "base"]
        for label, v, s in trained:
            for split in s:
                if split in bases.get(v, {}):
                    r = _row(seed, split, f"{v}:base", label, bases[v][split], s[split])
                    rows += [r] if r else []
        for i, (la, va, sa) in enumerate(trained):
            for lb, vb, sb in trained[i + 1:]:
                if va == vb:
                    continue
                for split in sa:
                    if split in sb:
                        r = _row(seed, split, la, lb, sa[split], sb[split])
                        rows += [r] if r else []
    return rows


def write(rows: Sequence[Mapping], path: Path) -> Path:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k) for k in COLUMNS})
    return path


def read(path: Path) -> list[dict]:
    """``paired.csv`` back as rows with numbers ([] when the file does not exist)."""
    import csv

    path = Path(path)
    if not path.is_file():
        return []

    def num(v, kind=float):
        return None if v in ("", None) else kind(float(v))
    counts = ("seed", "n", "n_unpaired", "wins", "losses")  # integers, as written
    with path.open() as f:
        return [{**r, **{k: num(r[k], int if k in counts else float)
                         for k in counts + ("a_mean", "b_mean", "diff", "lo", "hi", "p")}} for r in csv.DictReader(f)]


LABELS = {"ifeval": "IFEval Pr(S)", "ifbench": "IFBench Pr(S)", "trained_instructions": "trained instr., held-out queries",
          "heldout_instructions": "held-out instructions"}


def plot(rows: Sequence[Mapping], title: str = "paired differences with 95% CI (b - a, points)"):
    """A forest plot per split: each comparison's difference with its 95% interval, p beside it."""
    import matplotlib.pyplot as plt

    splits = [s for s in LABELS if any(r["split"] == s for r in rows)]
    if not splits:
        fig, ax = plt.subplots(figsize=(5, 1.5))
        ax.text(0.5, 0.5, "no pair of runs scored common items", ha="center", va="center", transform=ax.transAxes)
        ax.axis("off")
        plt.close(fig)
        return fig
    n_max = max(sum(r["split"] == s for r in rows) for s in splits)
    fig, axes = plt.subplots(1, len(splits), figsize=(3.6 * len(splits), 0.9 + 0.32 * n_max), squeeze=False)
    for ax, split in zip(axes[0], splits):
        rs = [r for r in rows if r["split"] == split]
        y = list(range(len(rs)))[::-1]
        for yy, r in zip(y, rs):
            color = "tab:red" if r["p"] is not None and r["p"] < 0.05 else "tab:blue"
            ax.errorbar(r["diff"], yy, xerr=[[r["diff"] - r["lo"]], [r["hi"] - r["diff"]]], fmt="o", color=color, ms=4,
                        capsize=2)
            ax.annotate(f"p={r['p']:.2g}" if r["p"] is not None else "", (r["hi"], yy), xytext=(3, -3),
                        textcoords="offset points", fontsize=6)
        ax.axvline(0, color="0.5", lw=0.8)
        ax.set_yticks(y, [f"{r['b']} − {r['a']} (n={r['n']})" for r in rs], fontsize=6)
        ax.set_title(LABELS[split], fontsize=8)
        ax.set_xlabel("difference, points", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig
