"""Several PPO runs in one process: their envs stepped together, their networks batched.

    python ppo_continuous/batched.py --env-id Hopper-v5 --seeds 1 \\
        --exp-names clip_0.2 no_clip adaptive_kl_0.01 \\
        --objectives clip none adaptive_kl --kl-targets 0.01 --no-clip-vloss

The paper's Table 1 is 231 short runs of one tiny network each. Run one at a time, about nine
tenths of a run is per-step Python and torch work for a single 64-64 MLP, not MuJoCo (issue 12).
Here R runs share one process: every env step runs one forward pass for all R policies, and every
minibatch one forward, one backward and one Adam step for all R networks, so that overhead is paid
once per group instead of once per run.

Every step of learning is the single trainer's own function (``ppo_continuous/train.py``, the
readable reference), called with the run axis as a batch dimension; none is written twice:

- the rollout is ``train.Rollout.collect`` (run r in env r of ``run_envs.RunEnvs``, which computes
  the trainer's wrapper stack for all runs at once, number for number the same); the batch, the
  old policy and GAE are ``train.batch_of``; the K epochs of minibatches are ``train.update`` with
  ``train.minibatch_loss`` and ``common.losses.ppo_loss`` (every mean is over the sample axis, so
  each run gets its own eq. 9, each with its own objective through ``common.objectives.PerRun``);
  the step size, the adaptive beta and the logged metrics are ``common``'s functions the trainer
  calls; ``tests/test_batched.py`` checks the group against ``train.train`` run by run;
- the networks are the trainer's ``Agent``, R of them, with their parameters stacked on a leading
  run axis and evaluated with ``torch.baddbmm`` (faster here than ``torch.func.vmap`` over
  ``functional_call``, with the same outputs): run r only ever sees its own slice; each starts
  from the weights the trainer builds for its seed;
- what a group needs beyond the trainer: ``GroupStep`` (the loss of each run summed, so the
  gradient of run r's slice is run r's; each run's gradient norm clipped; one Adam over the
  stacked parameters, which is R independent Adams as Adam is elementwise) and one minibatch
  order per run per epoch.

What differs: the action noise and the minibatch permutations come from one torch generator for
the whole group (seeded with the first run's seed), so a run's exact trajectory depends on its
group; its statistics do not. A run whose loss or gradient norm goes non-finite is frozen (no
further update reaches its weights) and written as ``diverged`` while the others go on; the
group then exits 3, as the trainer does.

Each run writes its own ``<runs-dir>/<env>__<exp_name>__<seed>__<time>/`` (TensorBoard events and
a ``summary.json`` as the trainer writes them, plus ``"runner": "batched"``), so the sweep's record
and reports read it unchanged. The group's checkpoint (all runs' weights, Adam state, normalisers,
betas, episode logs, RNG states) goes to ``<group-dir>/checkpoints/latest.pt``; SIGTERM and Ctrl-C
finish the iteration, save and exit 0, and ``--resume <group-dir>`` continues (a flag given with a
value other than the saved one is refused). Each run's own ``checkpoints/latest.pt`` holds its
network and normalisers, so ``python ppo_continuous/evaluate.py <run folder>`` plays it.

Measured (2-core AMD EPYC VM, Hopper-v5, background sweep paused, other engineers' jobs still
running): Table 1's 11 settings as one group ran at 2,254 aggregate SPS against the single
trainer's 876 (2.6x; 1,767 against 778 in a noisier window), and 33 runs (11 settings x 3 seeds,
the launcher's group) at 2,373 against 778 (3.0x). What is left is mostly each run's own env:
MuJoCo and gymnasium's per-env Python take about 6 of the 8.5 s of an uncontended 11-run iteration,
the update about 2. Learning at equal steps matches separate runs (InvertedPendulum-v5, 3 seeds,
49k steps: mean return over training 66.5 +- 1.9 batched against 67.7 +- 4.8 separate).
"""

from __future__ import annotations

import io
import random
import sys
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from common.algorithms import adapt_to_kl, make_optimizer
from common.checkpoint import BATCHED_RUN_TRAINER, StopRequest, rng_state, set_rng_state
from common.checkpoint import FORMAT_VERSION as CHECKPOINT_FORMAT
from common.cli import (
    UsageError,
    default_run_name,
    exit_usage,
    flag,
    flags_on_command_line,
    parse_args,
    require_choice,
)
from common.divergence import EXIT_DIVERGED
from common.episodes import EpisodeLog, run_summary
from common.files import atomic_write_bytes, atomic_write_json
from common.losses import LossConfig, NewPolicy, gaussian_policy, iteration_metrics
from common.objectives import OBJECTIVES, Objective, PerRun
from common.runtime import code_version, host_description, route_mujoco_warnings
from common.schedules import anneal_learning_rate
from common.tracking import Progress, Tracker
from common.validation import (
    check_values,
    make_env_or_usage_error,
    require_continuous_control_id,
    require_writable_dir,
)
from ppo_continuous import train
from ppo_continuous.envpool_envs import check_backend, make_run_envs
from ppo_continuous.run_envs import RunEnvs

