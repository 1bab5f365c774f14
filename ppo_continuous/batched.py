"""Several PPO runs in one process: their envs stepped together, their networks batched.

    python ppo_continuous/batched.py --env-id Hopper-v5 --seeds 1 \\
        --exp-names clip_0.2 no_clip adaptive_kl_0.01 \\
        --objectives clip none adaptive_kl --kl-targets 0.01 --no-clip-vloss

The paper's Table 1 is 231 short runs of one tiny network each. Run one at a time, about nine
tenths of a run is per-step Python and torch work for a single 64-64 MLP, not MuJoCo (issue 12).
Here R runs share one process: every env step runs one forward pass for all R policies, and every
minibatch one forward, one backward and one Adam step for all R networks, so that overhead is paid
once per group instead of once per run.

Learning per step is the single trainer's (``ppo_continuous/train.py``, the readable reference):

- each run has its own env and env seed, and its observations and rewards are normalised and
  clipped exactly as the trainer's wrapper stack does it (``run_envs.RunEnvs`` computes those
  wrappers for all runs at once, number for number the same); it starts from the weights the
  trainer would build for its seed;
- the networks are the trainer's ``Agent``, R of them, with their parameters stacked on a leading
  run axis and evaluated with ``torch.baddbmm``: run r only ever sees its own slice;
- each run draws its own minibatch permutation per epoch; the loss is the sum over runs of each
  run's eq. 9 loss, so the gradient of run r's slice is exactly run r's gradient;
- the objective of each run is set by two coefficients: eq. 7's epsilon (infinite for the other
  objectives, which leaves exactly r_t A_t, eq. 6) and eq. 8's beta (0 for clip and none);
- one Adam over the stacked parameters is R independent Adams, because Adam is elementwise and all
  runs share the learning-rate schedule; the gradient norm is clipped per run over its own slices;
- the adaptive-KL beta is updated per run by ``common.objectives.adapt_kl_beta``.

What differs: the action noise and the minibatch permutations come from one torch generator for
the whole group (seeded with the first run's seed), so a run's exact trajectory depends on its
group; its statistics do not. A run whose loss or gradient norm goes non-finite is frozen (no
further update reaches its weights) and written as ``diverged`` while the others go on.

Each run writes its own ``<runs-dir>/<env>__<exp_name>__<seed>__<time>/`` (TensorBoard events and
a ``summary.json`` as the trainer writes them, plus ``"runner": "batched"``), so the sweep's record
and reports read it unchanged. The group's checkpoint (all runs' weights, Adam state, normalisers,
betas, episode logs, RNG states) goes to ``<group-dir>/checkpoints/latest.pt``; SIGTERM and Ctrl-C
finish the iteration, save and exit 0, and ``--resume <group-dir>`` continues.

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
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.func import vmap

from common.checkpoint import StopRequest, rng_state, set_rng_state
from common.cli import UsageError, default_run_name, exit_usage, parse_args, require_registered_env
from common.distributions import gaussian_entropy, gaussian_kl, gaussian_log_prob
from common.episodes import EpisodeLog, run_summary
from common.files import atomic_write_bytes, atomic_write_json
from common.gae import advantages_and_returns
from common.losses import combined_loss, explained_variance, normalize_advantages, value_loss
from common.objectives import OBJECTIVES, Objective, adapt_kl_beta, clipped_surrogate
from common.runtime import code_version, host_description, route_mujoco_warnings
from common.schedules import linear_anneal
from common.tracking import Progress, Tracker
from common.validation import make_env_or_usage_error
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
    """normalise advantages within each minibatch"""
    clip_vloss: bool = True
    """clip the value loss around the rollout's values, as ppo2 does (Table 1: --no-clip-vloss)"""
    ent_coef: float = 0.0
    """entropy coefficient c2"""
    vf_coef: float = 0.5
    """value-function coefficient c1"""
    max_grad_norm: float = 0.5
    """gradient-norm clip, per run"""

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
    """Refuse bad input before any work starts (one line, exit code 2)."""
    if args.resume:
        if args.group_dir is not None and Path(args.group_dir) != Path(args.resume):
            raise UsageError("--group-dir", "a resumed group goes on in the folder it resumes")
        return  # every other setting comes from the checkpoint
    lengths = {name: len(getattr(args, name)) for name in PER_RUN}
    for name, length in lengths.items():
        if length not in (1, args.num_runs):
            raise UsageError(
                f"--{name.replace('_', '-')}",
                f"give one value per run or one for all; got {length} values for {args.num_runs} runs",
            )
    for objective in args.objectives:
        if objective not in OBJECTIVES:
            raise UsageError("--objectives", f"unknown objective {objective!r}")
    names = list(zip(args.per_run("exp_names"), args.per_run("seeds"), strict=True))
    if len(set(names)) != len(names):
        raise UsageError("--exp-names", "two runs have the same exp name and seed")
    positive = {"total_timesteps": args.total_timesteps, "num_steps": args.num_steps,
                "num_minibatches": args.num_minibatches, "update_epochs": args.update_epochs,
                "learning_rate": args.learning_rate, "torch_threads": args.torch_threads}  # fmt: skip
    for name, value in positive.items():
        if value <= 0:
            raise UsageError(f"--{name.replace('_', '-')}", f"must be positive, got {value}")
    if args.num_steps % args.num_minibatches or args.num_steps // args.num_minibatches < 2:
        raise UsageError("--num-minibatches", f"must divide --num-steps {args.num_steps} into "
                         "minibatches of 2 or more samples")  # fmt: skip
    require_registered_env(args.env_id)
    check_backend(args.env_backend, args.env_id)
    route_mujoco_warnings()
    probe = make_env_or_usage_error(args.env_id)
    is_box = isinstance(probe.action_space, gym.spaces.Box)
    probe.close()
    if not is_box:
        raise UsageError("--env-id", f"{args.env_id!r} has no Box (continuous) action space")


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
        """V(s) per run: obs (R, B, obs_dim) -> (R, B)."""
        return self._mlp(obs, self.critic_weights, self.critic_biases).squeeze(-1)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """One sampled action a ~ N(mu(s), sigma) per run: obs (R, obs_dim) -> (R, act_dim)."""
        mean = self._mlp(obs.unsqueeze(1), self.actor_weights, self.actor_biases).squeeze(1)
        return mean + self.actor_log_std.exp() * torch.randn_like(mean)

    def evaluate(self, obs: torch.Tensor, actions: torch.Tensor):
        """log pi(a|s), entropy, V(s), mean and log_std for (R, B, ...) batches, as ``Agent.evaluate``."""
        mean = self._mlp(obs, self.actor_weights, self.actor_biases)
        log_std = self.actor_log_std.unsqueeze(1).expand_as(mean)
        log_prob = gaussian_log_prob(actions, mean, log_std)
        return log_prob, gaussian_entropy(log_std), self.value(obs), mean, log_std

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


