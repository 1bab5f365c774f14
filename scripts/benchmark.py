"""Sweeps: env ids x seeds x named variants, run through submitit on this machine or on SLURM.

    python scripts/benchmark.py --preset smoke                         # a small try-out, local
    python scripts/benchmark.py --preset paper-table1 --workers 2      # the paper's Table 1 sweep
    python scripts/benchmark.py --preset paper-atari49 --slurm-partition gpu --gpus-per-task 1
    python scripts/benchmark.py --preset paper-table1 --dry-run        # print the commands only

Every run is ``python <trainer>/train.py ... --exp-name <variant> --runs-dir <runs-dir>``, so its
folder is ``<runs-dir>/<env>__<variant>__<seed>__<time>`` with a summary.json that
``scripts/report.py`` reads. A re-launch is idempotent: finished runs are skipped and runs with a
checkpoint are resumed (``--resume``), so a sweep survives preemption and crashes.

The paper presets also keep a results record on main (``docs/results/records/<preset>/``, see
``records.py``): each run is added to it when it ends, and a run the record holds is never run
again, so the same command on a fresh machine runs only what is missing.
"""

from __future__ import annotations

import importlib
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from presets import REPO, Preset, presets, run_prefix
from records import (
    RECORDS,
    RESULT_STATUSES,
    DamagedRecord,
    Record,
    key_of,
    read_summary,
    result_of_run,
    shared_records,
    status_of,
)

from common.checkpoint import BATCHED_RUN_TRAINER, saved_trainer
from common.cli import (
    BadFlags,
    UsageError,
    exit_usage,
    flag,
    flags_on_command_line,
    parse_args,
    parse_flags,
    require_choice,
    require_registered_env,
)
from common.distributed import torchrun


@dataclass
class Args:
    preset: str = "smoke"
    """paper-table1 (7 MuJoCo tasks x 11 objectives x 3 seeds), paper-table1-2017 (the same under the 2017 setup), paper-table1-ablation (no clipping and clip 0.2 with one 2017 choice at a time), paper-table1-ablation-pairs (no clipping on the pendulums without return normalisation and with one more 2017 choice), paper-figure3 (7 tasks x 5 algorithms x 3 seeds), paper-figure3-2017 (its TRPO and PPO under the 2017 setup), paper-atari49 (49 games x 3 seeds), paper-atari49-a2c (the same with our A2C), smoke, smoke-figure3"""
    env_ids: tuple[str, ...] = ()
    """only these env ids of the preset (default: all)"""
    seeds: tuple[int, ...] = ()
    """these seeds instead of the preset's"""
    variants: tuple[str, ...] = ()
    """only these variants of the preset (default: all)"""
    runs_dir: str | None = None
    """where the runs go (default: runs/sweep-<preset>)"""
    env_backend: str = "gymnasium"
    """the MuJoCo envs of a continuous preset's PPO, A2C and VPG runs: gymnasium, or envpool (the
    same -v5 tasks in C++, docs/benchmarks/envpool.md); recorded per run, the record is kept"""
    extra: str = ""
    """more trainer flags for every run, in quotes, e.g. --extra='--total-timesteps 200000' (it may
    override the preset's common flags; not those the sweep sets per run, such as --seed, nor a
    variant's own); checked by the trainer's validation before any run starts"""
    dry_run: bool = False
    """print the commands, run nothing"""
    record_dir: str | None = None
    """the results record to add finished runs to and skip runs from (default: docs/results/records/<preset> for the paper presets without --extra or --ranks)"""
    no_record: bool = False
    """keep no results record (the run folders alone say what is done)"""
    record_only: bool = False
    """add the runs that ended in --runs-dir to the record, start none (e.g. for runs launched elsewhere)"""
    workers: int = 1
    """local runs at the same time"""
    # SLURM (through submitit); without --slurm-partition the runs are local processes
    slurm_partition: str | None = None
    """submit a SLURM job array to this partition"""
    gpus_per_task: int = 0
    """GPUs per run on SLURM"""
    cpus_per_task: int = 2
    """CPUs per run on SLURM"""
    timeout_min: int = 24 * 60
    """time limit per run, minutes"""
    ranks: int = 1
    """processes per run (torch.distributed; README "One run on several processes"): on SLURM, as
    many tasks of one job, which submitit wires together (each rank uses one GPU: give
    --gpus-per-task 1); locally, torchrun --nproc-per-node RANKS"""
    array_parallelism: int = 64
    """runs of the job array running at once on SLURM"""
    # Tracking, passed through to every run (each variant is a W&B group)
    track: bool = False
    """track every run in W&B"""
    wandb_project_name: str = "ppo-pipeline"
    """the W&B project of the whole sweep"""
    wandb_entity: str | None = None
    """the W&B entity"""
    # Several runs per process (issue 12; scripts/batched_groups.py)
    batched: bool = False
    """run a continuous preset's new runs of each env as one process of ppo_continuous/batched.py (one per setting of the shared flags where variants differ in them, as the ablation's do)"""
    group_size: int = 0
    """with --batched: runs per process at most (0: all of one env's runs that share their flags)"""


