"""The code-level flags (the 2017 setup, docs/results/setup-2017.md): each changes the computation
it names, its default keeps today's, and bad values are refused like every flag's."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import only_run_dir, run_trainer

from common.cli import parse_args
from common.divergence import clip_gradients
from ppo_continuous import cem, train, trpo

PENDULUM = dict(env_id="Pendulum-v1", num_envs=1)


def step_envs(args: train.Args, steps: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Observations and rewards of ``steps`` fixed actions through the trainer's env factory."""
    envs = train.make_envs(args)
    envs.reset(seed=3)
    observations, rewards = [], []
    for t in range(steps):
        obs, reward, *_ = envs.step(np.full((1, 1), np.sin(t), dtype=np.float32))
        observations.append(obs.copy())
        rewards.append(reward.copy())
    envs.close()
    return np.concatenate(observations), np.concatenate(rewards)


def raw_rewards(steps: int = 50) -> np.ndarray:
    env = gym.make("Pendulum-v1")
    env.reset(seed=3)
    rewards = [env.step(np.array([np.sin(t)], dtype=np.float32))[1] for t in range(steps)]
    env.close()
    return np.array(rewards)


def test_no_norm_reward_passes_the_env_reward_through_and_the_default_scales_it():
    raw = raw_rewards()
    _, unscaled = step_envs(train.Args(**PENDULUM, norm_reward=False))
    _, scaled = step_envs(train.Args(**PENDULUM))
    np.testing.assert_allclose(unscaled, raw, rtol=1e-6)
    assert not np.allclose(scaled, raw, rtol=1e-2)  # divided by the return's running std
    envs = train.make_envs(train.Args(**PENDULUM, norm_reward=False))
    assert set(train.normalizers(envs)) == {"obs_rms_0"}  # no return statistics to save
    envs.close()


def test_obs_clip_bounds_the_normalised_observations():
    tight, _ = step_envs(train.Args(**PENDULUM, obs_clip=0.5))
    assert np.abs(tight).max() == pytest.approx(0.5)  # reached, and never passed
    wide, _ = step_envs(train.Args(**PENDULUM))
    assert np.abs(wide).max() > 0.5


def row_norms(layer: torch.nn.Linear) -> torch.Tensor:
    return layer.weight.detach().norm(dim=1)


def test_normc_init_gives_rows_of_the_2017_norms_and_orthogonal_stays_the_default():
    torch.manual_seed(0)
    normc = train.Agent(11, 3, init="normc")
    for layer, norm in [(normc.critic[0], 1.0), (normc.critic[2], 1.0), (normc.critic[4], 1.0),
                        (normc.actor_mean[0], 1.0), (normc.actor_mean[4], 0.01)]:  # fmt: skip
        torch.testing.assert_close(row_norms(layer), torch.full((layer.out_features,), norm))
        assert not layer.bias.any()
    torch.manual_seed(0)
    default = train.Agent(11, 3)
    torch.manual_seed(0)
    orthogonal = train.Agent(11, 3, init="orthogonal")
    assert all(
        torch.equal(a, b)
        for a, b in zip(default.parameters(), orthogonal.parameters(), strict=True)
    )
    # 64 orthogonal rows of gain sqrt(2) in 11 dimensions are not all of one norm
    assert row_norms(default.critic[0]).std() > 0.1


def test_max_grad_norm_0_leaves_the_gradients_as_they_are():
    def gradients(max_norm: float) -> tuple[torch.Tensor, float]:
        weight = torch.nn.Parameter(torch.ones(4))
        loss = (weight * torch.arange(4.0) * 10).sum()
        loss.backward()
        norm = clip_gradients([weight], max_norm, loss, step=0)
        return weight.grad, norm.item()

    unclipped, norm = gradients(0)
    torch.testing.assert_close(unclipped, torch.arange(4.0) * 10)
    assert norm == pytest.approx(float(torch.linalg.vector_norm(torch.arange(4.0) * 10)))
    clipped, same_norm = gradients(0.5)
    assert same_norm == pytest.approx(norm)
    assert torch.linalg.vector_norm(clipped).item() == pytest.approx(0.5, rel=1e-4)


