"""Bad input: one line naming the flag, exit code 2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from common.cli import (
    UsageError,
    default_run_name,
    flag,
    parse_args,
    require_choice,
    require_positive,
    require_registered_env,
)


@dataclass
class Small:
    backend: Literal["alpha", "beta"] = "alpha"
    """which backend"""
    num_minibatches: int = 4
    """minibatches"""
    learning_rate: float = 3e-4
    """step size"""


def no_check(args: Small) -> None:
    return None


def one_error_line(capsys) -> str:
    """stderr holds exactly one non-blank line, starting with ``error:``; no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:"), lines[0]
    assert "Traceback" not in err
    return lines[0]


def exits_2(capsys, validate, argv) -> str:
    with pytest.raises(SystemExit) as stop:
        parse_args(Small, validate, argv)
    assert stop.value.code == 2
    return one_error_line(capsys)


def test_good_arguments_parse_and_are_validated():
    seen = []
    args = parse_args(Small, seen.append, ["--backend", "beta", "--num-minibatches", "8"])
    assert args == Small(backend="beta", num_minibatches=8)
    assert seen == [args]  # validate ran once, on the parsed arguments
    assert parse_args(Small, no_check, []) == Small()


def test_bad_literal_choice_is_one_line_exit_2(capsys):
    line = exits_2(capsys, no_check, ["--backend", "gamma"])
    assert "--backend" in line
    assert "gamma" in line


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--num-minibatches", "x"], "--num-minibatches"),
        (["--learning-rate", "fast"], "--learning-rate"),
        (["--bogus-flag", "3"], "--bogus-flag"),
        (["--backend"], "--backend"),
    ],
)
def test_other_parse_errors_are_one_line_exit_2(capsys, argv, named):
    assert named in exits_2(capsys, no_check, argv)


def test_usage_error_from_validate_is_one_line_exit_2(capsys):
    def validate(args: Small) -> None:
        if args.num_minibatches == 3:
            raise UsageError("--num-minibatches", "must divide the batch size 1000, got 3")

    line = exits_2(capsys, validate, ["--num-minibatches", "3"])
    assert line == "error: --num-minibatches: must divide the batch size 1000, got 3"
    assert parse_args(Small, validate, ["--num-minibatches", "8"]).num_minibatches == 8


def test_other_exceptions_from_validate_are_not_swallowed():
    def validate(args: Small) -> None:
        raise RuntimeError("a bug, not bad input")

    with pytest.raises(RuntimeError):
        parse_args(Small, validate, [])


def test_help_exits_0_and_is_not_an_error(capsys):
    with pytest.raises(SystemExit) as stop:
        parse_args(Small, no_check, ["--help"])
    assert stop.value.code in (0, None)
    out = capsys.readouterr()
    assert "error:" not in out.err
    assert "--num-minibatches" in out.out + out.err


def test_usage_error_message_names_the_flag():
    err = UsageError("--clip-coef", "must be positive")
    assert str(err) == "--clip-coef: must be positive"
    assert err.args == ("--clip-coef: must be positive",)


def test_flag_spelling():
    assert flag("num_minibatches") == "--num-minibatches"
    assert flag("gamma") == "--gamma"


def test_require_positive():
    require_positive(num_envs=1, learning_rate=1e-9, total_timesteps=10**6)
    with pytest.raises(UsageError, match="^--total-timesteps: .*0"):
        require_positive(num_envs=1, total_timesteps=0)
    with pytest.raises(UsageError, match="^--learning-rate: .*-0.5"):
        require_positive(learning_rate=-0.5)
    # With several bad values, the first one given is reported.
    with pytest.raises(UsageError, match="^--num-envs"):
        require_positive(num_envs=0, num_steps=-1)


def test_require_choice():
    assert require_choice("objective", "clip", ["clip", "adaptive_kl", "none"]) is None
    with pytest.raises(UsageError) as err:
        require_choice("objective", "clp", ("clip", "adaptive_kl", "none"))  # any iterable
    message = str(err.value)
    assert message.startswith("--objective: ")
    assert "did you mean 'clip'" in message
    assert "clip, adaptive_kl, none" in message  # the allowed values are listed
    with pytest.raises(UsageError) as err:
        require_choice("objective", "zzzzzz", iter(["clip", "none"]))
    assert "did you mean" not in str(err.value)
    assert "'zzzzzz'" in str(err.value) and "clip, none" in str(err.value)


def test_require_registered_env():
    assert require_registered_env("Pendulum-v1") is None
    assert require_registered_env("CartPole-v1") is None
    with pytest.raises(UsageError) as err:
        require_registered_env("Pendulm-v1")
    message = str(err.value)
    assert message.startswith("--env-id: ")
    assert "'Pendulm-v1'" in message and "did you mean 'Pendulum-v1'?" in message
    with pytest.raises(UsageError) as err:
        require_registered_env("qqqqqqqqqqqqqqqq")
    assert str(err.value).startswith("--env-id: ") and "did you mean" not in str(err.value)


def test_run_name_is_cleanrl_style_and_flat():
    name = default_run_name("ALE/Pong-v5", "exp", 3)
    env, exp, seed, stamp = name.split("__")
    assert (env, exp, seed) == ("ALE-Pong-v5", "exp", "3") and stamp.isdigit()
    assert "/" not in name
