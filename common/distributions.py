"""The two policy distributions, as plain tensor functions of their parameters.

Storing a rollout's distribution parameters (logits, or mean and log-std) lets the KL-penalty
objectives compute KL[pi_old || pi] exactly (PPO paper, eq. 8) instead of estimating it.
"""

from __future__ import annotations

import math

import torch

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def gaussian_log_prob(
    actions: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor
) -> torch.Tensor:
    """log pi(a|s) of a diagonal Gaussian, summed over action dimensions."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - _LOG_SQRT_2PI).sum(-1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """Entropy of a diagonal Gaussian, summed over action dimensions (independent of the mean)."""
    return (log_std + 0.5 + _LOG_SQRT_2PI).sum(-1)


def gaussian_kl(
    old_mean: torch.Tensor, old_log_std: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor
) -> torch.Tensor:
    """KL[N(old) || N(new)] per sample, summed over action dimensions."""
    old_var = torch.exp(2.0 * old_log_std)
    var = torch.exp(2.0 * log_std)
    kl = log_std - old_log_std + (old_var + (old_mean - mean).pow(2)) / (2.0 * var) - 0.5
    return kl.sum(-1)


def categorical_log_prob(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log pi(a|s) of a categorical policy given unnormalised logits."""
    log_p = torch.log_softmax(logits, dim=-1)
    return log_p.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of a categorical policy given unnormalised logits."""
    log_p = torch.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(-1)


def categorical_kl(old_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL[Cat(old) || Cat(new)] per sample."""
    old_log_p = torch.log_softmax(old_logits, dim=-1)
    log_p = torch.log_softmax(logits, dim=-1)
    return (old_log_p.exp() * (old_log_p - log_p)).sum(-1)


def sample_categorical(logits: torch.Tensor) -> torch.Tensor:
    """One action per row, by the Gumbel-max trick (cheaper than building a Categorical)."""
    gumbel = -torch.log(-torch.log(torch.rand_like(logits).clamp_(1e-20, 1.0)))
    return torch.argmax(logits + gumbel, dim=-1)
