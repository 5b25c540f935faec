"""Confidence intervals and paired tests (autoif_lib/stats.py) against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from autoif_lib import stats


def test_wilson_matches_the_closed_form():
    lo, hi = stats.wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.27753, abs=1e-5)  # z^2/(n+z^2) at k=0
    lo, hi = stats.wilson(5, 10)
    assert (lo, hi) == (pytest.approx(0.23659, abs=1e-5), pytest.approx(0.76341, abs=1e-5))
    with pytest.raises(ValueError):
        stats.wilson(0, 0)
    # the interval always holds the observed rate, exactly at the ends (a plot's error bars are never negative)
    for n in range(1, 60):
        for k in range(n + 1):
            lo, hi = stats.wilson(k, n)
            assert lo <= k / n <= hi, (k, n)
        assert stats.wilson(0, n)[0] == 0.0 and stats.wilson(n, n)[1] == 1.0


def test_mean_ci_binary_uses_wilson_and_fractions_the_normal_interval():
    b = stats.mean_ci([1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    assert b["mean"] == 0.1 and b["n"] == 10 and (b["lo"], b["hi"]) == stats.wilson(1, 10)
    f = stats.mean_ci([0.5, 1.0, 0.0, 0.5])
    se = math.sqrt((0 + 0.25 + 0.25 + 0) / 3 / 4)
    assert f["se"] == pytest.approx(se) and f["lo"] == pytest.approx(0.5 - stats.Z95 * se)
    assert stats.mean_ci([])["mean"] is None


def test_exact_mcnemar_counts_only_the_items_that_changed():
    base = {f"i{k}": 0.0 for k in range(20)}
    other = dict(base, i0=1.0, i1=1.0, i2=1.0, i3=1.0, i4=1.0, i5=1.0)  # 6 wins, 0 losses, 14 ties
    r = stats.paired(base, other)
    assert (r["wins"], r["losses"], r["n"], r["test"]) == (6, 0, 20, "exact McNemar")
    assert r["p"] == pytest.approx(2 / 2 ** 6)  # two-sided binomial(6, 1/2) at 0
    assert r["diff"] == pytest.approx(0.3)
    se = math.sqrt((6 * 0.7 ** 2 + 14 * 0.3 ** 2) / 19 / 20)
    assert r["se"] == pytest.approx(se) and r["lo"] == pytest.approx(0.3 - stats.Z95 * se)
    # 7 wins and 1 loss: two-sided P(<= 1 of 8) = 2 * (1 + 8) / 256
    r2 = stats.paired(dict(base, i7=1.0), dict(other, i6=1.0, i7=0.0))
    assert (r2["wins"], r2["losses"]) == (7, 1) and r2["p"] == pytest.approx(18 / 256)
    assert stats.binom_two_sided(3, 6) == 1.0 and stats.binom_two_sided(0, 0) == 1.0


def test_paired_leaves_out_and_counts_unpaired_items_and_handles_fractions():
    r = stats.paired({"a": 0.5, "b": 0.0, "c": 1.0}, {"a": 1.0, "b": 0.5, "d": 1.0})
    assert r["n"] == 2 and r["n_unpaired"] == 2 and r["diff"] == pytest.approx(0.5)
    assert r["test"] == "paired z" and r["se"] == 0.0 and r["p"] == 1.0  # no spread: no evidence claimed
    assert stats.paired({"a": 1.0}, {"b": 1.0})["diff"] is None


def test_cluster_robust_interval_widens_when_an_instruction_moves_as_a_block():
    # instruction A: all 10 items improve; B and C: unchanged. Items of A move together.
    base = {f"{g}{k}": 0.0 for g in "ABC" for k in range(10)}
    other = {k: (1.0 if k.startswith("A") else 0.0) for k in base}
    clusters = {k: k[0] for k in base}
    r = stats.paired(base, other, clusters)
    m = 1 / 3
    # CR1 by hand: per-cluster residual sums 10*(1-m), 10*(-m), 10*(-m); G/(G-1) = 3/2
    cse = math.sqrt(1.5 * ((10 * (1 - m)) ** 2 + 2 * (10 * m) ** 2)) / 30
    assert r["n_clusters"] == 3 and r["cluster_se"] == pytest.approx(cse)
    assert r["cluster_se"] > 2 * r["se"]
    assert stats.cluster_se([0.1, 0.2], ["x", "x"]) == (None, 1)
    # 3 clusters: the interval uses t with 2 df (4.303), not z = 1.96, and the p is t's
    assert (r["cluster_df"], r["cluster_t"]) == (2, pytest.approx(4.302653, abs=1e-5))
    assert (r["cluster_lo"], r["cluster_hi"]) == (pytest.approx(m - 4.302653 * cse, abs=1e-6),
                                                  pytest.approx(m + 4.302653 * cse, abs=1e-6))
    assert r["cluster_p"] == pytest.approx(stats.t_two_sided(m / cse, 2))
    assert r["cluster_lo"] < 0 < r["lo"]  # the item-level interval excludes 0; the honest one by instruction does not


@pytest.mark.parametrize("df,q975,p_at_2", [(1, 12.706205, 0.295167), (2, 4.302653, 0.183503),
                                            (6, 2.446912, 0.092426), (30, 2.042272, 0.054625)])
def test_student_t_matches_the_tables(df, q975, p_at_2):
    # reference values: Student's t tables (two-sided 95% critical values; P(|T| > 2))
    assert stats.t_quantile(0.975, df) == pytest.approx(q975, abs=1e-5)
    assert stats.t_two_sided(2.0, df) == pytest.approx(p_at_2, abs=1e-5)
    assert stats.t_two_sided(0.0, df) == pytest.approx(1.0)
    assert stats.t_quantile(0.975, 100000) == pytest.approx(stats.Z95, abs=1e-4)
