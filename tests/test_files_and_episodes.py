"""Atomic writes and the episode log behind the paper's two scores."""

from __future__ import annotations

import os

import numpy as np
import pytest

from common.episodes import EpisodeLog
from common.files import atomic_write_bytes


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"old")
    assert target.read_bytes() == b"old"

    def fail(fd):
        raise OSError("power cut")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]  # no temporary file left


def test_episode_log_scores_and_round_trip():
    log = EpisodeLog()
    assert log.scores() == {
        "episodes": 0,
        "mean_return_all_training": None,
        "mean_return_last_100": None,
    }
    returns = [float(i) for i in range(150)]
    for i, r in enumerate(returns):
        log.add(r, i + 1)
    scores = log.scores()
    assert scores["episodes"] == 150
    assert scores["mean_return_all_training"] == pytest.approx(np.mean(returns))  # 74.5
    assert scores["mean_return_last_100"] == pytest.approx(np.mean(returns[50:]))  # 99.5
    assert log.latest_return == 149.0
    restored = EpisodeLog()
    restored.load_state_dict(log.state_dict())
    assert restored.scores() == scores
