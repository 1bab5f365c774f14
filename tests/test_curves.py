"""Learning curves read from run folders (scripts/curves.py): each episode once, also when resumed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from curves import episode_returns


def write_session(run_dir: Path, started: int, episodes: list[tuple[int, float]]) -> None:
    """One session's events file, named as a SummaryWriter started at unix time ``started`` names it."""
    from torch.utils.tensorboard import SummaryWriter

    scratch = run_dir / f"session_{started}"
    with SummaryWriter(str(scratch)) as writer:
        for step, value in episodes:
            writer.add_scalar("charts/episodic_return", value, step)
    (written,) = scratch.glob("events.out.tfevents.*")
    written.rename(run_dir / f"events.out.tfevents.{started}.host.name.{started % 97}")
    scratch.rmdir()


def test_a_resumed_runs_episodes_count_once(tmp_path):
    # Session 1 logs up to step 400 and is stopped; its last checkpoint was at step 250, so session
    # 2 logs the episodes at 300 (two envs ended there) and 400 again, then goes on; session 3
    # resumes from 450. A session with no episode changes nothing.
    write_session(tmp_path, 1_000, [(100, 1.0), (200, 2.0), (300, 3.0), (300, 3.5), (400, 4.0)])
    write_session(tmp_path, 2_000, [(300, 3.0), (300, 3.5), (400, 4.0), (500, 5.0), (600, 6.0)])
    write_session(tmp_path, 2_500, [])
    write_session(tmp_path, 10_000, [(500, 5.0), (600, 6.0), (700, 7.0)])
    steps, returns = episode_returns(tmp_path)
    assert steps == [100, 200, 300, 300, 400, 500, 600, 700]
    assert returns == [1.0, 2.0, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0]


def test_a_run_without_episodes_has_an_empty_curve(tmp_path):
    write_session(tmp_path, 1_000, [])
    assert episode_returns(tmp_path) == ([], [])


def test_finished_run_skips_a_cut_summary_with_a_warning(tmp_path, capsys):
    from conftest import fake_run
    from curves import finished_run

    good = fake_run(tmp_path / "runs" / "good", "Pendulum-v1", -200.0)
    cut = fake_run(
        tmp_path / "runs" / "cut", "Pendulum-v1", -100.0, mtime=good.stat().st_mtime + 10
    )
    (cut / "summary.json").write_text('{"finished": tr')
    assert finished_run(tmp_path / "runs", "Pendulum-v1") == good
    assert f"warning: {cut / 'summary.json'}: cannot be read" in capsys.readouterr().err


def one_core() -> list[int]:
    """A share of one core this process may use."""
    return [max(os.sched_getaffinity(0))] if hasattr(os, "sched_getaffinity") else [0]


def test_core_shares_deal_every_core_once(monkeypatch):
    import curves

    monkeypatch.setattr(curves.os, "sched_getaffinity", lambda pid: {0, 1, 2, 5, 7}, raising=False)
    assert curves.core_shares(1) == [[0, 1, 2, 5, 7]]
    assert curves.core_shares(2) == [[0, 2, 7], [1, 5]]
    assert curves.core_shares(5) == [[0], [1], [2], [5], [7]]
    for jobs in (0, 6):
        with pytest.raises(ValueError, match="need 1 to 5 cores"):
            curves.core_shares(jobs)


def test_a_pinned_trainer_runs_on_its_share_with_a_thread_per_core(tmp_path):
    """The command sees only its cores (where the OS can pin) and OMP_NUM_THREADS = their count."""
    from curves import train_or_reuse

    share = one_core()
    runs = tmp_path / "runs"
    report = runs / "run" / "seen.json"
    # Sleeps first so that it reads its affinity after the parent pinned it, as torch's thread
    # pools start after the trainer's imports.
    trainer = (
        "import json, os, pathlib, time; time.sleep(1); "
        f"out = pathlib.Path({str(report)!r}); out.parent.mkdir(parents=True); "
        "cores = sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None; "
        "out.write_text(json.dumps([cores, os.environ['OMP_NUM_THREADS']]))"
    )
    run = train_or_reuse([sys.executable, "-c", trainer], runs, "Any-v0", False, share)
    assert run == runs / "run"
    cores, threads = json.loads(report.read_text())
    assert threads == "1"
    if hasattr(os, "sched_getaffinity"):
        assert cores == share


def test_a_failing_trainer_fails_the_benchmark(tmp_path):
    from curves import train_or_reuse

    (tmp_path / "runs").mkdir()
    with pytest.raises(subprocess.CalledProcessError):
        train_or_reuse([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "runs", "Any-v0",
                       False, one_core())  # fmt: skip
