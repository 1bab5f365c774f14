"""PPO for continuous control (MuJoCo through gymnasium), in one file that reads like the paper.

    python ppo_continuous/train.py --env-id HalfCheetah-v5

Schulman et al. 2017, "Proximal Policy Optimization Algorithms" (arXiv 1707.06347), Algorithm 1:
for each iteration, run the policy for T steps in N envs, compute advantages with GAE, then optimise
the surrogate for K epochs of minibatch SGD. The pieces both trainers share (GAE, the surrogates,
the losses, tracking, checkpoints) live in ``common/``; each use below names its equation.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass, fields

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
    adapt_step_size,
    make_optimizer,
    with_algorithm_defaults,
)
from common.args import RunArgs
from common.cli import UsageError, flags_on_command_line, parse_args, require_registered_env
from common.distributed import World
from common.distributions import gaussian_entropy, gaussian_kl, gaussian_log_prob
from common.divergence import gradient_step
from common.gae import advantages_and_returns
from common.losses import (
    LossConfig,
    LossLog,
    OldPolicy,
    explained_variance,
    normalize_advantages,
    ppo_loss,
    shuffled_minibatches,
)
from common.objectives import Objective, adapt_kl_beta
from common.run import Run
from common.runtime import layer_init, route_mujoco_warnings, run_layers
from common.schedules import linear_anneal
from common.validation import check_command_line, is_atari_id, make_env_or_usage_error
from ppo_continuous.run_envs import OneSampleRunningMeanStd


@dataclass
class Args(RunArgs):
    """Every flag of this trainer; the experiment, tracking and checkpoint ones are shared (common/args.py)."""

    resumable_flags = RunArgs.resumable_flags | {"torch_threads"}

    exp_name: str = "ppo_continuous"
    """the name of this experiment, part of the run name"""
    torch_threads: int = 1
    """intra-op threads for torch; 1 is fastest for these small MLPs on a CPU"""

    # Algorithm (defaults: the paper's MuJoCo settings, Table 3, which CleanRL also uses)
    env_id: str = "HalfCheetah-v5"
    """any gymnasium environment with a Box action space"""
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
    """normalise advantages within each minibatch"""
    algorithm: Algorithm = "ppo"
    """ppo; a2c: baselines' A2C as this trainer's configuration (one epoch of one minibatch,
    RMSprop, short rollouts); vpg (continuous only): one policy-gradient step per batch with a
    KL-adapted step size; each sets its values for every flag not given (common/algorithms.py)"""
    optimizer: OptimizerName = "adam"
    """adam (PPO's) or rmsprop (A2C's); both with epsilon 1e-5"""
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
    """global gradient-norm clip"""
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
    if is_atari_id(args.env_id):
        raise UsageError(
            "--env-id",
            f"{args.env_id!r} is an Atari game; this trainer is for continuous control, "
            "use ppo_atari/train.py",
        )
    require_registered_env(args.env_id)
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
            env = gym.wrappers.TransformObservation(env, clip_10, env.observation_space)
            env = gym.wrappers.NormalizeReward(env, gamma=args.gamma)  # scale by std of the return
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
    """Normalised observations and rewards are clipped to +-10, as in ppo2's VecNormalize."""
    return np.clip(x, -10.0, 10.0)


