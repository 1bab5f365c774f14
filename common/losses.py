"""The full PPO minibatch loss (PPO paper, eq. 9) and the diagnostics logged beside it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

import torch

from common.distributed import World
from common.distributions import gaussian_entropy, gaussian_log_prob
from common.objectives import Objective, PerRun, policy_loss

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11


# --8<-- [start:normalize_advantages]
def normalize_advantages(
    advantages: torch.Tensor, eps: float = 1e-8, world: World | None = None
) -> torch.Tensor:
    """Zero-mean, unit-std advantages within a minibatch (ppo2 and CleanRL do this; the paper is silent).

    The statistics are over the last axis: a leading run axis (the batched runner's) normalises
    each run's minibatch on its own. With several ranks (``world``) the minibatch is all ranks' minibatches together: the mean and
    the (unbiased) std are theirs, as one process holding all of them would compute them.
    """
    if world is None or not world.distributed:
        mean, std = advantages.mean(-1, keepdim=True), advantages.std(-1, keepdim=True)
        return (advantages - mean) / (std + eps)
    a = advantages.double()
    count, total, squares = world.sum_tensor(
        torch.stack([a.new_tensor(a.numel()), a.sum(), a.square().sum()])
    )
    mean = total / count
    std = ((squares - count * mean.square()) / (count - 1)).clamp_min(0).sqrt()
    return ((advantages - mean) / (std + eps)).to(advantages.dtype)
    # --8<-- [end:normalize_advantages]


# --8<-- [start:value_loss]
def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    clip_coef: float | torch.Tensor,
    clip_vloss: bool,
) -> torch.Tensor:
    """L^VF = 0.5 E[(V(s_t) - R_t)^2] (eq. 9), optionally clipped around the rollout's values as in ppo2.

    The 0.5 follows ppo2 and CleanRL, so ``--vf-coef 0.5`` means what it means there.
    """
    unclipped = (values - returns).pow(2)
    if not clip_vloss:
        return 0.5 * unclipped.mean(-1)
    clipped_values = old_values + torch.clamp(values - old_values, -clip_coef, clip_coef)
    clipped = (clipped_values - returns).pow(2)
    return 0.5 * torch.max(unclipped, clipped).mean(-1)
    # --8<-- [end:value_loss]


@dataclass(frozen=True)
class LossConfig:
    """What eq. 9 keeps fixed for a whole run: the surrogate, c1, c2 and value clipping."""

    objective: Objective | PerRun
    vf_coef: float
    ent_coef: float
    clip_vloss: bool

    @classmethod
    def from_args(cls, args: Any) -> LossConfig:
        return cls(args.objective, args.vf_coef, args.ent_coef, args.clip_vloss)


@dataclass(frozen=True)
class OldPolicy:
    """What the rollout fixed for each sample: log pi_old(a_t|s_t), V_old(s_t) and the target R_t."""

    log_probs: torch.Tensor
    values: torch.Tensor
    returns: torch.Tensor

    def __getitem__(self, index: torch.Tensor | slice) -> OldPolicy:
        return OldPolicy(self.log_probs[index], self.values[index], self.returns[index])


class NewPolicy(NamedTuple):
    """What pi_theta gives for a minibatch: log pi(a_t|s_t), the entropy and V(s_t), and for a
    Gaussian policy its mean and log-std (for the analytic KL). Named, so no two can be swapped."""

    log_probs: torch.Tensor
    entropy: torch.Tensor
    values: torch.Tensor
    means: torch.Tensor | None = None
    log_stds: torch.Tensor | None = None


# --8<-- [start:ppo_loss]
def ppo_loss(
    config: LossConfig,
    old: OldPolicy,
    new: NewPolicy,
    advantages: torch.Tensor,
    kl: torch.Tensor,
    clip_coef: float | torch.Tensor,
    kl_beta: float | torch.Tensor,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 9, L = -L^policy + c1 L^VF - c2 S[pi], for one minibatch; returns (loss, diagnostics).

    ``advantages`` are used as given (a trainer normalises them first if it wants to). ``kl`` is
    the analytic KL[pi_old || pi] per sample, used by the KL-penalty objectives and logged for all;
    ``clip_coef`` (epsilon) and ``kl_beta`` may change between iterations. The ratio
    r_t = pi(a_t|s_t) / pi_old(a_t|s_t) is formed in log space for stability. Every mean is over
    the last (sample) axis, so tensors with a leading run axis give one loss per run (then
    ``clip_coef`` and ``kl_beta`` are (R, 1) and ``config.objective`` one objective per run).
    """
    log_ratio = new.log_probs - old.log_probs
    ratio = log_ratio.exp()
    pg_loss = policy_loss(config.objective, ratio, advantages, kl, clip_coef, kl_beta)
    v_loss = value_loss(new.values, old.values, old.returns, clip_coef, config.clip_vloss)
    return combined_loss(
        pg_loss, v_loss, new.entropy, config.vf_coef, config.ent_coef, kl, log_ratio, ratio,
        clip_coef,
    )  # fmt: skip
    # --8<-- [end:ppo_loss]


def combined_loss(
    pg_loss: torch.Tensor,
    v_loss: torch.Tensor,
    entropy: torch.Tensor,
    vf_coef: float,
    ent_coef: float,
    kl: torch.Tensor,
    log_ratio: torch.Tensor,
    ratio: torch.Tensor,
    clip_coef: float | torch.Tensor,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 9's sum of its three terms, and the diagnostics CleanRL logs beside it (detached)."""
    entropy_mean = entropy.mean(-1)
    loss = pg_loss + vf_coef * v_loss - ent_coef * entropy_mean
    log_ratio, ratio = log_ratio.detach(), ratio.detach()
    stats = {
        "policy_loss": pg_loss.detach(),
        "value_loss": v_loss.detach(),
        "entropy": entropy_mean.detach(),
        "kl": kl.detach().mean(-1),
        **approx_kl(log_ratio, ratio),
        "clipfrac": clip_fraction(ratio, clip_coef),
    }
    return loss, stats


class LossLog:
    """The diagnostics of each minibatch of one update, averaged for logging."""

    def __init__(self) -> None:
        self.minibatches: list[dict[str, torch.Tensor]] = []

    def add(self, stats: dict[str, torch.Tensor]) -> None:
        self.minibatches.append(stats)

    def means(self) -> dict[str, Any]:
        """Each diagnostic's mean over the update, under CleanRL's ``losses/`` names: a float, or
        with a run axis (the batched runner's) a list of one per run."""
        names = self.minibatches[0]
        return {
            f"losses/{name}": torch.stack([s[name] for s in self.minibatches]).mean(0).tolist()
            for name in names
        }


class Indexable(Protocol):
    """A batch of samples, as ``shuffled_minibatches`` takes it (a tensor is one)."""

    @property
    def device(self) -> torch.device: ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: torch.Tensor | slice) -> Self: ...


BatchT = TypeVar("BatchT", bound=Indexable)


def shuffled_minibatches(
    batch: BatchT,
    num_minibatches: int,
    epochs: int,
    log: LossLog,
    target_kl: float | None = None,
    world: World | None = None,
    draw_order: Callable[[int], torch.Tensor] | None = None,
) -> Iterator[BatchT]:
    """K epochs of minibatch SGD (Algorithm 1): each epoch puts the batch in a new random order
    and hands out consecutive slices of it, so each sample is in one minibatch per epoch.

    One gather per tensor per epoch rather than one per minibatch: for a small network (64-sample
    minibatches) that is a share of the update. With ``target_kl`` (CleanRL's option), the epochs
    stop early after one whose last minibatch logged an ``approx_kl`` above it (its mean over the
    ranks, so all ranks stop together). ``draw_order(size)`` draws an epoch's order (default
    ``torch.randperm``; the batched runner draws one per run, a test injects its own).
    """
    size = len(batch)
    minibatch_size = size // num_minibatches
    for _epoch in range(epochs):
        order = draw_order(size) if draw_order else torch.randperm(size, device=batch.device)
        shuffled = batch[order]
        for start in range(0, size, minibatch_size):
            yield shuffled[start : start + minibatch_size]
        if target_kl is None:
            continue
        last_kl = log.minibatches[-1]["approx_kl"]
        if (world.mean(float(last_kl)) if world is not None else last_kl) > target_kl:
            return


def minibatches(
    batch_size: int,
    num_minibatches: int,
    epochs: int,
    device: torch.device,
    log: LossLog,
    target_kl: float | None = None,
    world: World | None = None,
) -> Iterator[torch.Tensor]:
    """``shuffled_minibatches``' sample indices, for a batch that is indexed minibatch by minibatch."""
    indices = torch.arange(batch_size, device=device)
    return shuffled_minibatches(indices, num_minibatches, epochs, log, target_kl, world)


def approx_kl(log_ratio: torch.Tensor, ratio: torch.Tensor) -> dict[str, torch.Tensor]:
    """Sample estimates of KL[pi_old || pi] from the log-ratio (Schulman's k1 and k3 estimators).

    k1 = E[-log r] is unbiased but noisy and can go negative; k3 = E[(r - 1) - log r] is unbiased
    and never negative. CleanRL logs k1 as ``old_approx_kl`` and k3 as ``approx_kl``.
    """
    return {
        "old_approx_kl": (-log_ratio).mean(-1),
        "approx_kl": ((ratio - 1.0) - log_ratio).mean(-1),
    }


def clip_fraction(ratio: torch.Tensor, clip_coef: float | torch.Tensor) -> torch.Tensor:
    """Share of samples whose ratio left [1 - eps, 1 + eps], i.e. where the clip in eq. 7 can bite."""
    return ((ratio - 1.0).abs() > clip_coef).float().mean(-1)


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """1 - Var[target - predicted] / Var[target]: 1 is a perfect critic, 0 no better than a constant."""
    var_target = target.var()
    if var_target == 0:
        return float("nan")
    return float(1.0 - (target - predicted).var() / var_target)


def gaussian_policy(
    actions: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor, values: torch.Tensor
) -> NewPolicy:
    """What eq. 9 needs of pi = N(mean, exp(log_std)) and V at a batch's samples."""
    log_prob = gaussian_log_prob(actions, mean, log_std)
    return NewPolicy(log_prob, gaussian_entropy(log_std), values, mean, log_std)


def iteration_metrics(lr: float, loss_means: dict, old: OldPolicy, kl_beta: float) -> dict:
    """An iteration's metrics under CleanRL's names, besides the timings ``Run`` adds."""
    return {
        "charts/learning_rate": lr,
        **loss_means,
        "losses/explained_variance": explained_variance(old.values, old.returns),
        "losses/kl_beta": kl_beta,
    }
