"""One run folder, one writer (issue 32, case 1): runs with the same name get folders of their own,
and a resume of a run that is still writing its folder is refused, naming the holder's pid."""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, assert_usage_error, only_run_dir, pendulum_flags, run_trainer

from common.cli import UsageError
from common.run import Run
from common.run_folder import claim_run_folder, lock_run_folder
from ppo_continuous import train

BATCH = 256
PENDULUM = pendulum_flags(update_epochs=1)


def _claim(runs: str, barrier, names) -> None:
    barrier.wait()  # all at once
    names.append(claim_run_folder(runs, "Pendulum-v1__exp__1__1700000000").name)


def test_processes_claiming_one_name_at_once_get_a_folder_each(tmp_path):
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager:
        barrier, names = manager.Barrier(6), manager.list()
        workers = [
            context.Process(target=_claim, args=(str(tmp_path), barrier, names)) for _ in range(6)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        claimed = sorted(names)
    base = "Pendulum-v1__exp__1__1700000000"
    assert claimed == sorted([base] + [f"{base}__{k}" for k in range(2, 7)])


def test_two_runs_started_in_the_same_second_write_two_folders(tmp_path, monkeypatch):
    """Same env, --exp-name and seed in the same second: the run name was the same, and the second
    run wrote into the first one's folder. The clock is held still to make that certain."""
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)
    args = train.Args(env_id="Pendulum-v1", runs_dir=str(tmp_path / "runs"))
    first = Run(args, "ppo_continuous")
    second = Run(args, "ppo_continuous")
    try:
        assert first.dir != second.dir
        assert Path(first.dir).name == "Pendulum-v1__ppo_continuous__1__1700000000"
        assert Path(second.dir).name == "Pendulum-v1__ppo_continuous__1__1700000000__2"
        assert second.name == Path(second.dir).name  # the run name is its folder's
        assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(
            [Path(first.dir).name, Path(second.dir).name]
        )
    finally:
        first.lock.release()
        second.lock.release()


def test_a_lock_names_its_holder_and_dies_with_it(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from common.run_folder import lock_run_folder; "
         "lock = lock_run_folder(sys.argv[1]); print('locked', flush=True); time.sleep(600)",
         str(tmp_path)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UsageError, match=rf"^--resume: .* in use by process {holder.pid}\b"):
            lock_run_folder(tmp_path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    lock_run_folder(tmp_path).release()  # kill -9 left no stale lock


def test_resuming_a_run_that_is_still_training_is_refused(runs_dir, tmp_path):
    live = subprocess.Popen(
        [sys.executable, str(REPO / "ppo_continuous" / "train.py"), *PENDULUM,
         "--total-timesteps", str(2000 * BATCH), "--save-every", "1", "--runs-dir", str(runs_dir)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while not list(runs_dir.glob("*/checkpoints/latest.pt")):
            assert live.poll() is None and time.time() < deadline, live.stderr.read()[-3000:]
            time.sleep(0.1)
        run_dir = only_run_dir(runs_dir)
        result = run_trainer("ppo_continuous", "--resume", str(run_dir), cwd=tmp_path, timeout=90)
        assert_usage_error(result, "--resume")
        assert f"in use by process {live.pid}" in result.stderr
        assert live.poll() is None  # the live run goes on
    finally:
        live.kill()
        live.wait(30)
