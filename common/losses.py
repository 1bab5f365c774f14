"""The full PPO minibatch loss (PPO paper, eq. 9) and the diagnostics logged beside it."""

from __future__ import annotations

import torch

from common.objectives import Objective, policy_loss


# --8<-- [start:normalize_advantages]
def normalize_advantages(advantages: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero-mean, unit-std advantages within a minibatch (ppo2 and CleanRL do this; the paper is silent)."""
    return (advantages - advantages.mean()) / (advantages.std() + eps)
    # --8<-- [end:normalize_advantages]


# --8<-- [start:value_loss]
def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    clip_coef: float,
    clip_vloss: bool,
) -> torch.Tensor:
    """L^VF = 0.5 E[(V(s_t) - R_t)^2] (eq. 9), optionally clipped around the rollout's values as in ppo2.

    The 0.5 follows ppo2 and CleanRL, so ``--vf-coef 0.5`` means what it means there.
    """
    unclipped = (values - returns).pow(2)
    if not clip_vloss:
        return 0.5 * unclipped.mean()
    clipped_values = old_values + torch.clamp(values - old_values, -clip_coef, clip_coef)
    clipped = (clipped_values - returns).pow(2)
    return 0.5 * torch.max(unclipped, clipped).mean()
    # --8<-- [end:value_loss]


# --8<-- [start:ppo_loss]
def ppo_loss(
    *,
    new_log_prob: torch.Tensor,
    entropy: torch.Tensor,
    new_values: torch.Tensor,
    kl: torch.Tensor,
    old_log_prob: torch.Tensor,
    old_values: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    objective: Objective,
    clip_coef: float,
    kl_beta: float,
    vf_coef: float,
    ent_coef: float,
    clip_vloss: bool,
    norm_adv: bool,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 9, L = -L^policy + c1 L^VF - c2 S[pi], for one minibatch; returns (loss, diagnostics).

    ``kl`` is the analytic KL[pi_old || pi] per sample, used by the KL-penalty objectives and logged
    for all. The ratio r_t = pi(a_t|s_t) / pi_old(a_t|s_t) is formed in log space for stability.
    """
    log_ratio = new_log_prob - old_log_prob
    ratio = log_ratio.exp()
    if norm_adv:
        advantages = normalize_advantages(advantages)
    pg_loss = policy_loss(objective, ratio, advantages, kl, clip_coef, kl_beta)
    v_loss = value_loss(new_values, old_values, returns, clip_coef, clip_vloss)
    entropy_mean = entropy.mean()
    loss = pg_loss + vf_coef * v_loss - ent_coef * entropy_mean
    with torch.no_grad():
        stats = {
            "policy_loss": pg_loss.detach(),
            "value_loss": v_loss.detach(),
            "entropy": entropy_mean.detach(),
            "kl": kl.mean(),
            **approx_kl(log_ratio, ratio),
            "clipfrac": clip_fraction(ratio, clip_coef),
        }
    return loss, stats
    # --8<-- [end:ppo_loss]


def approx_kl(log_ratio: torch.Tensor, ratio: torch.Tensor) -> dict[str, torch.Tensor]:
    """Sample estimates of KL[pi_old || pi] from the log-ratio (Schulman's k1 and k3 estimators).

    k1 = E[-log r] is unbiased but noisy and can go negative; k3 = E[(r - 1) - log r] is unbiased
    and never negative. CleanRL logs k1 as ``old_approx_kl`` and k3 as ``approx_kl``.
    """
    return {"old_approx_kl": (-log_ratio).mean(), "approx_kl": ((ratio - 1.0) - log_ratio).mean()}


def clip_fraction(ratio: torch.Tensor, clip_coef: float) -> torch.Tensor:
    """Share of samples whose ratio left [1 - eps, 1 + eps], i.e. where the clip in eq. 7 can bite."""
    return ((ratio - 1.0).abs() > clip_coef).float().mean()


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """1 - Var[target - predicted] / Var[target]: 1 is a perfect critic, 0 no better than a constant."""
    var_target = target.var()
    if var_target == 0:
        return float("nan")
    return float(1.0 - (target - predicted).var() / var_target)


# --8<-- [start:linear_anneal]
def linear_anneal(
    initial: float, iteration: int, num_iterations: int, anchor: tuple[int, float] = (1, 1.0)
) -> float:
    """``initial * alpha`` with alpha falling linearly from 1 at iteration 1 to 1/N at iteration N.

    This is the paper's alpha schedule for the Atari step size and clip range (Table 5), and
    CleanRL's ``--anneal-lr``; ``iteration`` counts from 1. A run resumed with another N passes
    the ``anchor`` its checkpoint continues from (``anneal_fraction``).
    """
    return initial * anneal_fraction(iteration, num_iterations, anchor)
    # --8<-- [end:linear_anneal]


def anneal_fraction(
    iteration: int, num_iterations: int, anchor: tuple[int, float] = (1, 1.0)
) -> float:
    """alpha on the straight line from ``anchor`` = (iteration k, alpha_k) to 0 at iteration N + 1.

    The default anchor (1, 1) gives the paper's alpha = 1 - (iteration - 1) / N: 1 at iteration 1,
    1/N at iteration N. A resume with another N anchors the line at the last iteration done.
    """
    k, alpha_k = anchor
    return alpha_k * (num_iterations + 1.0 - iteration) / (num_iterations + 1.0 - k)
