"""PPO for continuous control (MuJoCo through gymnasium), in one file that reads like the paper.

    python ppo_continuous/train.py --env-id HalfCheetah-v5

Schulman et al. 2017, "Proximal Policy Optimization Algorithms" (arXiv 1707.06347), Algorithm 1:
for each iteration, run the policy for T steps in N envs, compute advantages with GAE, then optimise
the surrogate for K epochs of minibatch SGD. The pieces both trainers share (GAE, the surrogates,
the losses, tracking, checkpoints) live in ``common/``; each use below names its equation.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from dataclasses import dataclass, fields
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from torch import nn

from common.algorithms import (
    A2C_CONTINUOUS,
    VPG_CONTINUOUS,
    Algorithm,
    OptimizerName,
    adapt_to_kl,
    make_optimizer,
    with_algorithm_defaults,
)
from common.args import CodeLevelArgs
from common.cli import UsageError, flags_on_command_line, parse_args
from common.distributed import World
from common.distributions import gaussian_kl
from common.divergence import gradient_step
from common.gae import advantages_and_returns
from common.losses import (
    LossConfig,
    LossLog,
    NewPolicy,
    OldPolicy,
    gaussian_policy,
    iteration_metrics,
    normalize_advantages,
    ppo_loss,
    shuffled_minibatches,
)
from common.objectives import Objective
from common.run import Run
from common.runtime import layer_init, normc_init, route_mujoco_warnings, run_layers
from common.schedules import anneal_learning_rate
from common.validation import (
    check_command_line,
    make_env_or_usage_error,
    require_continuous_control_id,
)
from ppo_continuous.envpool_envs import EnvPoolVectorEnv, check_backend
from ppo_continuous.run_envs import OneSampleRunningMeanStd


@dataclass
class Args(CodeLevelArgs):
    """Every flag of this trainer; the experiment, tracking, checkpoint and code-level ones
    (reward scaling, observation clip, initialisation) are shared (common/args.py)."""

    resumable_flags = CodeLevelArgs.resumable_flags | {"torch_threads"}

    exp_name: str = "ppo_continuous"
    """the name of this experiment, part of the run name"""
    torch_threads: int = 1
    """intra-op threads for torch; 1 is fastest for these small MLPs on a CPU"""

    # Algorithm (defaults: the paper's MuJoCo settings, Table 3, which CleanRL also uses)
    env_id: str = "HalfCheetah-v5"
    """any gymnasium environment with a Box action space"""
    env_backend: str = "gymnasium"
    """gymnasium, or envpool: the same MuJoCo -v5 tasks in C++ (ppo_continuous/envpool_envs.py)"""
    total_timesteps: int = 1_000_000
    """total environment steps of the experiment"""
    learning_rate: float = 3e-4
    """Adam step size"""
    num_envs: int = 1
    """parallel environments (the paper does not say; CleanRL uses 1)"""
    num_steps: int = 2048
    """steps per environment per rollout (the horizon T)"""
    anneal_lr: bool = True
    """anneal the step size linearly to 0 (CleanRL; the paper does not anneal for MuJoCo)"""
    gamma: float = 0.99
    """discount factor gamma"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    num_minibatches: int = 32
    """minibatches per epoch (2048 / 32 = the paper's minibatch of 64)"""
    update_epochs: int = 10
    """epochs K over each batch"""
    norm_adv: bool = True
    """standardise advantages (zero mean, unit std) before the surrogate uses them"""
    adv_norm_scope: Literal["minibatch", "batch"] = "minibatch"
    """where --norm-adv standardises: within each minibatch (ppo2, CleanRL) or over the whole
    batch once per iteration (the 2017 code)"""
    algorithm: Algorithm = "ppo"
    """ppo; a2c: baselines' A2C as this trainer's configuration (one epoch of one minibatch,
    RMSprop, short rollouts); vpg (continuous only): one policy-gradient step per batch with a
    KL-adapted step size; each sets its values for every flag not given (common/algorithms.py)"""
    optimizer: OptimizerName = "adam"
    """adam (PPO's) or rmsprop (A2C's)"""
    optimizer_eps: float = 1e-5
    """the optimizer's epsilon (ppo2's 1e-5; the 2017 code's Adam used 1e-8)"""
    rmsprop_alpha: float = 0.99
    """RMSprop's smoothing constant (with --optimizer rmsprop)"""
    objective: Objective = "clip"
    """policy surrogate: clip (eq. 7), adaptive_kl or fixed_kl (eq. 8), none (eq. 6)"""
    clip_coef: float = 0.2
    """surrogate clipping epsilon (also the value clipping range)"""
    kl_beta: float = 1.0
    """KL penalty coefficient beta; the initial value for adaptive_kl (the paper starts at 1)"""
    kl_target: float = 0.01
    """d_targ of the adaptive KL penalty"""
    lr_kl_target: float | None = None
    """adapt the step size after each batch to keep KL[pi_old || pi] near this (vanilla PG's
    adaptive step size in the paper's Figure 3; --algorithm vpg); off by default"""
    clip_vloss: bool = True
    """clip the value loss around the rollout's values, as ppo2 does"""
    ent_coef: float = 0.0
    """entropy coefficient c2 (the paper uses none for MuJoCo)"""
    vf_coef: float = 0.5
    """value-function coefficient c1"""
    max_grad_norm: float = 0.5
    """global gradient-norm clip (ppo2, CleanRL); 0 turns it off (the 2017 code has none)"""
    target_kl: float | None = None
    """stop the epochs early when approx_kl exceeds this (CleanRL's option; off by default)"""
    bootstrap_truncated: bool = False
    """bootstrap time-limit truncations from V(final obs); off, as in the paper and ppo2"""


