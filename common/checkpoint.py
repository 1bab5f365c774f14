"""Checkpoints that resume a run exactly, written atomically, read with ``weights_only=True``.

A checkpoint holds the network, the optimizer, the step and iteration counters (so the LR schedule
continues), the adaptive-KL beta, the observation and return normalisation statistics, the torch,
NumPy and Python RNG states, the args, the episode log behind the run summary and the W&B run id.
SIGTERM (a cluster preemption) and Ctrl-C finish the current iteration, save and exit cleanly.
"""

from __future__ import annotations

import io
import math
import random
import signal
from collections.abc import Collection
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from common.cli import UsageError, exit_usage
from common.distributed import World
from common.episodes import EpisodeLog
from common.files import atomic_write_bytes, atomic_write_json, remove_stale_temporaries
from common.runtime import code_version, host_description
from common.schedules import anneal_fraction
from common.validation import check_values, require_writable_dir

FORMAT_VERSION = 1
LATEST = "latest.pt"
# What a run of the batched runner (ppo_continuous/batched.py) saves in its own folder: the single
# trainer's format, playable by evaluate.py, but no resume point (its Adam state is the group's).
BATCHED_RUN_TRAINER = "ppo_continuous.batched_run"

# What every checkpoint of this format holds; a dict without one of these is not one of ours.
REQUIRED_KEYS = ("trainer", "run_name", "args", "model", "optimizer", "run", "normalizers", "rng")
REQUIRED_RUN_KEYS = ("global_step", "iteration", "wall_time", "kl_beta", "wandb_run_id", "episodes")
# The args every trainer's checkpoint holds and a resume or evaluation reads (the rest may be newer
# flags than an old checkpoint, which get their defaults).
REQUIRED_ARGS = ("env_id", "seed", "num_envs", "num_steps", "total_timesteps")


@dataclass
class RunState:
    """The mutable bookkeeping of a run, besides the network and optimizer."""

    kl_beta: float
    episodes: EpisodeLog
    global_step: int = 0
    iteration: int = 0
    wall_time: float = 0.0
    wandb_run_id: str | None = None
    # The annealing schedule's anchor: alpha falls on a line from (iteration, alpha) to 0 at
    # iteration N + 1. A new run starts at (1, 1.0); a resume with another N re-anchors it.
    anneal_anchor: tuple[int, float] = (1, 1.0)


@dataclass
class Checkpoint:
    """A loaded checkpoint: the arguments to continue with, and the raw saved data."""

    args: Any
    run_name: str
    data: dict[str, Any] = field(repr=False)
    file: Path | None = None
    flag: str = "--resume"  # the flag that named it, for the messages about it

    def damaged(self, problem: str) -> NoReturn:
        """Refuse this checkpoint in one line (exit code 2): ``problem`` says what is wrong."""
        exit_usage(damaged_message(self.flag, self.file, problem))

    def run_dir(self, runs_dir: str) -> Path:
        """Where a resumed run goes on: the run folder holding this checkpoint, even if it moved.

        A checkpoint file taken out of its ``checkpoints/`` folder continues in ``runs_dir``.
        """
        if self.file is not None and self.file.parent.name == "checkpoints":
            return self.file.parent.parent
        return Path(runs_dir) / self.run_name


def damaged_message(flag: str, file: Path | None, problem: str) -> str:
    return f"{flag}: {file} is damaged ({problem}); use another checkpoint, e.g. an earlier file in its checkpoints/ folder"


def checkpoint_file(path: str | Path) -> Path:
    """A checkpoint file, or a run folder (its ``checkpoints/latest.pt``)."""
    path = Path(path)
    return path / "checkpoints" / LATEST if path.is_dir() else path


