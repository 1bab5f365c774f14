"""The paper's linear alpha schedule for the Atari step size and clip range (Table 5)."""

from __future__ import annotations

import pytest

from common.schedules import linear_anneal


def test_linear_anneal():
    n = 10
    lrs = [linear_anneal(3e-4, i, n) for i in range(1, n + 1)]
    assert lrs[0] == pytest.approx(3e-4)
    assert lrs[-1] == pytest.approx(3e-4 / n)
    steps = [b - a for a, b in zip(lrs, lrs[1:], strict=False)]
    assert all(s == pytest.approx(steps[0]) for s in steps)  # linear: equal decrements
    assert steps[0] < 0
    assert linear_anneal(1.0, 6, 11) == pytest.approx(
        0.5 * (linear_anneal(1.0, 1, 11) + linear_anneal(1.0, 11, 11))
    )
    assert linear_anneal(0.1, 1, 1) == pytest.approx(0.1)  # one iteration: 1/N = 1
