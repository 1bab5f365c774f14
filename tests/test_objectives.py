"""The surrogates of the paper's section 6.1: values at ratio 1, gradients in and out of the clip."""

from __future__ import annotations

import pytest
import torch

from common.objectives import (
    OBJECTIVES,
    adapt_kl_beta,
    clipped_surrogate,
    kl_penalty_surrogate,
    policy_loss,
    unclipped_surrogate,
)

EPS = 0.2


@pytest.mark.parametrize("seed", [0, 1])
def test_all_surrogates_equal_minus_mean_advantage_at_ratio_one(seed):
    g = torch.Generator().manual_seed(seed)
    advantages = torch.randn(50, generator=g, dtype=torch.float64) * 3.0
    ratio = torch.zeros(50, dtype=torch.float64).exp()  # log-ratio 0
    expected = -sum(advantages.tolist()) / 50
    assert clipped_surrogate(ratio, advantages, EPS).item() == pytest.approx(expected, abs=1e-12)
    assert unclipped_surrogate(ratio, advantages).item() == pytest.approx(expected, abs=1e-12)
    zero_kl = torch.zeros(50, dtype=torch.float64)
    assert kl_penalty_surrogate(ratio, advantages, zero_kl, 3.0).item() == pytest.approx(
        expected, abs=1e-12
    )


def test_surrogate_values_away_from_ratio_one_by_hand():
    ratio = torch.tensor([1.5, 0.5, 1.1])
    advantages = torch.tensor([2.0, 2.0, -1.0])
    # r*A = 3, 1, -1.1; clip(r)*A = 2.4, 1.6, -1.1; min = 2.4, 1, -1.1 -> mean 2.3/3.
    assert clipped_surrogate(ratio, advantages, EPS).item() == pytest.approx(-2.3 / 3)
    assert unclipped_surrogate(ratio, advantages).item() == pytest.approx(-2.9 / 3)
    kl = torch.tensor([0.1, 0.2, 0.3])
    # r*A - 2*kl = 2.8, 0.6, -1.7 -> mean 1.7/3.
    assert kl_penalty_surrogate(ratio, advantages, kl, 2.0).item() == pytest.approx(-1.7 / 3)


# (ratio, advantage, gradient zeroed by the clip?). Eq. 7's min picks the clipped term, whose
# gradient in r is zero, only where moving r further out would improve the objective; on the
# pessimistic side the unclipped term is smaller and keeps its gradient -A/n.
CASES = [
    (1.05, 2.0, False),  # inside [1 - eps, 1 + eps], A > 0
    (0.90, -1.0, False),  # inside, A < 0
    (1.15, -0.5, False),  # inside, A < 0
    (1.30, 2.0, True),  # above 1 + eps with A > 0: clip active
    (2.50, 0.7, True),  # far above with A > 0: clip active
    (0.70, -1.0, True),  # below 1 - eps with A < 0: clip active
    (0.10, -3.0, True),  # far below with A < 0: clip active
    (1.30, -2.0, False),  # above 1 + eps with A < 0: pessimistic side, unclipped gradient
    (0.70, 3.0, False),  # below 1 - eps with A > 0: pessimistic side, unclipped gradient
]


def grad_wrt_ratio(fn, ratio_values, advantages):
    ratio = torch.tensor(ratio_values, dtype=torch.float64, requires_grad=True)
    fn(ratio, torch.tensor(advantages, dtype=torch.float64)).backward()
    return ratio.grad


@pytest.mark.parametrize(("ratio_value", "advantage", "clip_active"), CASES)
def test_clip_gradient_per_case(ratio_value, advantage, clip_active):
    n = 4
    ratios, advs = [ratio_value] * n, [advantage] * n
    grad = grad_wrt_ratio(lambda r, a: clipped_surrogate(r, a, EPS), ratios, advs)
    unclipped_grad = grad_wrt_ratio(unclipped_surrogate, ratios, advs)
    assert torch.allclose(unclipped_grad, torch.full((n,), -advantage / n, dtype=torch.float64))
    if clip_active:
        assert torch.all(grad == 0), grad
    else:
        assert torch.allclose(grad, unclipped_grad), (grad, unclipped_grad)


def test_clip_gradient_mixed_batch_is_per_sample():
    n = len(CASES)
    grad = grad_wrt_ratio(
        lambda r, a: clipped_surrogate(r, a, EPS), [c[0] for c in CASES], [c[1] for c in CASES]
    )
    expected = torch.tensor([0.0 if c[2] else -c[1] / n for c in CASES], dtype=torch.float64)
    assert torch.allclose(grad, expected, rtol=0, atol=1e-15), (grad, expected)