def initial_agents(seeds: list[int], obs_dim: int, act_dim: int) -> list[train.Agent]:
    """Each run's initial network, exactly as the single trainer builds it for its seed."""
    agents = []
    for seed in seeds:
        torch.manual_seed(seed)  # what seed_everything does before the trainer builds its Agent
        agents.append(train.Agent(obs_dim, act_dim))
    return agents


# ---------------------------------------------------------------------------------------------
# The loss and the update.
# ---------------------------------------------------------------------------------------------


@dataclass
class Coefficients:
    """Each run's objective as numbers, shape (R,): see ``coefficients``."""

    policy_clip: torch.Tensor
    """eq. 7's epsilon; inf for the objectives without clipping (then the surrogate is r_t A_t)"""
    value_clip: torch.Tensor
    """the value clipping range (the run's --clip-coef, used with --clip-vloss)"""
    kl_beta: torch.Tensor
    """eq. 8's beta; 0 for clip and none"""


def coefficients(runs: list[train.Args], kl_betas: list[float]) -> Coefficients:
    """Per-run (epsilon, value clip, beta) that turn one formula into each run's surrogate.

    ``kl_betas`` are the runs' current betas (the adaptive ones change every iteration).
    """
    inf = math.inf
    return Coefficients(
        policy_clip=torch.tensor([r.clip_coef if r.objective == "clip" else inf for r in runs]),
        value_clip=torch.tensor([r.clip_coef for r in runs]),
        kl_beta=torch.tensor(
            [b if r.objective in ("fixed_kl", "adaptive_kl") else 0.0 for r, b in zip(runs, kl_betas, strict=True)]
        ),
    )  # fmt: skip


