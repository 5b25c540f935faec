"""Stage 11 helpers: held-out pass rates, the comparison table and its plots."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

from autoif_lib import evaluation as evaluate, instruction_sets, scoring  # noqa: E402


def _runner(functions, inputs):
    out = []
    for src, inp in zip(functions, inputs):
        ns = {}
        exec(src, ns)
        out.append([SimpleNamespace(status="pass" if ns["evaluate"](x) else "fail", ok=bool(ns["evaluate"](x)))
                    for x in inp])
    return out


def test_heldout_pairs_and_pass_rate():
    held = [{"id": "h0", "instruction": "Answer in lowercase.", "functions": [
        {"src": "def evaluate(r):\n    return r.islower()"}, {"src": "def evaluate(r):\n    return len(r) < 10"}]}]
    queries = [{"id": f"q{i}", "query": f"question {i}"} for i in range(5)]
    pairs = instruction_sets.heldout_pairs(held, queries, 2, seed=0, layout="instruction_first")
    assert len(pairs) == 2 and all(p["prompt"].startswith("Answer in lowercase.") for p in pairs)
    items = evaluate.item_scores(pairs, [["short"], ["Not Lower And Long"]], held, _runner)
    assert [r["pass_rate"] for r in items] == [1.0, 0.0]  # both functions pass; neither does
    assert scoring.summarize([r["pass_rate"] for r in items]) == {"n": 2, "mean_pass_rate": 0.5,
                                                                  "mean_pass_rate_se": 0.5, "full_pass": 0.5}
    assert evaluate.item_scores([], [], held, _runner) == []
    assert instruction_sets.heldout_pairs(held, queries, 0, 0, "instruction_first") == []


def test_comparison_table_and_plots():
    s = {"prompt_strict": 0.25, "prompt_loose": 0.5, "inst_strict": 0.3, "inst_loose": 0.6, "n_prompts": 16,
         "per_instruction": {"punctuation:no_comma": {"n": 2, "strict": 0.5, "loose": 1.0}}}
    t = evaluate.comparison_table({"base": s, "sft": dict(s, prompt_strict=0.5)},
                                  {"base": {"mean_pass_rate": 0.1, "mean_pass_rate_se": 0.05, "n": 8}, "sft": {"mean_pass_rate": None}})
    assert list(t.index) == ["base", "sft"] and t.loc["sft", "Pr(S)"] == 50.0
    assert t.loc["base", "Pr(S) s.e."] == round(100 * (0.25 * 0.75 / 16) ** 0.5, 1)
    assert t.loc["base", "heldout pass rate"] == 10.0 and t.loc["base", "heldout s.e."] == 5.0
    assert t.loc["base", "n heldout"] == 8
    evaluate.plot_comparison(t).savefig("/dev/null", format="png")
    evaluate.plot_heatmap({"base": s, "sft": s}).savefig("/dev/null", format="png")
