"""Every flag checked before any work, the same way in both trainers (common/validation.py).

Each bad value goes through the trainer's own ``parse_args(Args, validate)``, what its ``__main__``
runs, in this process; ``test_train_*.py`` run a few of them as real commands.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

import ppo_atari.train as atari
import ppo_continuous.train as continuous
from common.cli import UsageError, parse_args
from common.validation import RULES, check_values, require_writable_dir

TRAINERS = {"ppo_atari": atari, "ppo_continuous": continuous}
# Small valid runs of each trainer, so only the flag under test is wrong.
BASE = {
    "ppo_atari": ["--num-envs", "2", "--num-steps", "32", "--num-minibatches", "2"],
    "ppo_continuous": ["--env-id", "Pendulum-v1", "--num-steps", "256", "--num-minibatches", "4"],
}


def float_flags(module) -> list[str]:
    return [f.name for f in fields(module.Args) if "float" in str(f.type)]


def refused(capsys, trainer: str, argv: list[str], runs_dir: Path) -> str:
    """The trainer's parse_args exits 2 with one ``error:`` line; returns that line."""
    module = TRAINERS[trainer]
    with pytest.raises(SystemExit) as stop:
        parse_args(
            module.Args, module.validate, [*BASE[trainer], "--runs-dir", str(runs_dir), *argv]
        )
    assert stop.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    return lines[0]


def accepted(trainer: str, argv: list[str], runs_dir: Path):
    module = TRAINERS[trainer]
    return parse_args(
        module.Args, module.validate, [*BASE[trainer], "--runs-dir", str(runs_dir), *argv]
    )


def test_both_trainers_have_the_same_float_flags():
    # Vanilla PG's adaptive step size (--algorithm vpg) and the code-level flags of the 2017
    # setup (common.args.CodeLevelArgs, the optimizer's epsilon) are the continuous trainer's alone.
    continuous_only = {"lr_kl_target", "obs_clip", "optimizer_eps"}
    assert float_flags(atari) == [f for f in float_flags(continuous) if f not in continuous_only]
    assert len(float_flags(atari)) == 11 and "lr_kl_target" in float_flags(continuous)


