"""The Atari trainer as a user runs it: 2-iteration runs on both backends, bad input."""

from __future__ import annotations

import math

import pytest
from conftest import assert_usage_error, only_run_dir, run_trainer, scalars, summary

SMALL = ["--num-envs", "4", "--num-steps", "64", "--num-minibatches", "2", "--update-epochs", "2",
         "--total-timesteps", "512"]  # fmt: skip


@pytest.mark.parametrize("backend", ["ale_vector", "gymnasium"])
def test_two_iterations_on_each_backend(backend, runs_dir, tmp_path):
    result = run_trainer(
        "ppo_atari", "--env-id", "BreakoutNoFrameskip-v4", "--env-backend", backend, *SMALL,
        "--runs-dir", str(runs_dir), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(runs_dir)
    logged = scalars(run_dir)
    for name in ["charts/SPS", "charts/learning_rate", "losses/value_loss", "losses/policy_loss",
                 "losses/entropy", "losses/approx_kl", "losses/clipfrac", "losses/explained_variance",
                 "losses/kl_beta"]:  # fmt: skip
        assert [step for step, _ in logged[name]] == [256, 512], name
    # Entropy starts near log(4): the policy head is initialised with a small gain.
    assert logged["losses/entropy"][0][1] == pytest.approx(math.log(4), abs=0.05)
    done = summary(run_dir)
    assert done["global_step"] == 512 and done["env_backend"] == backend
    assert (run_dir / "checkpoints" / "latest.pt").is_file()


def test_paper_table5_flags_anneal_clip_and_lr(runs_dir, tmp_path):
    result = run_trainer(
        "ppo_atari", "--update-epochs", "3", "--vf-coef", "2", "--anneal-clip", "--num-envs", "2",
        "--num-steps", "32", "--num-minibatches", "2", "--total-timesteps", "256",
        "--runs-dir", str(runs_dir), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    logged = scalars(only_run_dir(runs_dir))
    clip = [v for _, v in logged["charts/clip_coef"]]
    lr = [v for _, v in logged["charts/learning_rate"]]
    # 4 iterations: alpha = 1, 3/4, 1/2, 1/4 for both.
    assert clip == pytest.approx([0.1, 0.075, 0.05, 0.025])
    assert lr == pytest.approx([2.5e-4, 1.875e-4, 1.25e-4, 0.625e-4])


@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        (["--env-id", "NoSuchGameNoFrameskip-v4"], "--env-id"),  # unknown game
        (["--env-id", "CartPole-v1"], "--env-id"),  # not an Atari id
        (["--env-backend", "envpool"], "--env-backend"),  # no such backend
        (["--num-minibatches", "3"], "--num-minibatches"),
        (["--precision", "fp8"], "--precision"),
    ],
)
def test_bad_input_is_one_line_exit_2_before_any_work(flags, flag, runs_dir, tmp_path):
    result = run_trainer(
        "ppo_atari", *flags, "--runs-dir", str(runs_dir), cwd=tmp_path, timeout=120
    )
    assert_usage_error(result, flag)
    assert list(runs_dir.iterdir()) == []
