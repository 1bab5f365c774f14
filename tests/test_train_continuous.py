"""The continuous-control trainer as a user runs it: short runs, its metrics, bad input."""

from __future__ import annotations

import math

import pytest
from conftest import assert_usage_error, only_run_dir, run_trainer, scalars, summary

CLEANRL_METRICS = {
    "charts/episodic_return",
    "charts/episodic_length",
    "charts/SPS",
    "charts/learning_rate",
    "losses/value_loss",
    "losses/policy_loss",
    "losses/entropy",
    "losses/approx_kl",
    "losses/clipfrac",
    "losses/explained_variance",
    "losses/kl_beta",
}


@pytest.mark.parametrize(
    "env_id", ["Pendulum-v1", "HalfCheetah-v5", "BipedalWalker-v3", "LunarLanderContinuous-v3"]
)
def test_two_iterations_write_cleanrl_metrics(env_id, runs_dir, tmp_path):
    # 2 iterations of 2 envs x 512 steps; Pendulum episodes last 200 steps, HalfCheetah's 1000, and
    # the Box2D tasks' random walkers and landers crash within a few hundred (the seed's own tasks,
    # installed with the project).
    result = run_trainer(
        "ppo_continuous", "--env-id", env_id, "--num-envs", "2", "--num-steps", "512",
        "--num-minibatches", "4", "--update-epochs", "2", "--total-timesteps", "2048",
        "--runs-dir", str(runs_dir), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(runs_dir)
    logged = scalars(run_dir)
    assert set(logged) >= CLEANRL_METRICS, CLEANRL_METRICS - set(logged)
    assert [step for step, _ in logged["charts/SPS"]] == [1024, 2048]
    assert all(math.isfinite(v) for _, v in logged["losses/value_loss"])
    done = summary(run_dir)
    assert done["global_step"] == 2048 and done["finished"] is True
    assert done["episodes"] == len(logged["charts/episodic_return"]) > 0
    # The learning rate anneals from the initial value at iteration 1.
    assert logged["charts/learning_rate"][0][1] == pytest.approx(3e-4)
    assert logged["charts/learning_rate"][1][1] == pytest.approx(1.5e-4)


@pytest.mark.parametrize(
    ("objective", "kl_target", "expected_betas"),
    [
        # A KL target no update can stay under doubles beta after every update (eq. 8's rule) ...
        ("adaptive_kl", "1e-9", [6.0, 12.0, 24.0]),
        # ... and one no update can reach halves it.
        ("adaptive_kl", "1e9", [1.5, 0.75, 0.375]),
        ("fixed_kl", "0.01", [3.0, 3.0, 3.0]),
        ("none", "0.01", [3.0, 3.0, 3.0]),
    ],
)
def test_other_objectives_run(objective, kl_target, expected_betas, runs_dir, tmp_path):
    result = run_trainer(
        "ppo_continuous", "--env-id", "Pendulum-v1", "--objective", objective, "--kl-beta", "3",
        "--kl-target", kl_target, "--num-steps", "256", "--num-minibatches", "4", "--update-epochs", "2",
        "--total-timesteps", "768", "--runs-dir", str(runs_dir), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    betas = [v for _, v in scalars(only_run_dir(runs_dir))["losses/kl_beta"]]
    assert betas == expected_betas


def test_bootstrap_truncated_runs(runs_dir, tmp_path):
    # Pendulum only ever truncates (200-step limit), so this exercises the V(final obs) path.
    result = run_trainer(
        "ppo_continuous", "--env-id", "Pendulum-v1", "--bootstrap-truncated", "--num-steps", "512",
        "--num-minibatches", "4", "--update-epochs", "1", "--total-timesteps", "512",
        "--runs-dir", str(runs_dir), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert summary(only_run_dir(runs_dir))["episodes"] == 2


@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        (["--env-id", "HalfCheeta-v5"], "--env-id"),  # unknown env id
        (["--env-id", "CartPole-v1"], "--env-id"),  # discrete actions
        (["--num-minibatches", "3"], "--num-minibatches"),  # 2048 is not divisible by 3
        (["--total-timesteps", "0"], "--total-timesteps"),
        (["--num-steps", "-5"], "--num-steps"),
        (["--objective", "trpo"], "--objective"),
        (["--learning-rate", "fast"], "--learning-rate"),
        (["--gamma", "1.5"], "--gamma"),  # was a traceback
        (["--ent-coef", "nan"], "--ent-coef"),  # was a run of NaN
        (["--env-id", "BreakoutNoFrameskip-v4"], "--env-id"),  # names the Atari trainer
    ],
)
def test_bad_input_is_one_line_exit_2_before_any_work(flags, flag, runs_dir, tmp_path):
    result = run_trainer(
        "ppo_continuous", *flags, "--runs-dir", str(runs_dir), cwd=tmp_path, timeout=120
    )
    assert_usage_error(result, flag)
    assert list(runs_dir.iterdir()) == []  # nothing was started


def test_discrete_env_message_says_what_is_allowed(runs_dir, tmp_path):
    result = run_trainer(
        "ppo_continuous", "--env-id", "CartPole-v1", "--runs-dir", str(runs_dir), cwd=tmp_path
    )
    assert "Box" in result.stderr and "Discrete" in result.stderr


def test_atari_id_message_names_the_atari_trainer(runs_dir, tmp_path):
    """ale-py registers its ids only when imported, which this trainer does not otherwise do."""
    result = run_trainer("ppo_continuous", "--env-id", "BreakoutNoFrameskip-v4",
                         "--runs-dir", str(runs_dir), cwd=tmp_path, timeout=120)  # fmt: skip
    assert_usage_error(result, "--env-id")
    assert "is an Atari game" in result.stderr and "ppo_atari/train.py" in result.stderr
    assert "not a registered" not in result.stderr