@pytest.mark.parametrize("trainer", TRAINERS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_every_float_flag_must_be_finite(capsys, trainer, value, runs_dir):
    for name in float_flags(TRAINERS[trainer]):
        option = "--" + name.replace("_", "-")
        line = refused(capsys, trainer, [option, value], runs_dir)
        assert line.startswith(f"error: {option}: must be a finite number"), line


BAD_VALUES = [
    (["--gamma", "1.5"], "--gamma", "in [0, 1]"),
    (["--gamma", "-0.1"], "--gamma", "in [0, 1]"),
    (["--gae-lambda", "1.01"], "--gae-lambda", "in [0, 1]"),
    (["--clip-coef", "0"], "--clip-coef", "positive"),
    (["--clip-coef", "-0.2"], "--clip-coef", "positive"),
    # Value clipping uses the clip range too, whatever the policy objective.
    (["--clip-coef", "0", "--objective", "none"], "--clip-coef", "positive"),
    (["--max-grad-norm", "-1"], "--max-grad-norm", "positive"),
    (["--kl-target", "0"], "--kl-target", "positive"),
    (["--kl-beta", "-1"], "--kl-beta", "positive"),
    (["--target-kl", "0"], "--target-kl", "positive"),
    (["--learning-rate", "0"], "--learning-rate", "positive"),
    (["--total-timesteps", "10"], "--total-timesteps", "at least one batch"),
    (["--total-timesteps", "0"], "--total-timesteps", "at least one batch"),
    (["--num-envs", "0"], "--num-envs", "positive"),
    (["--num-steps", "-5"], "--num-steps", "positive"),
    (["--update-epochs", "0"], "--update-epochs", "positive"),
    (["--num-minibatches", "3"], "--num-minibatches", "2 or more samples"),
    (["--save-every", "-1"], "--save-every", "0"),
    (["--keep-checkpoints", "-1"], "--keep-checkpoints", "0"),
    (["--seed", "-1"], "--seed", "2**32"),
    (["--resume", "runs/x", "--init-from", "runs/y"], "--init-from", "--resume"),
]


@pytest.mark.parametrize("trainer", TRAINERS)
@pytest.mark.parametrize(("argv", "flag", "allowed"), BAD_VALUES)
def test_bad_value_is_refused_naming_the_flag_and_what_is_allowed(
    capsys, trainer, argv, flag, allowed, runs_dir
):
    line = refused(capsys, trainer, argv, runs_dir)
    assert line.startswith(f"error: {flag}: "), line
    assert allowed in line, line


def test_torch_threads_must_be_positive(capsys, runs_dir):
    line = refused(capsys, "ppo_continuous", ["--torch-threads", "0"], runs_dir)
    assert line.startswith("error: --torch-threads: must be a positive integer")


@pytest.mark.parametrize("trainer", TRAINERS)
@pytest.mark.parametrize(
    "argv",
    [
        ["--gamma", "1", "--gae-lambda", "0"],  # the ends of [0, 1] are allowed
        ["--clip-coef", "0", "--objective", "adaptive_kl", "--no-clip-vloss"],  # no clipping at all
        ["--save-every", "0", "--keep-checkpoints", "0", "--ent-coef", "0"],
        ["--target-kl", "0.02", "--total-timesteps", "256"],  # exactly one batch
    ],
)
def test_good_values_are_accepted(trainer, argv, runs_dir):
    assert accepted(trainer, argv, runs_dir) is not None


@pytest.mark.parametrize("trainer", TRAINERS)
def test_runs_dir_under_a_file_is_refused(capsys, trainer, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    line = refused(capsys, trainer, [], a_file / "runs")
    assert line.startswith("error: --runs-dir: ") and "not a folder" in line, line
    assert a_file.read_text() == "not a folder"


@pytest.mark.parametrize("trainer", TRAINERS)
def test_runs_dir_on_a_read_only_filesystem_is_refused(capsys, trainer):
    # /proc takes no new files, even for root (whom permission bits would not stop).
    line = refused(capsys, trainer, [], Path("/proc/ppo-runs"))
    assert line.startswith("error: --runs-dir: cannot write in /proc"), line


def test_writable_runs_dir_is_accepted_and_not_created(tmp_path):
    require_writable_dir(tmp_path / "new" / "runs", "--runs-dir")
    assert list(tmp_path.iterdir()) == []  # the check leaves nothing behind


def test_atari_id_in_the_continuous_trainer_names_the_atari_trainer(capsys, runs_dir):
    for env_id in ["BreakoutNoFrameskip-v4", "ALE/Pong-v5"]:
        line = refused(capsys, "ppo_continuous", ["--env-id", env_id], runs_dir)
        assert line.startswith(f"error: --env-id: {env_id!r} is an Atari game"), line
        assert "ppo_atari/train.py" in line, line


def test_every_rule_names_a_flag_of_a_trainer():
    from ppo_continuous import cem, trpo

    names = {f.name for module in (*TRAINERS.values(), trpo, cem) for f in fields(module.Args)}
    assert {rule.name for rule in RULES} <= names


def test_check_values_reports_the_first_bad_flag_in_table_order():
    args = continuous.Args(gamma=2.0, max_grad_norm=-1.0, learning_rate=float("nan"))
    with pytest.raises(UsageError, match="^--learning-rate: must be a finite number, got nan$"):
        check_values(args)  # non-finite values first
    args = continuous.Args(gamma=2.0, max_grad_norm=-1.0)
    with pytest.raises(UsageError, match=r"^--gamma: must be a number in \[0, 1\], got 2.0$"):
        check_values(args)
    check_values(continuous.Args())  # the defaults are valid
    check_values(atari.Args())


@pytest.mark.parametrize(
    ("num_envs", "num_steps", "num_minibatches", "ok"),
    [(1, 2048, 32, True), (1, 2048, 1, True), (2, 7, 7, True), (1, 7, 7, False),
     (1, 2048, 3, False), (2, 5, 4, False)],
)  # fmt: skip
def test_minibatches_split_the_batch_into_equal_parts_of_two_or_more(
    num_envs, num_steps, num_minibatches, ok
):
    """A minibatch of one sample is refused: per-minibatch advantage normalisation divides by the std."""
    args = continuous.Args(num_envs=num_envs, num_steps=num_steps, num_minibatches=num_minibatches,
                           total_timesteps=num_envs * num_steps)  # fmt: skip
    if ok:
        check_values(args)
    else:
        batch = num_envs * num_steps
        with pytest.raises(
            UsageError, match=f"^--num-minibatches: .*= {batch} .*got {num_minibatches}$"
        ):
            check_values(args)


@pytest.mark.parametrize("trainer", TRAINERS)
@pytest.mark.parametrize(
    "name",
    [
        "x/../../escaped",  # wrote outside --runs-dir, where report.py cannot find it
        "a\\b",
        "two\nlines",  # was accepted, and broke the run name and every line quoting it
        "tab\there",
        "x" * 300,  # was an OSError traceback (a file name has at most 255 bytes)
        "é" * 51,  # 102 bytes in UTF-8
        "",
    ],
)
def test_exp_name_must_be_one_short_printable_path_component(capsys, trainer, name, runs_dir):
    line = refused(capsys, trainer, ["--exp-name", name], runs_dir)
    assert line.startswith("error: --exp-name: must be a name of 1 to 100 bytes"), line
    assert "without a path separator" in line
    assert not any(runs_dir.iterdir())


@pytest.mark.parametrize("trainer", TRAINERS)
@pytest.mark.parametrize("name", ["clip_0.2", "x" * 100, "é" * 50, "lr=3e-4 run"])
def test_ordinary_exp_names_are_accepted(trainer, name, runs_dir):
    assert accepted(trainer, ["--exp-name", name], runs_dir).exp_name == name


def test_exp_name_is_checked_for_trpo_and_cem_too(capsys, runs_dir):
    from ppo_continuous import cem, trpo

    for module in (trpo, cem):
        with pytest.raises(SystemExit) as stop:
            parse_args(module.Args, module.validate, ["--env-id", "Pendulum-v1", "--exp-name", "a/b", "--runs-dir", str(runs_dir)])  # fmt: skip
        assert stop.value.code == 2
        assert capsys.readouterr().err.startswith("error: --exp-name: ")


def resolved(argv: list[str], runs_dir: Path) -> continuous.Args:
    """The continuous trainer's command line as the CLI takes it: --algorithm's values resolved."""
    argv = ["--env-id", "Pendulum-v1", "--num-steps", "256", "--runs-dir", str(runs_dir), *argv]
    return parse_args(continuous.Args, continuous.validate, argv, resolve=continuous.resolve)


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--algorithm", "vpg", "--update-epochs", "5"], "--update-epochs: must be 1 with --algorithm vpg"),
        (["--algorithm", "vpg", "--num-minibatches", "4"], "--num-minibatches: must be 1 with --algorithm vpg"),
        (["--algorithm", "vpg", "--objective", "clip"], "--objective: must be none with --algorithm vpg"),
        (["--rmsprop-alpha", "0.9"], "--rmsprop-alpha: must be given only with --optimizer rmsprop"),
        (["--algorithm", "a2c", "--num-steps", "1"], "--num-steps: must be large enough for a batch"),
        (["--num-steps", "1", "--num-minibatches", "1"], "--num-steps: must be large enough for a batch"),
    ],
)  # fmt: skip
def test_silent_combinations_are_refused_naming_the_flag(capsys, argv, flag, runs_dir):
    """Each would run something other than what summary.json records, or blame a flag not given."""
    with pytest.raises(SystemExit) as stop:
        resolved(argv, runs_dir)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {flag}"), lines


