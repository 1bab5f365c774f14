"""TRPO for continuous control, the PPO paper's main baseline, in the trainers' style.

    python ppo_continuous/trpo.py --env-id Hopper-v5

Schulman et al. 2015, "Trust Region Policy Optimization" (arXiv 1502.05477), as the PPO paper's
Figure 3 runs it: maximise the surrogate L(theta) = E[r_t(theta) A_t] (PPO paper eq. 6) subject to
E[KL[pi_old || pi_theta]] <= delta (eq. 3-4 there). One step per batch: the natural gradient
x = F^-1 g by conjugate gradient on Fisher-vector products (the Hessian of the analytic KL, by
double backprop), scaled to the trust region, beta = sqrt(2 delta / x^T F x) (TRPO appendix C),
then a backtracking line search that keeps a step only if its KL is within delta and it improves
the surrogate. The value function is fitted by its own Adam on the same batch. Everything else is
the PPO trainer's: its env factory and normalisation, its network (``train.Agent``), GAE, and the
run scaffold (``common/run.py``), so a difference in a plot is the algorithm's.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import torch

from common.args import CodeLevelArgs
from common.cli import flags_on_command_line, parse_args
from common.distributions import gaussian_kl, gaussian_log_prob
from common.gae import advantages_and_returns
from common.losses import explained_variance, normalize_advantages
from common.run import Run
from ppo_continuous import train

TRAINER = "trpo_continuous"  # the checkpoints' tag; ppo_continuous/evaluate.py plays them


@dataclass
class Args(CodeLevelArgs):
    """Every flag of TRPO; the experiment, tracking, checkpoint and code-level ones are
    shared (common/args.py)."""

    resumable_flags = CodeLevelArgs.resumable_flags | {"torch_threads"}

    exp_name: str = "trpo_continuous"
    """the name of this experiment, part of the run name"""
    algorithm: str = "trpo"
    """the algorithm's name in summary.json (this file runs TRPO only)"""
    torch_threads: int = 1
    """intra-op threads for torch; 1 is fastest for these small MLPs on a CPU"""
    env_id: str = "HalfCheetah-v5"
    """any gymnasium environment with a Box action space"""
    total_timesteps: int = 1_000_000
    """total environment steps of the experiment"""
    num_envs: int = 1
    """parallel environments"""
    num_steps: int = 2048
    """steps per environment per batch (the PPO trainer's, so both see the same data per update)"""
    gamma: float = 0.99
    """discount factor gamma"""
    gae_lambda: float = 0.95
    """GAE lambda (TRPO's paper used Monte Carlo returns; GAE as in PPO keeps one variable)"""
    max_kl: float = 0.01
    """delta, the trust region: the largest mean KL[pi_old || pi] of one step"""
    cg_iters: int = 10
    """conjugate-gradient iterations for x = F^-1 g"""
    cg_damping: float = 0.1
    """added to F (F + damping I), as in TRPO's code, so CG is stable"""
    backtrack_iters: int = 10
    """line-search steps: the full step, then shrunk by --backtrack-coef each time"""
    backtrack_coef: float = 0.8
    """the line search's shrink factor"""
    value_learning_rate: float = 1e-3
    """Adam step size of the value function"""
    optimizer_eps: float = 1e-5
    """epsilon of the value function's Adam (the PPO trainer's; the 2017 code's: 1e-8)"""
    value_epochs: int = 5
    """epochs of value-function fitting per batch"""
    value_minibatches: int = 32
    """minibatches per value epoch"""
    norm_adv: bool = True
    """normalise the batch's advantages (as Stable-Baselines3's TRPO does)"""
    bootstrap_truncated: bool = False
    """bootstrap time-limit truncations from V(final obs); off, as in the PPO trainer"""


def validate(args: Args) -> None:
    """Refuse bad input before any work starts (one line, exit code 2): every flag's rule in
    ``common/validation.py``, then the env id as the PPO trainer checks it."""
    train.validate(args)