def validate(args: Args) -> None:
    """Refuse bad input before any work starts (one line, exit code 2); every flag's range is
    checked in ``common/validation.py``, this adds the env id's."""
    check_command_line(args)
    if args.resume or args.init_from:
        return  # the checkpoint is checked when it is opened, before any env is built
    require_continuous_control_id(args.env_id)
    backend = getattr(args, "env_backend", "gymnasium")  # trpo.py and cem.py have no backend
    check_backend(backend, args.env_id)
    if backend == "envpool" and args.capture_video:
        raise UsageError(
            "--capture-video", "records through gymnasium: use --env-backend gymnasium"
        )
    route_mujoco_warnings()
    probe = make_env_or_usage_error(args.env_id)  # one env, only to read its action type
    action_space = probe.action_space
    probe.close()
    if not isinstance(action_space, gym.spaces.Box):
        raise UsageError(
            "--env-id",
            f"{args.env_id!r} has a {type(action_space).__name__} action space; this trainer needs "
            "a Box (continuous) one; use ppo_atari/train.py for Atari",
        )


def make_envs(
    args: Args,
    video_folder: str | None = None,
    render: bool = False,
    video_episodes: int | None = None,
) -> gym.vector.VectorEnv:
    """N envs that reset in the same step as they end, so no transition is a dummy reset step.

    ``video_folder`` records env 0's episodes as mp4 (gymnasium's schedule: episodes 0, 1, 8, 27,
    ...; ``video_episodes``: the first that many, so that the episode an evaluation's last one
    starts by resetting is not saved as a stray clip); ``render`` shows env 0 in a window.
    The normalisations are per-env gymnasium wrappers (as in CleanRL) rather than batched ones:
    gymnasium's batched observation wrappers refuse same-step autoreset, and inside each env they
    also normalise ``info["final_obs"]``, which bootstrapping a truncation needs.
    """
    # EnvPool's C++ tasks, the same numbers; trpo.py and cem.py (their own Args) have no backend
    if getattr(args, "env_backend", "gymnasium") == "envpool":
        return EnvPoolVectorEnv(
            args.env_id, args.num_envs, args.gamma, args.obs_clip, args.norm_reward
        )
    route_mujoco_warnings()
    if video_folder and not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")  # MuJoCo renders headless through EGL
    env0_render_mode = "human" if render else "rgb_array" if video_folder else None

    def make_one(index: int):
        def thunk() -> gym.Env:
            env = gym.make(args.env_id, render_mode=env0_render_mode if index == 0 else None)
            if video_folder and index == 0:
                trigger = video_episodes and (lambda episode: episode < video_episodes)
                env = gym.wrappers.RecordVideo(env, video_folder, trigger, disable_logger=True)
            # --8<-- [start:env_wrappers]
            env = gym.wrappers.RecordEpisodeStatistics(env)  # raw returns, before any scaling
            env = gym.wrappers.ClipAction(env)  # the env gets clipped actions; we store unclipped
            env = gym.wrappers.NormalizeObservation(env)
            env.obs_rms = OneSampleRunningMeanStd.replacing(env.obs_rms)  # same numbers, faster
            env = gym.wrappers.TransformObservation(
                env, symmetric_clip(args.obs_clip), env.observation_space
            )
            if args.norm_reward:
                env = gym.wrappers.NormalizeReward(env, gamma=args.gamma)  # by the return's std
                env.return_rms = OneSampleRunningMeanStd.replacing(env.return_rms)
                env = gym.wrappers.TransformReward(env, clip_10)
            # --8<-- [end:env_wrappers]
            return env

        return thunk

    # copy=False: step returns the vector env's own observation array, not a deep copy of it;
    # the next step overwrites it, so every caller copies it or is done with it before then.
    return gym.vector.SyncVectorEnv(
        [make_one(i) for i in range(args.num_envs)],
        autoreset_mode=AutoresetMode.SAME_STEP,
        copy=False,
    )


