"""Evaluation shared by the methods: checkpoints compared on IFEval and on held-out verifiers.

Pure helpers over records; generation and the sandbox are passed in. Which checkpoints
exist comes from the pipeline's declarations (``StageContext.checkpoint``).
"""

from __future__ import annotations

from typing import Sequence

from . import scoring


def ifeval_requests(examples: Sequence[dict]) -> list[list[dict]]:
    """IFEval prompts as single user turns (the model's own chat template is applied by the backend)."""
    return [[{"role": "user", "content": ex["prompt"]}] for ex in examples]


def heldout_pass_rate(pairs: Sequence[dict], outs: Sequence[Sequence[str]], heldout: Sequence[dict], runner) -> dict:
    """Mean verifier pass rate of one checkpoint's responses to the held-out instructions."""
    if not pairs:
        return scoring.summarize([])
    filled = [dict(p, responses=list(o)) for p, o in zip(pairs, outs)]
    fns = {i["id"]: [f["src"] for f in i["functions"]] for i in heldout}
    return scoring.summarize([r["pass_rate"] for r in scoring.pass_rates(filled, fns, runner)])


def comparison_table(summaries: dict[str, dict], heldout: dict[str, dict]):
    """One row per checkpoint: the four IFEval metrics (in %) and the held-out pass rate, each with its
    standard error (binomial for Pr(S); the sample standard error of the mean for the pass rate)."""
    import pandas as pd

    import math

    rows = []
    for name, s in summaries.items():
        h = heldout.get(name, {})
        p, n = s["prompt_strict"], max(1, s["n_prompts"])
        rows.append({"checkpoint": name, "Pr(S)": 100 * s["prompt_strict"],
                     # binomial standard error: on a 16-prompt subset one prompt moves Pr by 6 points
                     "Pr(S) s.e.": 100 * math.sqrt(p * (1 - p) / n), "Pr(L)": 100 * s["prompt_loose"],
                     "Ins(S)": 100 * s["inst_strict"], "Ins(L)": 100 * s["inst_loose"],
                     "heldout pass rate": None if h.get("mean_pass_rate") is None else 100 * h["mean_pass_rate"],
                     "heldout s.e.": None if h.get("mean_pass_rate_se") is None else 100 * h["mean_pass_rate_se"],
                     "n prompts": s["n_prompts"], "n heldout": h.get("n", 0)})
    return pd.DataFrame(rows).set_index("checkpoint").round(1)


def plot_comparison(table):
    import matplotlib.pyplot as plt

    cols = ["Pr(S)", "Pr(L)", "Ins(S)", "Ins(L)", "heldout pass rate"]
    fig, ax = plt.subplots(figsize=(8, 3.4))
    table[cols].astype(float).T.plot.bar(ax=ax, rot=0)
    ax.set_ylabel("%")
    ax.set_title("IFEval (prompt/instruction × strict/loose) and held-out verifier pass rate")
    ax.legend(title="checkpoint", fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_heatmap(summaries: dict[str, dict], metric: str = "strict"):
    """Per-instruction-type accuracy, checkpoints as columns."""
    import matplotlib.pyplot as plt
    import numpy as np

    types_ = sorted({t for s in summaries.values() for t in s["per_instruction"]})
    names = list(summaries)
    grid = np.array([[summaries[n]["per_instruction"].get(t, {}).get(metric, np.nan) for n in names] for t in types_],
                    dtype=float)
    fig, ax = plt.subplots(figsize=(1.4 + 1.2 * len(names), 0.28 * len(types_) + 1.2))
    im = ax.imshow(grid, aspect="auto", vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(types_)), [f"{t} (n={max(summaries[n]['per_instruction'].get(t, {}).get('n', 0) for n in names)})" for t in types_], fontsize=7)
    for i in range(len(types_)):
        for j in range(len(names)):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if grid[i, j] < 0.5 else "black")
    fig.colorbar(im, ax=ax, label=f"accuracy ({metric})")
    ax.set_title(f"IFEval per instruction type ({metric})")
    fig.tight_layout()
    plt.close(fig)
    return fig
