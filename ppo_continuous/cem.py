"""The cross-entropy method for continuous control, one of the PPO paper's Figure 3 baselines.

    python ppo_continuous/cem.py --env-id Hopper-v5

Szita and Lorincz 2006, "Learning Tetris Using the Noisy Cross-Entropy Method": a Gaussian
N(mu, diag(sigma^2)) over the policy's parameters; each iteration samples a population of parameter
vectors, scores each by the return of its episodes, and refits mu and sigma^2 to the best
``--elite-frac`` of them, with extra variance that decays over the first iterations so the search
does not collapse early. The policy is the PPO trainer's actor mean network, acting
deterministically; its envs, observation normalisation and run scaffold are the PPO trainer's too,
and every env step counts, so its curves share the x axis with the other algorithms.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from common.args import CodeLevelArgs
from common.cli import flags_on_command_line, parse_args
from common.run import Run
from ppo_continuous import train

TRAINER = "cem_continuous"  # the checkpoints' tag; ppo_continuous/evaluate.py plays them


@dataclass
class Args(CodeLevelArgs):
    """Every flag of CEM; the experiment, tracking, checkpoint and code-level ones are
    shared (common/args.py)."""

    resumable_flags = CodeLevelArgs.resumable_flags | {"torch_threads"}

    exp_name: str = "cem_continuous"
    """the name of this experiment, part of the run name"""
    algorithm: str = "cem"
    """the algorithm's name in summary.json (this file runs CEM only)"""
    torch_threads: int = 1
    """intra-op threads for torch; 1 is fastest for these small MLPs on a CPU"""
    env_id: str = "HalfCheetah-v5"
    """any gymnasium environment with a Box action space"""
    total_timesteps: int = 1_000_000
    """total environment steps of the experiment"""
    num_envs: int = 1
    """environments: 1 (CEM scores one parameter vector at a time, in one env; others are refused)"""
    num_steps: int = 20_000
    """env steps per iteration, shared by the population: num_steps / population each (1,000 by
    default, the MuJoCo tasks' time limit, so a member plays whole episodes)"""
    population: int = 20
    """parameter vectors sampled per iteration"""
    elite_frac: float = 0.2
    """the best fraction of the population that mu and sigma are refitted to"""
    init_std: float = 0.1
    """sigma of the first iteration's search distribution, around the PPO trainer's initial weights"""
    extra_std: float = 0.02
    """extra standard deviation added to sigma after each refit, decaying to 0 ..."""
    extra_decay_iterations: int = 10
    """... linearly over this many iterations (Szita and Lorincz's noisy CEM)"""
    gamma: float = 0.99
    """the discount of the PPO trainer's reward normalisation (part of its env factory)"""


def validate(args: Args) -> None:
    """Refuse bad input before any work starts (one line, exit code 2): every flag's rule in
    ``common/validation.py``, then the env id as the PPO trainer checks it."""
    train.validate(args)


class SearchDistribution:
    """N(mu, diag(sigma^2)) over the actor's parameters; saved in checkpoints as an optimizer is."""

    def __init__(self, mean: torch.Tensor, std: float) -> None:
        # Detached: ``mean`` comes from the actor's parameters, and with their autograd history
        # every iteration's samples would be chained onto it, so memory would grow each iteration.
        self.mean = mean.detach().clone()
        self.std = torch.full_like(self.mean, std)

    def sample(self, count: int) -> torch.Tensor:
        return self.mean + self.std * torch.randn(count, self.mean.numel())

    # --8<-- [start:cem_refit]
    def refit(
        self, samples: torch.Tensor, scores: np.ndarray, elites: int, extra_std: float
    ) -> None:
        """mu, sigma^2 <- the mean and variance of the ``elites`` best samples, plus extra^2."""
        best = samples[np.argsort(-scores, kind="stable")[:elites]]
        self.mean = best.mean(0)
        self.std = torch.sqrt(best.var(0, unbiased=False) + extra_std**2)
        # --8<-- [end:cem_refit]

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.std = state["mean"].clone(), state["std"].clone()


def score(agent: train.Agent, envs, steps: int, run: Run) -> float:
    """Run the deterministic policy for ``steps`` env steps from a fresh episode; the mean return
    of the episodes it finished (each one logged), or the running one's return if none finished.
    An episode still running when the steps are spent is not logged: with the default 1,000 steps
    each, the MuJoCo tasks' time limit, that is one begun after an earlier one ended."""
    obs, _ = envs.reset()
    returns = []
    for _ in range(steps):
        with torch.no_grad():
            action = agent.actor_mean(torch.as_tensor(obs, dtype=torch.float32))
        obs, _, _, _, info = envs.step(action.numpy())
        run.state.global_step += 1
        if "final_info" in info:
            episode = info["final_info"]["episode"]
            for i in np.flatnonzero(info["final_info"]["_episode"]):
                returns.append(float(episode["r"][i]))
                run.log_episode(episode["r"][i], episode["l"][i])
    if returns:
        return float(np.mean(returns))
    return float(np.sum(envs.envs[0].get_wrapper_attr("episode_returns")))


def main(args: Args, given_flags: Collection[str] = ()) -> None:
    with Run(args, TRAINER, given_flags, package="ppo_continuous", script="ppo_continuous/cem.py",
             ranks_supported=False) as run:  # fmt: skip
        args = run.args
        torch.set_num_threads(args.torch_threads)
        envs = train.make_envs(args, run.video_folder)
        agent = train.Agent.for_envs(
            envs, args.init
        )  # on the CPU, where the search distribution is
        search = SearchDistribution(parameters_to_vector(agent.actor_mean.parameters()), args.init_std)  # fmt: skip
        run.start(agent, search, envs, normalizers=train.normalizers(envs))
        learn(args, run, envs, agent, search)


def learn(args: Args, run: Run, envs, agent: train.Agent, search: SearchDistribution) -> None:
    """Sample a population, score each member by its episodes, refit to the elite; the agent's
    weights are the search's mean after each iteration (what checkpoints and evaluate.py play)."""
    elites = round(args.elite_frac * args.population)
    steps_each = args.num_steps // args.population
    envs.reset(seed=args.seed + run.state.iteration)  # later resets continue its RNG
    for iteration in run.iterations():
        samples = search.sample(args.population)
        scores = np.empty(args.population)
        for k, theta in enumerate(samples):
            vector_to_parameters(theta, agent.actor_mean.parameters())
            scores[k] = score(agent, envs, steps_each, run)
        fade = max(0.0, 1.0 - (iteration - 1) / args.extra_decay_iterations)
        search.refit(samples, scores, elites, args.extra_std * fade)
        vector_to_parameters(search.mean, agent.actor_mean.parameters())
        run.log_iteration({
            "losses/population_best": float(scores.max()),
            "losses/population_mean": float(scores.mean()),
            "losses/elite_mean": float(np.sort(scores)[-elites:].mean()),
            "losses/search_std": float(search.std.mean()),
        })  # fmt: skip


if __name__ == "__main__":
    main(parse_args(Args, validate), flags_on_command_line())