TRAINER = "ppo_continuous.batched"
FORMAT_VERSION = 1
# Per-run settings: one value per run, or one value for all runs.
PER_RUN = ("exp_names", "seeds", "objectives", "clip_coefs", "kl_betas", "kl_targets")


@dataclass
class Args:
    """The runs of a group (one value per run, or one for all) and the hyperparameters they share.

    The shared flags have the single trainer's names and defaults (``train.Args``).
    """

    env_id: str = "HalfCheetah-v5"
    """the gymnasium env id every run of the group uses"""
    env_backend: str = "gymnasium"
    """gymnasium, or envpool: the same MuJoCo -v5 tasks in C++ (ppo_continuous/envpool_envs.py)"""
    exp_names: tuple[str, ...] = ("ppo_continuous",)
    """each run's experiment name (its variant), part of its run name"""
    seeds: tuple[int, ...] = (1,)
    """each run's seed (env reset seed and initial weights, as the single trainer uses it)"""
    objectives: tuple[Objective, ...] = ("clip",)
    """each run's policy surrogate: clip (eq. 7), adaptive_kl or fixed_kl (eq. 8), none (eq. 6)"""
    clip_coefs: tuple[float, ...] = (0.2,)
    """each run's clipping epsilon (also its value clipping range with --clip-vloss)"""
    kl_betas: tuple[float, ...] = (1.0,)
    """each run's KL penalty coefficient beta (the initial value for adaptive_kl)"""
    kl_targets: tuple[float, ...] = (0.01,)
    """each run's d_targ of the adaptive KL penalty"""
    runs_dir: str = "runs"
    """where each run's folder goes: <runs-dir>/<env>__<exp_name>__<seed>__<time>"""
    group_dir: str | None = None
    """the group's checkpoint folder (default: <runs-dir>/groups/<env>__batched__<time>)"""
    resume: str | None = None
    """continue the group saved in this group folder (every setting comes from its checkpoint)"""
    save_every: int = 10
    """save the group's checkpoint every this many iterations (and at the end)"""
    torch_threads: int = 1
    """intra-op threads for torch; 1 is fastest for these small MLPs on a CPU"""
    # Shared hyperparameters: the single trainer's flags and defaults.
    total_timesteps: int = 1_000_000
    """environment steps of each run"""
    learning_rate: float = 3e-4
    """Adam step size"""
    num_steps: int = 2048
    """steps per rollout of each run (the horizon T)"""
    anneal_lr: bool = True
    """anneal the step size linearly to 0"""
    gamma: float = 0.99
    """discount factor gamma"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    num_minibatches: int = 32
    """minibatches per epoch"""
    update_epochs: int = 10
    """epochs K over each batch"""
    norm_adv: bool = True
    """standardise advantages (zero mean, unit std) before the surrogate uses them"""
    adv_norm_scope: Literal["minibatch", "batch"] = "minibatch"
    """where --norm-adv standardises: within each minibatch or over each run's whole batch"""
    clip_vloss: bool = True
    """clip the value loss around the rollout's values, as ppo2 does (Table 1: --no-clip-vloss)"""
    ent_coef: float = 0.0
    """entropy coefficient c2"""
    vf_coef: float = 0.5
    """value-function coefficient c1"""
    max_grad_norm: float = 0.5
    """gradient-norm clip, per run; 0 turns it off"""
    optimizer_eps: float = 1e-5
    """Adam's epsilon"""
    norm_reward: bool = True
    """scale rewards by a running std of the discounted return, clipped to +-10"""
    obs_clip: float = 10.0
    """clip normalised observations to +-this"""
    init: Literal["orthogonal", "normc"] = "orthogonal"
    """weight initialisation: orthogonal (ppo2, CleanRL) or normc (the 2017 code)"""

    @property
    def num_runs(self) -> int:
        return max(len(getattr(self, name)) for name in PER_RUN)

    def per_run(self, name: str) -> list[Any]:
        """The list ``name`` (one of PER_RUN) with one entry per run."""
        values = list(getattr(self, name))
        return values * self.num_runs if len(values) == 1 else values


def run_args(args: Args) -> list[train.Args]:
    """Each run's settings as the single trainer's ``Args`` (what it would run with)."""
    shared = {f.name: getattr(args, f.name) for f in fields(Args) if f.name in TRAINER_FIELDS}
    per_run = zip(*(args.per_run(name) for name in PER_RUN), strict=True)
    return [
        train.Args(**shared, exp_name=exp_name, seed=seed, objective=objective,
                   clip_coef=clip_coef, kl_beta=kl_beta, kl_target=kl_target)
        for exp_name, seed, objective, clip_coef, kl_beta, kl_target in per_run
    ]  # fmt: skip