@pytest.mark.parametrize(
    "argv",
    [["--algorithm", "vpg"], ["--algorithm", "vpg", "--update-epochs", "1", "--objective", "none"],
     ["--algorithm", "a2c", "--rmsprop-alpha", "0.9"], ["--optimizer", "rmsprop", "--rmsprop-alpha", "0.9"]],
)  # fmt: skip
def test_consistent_combinations_are_accepted(argv, runs_dir):
    assert resolved(argv, runs_dir).rmsprop_alpha in (0.9, 0.99)


def test_a_huge_atari_num_envs_is_one_line(capsys, runs_dir):
    line = refused(
        capsys, "ppo_atari", ["--num-envs", "100000", "--total-timesteps", "10000000000"], runs_dir
    )
    assert line.startswith("error: --num-envs: must be at most 1024 for an Atari game"), line
    accepted("ppo_atari", ["--num-envs", "1024", "--total-timesteps", "10000000000"], runs_dir)


def test_an_atari_id_is_named_as_such_for_any_continuous_runner():
    from common.validation import require_continuous_control_id

    with pytest.raises(
        UsageError, match="^--env-id: 'BreakoutNoFrameskip-v4' is an Atari game; the batched"
    ):
        require_continuous_control_id("BreakoutNoFrameskip-v4", runner="the batched runner")
    with pytest.raises(UsageError, match="is not a registered gymnasium environment"):
        require_continuous_control_id("Pendulum-v9")
    require_continuous_control_id("Pendulum-v1")