@dataclass(frozen=True)
class Run:
    env_id: str
    seed: int
    variant: str
    command: list[str]
    state: (
        str  # "recorded" (in the results record), "finished" (not yet recorded), "resume" or "new"
    )
    runs_dir: Path

    def run_dir(self) -> Path | None:
        return find_run_dir(self.runs_dir, self.env_id, self.variant, self.seed)

    def status(self) -> str | None:
        """The status its summary.json gives (finished, diverged, stopped), None without one."""
        run_dir = self.run_dir()
        summary = read_summary(run_dir) if run_dir else None
        return status_of(summary) if summary else None


def ran_in_a_group(run_dir: Path | None) -> bool:
    """Whether a stopped run was trained by ``batched.py``: its checkpoint is the batched runner's,
    which the single trainer refuses, and its group's checkpoint resumes it instead. A group
    killed outright (SIGKILL, a lost machine) wrote no summary: its runs' checkpoints say."""
    if run_dir is None:
        return False
    summary = read_summary(run_dir)
    if summary:
        return summary.get("runner") == "batched"
    return saved_trainer(run_dir) == BATCHED_RUN_TRAINER


def find_run_dir(runs_dir: Path, env_id: str, variant: str, seed: int) -> Path | None:
    """The newest run folder of this env, variant and seed, if any."""
    found = sorted(runs_dir.glob(run_prefix(env_id, variant, seed) + "*"), key=lambda p: p.name)
    return found[-1] if found else None


def plan(args: Args, preset: Preset, runs_dir: Path, record: Record | None = None) -> list[Run]:
    """Every run of the sweep, with its command and its state.

    A run in the results record is done wherever its folder is (a fresh machine has none), and so
    is a run of a shared variant in the record of the preset it is shared with; one whose folder
    says it ended (finished or diverged) only needs recording; one with a checkpoint resumes; the
    rest are new.
    """
    shared = shared_records(record.folder, preset.shared) if record is not None else {}
    tracking = ["--track", "--wandb-project-name", args.wandb_project_name] if args.track else []
    if args.track and args.wandb_entity:
        tracking += ["--wandb-entity", args.wandb_entity]
    # On SLURM each task is a rank; locally torchrun starts them
    python = (
        torchrun(args.ranks) if args.ranks > 1 and not args.slurm_partition else [sys.executable]
    )
    runs = []
    for variant in args.variants or tuple(preset.variants):
        for env_id in args.env_ids or preset.env_ids:
            for seed in args.seeds or preset.seeds:
                flags = [
                    *trainer_flags(args, preset, variant, env_id, seed, runs_dir),
                    *tracking, *(["--wandb-group", variant] if args.track else []),
                ]  # fmt: skip
                script = str(preset.script(variant))
                run = Run(env_id, seed, variant, [*python, script, *flags], "new", runs_dir)
                run_dir = run.run_dir()
                key = (env_id, variant, seed)
                if record is not None and (key in record or key in shared.get(variant, ())):
                    state = "recorded"
                elif run.status() in RESULT_STATUSES:
                    state = "finished"
                elif args.batched and ran_in_a_group(run_dir):
                    state = "new"  # its group is planned again and resumes from its own checkpoint
                elif run_dir is not None and (run_dir / "checkpoints" / "latest.pt").is_file():
                    state, flags = "resume", [*flags, "--resume", str(run_dir)]
                else:
                    state = "new"
                runs.append(Run(env_id, seed, variant, [*python, script, *flags], state, runs_dir))
    return runs