TRAINER_FIELDS = frozenset(f.name for f in fields(train.Args)) - {"save_every", "resume"}


def validate(args: Args) -> None:
    """Refuse bad input before any work starts (one line, exit code 2): each run's settings go
    through the trainer's own checks (``common.validation``), with the same messages."""
    if args.resume:
        if args.group_dir is not None and Path(args.group_dir) != Path(args.resume):
            raise UsageError("--group-dir", "a resumed group goes on in the folder it resumes")
        return  # every other setting comes from the checkpoint
    lengths = {name: len(getattr(args, name)) for name in PER_RUN}
    for name, length in lengths.items():
        if length not in (1, args.num_runs):
            raise UsageError(
                flag(name),
                f"give one value per run or one for all; got {length} values for {args.num_runs} runs",
            )
    for objective in args.objectives:
        require_choice("objectives", objective, OBJECTIVES)
    names = list(zip(args.per_run("exp_names"), args.per_run("seeds"), strict=True))
    if len(set(names)) != len(names):
        raise UsageError("--exp-names", "two runs have the same exp name and seed")
    for run in run_args(args):
        try:
            check_values(replace(run, save_every=args.save_every))
        except UsageError as err:  # a per-run flag is named as this runner spells it
            name, message = str(err).split(": ", 1)
            raise UsageError(PLURAL.get(name, name), message) from None
    require_writable_dir(args.runs_dir, "--runs-dir")
    if args.group_dir is not None:
        require_writable_dir(args.group_dir, "--group-dir")
    require_continuous_control_id(args.env_id, runner="the batched runner")
    check_backend(args.env_backend, args.env_id)
    route_mujoco_warnings()
    probe = make_env_or_usage_error(args.env_id)
    is_box = isinstance(probe.action_space, gym.spaces.Box)
    probe.close()
    if not is_box:
        raise UsageError("--env-id", f"{args.env_id!r} has no Box (continuous) action space")


# The trainer's flag -> this runner's per-run flag.
PLURAL = {flag(f"{name[:-1]}"): flag(name) for name in PER_RUN}

# ---------------------------------------------------------------------------------------------
# The network: R copies of the trainer's Agent with stacked parameters.
# ---------------------------------------------------------------------------------------------


def _linears(sequential: nn.Sequential) -> list[nn.Linear]:
    return [m for m in sequential if isinstance(m, nn.Linear)]


class BatchedAgent(nn.Module):
    """R copies of ``train.Agent`` (64-64 tanh actor and critic, state-independent log-std).

    Each ``nn.Linear``'s weight (out, in) and bias (out) become a parameter of shape (R, out, in)
    and (R, out); inputs are (R, B, features) and each layer is one ``torch.baddbmm`` for all runs.
    """

    def __init__(self, agents: list[train.Agent]) -> None:
        super().__init__()

        def stack(tensors: list[torch.Tensor]) -> nn.Parameter:
            return nn.Parameter(torch.stack([t.detach().clone() for t in tensors]))

        critics = [_linears(a.critic) for a in agents]
        actors = [_linears(a.actor_mean) for a in agents]
        self.critic_weights = nn.ParameterList(
            [stack([c[i].weight for c in critics]) for i in range(3)]
        )
        self.critic_biases = nn.ParameterList(
            [stack([c[i].bias for c in critics]) for i in range(3)]
        )
        self.actor_weights = nn.ParameterList(
            [stack([a[i].weight for a in actors]) for i in range(3)]
        )
        self.actor_biases = nn.ParameterList([stack([a[i].bias for a in actors]) for i in range(3)])
        self.actor_log_std = stack([a.actor_log_std for a in agents])

    @property
    def num_runs(self) -> int:
        return self.actor_log_std.shape[0]

    @staticmethod
    def _mlp(x: torch.Tensor, weights: nn.ParameterList, biases: nn.ParameterList) -> torch.Tensor:
        """x (R, B, in) through Linear-Tanh-Linear-Tanh-Linear, each run through its own weights."""
        for i, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
            x = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
            if i < len(weights) - 1:
                x = torch.tanh(x)
        return x

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(s) per run: obs (R, B, obs_dim) -> (R, B), or one observation per run (R, obs_dim) -> (R,)."""
        if obs.dim() == 2:
            return self.value(obs.unsqueeze(1)).squeeze(1)
        return self._mlp(obs, self.critic_weights, self.critic_biases).squeeze(-1)

    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One action a ~ N(mu(s), sigma) per run, and mu(s): obs (R, obs_dim) -> (R, act_dim)."""
        mean = self._mlp(obs.unsqueeze(1), self.actor_weights, self.actor_biases).squeeze(1)
        return mean + self.actor_log_std.exp() * torch.randn_like(mean), mean

    def evaluate(self, obs: torch.Tensor, actions: torch.Tensor) -> NewPolicy:
        """``Agent.evaluate`` for (R, B, ...) batches: each run's outputs on its own samples."""
        mean = self._mlp(obs, self.actor_weights, self.actor_biases)
        log_std = self.actor_log_std.unsqueeze(1).expand_as(mean)
        return gaussian_policy(actions, mean, log_std, self.value(obs))

    def agent(self, r: int) -> train.Agent:
        """Run r's network as a plain ``train.Agent`` (e.g. to save it in the trainer's format)."""
        obs_dim, act_dim = self.actor_weights[0].shape[2], self.actor_log_std.shape[1]
        agent = train.Agent(obs_dim, act_dim).to(self.actor_log_std.dtype)
        with torch.no_grad():
            for layers, weights, biases in (
                (_linears(agent.critic), self.critic_weights, self.critic_biases),
                (_linears(agent.actor_mean), self.actor_weights, self.actor_biases),
            ):
                for layer, weight, bias in zip(layers, weights, biases, strict=True):
                    layer.weight.copy_(weight[r])
                    layer.bias.copy_(bias[r])
            agent.actor_log_std.copy_(self.actor_log_std[r])
        return agent