# --8<-- [start:conjugate_gradient]
def conjugate_gradient(
    fvp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int, tol: float = 1e-10
) -> torch.Tensor:
    """Solve F x = b for a symmetric positive-definite F given only products F v (TRPO app. C)."""
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    r_dot = r @ r
    for _ in range(iters):
        fp = fvp(p)
        alpha = r_dot / (p @ fp)
        x += alpha * p
        r -= alpha * fp
        new_r_dot = r @ r
        if new_r_dot < tol:
            break
        p = r + (new_r_dot / r_dot) * p
        r_dot = new_r_dot
    return x
    # --8<-- [end:conjugate_gradient]


class Policy:
    """The actor's parameters as one flat vector, and what TRPO needs of them on one batch."""

    def __init__(self, agent: train.Agent, obs: torch.Tensor, actions: torch.Tensor) -> None:
        self.agent, self.obs, self.actions = agent, obs, actions
        self.params = [*agent.actor_mean.parameters(), agent.actor_log_std]
        with torch.no_grad():  # pi_old; log_std is a view of the parameter set_flat overwrites
            mean, log_std = self._distribution()
            self.old_log_prob = gaussian_log_prob(actions, mean, log_std)
        self.old_mean, self.old_log_std = mean, log_std.clone()

    def flat(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.params])

    def set_flat(self, flat: torch.Tensor) -> None:
        with torch.no_grad():
            offset = 0
            for p in self.params:
                p.copy_(flat[offset : offset + p.numel()].view_as(p))
                offset += p.numel()

    def surrogate(self, advantages: torch.Tensor) -> torch.Tensor:
        """L(theta) = E[pi_theta(a|s) / pi_old(a|s) A] (eq. 6 of the PPO paper), to maximise."""
        log_prob = gaussian_log_prob(self.actions, *self._distribution())
        return (torch.exp(log_prob - self.old_log_prob) * advantages).mean()

    def mean_kl(self) -> torch.Tensor:
        """E[KL[pi_old || pi_theta]], exact for Gaussians."""
        mean, log_std = self._distribution()
        return gaussian_kl(self.old_mean, self.old_log_std, mean, log_std).mean()

    def _distribution(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.agent.actor_mean(self.obs)
        return mean, self.agent.actor_log_std.expand_as(mean)

    def fisher_vector_product(self, damping: float) -> Callable[[torch.Tensor], torch.Tensor]:
        """v -> (F + damping I) v, with F the Hessian of the mean KL at theta_old (double backprop)."""
        grads = torch.autograd.grad(self.mean_kl(), self.params, create_graph=True)
        flat_grad = torch.cat([g.reshape(-1) for g in grads])

        def fvp(v: torch.Tensor) -> torch.Tensor:
            hv = torch.autograd.grad(flat_grad @ v, self.params, retain_graph=True)
            return torch.cat([h.reshape(-1) for h in hv]) + damping * v

        return fvp


# --8<-- [start:trpo_step]
def trpo_step(policy: Policy, advantages: torch.Tensor, args: Args) -> dict[str, float]:
    """One natural-gradient step inside the trust region, or none if the line search fails."""
    surrogate = policy.surrogate(advantages)
    g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(surrogate, policy.params)])
    fvp = policy.fisher_vector_product(args.cg_damping)
    x = conjugate_gradient(fvp, g, args.cg_iters)  # x = F^-1 g, the natural gradient
    step = torch.sqrt(2 * args.max_kl / (x @ fvp(x)).clamp(min=1e-12)) * x  # to the region's edge
    return line_search(policy, advantages, step, g @ step, args, surrogate.item())


