"""A2C as a configuration of the PPO trainers (``--algorithm a2c``, common/algorithms.py).

The central check: the continuous trainer's own update, run with A2C's flags on a batch, moves the
weights exactly as one A2C step written out by hand (Mnih et al. 2016: the policy gradient
-E[A_t log pi(a_t|s_t)], half the squared value error, the entropy bonus, the global gradient-norm
clip and one RMSprop step) on the same batch.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from conftest import only_run_dir, run_trainer, scalars

from common.algorithms import A2C_CONTINUOUS, with_algorithm_defaults
from common.distributions import gaussian_entropy, gaussian_log_prob
from common.losses import LossConfig, OldPolicy
from ppo_continuous import train

OBS_DIM, ACT_DIM, BATCH = 3, 2, 16


def a2c_args(**flags) -> train.Args:
    return train.resolve(train.Args(algorithm="a2c", **flags))


def random_batch(agent: train.Agent, seed: int = 0) -> train.Batch:
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(BATCH, OBS_DIM, generator=gen)
    actions = torch.randn(BATCH, ACT_DIM, generator=gen)
    with torch.no_grad():
        log_probs, _, values, means, log_stds = agent.evaluate(obs, actions)
    advantages = torch.randn(BATCH, generator=gen) * 2 + 0.5
    returns = values + torch.randn(BATCH, generator=gen)
    return train.Batch(obs, actions, means, log_stds.clone(), advantages,
                       OldPolicy(log_probs, values, returns))  # fmt: skip


def hand_written_a2c_step(agent: train.Agent, batch: train.Batch, args: train.Args) -> None:
    """One A2C update: loss, backward, clip the global gradient norm, one RMSprop step from a
    fresh state (v = (1 - alpha) g^2, then theta -= lr g / (sqrt(v) + eps))."""
    mean = agent.actor_mean(batch.obs)
    log_std = agent.actor_log_std.expand_as(mean)
    log_prob = gaussian_log_prob(batch.actions, mean, log_std)
    values = agent.critic(batch.obs).squeeze(-1)
    policy_loss = -(batch.advantages * log_prob).mean()
    value_loss = 0.5 * (values - batch.old.returns).pow(2).mean()
    entropy = gaussian_entropy(log_std).mean()
    loss = policy_loss + args.vf_coef * value_loss - args.ent_coef * entropy
    params = list(agent.parameters())
    grads = torch.autograd.grad(loss, params)
    norm = torch.sqrt(sum(g.pow(2).sum() for g in grads))
    scale = min(1.0, args.max_grad_norm / (float(norm) + 1e-6))
    with torch.no_grad():
        for p, g in zip(params, grads, strict=True):
            g = g * scale
            v = (1 - args.rmsprop_alpha) * g.pow(2)
            p -= args.learning_rate * g / (v.sqrt() + 1e-5)


def test_the_a2c_configuration_is_baselines_a2c():
    args = a2c_args()
    assert (args.update_epochs, args.num_minibatches, args.num_steps) == (1, 1, 5)
    assert args.optimizer == "rmsprop" and not args.norm_adv and not args.clip_vloss
    assert args.gae_lambda == 1.0 and args.learning_rate == 7e-4
    ppo = train.resolve(train.Args())
    assert (ppo.optimizer, ppo.update_epochs, ppo.num_steps) == ("adam", 10, 2048)


def test_flags_given_keep_their_values_under_a2c():
    args = train.Args(algorithm="a2c", num_steps=64, learning_rate=7e-4)
    resolved = with_algorithm_defaults(args, {"a2c": A2C_CONTINUOUS}, given_flags={"num_envs"})
    assert resolved.num_steps == 64  # not the default: given in a direct call
    assert resolved.num_envs == train.Args().num_envs  # named on the command line: kept
    assert resolved.update_epochs == 1 and resolved.optimizer == "rmsprop"


@pytest.mark.parametrize("seed", [0, 1])
def test_a2c_update_equals_a_hand_written_a2c_step(seed):
    torch.manual_seed(seed)
    args = a2c_args(ent_coef=0.01, max_grad_norm=0.3)  # both terms in play, the clip binding
    agent = train.Agent(OBS_DIM, ACT_DIM)
    with torch.no_grad():
        agent.actor_mean[-1].weight.normal_(0, 0.5)  # a policy that is not ~0 everywhere
    reference = copy.deepcopy(agent)
    batch = random_batch(agent, seed)
    optimizer = train.make_optimizer(
        args.optimizer, agent.parameters(), args.learning_rate, args.rmsprop_alpha
    )
    before = [p.detach().clone() for p in agent.parameters()]
    train.update(agent, optimizer, batch, args, LossConfig.from_args(args), 1.0, global_step=0)
    hand_written_a2c_step(reference, batch, args)
    for (name, p), q, b in zip(agent.named_parameters(), reference.parameters(), before, strict=True):  # fmt: skip
        assert not torch.equal(p, b), f"{name} did not move"
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=f"{name} differs")


def test_a2c_runs_on_both_trainers(tmp_path):
    runs = tmp_path / "runs"
    for trainer, env_id, steps in (
        ("ppo_continuous", "Pendulum-v1", "40"),
        ("ppo_atari", "BreakoutNoFrameskip-v4", "160"),
    ):
        result = run_trainer(
            trainer, "--algorithm", "a2c", "--env-id", env_id, "--total-timesteps", steps,
            "--runs-dir", str(runs / trainer), cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        summary = json.loads((only_run_dir(runs / trainer) / "summary.json").read_text())
        assert summary["algorithm"] == "a2c" and summary["status"] == "finished"
        assert summary["global_step"] == int(steps)


def test_a2c_learns_inverted_pendulum(tmp_path):
    """A random policy keeps InvertedPendulum-v5 up for about 10 steps; A2C with baselines'
    settings (SB3's defaults for continuous control) reaches the 1,000 cap by about 30k steps on
    seed 1 (it may fall back later: A2C's constant step size). The last 10 episodes at 40,960
    steps must average 500 or more."""
    result = run_trainer(
        "ppo_continuous", "--algorithm", "a2c", "--env-id", "InvertedPendulum-v5", "--seed", "1",
        "--total-timesteps", "40960", "--save-every", "0", "--runs-dir", str(tmp_path / "runs"),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    returns = [v for _, v in scalars(only_run_dir(tmp_path / "runs"))["charts/episodic_return"]]
    first_10, last_10 = sum(returns[:10]) / 10, sum(returns[-10:]) / 10
    assert first_10 < 50, f"the untrained policy should be near random, got {first_10}"
    assert last_10 >= 500, f"mean of the last 10 episodes {last_10} (random policy: about 10)"


def test_adapt_step_size_follows_the_kl():
    from common.algorithms import adapt_step_size

    assert adapt_step_size(1e-3, 0.05, 0.01) == pytest.approx(1e-3 / 1.5)  # moved too far
    assert adapt_step_size(1e-3, 0.001, 0.01) == pytest.approx(1.5e-3)  # hardly moved
    assert adapt_step_size(1e-3, 0.01, 0.01) == 1e-3  # near the target: kept


def test_vpg_takes_one_step_per_batch_with_an_adapted_step_size(tmp_path):
    """--algorithm vpg: one policy-gradient step per batch; the logged step size moves from its
    start value by factors of 1.5 as the KL of each step asks."""
    args = train.resolve(train.Args(algorithm="vpg"))
    assert (args.update_epochs, args.num_minibatches, args.objective) == (1, 1, "none")
    assert args.lr_kl_target == 0.01 and not args.anneal_lr
    result = run_trainer(
        "ppo_continuous", "--algorithm", "vpg", "--env-id", "Pendulum-v1", "--num-steps", "256",
        "--total-timesteps", "2560", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(tmp_path / "runs")
    lrs = [v for _, v in scalars(run_dir)["charts/learning_rate"]]
    assert len(set(round(v, 12) for v in lrs)) > 1  # adapted
    for before, after in zip([3e-4, *lrs], lrs, strict=False):
        assert (
            after / before == pytest.approx(1.0)
            or after / before == pytest.approx(1.5)
            or (after / before == pytest.approx(1 / 1.5))
        )
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["algorithm"] == "vpg"
