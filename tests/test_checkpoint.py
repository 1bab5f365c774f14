"""Checkpoints: exact restore, resume after SIGKILL, SIGTERM, atomic writes, and bad checkpoints."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    REPO,
    assert_usage_error,
    only_run_dir,
    pendulum_flags,
    run_trainer,
    scalars,
    summary,
)

from common.checkpoint import Checkpoint, RunState, Saver, StopRequest, load_checkpoint
from common.cli import flags_on_command_line
from common.episodes import EpisodeLog
from common.schedules import linear_anneal

PENDULUM = pendulum_flags(update_epochs=2)
BATCH = 256
UPDATES_PER_ITERATION = 2 * 4


def start_trainer(*flags: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "ppo_continuous" / "train.py"), *flags],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for(path_glob, folder: Path, proc: subprocess.Popen, timeout: float = 120) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = sorted(folder.glob(path_glob)) if folder.exists() else []
        if found:
            return found[-1]
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    raise AssertionError(f"{path_glob} did not appear in {folder}")


def adam_steps(optimizer_state: dict) -> set[float]:
    return {float(s["step"]) for s in optimizer_state["state"].values()}


def test_resume_after_sigkill_continues_exactly_from_the_checkpoint(runs_dir, tmp_path):
    """Kill a run right after a checkpoint, resume it, and check that everything continues.

    Env state cannot be restored exactly: a checkpoint holds no simulator state (MuJoCo's or
    Pendulum's physics mid-episode) and the resumed run starts fresh episodes, seeded with
    seed + iteration. So this checks instead that all of the learner's state continues from the
    checkpoint: step and iteration counters, the learning-rate schedule, the adaptive beta, the
    normalisation statistics and the optimizer's step counts; ``test_restore_is_exact`` checks
    that the restored learner is bit-for-bit the saved one.
    """
    total_iterations = 8
    proc = start_trainer(
        # A KL target no update can meet doubles beta every iteration (section 4): 1, 2, 4, ...
        *PENDULUM, "--objective", "adaptive_kl", "--kl-target", "1e-9", "--save-every", "2", "--keep-checkpoints", "0",
        "--total-timesteps", str(total_iterations * BATCH), "--runs-dir", str(runs_dir), cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_for("*/checkpoints/iter_0000004.pt", runs_dir, proc)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    run_dir = only_run_dir(runs_dir)
    # latest.pt is written before iter_N.pt, so it holds iteration 4, or 6 if the run got that far.
    saved = load_checkpoint(run_dir).data
    k = saved["run"]["iteration"]
    assert k in (4, 6) and saved["run"]["global_step"] == k * BATCH
    assert not (run_dir / "summary.json").exists() or not summary(run_dir)["finished"]

    result = run_trainer("ppo_continuous", "--resume", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert only_run_dir(runs_dir) == run_dir  # the same run folder, not a new run
    done = summary(run_dir)
    assert done["global_step"] == total_iterations * BATCH and done["finished"] is True
    assert done["status"] == "finished"

    final = load_checkpoint(run_dir).data
    assert final["run"]["iteration"] == total_iterations
    # Optimizer state continued: Adam's step counts carry on from the checkpoint's.
    resumed_updates = (total_iterations - k) * UPDATES_PER_ITERATION
    assert adam_steps(final["optimizer"]) == {
        s + resumed_updates for s in adam_steps(saved["optimizer"])
    }
    # Normalisation statistics continued: each step and each reset adds one observation.
    new_obs = (
        (total_iterations - k) * BATCH + 1 + (done["episodes"] - saved["run"]["episodes"]["count"])
    )
    count = final["normalizers"]["obs_rms_0"]["count"] - saved["normalizers"]["obs_rms_0"]["count"]
    assert count == pytest.approx(new_obs)
    # Episodes continued: the summary counts those before the kill and after the resume.
    assert done["episodes"] > saved["run"]["episodes"]["count"] > 0

    # The resumed session's curves pick up at the next iteration, on the same schedule.
    resumed_events = max(run_dir.glob("events.out.tfevents.*"), key=os.path.getmtime)
    logged = scalars_of_file(resumed_events)
    steps = [step for step, _ in logged["charts/learning_rate"]]
    assert steps == [i * BATCH for i in range(k + 1, total_iterations + 1)]
    lrs = [value for _, value in logged["charts/learning_rate"]]
    expected = [
        linear_anneal(3e-4, i, total_iterations) for i in range(k + 1, total_iterations + 1)
    ]
    assert lrs == pytest.approx(expected)
    # Adaptive beta continued from the saved value (a reset would start again from 1).
    assert saved["run"]["kl_beta"] == 2.0**k
    assert [beta for _, beta in logged["losses/kl_beta"]] == [
        2.0**i for i in range(k + 1, total_iterations + 1)
    ]


def scalars_of_file(event_file: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(event_file), size_guidance={"scalars": 0}).Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


class _Stats:
    """Stands in for gymnasium's RunningMeanStd."""

    def __init__(self, mean, var, count):
        self.mean, self.var, self.count = mean, var, count


def _learner(seed: int):
    torch.manual_seed(seed)
    agent = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    optimizer = torch.optim.Adam(agent.parameters(), lr=1e-3)
    return agent, optimizer


def _train_step(agent, optimizer) -> None:
    x = torch.randn(16, 3)  # draws from the global torch RNG, which the checkpoint restores
    loss = agent(x).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def test_restore_is_exact(tmp_path, monkeypatch):
    """Weights after n steps equal those after k steps, checkpoint, restore, n - k steps."""
    import numpy as np

    from ppo_continuous.train import Args

    agent, optimizer = _learner(0)
    stats = {"obs_rms_0": _Stats(np.arange(3.0), np.ones(3) * 2.0, 42.0)}
    run = RunState(
        kl_beta=0.25, episodes=EpisodeLog([1.0, 2.0], [10, 20]), global_step=512, iteration=2
    )
    saver = Saver(
        tmp_path, "ppo_continuous", Args(), "run", agent, optimizer, run, normalizers=stats
    )
    for _ in range(3):
        _train_step(agent, optimizer)
    saver.save()
    for _ in range(4):
        _train_step(agent, optimizer)
    straight = [p.detach().clone() for p in agent.parameters()]

    agent2, optimizer2 = _learner(123)  # different initial weights and RNG state
    stats2 = {"obs_rms_0": _Stats(np.zeros(3), np.ones(3), 1.0)}
    run2 = RunState(kl_beta=1.0, episodes=EpisodeLog())
    saver2 = Saver(
        tmp_path, "ppo_continuous", Args(), "run", agent2, optimizer2, run2, normalizers=stats2
    )
    data = torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=True)
    saver2.restore(Checkpoint(args=Args(), run_name="run", data=data), weights_only=False)
    assert (run2.global_step, run2.iteration, run2.kl_beta) == (512, 2, 0.25)
    assert run2.episodes.scores() == run.episodes.scores()
    assert (
        stats2["obs_rms_0"].mean.tolist() == [0.0, 1.0, 2.0] and stats2["obs_rms_0"].count == 42.0
    )
    for _ in range(4):
        _train_step(agent2, optimizer2)
    resumed = [p.detach() for p in agent2.parameters()]
    for a, b in zip(straight, resumed, strict=True):
        assert torch.equal(a, b)


