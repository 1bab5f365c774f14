"""One run as several ranks (torchrun, gloo on CPU): the same update as one process, one run folder,
every rank's episodes, resume, SIGTERM on one rank, and bad input said once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, assert_usage_error, only_run_dir, scalars, summary

from common.checkpoint import load_checkpoint
from common.distributed import torchrun as launch_ranks

PENDULUM = ["--env-id", "Pendulum-v1", "--num-envs", "2", "--num-steps", "128",
            "--num-minibatches", "4", "--update-epochs", "2"]  # fmt: skip
GLOBAL_BATCH = 2 * 2 * 128  # 2 ranks x 2 envs x 128 steps
PENDULUM_EPISODE = 200  # Pendulum-v1's time limit: every episode is 200 steps long


def torchrun(
    script: str, *flags: str, ranks: int = 2, cwd: Path, timeout: float = 300, popen: bool = False
):
    """``torchrun --standalone --nproc-per-node RANKS <script> FLAGS`` (a free port per call)."""
    command = [*launch_ranks(ranks), str(REPO / script), *flags]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
    if popen:
        return subprocess.Popen(command, cwd=cwd, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    return subprocess.run(
        command, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout
    )


def test_two_ranks_take_the_step_one_process_takes_on_all_their_envs(tmp_path):
    """The trainer's update as 2 ranks x 4 envs equals one process on the 8-env batch with the
    same minibatches (the gradient mean and the shared advantage normalisation are right)."""
    helper = "tests/distributed_update.py"
    ranks = torchrun(helper, "ranks", str(tmp_path / "ranks.pt"), cwd=tmp_path)
    assert ranks.returncode == 0, ranks.stderr[-3000:]
    for mode in ("single", "rank0_alone"):
        done = subprocess.run([sys.executable, str(REPO / helper), mode, str(tmp_path / f"{mode}.pt")],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    as_ranks, single, alone = (
        torch.load(tmp_path / f"{m}.pt") for m in ("ranks", "single", "rank0_alone")
    )
    for name, weights in single.items():
        torch.testing.assert_close(as_ranks[name], weights, rtol=1e-5, atol=1e-6, msg=name)
    # The control: rank 0's half without the mean moves the weights elsewhere, by far more.
    assert max((alone[n] - single[n]).abs().max().item() for n in single) > 1e-3


def two_rank_pendulum_run(
    tmp_path: Path, iterations: int
) -> tuple[subprocess.CompletedProcess, Path]:
    """A finished 2-rank Pendulum run of ``iterations``: the torchrun result and the run folder."""
    runs = tmp_path / "runs"
    done = torchrun("ppo_continuous/train.py", *PENDULUM, "--total-timesteps", str(iterations * GLOBAL_BATCH),
                    "--runs-dir", str(runs), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done, only_run_dir(runs)


def test_a_non_finite_loss_on_one_rank_stops_both_at_the_same_step(tmp_path):
    out = tmp_path / "outcome"
    done = torchrun(
        "tests/distributed_update.py", "nan_loss_on_rank1", str(out), cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in (0, 1):
        assert (
            tmp_path / f"outcome.rank{rank}"
        ).read_text() == "diverged: the loss is nan at step 7"


def test_two_rank_continuous_run_is_one_run_with_every_ranks_episodes(tmp_path):
    done, run_dir = two_rank_pendulum_run(tmp_path, iterations=3)
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1  # rank 0 alone logs
    result = summary(run_dir)
    assert result["ranks"] == 2 and result["status"] == "finished"
    assert result["global_step"] == 3 * GLOBAL_BATCH
    # Each of the 4 envs (2 per rank) ran 384 steps: one finished episode each; rank 0 alone had 2.
    assert result["episodes"] == 4 * (3 * 128 // PENDULUM_EPISODE)
    assert len(scalars(run_dir)["charts/episodic_return"]) == result["episodes"]
    assert done.stdout.count("run folder:") == 1 and done.stdout.count("run finished") == 1


def test_two_rank_atari_run_is_one_run(tmp_path):
    runs = tmp_path / "runs"
    done = torchrun("ppo_atari/train.py", "--num-envs", "2", "--num-steps", "32", "--total-timesteps",
                    str(2 * 2 * 2 * 32), "--runs-dir", str(runs), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = only_run_dir(runs)
    result = summary(run_dir)
    assert result["ranks"] == 2 and result["global_step"] == 2 * 2 * 2 * 32
    assert len(scalars(run_dir)["charts/SPS"]) == 2  # one line per iteration, from rank 0


def test_two_rank_run_resumes_under_two_ranks_only(tmp_path):
    _, run_dir = two_rank_pendulum_run(tmp_path, iterations=2)
    saved = load_checkpoint(run_dir).data
    assert saved["run"]["world_size"] == 2 and len(saved["ranks"]) == 2
    # Each rank's RNG is its own (ranks draw different actions), and saved as such.
    assert not torch.equal(saved["ranks"][0]["rng"]["torch"], saved["ranks"][1]["rng"]["torch"])

    alone = subprocess.run([sys.executable, str(REPO / "ppo_continuous/train.py"), "--resume", str(run_dir)],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert_usage_error(alone, "--resume")
    assert "torchrun --nproc-per-node 2" in alone.stderr

    resumed = torchrun("ppo_continuous/train.py", "--resume", str(run_dir), "--total-timesteps",
                       str(4 * GLOBAL_BATCH), cwd=tmp_path)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = summary(run_dir)
    assert result["status"] == "finished" and result["global_step"] == 4 * GLOBAL_BATCH
    assert result["episodes"] == 4 * (4 * 128 // PENDULUM_EPISODE)  # 2 per env, none lost
    assert load_checkpoint(run_dir).data["run"]["iteration"] == 4
    # The annealed step size goes on smoothly from iteration 2 of 2 (alpha 1/2) to 0 after
    # iteration 4: alpha 1/3 at iteration 3 (counting iterations of both ranks' batch).
    learning_rates = dict(scalars(run_dir)["charts/learning_rate"])
    assert learning_rates[2 * GLOBAL_BATCH] == pytest.approx(3e-4 / 2)
    assert learning_rates[3 * GLOBAL_BATCH] == pytest.approx(3e-4 / 3)


def rank_pid(marker: str, rank: int) -> int | None:
    """The pid of the trainer process of ``rank`` whose command line holds ``marker``."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            marker in cmdline
            and "torch.distributed.run" not in cmdline
            and f"RANK={rank}".encode() in environ
        ):
            return int(proc.name)
    return None