def initial_agents(
    seeds: list[int], obs_dim: int, act_dim: int, init: str = "orthogonal"
) -> list[train.Agent]:
    """Each run's initial network, exactly as the single trainer builds it for its seed."""
    agents = []
    for seed in seeds:
        torch.manual_seed(seed)  # what seed_everything does before the trainer builds its Agent
        agents.append(train.Agent(obs_dim, act_dim, init))
    return agents


# ---------------------------------------------------------------------------------------------
# The trainer's steps with the run axis: its rollout, batch, update and KL rules.
# ---------------------------------------------------------------------------------------------


class GroupRollout(train.Rollout):
    """The trainer's rollout with run r in env r (its (T, R, ...) buffers), whose batches are
    run-major, (R, T, ...), and whose finished episodes go to their runs."""

    def __init__(self, args: train.Args, envs: RunEnvs, runs: list[GroupRun]) -> None:
        super().__init__(args, envs, torch.device("cpu"))
        self.runs = runs
        self.learning = torch.ones(len(runs), dtype=torch.bool)  # runs whose episodes count
        # What ``collect`` counts its steps on: this iteration's steps of each run.
        self.clock = SimpleNamespace(state=SimpleNamespace(global_step=0), total_envs=1)

    def collect_steps(self, agent: BatchedAgent, next_obs: torch.Tensor) -> torch.Tensor:
        self.clock.state.global_step = 0
        return self.collect(agent, next_obs, self.clock)

    def log_episodes(self, run: SimpleNamespace, final_info: dict) -> None:
        episode = final_info["episode"]
        for i in np.flatnonzero(final_info["_episode"]):
            if self.learning[i]:
                group_run = self.runs[i]
                step = group_run.global_step + run.state.global_step
                group_run.log_episode(float(episode["r"][i]), int(episode["l"][i]), step)

    def flatten(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(0, 1)

    def unflatten(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(0, 1)


def group_args(runs: list[train.Args]) -> tuple[train.Args, LossConfig]:
    """The trainer's ``Args`` and ``LossConfig`` for the whole group, as ``train.update`` and
    ``train.Rollout`` read them: the shared flags, one env per run, each run's clip range and
    objective on the run axis."""
    clip_coefs = torch.tensor([[r.clip_coef] for r in runs])
    args = replace(runs[0], num_envs=len(runs), clip_coef=clip_coefs)
    objectives = PerRun([r.objective for r in runs])
    return args, LossConfig(objectives, args.vf_coef, args.ent_coef, args.clip_vloss)


def kl_betas(runs: list[GroupRun]) -> torch.Tensor:
    """Each run's current beta, (R, 1), for the loss."""
    return torch.tensor([[r.kl_beta] for r in runs])


def random_orders(num_runs: int) -> Callable[[int], torch.Tensor]:
    """An epoch's sample order per run, (R, T): each run its own permutation."""
    return lambda size: torch.rand(num_runs, size).argsort(dim=-1)


def clip_grad_norms(parameters: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Per run, ``torch.nn.utils.clip_grad_norm_`` over that run's slices (``max_norm`` 0: none,
    as ``common.divergence.clip_gradients``); returns the norms (R,)."""
    grads = [p.grad for p in parameters]
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads], dim=1).norm(dim=1)
    if max_norm <= 0:
        return norms
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)  # clip_grad_norm_'s formula
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))
    return norms


class GroupStep:
    """``common.divergence.gradient_step`` for R runs: the sum of the runs' losses backward (each
    depends on its own slices only, so the gradient of run r's slice is run r's), each run's
    gradient norm clipped, one Adam step. A run whose loss or gradient norm is not finite is
    frozen (cleared in ``active``) before the step, while the others go on."""

    def __init__(self, active: torch.Tensor) -> None:
        self.active = active
        self.newly_frozen = torch.zeros_like(active)

    def __call__(self, optimizer, loss, parameters, max_grad_norm, step, world=None) -> None:
        active = self.active
        optimizer.zero_grad(set_to_none=True)
        torch.where(active, loss, 0.0).sum().backward()
        norms = clip_grad_norms(parameters, max_grad_norm)
        bad = active & ~(torch.isfinite(loss.detach()) & torch.isfinite(norms))
        if bad.any():  # one host sync per minibatch, as the trainer's divergence check
            active &= ~bad
            self.newly_frozen |= bad
            freeze(optimizer, parameters, bad)
        if not active.all():
            for p in parameters:  # frozen runs get no gradient (and so no Adam step)
                p.grad.masked_fill_(~active.view(-1, *([1] * (p.dim() - 1))), 0.0)
        optimizer.step()


def freeze(optimizer: torch.optim.Adam, parameters: list[nn.Parameter], runs: torch.Tensor) -> None:
    """Stop Adam from moving the slices of ``runs`` (bool, (R,)): zero their moments.

    With zero moments and (from now on) zero gradients, Adam's step for those slices is exactly 0.
    """
    for p in parameters:
        state = optimizer.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key][runs] = 0.0


# ---------------------------------------------------------------------------------------------
# Bookkeeping: per-run state, the group checkpoint, each run's playable checkpoint.
# ---------------------------------------------------------------------------------------------


@dataclass
class GroupRun:
    """One run of the group: its settings, folder, TensorBoard writer and counters."""

    args: train.Args
    name: str
    dir: Path
    kl_beta: float
    episodes: EpisodeLog
    global_step: int = 0
    diverged_at_step: int | None = None
    wall_time: float | None = None  # the group's wall time when it diverged
    tracker: Tracker | None = None

    def log_episode(self, episode_return: float, length: int, step: int) -> None:
        self.episodes.add(episode_return, length)
        self.tracker.log(
            {"charts/episodic_return": episode_return, "charts/episodic_length": length}, step
        )

    def summary(self, total_timesteps: int, wall_time: float, commit: str) -> dict[str, Any]:
        """``common.episodes.run_summary`` with what ``Saver.write_summary`` adds, and the runner."""
        wall = self.wall_time if self.wall_time is not None else wall_time
        extra = {"runner": "batched", "env_backend": self.args.env_backend,
                 "commit": commit, "host": host_description()}  # fmt: skip
        return run_summary(
            env_id=self.args.env_id, exp_name=self.args.exp_name, seed=self.args.seed,
            objective=self.args.objective, global_step=self.global_step,
            total_timesteps=total_timesteps, wall_time=wall, episodes=self.episodes, extra=extra,
            diverged_at_step=self.diverged_at_step,
        )  # fmt: skip


def save_group(
    group_dir: Path, args: Args, runs: list[GroupRun], agent: BatchedAgent, optimizer, iteration: int,
    wall_time: float, active: torch.Tensor, envs: RunEnvs,
) -> None:  # fmt: skip
    """The whole group's state in one file, written atomically (``latest.pt``), and each run's
    network and normalisers in its own folder, for ``evaluate.py``."""
    data = {
        "format_version": FORMAT_VERSION,
        "trainer": TRAINER,
        "args": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(args).items()},
        "iteration": iteration,
        "wall_time": wall_time,
        "model": agent.state_dict(),
        "optimizer": optimizer.state_dict(),
        "active": active.clone(),
        "runs": [
            {"name": r.name, "dir": str(r.dir), "kl_beta": r.kl_beta, "global_step": r.global_step,
             "episodes": r.episodes.state_dict(), "diverged_at_step": r.diverged_at_step,
             "wall_time": r.wall_time}
            for r in runs
        ],
        "normalizers": _map(torch.as_tensor, envs.state_dict()),  # tensors load weights_only
        "rng": rng_state(),
    }  # fmt: skip
    atomic_write_bytes(group_dir / "checkpoints" / "latest.pt", _bytes(data))
    for r, run in enumerate(runs):
        if run.diverged_at_step is None or not (run.dir / "checkpoints" / "latest.pt").is_file():
            playable = run_checkpoint(run, r, agent, envs, iteration, wall_time)
            atomic_write_bytes(run.dir / "checkpoints" / "latest.pt", _bytes(playable))


def run_checkpoint(
    run: GroupRun, r: int, agent: BatchedAgent, envs: RunEnvs, iteration: int, wall_time: float
) -> dict[str, Any]:
    """Run r as the single trainer's checkpoint format, for ``evaluate.py`` (``train.py
    --resume`` refuses it: its Adam state lives in the group's checkpoint)."""
    stats = envs.state_dict()
    normalizers = {
        f"{kind}_0": {"mean": torch.as_tensor(stats[kind]["mean"][r]),
                      "var": torch.as_tensor(stats[kind]["var"][r]),
                      "count": float(stats[kind]["count"][r])}
        for kind in ("obs_rms", "return_rms")
        if kind in stats
    }  # fmt: skip
    return {
        "format_version": CHECKPOINT_FORMAT,
        "trainer": BATCHED_RUN_TRAINER,  # a run's own checkpoint, for evaluate.py
        "run_name": run.name,
        "args": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(run.args).items()},
        "model": agent.agent(r).state_dict(),
        "optimizer": {},
        "run": {"global_step": run.global_step, "iteration": iteration, "wall_time": wall_time,
                "kl_beta": run.kl_beta, "wandb_run_id": None, "episodes": run.episodes.state_dict()},
        "normalizers": normalizers,
        "rng": {},
    }  # fmt: skip


