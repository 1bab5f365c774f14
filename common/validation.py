"""Every flag of the trainers (PPO, TRPO, CEM) checked once, before any env is built: a table of rules.

A bad value is refused as one line, ``error: --flag: must be ..., got ...``, exit code 2
(``common.cli.parse_args``). A trainer's ``validate`` calls ``check_command_line`` and then checks
its env id; a resumed run is checked again, against its saved arguments, once its checkpoint is
open (``common.checkpoint.load_checkpoint``), so a repeated saved value is never judged against a
trainer default.
"""

from __future__ import annotations

import math
import os
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from common.cli import UsageError, flag


@dataclass(frozen=True)
class Rule:
    """``name`` (an ``Args`` field) must satisfy ``ok(value, args)``; ``allowed`` says what may be given."""

    name: str
    allowed: str | Callable[[Any], str]
    ok: Callable[[Any, Any], bool]


def _positive(value: Any, args: Any) -> bool:
    return value > 0


def _not_negative(value: Any, args: Any) -> bool:
    return value >= 0


def _in_unit_interval(value: Any, args: Any) -> bool:
    return 0.0 <= value <= 1.0


def _batch_size(args: Any) -> int:
    return args.num_envs * args.num_steps


def _default(args: Any, name: str) -> Any:
    """The dataclass default of ``args``' field ``name``."""
    return {f.name: f.default for f in fields(args)}[name]


# Atari envs are one ALE emulator and one thread each (ppo_atari/envs.py); far more is a typo.
MAX_ATARI_ENVS = 1024


def _clip_coef_ok(value: float, args: Any) -> bool:
    clipping = args.objective == "clip" or args.clip_vloss
    return value > 0 or not clipping


# The run folder is {env_id}__{exp_name}__{seed}__{time}: with at most this many bytes of
# --exp-name it stays far below the 255 bytes a file name may have.
MAX_EXP_NAME_BYTES = 100
EXP_NAME_ALLOWED = (
    f"a name of 1 to {MAX_EXP_NAME_BYTES} bytes without a path separator (/ or \\) or a control "
    "character such as a newline (it names the run folder inside --runs-dir)"
)


def exp_name_ok(name: str) -> bool:
    """Whether ``name`` can be part of a run folder's name: one path component, printable, short.
    (The batched runner checks each of its ``--exp-names`` with it too.)"""
    return (
        0 < len(name.encode()) <= MAX_EXP_NAME_BYTES
        and not any(sep in name for sep in ("/", "\\", os.sep))
        and all(unicodedata.category(char)[0] != "C" for char in name)
    )


