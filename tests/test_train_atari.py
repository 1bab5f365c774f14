"""The Atari trainer as a user runs it: 2-iteration runs on both backends, bad input."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import (
    REPO,
    assert_usage_error,
    host_cpu_flags,
    only_run_dir,
    run_trainer,
    scalars,
    summary,
)

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


def test_default_precision_is_bf16_where_the_cpu_has_it_and_recorded(runs_dir, tmp_path):
    native = bool({"avx512_bf16", "amx_bf16"} & host_cpu_flags())
    # no --precision: the default
    result = run_trainer("ppo_atari", *SMALL, "--runs-dir", str(runs_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(runs_dir)
    resolved = "bf16" if native else "fp32"
    assert summary(run_dir)["precision"] == resolved
    saved = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=False)
    assert saved["args"]["precision"] == resolved  # a resume goes on in the same precision


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
        (["--gamma", "1.5"], "--gamma"),  # was accepted
        (["--ent-coef", "nan"], "--ent-coef"),  # was a run of NaN
        (["--max-grad-norm", "-1"], "--max-grad-norm"),
    ],
)
def test_bad_input_is_one_line_exit_2_before_any_work(flags, flag, runs_dir, tmp_path):
    result = run_trainer(
        "ppo_atari", *flags, "--runs-dir", str(runs_dir), cwd=tmp_path, timeout=120
    )
    assert_usage_error(result, flag)
    assert list(runs_dir.iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_to_the_process_group_saves_with_async_env_workers(signum, runs_dir, tmp_path):
    """A terminal's Ctrl-C and a cluster's SIGTERM reach every process of the group, env workers too.

    The workers must leave the signal to the trainer, which saves after the iteration and exits 0.
    """
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "ppo_atari" / "train.py"), "--env-backend", "gymnasium",
         "--async-envs", "--num-envs", "2", "--num-steps", "32", "--num-minibatches", "2",
         "--update-epochs", "1", "--total-timesteps", "1000000", "--save-every", "1000",
         "--runs-dir", str(runs_dir)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, env={**os.environ, "WANDB_MODE": "offline"},
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while not list(runs_dir.glob("*/events.out.tfevents.*")):
            assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-3000:]
            time.sleep(0.1)
        time.sleep(3)  # some iterations in
        os.killpg(proc.pid, signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-3000:]
    assert "--resume" in out
    run_dir = only_run_dir(runs_dir)
    saved = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
    assert saved["run"]["global_step"] == summary(run_dir)["global_step"] > 0


def test_evaluate_plays_whole_games_from_a_checkpoint(runs_dir, tmp_path):
    result = run_trainer("ppo_atari", *SMALL, "--runs-dir", str(runs_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(runs_dir)
    out = tmp_path / "eval.json"
    played = subprocess.run(
        [sys.executable, str(REPO / "ppo_atari" / "evaluate.py"), str(run_dir), "--episodes", "2",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert played.returncode == 0, played.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["run_name"] == run_dir.name and result["episodes"] == 2
    # Whole games scored unclipped: Breakout's bricks are worth 1, 4 or 7 points, never fractions.
    assert all(r >= 0 and r == int(r) for r in result["returns"])
    assert (
        f"{result['mean_return']:.2f} +- {result['std_return']:.2f} over 2 episodes"
        in played.stdout
    )
    # The continuous trainer's evaluate.py refuses this checkpoint in one line.
    wrong = subprocess.run(
        [sys.executable, str(REPO / "ppo_continuous" / "evaluate.py"), str(run_dir)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert_usage_error(wrong, "checkpoint")