def _bytes(data: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(data, buffer)
    return buffer.getvalue()


def load_group(group_dir: str | Path) -> dict[str, Any]:
    """A group checkpoint, checked; any problem exits 2 with one line."""
    file = Path(group_dir) / "checkpoints" / "latest.pt"
    if not file.is_file():
        exit_usage(f"--resume: no group checkpoint at {file}")
    try:
        data = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        exit_usage(f"--resume: {file} is not a readable checkpoint ({type(err).__name__})")
    if not isinstance(data, dict) or data.get("trainer") != TRAINER:
        exit_usage(f"--resume: {file} is not a checkpoint of {TRAINER}")
    if data.get("format_version") != FORMAT_VERSION:
        exit_usage(
            f"--resume: {file} has format {data.get('format_version')}, expected {FORMAT_VERSION}"
        )
    return data


def _map(fn: Any, tree: dict[str, Any]) -> dict[str, Any]:
    """``fn`` applied to every leaf of a nested dict."""
    return {k: _map(fn, v) if isinstance(v, dict) else fn(v) for k, v in tree.items()}


# ---------------------------------------------------------------------------------------------
# The loop: Algorithm 1 for all runs at once, step by step the trainer's (train.train).
# ---------------------------------------------------------------------------------------------


def main(args: Args, given_flags: Collection[str] = ()) -> None:
    saved = load_group(args.resume) if args.resume else None
    if saved is not None:
        saved_args = Args(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in saved["args"].items()}
        )
        refuse_changed_flags(args, saved_args, given_flags)
        saved_args.resume = args.resume
        args = saved_args
    runs_args = run_args(args)
    num_runs = len(runs_args)
    commit = code_version()  # the code the group starts with, whatever the checkout holds later
    torch.set_num_threads(args.torch_threads)
    group_dir = Path(
        args.resume or args.group_dir
        or f"{args.runs_dir}/groups/{args.env_id.replace('/', '-')}__batched__{int(time.time())}"
    )  # fmt: skip

    # Each run's env: the trainer's wrapper stack, one env per run, stepped together.
    envs = make_run_envs(
        args.env_backend, args.env_id, num_runs, args.gamma, args.obs_clip, args.norm_reward
    )
    seeds = [r.seed for r in runs_args]
    agent = BatchedAgent(initial_agents(seeds, *train.env_dims(envs), args.init))
    first = runs_args[0]  # the shared flags are every run's
    optimizer = make_optimizer(
        first.optimizer, agent.parameters(), first.learning_rate, first.rmsprop_alpha,
        eps=first.optimizer_eps, fused=True,
    )  # fmt: skip
    # Action noise and minibatch orders: one generator for the group, seeded by the first run.
    random.seed(runs_args[0].seed)
    np.random.seed(runs_args[0].seed)
    torch.manual_seed(runs_args[0].seed)

    num_iterations = max(1, args.total_timesteps // args.num_steps)
    start_iteration, wall_before = 0, 0.0
    active = torch.ones(num_runs, dtype=torch.bool)
    if saved is None:
        runs = []
        for r in runs_args:
            name = default_run_name(r.env_id, r.exp_name, r.seed)
            run_dir = Path(args.runs_dir).resolve() / name  # absolute: a resume may start elsewhere
            runs.append(GroupRun(r, name, run_dir, r.kl_beta, EpisodeLog()))
    else:
        runs = [
            GroupRun(r, s["name"], Path(s["dir"]), s["kl_beta"], EpisodeLog(), s["global_step"],
                s["diverged_at_step"], s["wall_time"])
            for r, s in zip(runs_args, saved["runs"], strict=True)
        ]  # fmt: skip
        for run, s in zip(runs, saved["runs"], strict=True):
            run.episodes.load_state_dict(s["episodes"])
        agent.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        envs.load_state_dict(_map(lambda t: t.numpy(), saved["normalizers"]))
        set_rng_state(saved["rng"])
        active = saved["active"].clone()
        start_iteration, wall_before = saved["iteration"], saved["wall_time"]
    for run in runs:
        run.tracker = Tracker(run.dir, run.name, {**asdict(run.args), "runner": "batched"})
    stop = StopRequest().install()
    group_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(group_dir / "group.json", {"runs": [str(r.dir) for r in runs],
                                                 "env_id": args.env_id})  # fmt: skip
    progress = Progress(num_iterations * args.num_steps * num_runs,
                        initial=sum(r.global_step for r in runs))  # fmt: skip
    shared, loss_config = group_args(runs_args)
    rollout = GroupRollout(shared, envs, runs)
    # Each run's env seed is the trainer's: its seed + the iteration it starts from.
    next_obs = rollout.reset([r.seed + start_iteration for r in runs_args])
    session_start = time.time()
    start_steps = [r.global_step for r in runs]
    try:
        for iteration in range(start_iteration + 1, num_iterations + 1):
            if not active.any():
                break
            iter_start = time.time()
            anneal_learning_rate(optimizer, shared, iteration, num_iterations, (1, 1.0))
            rollout.learning = learning = active.clone()  # whose steps and episodes count

            # 1. Run each policy pi_old for T steps in its env, one forward pass for all runs.
            next_obs = rollout.collect_steps(agent, next_obs)
            for run, on in zip(runs, learning.tolist(), strict=True):
                run.global_step += args.num_steps if on else 0
            rollout_seconds = time.time() - iter_start

            # 2-3. pi_old and V for every run's batch, GAE per run (eqs. 11-12).
            batch = train.batch_of(agent, rollout, next_obs, shared)

            # 4. K epochs of minibatch Adam on each run's eq. 9, all runs in one pass.
            step = GroupStep(active)
            losses = train.update(
                agent, optimizer, batch, shared, loss_config, kl_betas(runs), 0,
                step=step, draw_order=random_orders(num_runs),
            )  # fmt: skip
            update_seconds = time.time() - iter_start - rollout_seconds
            wall = wall_before + time.time() - session_start
            for i in np.flatnonzero(step.newly_frozen.numpy()):
                runs[i].diverged_at_step, runs[i].wall_time = runs[i].global_step, wall
                print(f"diverged: run {runs[i].name} at step {runs[i].global_step}; frozen, "
                      "the other runs go on", file=sys.stderr, flush=True)  # fmt: skip

            # 5. Adaptive KL penalty per run: d = KL[pi_old || pi] over its batch vs d_targ.
            if any(r.objective == "adaptive_kl" for r in runs_args):
                batch_kl = train.kl_after_update(agent, batch)
                lr = optimizer.param_groups[0]["lr"]
                for run, kl, on in zip(runs, batch_kl, active.tolist(), strict=True):
                    if on:
                        run.kl_beta, _ = adapt_to_kl(run.args, run.kl_beta, lr, kl)

            # 6. Logging, with the trainer's metrics, into each run's own folder.
            log_iteration(runs, learning, optimizer, losses.means(), batch, start_steps,
                          session_start, iter_start, rollout_seconds, update_seconds)  # fmt: skip
            done = sum(r.global_step for r in runs)
            progress.update(done, (done - sum(start_steps)) / (time.time() - session_start), None)
            final = iteration == num_iterations
            every = args.save_every
            if final or stop.requested or (every > 0 and iteration % every == 0):
                save_group(group_dir, args, runs, agent, optimizer, iteration,
                           wall_before + time.time() - session_start, active, envs)  # fmt: skip
            if stop.requested and not final:
                print(f"stopped after iteration {iteration}; continue with --resume {group_dir}",
                      flush=True)  # fmt: skip
                break
    finally:
        stop.uninstall()
        wall = wall_before + time.time() - session_start
        for run in runs:
            atomic_write_json(
                run.dir / "summary.json", run.summary(num_iterations * args.num_steps, wall, commit)
            )
            run.tracker.close()
        progress.close()
        envs.close()
    stop_if_any_diverged(runs, group_dir)


def log_iteration(
    runs: list[GroupRun], learning: torch.Tensor, optimizer, loss_means: dict[str, list[float]],
    batch: train.Batch, start_steps: list[int], session_start: float, iter_start: float,
    rollout_seconds: float, update_seconds: float,
) -> None:  # fmt: skip
    """Each learning run's ``train.iteration_metrics`` and the group's timings, in its folder."""
    elapsed = time.time() - session_start
    done = sum(r.global_step for r in runs)
    lr = optimizer.param_groups[0]["lr"]
    for i, run in enumerate(runs):
        if not learning[i]:
            continue
        metrics = iteration_metrics(
            lr, {k: v[i] for k, v in loss_means.items()}, batch.old[i], run.kl_beta
        )
        run.tracker.log({
            "charts/SPS": (run.global_step - start_steps[i]) / elapsed,
            "charts/iteration_seconds": time.time() - iter_start,
            "charts/rollout_seconds": rollout_seconds,  # the group's, as the two below
            "charts/update_seconds": update_seconds,
            "charts/group_SPS": (done - sum(start_steps)) / elapsed,
            **metrics,
        }, run.global_step)  # fmt: skip


def refuse_changed_flags(args: Args, saved: Args, given_flags: Collection[str]) -> None:
    """A resumed group goes on with its saved settings: a flag given with another value is
    refused in one line (given again with its saved value, it is accepted). ``given_flags`` holds
    both readings of a ``--no-`` flag (``no_anneal_lr`` and ``anneal_lr``): only fields count."""
    given = {name for name in given_flags if hasattr(saved, name)} - {"resume", "group_dir"}
    for name in sorted(given):
        if getattr(args, name) != getattr(saved, name):
            exit_usage(
                f"{flag(name)}: cannot be changed when resuming a group (--resume {args.resume} "
                f"goes on with the settings it was started with, {getattr(saved, name)!r}); "
                "start a new group to change it"
            )


def stop_if_any_diverged(runs: list[GroupRun], group_dir: Path) -> None:
    """Exit ``EXIT_DIVERGED`` (3), as the trainer does, when any run diverged; one line."""
    diverged = [r for r in runs if r.diverged_at_step is not None]
    if diverged:
        names = ", ".join(f"{r.name} at step {r.diverged_at_step}" for r in diverged)
        print(f"diverged: {len(diverged)} of {len(runs)} runs ({names}); each kept its last good "
              f"checkpoint; the group's is in {group_dir}", file=sys.stderr, flush=True)  # fmt: skip
        raise SystemExit(EXIT_DIVERGED)


if __name__ == "__main__":
    main(parse_args(Args, validate), flags_on_command_line())


# For launchers: the command that runs a list of single-trainer runs as one group.
# ---------------------------------------------------------------------------------------------

# Trainer settings this runner does not have; a run must leave them at the trainer's defaults.
UNSUPPORTED = ("num_envs", "target_kl", "bootstrap_truncated", "capture_video", "track", "init_from",
               "resume")  # fmt: skip


def unsupported_flag(run: train.Args) -> str | None:
    """The first of ``UNSUPPORTED`` that ``run`` sets away from the trainer's default, if any."""
    defaults = train.Args()
    return next((n for n in UNSUPPORTED if getattr(run, n) != getattr(defaults, n)), None)


def _shared_fields() -> list[str]:
    """The single trainer's flags a group writes once: every run of the group must agree on them."""
    return [f.name for f in fields(Args) if f.name in TRAINER_FIELDS]


def shared_settings(run: train.Args) -> tuple[Any, ...]:
    """A run's values of the flags a group shares: runs with equal values can be one group."""
    return tuple(getattr(run, name) for name in _shared_fields())


def command_for(runs: list[train.Args], group_dir: str | Path, save_every: int = 10) -> list[str]:
    """``python ppo_continuous/batched.py ...`` running ``runs`` (the single trainer's settings of
    each, e.g. parsed from a sweep's trainer flags) as one group; ValueError if they cannot be."""
    for run in runs:
        name = unsupported_flag(run)
        if name is not None:
            raise ValueError(f"--{name.replace('_', '-')} is not supported by the batched runner")
    command = [sys.executable, str(Path(__file__).resolve())]
    for name in _shared_fields():
        values = {getattr(run, name) for run in runs}
        if len(values) != 1:
            raise ValueError(f"runs of one group differ in --{name.replace('_', '-')}: {values}")
        value = values.pop()
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            command.append(flag if value else "--no-" + name.replace("_", "-"))
        else:
            command += [flag, str(value)]
    singular = {"exp_names": "exp_name", "seeds": "seed", "objectives": "objective",
                "clip_coefs": "clip_coef", "kl_betas": "kl_beta", "kl_targets": "kl_target"}  # fmt: skip
    for name in PER_RUN:
        command += ["--" + name.replace("_", "-"), *(str(getattr(r, singular[name])) for r in runs)]
    return [*command, "--group-dir", str(group_dir), "--save-every", str(save_every)]
