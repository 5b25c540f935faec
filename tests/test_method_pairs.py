"""Paired tests across a sweep's runs (``method_pairs``): exact differences, intervals and McNemar p on
hand-made evaluation files of two methods."""

from __future__ import annotations

import math

import pytest

from autoif_lib import io, method_pairs


def _run(root, stage, checkpoints, ifeval, heldout=None):
    d = root / stage
    d.mkdir(parents=True)
    io.write_json(d / "metrics.json", {"checkpoints": checkpoints})
    for ck, verdicts in ifeval.items():
        io.write_jsonl(d / f"ifeval_{ck}.jsonl", [{"key": k, "follow_all_strict": v} for k, v in enumerate(verdicts)])
    for ck, rates in (heldout or {}).items():
        io.write_jsonl(d / f"heldout_instructions_{ck}.jsonl", [{"pair_id": pid, "pass_rate": r} for pid, r in rates.items()])
    return root


BASE = [True] * 2 + [False] * 8          # 2 of 10
SFT = [True] * 6 + [False] * 4           # 6 of 10: 4 wins over base, 0 losses
GRPO = [True] * 3 + [False] * 7          # 3 of 10: 1 win over base


@pytest.fixture
def cells(tmp_path):
    a = _run(tmp_path / "a", "11_evaluate", ["base", "sft"], {"base": BASE, "sft": SFT},
             {"base": {"i1__q1": 0.0, "i1__q2": 0.0, "i2__q1": 1.0}, "sft": {"i1__q1": 1.0, "i1__q2": 0.5, "i2__q1": 1.0}})
    b = _run(tmp_path / "b", "02_evaluate", ["base", "grpo"], {"base": BASE, "grpo": GRPO},
             {"base": {"i1__q1": 0.0, "i2__q1": 1.0, "i9__q9": 0.0}, "grpo": {"i1__q1": 0.0, "i2__q1": 0.0, "i9__q9": 1.0}})
    return [{"variant": "autoif", "seed": 0, "pipeline": "autoif", "run_dir": a},
            {"variant": "rlvr", "seed": 0, "pipeline": "rlvr", "run_dir": b}]


def test_each_checkpoint_against_its_base_and_against_the_other_method(cells):
    rows = {(r["a"], r["b"], r["split"]): r for r in method_pairs.paired_table(cells)}
    assert set(rows) == {("autoif:base", "autoif:sft", "ifeval"), ("autoif:base", "autoif:sft", "heldout_instructions"),
                         ("rlvr:base", "rlvr:grpo", "ifeval"), ("rlvr:base", "rlvr:grpo", "heldout_instructions"),
                         ("autoif:sft", "rlvr:grpo", "ifeval"), ("autoif:sft", "rlvr:grpo", "heldout_instructions")}
    sft = rows["autoif:base", "autoif:sft", "ifeval"]
    assert (sft["n"], sft["wins"], sft["losses"]) == (10, 4, 0)
    assert sft["diff"] == pytest.approx(40.0) and sft["test"] == "exact McNemar"
    assert sft["p"] == pytest.approx(2 * 0.5 ** 4)  # two-sided exact binomial, 4 of 4
    se = math.sqrt((0.4 * 0.6 * 10 / 9) / 10)  # sample s.e. of the 0/1 differences (4 ones, 6 zeros)
    assert sft["lo"] == pytest.approx(40 - 100 * 1.959964 * se, rel=1e-4)
    cross = rows["autoif:sft", "rlvr:grpo", "ifeval"]
    assert (cross["a_mean"], cross["b_mean"], cross["diff"]) == (pytest.approx(60.0), pytest.approx(30.0), pytest.approx(-30.0))
    assert (cross["wins"], cross["losses"]) == (0, 3) and cross["p"] == pytest.approx(0.25)
    # held-out items pair by id: only i1__q1 and i2__q1 are common to both methods; the others are counted
    held = rows["autoif:sft", "rlvr:grpo", "heldout_instructions"]
    assert (held["n"], held["n_unpaired"]) == (2, 2) and held["diff"] == pytest.approx(-100.0)


def test_a_single_variant_has_no_cross_rows_and_a_csv_round_trips(cells, tmp_path):
    rows = method_pairs.paired_table(cells[:1])
    assert {(r["a"], r["b"]) for r in rows} == {("autoif:base", "autoif:sft")}
    path = method_pairs.write(rows, tmp_path / "paired.csv")
    import csv

    back = list(csv.DictReader(path.open()))
    assert len(back) == 2 and tuple(back[0]) == method_pairs.COLUMNS
    read = method_pairs.read(path)  # what the sweep's figure and the analysis notebook read
    assert [(r["n"], r["diff"]) for r in read] == [(r["n"], pytest.approx(r["diff"])) for r in rows]
    assert all(type(r[k]) is int for r in read for k in ("seed", "n", "n_unpaired", "wins", "losses"))
    fig = method_pairs.plot(read)
    assert len(fig.axes) == 2  # one panel per split
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == [f"autoif:sft − autoif:base (n={rows[0]['n']})"]  # counts print as integers
