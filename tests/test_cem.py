"""CEM (ppo_continuous/cem.py): the refit to the elite, bad input, and learning on a real env."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, assert_usage_error, only_run_dir, run_trainer, scalars

from ppo_continuous import cem


def test_refit_takes_the_mean_and_variance_of_the_elite_plus_extra_noise():
    search = cem.SearchDistribution(torch.zeros(2), std=1.0)
    samples = torch.tensor([[0.0, 0.0], [4.0, 2.0], [2.0, 6.0], [-9.0, -9.0]])
    scores = np.array([1.0, 10.0, 8.0, -5.0])
    search.refit(samples, scores, elites=2, extra_std=0.5)
    torch.testing.assert_close(search.mean, torch.tensor([3.0, 4.0]))  # of the two best
    torch.testing.assert_close(search.std, torch.sqrt(torch.tensor([1.0, 4.0]) + 0.25))


@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        (["--elite-frac", "1.5"], "--elite-frac"),
        (["--elite-frac", "0"], "--elite-frac"),
        (["--population", "3"], "--population"),  # does not divide 20,000
        (["--env-id", "PongNoFrameskip-v4"], "--env-id"),
    ],
)
def test_bad_input_is_one_line_exit_2(flags, flag, tmp_path):
    result = run_trainer("ppo_continuous", *flags, cwd=tmp_path, script="cem.py")
    assert_usage_error(result, flag)
    assert result.stderr.startswith(f"error: {flag}:") and result.stderr.count("\n") == 1


def test_cem_learns_inverted_pendulum(tmp_path):
    """Random play keeps InvertedPendulum-v5 up for about 10 steps. CEM searches ~4,500 weights
    with a population of 20, so in a CI budget it gets 200 steps per member (--num-steps 4000):
    the elite's mean score (episode returns, capped at 200 by that budget) must reach 100 within
    20 iterations (seed 1 reaches it by about the 12th). Its own score, not the logged episodes:
    those are only the episodes that ended within a member's 200 steps, the failures."""
    result = run_trainer(
        "ppo_continuous", "--env-id", "InvertedPendulum-v5", "--seed", "1", "--num-steps", "4000",
        "--total-timesteps", "80000", "--save-every", "0", "--runs-dir", str(tmp_path / "runs"),
        cwd=tmp_path, script="cem.py",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(tmp_path / "runs")
    elite = [v for _, v in scalars(run_dir)["losses/elite_mean"]]
    assert elite[0] < 50 and max(elite) >= 100, elite
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["algorithm"] == "cem" and summary["global_step"] == 80000


def test_the_search_keeps_no_autograd_history_across_iterations():
    """The mean came from the actor's parameters with their autograd graph, and every refit chained
    a population of samples onto it: resident memory grew each iteration (issue 32, case 3;
    docs/benchmarks/cem_memory.md measures it)."""
    from torch.nn.utils import parameters_to_vector

    actor = torch.nn.Linear(3, 2)
    search = cem.SearchDistribution(parameters_to_vector(actor.parameters()), std=0.1)
    for _ in range(3):
        samples = search.sample(4)
        search.refit(samples, np.arange(4.0), elites=2, extra_std=0.01)
    assert search.mean.grad_fn is None and not search.mean.requires_grad
    assert search.std.grad_fn is None and not search.std.requires_grad


PENDULUM = ["--env-id", "Pendulum-v1", "--num-steps", "200", "--population", "20"]


@pytest.fixture(scope="module")
def pendulum_cem_run(tmp_path_factory):
    """Two CEM iterations on Pendulum-v1: its output and its run folder."""
    folder = tmp_path_factory.mktemp("cem")
    result = run_trainer("ppo_continuous", *PENDULUM, "--total-timesteps", "400",
                         "--runs-dir", str(folder / "runs"), cwd=folder, script="cem.py")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result, only_run_dir(folder / "runs")


def test_a_run_prints_no_warning(pendulum_cem_run):
    result, _ = pendulum_cem_run
    assert "Warning" not in result.stderr, result.stderr[-3000:]


def test_more_than_one_env_is_refused(tmp_path):
    """--num-envs 4 ran one iteration and stopped as "stopped", exit 0; its resume did nothing."""
    result = run_trainer("ppo_continuous", *PENDULUM, "--num-envs", "4", "--runs-dir",
                         str(tmp_path / "runs"), cwd=tmp_path, script="cem.py")  # fmt: skip
    assert_usage_error(result, "--num-envs")
    assert "1 for CEM" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_resume_of_a_checkpoint_with_several_envs_is_refused(pendulum_cem_run, tmp_path):
    _, run_dir = pendulum_cem_run
    data = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
    data["args"]["num_envs"] = 4  # what --num-envs 4 saved before it was refused
    bad = tmp_path / "run" / "checkpoints" / "latest.pt"
    bad.parent.mkdir(parents=True)
    torch.save(data, bad)
    result = run_trainer("ppo_continuous", "--resume", str(bad), "--total-timesteps", "800",
                         cwd=tmp_path, script="cem.py")  # fmt: skip
    assert_usage_error(result, "--num-envs")


def test_a_resume_continues_to_the_new_total(pendulum_cem_run, tmp_path):
    _, saved = pendulum_cem_run
    run_dir = tmp_path / saved.name
    shutil.copytree(saved, run_dir)
    result = run_trainer("ppo_continuous", "--resume", str(run_dir), "--total-timesteps", "800",
                         cwd=tmp_path, script="cem.py")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    done = json.loads((run_dir / "summary.json").read_text())
    assert done["status"] == "finished" and done["global_step"] == 800
    ckpt = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
    assert ckpt["run"]["iteration"] == 4


@pytest.mark.parametrize(("flags", "deterministic"), [((), True), (("--no-deterministic",), False)])
def test_evaluate_plays_a_cem_checkpoint_deterministically_by_default(
    flags, deterministic, pendulum_cem_run, tmp_path
):
    """CEM's policy is the actor's mean; it was played with sampled actions unless asked."""
    _, run_dir = pendulum_cem_run
    result = subprocess.run(
        [sys.executable, str(REPO / "ppo_continuous" / "evaluate.py"), str(run_dir),
         "--episodes", "1", "--out", str(tmp_path / "eval.json"), *flags],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "eval.json").read_text())["deterministic"] is deterministic
