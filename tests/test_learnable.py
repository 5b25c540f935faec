"""The CPU-effect machinery: held-out queries, the learnable-range probe, evaluation items, paired tables.

The probe and the evaluation items run through the real sandbox with real verifiers."""

from __future__ import annotations

import pytest

from autoif_lib import evaluation, instruction_sets
from autoif_lib import seeds
from autoif_lib.autoif.stages import ResponsesParams, VerifiersParams
from autoif_lib.params import ParamsError, build
from autoif_lib.sandbox import Sandbox, SandboxConfig

QUERIES = [{"id": f"q{k}", "query": f"Question number {k}?"} for k in range(50)]
BANG = {"id": "bang", "instruction": "Use an exclamation mark.", "origin": "reference",
        "functions": [{"src": "def evaluate(response):\n    return '!' in response\n", "origin": "reference"}]}
DOTS = {"id": "dots", "instruction": "Use three dots.", "origin": "reference",
        "functions": [{"src": "def evaluate(response):\n    return '...' in response\n", "origin": "reference"}]}
ANY = {"id": "any", "instruction": "Say something.", "origin": "reference",
       "functions": [{"src": "def evaluate(response):\n    return bool(response.strip())\n", "origin": "reference"}]}


@pytest.fixture(scope="module")
def box():
    with Sandbox(SandboxConfig()) as sb:
        yield sb


def test_split_queries_is_seeded_disjoint_and_sized():
    train, held = instruction_sets.split_queries(QUERIES, 0.4, seed=0)
    assert len(held) == 20 and len(train) == 30
    assert not {q["id"] for q in train} & {q["id"] for q in held}
    assert instruction_sets.split_queries(QUERIES, 0.4, seed=0) == (train, held)
    assert instruction_sets.split_queries(QUERIES, 0.4, seed=1)[1] != held
    assert instruction_sets.split_queries(QUERIES, 0.0, seed=0) == (QUERIES, [])
    # training pairs built from the training side never see a held-out query
    pairs = instruction_sets.pair([BANG, DOTS], train, 12, seed=0)
    assert {p["query_id"] for p in pairs} <= {q["id"] for q in train}


def test_probe_keeps_exactly_the_instructions_in_range(box):
    ins = [BANG, DOTS, ANY]
    pairs = instruction_sets.probe_pairs(ins, QUERIES, 4, seed=0, layout="instruction_first")
    assert len(pairs) == 12
    # hand-made 'model answers': bang passes 2 of 4, dots 0 of 4, any 4 of 4
    answers = {"bang": ["Wow!", "ok", "Great!", "fine"], "dots": ["a", "b", "c", "d"], "any": ["x", "y", "z", "w"]}
    seen: dict = {}
    outs = []
    for p in pairs:
        k = seen.get(p["instruction_id"], 0)
        seen[p["instruction_id"]] = k + 1
        outs.append([answers[p["instruction_id"]][k]])
    table = instruction_sets.probe_table(pairs, outs, ins, box.verdicts, 0.05, 0.75)
    got = {r["instruction_id"]: (r["pass_rate"], r["n"], r["reason"]) for r in table}
    assert got == {"bang": (0.5, 4, "in_range"), "dots": (0.0, 4, "probe_below_range"),
                   "any": (1.0, 4, "probe_above_range")}
    kept, dropped = instruction_sets.select_learnable(ins, table)
    assert [i["id"] for i in kept] == ["bang"]
    assert dropped == {"probe_below_range": 1, "probe_above_range": 1}
    bars = instruction_sets.plot_probe(table).axes[0].containers[0]  # one bar per instruction, sorted by pass rate
    assert [b.get_width() for b in bars] == [0.0, 0.5, 1.0]


def test_probe_rows_score_each_split_with_its_interval(box):
    # the training probes (online DPO, GRPO): greedy answers scored per split, one row each, in the items' order
    evals = {"trained_instructions": [{"prompt": "q1 Use an exclamation mark.", "instruction_id": "bang"},
                                      {"prompt": "q2 Use an exclamation mark.", "instruction_id": "bang"},
                                      {"prompt": "q3 Use three dots.", "instruction_id": "dots"},
                                      {"prompt": "q4 Use three dots.", "instruction_id": "dots"}],
             "heldout_instructions": [{"prompt": "q5 Say something.", "instruction_id": "any"},
                                      {"prompt": "q6 Say something.", "instruction_id": "gone"}]}
    items = instruction_sets.as_probe_items(evals, [BANG, DOTS, ANY])
    assert [p["instruction_id"] for p in items] == ["bang", "bang", "dots", "dots", "any"]  # no verifier, no item
    outs = [["Yes!"], ["no"], ["wait..."], ["Hi!"], ["sure"]]
    rows = instruction_sets.probe_rows(items, outs, box.verdicts, step=3)
    assert [(r["step"], r["split"], r["pass_rate"], r["n"]) for r in rows] == [
        (3, "trained_instructions", 0.5, 4), (3, "heldout_instructions", 1.0, 1)]
    assert rows[0]["lo"] < 0.5 < rows[0]["hi"]