def trainer_flags(
    args: Args, preset: Preset, variant: str, env_id: str, seed: int, runs_dir: Path
) -> list[str]:
    """A run's trainer flags, tracking aside: the sweep's own, the preset's, then ``--extra``."""
    # Sweeps keep checkpoints/latest.pt alone (an Atari checkpoint is ~20 MB); first, so
    # --extra='--numbered-checkpoints' overrides it.
    return [
        "--no-numbered-checkpoints",
        "--env-id", env_id, "--seed", str(seed), "--exp-name", variant, "--runs-dir", str(runs_dir),
        *(["--env-backend", args.env_backend] if args.env_backend != "gymnasium" else []),
        *preset.common_flags, *preset.variants[variant], *shlex.split(args.extra),
    ]  # fmt: skip


def record_run(record: Record | None, run: Run) -> None:
    """Add a run that ended by itself to the results record and save it at once."""
    run_dir = run.run_dir()
    if record is None or run_dir is None or run.status() not in RESULT_STATUSES:
        return
    row, curve = result_of_run(run_dir)
    if key_of(row) != (run.env_id, run.variant, run.seed):  # checked before anything is written
        raise ValueError(
            f"{run_dir} holds {key_of(row)}, not the planned {run.env_id} {run.variant} seed {run.seed}"
        )
    record.add_and_save(row, curve)


class TrainerJob:
    """What submitit runs: one trainer command, its output to a log file; returns the exit code.

    With ``ranks`` > 1 on SLURM, each of the job's tasks runs it as one rank: submitit's
    ``TorchDistributedEnvironment`` gives the trainer its rank, the world size and rank 0's
    address; rank r > 0 writes its own log beside rank 0's."""

    def __init__(self, command: list[str], log_file: str, ranks: int = 1) -> None:
        self.command, self.log_file, self.ranks = command, log_file, ranks

    def __call__(self) -> int:
        log_file = self.log_file
        if self.ranks > 1:
            import submitit

            # Each job picks its port from its job id, not one inherited from the submitting shell
            # (two jobs on a node would meet on it); the trainer chooses cuda:{LOCAL_RANK} among
            # the GPUs SLURM shows the task.
            os.environ.pop("MASTER_PORT", None)
            world = submitit.helpers.TorchDistributedEnvironment()
            world.export(set_cuda_visible_devices=False, overwrite=True)
            if world.rank > 0:
                log_file = log_file.replace("log.txt", f"rank{world.rank}.log.txt")
        with open(log_file, "a") as log:
            log.write(f"$ {shlex.join(self.command)}\n")
            log.flush()
            return subprocess.run(
                self.command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
            ).returncode


def make_executor(args: Args, log_dir: Path):
    import submitit

    if args.slurm_partition:
        executor = submitit.AutoExecutor(folder=str(log_dir / "submitit"), cluster="slurm")
        executor.update_parameters(
            slurm_partition=args.slurm_partition, timeout_min=args.timeout_min,
            cpus_per_task=args.cpus_per_task, gpus_per_node=args.gpus_per_task * args.ranks or None,
            slurm_array_parallelism=args.array_parallelism, tasks_per_node=args.ranks, nodes=1,
        )  # fmt: skip
    else:
        executor = submitit.AutoExecutor(folder=str(log_dir / "submitit"), cluster="local")
        executor.update_parameters(timeout_min=args.timeout_min)
    return executor


