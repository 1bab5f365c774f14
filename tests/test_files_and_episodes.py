"""Atomic writes and the episode log behind the paper's two scores."""

from __future__ import annotations

import json
import os

import pytest

from common.episodes import EpisodeLog
from common.files import atomic_write_bytes, atomic_write_json


def test_atomic_write_creates_and_replaces(tmp_path):
    target = tmp_path / "a" / "b" / "file.bin"  # parent folders do not exist yet
    atomic_write_bytes(target, b"first")
    assert target.read_bytes() == b"first"
    atomic_write_bytes(str(target), b"second, longer content")  # str paths work too
    assert target.read_bytes() == b"second, longer content"
    atomic_write_bytes(target, b"")
    assert target.read_bytes() == b""
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


def test_atomic_write_json_round_trip(tmp_path):
    target = tmp_path / "summary.json"
    obj = {"b": [1, 2.5, None], "a": "x"}
    atomic_write_json(target, obj)
    assert json.loads(target.read_text()) == obj
    assert target.read_text().endswith("\n")


def power_cut(fd):
    raise OSError("power cut")


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"old")
    assert target.read_bytes() == b"old"
    monkeypatch.setattr(os, "fsync", power_cut)
    with pytest.raises(OSError, match="power cut"):
        atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]  # no temporary file left


def test_atomic_write_interrupted_on_a_new_path_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fsync", power_cut)
    with pytest.raises(OSError):
        atomic_write_bytes(tmp_path / "new.bin", b"content")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_interrupted_by_keyboard_interrupt_cleans_up(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"old")

    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]


def test_episode_log_empty_scores_are_none():
    log = EpisodeLog()
    assert log.scores() == {
        "episodes": 0,
        "mean_return_all_training": None,
        "mean_return_last_100": None,
    }
    assert log.latest_return is None
    restored = EpisodeLog()
    restored.load_state_dict(log.state_dict())
    assert restored.scores() == log.scores()


def filled_log(num: int = 150) -> EpisodeLog:
    log = EpisodeLog()
    for i in range(num):
        log.add(2 * i + 1, 10 + i)  # returns 1, 3, 5, ..., 2 * num - 1
    return log


def test_episode_log_scores_all_and_last_100():
    log = filled_log(150)
    scores = log.scores()
    assert scores["episodes"] == 150
    # Sum of the first k odd numbers is k^2: all 150 -> 150^2 / 150 = 150.
    assert scores["mean_return_all_training"] == pytest.approx(150.0)
    # Last 100 are episodes 50..149: (150^2 - 50^2) / 100 = 200.
    assert scores["mean_return_last_100"] == pytest.approx(200.0)
    assert log.latest_return == 299.0
    assert list(log.last_lengths) == list(range(60, 160))


def test_episode_log_under_100_episodes_both_scores_agree():
    log = filled_log(40)
    scores = log.scores()
    assert scores["mean_return_all_training"] == pytest.approx(40.0)  # 40^2 / 40
    assert scores["mean_return_last_100"] == pytest.approx(40.0)


def test_episode_log_state_dict_round_trip():
    log = filled_log(150)
    state = log.state_dict()
    # Plain numbers only, as the checkpoint format requires.
    assert json.loads(json.dumps(state)) == state
    restored = EpisodeLog()
    restored.load_state_dict(state)
    assert restored.scores() == log.scores()
    assert restored.latest_return == log.latest_return
    # The restored log keeps its 100-episode window: adding more behaves the same in both.
    for extra in (1000.0, -50.0):
        log.add(extra, 1)
        restored.add(extra, 1)
    assert restored.scores() == log.scores()
    assert len(restored.last_returns) == 100
    # 152 episodes: sum 150^2 + 950 = 23450; the last 100 are episodes 52..149 (returns
    # 105, 107, ..., 299, summing to 150^2 - 52^2) plus the two new ones.
    assert log.scores()["mean_return_all_training"] == pytest.approx(23450 / 152)
    assert log.scores()["mean_return_last_100"] == pytest.approx((150**2 - 52**2 + 950) / 100)


def test_episode_log_from_lists_equals_adding_one_by_one():
    returns, lengths = [3.0, -1.0, 7.5], [10, 20, 30]
    from_lists = EpisodeLog(returns, lengths)
    one_by_one = EpisodeLog()
    for r, n in zip(returns, lengths, strict=True):
        one_by_one.add(r, n)
    assert from_lists.scores() == one_by_one.scores()
    assert from_lists.scores()["mean_return_all_training"] == pytest.approx(9.5 / 3)
    with pytest.raises(ValueError):
        EpisodeLog([1.0, 2.0], [1])


def test_atomic_write_gives_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "summary.json", b"{}")
    finally:
        os.umask(mask)
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o644
