"""CEM (ppo_continuous/cem.py): the refit to the elite, bad input, and learning on a real env."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import assert_usage_error, only_run_dir, run_trainer, scalars

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