def env_dims(envs: gym.vector.VectorEnv) -> tuple[int, int]:
    """(observation size, action size) of one env, flattened."""
    shapes = envs.single_observation_space.shape, envs.single_action_space.shape
    return int(np.prod(shapes[0])), int(np.prod(shapes[1]))


def clip_10(x):
    """Normalised rewards are clipped to +-10, as in ppo2's VecNormalize."""
    return np.clip(x, -10.0, 10.0)


def symmetric_clip(bound: float):
    """x -> x clipped to [-bound, bound]: normalised observations (ppo2: 10, the 2017 code: 5)."""
    return clip_10 if bound == 10.0 else lambda x: np.clip(x, -bound, bound)


def normalizers(envs: gym.vector.SyncVectorEnv) -> dict:
    """Each env's running statistics, by name, for checkpoints."""
    stats = {}
    for i, env in enumerate(envs.envs):
        stats[f"obs_rms_{i}"] = env.get_wrapper_attr("obs_rms")
        if env.has_wrapper_attr("return_rms"):  # not with --no-norm-reward
            stats[f"return_rms_{i}"] = env.get_wrapper_attr("return_rms")
    return stats


def freeze_normalizers(envs: gym.vector.SyncVectorEnv) -> None:
    """Stop every env's running statistics from updating (test mode)."""
    for env in envs.envs:
        while isinstance(env, gym.Wrapper):
            if isinstance(env, gym.wrappers.NormalizeObservation | gym.wrappers.NormalizeReward):
                env.update_running_mean = False
            env = env.env


class Agent(nn.Module):
    """Separate 64-64 tanh actor and critic; a Gaussian policy with a state-independent log-std."""

    def __init__(self, obs_dim: int, act_dim: int, init: str = "orthogonal") -> None:
        super().__init__()
        # Hidden layers' gain: sqrt(2) orthogonal (ppo2) or unit-norm rows (the 2017 code's normc)
        init_layer, hidden = (layer_init, np.sqrt(2)) if init == "orthogonal" else (normc_init, 1.0)
        self.critic = nn.Sequential(
            init_layer(nn.Linear(obs_dim, 64), hidden), nn.Tanh(),
            init_layer(nn.Linear(64, 64), hidden), nn.Tanh(),
            init_layer(nn.Linear(64, 1), 1.0),
        )  # fmt: skip
        self.actor_mean = nn.Sequential(
            init_layer(nn.Linear(obs_dim, 64), hidden), nn.Tanh(),
            init_layer(nn.Linear(64, 64), hidden), nn.Tanh(),
            init_layer(nn.Linear(64, act_dim), 0.01),
        )  # fmt: skip
        self.actor_log_std = nn.Parameter(torch.zeros(act_dim))

    @classmethod
    def for_envs(cls, envs: gym.vector.VectorEnv, init: str = "orthogonal") -> Agent:
        """The network sized for the envs' (flattened) observations and actions."""
        return cls(*env_dims(envs), init)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample a ~ N(mu(s), sigma); returns (action, mean). For acting only (no module hooks)."""
        mean = run_layers(self.actor_mean, obs)
        return mean + self.actor_log_std.exp() * torch.randn_like(mean), mean

    def evaluate(self, obs: torch.Tensor, actions: torch.Tensor) -> NewPolicy:
        """log pi(a|s), entropy, V(s) and the distribution's (mean, log_std) for a batch."""
        mean = self.actor_mean(obs)
        return gaussian_policy(actions, mean, self.actor_log_std.expand_as(mean), self.value(obs))


