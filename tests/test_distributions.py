"""The distribution functions against torch.distributions, and the analytic KLs."""

from __future__ import annotations

import pytest
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


@pytest.mark.parametrize("shape", [(16, 3), (5, 7, 1), (1, 6)])
def test_gaussian_log_prob_and_entropy_match_torch(shape):
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(shape, generator=g, dtype=torch.float64) * 2.0
    log_std = torch.randn(shape, generator=g, dtype=torch.float64)
    actions = torch.randn(shape, generator=g, dtype=torch.float64) * 3.0
    dist = Normal(mean, log_std.exp())
    log_prob = gaussian_log_prob(actions, mean, log_std)
    entropy = gaussian_entropy(log_std)
    assert log_prob.shape == shape[:-1] and entropy.shape == shape[:-1]
    assert torch.allclose(log_prob, dist.log_prob(actions).sum(-1), rtol=1e-10, atol=1e-10)
    assert torch.allclose(entropy, dist.entropy().sum(-1), rtol=1e-10, atol=1e-10)


def test_gaussian_log_prob_gradients_match_torch():
    g = torch.Generator().manual_seed(1)
    mean = torch.randn(8, 2, generator=g, dtype=torch.float64).requires_grad_(True)
    log_std = torch.randn(8, 2, generator=g, dtype=torch.float64).requires_grad_(True)
    actions = torch.randn(8, 2, generator=g, dtype=torch.float64)
    ours = torch.autograd.grad(gaussian_log_prob(actions, mean, log_std).sum(), (mean, log_std))
    ref = Normal(mean, log_std.exp()).log_prob(actions).sum()
    theirs = torch.autograd.grad(ref, (mean, log_std))
    for a, b in zip(ours, theirs, strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gaussian_kl_matches_torch(seed):
    g = torch.Generator().manual_seed(seed)
    old_mean, old_log_std, mean, log_std = (
        torch.randn(16, 3, generator=g, dtype=torch.float64) for _ in range(4)
    )
    expected = kl_divergence(Normal(old_mean, old_log_std.exp()), Normal(mean, log_std.exp()))
    ours = gaussian_kl(old_mean, old_log_std, mean, log_std)
    assert ours.shape == (16,)
    assert torch.allclose(ours, expected.sum(-1), rtol=1e-10, atol=1e-10)
    # KL is not symmetric: the argument order matters and must be old || new.
    reverse = gaussian_kl(mean, log_std, old_mean, old_log_std)
    assert not torch.allclose(ours, reverse)


def test_gaussian_kl_is_zero_for_equal_and_positive_for_different():
    g = torch.Generator().manual_seed(3)
    mean, log_std = torch.randn(10, 2, generator=g), torch.randn(10, 2, generator=g)
    assert torch.allclose(gaussian_kl(mean, log_std, mean, log_std), torch.zeros(10), atol=1e-6)
    assert torch.all(gaussian_kl(mean, log_std, mean + 0.1, log_std) > 0)
    assert torch.all(gaussian_kl(mean, log_std, mean, log_std - 0.1) > 0)
    assert torch.all(gaussian_kl(mean, log_std, mean, log_std + 0.1) > 0)


def test_gaussian_kl_by_hand():
    # KL[N(0, 1) || N(1, 2)] = log 2 + (1 + 1) / (2 * 4) - 1/2 = log 2 - 1/4 in one dimension;
    # two identical dimensions sum to twice that.
    old_mean, old_log_std = torch.zeros(1, 2), torch.zeros(1, 2)
    mean, log_std = torch.ones(1, 2), torch.full((1, 2), torch.log(torch.tensor(2.0)).item())
    expected = 2 * (torch.log(torch.tensor(2.0)).item() - 0.25)
    assert gaussian_kl(old_mean, old_log_std, mean, log_std).item() == pytest.approx(expected)


@pytest.mark.parametrize("shape", [(32, 6), (4, 5, 3), (1, 2)])
def test_categorical_functions_match_torch(shape):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(shape, generator=g, dtype=torch.float64) * 2.0
    new_logits = torch.randn(shape, generator=g, dtype=torch.float64) * 2.0
    actions = torch.randint(0, shape[-1], shape[:-1], generator=g)
    dist = Categorical(logits=logits)
    log_prob = categorical_log_prob(logits, actions)
    assert log_prob.shape == shape[:-1]
    assert torch.allclose(log_prob, dist.log_prob(actions), rtol=1e-10, atol=1e-10)
    assert torch.allclose(categorical_entropy(logits), dist.entropy(), rtol=1e-10, atol=1e-10)
    expected = kl_divergence(dist, Categorical(logits=new_logits))
    ours = categorical_kl(logits, new_logits)
    assert torch.allclose(ours, expected, rtol=1e-10, atol=1e-10)
    assert not torch.allclose(ours, categorical_kl(new_logits, logits))  # old || new, not reversed


def test_categorical_log_prob_accepts_float_actions():
    # Rollout storage may hold actions as floats; they index the same categories.
    logits = torch.randn(6, 4)
    actions = torch.tensor([0, 3, 1, 2, 2, 0])
    assert torch.equal(
        categorical_log_prob(logits, actions.float()), categorical_log_prob(logits, actions)
    )


def test_categorical_kl_zero_for_equal_and_shift_invariant():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(8, 4, generator=g, dtype=torch.float64)
    other = torch.randn(8, 4, generator=g, dtype=torch.float64)
    assert torch.allclose(categorical_kl(logits, logits), torch.zeros(8, dtype=torch.float64))
    # Adding a constant (per row, or one for all) to the logits leaves the distribution alone.
    shift = torch.randn(8, 1, generator=g, dtype=torch.float64) * 10.0
    assert torch.allclose(categorical_kl(logits, logits + shift), torch.zeros(8).double())
    kl = categorical_kl(logits, other)
    assert torch.all(kl > 0)
    assert torch.allclose(categorical_kl(logits + 3.0, other), kl, rtol=1e-10, atol=1e-12)
    assert torch.allclose(categorical_kl(logits, other - 5.0), kl, rtol=1e-10, atol=1e-12)
    assert torch.allclose(categorical_kl(logits + shift, other + 2 * shift), kl, atol=1e-10)
    # Entropy and log-probs are shift-invariant too.
    assert torch.allclose(categorical_entropy(logits + shift), categorical_entropy(logits))


def test_sample_categorical_follows_the_softmax():
    torch.manual_seed(0)
    logits = torch.tensor([0.0, 1.0, -1.0, 2.0, 0.5])
    samples = sample_categorical(logits.expand(200_000, 5))
    assert samples.shape == (200_000,)
    frequencies = torch.bincount(samples, minlength=5).double() / samples.numel()
    assert torch.allclose(frequencies, torch.softmax(logits.double(), -1), rtol=0, atol=0.01)


def test_sample_categorical_samples_each_row_from_its_own_logits():
    torch.manual_seed(1)
    # Near-deterministic rows, each peaked on a different action.
    peaks = torch.tensor([3, 0, 2, 1, 3, 2])
    logits = torch.full((6, 4), -30.0)
    logits[torch.arange(6), peaks] = 30.0
    for _ in range(20):
        assert torch.equal(sample_categorical(logits), peaks)
    # Batched (T, N, A) logits give (T, N) actions.
    assert sample_categorical(torch.zeros(3, 5, 4)).shape == (3, 5)