def test_evaluation_items_use_only_heldout_queries_and_refuse_without_them():
    train_q, held_q = instruction_sets.split_queries(QUERIES, 0.4, seed=0)
    ev = instruction_sets.evaluation_items([BANG, DOTS], [ANY], QUERIES, held_q, 5, 7, seed=0, layout="instruction_first")
    assert [len(ev["trained_instructions"]), len(ev["heldout_instructions"])] == [10, 7]
    held_ids = {q["id"] for q in held_q}
    assert all(p["query_id"] in held_ids for ps in ev.values() for p in ps)
    assert {p["split"] for p in ev["trained_instructions"]} == {"trained_instructions"}
    assert len({p["pair_id"] for p in ev["trained_instructions"]}) == 10
    with pytest.raises(ValueError, match="heldout_query_fraction"):
        instruction_sets.evaluation_items([BANG], [ANY], QUERIES, [], 5, 7, seed=0, layout="instruction_first")
    # without held-out queries the held-out instructions draw from the pool, as before
    old = instruction_sets.evaluation_items([BANG], [ANY], QUERIES, [], 0, 3, 0, "instruction_first")["heldout_instructions"]
    assert [p["pair_id"] for p in old] == [p["pair_id"] for p in instruction_sets.heldout_pairs([ANY], QUERIES, 3, 0, "instruction_first")]
    items = instruction_sets.as_probe_items(ev, [BANG, DOTS, ANY])
    assert len(items) == 17 and items[0]["prompt"][0]["role"] == "user" and items[0]["verifiers"] == [BANG["functions"][0]["src"]]


def test_item_scores_and_paired_table_on_real_verdicts(box):
    ev = instruction_sets.evaluation_items([BANG], [], QUERIES, QUERIES[:10], 10, 0, seed=0, layout="instruction_first")
    ps = ev["trained_instructions"]
    base = evaluation.item_scores(ps, [["no"]] * 10, [BANG], box.verdicts)
    better = evaluation.item_scores(ps, [["yes!"]] * 8 + [["no"]] * 2, [BANG], box.verdicts)
    items = {"base": {"trained_instructions": {r["pair_id"]: r["pass_rate"] for r in base}},
             "sft": {"trained_instructions": {r["pair_id"]: r["pass_rate"] for r in better}}}
    rows = evaluation.paired_stats(items, {"trained_instructions": {p["pair_id"]: p["instruction_id"] for p in ps}})
    b, s = rows
    assert b["checkpoint"] == "base" and b["score_mean"] == 0.0 and "delta_diff" not in b
    assert s["score_mean"] == 0.8 and s["delta_diff"] == pytest.approx(0.8)
    assert (s["delta_wins"], s["delta_losses"], s["delta_p"]) == (8, 0, pytest.approx(2 / 2 ** 8))
    assert s["delta_cluster_se"] is None  # one instruction: no cluster-robust interval claimed
    t = evaluation.ci_table(rows)
    assert list(t["score %"]) == [0.0, 80.0] and t.loc[1, "Δ vs base"] == 80.0 and t.loc[1, "wins/losses vs base"] == "8/0"
    fig = evaluation.plot_ci(rows)
    assert len(fig.axes) == 1 and fig.axes[0].get_title().startswith("trained instr., held-out queries (n=10)")


