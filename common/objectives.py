"""The policy surrogates compared in the PPO paper (section 6.1, Table 1), as losses to minimise.

Each returns the negated objective averaged over the minibatch (the last axis, so a leading run
axis gives one loss per run), so ``loss.backward()`` ascends it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

Objective = Literal["clip", "adaptive_kl", "fixed_kl", "none"]
OBJECTIVES: tuple[str, ...] = ("clip", "adaptive_kl", "fixed_kl", "none")


# --8<-- [start:unclipped_surrogate]
def unclipped_surrogate(ratio: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """Eq. 6, L^CPI = E[r_t A_t]: the conservative policy iteration surrogate, no constraint."""
    return -(ratio * advantages).mean(-1)
    # --8<-- [end:unclipped_surrogate]


# --8<-- [start:clipped_surrogate]
def clipped_surrogate(
    ratio: torch.Tensor, advantages: torch.Tensor, clip_coef: float | torch.Tensor
) -> torch.Tensor:
    """Eq. 7, L^CLIP = E[min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t)] with eps = ``clip_coef``."""
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_coef, 1.0 + clip_coef) * advantages
    return -torch.min(unclipped, clipped).mean(-1)
    # --8<-- [end:clipped_surrogate]


# --8<-- [start:kl_penalty_surrogate]
def kl_penalty_surrogate(
    ratio: torch.Tensor, advantages: torch.Tensor, kl: torch.Tensor, kl_beta: float | torch.Tensor
) -> torch.Tensor:
    """Eq. 8, L^KLPEN = E[r_t A_t - beta KL[pi_old(.|s_t), pi(.|s_t)]]."""
    return -(ratio * advantages - kl_beta * kl).mean(-1)
    # --8<-- [end:kl_penalty_surrogate]


class PerRun:
    """One objective per run, for tensors with a leading run axis (the batched runner's group)."""

    def __init__(self, objectives: Sequence[Objective]) -> None:
        self.objectives = tuple(objectives)
        self.distinct = tuple(sorted(set(objectives)))
        self.index = torch.tensor([self.distinct.index(o) for o in objectives])

    def select(self, losses: list[torch.Tensor]) -> torch.Tensor:
        """Run r's entry of the loss of its own objective; ``losses`` follow ``distinct``."""
        return torch.stack(losses).gather(0, self.index.unsqueeze(0)).squeeze(0)


# --8<-- [start:policy_loss]
def policy_loss(
    objective: Objective | PerRun,
    ratio: torch.Tensor,
    advantages: torch.Tensor,
    kl: torch.Tensor,
    clip_coef: float | torch.Tensor,
    kl_beta: float | torch.Tensor,
) -> torch.Tensor:
    """The surrogate chosen by ``--objective``: clip (eq. 7), fixed_kl or adaptive_kl (eq. 8), none (eq. 6)."""
    if isinstance(objective, PerRun):  # each objective for every run, then each run's own
        args = ratio, advantages, kl, clip_coef, kl_beta
        return objective.select([policy_loss(o, *args) for o in objective.distinct])
    if objective == "clip":
        return clipped_surrogate(ratio, advantages, clip_coef)
    if objective in ("fixed_kl", "adaptive_kl"):
        return kl_penalty_surrogate(ratio, advantages, kl, kl_beta)
    if objective == "none":
        return unclipped_surrogate(ratio, advantages)
    raise ValueError(f"unknown objective {objective!r}; expected one of {OBJECTIVES}")
    # --8<-- [end:policy_loss]


# --8<-- [start:adapt_kl_beta]
def adapt_kl_beta(kl_beta: float, mean_kl: float, kl_target: float) -> float:
    """The paper's adaptive-penalty rule (section 4), applied once after each policy update.

    With d = mean KL[pi_old || pi] over the batch: d < d_targ / 1.5 halves beta,
    d > d_targ * 1.5 doubles it, and anything in between leaves it unchanged.
    """
    if mean_kl < kl_target / 1.5:
        return kl_beta / 2.0
    if mean_kl > kl_target * 1.5:
        return kl_beta * 2.0
    return kl_beta
    # --8<-- [end:adapt_kl_beta]