def launch(
    args: Args, runs: list[Run], log_dir: Path, record: Record | None = None
) -> list[tuple[Run, str, int, str]]:
    """Run the runs, recording each that ends by itself; returns (run, outcome, exit code, log).

    The outcome is ``done``, ``diverged`` (the trainer stopped it on a non-finite loss: a result,
    recorded as such), ``stopped`` (ended early by SIGTERM, scancel or preemption: its checkpoint
    resumes it) or ``failed``.
    """
    executor = make_executor(args, log_dir)
    ranks_per_task = args.ranks if args.slurm_partition else 1  # locally, torchrun starts them
    jobs = [(run, TrainerJob(run.command, str(log_dir / f"{run_prefix(run.env_id, run.variant, run.seed)}log.txt"),
                             ranks_per_task))
            for run in runs]  # fmt: skip
    pending, running, results = list(jobs), [], []
    if args.slurm_partition:
        with executor.batch():  # one job array; SLURM runs array_parallelism of it at once
            running = [(run, job, executor.submit(job)) for run, job in jobs]
        pending = []
        print(f"submitted a job array of {len(running)} runs to SLURM partition {args.slurm_partition}: "
              f"{running[0][2].job_id.split('_')[0]}", flush=True)  # fmt: skip
    while pending or running:
        while pending and len(running) < args.workers:
            run, job = pending.pop(0)
            running.append((run, job, executor.submit(job)))
        still = []
        for run, job, handle in running:
            code = _finished_code(handle, args.slurm_partition is not None)
            if code is None:
                still.append((run, job, handle))
                continue
            outcome = outcome_of(run, code)
            if outcome in ("done", "diverged"):
                record_run(record, run)
            print(f"{outcome.upper() if outcome != 'done' else 'done'} {run.env_id} {run.variant} "
                  f"seed {run.seed}", flush=True)  # fmt: skip
            results.append((run, outcome, code, job.log_file))
        running = still
        time.sleep(0.5 if not args.slurm_partition else 2.0)
    return results


def outcome_of(run: Run, code: int) -> str:
    status = run.status()
    if status == "diverged":
        return "diverged"
    if code == 0:
        return "done" if status == "finished" else "stopped"
    return "failed"


def _finished_code(handle, on_slurm: bool) -> int | None:
    """The exit code of a job that has ended, or None while it runs.

    submitit knows a job ended from its result file, or else from ``sacct``; clusters without
    accounting storage have no ``sacct``, so a job that left ``squeue`` without a result (killed
    by scancel, preempted, its node lost) counts as ended too, with exit code -1.
    """
    if handle.done():
        return _exit_code(handle)
    if on_slurm and not _in_squeue(handle.job_id):
        time.sleep(5)  # let a result written just before the job left the queue appear
        return _exit_code(handle) if handle.done() else -1
    return None


