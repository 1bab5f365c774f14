"""Algorithms that are configurations of the PPO trainers rather than trainers of their own.

A2C (Mnih et al. 2016) is PPO with one epoch over one minibatch that is the whole batch (Huang et
al. 2022, "A2C is a special case of PPO", arXiv 2205.09123): the loss is taken before the policy
moves, so the ratio r_t = pi(a_t|s_t) / pi_old(a_t|s_t) is exactly 1, the clipped surrogate's
gradient is E[A_t grad log pi(a_t|s_t)] (A2C's policy gradient) and the clip never binds. With
RMSprop, no advantage normalisation, no value clipping, GAE's lambda at 1 (n-step returns) and short
rollouts, it is openai/baselines' A2C. ``--algorithm a2c`` sets those values for every flag not
given on the command line; a flag given explicitly keeps its value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable
from typing import Any, Literal

import torch

from common.objectives import adapt_kl_beta

Algorithm = Literal["ppo", "a2c", "vpg"]  # the continuous trainer's
AtariAlgorithm = Literal["ppo", "a2c"]
OptimizerName = Literal["adam", "rmsprop"]

# --8<-- [start:a2c_settings]
# openai/baselines' A2C for Atari (baselines/a2c/a2c.py ``learn`` and ``run_atari``): 16 envs x 5
# steps, lr 7e-4 annealed linearly, RMSprop alpha 0.99 eps 1e-5, entropy 0.01, value 0.5, gradient
# clip 0.5, gamma 0.99, n-step returns (lambda 1).
A2C_ATARI: dict[str, Any] = {
    "exp_name": "a2c_atari", "num_envs": 16, "num_steps": 5, "learning_rate": 7e-4,
    "anneal_lr": True, "optimizer": "rmsprop", "rmsprop_alpha": 0.99, "ent_coef": 0.01,
    "vf_coef": 0.5, "max_grad_norm": 0.5, "gamma": 0.99, "gae_lambda": 1.0, "update_epochs": 1,
    "num_minibatches": 1, "norm_adv": False, "clip_vloss": False, "anneal_clip": False,
    "save_every": 1250,  # iterations of 80 steps: a checkpoint every 100k steps, as PPO's
    "log_every": 13,  # metrics about every 1,000 steps, as PPO's batches log
}  # fmt: skip

# Stable-Baselines3's A2C defaults (stable_baselines3/a2c/a2c.py): 5 steps, lr 7e-4 constant,
# RMSprop alpha 0.99 eps 1e-5, lambda 1, entropy 0, value 0.5, gradient clip 0.5, advantages not
# normalised; one env, as this trainer's default.
A2C_CONTINUOUS: dict[str, Any] = {
    "exp_name": "a2c_continuous", "num_envs": 1, "num_steps": 5, "learning_rate": 7e-4,
    "anneal_lr": False, "optimizer": "rmsprop", "rmsprop_alpha": 0.99, "ent_coef": 0.0,
    "vf_coef": 0.5, "max_grad_norm": 0.5, "gamma": 0.99, "gae_lambda": 1.0, "update_epochs": 1,
    "num_minibatches": 1, "norm_adv": False, "clip_vloss": False,
    "save_every": 20_000,  # iterations of 5 steps: a checkpoint every 100k steps
    "log_every": 200,  # metrics every 1,000 steps
}  # fmt: skip
# --8<-- [end:a2c_settings]


# Vanilla policy gradient with an adaptive step size, as the PPO paper's Figure 3 compares it: one
# gradient step of the policy-gradient loss (eq. 6's L^CPI, whose gradient at r = 1 is the policy
# gradient) per batch of 2,048 steps, with Adam's step size adapted after each batch so that
# KL[pi_old || pi] stays near 0.01 (``adapt_step_size``). The value function shares that one step.
VPG_CONTINUOUS: dict[str, Any] = {
    "exp_name": "vpg_continuous", "update_epochs": 1, "num_minibatches": 1, "objective": "none",
    "anneal_lr": False, "lr_kl_target": 0.01, "clip_vloss": False,
}  # fmt: skip


# --8<-- [start:adapt_step_size]
def adapt_step_size(learning_rate: float, mean_kl: float, kl_target: float) -> float:
    """The step size after a batch whose update moved the policy by ``mean_kl``: divided by 1.5
    when d > 2 d_targ, multiplied by 1.5 when d < d_targ / 2, else kept (modular_rl's rule, by
    the PPO paper's authors, for its "vanilla PG, adaptive" baseline)."""
    if mean_kl > 2.0 * kl_target:
        return learning_rate / 1.5
    if mean_kl < kl_target / 2.0:
        return learning_rate * 1.5
    return learning_rate
    # --8<-- [end:adapt_step_size]


def with_algorithm_defaults(
    args: Any, defaults: dict[str, dict[str, Any]], given_flags: Collection[str] = ()
) -> Any:
    """``args`` with the chosen algorithm's values for the flags not given.

    A flag counts as given when it is in ``given_flags`` (the command line) or, for a direct call,
    when its value differs from the dataclass default (``Args(algorithm="a2c", num_envs=8)``).
    """
    overrides = defaults.get(args.algorithm, {})
    plain = type(args)()
    changes = {
        name: value
        for name, value in overrides.items()
        if name not in given_flags and getattr(args, name) == getattr(plain, name)
    }
    return dataclasses.replace(args, **changes) if changes else args


def make_optimizer(
    name: OptimizerName,
    parameters: Iterable[torch.nn.Parameter],
    learning_rate: float,
    rmsprop_alpha: float,
    eps: float = 1e-5,
    **adam_options: Any,
) -> torch.optim.Optimizer:
    """Adam (PPO's) or RMSprop (A2C's), both with epsilon 1e-5 by default, as ppo2 and baselines'
    A2C use (the 2017 PPO code's Adam used 1e-8: ``--optimizer-eps``).

    PyTorch's RMSprop adds epsilon outside the square root, TensorFlow's (baselines') inside it;
    with epsilon 1e-5 the two differ only where the squared-gradient average is below about 1e-8.
    """
    if name == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=learning_rate, alpha=rmsprop_alpha, eps=eps)
    return torch.optim.Adam(parameters, lr=learning_rate, eps=eps, **adam_options)


def adapt_to_kl(args: Any, kl_beta: float, lr: float, batch_kl: float) -> tuple[float, float]:
    """After an update with d = KL[pi_old || pi] over the batch: the adaptive penalty's beta
    (section 4, ``--objective adaptive_kl``) and vanilla PG's step size (``--lr-kl-target``)."""
    if args.objective == "adaptive_kl":
        kl_beta = adapt_kl_beta(kl_beta, batch_kl, args.kl_target)
    if args.lr_kl_target is not None:
        lr = adapt_step_size(lr, batch_kl, args.lr_kl_target)
    return kl_beta, lr