RULES: tuple[Rule, ...] = (
    Rule("exp_name", EXP_NAME_ALLOWED, lambda v, a: exp_name_ok(v)),
    Rule("seed", "an integer in [0, 2**32 - 1]", lambda v, a: 0 <= v < 2**32),
    Rule("num_envs", "a positive integer", _positive),
    Rule(
        "num_envs",
        f"at most {MAX_ATARI_ENVS} for an Atari game (each env is an emulator with its own thread)",
        lambda v, a: v <= MAX_ATARI_ENVS or not is_atari_id(getattr(a, "env_id", "")),
    ),
    Rule("num_steps", "a positive integer", _positive),
    Rule("num_minibatches", "a positive integer", _positive),
    # Before the minibatch rule: a batch of one sample is the rollout's fault, whatever the split.
    Rule(
        "num_steps",
        lambda a: (
            f"large enough for a batch num_envs * num_steps of 2 or more samples "
            f"(--num-envs {a.num_envs})"
        ),
        lambda v, a: _batch_size(a) >= 2,
    ),
    Rule(
        "num_minibatches",
        lambda a: (
            f"a divisor of the batch size num_envs * num_steps = {_batch_size(a)} that "
            "leaves minibatches of 2 or more samples (advantages are normalised per minibatch)"
        ),
        lambda v, a: _batch_size(a) % v == 0 and _batch_size(a) // v >= 2,
    ),
    Rule("update_epochs", "a positive integer", _positive),
    # --algorithm vpg is one policy-gradient step per batch (common/algorithms.py): other values
    # would run something else and record it as "vpg".
    *(
        Rule(
            name,
            f"{value} with --algorithm vpg ({why}; --algorithm ppo takes others)",
            lambda v, a, value=value: getattr(a, "algorithm", None) != "vpg" or v == value,
        )
        for name, value, why in (
            ("update_epochs", 1, "one gradient step per batch"),
            ("num_minibatches", 1, "the whole batch in one step"),
            ("objective", "none", "the plain policy gradient, eq. 6"),
        )
    ),  # fmt: skip
    Rule("torch_threads", "a positive integer", _positive),
    Rule(
        "total_timesteps",
        lambda a: f"at least one batch, num_envs * num_steps = {_batch_size(a)}",
        lambda v, a: v >= _batch_size(a),
    ),
    Rule("learning_rate", "a positive number", _positive),
    Rule("gamma", "a number in [0, 1]", _in_unit_interval),
    Rule("gae_lambda", "a number in [0, 1]", _in_unit_interval),
    Rule(
        "clip_coef",
        "a positive number (the clip range of --objective clip and of --clip-vloss)",
        _clip_coef_ok,
    ),
    Rule(
        "max_grad_norm",
        "0 (no clipping) or a positive number (a negative one reverses every step)",
        _not_negative,
    ),
    Rule("obs_clip", "a positive number (normalised observations are clipped to +-it)", _positive),
    Rule("optimizer_eps", "a positive number", _positive),
    Rule("kl_beta", "a positive number", _positive),
    Rule("kl_target", "a positive number", _positive),
    Rule(
        "target_kl",
        "a positive number, or left out (no early stop)",
        lambda v, a: v is None or v > 0,
    ),
    Rule(
        "lr_kl_target",
        "a positive number, or left out (no adaptive step size)",
        lambda v, a: v is None or v > 0,
    ),
    Rule("log_every", "a positive number of iterations", _positive),
    Rule("rmsprop_alpha", "a number in [0, 1)", lambda v, a: 0.0 <= v < 1.0),
    Rule(
        "rmsprop_alpha",
        "given only with --optimizer rmsprop (it is RMSprop's smoothing constant; Adam has none)",
        lambda v, a: (
            getattr(a, "optimizer", "rmsprop") == "rmsprop" or v == _default(a, "rmsprop_alpha")
        ),
    ),
    Rule("save_every", "0 (only at the end) or a positive number of iterations", _not_negative),
    Rule("keep_checkpoints", "0 (keep all) or a positive number", _not_negative),
    # TRPO (ppo_continuous/trpo.py)
    Rule("max_kl", "a positive number", _positive),
    Rule("cg_damping", "a positive number", _positive),
    Rule("value_learning_rate", "a positive number", _positive),
    Rule("cg_iters", "a positive integer", _positive),
    Rule("backtrack_iters", "a positive integer", _positive),
    Rule("value_epochs", "a positive integer", _positive),
    Rule("value_minibatches", "a positive integer", _positive),
    Rule("backtrack_coef", "a number in (0, 1)", lambda v, a: 0 < v < 1),
    # CEM (ppo_continuous/cem.py), whose Args alone have a population
    Rule(
        "num_envs",
        "1 for CEM (it scores one parameter vector at a time, in one env)",
        lambda v, a: v == 1 or not hasattr(a, "population"),
    ),
    Rule("elite_frac", "a number in (0, 1)", lambda v, a: 0 < v < 1),
    Rule(
        "population",
        lambda a: f"at least 2 and a divisor of --num-steps {a.num_steps}",
        lambda v, a: v >= 2 and a.num_steps % v == 0,
    ),
    Rule(
        "elite_frac",
        "large enough that --elite-frac times --population leaves at least one elite",
        lambda v, a: round(v * a.population) >= 1,
    ),
    Rule("init_std", "0 or more", _not_negative),
    Rule("extra_std", "0 or more", _not_negative),
    Rule("extra_decay_iterations", "a positive integer", _positive),
)