def test_sigterm_saves_and_exits_zero(runs_dir, tmp_path):
    proc = start_trainer(*PENDULUM, "--save-every", "1000", "--total-timesteps", str(1000 * BATCH),
                         "--runs-dir", str(runs_dir), cwd=tmp_path)  # fmt: skip
    try:
        wait_for("*/events.out.tfevents.*", runs_dir, proc)
        time.sleep(3)  # let it finish an iteration or more
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    run_dir = only_run_dir(runs_dir)
    saved = load_checkpoint(run_dir).data
    assert saved["run"]["iteration"] >= 1  # saved although --save-every was never reached
    # The end-of-run summary says it stopped and how to continue it.
    assert f"run stopped at step {saved['run']['global_step']} of" in out
    assert f"python ppo_continuous/train.py --resume {run_dir}" in out
    done = summary(run_dir)
    assert done["finished"] is False and done["global_step"] == saved["run"]["global_step"]
    assert done["status"] == "stopped"  # ended early, resumable


def test_interrupted_write_leaves_previous_latest_loadable(tmp_path, monkeypatch):
    from ppo_continuous.train import Args

    agent, optimizer = _learner(0)
    run = RunState(kl_beta=1.0, episodes=EpisodeLog(), iteration=1)
    saver = Saver(tmp_path, "ppo_continuous", Args(), "run", agent, optimizer, run)
    saver.save()
    latest = tmp_path / "checkpoints" / "latest.pt"
    before = latest.read_bytes()

    run.iteration = 2
    real_replace = os.replace

    def crash_on_latest(src, dst):
        if str(dst).endswith("latest.pt"):
            raise OSError("disk gone mid-write")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_latest)
    with pytest.raises(OSError):
        saver.save()
    assert latest.read_bytes() == before
    assert load_checkpoint(latest).data["run"]["iteration"] == 1
    assert not list((tmp_path / "checkpoints").glob(".*.tmp"))  # no temporary file left behind