def run_loss(
    new_log_prob: torch.Tensor,
    entropy: torch.Tensor,
    new_values: torch.Tensor,
    kl: torch.Tensor,
    old_log_prob: torch.Tensor,
    old_values: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    policy_clip: torch.Tensor,
    value_clip: torch.Tensor,
    kl_beta: torch.Tensor,
    *,
    vf_coef: float,
    ent_coef: float,
    clip_vloss: bool,
    norm_adv: bool,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 9 for one run's minibatch, as ``common.losses.ppo_loss`` with the objective as numbers.

    The policy term is L^CLIP (eq. 7) minus beta E[KL] (eq. 8): with epsilon = inf the clipped
    term is exactly r_t A_t (eq. 6), and beta = 0 drops the penalty. Called through ``vmap`` over
    the run axis, so every mean (advantage normalisation included) is over one run's samples.
    """
    log_ratio = new_log_prob - old_log_prob
    ratio = log_ratio.exp()
    if norm_adv:
        advantages = normalize_advantages(advantages)
    pg_loss = clipped_surrogate(ratio, advantages, policy_clip) + kl_beta * kl.mean()
    v_loss = value_loss(new_values, old_values, returns, value_clip, clip_vloss)
    return combined_loss(
        pg_loss, v_loss, entropy, vf_coef, ent_coef, kl, log_ratio, ratio, value_clip
    )


@dataclass
class Batch:
    """One rollout of every run, run-major: (R, T, ...) tensors."""

    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    means: torch.Tensor
    log_stds: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor

    def minibatch(self, index: torch.Tensor) -> Batch:
        """Each run's own samples: ``index`` is (R, M), row r indexing run r's batch."""
        rows = torch.arange(index.shape[0]).unsqueeze(1)
        return Batch(*(getattr(self, f.name)[rows, index] for f in fields(Batch)))


def clip_grad_norms(parameters: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Per run, ``torch.nn.utils.clip_grad_norm_`` over that run's slices; returns the norms (R,)."""
    grads = [p.grad for p in parameters]
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads], dim=1).norm(dim=1)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)  # clip_grad_norm_'s formula
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))
    return norms


def freeze(optimizer: torch.optim.Adam, parameters: list[nn.Parameter], runs: torch.Tensor) -> None:
    """Stop Adam from moving the slices of ``runs`` (bool, (R,)): zero their moments.

    With zero moments and (from now on) zero gradients, Adam's step for those slices is exactly 0.
    """
    for p in parameters:
        state = optimizer.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key][runs] = 0.0


