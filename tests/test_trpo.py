"""TRPO's pieces (ppo_continuous/trpo.py): conjugate gradient, the Fisher-vector product, the
trust-region step and its line search; then TRPO end to end on a real env."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import assert_usage_error, only_run_dir, run_trainer, scalars
from torch import nn

from ppo_continuous import trpo

OBS_DIM, ACT_DIM, BATCH = 3, 2, 64


class TinyAgent(nn.Module):
    """The actor interface ``trpo.Policy`` uses, small enough to build its Fisher matrix by hand:
    a linear mean and a state-independent log-std (10 parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.actor_mean = nn.Sequential(nn.Linear(OBS_DIM, ACT_DIM))
        self.actor_log_std = nn.Parameter(torch.tensor([-0.3, 0.2]))


def tiny_problem(seed: int = 0):
    torch.manual_seed(seed)
    agent = TinyAgent()
    obs = torch.randn(BATCH, OBS_DIM)
    with torch.no_grad():
        actions = agent.actor_mean(obs) + torch.randn(BATCH, ACT_DIM)
    advantages = torch.randn(BATCH)
    return agent, obs, actions, advantages


def test_conjugate_gradient_solves_a_random_spd_system():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(20, 20, generator=gen, dtype=torch.float64)
    spd = a @ a.T + 0.5 * torch.eye(20, dtype=torch.float64)
    b = torch.randn(20, generator=gen, dtype=torch.float64)
    # tol far below the default (which stops at a residual of 1e-5): the solve itself is checked
    x = trpo.conjugate_gradient(lambda v: spd @ v, b, iters=60, tol=1e-28)
    torch.testing.assert_close(x, torch.linalg.solve(spd, b), rtol=1e-8, atol=1e-8)
    few = trpo.conjugate_gradient(lambda v: spd @ v, b, iters=3)
    assert (spd @ few - b).norm() < b.norm()  # fewer iterations: an approximation that helps


def explicit_fisher(agent: TinyAgent, obs: torch.Tensor) -> torch.Tensor:
    """The Gaussian policy's Fisher matrix, built from its definition rather than from the KL:
    F = mean over states of J^T diag(1/sigma^2) J for the mean's parameters (J = d mean / d theta)
    and 2 on the diagonal for each log-std; no cross terms."""
    weight, bias = agent.actor_mean[0].weight, agent.actor_mean[0].bias
    n_mean = weight.numel() + bias.numel()
    inv_var = torch.exp(-2 * agent.actor_log_std.detach())
    fisher = torch.zeros(n_mean + ACT_DIM, n_mean + ACT_DIM)
    for s in obs:
        jac = torch.zeros(ACT_DIM, n_mean)  # d mean_i / d (W row-major, then b)
        for i in range(ACT_DIM):
            jac[i, i * OBS_DIM : (i + 1) * OBS_DIM] = s
            jac[i, weight.numel() + i] = 1.0
        fisher[:n_mean, :n_mean] += jac.T @ torch.diag(inv_var) @ jac / len(obs)
    fisher[n_mean:, n_mean:] = 2 * torch.eye(ACT_DIM)
    return fisher


def test_fisher_vector_product_equals_the_explicit_fisher_matrix():
    agent, obs, actions, _ = tiny_problem()
    policy = trpo.Policy(agent, obs, actions)
    fisher = explicit_fisher(agent, obs)
    damping = 0.1
    fvp = policy.fisher_vector_product(damping)
    for seed in range(3):
        v = torch.randn(fisher.shape[0], generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(fvp(v), fisher @ v + damping * v, rtol=1e-4, atol=1e-5)


def test_an_accepted_step_stays_in_the_trust_region_and_improves_the_surrogate():
    agent, obs, actions, advantages = tiny_problem(1)
    args = trpo.Args(max_kl=0.01)
    policy = trpo.Policy(agent, obs, actions)
    before = policy.flat()
    surrogate_before = policy.surrogate(advantages).item()
    step = trpo.trpo_step(policy, advantages, args)
    assert step["accepted"] == 1.0
    with torch.no_grad():
        kl, surrogate_after = policy.mean_kl().item(), policy.surrogate(advantages).item()
    assert 0 < kl <= args.max_kl and kl == pytest.approx(step["kl"])
    assert surrogate_after > surrogate_before
    assert not torch.equal(policy.flat(), before)


def test_the_line_search_shrinks_a_step_that_leaves_the_region():
    agent, obs, actions, advantages = tiny_problem(3)
    args = trpo.Args(max_kl=0.01, backtrack_iters=30, backtrack_coef=0.5)
    policy = trpo.Policy(agent, obs, actions)
    surrogate = policy.surrogate(advantages)
    g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(surrogate, policy.params)])
    uphill = 2.0 * g / g.norm()  # improves the surrogate, but far outside a KL of 0.01
    policy.set_flat(policy.flat() + uphill)
    with torch.no_grad():
        assert policy.mean_kl().item() > 10 * args.max_kl  # the full step leaves the region
    policy.set_flat(policy.flat() - uphill)
    result = trpo.line_search(policy, advantages, uphill, g @ uphill, args, surrogate.item())
    assert result["accepted"] == 1.0 and result["step_fraction"] < 1.0
    assert result["kl"] <= args.max_kl and result["improvement"] > 0


def test_a_failed_line_search_leaves_the_policy_unchanged():
    agent, obs, actions, advantages = tiny_problem(2)
    args = trpo.Args(max_kl=0.01)
    policy = trpo.Policy(agent, obs, actions)
    before = policy.flat()
    surrogate = policy.surrogate(advantages)
    g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(surrogate, policy.params)])
    downhill = -0.01 * g / g.norm()  # every fraction of it lowers the surrogate
    result = trpo.line_search(policy, advantages, downhill, g @ downhill, args, surrogate.item())
    assert result["accepted"] == 0.0
    assert torch.equal(policy.flat(), before)


@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        (["--env-id", "BreakoutNoFrameskip-v4"], "--env-id"),  # discrete actions: Atari
        (["--max-kl", "-0.01"], "--max-kl"),
        (["--backtrack-coef", "1.5"], "--backtrack-coef"),
    ],
)
def test_bad_input_is_one_line_exit_2(flags, flag, tmp_path):
    result = run_trainer("ppo_continuous", *flags, cwd=tmp_path, script="trpo.py")
    assert_usage_error(result, flag)
    assert result.stderr.startswith(f"error: {flag}:") and result.stderr.count("\n") == 1


def test_trpo_learns_inverted_pendulum(tmp_path):
    """Random play keeps InvertedPendulum-v5 up for about 10 steps; TRPO (delta 0.01, batches of
    2,048) on seed 1 must average 500 or more over its last 10 episodes at 40,960 steps."""
    result = run_trainer(
        "ppo_continuous", "--env-id", "InvertedPendulum-v5", "--seed", "1",
        "--total-timesteps", "40960", "--save-every", "0", "--runs-dir", str(tmp_path / "runs"),
        cwd=tmp_path, script="trpo.py",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(tmp_path / "runs")
    returns = [v for _, v in scalars(run_dir)["charts/episodic_return"]]
    assert sum(returns[:10]) / 10 < 50
    assert sum(returns[-10:]) / 10 >= 500, returns[-10:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["algorithm"] == "trpo" and summary["status"] == "finished"
    kls = [v for _, v in scalars(run_dir)["losses/kl"]]
    assert max(kls) <= 0.01  # every accepted step inside the trust region