def test_kill_between_the_two_writes_still_resumes_the_newest_iteration(tmp_path, monkeypatch):
    """latest.pt goes first, so once a file of the newest iteration exists, a run folder resumes
    from it (with iter_N.pt first, a kill between the writes resumed from the checkpoint before)."""
    from ppo_continuous.train import Args

    agent, optimizer = _learner(0)
    run = RunState(kl_beta=1.0, episodes=EpisodeLog(), iteration=1)
    saver = Saver(tmp_path, "ppo_continuous", Args(), "run", agent, optimizer, run)
    saver.save()

    run.iteration = 2
    real_replace = os.replace

    def die_on_numbered_file(src, dst):
        if Path(dst).name.startswith("iter_"):
            raise OSError("killed mid-save")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", die_on_numbered_file)
    with pytest.raises(OSError):
        saver.save()
    assert load_checkpoint(tmp_path).data["run"]["iteration"] == 2


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ckpt")
    result = run_trainer("ppo_continuous", *PENDULUM, "--total-timesteps", str(BATCH),
                         "--runs-dir", str(folder / "runs"), cwd=folder)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return only_run_dir(folder / "runs")


def _snapshot(folder: Path) -> dict:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*.pt")}


@pytest.mark.parametrize(
    "problem",
    ["missing", "corrupt", "truncated", "other_trainer", "version", "only_version", "no_model"],
)
def test_bad_checkpoint_is_one_line_exit_2_and_untouched(problem, pendulum_run, tmp_path):
    good = pendulum_run / "checkpoints" / "latest.pt"
    bad = tmp_path / "bad" / "checkpoints" / "latest.pt"
    bad.parent.mkdir(parents=True)
    trainer = "ppo_continuous"
    if problem == "missing":
        bad = tmp_path / "nowhere.pt"
    elif problem == "corrupt":
        bad.write_bytes(os.urandom(4096))
    elif problem == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif problem == "other_trainer":
        bad.write_bytes(good.read_bytes())
        trainer = "ppo_atari"
    elif problem == "version":
        data = torch.load(good, weights_only=True)
        data["format_version"] = 999
        torch.save(data, bad)
    elif problem == "only_version":
        torch.save({"format_version": 1}, bad)
    elif problem == "no_model":
        data = torch.load(good, weights_only=True)
        del data["model"]
        torch.save(data, bad)
    before = _snapshot(tmp_path) | _snapshot(pendulum_run)
    result = run_trainer(trainer, "--resume", str(bad), cwd=tmp_path, timeout=120)
    assert_usage_error(result, "--resume")
    expected_word = {"missing": "no checkpoint", "corrupt": "corrupt", "truncated": "corrupt",
                     "other_trainer": "ppo_continuous", "version": "format",
                     "only_version": "not a checkpoint of this project",
                     "no_model": "not a checkpoint of this project"}[problem]  # fmt: skip
    assert expected_word in result.stderr
    assert _snapshot(tmp_path) | _snapshot(pendulum_run) == before