def test_sigterm_on_one_rank_stops_every_rank_after_the_same_iteration(tmp_path):
    runs = tmp_path / "runs"
    proc = torchrun("ppo_continuous/train.py", *PENDULUM, "--total-timesteps", str(1000 * GLOBAL_BATCH),
                    "--save-every", "0", "--runs-dir", str(runs), cwd=tmp_path, popen=True)  # fmt: skip
    try:
        deadline = time.time() + 120
        while not list(runs.glob("*/events.out.tfevents.*")) and time.time() < deadline:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            time.sleep(0.1)
        time.sleep(3)  # an iteration or more
        pid = rank_pid(str(runs), rank=1)
        assert pid is not None
        os.kill(pid, signal.SIGTERM)  # what scancel does, to one rank only
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    run_dir = only_run_dir(runs)
    saved = load_checkpoint(run_dir).data
    numbered = list((run_dir / "checkpoints").glob("iter_*.pt"))
    assert [p.name for p in numbered] == [f"iter_{saved['run']['iteration']:07d}.pt"]  # one save
    result = summary(run_dir)
    assert result["status"] == "stopped" and result["global_step"] == saved["run"]["global_step"]
    assert saved["run"]["global_step"] == saved["run"]["iteration"] * GLOBAL_BATCH
    assert f"torchrun --nproc-per-node 2 ppo_continuous/train.py --resume {run_dir}" in out


def test_bad_input_under_torchrun_is_one_line_from_rank_0(tmp_path):
    done = torchrun("ppo_continuous/train.py", *PENDULUM, "--num-minibatches", "3", cwd=tmp_path)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--num-minibatches" in errors[0], done.stderr[-3000:]
    assert not (tmp_path / "runs").exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ranks_that_disagree_on_their_arguments_all_exit_2(tmp_path):
    """Two ranks started by hand (as srun would) with different seeds: one line, from rank 0."""
    port = free_port()
    procs = []
    for rank, seed in ((0, "1"), (1, "2")):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WANDB_MODE": "offline"}  # fmt: skip
        procs.append(subprocess.Popen(
            [sys.executable, str(REPO / "ppo_continuous/train.py"), *PENDULUM, "--seed", seed,
             "--runs-dir", str(tmp_path / "runs")],
            cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        ))  # fmt: skip
    results = [subprocess.CompletedProcess(p.args, 0, *p.communicate(timeout=120)) for p in procs]
    for proc, result in zip(procs, results, strict=True):
        result.returncode = proc.returncode
    assert_usage_error(results[0], "--seed")
    assert results[1].returncode == 2 and "error:" not in results[1].stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("script", ["ppo_continuous/trpo.py", "ppo_continuous/cem.py"])
