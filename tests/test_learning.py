"""Learning, not just running: a real env, a fixed seed, a threshold far above a random policy."""

from __future__ import annotations

from conftest import only_run_dir, run_trainer, scalars


def test_continuous_trainer_learns_inverted_pendulum(runs_dir, tmp_path):
    # A random policy keeps InvertedPendulum-v5 up for about 5-15 steps (return = steps survived);
    # the maximum is 1000. With the default hyperparameters PPO reaches 1000 by about 25k steps
    # (seed 1: 970 in the 20-30k window), so 40,960 steps (~15 s here) and a bar of 500 for the
    # last 10 episodes leave a wide margin both ways.
    result = run_trainer(
        "ppo_continuous", "--env-id", "InvertedPendulum-v5", "--seed", "1",
        "--total-timesteps", "40960", "--save-every", "0", "--runs-dir", str(runs_dir), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    returns = [value for _, value in scalars(only_run_dir(runs_dir))["charts/episodic_return"]]
    first_10, last_10 = sum(returns[:10]) / 10, sum(returns[-10:]) / 10
    assert first_10 < 50, f"the untrained policy should be near random, got {first_10}"
    assert last_10 >= 500, f"mean of the last 10 episodes {last_10} (random policy: about 10)"
