"""Welch's t-test between two sets of scores (one per seed or per game): do two setups differ
beyond noise? A module shared by ``bench_atari_learning.py``, ``compare_atari_backends.py`` and
``check_envpool_equivalence.py``."""

from __future__ import annotations

import statistics


def backend_gap(first: list[float], second: list[float]) -> tuple[float, float, float]:
    """Mean of ``first`` minus mean of ``second`` (one score per seed), the standard error of that
    difference, and the two-sided p-value of Welch's t-test (unequal variances).

    Two constant samples (no spread at all) have no t statistic: p is 1 if they are equal, else 0.
    """
    from scipy import stats

    gap = statistics.mean(first) - statistics.mean(second)
    error = (
        statistics.variance(first) / len(first) + statistics.variance(second) / len(second)
    ) ** 0.5
    if error == 0:
        return gap, error, 1.0 if gap == 0 else 0.0
    p_value = stats.ttest_ind(first, second, equal_var=False).pvalue
    return gap, error, float(p_value)


def welch_line(label: str, first: list[float], second: list[float]) -> str:
    """The gap between two sets of per-seed scores, its standard error and Welch's verdict."""
    if min(len(first), len(second)) < 2:
        return f"{label}: Welch's t-test needs at least 2 seeds on each side"
    gap, error, p_value = backend_gap(first, second)
    verdict = "within noise" if p_value >= 0.05 else "NOT within noise"
    return (f"{label}: {gap:+.1f} +- {error:.1f} (standard error across seeds); "
            f"Welch's t-test p = {p_value:.2f}: {verdict} at the 5% level")  # fmt: skip