def test_resume_refuses_a_changed_experiment(pendulum_run, tmp_path):
    result = run_trainer(
        "ppo_continuous", "--resume", str(pendulum_run), "--objective", "none", cwd=tmp_path
    )
    assert_usage_error(result, "--objective")
    result = run_trainer(
        "ppo_continuous", "--resume", str(pendulum_run), "--env-id", "Hopper-v5", cwd=tmp_path
    )
    assert_usage_error(result, "--env-id")
    # A flag set to its default value is still a change when the run was saved with another value.
    result = run_trainer(
        "ppo_continuous", "--resume", str(pendulum_run), "--env-id", "HalfCheetah-v5", cwd=tmp_path
    )
    assert_usage_error(result, "--env-id")


def test_flags_on_command_line():
    argv = [
        "--resume",
        "runs/x",
        "--env-id=Hopper-v5",
        "--no-anneal-lr",
        "--wandb-tags",
        "a",
        "b",
        "3",
    ]
    assert flags_on_command_line(argv) == {
        "resume",
        "env_id",
        "anneal_lr",
        "no_anneal_lr",
        "wandb_tags",
    }


def test_resume_continues_in_the_checkpoints_own_run_folder(pendulum_run, tmp_path):
    moved = tmp_path / "elsewhere" / pendulum_run.name
    shutil.copytree(pendulum_run, moved)
    result = run_trainer("ppo_continuous", "--resume", str(moved), "--total-timesteps", str(2 * BATCH),
                         "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "runs").exists()
    assert json.loads((moved / "summary.json").read_text())["global_step"] == 2 * BATCH


def test_init_from_needs_the_same_env(pendulum_run, tmp_path):
    result = run_trainer(
        "ppo_continuous", "--init-from", str(pendulum_run), "--env-id", "Hopper-v5", cwd=tmp_path
    )
    assert_usage_error(result, "--init-from")


def test_init_from_starts_a_new_run_with_the_weights(pendulum_run, tmp_path):
    runs = tmp_path / "runs"
    result = run_trainer("ppo_continuous", *PENDULUM, "--init-from", str(pendulum_run), "--total-timesteps",
                         str(BATCH), "--runs-dir", str(runs), "--exp-name", "warm", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    new_run = only_run_dir(runs)
    assert new_run.name != pendulum_run.name
    new = load_checkpoint(new_run).data
    old = load_checkpoint(pendulum_run).data
    assert new["run"]["iteration"] == 1 and new["run"]["global_step"] == BATCH  # a fresh count
    # The observation statistics were carried over (then updated by one more iteration).
    assert (
        new["normalizers"]["obs_rms_0"]["count"] > old["normalizers"]["obs_rms_0"]["count"] + BATCH
    )
    assert scalars(new_run)["charts/SPS"][0][0] == BATCH


def test_stale_temporary_files_are_removed_when_a_run_starts(tmp_path, monkeypatch):
    """A kill during a save leaves atomic_write_bytes' temporary files; the next start deletes them."""
    from ppo_continuous.train import Args

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    stale = [folder / ".latest.pt.k3j4h5g6.tmp", folder / ".iter_0000002.pt.a1b2c3d4.tmp",
             tmp_path / ".summary.json.zz9_x8y7.tmp"]  # fmt: skip
    kept = [folder / "latest.pt", folder / "notes.tmp", tmp_path / ".my.tmp"]  # not the saver's
    for path in stale + kept:
        path.write_bytes(b"x" * 1000)
    agent, optimizer = _learner(0)
    Saver(tmp_path, "ppo_continuous", Args(), "run", agent, optimizer, RunState(1.0, EpisodeLog()))
    assert [p for p in stale if p.exists()] == []
    assert all(p.exists() for p in kept)


def test_continue_anneal_keeps_the_schedule_or_continues_it_smoothly():
    from common.checkpoint import continue_anneal

    fresh = (1, 1.0)
    # Same number of iterations: the saved schedule, unchanged.
    assert continue_anneal(fresh, 3, 8, 8) == fresh
    # Twice the iterations after 2 of 2: alpha continues on a line from its last value, 1/2.
    anchor = continue_anneal(fresh, 2, 2, 4)
    lrs = [linear_anneal(1.0, i, 2) for i in (1, 2)] + [
        linear_anneal(1.0, i, 4, anchor) for i in (3, 4)
    ]
    assert lrs == pytest.approx([1.0, 1 / 2, 1 / 3, 1 / 6])
    steps = [a - b for a, b in zip(lrs[1:], lrs[2:], strict=False)]
    assert steps == pytest.approx([1 / 6, 1 / 6])  # one straight line after the resume
    # A second resume continues from the first one's line.
    again = continue_anneal(anchor, 3, 4, 6)
    assert linear_anneal(1.0, 3, 4, anchor) == pytest.approx(linear_anneal(1.0, 3, 6, again))
    assert linear_anneal(1.0, 4, 6, again) < linear_anneal(1.0, 3, 6, again)


@pytest.fixture(scope="module")
def warm_started_run(pendulum_run, tmp_path_factory) -> tuple[Path, Path]:
    """Run B, warm-started from a copy of A with another --num-envs, steps and minibatches (2
    iterations); then A is moved away. Returns (B's run folder, where A was)."""
    folder = tmp_path_factory.mktemp("warm")
    source = folder / "source" / pendulum_run.name
    shutil.copytree(pendulum_run, source)
    result = run_trainer(
        "ppo_continuous", "--env-id", "Pendulum-v1", "--num-envs", "2", "--num-steps", "120",
        "--num-minibatches", "15", "--update-epochs", "1", "--total-timesteps", "480",
        "--init-from", str(source), "--runs-dir", str(folder / "runs"), cwd=folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    shutil.move(source, folder / "moved")
    return only_run_dir(folder / "runs"), source


def test_init_from_with_another_num_envs_carries_the_statistics_over(
    warm_started_run, pendulum_run
):
    run_b, _ = warm_started_run
    old = load_checkpoint(pendulum_run).data["normalizers"]
    new = load_checkpoint(run_b).data["normalizers"]
    assert set(new) == {"obs_rms_0", "obs_rms_1", "return_rms_0", "return_rms_1"}
    for i in (0, 1):  # each env started from A's statistics, then saw 240 steps of its own
        assert new[f"obs_rms_{i}"]["count"] > old["obs_rms_0"]["count"] + 240  # and resets
        assert new[f"return_rms_{i}"]["count"] == pytest.approx(old["return_rms_0"]["count"] + 240)


def test_pooled_statistics_equal_those_of_all_samples():
    from common.checkpoint import pooled_statistics

    rng = np.random.default_rng(0)
    parts = [rng.normal(i, 1 + i, size=(n, 3)) for i, n in enumerate([50, 7, 200])]
    stats = [{"mean": torch.tensor(x.mean(0)), "var": torch.tensor(x.var(0)), "count": float(len(x))}
             for x in parts]  # fmt: skip
    mean, var, count = pooled_statistics(stats)
    everything = np.concatenate(parts)
    assert count == len(everything)
    assert mean == pytest.approx(everything.mean(0)) and var == pytest.approx(everything.var(0))


def _copy_run(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy" / run.name
    shutil.copytree(run, copy)
    return copy


def test_warm_started_run_resumes_after_its_source_moved(warm_started_run, tmp_path):
    run_b, source = warm_started_run
    assert not source.exists()
    run = _copy_run(run_b, tmp_path)
    result = run_trainer("ppo_continuous", "--resume", str(run), cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert summary(run)["status"] == "finished"


def test_resume_checks_a_repeated_value_against_the_saved_arguments(warm_started_run, tmp_path):
    """B's batch is 2 x 120 = 240; 15 minibatches divide it but not the default batch, 2048."""
    run = _copy_run(warm_started_run[0], tmp_path)
    result = run_trainer("ppo_continuous", "--resume", str(run), "--num-minibatches", "15",
                         "--total-timesteps", "720", cwd=tmp_path, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert summary(run)["global_step"] == 720
    # The flags a resume may change are checked against the saved batch too.
    result = run_trainer("ppo_continuous", "--resume", str(run), "--total-timesteps", "100",
                         cwd=tmp_path, timeout=300)  # fmt: skip
    assert_usage_error(result, "--total-timesteps")
    assert "240" in result.stderr


def test_longer_resume_continues_the_learning_rate_smoothly(warm_started_run, tmp_path):
    """B ran 2 of 2 iterations (lr 3e-4 x 1, 1/2); resumed to 4 iterations, the rate goes on
    falling from where it was (x 1/3, 1/6) instead of jumping back up to the 4-iteration schedule's
    x 1/2, 1/4."""
    run = _copy_run(warm_started_run[0], tmp_path)
    before = [v for _, v in scalars(run)["charts/learning_rate"]]
    assert before == pytest.approx([3e-4, 1.5e-4])
    result = run_trainer("ppo_continuous", "--resume", str(run), "--total-timesteps", "960",
                         cwd=tmp_path, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    resumed_events = max(run.glob("events.out.tfevents.*"), key=os.path.getmtime)
    after = [v for _, v in scalars_of_file(resumed_events)["charts/learning_rate"]]
    assert after == pytest.approx([1e-4, 0.5e-4])
    assert load_checkpoint(run).data["run"]["anneal_anchor"] == pytest.approx([2, 0.5])


def test_no_numbered_checkpoints_keeps_latest_alone_and_resumes(runs_dir, tmp_path):
    flags = [*PENDULUM, "--save-every", "1", "--no-numbered-checkpoints", "--runs-dir", str(runs_dir)]  # fmt: skip
    result = run_trainer("ppo_continuous", *flags, "--total-timesteps", str(3 * BATCH),
                         cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(runs_dir)
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["latest.pt"]
    assert load_checkpoint(run_dir).data["run"]["iteration"] == 3
    result = run_trainer("ppo_continuous", "--resume", str(run_dir), "--total-timesteps",
                         str(4 * BATCH), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["latest.pt"]
    assert load_checkpoint(run_dir).data["run"]["iteration"] == 4


def test_evaluate_refuses_zero_episodes(pendulum_run, tmp_path):
    before = set(pendulum_run.glob("eval*.json"))
    result = run_evaluate(pendulum_run, "--episodes", "0", cwd=tmp_path)
    assert_usage_error(result, "--episodes")
    assert set(pendulum_run.glob("eval*.json")) == before


def test_evaluate_out_a_folder_writes_eval_json_into_it(pendulum_run, tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    result = run_evaluate(pendulum_run, "--episodes", "1", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (written,) = out.glob("eval-*.json")
    assert json.loads(written.read_text())["episodes"] == 1


def test_evaluations_keep_each_result(pendulum_run, tmp_path):
    """A second evaluation (here one episode, as a quick --render would be) writes a file of its
    own beside the first's instead of replacing it."""
    run = _copy_run(pendulum_run, tmp_path)
    for episodes in ("2", "1"):
        result = run_evaluate(run, "--episodes", episodes, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    written = sorted(run.glob("eval-*.json"), key=lambda p: p.stat().st_mtime_ns)
    assert [json.loads(p.read_text())["episodes"] for p in written] == [2, 1]
    assert f"wrote {written[-1]}" in result.stdout


def test_evaluate_out_a_new_folder_with_a_slash_writes_its_result_into_it(pendulum_run, tmp_path):
    out = tmp_path / "new" / "dir"
    result = run_evaluate(pendulum_run, "--episodes", "1", "--out", f"{out}/", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (written,) = out.glob("eval-*.json")  # a folder gets a new eval-<time>.json, as the run folder
    assert json.loads(written.read_text())["episodes"] == 1


def test_evaluate_out_under_a_file_is_one_line_exit_2(pendulum_run, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    result = run_evaluate(pendulum_run, "--out", str(a_file / "eval.json"), cwd=tmp_path)
    assert_usage_error(result, "--out")


def test_evaluate_capture_video_writes_into_the_run_folder(pendulum_run, tmp_path):
    result = run_evaluate(pendulum_run, "--episodes", "1", "--capture-video", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (folder,) = (pendulum_run / "videos").glob("eval-*")
    # One episode, one clip: not also the first frame of the episode its end reset into.
    assert [p.name for p in folder.glob("*.mp4")] == ["rl-video-episode-0.mp4"]
    assert f"videos in {folder}" in result.stdout
    assert not (tmp_path / "videos").exists()


def run_evaluate(run: Path, *flags: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "ppo_continuous" / "evaluate.py"), str(run), *flags],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_stop_request_takes_the_signals_only_while_installed(tmp_path):
    """A Saver alone leaves the process's signal handlers alone; an installed StopRequest turns
    SIGTERM into "save after this iteration", and uninstalling gives the old handler back."""
    from ppo_continuous.train import Args

    before = signal.getsignal(signal.SIGTERM)
    agent, optimizer = _learner(0)
    run = RunState(kl_beta=1.0, episodes=EpisodeLog())
    saver = Saver(tmp_path, "ppo_continuous", Args(), "run", agent, optimizer, run)
    assert signal.getsignal(signal.SIGTERM) is before
    assert not saver.after_iteration(1, final=False)

    stop = StopRequest().install()
    saver = Saver(tmp_path, "ppo_continuous", Args(), "run", agent, optimizer, run, stop=stop)
    try:
        signal.raise_signal(signal.SIGTERM)
        assert stop.requested
        assert saver.after_iteration(1, final=False)  # stop now, and saved first
        assert (tmp_path / "checkpoints" / "latest.pt").is_file()
    finally:
        stop.uninstall()
    assert signal.getsignal(signal.SIGTERM) is before


def test_resume_refuses_a_flag_given_at_its_default(pendulum_run):
    """The flags the CLI hands over count as given even at their default value."""
    from ppo_continuous.train import Args

    saved = load_checkpoint(pendulum_run).args
    assert saved["num_steps"] != Args().num_steps
    args = Args(resume=str(pendulum_run))  # num_steps at its default: not named on the command line
    resumed = load_checkpoint(pendulum_run, "ppo_continuous", args)
    assert resumed.args.num_steps == saved["num_steps"]  # the saved value stays
    with pytest.raises(SystemExit) as stop:
        load_checkpoint(pendulum_run, "ppo_continuous", args, given_flags={"num_steps"})
    assert stop.value.code == 2


def _damage(data: dict, problem: str) -> None:
    """One level below what ``load_checkpoint`` checks first: the args, the model, the statistics."""
    if problem == "no_num_steps":
        del data["args"]["num_steps"]
    elif problem == "num_steps_text":
        data["args"]["num_steps"] = "256"
    elif problem == "learning_rate_text":
        data["args"]["learning_rate"] = "fast"
    elif problem == "missing_tensor":
        del data["model"][next(iter(data["model"]))]
    elif problem == "extra_tensor":
        data["model"]["stray.weight"] = torch.zeros(3)
    elif problem == "wrong_shape":
        key = next(iter(data["model"]))
        data["model"][key] = torch.zeros(7, 7)
    elif problem == "no_normalizers":
        data["normalizers"] = {}
    elif problem == "negative_variance":
        name = next(iter(data["normalizers"]))
        data["normalizers"][name]["var"] = -torch.ones_like(data["normalizers"][name]["var"])
    elif problem == "wrong_statistics_shape":
        name = next(iter(data["normalizers"]))
        data["normalizers"][name]["mean"] = torch.zeros(5)


NESTED_DAMAGE = {
    "no_num_steps": "lack num_steps",
    "num_steps_text": "num_steps = '256'",
    "learning_rate_text": "learning_rate = 'fast'",
    "missing_tensor": "its model lacks",
    "extra_tensor": "stray.weight",
    "wrong_shape": "(7, 7)",
    "no_normalizers": "no obs_rms normalisation statistics",
    "negative_variance": "negative variance",
    "wrong_statistics_shape": "(5,)",
}


@pytest.mark.parametrize("problem", list(NESTED_DAMAGE))
def test_damage_inside_a_checkpoint_is_one_line_exit_2_on_resume(problem, pendulum_run, tmp_path):
    """Each of these was a KeyError, RuntimeError or ValueError traceback (issue 32, case 6)."""
    bad = tmp_path / "bad" / "checkpoints" / "latest.pt"
    bad.parent.mkdir(parents=True)
    data = torch.load(pendulum_run / "checkpoints" / "latest.pt", weights_only=True)
    _damage(data, problem)
    torch.save(data, bad)
    before = _snapshot(tmp_path)
    result = run_trainer("ppo_continuous", "--resume", str(bad), cwd=tmp_path, timeout=120)
    assert_usage_error(result, "--resume")
    assert "is damaged" in result.stderr and NESTED_DAMAGE[problem] in result.stderr
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("problem", ["missing_tensor", "wrong_shape", "no_normalizers"])
def test_evaluate_refuses_damage_inside_a_checkpoint(problem, pendulum_run, tmp_path):
    bad = tmp_path / "bad.pt"
    data = torch.load(pendulum_run / "checkpoints" / "latest.pt", weights_only=True)
    _damage(data, problem)
    torch.save(data, bad)
    result = run_evaluate(bad, "--episodes", "1", "--out", str(tmp_path), cwd=tmp_path)
    assert_usage_error(result, "checkpoint")
    assert NESTED_DAMAGE[problem] in result.stderr
    assert not (tmp_path / "eval.json").exists()


def read_only(folder: Path, command: list[str]) -> list[str]:
    """``command`` run where ``folder`` is read-only: a read-only bind mount in a mount namespace of
    its own (root may write into any folder a chmod makes read-only), or a chmod for another user."""
    mount = ["unshare", "-rm", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(folder)]
    if subprocess.run([*mount, "true"], capture_output=True).returncode == 0:
        return [*mount, *command]
    if os.geteuid() == 0:
        pytest.skip("no way to make a folder read-only to root here (unshare -rm is not allowed)")
    folder.chmod(0o555)
    return command


def test_evaluate_checks_a_read_only_run_folder_before_playing(pendulum_run, tmp_path):
    """It played every episode, then crashed writing eval.json (issue 32, case 7)."""
    run = tmp_path / pendulum_run.name
    shutil.copytree(pendulum_run, run)
    command = [
        sys.executable,
        str(REPO / "ppo_continuous" / "evaluate.py"),
        str(run),
        "--episodes",
        "20",
    ]
    try:
        result = subprocess.run(
            read_only(run, command), cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
    finally:
        run.chmod(0o755)
    assert_usage_error(result, "--out")
    assert str(run) in result.stderr
    assert "over 20 episodes" not in result.stdout  # refused before playing, not after