def check_values(args: Any) -> None:
    """Every float flag finite, then every rule of ``RULES`` whose field ``args`` has, in order.

    Raises UsageError for the first flag that fails.
    """
    for f in fields(args):
        value = getattr(args, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(flag(f.name), f"must be a finite number, got {value}")
    for rule in RULES:
        if not hasattr(args, rule.name):
            continue
        value = getattr(args, rule.name)
        if not rule.ok(value, args):
            allowed = rule.allowed(args) if callable(rule.allowed) else rule.allowed
            raise UsageError(flag(rule.name), f"must be {allowed}, got {_shown(value)}")


def _shown(value: Any) -> str:
    """A value as an error line quotes it: a string as its repr (a newline stays on the line),
    cut short when long."""
    if not isinstance(value, str):
        return str(value)
    if len(value) > 40:
        return f"{value[:40]!r}... ({len(value.encode())} bytes)"
    return repr(value)


def check_command_line(args: Any) -> None:
    """The trainer-independent checks of a command line, before any env is built.

    A new run: every value (``check_values``) and a writable ``--runs-dir``. A resume: only that it
    is not combined with ``--init-from``; its values are checked against the saved ones later.
    """
    if args.resume is not None:
        if args.init_from is not None:
            raise UsageError(
                "--init-from",
                "cannot be combined with --resume (a resumed run continues from its own checkpoint)",
            )
        return
    check_values(args)
    require_writable_dir(args.runs_dir, "--runs-dir")


def require_writable_dir(path: str | Path, flag_name: str) -> None:
    """``path`` is a folder this process can create (or has) and write into; no file is left behind.

    The nearest existing ancestor must be a folder that takes a new file: this catches a path under
    a file, a missing permission and a read-only filesystem, without creating ``path`` itself.
    """
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        if probe == path:
            raise UsageError(flag_name, f"{path} is not a folder")
        raise UsageError(flag_name, f"cannot create folder {path}: {probe} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)
        raise UsageError(flag_name, f"cannot write in {probe} ({reason})") from None


def is_atari_id(env_id: str) -> bool:
    """True for an ale-py Atari id (ale-py registers them with gymnasium when imported)."""
    import ale_py
    import gymnasium as gym

    gym.register_envs(ale_py)
    spec = gym.registry.get(env_id)
    return spec is not None and str(spec.entry_point).startswith("ale_py")


def require_continuous_control_id(
    env_id: str, flag_name: str = "--env-id", runner: str = "this trainer"
) -> None:
    """A registered gymnasium id that is not an Atari game (those are ppo_atari/train.py's); the
    batched runner calls it too, so an Atari id is not called "not registered" there."""
    from common.cli import require_registered_env

    if is_atari_id(env_id):
        raise UsageError(
            flag_name,
            f"{env_id!r} is an Atari game; {runner} is for continuous control, "
            "use ppo_atari/train.py",
        )
    require_registered_env(env_id, flag_name)


def make_env_or_usage_error(env_id: str, flag_name: str = "--env-id", **kwargs: Any):
    """``gym.make(env_id)``; an env whose optional dependency is missing (gymnasium raises
    ``DependencyNotInstalled``, e.g. Box2D for BipedalWalker) is a UsageError naming the package."""
    import gymnasium as gym

    try:
        return gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as err:
        raise UsageError(flag_name, missing_dependency_message(env_id, err)) from None


def missing_dependency_message(env_id: str, err: Exception) -> str:
    """gymnasium's message (it says what to ``pip install``) on one line, with the env id."""
    text = " ".join(str(err).split())
    hint = "" if "pip install" in text else '; pip install "gymnasium[all]" installs every family'
    return f"{env_id!r} needs a package that is not installed: {text}{hint}"