def update(
    agent: BatchedAgent,
    optimizer: torch.optim.Adam,
    batch: Batch,
    coefs: Coefficients,
    permutations: torch.Tensor,
    active: torch.Tensor,
    *,
    num_minibatches: int,
    vf_coef: float,
    ent_coef: float,
    clip_vloss: bool,
    norm_adv: bool,
    max_grad_norm: float,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """K epochs of minibatch Adam on eq. 9 for all runs at once (Algorithm 1's optimisation step).

    ``permutations`` (K, R, T) holds each run's sample order for each epoch. ``active`` (R,) marks
    the runs still learning; a run whose loss or gradient norm is not finite is frozen before the
    step (cleared in ``active``, in place). Returns each statistic's mean per run, (R,), and the
    mask of runs frozen in this update.
    """
    parameters = list(agent.parameters())
    loss_fn = vmap(
        lambda *xs: run_loss(*xs, vf_coef=vf_coef, ent_coef=ent_coef, clip_vloss=clip_vloss,
                             norm_adv=norm_adv)
    )  # fmt: skip
    newly_frozen = torch.zeros_like(active)
    stats = []
    for epoch_order in permutations:
        for index in epoch_order.split(epoch_order.shape[1] // num_minibatches, dim=1):
            mb = batch.minibatch(index)
            new_log_prob, entropy, new_values, mean, log_std = agent.evaluate(mb.obs, mb.actions)
            kl = gaussian_kl(mb.means, mb.log_stds, mean, log_std)
            losses, mb_stats = loss_fn(
                new_log_prob, entropy, new_values, kl, mb.log_probs, mb.values, mb.advantages,
                mb.returns, coefs.policy_clip, coefs.value_clip, coefs.kl_beta,
            )  # fmt: skip
            optimizer.zero_grad(set_to_none=True)
            # Each run's loss depends on its own slices only, so the sum's gradient is per run.
            torch.where(active, losses, 0.0).sum().backward()
            norms = clip_grad_norms(parameters, max_grad_norm)
            bad = active & ~(torch.isfinite(losses.detach()) & torch.isfinite(norms))
            if bad.any():  # one host sync per minibatch, as the trainer's divergence check
                active &= ~bad
                newly_frozen |= bad
                freeze(optimizer, parameters, bad)
            if not active.all():
                for p in parameters:  # frozen runs get no gradient (and so no Adam step)
                    p.grad.masked_fill_(~active.view(-1, *([1] * (p.dim() - 1))), 0.0)
            optimizer.step()
            stats.append(mb_stats)
    means = {k: torch.stack([s[k] for s in stats]).mean(0) for k in stats[0]}
    return means, newly_frozen


def random_permutations(epochs: int, num_runs: int, batch_size: int) -> torch.Tensor:
    """(K, R, T): an independent random order of each run's T samples for each epoch."""
    return torch.rand(epochs, num_runs, batch_size).argsort(dim=-1)


def adapt_kl_betas(
    runs: list[train.Args], betas: list[float], batch_kl: list[float]
) -> list[float]:
    """Section 4's rule (``adapt_kl_beta``) for each adaptive-KL run; other betas unchanged."""
    return [
        adapt_kl_beta(beta, kl, run.kl_target) if run.objective == "adaptive_kl" else beta
        for run, beta, kl in zip(runs, betas, batch_kl, strict=True)
    ]


# ---------------------------------------------------------------------------------------------
# Bookkeeping: per-run state, the group checkpoint, stop requests.
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

    def summary(self, total_timesteps: int, wall_time: float) -> dict[str, Any]:
        """``common.episodes.run_summary`` with what ``Saver.write_summary`` adds, and the runner."""
        wall = self.wall_time if self.wall_time is not None else wall_time
        extra = {"runner": "batched", "commit": code_version(), "host": host_description()}
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
    """The whole group's state in one file, written atomically (``latest.pt``)."""
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
    buffer = io.BytesIO()
    torch.save(data, buffer)
    atomic_write_bytes(group_dir / "checkpoints" / "latest.pt", buffer.getvalue())


def load_group(group_dir: str | Path) -> dict[str, Any]:
    """A group checkpoint, checked; any problem exits 2 with one line."""
    file = Path(group_dir) / "checkpoints" / "latest.pt"
    if not file.is_file():
        exit_usage(f"--resume: no group checkpoint at {file}")
    data = torch.load(file, map_location="cpu", weights_only=True)
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
# The loop: Algorithm 1 for all runs at once.
# ---------------------------------------------------------------------------------------------


def main(args: Args) -> None:
    saved = load_group(args.resume) if args.resume else None
    if saved is not None:
        resume_from = args.resume
        args = Args(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved["args"].items()})
        args.resume = resume_from
    runs_args = run_args(args)
    num_runs = len(runs_args)
    torch.set_num_threads(args.torch_threads)
    group_dir = Path(
        args.resume or args.group_dir
        or f"{args.runs_dir}/groups/{args.env_id.replace('/', '-')}__batched__{int(time.time())}"
    )  # fmt: skip

    # Each run's env: the trainer's wrapper stack, one env per run, stepped together.
    envs = make_run_envs(args.env_backend, args.env_id, num_runs, args.gamma)
    obs_dim, act_dim = int(np.prod(envs.obs_shape)), int(np.prod(envs.action_shape))
    agent = BatchedAgent(initial_agents([r.seed for r in runs_args], obs_dim, act_dim))
    parameters = list(agent.parameters())
    optimizer = torch.optim.Adam(parameters, lr=args.learning_rate, eps=1e-5, fused=True)
    # Action noise and minibatch orders: one generator for the group, seeded by the first run.
    random.seed(runs_args[0].seed)
    np.random.seed(runs_args[0].seed)
    torch.manual_seed(runs_args[0].seed)

    batch_size = args.num_steps
    minibatch_count = args.num_minibatches
    num_iterations = max(1, args.total_timesteps // batch_size)
    total_timesteps = num_iterations * batch_size
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
    progress = Progress(num_iterations * batch_size * num_runs,
                        initial=sum(r.global_step for r in runs))  # fmt: skip

    # Rollout storage, (T, R, ...): the runs are GAE's env axis.
    obs = torch.zeros((args.num_steps, num_runs, obs_dim))
    actions = torch.zeros((args.num_steps, num_runs, act_dim))
    rewards = torch.zeros((args.num_steps, num_runs))
    terminations = torch.zeros((args.num_steps, num_runs), dtype=torch.bool)
    truncations = torch.zeros_like(terminations)

    seeds = [r.seed + start_iteration for r in runs_args]  # the trainer's seed + iteration
    next_obs = torch.as_tensor(envs.reset(seeds), dtype=torch.float32)
    session_start = time.time()
    start_steps = [r.global_step for r in runs]
    iteration = start_iteration
    try:
        for iteration in range(start_iteration + 1, num_iterations + 1):
            if not active.any():
                break
            iter_start = time.time()
            if args.anneal_lr:
                optimizer.param_groups[0]["lr"] = linear_anneal(
                    args.learning_rate, iteration, num_iterations
                )
            learning = active.clone()  # the runs whose steps and episodes count this iteration

            # 1. Run each policy pi_old for T steps in its env, one forward pass for all runs.
            for step in range(args.num_steps):
                obs[step] = next_obs
                with torch.no_grad():
                    action = agent.act(next_obs)
                actions[step] = action
                next_obs_np, reward, terminated, truncated, episodes = envs.step(action.numpy())
                rewards[step] = torch.as_tensor(reward)
                terminations[step] = torch.as_tensor(terminated)
                truncations[step] = torch.as_tensor(truncated)
                next_obs = torch.as_tensor(next_obs_np, dtype=torch.float32)
                for i, (episode_return, length) in episodes.items():
                    if learning[i]:
                        run = runs[i]
                        run.episodes.add(episode_return, length)
                        run.tracker.log({"charts/episodic_return": episode_return,
                                         "charts/episodic_length": length},
                                        run.global_step + step + 1)  # fmt: skip
            for run, on in zip(runs, learning.tolist(), strict=True):
                run.global_step += args.num_steps if on else 0

            rollout_seconds = time.time() - iter_start
            # 2-3. Log pi_old, values and the old distribution in one pass; GAE per run (eqs. 11-12).
            rollout_obs, rollout_actions = obs.transpose(0, 1), actions.transpose(0, 1)
            with torch.no_grad():
                log_probs, _, values, means, log_stds = agent.evaluate(rollout_obs, rollout_actions)
                advantages, returns = advantages_and_returns(
                    rewards, values.T, agent.value(next_obs.unsqueeze(1)).squeeze(1),
                    terminations, truncations, None, args.gamma, args.gae_lambda,
                )  # fmt: skip
            batch = Batch(rollout_obs, rollout_actions, log_probs, values, means, log_stds.clone(),
                          advantages.T, returns.T)  # fmt: skip

            # 4. K epochs of minibatch Adam on each run's eq. 9, all runs in one pass.
            betas = [r.kl_beta for r in runs]
            stats, frozen = update(
                agent, optimizer, batch, coefficients(runs_args, betas),
                random_permutations(args.update_epochs, num_runs, batch_size), active,
                num_minibatches=minibatch_count, vf_coef=args.vf_coef, ent_coef=args.ent_coef,
                clip_vloss=args.clip_vloss, norm_adv=args.norm_adv,
                max_grad_norm=args.max_grad_norm,
            )  # fmt: skip
            update_seconds = time.time() - iter_start - rollout_seconds
            wall = wall_before + time.time() - session_start
            for i in np.flatnonzero(frozen.numpy()):
                runs[i].diverged_at_step, runs[i].wall_time = runs[i].global_step, wall
                print(f"diverged: run {runs[i].name} at step {runs[i].global_step}; frozen, "
                      "the other runs go on", file=sys.stderr, flush=True)  # fmt: skip

            # 5. Adaptive KL penalty per run: d = KL[pi_old || pi] over its batch vs d_targ.
            if any(r.objective == "adaptive_kl" for r in runs_args):
                with torch.no_grad():
                    _, _, _, mean, log_std = agent.evaluate(batch.obs, batch.actions)
                    batch_kl = gaussian_kl(batch.means, batch.log_stds, mean, log_std).mean(1)
                betas = adapt_kl_betas(runs_args, betas, batch_kl.tolist())
                for run, beta, on in zip(runs, betas, active.tolist(), strict=True):
                    run.kl_beta = beta if on else run.kl_beta

            # 6. Logging, with the trainer's metric names, into each run's own folder.
            elapsed = time.time() - session_start
            done = sum(r.global_step for r in runs)
            per_run = {k: v.tolist() for k, v in stats.items()}
            for i, run in enumerate(runs):
                if not learning[i]:
                    continue
                run.tracker.log({
                    "charts/learning_rate": optimizer.param_groups[0]["lr"],
                    "charts/SPS": (run.global_step - start_steps[i]) / elapsed,
                    "charts/iteration_seconds": time.time() - iter_start,
                    "charts/rollout_seconds": rollout_seconds,  # the group's, as the two below
                    "charts/update_seconds": update_seconds,
                    "charts/group_SPS": (done - sum(start_steps)) / elapsed,
                    **{f"losses/{k}": v[i] for k, v in per_run.items()},
                    "losses/explained_variance": explained_variance(batch.values[i], batch.returns[i]),
                    "losses/kl_beta": run.kl_beta,
                }, run.global_step)  # fmt: skip
            progress.update(done, (done - sum(start_steps)) / elapsed, None)
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
        wall = wall_before + time.time() - session_start
        for run in runs:
            summary = run.summary(total_timesteps, wall)
            atomic_write_json(run.dir / "summary.json", summary)
            run.tracker.close()
        progress.close()
        envs.close()


if __name__ == "__main__":
    main(parse_args(Args, validate))


# ---------------------------------------------------------------------------------------------
# For launchers: the command that runs a list of single-trainer runs as one group.
# ---------------------------------------------------------------------------------------------

# Trainer settings this runner does not have; a run must leave them at the trainer's defaults.
UNSUPPORTED = ("num_envs", "target_kl", "bootstrap_truncated", "capture_video", "track", "init_from",
               "resume")  # fmt: skip


def command_for(runs: list[train.Args], group_dir: str | Path, save_every: int = 10) -> list[str]:
    """``python ppo_continuous/batched.py ...`` running ``runs`` (the single trainer's settings of
    each, e.g. parsed from a sweep's trainer flags) as one group; ValueError if they cannot be."""
    defaults = train.Args()
    for name in UNSUPPORTED:
        for run in runs:
            if getattr(run, name) != getattr(defaults, name):
                raise ValueError(
                    f"--{name.replace('_', '-')} is not supported by the batched runner"
                )
    command = [sys.executable, str(Path(__file__).resolve())]
    for f in fields(Args):
        if f.name not in TRAINER_FIELDS:
            continue
        values = {getattr(run, f.name) for run in runs}
        if len(values) != 1:
            raise ValueError(f"runs of one group differ in --{f.name.replace('_', '-')}: {values}")
        value = values.pop()
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            command.append(flag if value else "--no-" + f.name.replace("_", "-"))
        else:
            command += [flag, str(value)]
    singular = {"exp_names": "exp_name", "seeds": "seed", "objectives": "objective",
                "clip_coefs": "clip_coef", "kl_betas": "kl_beta", "kl_targets": "kl_target"}  # fmt: skip
    for name in PER_RUN:
        command += ["--" + name.replace("_", "-"), *(str(getattr(r, singular[name])) for r in runs)]
    return [*command, "--group-dir", str(group_dir), "--save-every", str(save_every)]
