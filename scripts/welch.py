"""Welch's t-test between two sets of scores (one per seed or per game): do two setups differ
beyond noise? A module shared by ``bench_atari_learning.py`` and ``compare_atari_backends.py``."""

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