def test_each_checkpoint_is_tested_against_its_own_init_and_the_base():
    # 20 items of two instructions: base passes 2, SFT 4, online DPO 12 (a superset of SFT's)
    ids = [f"{g}{k}" for g in "ab" for k in range(10)]
    clusters = {"trained_instructions": {i: i[0] for i in ids}}

    def scores(passing):
        return {"trained_instructions": {i: float(i in passing) for i in ids}}

    items = {"base": scores({"a0", "b0"}), "sft": scores({"a0", "a1", "b0", "b1"}),
             "online_dpo": scores({f"a{k}" for k in range(8)} | {"b0", "b1", "b2", "b3"})}
    rows = evaluation.paired_stats(items, clusters, inits={"base": "base", "sft": "base", "online_dpo": "sft"})
    b, s, o = rows
    assert "init_diff" not in b and "init_diff" not in s  # the base, and SFT whose init is the base: no second test
    assert (o["init"], o["init_diff"], o["init_wins"], o["init_losses"]) == ("sft", pytest.approx(8 / 20), 8, 0)
    assert o["init_p"] == pytest.approx(2 / 2 ** 8)  # exact McNemar on 8 wins, 0 losses
    assert (o["delta_diff"], o["delta_wins"]) == (pytest.approx(10 / 20), 10)
    assert o["init_n_clusters"] == 2 and o["init_cluster_df"] == 1  # by instruction: t with 1 df
    t = evaluation.ci_table(rows)
    assert t.loc[2, "init"] == "sft" and t.loc[2, "Δ vs init"] == 40.0 and t.loc[2, "wins/losses vs init"] == "8/0"
    assert t.loc[2, "Δ vs base"] == 50.0 and t["Δ vs init"].isna().tolist() == [True, True, False]
    # the figure draws exactly the contrasts: SFT - base, online DPO - base, online DPO - SFT (with its p)
    ax = evaluation.plot_deltas(rows).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["sft - base\np=0.5", "online_dpo - base\np=0.002",
                                                           "online_dpo - sft\np=0.0078"]
    # per instruction: where the gain comes from (a: 1 -> 2 -> 8 of 10; b: 1 -> 2 -> 4)
    by = evaluation.by_instruction(items, clusters, "trained_instructions")
    assert by.to_dict(orient="index") == {"a": {"n": 10, "base": 1.0, "sft": 2.0, "online_dpo": 8.0},
                                          "b": {"n": 10, "base": 1.0, "sft": 2.0, "online_dpo": 4.0}}


def test_subset_split_keeps_only_the_instructions_online_dpo_trained_on():
    items = {"base": {"trained_instructions": {"a0": 0.0, "a1": 1.0, "b0": 0.0, "c0": 1.0}},
             "online_dpo": {"trained_instructions": {"a0": 1.0, "a1": 1.0, "b0": 0.0, "c0": 0.0}}}
    clusters = {"trained_instructions": {"a0": "a", "a1": "a", "b0": "b", "c0": "c"}}
    assert evaluation.subset_split(items, clusters, "trained_instructions", "online_instructions", {"a", "b"})
    assert items["online_dpo"]["online_instructions"] == {"a0": 1.0, "a1": 1.0, "b0": 0.0}
    assert items["base"]["online_instructions"] == {"a0": 0.0, "a1": 1.0, "b0": 0.0}
    assert clusters["online_instructions"] == {"a0": "a", "a1": "a", "b0": "b"}
    # all of them, or none: no split of its own (it would repeat trained_instructions or be empty)
    assert not evaluation.subset_split(items, clusters, "trained_instructions", "x", {"a", "b", "c"})
    assert not evaluation.subset_split(items, clusters, "trained_instructions", "y", set())
    assert "x" not in clusters and "y" not in items["base"]


def test_params_refuse_a_bad_range_and_reference_only_without_references():
    with pytest.raises(ParamsError, match="learnable_range"):
        build(ResponsesParams, {"learnable_range": [0.8, 0.2]}, where="05")
    with pytest.raises(ParamsError, match="learnable_range"):
        build(ResponsesParams, {"learnable_range": [0.1]}, where="05")
    with pytest.raises(ParamsError, match="add_reference_verifiers"):
        build(VerifiersParams, {"n_samples": 0}, where="02")
    assert build(VerifiersParams, {"n_samples": 0, "add_reference_verifiers": True}, where="02").n_samples == 0


def test_cpu_seeds_have_working_reference_verifiers():
    recs = seeds.load_seeds(seeds.CPU_SEEDS_PATH)
    assert len(recs) == 14 and len({r["id"] for r in recs}) == 14
    for r in recs:
        ns: dict = {}
        exec(compile(r["verifier"], r["id"], "exec"), ns)
        labels = [c["output"] for c in r["cases"]]
        assert labels.count(True) >= 3 and labels.count(False) >= 3, r["id"]
        assert [ns["evaluate"](c["input"]) for c in r["cases"]] == labels, r["id"]


def test_pass_curve_plots_on_policy_reward_and_each_split_with_its_own_band():
    from matplotlib.colors import to_rgb

    from autoif_lib.autoif import training

    its = [{"samples": 8, "mean_reward": 0.25, "step_before": 0}, {"samples": 8, "mean_reward": 0.5, "step_before": 8}]
    curve = [{"iteration": k, "step": 8 * k, "split": s, "pass_rate": 0.1 * k, "lo": 0.0, "hi": 0.3, "n": 10}
             for k in range(3) for s in ("trained_instructions", "heldout_instructions")]
    ax = training.plot_pass_curve(its, curve).axes[0]
    assert [list(line.get_xdata()) for line in ax.lines] == [[0, 8], [0, 8, 16], [0, 8, 16]]
    assert list(ax.lines[0].get_ydata()) == [25.0, 50.0]
    assert [tuple(c.get_facecolor()[0][:3]) for c in ax.collections] == [to_rgb(line.get_color()) for line in ax.lines[1:]]
