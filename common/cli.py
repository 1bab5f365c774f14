"""Command-line parsing with tyro, and bad input reported as one line with exit code 2."""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import NoReturn, TypeVar

import tyro

T = TypeVar("T")


class UsageError(Exception):
    """Bad input, reported as ``error: --flag: what is allowed`` before any work starts."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(f"{flag}: {message}")


def exit_usage(message: str) -> NoReturn:
    """Print one ``error:`` line to stderr and exit with code 2, the convention for bad usage.

    Under ``torchrun`` or ``srun`` every rank checks its input before the ranks meet; a rank
    with bad input still meets the others, so that none waits for it, and rank 0 prints the
    first rank's error (``common.distributed.first_meeting``). After they met (ranks that
    disagree), only rank 0 prints; the others wait a moment first, since torchrun kills every
    rank when the first one exits."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not _ranks_have_met():
        from common.distributed import report_bad_input

        report_bad_input(message)
    if speaks():
        print(f"error: {message}", file=sys.stderr, flush=True)
    else:
        time.sleep(2.0)
    raise SystemExit(2)


def _ranks_have_met() -> bool:
    """Whether this process has joined its process group (torch is only imported when it has)."""
    distributed = sys.modules.get("torch.distributed")
    return distributed is not None and distributed.is_available() and distributed.is_initialized()


def speaks() -> bool:
    """Whether this process prints for the run: a plain process, or rank 0 of the ranks a launcher
    (torchrun, srun) started; read from ``RANK``, so it holds before any process group exists."""
    return os.environ.get("RANK", "0") == "0"


def parse_args(
    cls: type[T],
    validate: Callable[[T], None],
    argv: list[str] | None = None,
    resolve: Callable[[T, frozenset[str]], T] | None = None,
) -> T:
    """Parse ``cls`` with tyro, ``resolve`` defaults that depend on other flags (given the flags
    named on the command line), then ``validate``; any bad input exits 2 with a one-line error."""
    args = _tyro_one_line_errors(cls, argv)
    if resolve is not None:
        args = resolve(args, flags_on_command_line(argv))
    try:
        validate(args)
    except UsageError as err:
        exit_usage(str(err))
    return args


def _tyro_one_line_errors(cls: type[T], argv: list[str] | None) -> T:
    """tyro reports bad flags in a multi-line box; keep its first paragraph, on one line."""
    try:
        return parse_flags(cls, argv)
    except BadFlags as err:
        exit_usage(str(err))


class BadFlags(ValueError):
    """Flags tyro cannot parse (unknown, misspelt, a value of the wrong type): its message, one line."""


def parse_flags(cls: type[T], argv: list[str] | None) -> T:
    """``cls`` parsed from ``argv`` by tyro, its error box as a one-line ``BadFlags``; ``--help``
    prints and exits as usual."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return tyro.cli(cls, args=argv)
    except SystemExit as stop:
        text = captured.getvalue()
        if stop.code in (0, None):
            sys.stderr.write(text)
            raise
        raise BadFlags(_first_box_paragraph(text) or text.strip()) from None


def _first_box_paragraph(text: str) -> str:
    lines = []
    for raw in text.splitlines():
        line = raw.strip().strip("│").strip()
        if line.startswith("╭"):
            continue
        if line.startswith("─") or line.startswith("╰"):
            if lines:
                break
            continue
        if line:
            lines.append(line)
    return " ".join(lines)


def require_positive(**values: float) -> None:
    """Raise UsageError for the first flag (given as keyword, dashes for underscores) that is <= 0."""
    for name, value in values.items():
        if value <= 0:
            raise UsageError(flag(name), f"must be a positive number, got {value}")


def require_choice(name: str, value: str, allowed: Iterable[str]) -> None:
    """Raise UsageError naming the flag and the allowed values, with a close match if any."""
    allowed = list(allowed)
    if value in allowed:
        return
    close = difflib.get_close_matches(value, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UsageError(flag(name), f"unknown value {value!r}{hint}; allowed: {', '.join(allowed)}")


def require_registered_env(env_id: str, flag: str = "--env-id") -> None:
    """The env id must be registered with gymnasium (ale-py and MuJoCo ids register on import)."""
    import gymnasium as gym

    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UsageError(flag, f"{env_id!r} is not a registered gymnasium environment{hint}")


def flags_on_command_line(argv: list[str] | None = None) -> frozenset[str]:
    """The field names of the flags given in ``argv`` (default: this process's command line):
    ``--env-id X``, ``--env-id=X`` and ``--no-anneal-lr`` give ``env_id`` and ``anneal_lr``.

    A resume needs them: a flag given explicitly at its default value still counts as given."""
    names: set[str] = set()
    for token in sys.argv[1:] if argv is None else argv:
        if token.startswith("--"):
            name = token[2:].split("=", 1)[0].replace("-", "_")
            names |= {name, name.removeprefix("no_")}
    return frozenset(names)


def flag(name: str) -> str:
    """``num_minibatches`` -> ``--num-minibatches``."""
    return "--" + name.replace("_", "-")


def default_run_name(env_id: str, exp_name: str, seed: int) -> str:
    """CleanRL's run name, ``{env_id}__{exp_name}__{seed}__{unix time}`` ("/" of ALE ids as "-")."""
    return f"{env_id.replace('/', '-')}__{exp_name}__{seed}__{int(time.time())}"