def line_search(
    policy: Policy,
    advantages: torch.Tensor,
    step: torch.Tensor,
    expected: torch.Tensor,
    args: Args,
    surrogate_before: float,
) -> dict[str, float]:
    """Try theta + c^k step, k = 0, 1, ...: keep the first with KL <= delta and a better surrogate;
    with none, theta is left as it was."""
    old = policy.flat()
    for k in range(args.backtrack_iters):
        fraction = args.backtrack_coef**k
        policy.set_flat(old + fraction * step)
        with torch.no_grad():
            kl, improvement = policy.mean_kl().item(), policy.surrogate(advantages).item() - surrogate_before  # fmt: skip
        if kl <= args.max_kl and improvement > 0:
            return {"kl": kl, "improvement": improvement, "expected_improvement": float(expected) * fraction,
                    "step_fraction": fraction, "accepted": 1.0}  # fmt: skip
    policy.set_flat(old)
    return {"kl": 0.0, "improvement": 0.0, "expected_improvement": float(expected),
            "step_fraction": 0.0, "accepted": 0.0}  # fmt: skip
    # --8<-- [end:trpo_step]


def fit_value(agent: train.Agent, optimizer, obs, returns, args: Args) -> float:
    """The value function's own regression on the batch's targets R_t; returns the last loss."""
    loss = torch.zeros(())
    for _epoch in range(args.value_epochs):
        for mb in torch.randperm(len(obs)).split(max(1, len(obs) // args.value_minibatches)):
            loss = 0.5 * (agent.value(obs[mb]) - returns[mb]).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return loss.item()


def main(args: Args, given_flags: Collection[str] = ()) -> None:
    with Run(
        args,
        TRAINER,
        given_flags,
        package="ppo_continuous",
        script="ppo_continuous/trpo.py",
        ranks_supported=False,
    ) as run:
        args, device = run.args, run.device
        torch.set_num_threads(args.torch_threads)
        envs = train.make_envs(args, run.video_folder)
        agent = train.Agent.for_envs(envs, args.init).to(device)
        value_optimizer = torch.optim.Adam(agent.critic.parameters(), lr=args.value_learning_rate, eps=args.optimizer_eps)  # fmt: skip
        run.start(agent, value_optimizer, envs, normalizers=train.normalizers(envs))
        learn(args, run, envs, agent, value_optimizer)


def learn(args: Args, run: Run, envs, agent: train.Agent, value_optimizer) -> None:
    """Collect a batch with pi_old, GAE, one TRPO step for the policy, then fit the value."""
    device, state = run.device, run.state
    rollout = train.Rollout(args, envs, device)
    next_obs = rollout.reset(args.seed + state.iteration)
    for _iteration in run.iterations():
        next_obs = rollout.collect(agent, next_obs, run)
        b_obs, b_actions = rollout.flatten(rollout.obs), rollout.flatten(rollout.actions)
        with torch.no_grad():
            values = agent.value(b_obs).reshape(args.num_steps, args.num_envs)
            final_values = agent.value(rollout.final_obs) if args.bootstrap_truncated else None
            advantages, returns = advantages_and_returns(
                rollout.rewards, values, agent.value(next_obs), rollout.terminations,
                rollout.truncations, final_values, args.gamma, args.gae_lambda,
            )  # fmt: skip
        b_advantages, b_returns = advantages.reshape(-1), returns.reshape(-1)
        if args.norm_adv:
            b_advantages = normalize_advantages(b_advantages)

        policy = Policy(agent, b_obs, b_actions)
        step = trpo_step(policy, b_advantages, args)
        value_loss = fit_value(agent, value_optimizer, b_obs, b_returns, args)
        run.log_iteration({
            "losses/value_loss": value_loss,
            "losses/kl": step["kl"],
            "losses/surrogate_improvement": step["improvement"],
            "losses/expected_improvement": step["expected_improvement"],
            "losses/step_fraction": step["step_fraction"],
            "losses/explained_variance": explained_variance(values.reshape(-1), b_returns),
        })  # fmt: skip


if __name__ == "__main__":
    main(parse_args(Args, validate), flags_on_command_line())