class Rollout:
    """Step 1 of Algorithm 1: (T, N) buffers, refilled each iteration by running pi_old."""

    def __init__(self, args: Args, envs: gym.vector.SyncVectorEnv, device: torch.device) -> None:
        self.envs, self.device = envs, device
        self.num_steps, self.num_envs = args.num_steps, args.num_envs
        self.bootstrap_truncated = args.bootstrap_truncated
        self.obs_dim, self.act_dim = env_dims(envs)
        shape = (args.num_steps, args.num_envs)
        self.obs = torch.zeros(shape + (self.obs_dim,), device=device)
        self.actions = torch.zeros(shape + (self.act_dim,), device=device)
        self.rewards = torch.zeros(shape, device=device)
        self.terminations = torch.zeros(shape, dtype=torch.bool, device=device)
        self.truncations = torch.zeros_like(self.terminations)
        self.final_obs = torch.zeros_like(self.obs)  # normalised final obs of truncated episodes
        # The rollout writes into NumPy arrays, copied into the buffers above once per iteration:
        # a NumPy row write costs a fraction of a torch one, and there are five a step.
        self.staged = {
            name: torch.zeros_like(buffer, device="cpu").numpy()
            for name, buffer in self.buffers().items()
        }

    def reset(self, seed: int) -> torch.Tensor:
        next_obs, _ = self.envs.reset(seed=seed)
        # torch.tensor copies: with copy=False the vector env reuses its observation array
        return torch.tensor(next_obs, dtype=torch.float32, device=self.device)

    def buffers(self) -> dict[str, torch.Tensor]:
        """What the rollout fills step by step, by name."""
        return {"obs": self.obs, "actions": self.actions, "rewards": self.rewards,
                "terminations": self.terminations, "truncations": self.truncations,
                "final_obs": self.final_obs}  # fmt: skip

    def collect(self, agent: Agent, next_obs: torch.Tensor, run: Run) -> torch.Tensor:
        """T steps of a ~ pi_old(.|s) in each env; finished episodes are logged. Returns s_T."""
        device = self.device
        staged = self.staged
        obs, actions, rewards = staged["obs"], staged["actions"], staged["rewards"]
        terminations, truncations = staged["terminations"], staged["truncations"]
        obs[0] = next_obs.cpu().numpy()
        with torch.inference_mode():  # no_grad, and no version counters on the new tensors
            for step in range(self.num_steps):
                run.state.global_step += run.total_envs  # every rank's envs step together
                # torch.tensor copies: a view into obs would start at an arbitrary byte offset,
                # and the matrix product's rounding can depend on its input's alignment.
                action, _ = agent.act(torch.tensor(obs[step], device=device))
                action = action.cpu().numpy()
                actions[step] = action
                next_obs_np, reward, terminated, truncated, info = self.envs.step(action)
                rewards[step], terminations[step], truncations[step] = reward, terminated, truncated
                if step + 1 < self.num_steps:  # s_{t+1} is the next row; the last is s_T, returned
                    obs[step + 1] = next_obs_np
                if "final_info" in info:  # some env ended this step and was reset
                    if self.bootstrap_truncated:  # V(final obs) stands in for V(s_{t+1})
                        for i in np.flatnonzero(truncated):
                            staged["final_obs"][step, i] = info["final_obs"][i]
                    self.log_episodes(run, info["final_info"])
        for name, buffer in self.buffers().items():
            buffer.copy_(torch.from_numpy(staged[name]))
        return torch.tensor(next_obs_np, dtype=torch.float32, device=device)  # a copy, as reset's

    def log_episodes(self, run: Run, final_info: dict) -> None:
        episode = final_info["episode"]
        for i in np.flatnonzero(final_info["_episode"]):
            run.log_episode(episode["r"][i], episode["l"][i])

    def flatten(self, x: torch.Tensor) -> torch.Tensor:
        """(T, N, ...) -> the batch's sample axis; ``unflatten`` undoes it."""
        return x.reshape(-1, *x.shape[2:])

    def unflatten(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(self.num_steps, self.num_envs, *x.shape[1:])


@dataclass
class Batch:
    """One iteration's rollout, flattened over (T, N): what the update samples minibatches from."""

    obs: torch.Tensor
    actions: torch.Tensor
    means: torch.Tensor  # pi_old's distribution, for the analytic KL
    log_stds: torch.Tensor
    advantages: torch.Tensor
    old: OldPolicy

    def __len__(self) -> int:
        return self.advantages.shape[-1]

    def __getitem__(self, index: torch.Tensor | slice) -> Batch:
        """The samples at ``index``: a minibatch, or the batch in another order. With a leading
        run axis (the batched runner's (R, T, ...) batch) ``index`` holds one row per run."""
        if self.advantages.dim() > 1:
            runs = slice(None) if isinstance(index, slice) else torch.arange(len(index))[:, None]
            index = (runs, index)
        return Batch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @property
    def device(self) -> torch.device:
        return self.obs.device


# --8<-- [start:minibatch_update]
def update(
    agent: Agent,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    args: Args,
    loss_config: LossConfig,
    kl_beta: float,
    global_step: int,
    world: World | None = None,
    step: Callable = gradient_step,
    draw_order: Callable[[int], torch.Tensor] | None = None,
) -> LossLog:
    """K epochs of minibatch steps on eq. 9 (Algorithm 1's "optimise L wrt theta"); with several
    ranks (``world``) each takes its minibatch of its own batch and they average the gradients.
    The batched runner passes its runs' ``step`` (per-run clip and freeze) and ``draw_order``."""
    losses = LossLog()
    parameters = list(agent.parameters())  # once, not a walk over the modules per minibatch
    for mb in shuffled_minibatches(batch, args.num_minibatches, args.update_epochs, losses,
                                   args.target_kl, world, draw_order):  # fmt: skip
        loss, mb_stats = minibatch_loss(agent, mb, args, loss_config, kl_beta, world)
        # backward, the mean gradient over the ranks, clip its norm, step; Diverged (and no step)
        # if not finite
        step(optimizer, loss, parameters, args.max_grad_norm, global_step, world)
        losses.add(mb_stats)
    return losses


def minibatch_loss(
    agent: Agent, mb: Batch, args: Args, loss_config: LossConfig, kl_beta, world=None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 9 on one minibatch (each run's, with a leading run axis)."""
    new = agent.evaluate(mb.obs, mb.actions)
    advantages = mb.advantages
    if args.norm_adv and args.adv_norm_scope == "minibatch":  # as ppo2 and CleanRL (all ranks')
        advantages = normalize_advantages(advantages, world=world)
    kl = gaussian_kl(mb.means, mb.log_stds, new.means, new.log_stds)
    return ppo_loss(loss_config, mb.old, new, advantages, kl, args.clip_coef, kl_beta)
    # --8<-- [end:minibatch_update]


def main(args: Args, given_flags: Collection[str] = ()) -> None:
    args = resolve(args, given_flags)  # a direct call (tests, notebooks) resolves as the CLI does
    with Run(args, "ppo_continuous", given_flags) as run:
        args, device = run.args, run.device  # a resumed run goes on with its saved flags
        torch.set_num_threads(args.torch_threads)
        envs = make_envs(args, run.video_folder)
        agent = Agent.for_envs(envs, args.init).to(device)
        optimizer = make_optimizer(
            args.optimizer, agent.parameters(), args.learning_rate, args.rmsprop_alpha,
            eps=args.optimizer_eps, fused=True,
        )  # fmt: skip
        run.start(agent, optimizer, envs, normalizers=normalizers(envs))
        train(args, run, envs, agent, optimizer)


def train(args: Args, run: Run, envs, agent: Agent, optimizer: torch.optim.Optimizer) -> None:
    """Algorithm 1: rollouts, GAE and K epochs of minibatch Adam, one iteration at a time."""
    device, state = run.device, run.state
    loss_config = LossConfig.from_args(args)

    rollout = Rollout(args, envs, device)
    next_obs = rollout.reset(run.env_seed + state.iteration)
    for iteration in run.iterations():
        anneal_learning_rate(optimizer, args, iteration, run.num_iterations, state.anneal_anchor)

        # 1. Run the policy pi_old for T steps in each of the N envs (Algorithm 1).
        next_obs = rollout.collect(agent, next_obs, run)

        # 2-3. pi_old and V for the batch, advantages by GAE (eqs. 11-12), targets R_t = A_t + V.
        batch = batch_of(agent, rollout, next_obs, args, run.world)

        # --8<-- [start:update]
        # 4. Optimise the surrogate (eq. 9) for K epochs of minibatch Adam.
        losses = update(
            agent, optimizer, batch, args, loss_config, state.kl_beta, state.global_step, run.world
        )

        # 5. Adaptive KL penalty: compare d = KL[pi_old || pi] over the batch with d_targ (section 4).
        # Vanilla PG's adaptive step size (--algorithm vpg) follows the same d, the other way round.
        if args.objective == "adaptive_kl" or args.lr_kl_target is not None:
            batch_kl = run.world.mean(kl_after_update(agent, batch))  # all ranks decide alike
            lr = optimizer.param_groups[0]["lr"]
            state.kl_beta, lr = adapt_to_kl(args, state.kl_beta, lr, batch_kl)
            optimizer.param_groups[0]["lr"] = lr  # saved with the optimizer's state
        # --8<-- [end:update]

        # 6. Logging, with CleanRL's metric names.
        lr = optimizer.param_groups[0]["lr"]
        run.log_iteration(iteration_metrics(lr, losses.means(), batch.old, state.kl_beta))


def batch_of(
    agent: Agent, rollout: Rollout, next_obs: torch.Tensor, args: Args, world=None
) -> Batch:
    """The rollout as a batch: values, log pi_old and the old distribution in one pass (the policy
    did not change during the rollout, so batching is exact and much cheaper), and GAE."""
    b_obs, b_actions = rollout.flatten(rollout.obs), rollout.flatten(rollout.actions)
    with torch.no_grad():
        old = agent.evaluate(b_obs, b_actions)
        # log_std is a view of the parameter, which Adam changes in place: keep a copy.
        old_log_stds = old.log_stds.clone()
        values = rollout.unflatten(old.values)
        final_values = agent.value(rollout.final_obs) if args.bootstrap_truncated else None
        # --8<-- [start:advantages]
        advantages, returns = advantages_and_returns(
            rollout.rewards, values, agent.value(next_obs), rollout.terminations,
            rollout.truncations, final_values, args.gamma, args.gae_lambda,
        )  # fmt: skip
        # --8<-- [end:advantages]
        advantages = rollout.flatten(advantages)
        if args.norm_adv and args.adv_norm_scope == "batch":  # once, as the 2017 code does
            advantages = normalize_advantages(advantages, world=world)
    return Batch(b_obs, b_actions, old.means, old_log_stds, advantages,
                 OldPolicy(old.log_probs, old.values, rollout.flatten(returns)))  # fmt: skip


def kl_after_update(agent: Agent, batch: Batch) -> float | list[float]:
    """d = the mean KL[pi_old || pi] over the batch (over each run's, with a run axis)."""
    with torch.no_grad():
        new = agent.evaluate(batch.obs, batch.actions)
        return gaussian_kl(batch.means, batch.log_stds, new.means, new.log_stds).mean(-1).tolist()


def resolve(args: Args, given_flags: Collection[str] = ()) -> Args:
    """The values ``--algorithm`` implies for the flags not given."""
    return with_algorithm_defaults(
        args, {"a2c": A2C_CONTINUOUS, "vpg": VPG_CONTINUOUS}, given_flags
    )


if __name__ == "__main__":
    main(parse_args(Args, validate, resolve=resolve), flags_on_command_line())