def saved_trainer(path: str | Path) -> str | None:
    """The trainer that wrote a checkpoint (a file or a run folder), or None where there is no
    readable one; it never exits, for launchers that plan around the checkpoints they find."""
    file = checkpoint_file(path)
    try:
        data = torch.load(file, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - missing, truncated or foreign: no trainer to name
        return None
    trainer = data.get("trainer") if isinstance(data, dict) else None
    return trainer if isinstance(trainer, str) else None


def load_checkpoint(
    path: str | Path,
    trainer: str | tuple[str, ...] | None = None,
    args: Any = None,
    flag: str = "--resume",
    given_flags: Collection[str] = (),
) -> Checkpoint:
    """Open and check a checkpoint; any problem exits 2 with one line and touches no file.

    With ``args`` (a resume), flags the user changed that would alter the experiment are refused,
    and the ones that may change (``Args.resumable_flags``: total steps, saving, tracking) override
    the saved ones. ``given_flags`` are the flags named on the command line (the CLI hands them
    over); a flag not named there counts as given only when its value is not the default.
    """
    file = checkpoint_file(path)
    if not file.is_file():
        exit_usage(f"{flag}: no checkpoint at {file}; give a checkpoint file or a run folder")
    try:
        data = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        exit_usage(
            f"{flag}: {file} is not a readable checkpoint (corrupt or truncated: {type(err).__name__}); use another one, e.g. an earlier file in its checkpoints/ folder"
        )
    if not isinstance(data, dict) or "format_version" not in data:
        exit_usage(f"{flag}: {file} is not a checkpoint of this project")
    if data["format_version"] != FORMAT_VERSION:
        exit_usage(
            f"{flag}: {file} has checkpoint format {data['format_version']}, this version reads {FORMAT_VERSION}; use the project version that wrote it"
        )
    if not _has_required_keys(data):
        exit_usage(f"{flag}: {file} is not a checkpoint of this project (parts of it are missing)")
    if trainer is not None:
        require_trainer(data, trainer, flag)
    saved = dict(data["args"])
    problem = saved_args_problem(saved, type(args) if args is not None else None)
    if problem:
        exit_usage(damaged_message(flag, file, problem))
    if args is None:
        return Checkpoint(args=saved, run_name=data["run_name"], data=data, file=file, flag=flag)
    merged = _merge_resume_args(args, saved, flag, set(given_flags))
    ckpt = Checkpoint(
        args=type(args)(**merged), run_name=data["run_name"], data=data, file=file, flag=flag
    )
    try:  # the flags that may change on a resume, against the saved values of the others
        check_values(ckpt.args)
        require_writable_dir(ckpt.run_dir(ckpt.args.runs_dir), flag)
    except UsageError as err:
        exit_usage(str(err))
    return ckpt


def _has_required_keys(data: dict[str, Any]) -> bool:
    run, args = data.get("run"), data.get("args")
    return (
        all(key in data for key in REQUIRED_KEYS)
        and isinstance(run, dict)
        and all(key in run for key in REQUIRED_RUN_KEYS)
        and isinstance(args, dict)
        and "env_id" in args
        and isinstance(data["model"], dict)
        and isinstance(data["normalizers"], dict)
    )


def saved_args_problem(saved: dict[str, Any], args_type: type | None = None) -> str | None:
    """What is wrong with a checkpoint's saved args, or None: every trainer's run-shaping args
    present, the counts positive integers, and (given the trainer's ``Args``) each saved value of
    the type of the flag's default (an int where a float is expected is fine)."""
    for name in REQUIRED_ARGS:
        if name not in saved:
            return f"its args lack {name}"
    for name in ("num_envs", "num_steps", "total_timesteps"):
        value = saved[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return f"its args have {name} = {value!r}, not a positive integer"
    if args_type is None:
        return None
    defaults = args_type()
    for f in fields(args_type):
        if f.name not in saved:
            continue
        default, value = getattr(defaults, f.name), saved[f.name]
        expected = (int, float) if type(default) is float else type(default)
        if type(default) in (int, float, bool, str) and (
            not isinstance(value, expected) or isinstance(value, bool) != isinstance(default, bool)
        ):
            return f"its args have {f.name} = {value!r}, not a {type(default).__name__}"
    return None


def load_model(module: torch.nn.Module, ckpt: Checkpoint) -> None:
    """``module.load_state_dict`` of the checkpoint's model, after checking that it holds every
    tensor of ``module`` and no other, each of the right shape (one line and exit 2 otherwise)."""
    saved, expected = ckpt.data["model"], module.state_dict()
    missing = [key for key in expected if key not in saved]
    if missing:
        ckpt.damaged(f"its model lacks {missing[0]}")
    unknown = [key for key in saved if key not in expected]
    if unknown:
        ckpt.damaged(f"its model has {unknown[0]}, which this network does not")
    for key, tensor in expected.items():
        theirs = saved[key]
        if not isinstance(theirs, torch.Tensor) or theirs.shape != tensor.shape:
            shape = (
                tuple(theirs.shape) if isinstance(theirs, torch.Tensor) else type(theirs).__name__
            )
            ckpt.damaged(f"its model's {key} is {shape}, this network's is {tuple(tensor.shape)}")
    module.load_state_dict(saved)


def require_trainer(data: dict[str, Any], trainer: str | tuple[str, ...], flag: str) -> None:
    """A checkpoint is read only by the trainer(s) whose network and flags it holds."""
    trainers = (trainer,) if isinstance(trainer, str) else trainer
    if data["trainer"] not in trainers:
        exit_usage(
            f"{flag}: checkpoint was written by {data['trainer']}, not {' or '.join(trainers)}; use {data['trainer']}'s scripts"
        )


def _merge_resume_args(
    args: Any, saved: dict[str, Any], flag: str, on_command_line: set[str]
) -> dict[str, Any]:
    defaults = type(args)()
    resumable = type(args).resumable_flags
    merged = dict(saved)
    for f in fields(args):
        given = getattr(args, f.name)
        if f.name not in saved:  # a flag newer than the checkpoint: only a resumable one may count
            if f.name in resumable:
                merged[f.name] = given
            continue
        if f.name not in on_command_line and given == getattr(defaults, f.name):
            continue  # not given (a direct call passes changed fields): keep the saved value
        if f.name in resumable:
            merged[f.name] = given
        elif _plain(given) != saved[f.name]:
            name = "--" + f.name.replace("_", "-")
            exit_usage(
                f"{name}: cannot change from {saved[f.name]!r} to {given!r} when resuming ({flag}); start a new run, or use --init-from to start one from these weights"
            )
    for name, value in merged.items():
        if isinstance(getattr(defaults, name, None), tuple):
            merged[name] = tuple(value)
    return merged


def open_checkpoints(
    args: Any, trainer: str, given_flags: Collection[str] = ()
) -> tuple[Any, Checkpoint | None, Checkpoint | None]:
    """The arguments to run with, the checkpoint a resume continues, the one a warm start reads.

    A resumed run needs nothing but its own checkpoint: the ``--init-from`` it was started with
    is not read again (it may have moved or gone).
    """
    if args.resume:
        state = load_checkpoint(args.resume, trainer, args, given_flags=given_flags)
        return state.args, state, None
    if args.init_from:
        warm_start = load_checkpoint(args.init_from, trainer, flag="--init-from")
        check_init_from(warm_start, args.env_id)
        return args, None, warm_start
    return args, None, None


def require_same_world(ckpt: Checkpoint, ranks: int) -> None:
    """A run resumes with as many ranks as it was saved with (each rank's envs and RNG go on)."""
    saved = ckpt.data["run"].get("world_size", 1)
    if saved != ranks:
        launch = (
            f"torchrun --nproc-per-node {saved} (or as many ranks in all)"
            if saved > 1
            else "python"
        )
        exit_usage(
            f"--resume: the run was saved by {saved} rank(s) and is resumed by {ranks}; start it with {launch}"
        )


def check_init_from(ckpt: Checkpoint, env_id: str) -> None:
    """A warm start needs weights for the same env (the network's shapes depend on it)."""
    if ckpt.args["env_id"] != env_id:
        exit_usage(
            f"--init-from: checkpoint is for {ckpt.args['env_id']}, not {env_id}; pass --env-id {ckpt.args['env_id']}"
        )


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class StopRequest:
    """SIGTERM (a cluster's preemption) and Ctrl-C, turned into "save after this iteration and stop".

    Nothing changes until ``install``; ``uninstall`` gives the signals back. A second Ctrl-C stops
    at once. The trainer's loop (through its ``Saver``) reads ``requested`` after each iteration.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def install(self) -> StopRequest:
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._request)
        return self

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _request(self, signum, frame) -> None:
        if self.requested:  # a second Ctrl-C stops at once
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self.requested = True
        name = signal.Signals(signum).name
        print(f"\n{name}: saving after this iteration (again to stop at once)", flush=True)


class Saver:
    """Writes the checkpoints of one run: on schedule, at the end, and when a stop is requested."""

    def __init__(
        self,
        run_dir,
        trainer,
        args,
        run_name,
        agent,
        optimizer,
        run: RunState,
        normalizers=None,
        keep: int = 3,
        stop: StopRequest | None = None,
        world: World | None = None,
    ):
        self.folder = Path(run_dir) / "checkpoints"
        self.run_dir = Path(run_dir)
        self.trainer, self.args, self.run_name = trainer, args, run_name
        self.agent, self.optimizer, self.run = agent, optimizer, run
        self.normalizers = normalizers or {}
        self.keep = keep
        self.numbered = getattr(args, "numbered_checkpoints", True)  # False: latest.pt alone
        self.stop = stop if stop is not None else StopRequest()  # never requested unless installed
        self.world = world or World()
        if self.world.is_main:
            remove_stale_temporaries(self.folder)  # left by a kill during a save
            remove_stale_temporaries(self.run_dir)
        self.provenance = {"commit": code_version(), "host": host_description()}
        self.last_saved_iteration: int | None = None  # this session's latest save (rank 0's)

    def after_iteration(self, iteration: int, final: bool, stop: bool | None = None) -> bool:
        """Save on schedule, at the end, or when asked to stop; True means stop now. ``stop``: the
        stop request as all ranks agreed on it (default: this process's, read once)."""
        stop = self.stop.requested if stop is None else stop
        every = getattr(self.args, "save_every", 0)
        if final or stop or (every > 0 and iteration % every == 0):
            self.save()
        return stop  # the end-of-run summary says how to resume

    def state_dict(self) -> dict[str, Any]:
        run = self.run
        return {
            "format_version": FORMAT_VERSION,
            "trainer": self.trainer,
            "run_name": self.run_name,
            "args": {k: _plain(v) for k, v in asdict(self.args).items()},
            "model": self.agent.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "run": {
                "global_step": run.global_step, "iteration": run.iteration, "wall_time": run.wall_time,
                "kl_beta": run.kl_beta, "wandb_run_id": run.wandb_run_id, "episodes": run.episodes.state_dict(),
                "anneal_anchor": list(run.anneal_anchor), "world_size": self.world.size,
            },
            **self.rank_state(),
        }  # fmt: skip

    def save(self) -> Path:
        """One file per iteration plus ``latest.pt``, each written atomically; old ones rotated out.

        ``latest.pt`` (what resuming a run folder reads) goes first: once any file of this iteration
        exists, a kill loses nothing before it, not the interval before as well. Without numbered
        checkpoints it is the only file.
        """
        # Each rank's own RNG and normalisation statistics, so each resumes where it stood;
        # rank 0 writes the file (the weights and the optimizer are the same on every rank).
        ranks = self.world.gather(self.rank_state()) if self.world.distributed else None
        if not self.world.is_main:
            return self.folder / LATEST
        state = self.state_dict()
        if ranks is not None:
            state["ranks"] = ranks
        buffer = io.BytesIO()
        torch.save(state, buffer)
        blob = buffer.getvalue()
        atomic_write_bytes(self.folder / LATEST, blob)
        self.last_saved_iteration = self.run.iteration
        if not self.numbered:
            return self.folder / LATEST
        path = self.folder / f"iter_{self.run.iteration:07d}.pt"
        atomic_write_bytes(path, blob)
        for old in sorted(self.folder.glob("iter_*.pt"))[: -self.keep] if self.keep > 0 else []:
            old.unlink(missing_ok=True)
        return path

    def rank_state(self) -> dict[str, Any]:
        """What differs between the ranks of one run: RNG states and env normalisation."""
        normalizers = {
            name: {"mean": torch.as_tensor(rms.mean), "var": torch.as_tensor(rms.var), "count": float(rms.count)}
            for name, rms in self.normalizers.items()
        }  # fmt: skip
        return {"normalizers": normalizers, "rng": rng_state()}

    def restore(self, ckpt: Checkpoint | None, weights_only: bool) -> None:
        """Load a checkpoint: all of it for a resume, weights and normalisation for a warm start."""
        if ckpt is None:
            return
        data = ckpt.data
        if not weights_only and "ranks" in data:  # this rank's own part of a multi-rank run
            data = {**data, **data["ranks"][self.world.rank]}
        load_model(self.agent, ckpt)
        restore_normalizers(self.normalizers, data, ckpt)
        if weights_only:
            return
        self.optimizer.load_state_dict(data["optimizer"])
        saved_run = data["run"]
        self.run.global_step, self.run.iteration = saved_run["global_step"], saved_run["iteration"]
        self.run.wall_time, self.run.kl_beta = saved_run["wall_time"], saved_run["kl_beta"]
        self.run.wandb_run_id = saved_run["wandb_run_id"]
        self.run.episodes.load_state_dict(saved_run["episodes"])
        self.run.anneal_anchor = continue_anneal(
            tuple(saved_run.get("anneal_anchor", (1, 1.0))), self.run.iteration,
            num_iterations(data["args"], self.world.size),
            num_iterations(asdict(self.args), self.world.size),
        )  # fmt: skip
        set_rng_state(data["rng"])

    def write_summary(self, summary: dict[str, Any]) -> None:
        """``summary.json``, with the code version and host the run was started on."""
        atomic_write_json(self.run_dir / "summary.json", {**summary, **self.provenance})


def restore_normalizers(
    normalizers: dict[str, Any], data: dict[str, Any], ckpt: Checkpoint | None = None
) -> None:
    """Copy saved running statistics into live ``RunningMeanStd`` objects, by name.

    With other names (a warm start with another ``--num-envs``: ``obs_rms_0``, ``obs_rms_1``, ...
    against ``obs_rms_0`` alone), each live statistic gets the pooled statistics of the saved ones
    of its kind: what they measure, observations and returns, does not depend on the env count.
    Damaged statistics (missing, of another shape, a negative or non-finite variance, a count
    that is not positive) are refused in one line naming ``ckpt`` (exit code 2).
    """
    saved_all = data["normalizers"]
    problem = normalizers_problem(normalizers, saved_all)
    if problem:
        exit_usage(
            damaged_message(ckpt.flag, ckpt.file, problem) if ckpt else f"checkpoint: {problem}"
        )
    same_envs = set(saved_all) == set(normalizers)
    for name, rms in normalizers.items():
        if same_envs:
            mean, var, count = (
                saved_all[name]["mean"],
                saved_all[name]["var"],
                saved_all[name]["count"],
            )
        else:
            kind = name.rsplit("_", 1)[0]
            mean, var, count = pooled_statistics(
                [s for n, s in saved_all.items() if n.rsplit("_", 1)[0] == kind]
            )
        rms.mean = torch.as_tensor(mean).numpy().astype(np.float64)
        rms.var = torch.as_tensor(var).numpy().astype(np.float64)
        rms.count = float(count)


def normalizers_problem(normalizers: dict[str, Any], saved_all: Any) -> str | None:
    """What is wrong with a checkpoint's normalisation statistics for these live ones, or None."""
    kinds = {name.rsplit("_", 1)[0] for name in normalizers}
    for kind in sorted(kinds):
        if not any(str(n).rsplit("_", 1)[0] == kind for n in saved_all):
            return f"it holds no {kind} normalisation statistics"
    shapes = {name.rsplit("_", 1)[0]: np.shape(rms.mean) for name, rms in normalizers.items()}
    for name, stats in saved_all.items():
        if not isinstance(stats, dict) or any(k not in stats for k in ("mean", "var", "count")):
            return f"its normalisation statistics {name} lack a mean, var or count"
        try:
            mean, var = torch.as_tensor(stats["mean"]), torch.as_tensor(stats["var"])
            count = float(stats["count"])
        except (TypeError, ValueError, RuntimeError):
            return f"its normalisation statistics {name} are not numbers"
        shape = shapes.get(str(name).rsplit("_", 1)[0])
        if shape is not None and (tuple(mean.shape) != shape or tuple(var.shape) != shape):
            return f"its normalisation statistics {name} are {tuple(mean.shape)}, this env's are {shape}"
        finite = bool(torch.isfinite(mean).all() and torch.isfinite(var).all())
        if not finite or bool((var < 0).any()) or not (count > 0 and math.isfinite(count)):
            return f"its normalisation statistics {name} are not finite, or have a negative variance or a count that is not positive"
    return None


def pooled_statistics(stats: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean, variance and count of the union of the samples behind each ``{mean, var, count}``."""
    counts = np.array([float(s["count"]) for s in stats])
    means = np.stack([torch.as_tensor(s["mean"]).numpy().astype(np.float64) for s in stats])
    variances = np.stack([torch.as_tensor(s["var"]).numpy().astype(np.float64) for s in stats])
    total = counts.sum()
    weights = (counts / total).reshape((-1,) + (1,) * (means.ndim - 1))
    mean = (weights * means).sum(0)
    var = (weights * (variances + (means - mean) ** 2)).sum(0)
    return mean, var, float(total)


def num_iterations(args: dict[str, Any], ranks: int = 1) -> int:
    """Iterations of a run: ``total_timesteps`` in batches of ``num_envs * num_steps`` on each of
    ``ranks`` ranks (a resume has as many as the run it continues)."""
    return max(1, args["total_timesteps"] // (ranks * args["num_envs"] * args["num_steps"]))


def continue_anneal(
    anchor: tuple[int, float], iteration: int, old_iterations: int, new_iterations: int
) -> tuple[int, float]:
    """The annealing anchor of a run resumed after ``iteration`` with a new iteration count.

    The schedule continues smoothly: alpha falls on a straight line from the value it had at
    ``iteration`` to 0 at the new end, instead of jumping to where a run started with the new
    count would be. With the count unchanged the schedule is the saved one, exactly.
    """
    if new_iterations == old_iterations or iteration < 1:
        return anchor
    return iteration, anneal_fraction(iteration, old_iterations, anchor)


def rng_state() -> dict[str, Any]:
    """The torch, NumPy and Python RNG states, as tensors and plain lists (``weights_only`` loads them)."""
    numpy_state = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
        "python": [version, list(internal), gauss],
    }  # fmt: skip


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back the RNG states ``rng_state`` saved, so a resumed run draws what it would have."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (numpy_state[0], numpy_state[1].numpy().astype(np.uint32), *numpy_state[2:])
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
