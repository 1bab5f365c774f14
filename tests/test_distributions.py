"""The distribution functions against torch.distributions, and the analytic KLs."""

from __future__ import annotations

import torch
from torch.distributions import Categorical, Normal, kl_divergence

from common.distributions import (
    categorical_entropy,
    categorical_kl,
    categorical_log_prob,
    gaussian_entropy,
    gaussian_kl,
    gaussian_log_prob,
    sample_categorical,
)


def test_gaussian_functions_match_torch():
    g = torch.Generator().manual_seed(0)
    mean, log_std, actions = (torch.randn(16, 3, generator=g) for _ in range(3))
    dist = Normal(mean, log_std.exp())
    assert torch.allclose(
        gaussian_log_prob(actions, mean, log_std), dist.log_prob(actions).sum(-1), atol=1e-5
    )
    assert torch.allclose(gaussian_entropy(log_std), dist.entropy().sum(-1), atol=1e-5)
    mean2, log_std2 = torch.randn(16, 3, generator=g), torch.randn(16, 3, generator=g)
    expected = kl_divergence(dist, Normal(mean2, log_std2.exp())).sum(-1)
    assert torch.allclose(gaussian_kl(mean, log_std, mean2, log_std2), expected, atol=1e-5)


def test_gaussian_kl_is_zero_for_equal_and_positive_for_different():
    mean, log_std = torch.randn(10, 2), torch.randn(10, 2)
    assert torch.allclose(gaussian_kl(mean, log_std, mean, log_std), torch.zeros(10), atol=1e-6)
    assert torch.all(gaussian_kl(mean, log_std, mean + 0.1, log_std) > 0)


def test_categorical_functions_match_torch():
    g = torch.Generator().manual_seed(1)
    logits, new_logits = torch.randn(32, 6, generator=g), torch.randn(32, 6, generator=g)
    actions = torch.randint(0, 6, (32,), generator=g)
    dist = Categorical(logits=logits)
    assert torch.allclose(categorical_log_prob(logits, actions), dist.log_prob(actions), atol=1e-6)
    assert torch.allclose(categorical_entropy(logits), dist.entropy(), atol=1e-6)
    expected = kl_divergence(dist, Categorical(logits=new_logits))
    assert torch.allclose(categorical_kl(logits, new_logits), expected, atol=1e-6)


def test_categorical_kl_zero_for_equal_and_shift_invariant():
    logits = torch.randn(8, 4)
    assert torch.allclose(categorical_kl(logits, logits), torch.zeros(8), atol=1e-6)
    assert torch.allclose(categorical_kl(logits, logits + 3.0), torch.zeros(8), atol=1e-6)
    assert torch.all(categorical_kl(logits, logits * 2.0) > 0)


def test_sample_categorical_follows_the_softmax():
    torch.manual_seed(0)
    logits = torch.tensor([0.0, 1.0, -1.0, 2.0])
    samples = sample_categorical(logits.expand(200_000, 4))
    frequencies = torch.bincount(samples, minlength=4).float() / samples.numel()
    assert torch.allclose(frequencies, torch.softmax(logits, -1), atol=0.01)