def test_single_process_trainers_refuse_ranks(script, tmp_path):
    env = {**os.environ, "RANK": "0", "WORLD_SIZE": "2"}
    done = subprocess.run([sys.executable, str(REPO / script), "--env-id", "Pendulum-v1"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert_usage_error(done, "torchrun")


def start_ranks(flags_per_rank: list[list[str]], tmp_path: Path, **env_extra: str):
    """Ranks started by hand, as srun starts them (RANK, WORLD_SIZE, MASTER_*): their processes."""
    port, procs = free_port(), []
    for rank, flags in enumerate(flags_per_rank):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WANDB_MODE": "offline", **env_extra}  # fmt: skip
        procs.append(subprocess.Popen(
            [sys.executable, str(REPO / "ppo_continuous/train.py"), *PENDULUM, *flags,
             "--runs-dir", str(tmp_path / "runs")],
            cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        ))  # fmt: skip
    return procs


def hand_started_ranks(flags_per_rank: list[list[str]], tmp_path: Path, **env_extra: str):
    """Ranks started by hand (``start_ranks``): their results, each within two minutes (a rank
    still waiting then is killed, and the test fails)."""
    procs = start_ranks(flags_per_rank, tmp_path, **env_extra)
    try:
        outputs = [p.communicate(timeout=120) for p in procs]
        return [
            subprocess.CompletedProcess(p.args, p.returncode, *out)
            for p, out in zip(procs, outputs, strict=True)
        ]
    finally:
        for proc in procs:
            proc.kill()


def test_bad_input_on_one_rank_is_said_by_it_and_by_rank_0_and_no_rank_waits(tmp_path):
    rank0, rank1 = hand_started_ranks([[], ["--gamma", "1.5"]], tmp_path)
    assert (rank0.returncode, rank1.returncode) == (2, 2)
    said = "error: --gamma: must be a number in [0, 1], got 1.5 (rank 1's input)"
    assert rank0.stderr.strip() == said and said in rank1.stderr, (rank0.stderr, rank1.stderr)
    assert not (tmp_path / "runs").exists()


def test_a_rank_killed_mid_run_stops_rank_0_in_one_line_keeping_its_checkpoint(tmp_path):
    """kill -9 of rank 1 (the OOM killer, a node lost): rank 0's next collective fails; it says so
    in one line, not gloo's traceback, exits 1, and the checkpoint it last wrote stays whole."""
    long_run = ["--total-timesteps", str(1000 * GLOBAL_BATCH), "--save-every", "2"]
    rank0, rank1 = procs = start_ranks([long_run, long_run], tmp_path)
    try:
        deadline = time.time() + 120
        while (
            not list((tmp_path / "runs").glob("*/checkpoints/iter_*.pt")) and time.time() < deadline
        ):
            assert rank0.poll() is None, rank0.communicate()[1][-3000:]
            time.sleep(0.1)
        rank1.kill()
        _, err = rank0.communicate(timeout=60)
    finally:
        for proc in procs:
            proc.kill()
            proc.communicate()
    assert rank0.returncode == 1, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    said = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(said) == 1 and said[0].startswith(
        "error: torch.distributed: another rank of this run stopped mid-iteration"
    ), said
    saved = load_checkpoint(only_run_dir(tmp_path / "runs")).data  # loads: whole, not half-written
    assert f"its last checkpoint (iteration {saved['run']['iteration']}) is kept" in said[0]


def test_a_rank_that_never_comes_stops_the_others_after_the_join_timeout(tmp_path):
    """Rank 1 of 2 is never started: rank 0 gives up after PPO_RANKS_JOIN_TIMEOUT_S, in one line."""
    env = {**os.environ, "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port()), "PPO_RANKS_JOIN_TIMEOUT_S": "2"}  # fmt: skip
    done = subprocess.run([sys.executable, str(REPO / "ppo_continuous/train.py"), *PENDULUM,
                           "--runs-dir", str(tmp_path / "runs")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert_usage_error(done, "torch.distributed: the 2 ranks did not all meet within 2 s")
    assert not (tmp_path / "runs").exists()
