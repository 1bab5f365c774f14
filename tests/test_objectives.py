"""The surrogates of the paper's section 6.1: values at ratio 1, gradients in and out of the clip."""

from __future__ import annotations

import pytest
import torch

from common.objectives import (
    adapt_kl_beta,
    clipped_surrogate,
    kl_penalty_surrogate,
    policy_loss,
    unclipped_surrogate,
)

EPS = 0.2


def test_all_surrogates_equal_minus_mean_advantage_at_ratio_one():
    advantages = torch.tensor([1.5, -2.0, 0.3, 4.0])
    ratio = torch.ones(4)
    expected = -advantages.mean()
    assert clipped_surrogate(ratio, advantages, EPS) == pytest.approx(expected.item())
    assert unclipped_surrogate(ratio, advantages) == pytest.approx(expected.item())
    assert kl_penalty_surrogate(ratio, advantages, torch.zeros(4), kl_beta=3.0) == pytest.approx(
        expected.item()
    )


# (ratio, advantage, clip active?): the clip removes the gradient only where moving further would
# improve the objective beyond the trust region (eq. 7's min picks the clipped term).
CASES = [
    (1.05, 2.0, False),  # inside the range
    (0.90, -1.0, False),  # inside the range
    (1.30, 2.0, True),  # above 1 + eps with A > 0: clipped
    (0.70, -1.0, True),  # below 1 - eps with A < 0: clipped
    (1.30, -2.0, False),  # above 1 + eps with A < 0: the pessimistic, unclipped term is kept
    (0.70, 3.0, False),  # below 1 - eps with A > 0: likewise
]


@pytest.mark.parametrize(("ratio_value", "advantage", "clipped"), CASES)
def test_clip_gradient_is_zero_only_where_the_clip_is_active(ratio_value, advantage, clipped):
    n = 4
    ratio = torch.full((n,), ratio_value, requires_grad=True)
    advantages = torch.full((n,), advantage)
    clipped_surrogate(ratio, advantages, EPS).backward()
    unclipped_ratio = ratio.detach().clone().requires_grad_(True)
    unclipped_surrogate(unclipped_ratio, advantages).backward()
    if clipped:
        assert torch.all(ratio.grad == 0)
    else:
        assert torch.allclose(ratio.grad, unclipped_ratio.grad)
        assert torch.allclose(ratio.grad, torch.full((n,), -advantage / n))


def test_mixed_batch_gradient_per_sample():
    ratio = torch.tensor([c[0] for c in CASES], requires_grad=True)
    advantages = torch.tensor([c[1] for c in CASES])
    clipped_surrogate(ratio, advantages, EPS).backward()
    expected = torch.tensor([0.0 if c[2] else -c[1] / len(CASES) for c in CASES])
    assert torch.allclose(ratio.grad, expected)


def test_kl_penalty_gradient_is_beta_over_n():
    kl = torch.rand(5, requires_grad=True)
    kl_penalty_surrogate(torch.ones(5), torch.randn(5), kl, kl_beta=3.0).backward()
    assert torch.allclose(kl.grad, torch.full((5,), 3.0 / 5))


@pytest.mark.parametrize(
    ("mean_kl", "expected"),
    [
        (0.001, 0.5),  # far below d_targ / 1.5: halve
        (0.01 / 1.5 - 1e-6, 0.5),  # just below the lower bound
        (0.01 / 1.5 + 1e-6, 1.0),  # just inside
        (0.01, 1.0),
        (0.015 - 1e-6, 1.0),  # just inside the upper bound
        (0.015 + 1e-6, 2.0),  # just above 1.5 d_targ: double
        (0.5, 2.0),
    ],
)
def test_adaptive_beta_rule(mean_kl, expected):
    assert adapt_kl_beta(1.0, mean_kl, kl_target=0.01) == pytest.approx(expected)


def test_policy_loss_dispatches_on_objective():
    g = torch.Generator().manual_seed(0)
    ratio = torch.rand(8, generator=g) + 0.5
    advantages, kl = torch.randn(8, generator=g), torch.rand(8, generator=g)
    assert policy_loss("clip", ratio, advantages, kl, EPS, 2.0) == clipped_surrogate(
        ratio, advantages, EPS
    )
    assert policy_loss("none", ratio, advantages, kl, EPS, 2.0) == unclipped_surrogate(
        ratio, advantages
    )
    for name in ("fixed_kl", "adaptive_kl"):
        assert policy_loss(name, ratio, advantages, kl, EPS, 2.0) == kl_penalty_surrogate(
            ratio, advantages, kl, 2.0
        )
    with pytest.raises(ValueError, match="unknown objective"):
        policy_loss("trpo", ratio, advantages, kl, EPS, 2.0)
