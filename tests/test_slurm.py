"""The sweep launcher on a real single-node SLURM cluster (slurmctld + slurmd + munge).

CI installs Debian's slurm-wlm and munge (.ci/run) and these tests start the cluster with
scripts/slurm_cluster.sh. Where SLURM cannot be had (no root, no slurm-wlm) they are skipped with
the reason, which pytest prints. CI installs the packages first and sets PPO_REQUIRE_SLURM=1,
which turns a skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, summary

pytestmark = pytest.mark.slurm

LAUNCHER = str(REPO / "scripts" / "benchmark.py")
CLUSTER = str(REPO / "scripts" / "slurm_cluster.sh")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory) -> dict:
    """Start the cluster (idempotent) and give the environment its clients need."""
    if shutil.which("slurmctld") is None or os.geteuid() != 0:
        reason = "needs root and Debian's slurm-wlm + munge (bash scripts/slurm_cluster.sh install)"
        if os.environ.get("PPO_REQUIRE_SLURM") == "1":  # set by .ci/run: CI must not skip these
            pytest.fail(reason)
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "PPO_SLURM_DIR": str(state)}
    started = subprocess.run(
        ["bash", CLUSTER, "start"], env=env, capture_output=True, text=True, timeout=180
    )
    assert started.returncode == 0, started.stdout + started.stderr
    env["SLURM_CONF"] = str(state / "slurm.conf")
    yield env
    subprocess.run(["bash", CLUSTER, "stop"], env=env, capture_output=True, timeout=120)


def launch(env: dict, *flags: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, LAUNCHER, "--slurm-partition", "debug", "--cpus-per-task", "1", *flags],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def run_dirs(runs: Path) -> list[Path]:
    return sorted(p for p in runs.iterdir() if p.is_dir() and p.name != "logs")


def test_smoke_preset_runs_as_a_job_array(slurm, tmp_path):
    runs = tmp_path / "runs"
    result = launch(slurm, "--preset", "smoke", "--runs-dir", str(runs), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "submitted a job array of 4 runs to SLURM partition debug" in result.stdout
    dirs = run_dirs(runs)
    assert len(dirs) == 4 and all(summary(d)["finished"] for d in dirs)
    # submitit's files show SLURM array tasks <job>_<task> ran them.
    job_id = result.stdout.split("partition debug: ")[1].split()[0]
    tasks = {
        p.name.split("_")[1] for p in (runs / "logs" / "submitit").glob(f"{job_id}_*_result.pkl")
    }
    assert tasks == {"0", "1", "2", "3"}
    # The jobs ran in the repo with this venv's Python, as on a cluster with a shared filesystem.
    log = (runs / "logs" / "Pendulum-v1__clip_0.2__1__log.txt").read_text()
    assert log.startswith(f"$ {sys.executable} {REPO / 'ppo_continuous' / 'train.py'}")


def test_scancelled_job_is_resumed_from_its_checkpoint(slurm, tmp_path):
    runs = tmp_path / "runs"
    flags = ["--preset", "smoke", "--env-ids", "Pendulum-v1", "--seeds", "1", "--runs-dir", str(runs),
             "--extra=--total-timesteps 61440"]  # fmt: skip
    sweep = subprocess.Popen([sys.executable, LAUNCHER, "--slurm-partition", "debug", "--cpus-per-task", "1", *flags],
                             cwd=tmp_path, env=slurm, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.time() + 180
    # Sweep runs keep latest.pt alone (--no-numbered-checkpoints); --save-every 1 writes it each iteration.
    while not list(runs.glob("*/checkpoints/latest.pt")) and time.time() < deadline:
        assert sweep.poll() is None, sweep.communicate()[0][-3000:]
        time.sleep(0.2)
    jobs = subprocess.run(
        ["squeue", "-h", "-o", "%i"], env=slurm, capture_output=True, text=True
    ).stdout.split()
    assert len(jobs) == 1, jobs
    subprocess.run(["scancel", jobs[0]], env=slurm, check=True)
    out, _ = sweep.communicate(timeout=180)
    assert sweep.returncode == 1, out[-3000:]  # one run did not finish
    assert "STOPPED" in out or "FAILED" in out
    (killed,) = run_dirs(runs)
    if (killed / "summary.json").exists():
        assert not summary(killed)["finished"]

    again = launch(slurm, *flags, cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "1 runs: 0 in the record, 0 finished, 1 to resume, 0 new" in again.stdout
    assert run_dirs(runs) == [killed]
    done = summary(killed)
    assert done["finished"] and done["global_step"] == 61440


def test_failed_job_is_reported_with_its_log_tail(slurm, tmp_path):
    result = launch(slurm, "--preset", "smoke", "--env-ids", "CartPole-v1", "--seeds", "1",
                    "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1, result.stdout[-3000:]
    assert "FAILED (exit 2):" in result.stdout and "--env-id CartPole-v1" in result.stdout
    assert "Box (continuous)" in result.stdout  # the trainer's own error, from the job's log


def test_two_rank_run_is_one_job_of_two_tasks(slurm, tmp_path):
    """--ranks 2: one job whose two SLURM tasks are the ranks of one run (submitit wires them)."""
    runs = tmp_path / "runs"
    result = launch(slurm, "--preset", "smoke", "--env-ids", "Pendulum-v1", "--seeds", "1",
                    "--ranks", "2", "--runs-dir", str(runs), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "submitted a job array of 1 runs" in result.stdout
    (run_dir,) = run_dirs(runs)
    done = summary(run_dir)
    assert done["finished"] and done["ranks"] == 2
    assert done["global_step"] == 2048  # 2 iterations of 2 ranks x 512 steps
    logs = runs / "logs"
    assert (logs / "Pendulum-v1__clip_0.2__1__log.txt").read_text().count("run finished") == 1
    assert (logs / "Pendulum-v1__clip_0.2__1__rank1.log.txt").is_file()  # rank 1 ran, silently
