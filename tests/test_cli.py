"""Bad input: one line naming the flag, exit code 2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from common.cli import (
    UsageError,
    default_run_name,
    parse_args,
    require_choice,
    require_divides,
    require_positive,
    require_registered_env,
)


@dataclass
class Small:
    backend: Literal["a", "b"] = "a"
    """which backend"""
    num_minibatches: int = 4
    """minibatches"""


def one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error:")
    return lines[0]


def test_bad_choice_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as stop:
        parse_args(Small, lambda a: None, ["--backend", "c"])
    assert stop.value.code == 2
    line = one_error_line(capsys)
    assert "--backend" in line and "'a'" in line and "'b'" in line


def test_validation_error_is_one_line_exit_2(capsys):
    def validate(args):
        require_divides(1000, args.num_minibatches)

    with pytest.raises(SystemExit) as stop:
        parse_args(Small, validate, ["--num-minibatches", "3"])
    assert stop.value.code == 2
    assert "--num-minibatches" in one_error_line(capsys)
    assert parse_args(Small, validate, ["--num-minibatches", "8"]).num_minibatches == 8


def test_requirements():
    require_positive(a=1, b=0.5)
    with pytest.raises(UsageError, match="--total-timesteps"):
        require_positive(num_envs=1, total_timesteps=0)
    with pytest.raises(UsageError, match="did you mean 'clip'"):
        require_choice("objective", "clp", ["clip", "none"])
    require_registered_env("Pendulum-v1")
    with pytest.raises(UsageError, match="did you mean 'Pendulum-v1'"):
        require_registered_env("Pendulm-v1")


def test_run_name_is_cleanrl_style_and_flat():
    name = default_run_name("ALE/Pong-v5", "exp", 3)
    env, exp, seed, stamp = name.split("__")
    assert (env, exp, seed) == ("ALE-Pong-v5", "exp", "3") and stamp.isdigit()
