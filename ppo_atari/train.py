"""PPO for Atari, in one file that reads like the paper.

    python ppo_atari/train.py --env-id BreakoutNoFrameskip-v4

Schulman et al. 2017, "Proximal Policy Optimization Algorithms" (arXiv 1707.06347), Algorithm 1 with
the Atari settings of its Table 5 as openai/baselines ppo2 and CleanRL run them. The envs (ale-py's
native C++ vector env by default) are in ``envs.py`` beside this file; the pieces both trainers share
(GAE, the surrogates, the losses, tracking, checkpoints) live in ``common/``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
from torch import nn

from common.algorithms import (
    A2C_ATARI,
    AtariAlgorithm,
    OptimizerName,
    make_optimizer,
    with_algorithm_defaults,
)
from common.args import RunArgs
from common.cli import flags_on_command_line, parse_args
from common.distributions import (
    categorical_entropy,
    categorical_kl,
    categorical_log_prob,
    sample_categorical,
)
from common.divergence import gradient_step
from common.gae import advantages_and_returns
from common.losses import (
    LossConfig,
    LossLog,
    NewPolicy,
    OldPolicy,
    explained_variance,
    minibatches,
    normalize_advantages,
    ppo_loss,
)
from common.objectives import Objective, adapt_kl_beta
from common.run import Run
from common.runtime import layer_init, pick_precision
from common.schedules import linear_anneal
from common.scores import human_normalized_score
from common.validation import check_command_line
from ppo_atari.envs import GameTracker, atari_spec, make_atari_envs, require_atari_id


@dataclass
class Args(RunArgs):
    """Every flag of this trainer; the experiment, tracking and checkpoint ones are shared (common/args.py)."""

    exp_name: str = "ppo_atari"
    """the name of this experiment, part of the run name"""
    save_every: int = 100
    """save a checkpoint every this many iterations (and at the end); 0 saves only at the end"""
    precision: Literal["fp32", "bf16", "auto"] = "auto"
    """auto: bf16 autocast for the network where the device has bf16 in hardware (avx512_bf16, AMX,
    a bf16 GPU), fp32 elsewhere; losses stay fp32. Returns at equal steps match fp32's within noise
    (docs/benchmarks/atari_learning.md); fp32 or bf16 forces one"""

    # Environment
    env_id: str = "BreakoutNoFrameskip-v4"
    """an ale-py Atari id: <Game>NoFrameskip-v4 (the paper's settings) or ALE/<Game>-v5 (sticky actions)"""
    env_backend: Literal["ale_vector", "gymnasium"] = "ale_vector"
    """ale-py's native C++ vector env (fast), or gymnasium's vector envs with its Atari wrappers"""
    fire_on_life_loss: bool | None = None
    """after a lost life take a no-op, FIRE and action 2 before the next observation, as the paper's
    wrappers did (baselines' EpisodicLifeEnv + FireResetEnv); default: on for NoFrameskip-v4 ids, off
    for ALE/*-v5 (their own semantics)"""
    async_envs: bool = True
    """with --env-backend gymnasium: one process per env (AsyncVectorEnv) rather than one loop"""

    # Algorithm (defaults: CleanRL's ppo_atari.py and ppo2; the paper's Table 5 differs, see README)
    total_timesteps: int = 10_000_000
    """total environment steps (agent steps; 4 frames each)"""
    learning_rate: float = 2.5e-4
    """Adam step size"""
    num_envs: int = 8
    """parallel environments (the paper's 8 actors)"""
    num_steps: int = 128
    """steps per environment per rollout (the horizon T)"""
    anneal_lr: bool = True
    """anneal the step size linearly to 0 (the paper's alpha)"""
    anneal_clip: bool = False
    """anneal the clip range linearly to 0 too, as the paper's Table 5 does (ppo2 and CleanRL don't)"""
    gamma: float = 0.99
    """discount factor gamma"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    num_minibatches: int = 4
    """minibatches per epoch (8 x 128 / 4 = the paper's minibatch of 32 x 8)"""
    update_epochs: int = 4
    """epochs K over each batch (the paper uses 3)"""
    norm_adv: bool = True
    """normalise advantages within each minibatch"""
    algorithm: AtariAlgorithm = "ppo"
    """ppo, or a2c: baselines' A2C as this trainer's configuration (one epoch of one minibatch,
    RMSprop, short rollouts; common/algorithms.py), for every flag not given"""
    optimizer: OptimizerName = "adam"
    """adam (PPO's) or rmsprop (A2C's); both with epsilon 1e-5"""
    rmsprop_alpha: float = 0.99
    """RMSprop's smoothing constant (with --optimizer rmsprop)"""
    objective: Objective = "clip"
    """policy surrogate: clip (eq. 7), adaptive_kl or fixed_kl (eq. 8), none (eq. 6)"""
    clip_coef: float = 0.1
    """surrogate clipping epsilon (also the value clipping range)"""
    kl_beta: float = 1.0
    """KL penalty coefficient beta; the initial value for adaptive_kl (the paper starts at 1)"""
    kl_target: float = 0.01
    """d_targ of the adaptive KL penalty"""
    clip_vloss: bool = True
    """clip the value loss around the rollout's values, as ppo2 does"""
    ent_coef: float = 0.01
    """entropy coefficient c2"""
    vf_coef: float = 0.5
    """value-function coefficient c1 on 0.5 * squared error (the paper's c1 = 1 on the plain error is 2 here)"""
    max_grad_norm: float = 0.5
    """global gradient-norm clip"""
    target_kl: float | None = None
    """stop the epochs early when approx_kl exceeds this (CleanRL's option; off by default)"""
    bootstrap_truncated: bool = False
    """bootstrap the 108,000-frame cap from V(final obs); off, as in the paper and ppo2"""


def validate(args: Args) -> None:
    """Refuse bad input before any work starts (one line, exit code 2); every flag's range is
    checked in ``common/validation.py``, this adds the env id's."""
    check_command_line(args)
    if args.resume is None:
        require_atari_id(args.env_id)


class Agent(nn.Module):
    """The Nature CNN (Mnih et al. 2015) trunk shared by a policy head and a value head."""

    def __init__(self, num_actions: int) -> None:
        super().__init__()
        self.network = nn.Sequential(
            layer_init(nn.Conv2d(4, 32, 8, stride=4)), nn.ReLU(),
            layer_init(nn.Conv2d(32, 64, 4, stride=2)), nn.ReLU(),
            layer_init(nn.Conv2d(64, 64, 3, stride=1)), nn.ReLU(),
            nn.Flatten(),
            layer_init(nn.Linear(64 * 7 * 7, 512)), nn.ReLU(),
        )  # fmt: skip
        self.actor = layer_init(nn.Linear(512, num_actions), std=0.01)
        self.critic = layer_init(nn.Linear(512, 1), std=1.0)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 frames (B, 4, 84, 84) -> policy logits (B, A) and values (B,), both fp32."""
        # channels_last lets oneDNN pick its fastest convolutions on CPU (1.6x on the update);
        # reordering the uint8 frames before the float cast moves a quarter of the bytes.
        x = obs.contiguous(memory_format=torch.channels_last).float().div_(255.0)
        hidden = self.network(x)
        return self.actor(hidden).float(), self.critic(hidden).squeeze(-1).float()


def main(args: Args, given_flags: Collection[str] = ()) -> None:
    args = resolve(args, given_flags)  # a direct call (tests, notebooks) resolves as the CLI does
    with Run(args, "ppo_atari", given_flags, summary_extra) as run:
        args, device = run.args, run.device  # a resumed run goes on with its saved flags
        # auto is decided once, here: the checkpoint and summary keep what this run computes in.
        run.args = args = replace(args, precision=pick_precision(args.precision, device))
        envs = make_atari_envs(
            atari_spec(args.env_id), args.num_envs, args.env_backend, args.seed, args.async_envs,
            run.video_folder, fire_on_life_loss=args.fire_on_life_loss,
        )  # fmt: skip
        agent = Agent(int(envs.single_action_space.n)).to(device)
        agent = agent.to(memory_format=torch.channels_last)
        optimizer = make_optimizer(
            args.optimizer, agent.parameters(), args.learning_rate, args.rmsprop_alpha, foreach=True
        )
        run.start(agent, optimizer, envs)
        train(args, run, envs, agent, optimizer)


def summary_extra(args: Args, scores: dict) -> dict:
    """What summary.json adds for Atari: the backend, the precision and human-normalised scores."""
    return {
        "env_backend": args.env_backend,
        "fire_on_life_loss": atari_spec(args.env_id).fire_on_life_loss(args.fire_on_life_loss),
        "precision": args.precision,
        "human_normalized_last_100": human_normalized_score(args.env_id, scores["mean_return_last_100"]),
        "human_normalized_all_training": human_normalized_score(args.env_id, scores["mean_return_all_training"]),
    }  # fmt: skip


def train(args: Args, run: Run, envs, agent: Agent, optimizer: torch.optim.Optimizer) -> None:
    """Algorithm 1: rollouts, GAE and K epochs of minibatch Adam, one iteration at a time."""
    device, state = run.device, run.state
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if args.precision == "bf16"
        else contextlib.nullcontext()
    )
    num_actions = int(envs.single_action_space.n)
    loss_config = LossConfig.from_args(args)

    # Rollout storage: (T, N, ...) tensors reused every iteration; frames stay uint8.
    shape = (args.num_steps, args.num_envs)
    obs = torch.zeros(shape + envs.single_observation_space.shape, dtype=torch.uint8, device=device)
    actions = torch.zeros(shape, dtype=torch.long, device=device)
    logits = torch.zeros(shape + (num_actions,), device=device)  # pi_old, for the analytic KL
    log_probs = torch.zeros(shape, device=device)
    rewards = torch.zeros(shape, device=device)
    values = torch.zeros(shape, device=device)
    terminations = torch.zeros(shape, dtype=torch.bool, device=device)
    truncations = torch.zeros_like(terminations)
    final_values = torch.zeros(shape, device=device)  # V(final obs) of truncated games

    games = GameTracker(args.num_envs)
    next_obs_np, info = envs.reset(seed=run.env_seed + state.iteration)
    games.reset(info)
    next_obs = torch.as_tensor(next_obs_np, device=device)
    # On a CPU, inference at batch num_envs gains nothing from more threads, and idle torch threads
    # spin against the emulator's: the rollout uses one, the update all of them.
    update_threads = torch.get_num_threads()
    rollout_threads = 1 if device.type == "cpu" else update_threads
    for iteration in run.iterations():
        # --8<-- [start:anneal]
        lr = (
            linear_anneal(args.learning_rate, iteration, run.num_iterations, state.anneal_anchor)
            if args.anneal_lr
            else args.learning_rate
        )
        optimizer.param_groups[0]["lr"] = lr
        clip_coef = (
            linear_anneal(args.clip_coef, iteration, run.num_iterations, state.anneal_anchor)
            if args.anneal_clip
            else args.clip_coef
        )
        # --8<-- [end:anneal]

        # 1. Run the policy pi_old for T steps in each of the N envs (Algorithm 1).
        torch.set_num_threads(rollout_threads)
        for step in range(args.num_steps):
            state.global_step += run.total_envs  # every rank's envs step together
            obs[step] = next_obs
            with torch.inference_mode(), autocast:
                step_logits, values[step] = agent(next_obs)
                actions[step] = sample_categorical(step_logits)
                log_probs[step] = categorical_log_prob(step_logits, actions[step])
            logits[step] = step_logits
            next_obs_np, reward, terminated, truncated, info = envs.step(
                actions[step].cpu().numpy()
            )
            clipped_reward, value_terminal, finished = games.step(
                reward, terminated, truncated, info
            )
            rewards[step] = torch.as_tensor(clipped_reward, device=device)
            terminations[step] = torch.as_tensor(value_terminal, device=device)
            truncations[step] = torch.as_tensor(truncated, device=device)
            next_obs = torch.as_tensor(next_obs_np, device=device)
            if args.bootstrap_truncated and truncated.any():
                final_obs = torch.as_tensor(np.stack(info["final_obs"][truncated]), device=device)
                with torch.inference_mode(), autocast:
                    final_values[step, truncated] = agent(final_obs)[1]
            for _env, game_return, game_length in finished:
                run.log_episode(game_return, game_length)

        rollout_seconds = run.seconds_into_iteration
        torch.set_num_threads(update_threads)

        # 2. Advantages by GAE (eqs. 11-12) and value targets R_t = A_t + V(s_t).
        with torch.inference_mode(), autocast:
            last_value = agent(next_obs)[1]
        advantages, returns = advantages_and_returns(
            rewards, values, last_value, terminations, truncations,
            final_values if args.bootstrap_truncated else None, args.gamma, args.gae_lambda,
        )  # fmt: skip
        b_obs, b_actions, b_logits = obs.flatten(0, 1), actions.flatten(), logits.flatten(0, 1)
        b_advantages, b_values = advantages.flatten(), values.flatten()
        old = OldPolicy(log_probs.flatten(), b_values, returns.flatten())

        # 3. Optimise the surrogate (eq. 9) for K epochs of minibatch Adam.
        losses = LossLog()
        for mb in minibatches(run.batch_size, args.num_minibatches, args.update_epochs, device,
                              losses, args.target_kl, run.world):  # fmt: skip
            with autocast:
                new_logits, new_values = agent(b_obs[mb])
            mb_advantages = b_advantages[mb]
            # per minibatch (all ranks'), as ppo2 and CleanRL (the paper is silent)
            if args.norm_adv:
                mb_advantages = normalize_advantages(mb_advantages, world=run.world)
            new = NewPolicy(categorical_log_prob(new_logits, b_actions[mb]),
                            categorical_entropy(new_logits), new_values)  # fmt: skip
            loss, mb_stats = ppo_loss(
                loss_config, old[mb], new, mb_advantages, categorical_kl(b_logits[mb], new_logits),
                clip_coef=clip_coef, kl_beta=state.kl_beta,
            )  # fmt: skip
            # backward, the mean gradient over the ranks, clip its norm, Adam; Diverged (and no
            # step) if not finite
            gradient_step(optimizer, loss, agent.parameters(), args.max_grad_norm, state.global_step,
                          run.world)  # fmt: skip
            losses.add(mb_stats)

        # 4. Adaptive KL penalty: compare d = KL[pi_old || pi] over the batch with d_targ (section 4).
        if args.objective == "adaptive_kl":
            with torch.inference_mode(), autocast:
                batch_kl = categorical_kl(b_logits, agent(b_obs)[0]).mean().item()
            batch_kl = run.world.mean(batch_kl)  # over every rank's batch: all keep one beta
            state.kl_beta = adapt_kl_beta(state.kl_beta, batch_kl, args.kl_target)

        # 5. Logging, with CleanRL's metric names.
        run.log_iteration({
            "charts/learning_rate": lr,
            "charts/clip_coef": clip_coef,
            "charts/rollout_seconds": rollout_seconds,
            **losses.means(),
            "losses/explained_variance": explained_variance(b_values, old.returns),
            "losses/kl_beta": state.kl_beta,
        })  # fmt: skip


def resolve(args: Args, given_flags: Collection[str] = ()) -> Args:
    """The values ``--algorithm`` implies for the flags not given."""
    return with_algorithm_defaults(args, {"a2c": A2C_ATARI}, given_flags)


if __name__ == "__main__":
    main(parse_args(Args, validate, resolve=resolve), flags_on_command_line())