def advantages_seen_by_the_loss(monkeypatch, scope: str) -> tuple[train.Args, list, list]:
    """The batch's advantages ``update`` gets, and those each minibatch's loss gets."""
    seen_batch, seen_minibatches = [], []
    real_update, real_loss = train.update, train.ppo_loss

    def spy_update(agent, optimizer, batch, *rest, **kwargs):
        seen_batch.append(batch.advantages.clone())
        return real_update(agent, optimizer, batch, *rest, **kwargs)

    def spy_loss(config, old, new, advantages, *rest, **kwargs):
        seen_minibatches.append(advantages.detach().clone())
        return real_loss(config, old, new, advantages, *rest, **kwargs)

    monkeypatch.setattr(train, "update", spy_update)
    monkeypatch.setattr(train, "ppo_loss", spy_loss)
    args = train.Args(**PENDULUM, num_steps=256, num_minibatches=4, update_epochs=1,
                      total_timesteps=256, adv_norm_scope=scope, save_every=0)  # fmt: skip
    return args, seen_batch, seen_minibatches


@pytest.mark.parametrize("scope", ["batch", "minibatch"])
def test_adv_norm_scope_standardises_where_it_says(monkeypatch, tmp_path, scope):
    args, seen_batch, seen_minibatches = advantages_seen_by_the_loss(monkeypatch, scope)
    train.main(dataclasses.replace(args, runs_dir=str(tmp_path)))
    (batch,) = seen_batch
    assert len(seen_minibatches) == 4
    batch_standard = abs(batch.mean().item()) < 1e-5 and abs(batch.std().item() - 1) < 1e-4
    minibatch_standard = all(
        abs(mb.mean().item()) < 1e-5 and abs(mb.std().item() - 1) < 1e-4 for mb in seen_minibatches
    )
    assert batch_standard == (scope == "batch")  # Pendulum's raw advantages are far from it
    assert minibatch_standard == (scope == "minibatch")


def test_optimizer_eps_reaches_the_optimizers_of_ppo_and_trpo(tmp_path):
    for trainer, extra in [("train.py", ["--num-minibatches", "4"]), ("trpo.py", [])]:
        runs = tmp_path / trainer
        result = run_trainer(
            "ppo_continuous", "--env-id", "Pendulum-v1", "--num-steps", "256",
            "--total-timesteps", "256", "--optimizer-eps", "1e-8", "--runs-dir", str(runs),
            *extra, script=trainer,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        saved = torch.load(only_run_dir(runs) / "checkpoints" / "latest.pt", weights_only=False)
        assert saved["optimizer"]["param_groups"][0]["eps"] == 1e-8


def test_code_level_flags_exist_on_every_continuous_runner_with_todays_defaults():
    for module in (train, trpo, cem):
        args = module.Args()
        assert (args.norm_reward, args.obs_clip, args.init) == (True, 10.0, "orthogonal")
    assert train.Args().optimizer_eps == trpo.Args().optimizer_eps == 1e-5
    assert (train.Args().adv_norm_scope, train.Args().max_grad_norm) == ("minibatch", 0.5)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--obs-clip", "0"], "error: --obs-clip: must be a positive number"),
        (["--optimizer-eps", "-1e-8"], "error: --optimizer-eps: must be a positive number"),
        (
            ["--max-grad-norm", "-1"],
            "error: --max-grad-norm: must be 0 (no clipping) or a positive",
        ),
        (["--adv-norm-scope", "episode"], "--adv-norm-scope"),
        (["--init", "xavier"], "--init"),
    ],
)
def test_bad_code_level_values_are_refused_in_one_line(capsys, tmp_path, argv, message):
    with pytest.raises(SystemExit) as stop:
        parse_args(train.Args, train.validate, ["--env-id", "Pendulum-v1", "--runs-dir",
                                                str(tmp_path), *argv])  # fmt: skip
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_the_2017_setup_trains_and_plays(tmp_path):
    """Every 2017 flag at once through a run and evaluate.py (no return statistics saved)."""
    runs = tmp_path / "runs"
    result = run_trainer(
        "ppo_continuous", "--env-id", "Pendulum-v1", "--num-steps", "256", "--num-minibatches",
        "4", "--total-timesteps", "512", "--runs-dir", str(runs), "--no-norm-reward",
        "--obs-clip", "5", "--adv-norm-scope", "batch", "--max-grad-norm", "0", "--no-anneal-lr",
        "--optimizer-eps", "1e-8", "--init", "normc", "--no-clip-vloss",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    played = run_trainer("ppo_continuous", str(only_run_dir(runs)), "--episodes", "1",
                         script="evaluate.py")  # fmt: skip
    assert played.returncode == 0, played.stderr
