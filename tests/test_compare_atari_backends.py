"""scripts/compare_atari_backends.py: random play on both backends, compared game by game."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import REPO, assert_usage_error

SCRIPT = str(REPO / "scripts" / "compare_atari_backends.py")


def compare(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, SCRIPT, *flags], capture_output=True, text=True, timeout=300
    )


def test_random_games_on_both_backends():
    result = compare("--games", "6", "--num-envs", "4")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {
        match["name"]: match
        for match in re.finditer(
            r"(?P<name>\w+): +ale_vector (?P<ale>[\d.]+) \+- [\d.]+ +gymnasium (?P<gym>[\d.]+) "
            r"\+- [\d.]+ +gap [-+][\d.]+ \+- [\d.]+, p = (?P<p>[\d.]+) \((?P<verdict>\w+) at 5%\)",
            result.stdout,
        )
    }
    assert set(rows) == {"score", "length", "lives_lost"}, result.stdout
    # Breakout has five lives: each game signals exactly five value-target ends on both backends.
    assert float(rows["lives_lost"]["ale"]) == float(rows["lives_lost"]["gym"]) == 5.0
    assert rows["lives_lost"]["verdict"] == "same" and rows["lives_lost"]["p"] == "1.00"
    # Five served balls with up to 30 no-ops first: a whole game is well over 5 agent steps.
    assert float(rows["length"]["ale"]) > 50 and float(rows["length"]["gym"]) > 50


@pytest.mark.parametrize(
    "flags, flag",
    [
        (["--env-id", "Pendulum-v1"], "--env-id"),
        (["--backends", "ale_vektor"], "--backends"),
        (["--games", "1"], "--games"),
    ],
)
def test_bad_input_is_one_line_exit_2(flags, flag):
    assert_usage_error(compare(*flags), flag)