def test_unclipped_gradient_is_minus_advantage_over_n_everywhere():
    ratios = [c[0] for c in CASES]
    advs = [c[1] for c in CASES]
    grad = grad_wrt_ratio(unclipped_surrogate, ratios, advs)
    assert torch.allclose(grad, -torch.tensor(advs, dtype=torch.float64) / len(CASES))


@pytest.mark.parametrize("beta", [0.5, 3.0])
def test_kl_penalty_gradient_wrt_kl_is_beta_over_n(beta):
    n = 7
    g = torch.Generator().manual_seed(0)
    kl = torch.rand(n, generator=g, dtype=torch.float64).requires_grad_(True)
    ratio = (torch.rand(n, generator=g, dtype=torch.float64) + 0.5).requires_grad_(True)
    advantages = torch.randn(n, generator=g, dtype=torch.float64)
    kl_penalty_surrogate(ratio, advantages, kl, beta).backward()
    assert torch.allclose(kl.grad, torch.full((n,), beta / n, dtype=torch.float64))
    assert torch.allclose(ratio.grad, -advantages / n)  # the penalty does not touch d/dr


TARGET = 0.01
LOW, HIGH = TARGET / 1.5, TARGET * 1.5


@pytest.mark.parametrize("beta", [1.0, 3.0])
@pytest.mark.parametrize(
    ("mean_kl", "factor"),
    [
        (0.0, 0.5),  # no change in policy at all: halve
        (0.001, 0.5),  # far below d_targ / 1.5: halve
        (LOW * (1 - 1e-6), 0.5),  # just below the lower boundary: halve
        (LOW * (1 + 1e-6), 1.0),  # just above it: unchanged
        (TARGET, 1.0),  # on target: unchanged
        (HIGH * (1 - 1e-6), 1.0),  # just below the upper boundary: unchanged
        (HIGH * (1 + 1e-6), 2.0),  # just above it: double
        (0.5, 2.0),  # far above: double
    ],
)
def test_adaptive_beta_rule(beta, mean_kl, factor):
    assert adapt_kl_beta(beta, mean_kl, TARGET) == pytest.approx(beta * factor, rel=1e-12)


def test_adaptive_beta_rule_scales_with_the_target():
    # The same mean KL halves beta for a large target and doubles it for a small one.
    assert adapt_kl_beta(2.0, 0.01, kl_target=0.1) == pytest.approx(1.0)
    assert adapt_kl_beta(2.0, 0.01, kl_target=0.001) == pytest.approx(4.0)
    assert adapt_kl_beta(2.0, 0.01, kl_target=0.012) == pytest.approx(2.0)


def test_policy_loss_dispatches_on_objective():
    g = torch.Generator().manual_seed(0)
    ratio = torch.rand(16, generator=g) + 0.5
    advantages, kl = torch.randn(16, generator=g), torch.rand(16, generator=g)
    expected = {
        "clip": clipped_surrogate(ratio, advantages, EPS),
        "none": unclipped_surrogate(ratio, advantages),
        "fixed_kl": kl_penalty_surrogate(ratio, advantages, kl, 2.0),
        "adaptive_kl": kl_penalty_surrogate(ratio, advantages, kl, 2.0),
    }
    assert set(expected) == set(OBJECTIVES)
    # The three surrogates differ on this batch, so a wrong dispatch cannot go unnoticed.
    distinct = {round(v.item(), 6) for v in expected.values()}
    assert len(distinct) == 3, expected
    for name, value in expected.items():
        assert policy_loss(name, ratio, advantages, kl, EPS, 2.0).item() == value.item(), name
    # The clip coefficient and beta are passed through, not fixed.
    assert policy_loss("clip", ratio, advantages, kl, 0.05, 2.0).item() == pytest.approx(
        clipped_surrogate(ratio, advantages, 0.05).item()
    )
    assert policy_loss("fixed_kl", ratio, advantages, kl, EPS, 7.0).item() == pytest.approx(
        kl_penalty_surrogate(ratio, advantages, kl, 7.0).item()
    )


@pytest.mark.parametrize("name", ["trpo", "CLIP", "", "kl"])
def test_policy_loss_unknown_objective_raises(name):
    ratio, advantages, kl = torch.ones(3), torch.ones(3), torch.zeros(3)
    with pytest.raises(ValueError, match="unknown objective"):
        policy_loss(name, ratio, advantages, kl, EPS, 1.0)
