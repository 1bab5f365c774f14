"""The continuous benchmark's own logic: published references per task, reusing finished runs.

The benchmark trains for many minutes per task; these tests feed it run folders written here.
"""

from __future__ import annotations

import re
import subprocess
import sys

from bench_continuous import published_reference
from conftest import REPO, fake_run

SCRIPT = str(REPO / "scripts" / "bench_continuous.py")


def test_mujoco_tasks_compare_with_cleanrl_and_box2d_with_the_sb3_zoo():
    assert published_reference("Hopper-v5") == "CleanRL 2383 +- 272 (v4, 1M, 3 seeds)"
    # The zoo trained its walker for 5M steps: the budget is part of the reference.
    assert published_reference("BipedalWalker-v3") == "SB3 zoo 213 +- 129 (v3, 5M, 1 agent)"
    assert published_reference("LunarLanderContinuous-v3") == "SB3 zoo 271 +- 32 (v2, 1M, 1 agent)"
    assert published_reference("Pendulum-v1") == "n/a"


def test_reuse_reports_finished_runs_with_their_reference_and_curves(tmp_path):
    runs = tmp_path / "runs"
    for seed, score in ((1, 150.0), (2, 110.0)):
        fake_run(
            runs / f"LunarLanderContinuous-v3__seed{seed}" / "run",
            "LunarLanderContinuous-v3",
            score,
            seed=seed,
        )
    # A stopped run of the same task is not reused: reporting it would need it to train.
    fake_run(runs / "Hopper-v5__seed1" / "run", "Hopper-v5", 900.0, finished=False)
    result = subprocess.run(
        [sys.executable, SCRIPT, "--env-ids", "LunarLanderContinuous-v3", "--seeds", "1", "2", "--reuse",
         "--runs-dir", str(runs), "--plot", str(tmp_path / "curves.png"), "--total-timesteps", "-5"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("reusing ") == 2
    line = re.search(
        r"LunarLanderContinuous-v3 +130\.0 \+- 28\.3 \(n=2\) +65\.0 +700 +60  (.*)", result.stdout
    )
    assert line, result.stdout
    assert line[1] == "SB3 zoo 271 +- 32 (v2, 1M, 1 agent)"
    assert (tmp_path / "curves.png").stat().st_size > 0

    stopped = subprocess.run(
        [sys.executable, SCRIPT, "--env-ids", "Hopper-v5", "--reuse", "--runs-dir", str(runs),
         "--total-timesteps", "-5"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert stopped.returncode != 0  # it tried to train, with a step count the trainer refuses
    assert "reusing" not in stopped.stdout
