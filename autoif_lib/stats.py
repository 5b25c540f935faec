"""Confidence intervals and paired tests for evaluation scores (standard library only).

Every checkpoint is scored on the same items (IFEval prompts, held-out (instruction, query) pairs), so a
checkpoint is compared with the base model item by item: the paired difference has a much smaller
standard error than two independent proportions when most items agree.

* ``mean_ci``: mean of per-item scores (0/1 or pass rates in [0, 1]) with a 95% interval. For 0/1 scores
  it is the Wilson interval (it stays inside [0, 1] and is sane at 0 or n successes); otherwise the normal
  interval of the sample mean.
* ``paired``: mean difference ``other - base`` over the shared items, its 95% interval, and a two-sided
  p-value: the exact McNemar (sign) test on the discordant items when the scores are 0/1, otherwise the
  normal test of the mean difference. With ``clusters`` (e.g. the instruction of each item) it also gives
  the cluster-robust (CR1) interval and p, which allow items of one instruction to move together. With G
  clusters they use Student's t with G - 1 degrees of freedom, not the normal quantile: CR1 is biased down
  with few clusters and z = 1.96 would be anti-conservative (t_6 = 2.45, t_2 = 4.30). With G = 2 or 3 the
  interval is very wide, and that width is the information: a few instructions say little about instructions
  in general.
"""

from __future__ import annotations

import math
from typing import Hashable, Sequence

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def _binary(xs: Sequence[float]) -> bool:
    return all(x in (0, 1) for x in xs)


def binomial_se(p: float, n: int) -> float | None:
    """Standard error of a proportion ``p`` of ``n`` items, sqrt(p(1-p)/n), in the unit of ``p``; None
    without items."""
    if not n:
        return None
    return math.sqrt(max(0.0, p * (1 - p)) / n)


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of k successes in n trials."""
    if n <= 0:
        raise ValueError("wilson: n must be positive")
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    # exact ends at 0 and n successes (rounding would otherwise put p itself a hair outside its interval)
    lo = 0.0 if k == 0 else min(p, max(0.0, mid - half))
    hi = 1.0 if k == n else max(p, min(1.0, mid + half))
    return lo, hi


def mean_ci(scores: Sequence[float]) -> dict:
    """{mean, se, lo, hi, n}: the 95% interval of a mean score (Wilson for 0/1 scores)."""
    n = len(scores)
    if n == 0:
        return {"mean": None, "se": None, "lo": None, "hi": None, "n": 0}
    m = _mean(scores)
    var = sum((x - m) ** 2 for x in scores) / (n - 1) if n > 1 else 0.0
    se = math.sqrt(var / n)
    if _binary(scores):
        lo, hi = wilson(round(m * n), n)
    else:
        lo, hi = m - Z95 * se, m + Z95 * se
    return {"mean": m, "se": se, "lo": lo, "hi": hi, "n": n}


def binom_two_sided(k: int, n: int) -> float:
    """Exact two-sided p-value of k successes in n fair coin flips (McNemar on discordant pairs)."""
    if n == 0:
        return 1.0
    k = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def normal_two_sided(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def t_two_sided(t: float, df: int) -> float:
    """Two-sided p-value of Student's t statistic with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError("t_two_sided: df must be at least 1")
    return _betainc(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(q: float, df: int) -> float:
    """The ``q`` quantile (0.5 < q < 1) of Student's t with ``df`` degrees of freedom, by bisection."""
    if not 0.5 < q < 1.0:
        raise ValueError("t_quantile: q must lie in (0.5, 1)")
    lo, hi = 0.0, 1.0
    while t_two_sided(hi, df) > 2 * (1 - q):
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_two_sided(mid, df) > 2 * (1 - q) else (lo, mid)
    return (lo + hi) / 2


def cluster_se(diffs: Sequence[float], clusters: Sequence[Hashable]) -> tuple[float | None, int]:
    """Cluster-robust (CR1) standard error of the mean of ``diffs``; (None, G) with fewer than 2 clusters."""
    n, m = len(diffs), _mean(diffs)
    sums: dict = {}
    for d, g in zip(diffs, clusters):
        sums[g] = sums.get(g, 0.0) + (d - m)
    g = len(sums)
    if g < 2:
        return None, g
    return math.sqrt(g / (g - 1) * sum(s * s for s in sums.values())) / n, g


def paired(base: dict[Hashable, float], other: dict[Hashable, float],
           clusters: dict[Hashable, Hashable] | None = None) -> dict:
    """``other - base`` over the items both scored: mean difference, 95% interval and a two-sided p-value.

    Keys are item ids; an item only one side scored is left out and counted (``n_unpaired``)."""
    keys = [k for k in base if k in other]
    n_unpaired = len(set(base) ^ set(other))
    n = len(keys)
    if n == 0:
        return {"diff": None, "se": None, "lo": None, "hi": None, "p": None, "test": None, "n": 0,
                "n_unpaired": n_unpaired}
    d = [other[k] - base[k] for k in keys]
    m = _mean(d)
    se = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1) / n) if n > 1 else 0.0
    out = {"diff": m, "se": se, "lo": m - Z95 * se, "hi": m + Z95 * se, "n": n, "n_unpaired": n_unpaired,
           "base": _mean([base[k] for k in keys]), "other": _mean([other[k] for k in keys])}
    if _binary([base[k] for k in keys]) and _binary([other[k] for k in keys]):
        wins, losses = sum(x > 0 for x in d), sum(x < 0 for x in d)
        out.update(p=binom_two_sided(wins, wins + losses), test="exact McNemar", wins=wins, losses=losses)
    else:
        out.update(p=1.0 if se == 0 else normal_two_sided(m / se), test="paired z",
                   wins=sum(x > 0 for x in d), losses=sum(x < 0 for x in d))
    if clusters is not None:
        cse, g = cluster_se(d, [clusters[k] for k in keys])
        out.update(cluster_se=cse, n_clusters=g, cluster_df=None, cluster_lo=None, cluster_hi=None, cluster_p=None)
        if cse is not None:
            crit = t_quantile(0.975, g - 1)
            out.update(cluster_df=g - 1, cluster_t=crit, cluster_lo=m - crit * cse, cluster_hi=m + crit * cse,
                       cluster_p=(1.0 if m == 0 else None) if cse == 0 else t_two_sided(m / cse, g - 1))
    return out