def normalizers(envs: gym.vector.SyncVectorEnv) -> dict:
    """Each env's running statistics, by name, for checkpoints."""
    stats = {}
    for i, env in enumerate(envs.envs):
        stats[f"obs_rms_{i}"] = env.get_wrapper_attr("obs_rms")
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

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_dim, 64)), nn.Tanh(),
            layer_init(nn.Linear(64, 64)), nn.Tanh(),
            layer_init(nn.Linear(64, 1), std=1.0),
        )  # fmt: skip
        self.actor_mean = nn.Sequential(
            layer_init(nn.Linear(obs_dim, 64)), nn.Tanh(),
            layer_init(nn.Linear(64, 64)), nn.Tanh(),
            layer_init(nn.Linear(64, act_dim), std=0.01),
        )  # fmt: skip
        self.actor_log_std = nn.Parameter(torch.zeros(act_dim))

    @classmethod
    def for_envs(cls, envs: gym.vector.VectorEnv) -> Agent:
        """The network sized for the envs' (flattened) observations and actions."""
        return cls(*env_dims(envs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample a ~ N(mu(s), sigma); returns (action, mean). For acting only (no module hooks)."""
        mean = run_layers(self.actor_mean, obs)
        return mean + self.actor_log_std.exp() * torch.randn_like(mean), mean

    def evaluate(self, obs: torch.Tensor, actions: torch.Tensor):
        """log pi(a|s), entropy, V(s) and the distribution's (mean, log_std) for a batch."""
        mean = self.actor_mean(obs)
        log_std = self.actor_log_std.expand_as(mean)
        log_prob = gaussian_log_prob(actions, mean, log_std)
        return log_prob, gaussian_entropy(log_std), self.value(obs), mean, log_std


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
                    episode = info["final_info"]["episode"]
                    for i in np.flatnonzero(info["final_info"]["_episode"]):
                        run.log_episode(episode["r"][i], episode["l"][i])
        for name, buffer in self.buffers().items():
            buffer.copy_(torch.from_numpy(staged[name]))
        return torch.tensor(next_obs_np, dtype=torch.float32, device=device)  # a copy, as reset's

    def flat_obs(self) -> torch.Tensor:
        return self.obs.reshape(-1, self.obs_dim)

    def flat_actions(self) -> torch.Tensor:
        return self.actions.reshape(-1, self.act_dim)


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
        return len(self.advantages)

    def __getitem__(self, index: torch.Tensor | slice) -> Batch:
        """The samples at ``index``: a minibatch, or the batch in another order."""
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
) -> LossLog:
    """K epochs of minibatch steps on eq. 9 (Algorithm 1's "optimise L wrt theta"); with several
    ranks (``world``) each takes its minibatch of its own batch and they average the gradients."""
    losses = LossLog()
    parameters = list(agent.parameters())  # once, not a walk over the modules per minibatch
    for mb in shuffled_minibatches(batch, args.num_minibatches, args.update_epochs, losses,
                                   args.target_kl, world):  # fmt: skip
        new_log_prob, entropy, new_values, mean, log_std = agent.evaluate(mb.obs, mb.actions)
        advantages = mb.advantages
        if args.norm_adv:  # per minibatch (all ranks'), as ppo2 and CleanRL (the paper is silent)
            advantages = normalize_advantages(advantages, world=world)
        kl = gaussian_kl(mb.means, mb.log_stds, mean, log_std)
        loss, mb_stats = ppo_loss(
            loss_config, mb.old, advantages, new_log_prob, new_values, entropy, kl,
            clip_coef=args.clip_coef, kl_beta=kl_beta,
        )  # fmt: skip
        # backward, the mean gradient over the ranks, clip its norm, step; Diverged (and no step)
        # if not finite
        gradient_step(optimizer, loss, parameters, args.max_grad_norm, global_step, world)
        losses.add(mb_stats)
    return losses
    # --8<-- [end:minibatch_update]


def main(args: Args, given_flags: Collection[str] = ()) -> None:
    args = resolve(args, given_flags)  # a direct call (tests, notebooks) resolves as the CLI does
    with Run(args, "ppo_continuous", given_flags) as run:
        args, device = run.args, run.device  # a resumed run goes on with its saved flags
        torch.set_num_threads(args.torch_threads)
        envs = make_envs(args, run.video_folder)
        agent = Agent.for_envs(envs).to(device)
        optimizer = make_optimizer(
            args.optimizer, agent.parameters(), args.learning_rate, args.rmsprop_alpha, fused=True
        )
        run.start(agent, optimizer, envs, normalizers=normalizers(envs))
        train(args, run, envs, agent, optimizer)


def train(args: Args, run: Run, envs, agent: Agent, optimizer: torch.optim.Optimizer) -> None:
    """Algorithm 1: rollouts, GAE and K epochs of minibatch Adam, one iteration at a time."""
    device, state = run.device, run.state
    loss_config = LossConfig.from_args(args)

    rollout = Rollout(args, envs, device)
    next_obs = rollout.reset(run.env_seed + state.iteration)
    for iteration in run.iterations():
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = linear_anneal(
                args.learning_rate, iteration, run.num_iterations, state.anneal_anchor
            )

        # 1. Run the policy pi_old for T steps in each of the N envs (Algorithm 1).
        next_obs = rollout.collect(agent, next_obs, run)

        # 2. Values, log pi_old and the old distribution for the whole batch in one pass:
        # the policy did not change during the rollout, so batching is exact and much cheaper.
        b_obs, b_actions = rollout.flat_obs(), rollout.flat_actions()
        with torch.no_grad():
            b_log_probs, _, b_values, b_means, b_log_stds = agent.evaluate(b_obs, b_actions)
            # log_std is a view of the parameter, which Adam changes in place: keep a copy.
            b_log_stds = b_log_stds.clone()
            values = b_values.reshape(args.num_steps, args.num_envs)
            final_values = agent.value(rollout.final_obs) if args.bootstrap_truncated else None
            # --8<-- [start:advantages]
            # 3. Advantages by GAE (eqs. 11-12) and value targets R_t = A_t + V(s_t).
            advantages, returns = advantages_and_returns(
                rollout.rewards, values, agent.value(next_obs), rollout.terminations,
                rollout.truncations, final_values, args.gamma, args.gae_lambda,
            )  # fmt: skip
            # --8<-- [end:advantages]
        batch = Batch(b_obs, b_actions, b_means, b_log_stds, advantages.reshape(-1),
                      OldPolicy(b_log_probs, b_values, returns.reshape(-1)))  # fmt: skip

        # --8<-- [start:update]
        # 4. Optimise the surrogate (eq. 9) for K epochs of minibatch Adam.
        losses = update(
            agent, optimizer, batch, args, loss_config, state.kl_beta, state.global_step, run.world
        )

        # 5. Adaptive KL penalty: compare d = KL[pi_old || pi] over the batch with d_targ (section 4).
        # Vanilla PG's adaptive step size (--algorithm vpg) follows the same d, the other way round.
        if args.objective == "adaptive_kl" or args.lr_kl_target is not None:
            with torch.no_grad():
                _, _, _, mean, log_std = agent.evaluate(b_obs, b_actions)
                batch_kl = gaussian_kl(b_means, b_log_stds, mean, log_std).mean().item()
            batch_kl = run.world.mean(batch_kl)  # over every rank's batch: all decide alike
            if args.objective == "adaptive_kl":
                state.kl_beta = adapt_kl_beta(state.kl_beta, batch_kl, args.kl_target)
            if args.lr_kl_target is not None:
                lr = adapt_step_size(optimizer.param_groups[0]["lr"], batch_kl, args.lr_kl_target)
                optimizer.param_groups[0]["lr"] = lr  # saved with the optimizer's state
        # --8<-- [end:update]

        # 6. Logging, with CleanRL's metric names.
        run.log_iteration({
            "charts/learning_rate": optimizer.param_groups[0]["lr"],
            **losses.means(),
            "losses/explained_variance": explained_variance(b_values, batch.old.returns),
            "losses/kl_beta": state.kl_beta,
        })  # fmt: skip


def resolve(args: Args, given_flags: Collection[str] = ()) -> Args:
    """The values ``--algorithm`` implies for the flags not given."""
    return with_algorithm_defaults(
        args, {"a2c": A2C_CONTINUOUS, "vpg": VPG_CONTINUOUS}, given_flags
    )


if __name__ == "__main__":
    main(parse_args(Args, validate, resolve=resolve), flags_on_command_line())
