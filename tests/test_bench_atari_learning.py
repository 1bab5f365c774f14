"""The Atari learning benchmark's own logic: reusing finished runs and the backend-gap statistic.

The benchmark itself trains for hours; these tests feed it run folders written here instead.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, fake_run
from curves import finished_run
from welch import backend_gap

SCRIPT = str(REPO / "scripts" / "bench_atari_learning.py")


def test_backend_gap_is_welchs_test():
    # Scores 1, 2, 3 against 2, 3, 4: gap -1, standard error sqrt(1/3 + 1/3), Welch's t = -1.2247
    # on 4 degrees of freedom. Student's t CDF for 4 dof in closed form gives the p-value.
    gap, error, p_value = backend_gap([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
    t = -1 / (2 / 3) ** 0.5
    u = t * t / (4 + t * t)
    cdf = 0.5 + 0.375 * abs(t) / (1 + t * t / 4) ** 0.5 * (1 - u / 3)
    assert gap == pytest.approx(-1.0)
    assert error == pytest.approx((2 / 3) ** 0.5)
    assert p_value == pytest.approx(2 * (1 - cdf), rel=1e-6)
    assert p_value == pytest.approx(0.28787, abs=1e-4)


def test_backend_gap_of_constant_samples():
    # Lives lost per game is the same in every game: no spread, so no t statistic.
    assert backend_gap([5.0, 5.0, 5.0], [5.0, 5.0]) == (0.0, 0.0, 1.0)
    assert backend_gap([5.0, 5.0, 5.0], [4.0, 4.0]) == (1.0, 0.0, 0.0)


def test_finished_run_takes_the_newest_finished_run_of_the_game(tmp_path):
    runs = tmp_path / "ale_vector__seed1"
    old = fake_run(runs / "old", "BreakoutNoFrameskip-v4", 10.0, mtime=1_000)
    fake_run(
        runs / "newer_but_unfinished", "BreakoutNoFrameskip-v4", 5.0, finished=False, mtime=3_000
    )
    fake_run(runs / "newer_other_game", "PongNoFrameskip-v4", 5.0, mtime=3_000)
    assert finished_run(runs, "BreakoutNoFrameskip-v4") == old
    newest = fake_run(runs / "new", "BreakoutNoFrameskip-v4", 12.0, mtime=2_000)
    assert finished_run(runs, "BreakoutNoFrameskip-v4") == newest
    assert finished_run(runs, "SpaceInvadersNoFrameskip-v4") is None
    assert finished_run(tmp_path / "nothing_here", "BreakoutNoFrameskip-v4") is None


def test_reuse_reports_finished_runs_without_training(tmp_path):
    scores = {"ale_vector": [20.0, 18.0, 22.0], "gymnasium": [17.0, 19.0, 15.0]}
    for backend, per_seed in scores.items():
        for seed, score in enumerate(per_seed, start=1):
            fake_run(
                tmp_path / "runs" / f"{backend}__seed{seed}" / "run",
                "BreakoutNoFrameskip-v4",
                score,
            )
    # A flag the trainer does not know: any attempt to train instead of reusing fails the script.
    result = subprocess.run(
        [sys.executable, SCRIPT, "--seeds", "1", "2", "3", "--reuse", "--runs-dir", str(tmp_path / "runs"),
         "--plot", str(tmp_path / "curves.png"), "--extra=--no-such-flag"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("reusing ") == 6
    assert re.search(r"ale_vector: last 100 episodes 20\.0 \+- 2\.0 \(n=3\)", result.stdout)
    assert re.search(r"gymnasium: last 100 episodes 17\.0 \+- 2\.0 \(n=3\)", result.stdout)
    gap = re.search(
        r"ale_vector - gymnasium: \+3\.0 \+- 1\.6 .* p = (\d\.\d\d): (.*) at", result.stdout
    )
    assert gap, result.stdout
    assert float(gap[1]) == pytest.approx(
        backend_gap(scores["ale_vector"], scores["gymnasium"])[2], abs=0.01
    )
    assert gap[2] == "within noise"  # p is about 0.14
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_without_reuse_the_benchmark_trains(tmp_path):
    fake_run(tmp_path / "runs" / "ale_vector__seed1" / "run", "BreakoutNoFrameskip-v4", 20.0)
    result = subprocess.run(
        [sys.executable, SCRIPT, "--backends", "ale_vector", "--runs-dir", str(tmp_path / "runs"),
         "--plot", str(tmp_path / "curves.png"), "--extra=--no-such-flag"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    assert "reusing" not in result.stdout
    assert "--no-such-flag" in result.stdout  # the trainer command it tried to run


def test_first_backend_is_tested_against_another_setups_seeds(tmp_path):
    """--against-last-100 and --against-all-training: Welch's test of the first backend's per-seed
    scores against the given ones, for each of the paper's two scores."""
    ours = [20.0, 18.0, 22.0]
    for seed, score in enumerate(ours, start=1):
        fake_run(
            tmp_path / "runs" / f"ale_vector__seed{seed}" / "run", "BreakoutNoFrameskip-v4", score
        )
    result = subprocess.run(
        [sys.executable, SCRIPT, "--backends", "ale_vector", "--seeds", "1", "2", "3", "--reuse",
         "--runs-dir", str(tmp_path / "runs"), "--plot", str(tmp_path / "curves.png"),
         "--against-last-100", "25.2", "21.7", "--against-all-training", "12.7", "10.9"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    for score, theirs, mine in (("last_100", [25.2, 21.7], ours),
                                ("all_training", [12.7, 10.9], [s / 2 for s in ours])):  # fmt: skip
        line = re.search(
            rf"ale_vector - CleanRL ppo_atari\.py, mean_return_{score}: ([-+]\d+\.\d) \+- (\d+\.\d) "
            r".* p = (\d\.\d\d): (.*) at the 5% level",
            result.stdout,
        )
        assert line, result.stdout
        gap, error, p_value = backend_gap(mine, theirs)
        assert float(line[1]) == pytest.approx(gap, abs=0.05)
        assert float(line[2]) == pytest.approx(error, abs=0.05)
        assert float(line[3]) == pytest.approx(p_value, abs=0.01)
        assert line[4] == ("within noise" if p_value >= 0.05 else "NOT within noise")


def test_jobs_train_that_many_runs_at_a_time_each_on_its_own_cores(monkeypatch):
    """--jobs 2: never more than two runs at once, two at once never on the same cores, and every
    backend and seed trained exactly once."""
    import threading
    import time

    import bench_atari_learning as bench

    monkeypatch.setattr(bench, "core_shares", lambda jobs: [[0, 2], [1, 3]][:jobs])
    running: dict[tuple[str, int], list[int]] = {}
    lock = threading.Lock()
    most_at_once = []

    def fake_run_one(backend, seed, args, cores=None):
        with lock:
            assert all(set(cores).isdisjoint(other) for other in running.values())
            running[backend, seed] = cores
            most_at_once.append(len(running))
        time.sleep(0.2)
        with lock:
            del running[backend, seed]
        return Path(f"{backend}-{seed}")

    monkeypatch.setattr(bench, "run_one", fake_run_one)
    args = bench.BenchArgs(backends=("ale_vector", "gymnasium"), seeds=(1, 2, 3), jobs=2)
    runs = bench.run_all(args)
    assert runs == {(b, s): Path(f"{b}-{s}") for b in args.backends for s in args.seeds}
    assert max(most_at_once) == 2


def test_jobs_beyond_the_cores_are_refused_before_any_run(tmp_path):
    """--jobs 0 as a real command (core_shares' own test covers more jobs than cores)."""
    result = subprocess.run(
        [sys.executable, SCRIPT, "--jobs", "0", "--runs-dir", str(tmp_path / "runs")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    assert re.fullmatch(r"error: --jobs: \S+ runs at a time need 1 to \d+ cores.*\n", result.stderr)
    assert not (tmp_path / "runs").exists()