def _in_squeue(job_id: str) -> bool:
    try:
        out = subprocess.run(
            ["squeue", "-h", "-j", job_id], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return True  # cannot tell: keep waiting
    return out.returncode != 0 or bool(out.stdout.strip())


def _exit_code(handle) -> int:
    """The job's exit code; for a job of several tasks (--ranks), the first that is not 0."""
    try:
        codes = [int(code) for code in handle.results()]
        return next((code for code in codes if code != 0), 0)
    except Exception:  # noqa: BLE001 - the job itself died (killed, preempted, node failure)
        return -1


def tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def validate(args: Args) -> None:
    """Refuse bad input before any run starts (one line, exit code 2)."""
    import ale_py  # noqa: F401 - registers the Atari ids checked below

    all_presets = presets()
    require_choice("preset", args.preset, all_presets)
    preset = all_presets[args.preset]
    for variant in args.variants:
        require_choice("variants", variant, preset.variants)
    for env_id in args.env_ids:
        require_registered_env(env_id, flag="--env-ids")
        is_atari = is_atari_id(env_id)
        if is_atari != (preset.trainer == "ppo_atari"):
            kind = "an Atari game" if is_atari else "not an Atari game"
            raise UsageError("--env-ids", f"{env_id!r} is {kind}; preset {args.preset!r} runs "
                             f"{preset.trainer}/train.py")  # fmt: skip
    if args.batched and (preset.trainer != "ppo_continuous" or args.track or not preset.batchable):
        raise UsageError(
            "--batched", "runs continuous PPO presets only (not TRPO or A2C), without --track"
        )
    check_env_backend(args, preset)
    if args.workers < 1:
        raise UsageError("--workers", f"must be at least 1, got {args.workers}")
    if args.ranks < 1:
        raise UsageError("--ranks", f"must be at least 1, got {args.ranks}")
    single_process = [v for v in args.variants or preset.variants if v in preset.scripts]
    if args.ranks > 1 and (args.batched or single_process):
        raise UsageError("--ranks", "runs train.py's runs only (PPO, A2C, VPG), not --batched, TRPO "
                         f"or CEM ({', '.join(single_process) or '--batched'})")  # fmt: skip
    try:
        extra = shlex.split(args.extra)
    except ValueError as err:
        raise UsageError("--extra", f"cannot split {args.extra!r} into flags ({err})") from None
    if extra:
        check_extra(args, preset, extra)


def check_env_backend(args: Args, preset: Preset) -> None:
    """``--env-backend envpool``: continuous train.py runs (PPO, A2C, VPG) on the tasks EnvPool has."""
    require_choice("env_backend", args.env_backend, ("gymnasium", "envpool"))
    if args.env_backend == "gymnasium":
        return
    others = [v for v in args.variants or preset.variants if v in preset.scripts]
    if preset.trainer != "ppo_continuous" or others:
        raise UsageError("--env-backend", "envpool runs the continuous train.py's runs only (PPO, "
                         f"A2C, VPG), not Atari, TRPO or CEM ({', '.join(others) or preset.trainer})")  # fmt: skip
    from ppo_continuous.envpool_envs import check_backend

    for env_id in args.env_ids or preset.env_ids:
        check_backend(args.env_backend, env_id)


# Trainer flags the sweep gives each run itself, and the launcher's flag that sets each instead.
SWEEP_FLAGS = {
    "env_id": "--env-ids", "seed": "--seeds", "exp_name": "--variants", "runs_dir": "--runs-dir",
    "resume": "nothing: the launcher resumes a run with a checkpoint by itself",
    "env_backend": "--env-backend",
    "track": "--track", "wandb_project_name": "--wandb-project-name",
    "wandb_entity": "--wandb-entity", "wandb_group": "--track (one W&B group per variant)",
}  # fmt: skip


def check_extra(args: Args, preset: Preset, extra: list[str]) -> None:
    """``--extra`` may add trainer flags and override the preset's common ones (e.g. a shorter
    ``--total-timesteps``), not the flags the sweep sets per run or those that define a variant
    (its name would then lie); its values pass the trainer's own validation, before any run."""
    given = flags_on_command_line(extra)
    for name, instead in SWEEP_FLAGS.items():
        if name in given:
            raise UsageError(
                "--extra", f"{flag(name)} is set by the sweep for every run; use {instead}"
            )
    variants = args.variants or tuple(preset.variants)
    for variant in variants:
        defines = flags_on_command_line(preset.variants[variant])
        clash = sorted(name for name in given & defines if not name.startswith("no_"))
        if clash:
            raise UsageError("--extra", f"{flag(clash[0])} defines variant {variant!r} "
                             f"({shlex.join(preset.variants[variant])}); add a variant instead")  # fmt: skip
    runs_dir = Path(args.runs_dir or f"runs/sweep-{args.preset}")
    env_id, seed = (args.env_ids or preset.env_ids)[0], (args.seeds or preset.seeds)[0]
    for variant in variants:
        trainer = importlib.import_module(
            ".".join(preset.script(variant).relative_to(REPO).with_suffix("").parts)
        )
        flags = trainer_flags(args, preset, variant, env_id, seed, runs_dir)
        try:
            run_args = parse_flags(trainer.Args, flags)
            if hasattr(trainer, "resolve"):
                run_args = trainer.resolve(run_args, flags_on_command_line(flags))
            trainer.validate(run_args)
        except (BadFlags, UsageError) as err:
            raise UsageError("--extra", f"{err} (in variant {variant}'s runs)") from None
        if args.batched:
            refuse_unbatchable(run_args)


def refuse_unbatchable(run_args: Any) -> None:
    """``--batched`` with ``--extra`` setting a flag the batched runner does not have."""
    from ppo_continuous import batched

    name = batched.unsupported_flag(run_args)
    if name is not None:
        raise UsageError("--extra", f"{flag(name)} is not supported by --batched (the batched "
                         "runner); launch without --batched")  # fmt: skip


def is_atari_id(env_id: str) -> bool:
    import gymnasium as gym

    return "ale_py" in str(gym.spec(env_id).entry_point)


def open_record(args: Args, preset: Preset) -> Record | None:
    """The results record this sweep adds to: ``--record-dir``, or the preset's own under
    docs/results/records/ when it is a recorded preset run as defined (no ``--extra`` flags)."""
    if args.record_dir:
        return Record.load(args.record_dir)
    if args.no_record or not preset.recorded or args.extra.strip() or args.ranks > 1:
        return None
    return Record.load(RECORDS / args.preset)


def main(args: Args) -> int:
    preset = presets()[args.preset]
    runs_dir = Path(args.runs_dir or f"runs/sweep-{args.preset}").resolve()
    try:
        record = open_record(args, preset)
        runs = plan(args, preset, runs_dir, record)
    except DamagedRecord as err:  # the launcher rewrites the record: it would drop that line
        exit_usage(f"--record-dir: {err}; mend or delete that line, then launch again")
    todo = [run for run in runs if run.state in ("new", "resume")]
    count = {
        state: sum(r.state == state for r in runs)
        for state in ("recorded", "finished", "resume", "new")
    }
    print(f"{len(runs)} runs: {count['recorded']} in the record, {count['finished']} finished, "
          f"{count['resume']} to resume, {count['new']} new"
          + (f" (record: {record.folder})" if record is not None else ""))  # fmt: skip
    if args.dry_run and args.batched:
        from batched_groups import print_groups

        print_groups(todo, args.group_size)
        return 0
    if args.dry_run:
        for run in runs:
            print(f"[{run.state}] {shlex.join(run.command)}")
        return 0
    for run in runs:
        if run.state == "finished":
            record_run(record, run)  # ended before the record knew it
    if args.record_only:
        print(
            f"recorded {count['finished']} runs"
            + (f" in {record.folder}" if record else " (no record: nothing written)")
        )
        return 0
    if not todo:
        return 0
    log_dir = runs_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    if args.batched:
        from batched_groups import run_batched

        return run_batched(args, todo, log_dir, record, sys.modules[__name__])
    results = launch(args, todo, log_dir, record)
    unfinished = [
        (run, code, log) for run, outcome, code, log in results if outcome in ("failed", "stopped")
    ]
    for run, code, log in unfinished:
        print(
            f"\nFAILED (exit {code}): {shlex.join(run.command)}\n--- last lines of {log} ---\n{tail(log)}"
        )
    diverged = [run for run, outcome, _, _ in results if outcome == "diverged"]
    for run in diverged:
        print(
            f"DIVERGED: {run.env_id} {run.variant} seed {run.seed} (recorded as diverged; see its summary.json)"
        )
    print(f"\n{len(todo) - len(unfinished) - len(diverged)} of {len(todo)} runs succeeded; "
          f"{len(unfinished)} failed; {len(diverged)} diverged")  # fmt: skip
    return min(len(unfinished), 125)


if __name__ == "__main__":
    raise SystemExit(main(parse_args(Args, validate)))
