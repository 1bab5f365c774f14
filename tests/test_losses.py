"""Value loss, advantage normalisation, the diagnostics, the LR schedule and the full eq. 9 loss."""

from __future__ import annotations

import math

import pytest
import torch

from common.losses import (
    approx_kl,
    clip_fraction,
    explained_variance,
    linear_anneal,
    normalize_advantages,
    ppo_loss,
    value_loss,
)
from common.objectives import clipped_surrogate, kl_penalty_surrogate


def test_value_loss_unclipped_and_clipped_by_hand():
    values, old, returns = (
        torch.tensor([1.0, 3.0]),
        torch.tensor([0.0, 2.9]),
        torch.tensor([2.0, 0.0]),
    )
    assert value_loss(values, old, returns, 0.2, clip_vloss=False) == pytest.approx(
        0.5 * (1.0 + 9.0) / 2
    )
    # Clipped values: 0 + clamp(1, -0.2, 0.2) = 0.2 and 2.9 + clamp(0.1) = 3.0;
    # errors: max(1, (0.2 - 2)^2 = 3.24) = 3.24 and max(9, 9) = 9.
    assert value_loss(values, old, returns, 0.2, clip_vloss=True) == pytest.approx(
        0.5 * (3.24 + 9.0) / 2
    )


def test_normalize_advantages():
    advantages = normalize_advantages(torch.randn(1000) * 5 + 3)
    assert advantages.mean().abs() < 1e-5 and (advantages.std() - 1).abs() < 1e-4


def test_approx_kl_estimators():
    zero = approx_kl(torch.zeros(10), torch.ones(10))
    assert zero["old_approx_kl"] == 0 and zero["approx_kl"] == 0
    log_ratio = torch.randn(1000)
    assert approx_kl(log_ratio, log_ratio.exp())["approx_kl"] >= 0
    # Samples x ~ p = N(0, 1); log r = log q(x) - log p(x) for q = N(0.5, 1.2): both estimate KL[p||q].
    torch.manual_seed(0)
    p, q = torch.distributions.Normal(0.0, 1.0), torch.distributions.Normal(0.5, 1.2)
    x = p.sample((400_000,))
    log_ratio = q.log_prob(x) - p.log_prob(x)
    exact = torch.distributions.kl_divergence(p, q).item()
    estimates = approx_kl(log_ratio, log_ratio.exp())
    assert estimates["old_approx_kl"].item() == pytest.approx(exact, rel=0.05)
    assert estimates["approx_kl"].item() == pytest.approx(exact, rel=0.05)


def test_clip_fraction_and_explained_variance():
    assert clip_fraction(torch.tensor([1.0, 1.15, 0.85, 1.3, 0.7]), 0.2) == pytest.approx(0.4)
    target = torch.randn(100)
    assert explained_variance(target, target) == pytest.approx(1.0)
    assert explained_variance(torch.full((100,), target.mean().item()), target) == pytest.approx(
        0.0, abs=1e-6
    )
    assert math.isnan(explained_variance(torch.randn(5), torch.ones(5)))


def test_linear_anneal():
    assert linear_anneal(3e-4, 1, 10) == pytest.approx(3e-4)
    assert linear_anneal(3e-4, 10, 10) == pytest.approx(3e-5)
    assert linear_anneal(1.0, 6, 11) == pytest.approx(
        0.5 * (linear_anneal(1.0, 1, 11) + linear_anneal(1.0, 11, 11))
    )


@pytest.mark.parametrize("objective", ["clip", "adaptive_kl"])
def test_ppo_loss_is_eq9_from_its_parts(objective):
    g = torch.Generator().manual_seed(0)
    n = 64
    new_lp, old_lp = torch.randn(n, generator=g) * 0.1, torch.randn(n, generator=g) * 0.1
    entropy, kl = torch.rand(n, generator=g), torch.rand(n, generator=g) * 0.01
    new_v, old_v, adv, ret = (torch.randn(n, generator=g) for _ in range(4))
    loss, stats = ppo_loss(
        new_log_prob=new_lp, entropy=entropy, new_values=new_v, kl=kl, old_log_prob=old_lp, old_values=old_v,
        advantages=adv, returns=ret, objective=objective, clip_coef=0.1, kl_beta=2.0, vf_coef=0.5,
        ent_coef=0.01, clip_vloss=True, norm_adv=True,
    )  # fmt: skip
    ratio, norm_adv = (new_lp - old_lp).exp(), (adv - adv.mean()) / (adv.std() + 1e-8)
    pg = (
        clipped_surrogate(ratio, norm_adv, 0.1)
        if objective == "clip"
        else kl_penalty_surrogate(ratio, norm_adv, kl, 2.0)
    )
    expected = pg + 0.5 * value_loss(new_v, old_v, ret, 0.1, True) - 0.01 * entropy.mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(stats) == {
        "policy_loss",
        "value_loss",
        "entropy",
        "kl",
        "approx_kl",
        "old_approx_kl",
        "clipfrac",
    }
    assert stats["kl"].item() == pytest.approx(kl.mean().item())
