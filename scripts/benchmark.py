"""Sweeps: env ids x seeds x named variants, run through submitit on this machine or on SLURM.

    python scripts/benchmark.py --preset smoke                         # a small try-out, local
    python scripts/benchmark.py --preset paper-table1 --workers 2      # the paper's Table 1 sweep
    python scripts/benchmark.py --preset paper-atari49 --slurm-partition gpu --gpus-per-task 1
    python scripts/benchmark.py --preset paper-table1 --dry-run        # print the commands only

Every run is ``python <trainer>/train.py ... --exp-name <variant> --runs-dir <runs-dir>``, so its
folder is ``<runs-dir>/<env>__<variant>__<seed>__<time>`` with a summary.json that
``scripts/report.py`` reads. A re-launch is idempotent: finished runs are skipped and runs with a
checkpoint are resumed (``--resume``), so a sweep survives preemption and crashes.
"""

from __future__ import annotations

import csv
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import tyro

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.cli import UsageError, exit_usage, require_choice, require_registered_env  # noqa: E402

MUJOCO_TABLE1 = (
    "HalfCheetah-v5", "Hopper-v5", "InvertedDoublePendulum-v5", "InvertedPendulum-v5",
    "Reacher-v5", "Swimmer-v5", "Walker2d-v5",
)  # fmt: skip

# The paper's Table 1 settings: variant name -> (trainer flags, the row label in the paper).
TABLE1_VARIANTS: dict[str, tuple[list[str], str]] = {
    "no_clip": (["--objective", "none"], "No clipping or penalty"),
    "clip_0.1": (["--objective", "clip", "--clip-coef", "0.1"], "Clipping, epsilon = 0.1"),
    "clip_0.2": (["--objective", "clip", "--clip-coef", "0.2"], "Clipping, epsilon = 0.2"),
    "clip_0.3": (["--objective", "clip", "--clip-coef", "0.3"], "Clipping, epsilon = 0.3"),
    "adaptive_kl_0.003": (
        ["--objective", "adaptive_kl", "--kl-target", "0.003"],
        "Adaptive KL d_targ = 0.003",
    ),
    "adaptive_kl_0.01": (
        ["--objective", "adaptive_kl", "--kl-target", "0.01"],
        "Adaptive KL d_targ = 0.01",
    ),
    "adaptive_kl_0.03": (
        ["--objective", "adaptive_kl", "--kl-target", "0.03"],
        "Adaptive KL d_targ = 0.03",
    ),
    "fixed_kl_0.3": (["--objective", "fixed_kl", "--kl-beta", "0.3"], "Fixed KL, beta = 0.3"),
    "fixed_kl_1": (["--objective", "fixed_kl", "--kl-beta", "1"], "Fixed KL, beta = 1."),
    "fixed_kl_3": (["--objective", "fixed_kl", "--kl-beta", "3"], "Fixed KL, beta = 3."),
    "fixed_kl_10": (["--objective", "fixed_kl", "--kl-beta", "10"], "Fixed KL, beta = 10."),
}


def atari49_ids() -> tuple[str, ...]:
    """The 49 games of the paper's Table 6, as NoFrameskip-v4 ids (baselines/ppo_paper_atari.csv)."""
    with open(REPO / "baselines" / "ppo_paper_atari.csv") as handle:
        return tuple(row["gym_id"] for row in csv.DictReader(handle))


@dataclass(frozen=True)
class Preset:
    trainer: str
    env_ids: tuple[str, ...]
    seeds: tuple[int, ...]
    variants: dict[str, list[str]]
    common_flags: list[str] = field(default_factory=list)


def presets() -> dict[str, Preset]:
    table1 = {name: flags for name, (flags, _) in TABLE1_VARIANTS.items()}
    return {
        "paper-table1": Preset("ppo_continuous", MUJOCO_TABLE1, (1, 2, 3), table1,
                               ["--total-timesteps", "1000000", "--no-clip-vloss"]),
        "paper-atari49": Preset(
            "ppo_atari", atari49_ids(), (1, 2, 3),
            {"ppo_table5": ["--update-epochs", "3", "--vf-coef", "2", "--anneal-clip", "--no-clip-vloss"]},
            ["--total-timesteps", "10000000"],
        ),
        "smoke": Preset(
            "ppo_continuous", ("Pendulum-v1", "InvertedPendulum-v5"), (1, 2),
            {"clip_0.2": ["--objective", "clip", "--clip-coef", "0.2"]},
            ["--total-timesteps", "2048", "--num-steps", "512", "--num-minibatches", "4",
             "--update-epochs", "2", "--save-every", "1"],
        ),
    }  # fmt: skip


@dataclass
class Args:
    preset: str = "smoke"
    """paper-table1 (7 MuJoCo tasks x 11 objectives x 3 seeds), paper-atari49 (49 games x 3 seeds), smoke"""
    env_ids: tuple[str, ...] = ()
    """only these env ids of the preset (default: all)"""
    seeds: tuple[int, ...] = ()
    """these seeds instead of the preset's"""
    variants: tuple[str, ...] = ()
    """only these variants of the preset (default: all)"""
    runs_dir: str | None = None
    """where the runs go (default: runs/sweep-<preset>)"""
    extra: str = ""
    """more trainer flags for every run, in quotes, e.g. --extra='--total-timesteps 200000'"""
    dry_run: bool = False
    """print the commands, run nothing"""
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
    array_parallelism: int = 64
    """runs of the job array running at once on SLURM"""
    # Tracking, passed through to every run (each variant is a W&B group)
    track: bool = False
    """track every run in W&B"""
    wandb_project_name: str = "ppo-pipeline"
    """the W&B project of the whole sweep"""
    wandb_entity: str | None = None
    """the W&B entity"""


@dataclass(frozen=True)
class Run:
    env_id: str
    seed: int
    variant: str
    command: list[str]
    state: str  # "new", "resume" or "finished"
    runs_dir: Path

    def finished(self) -> bool:
        run_dir = find_run_dir(self.runs_dir, self.env_id, self.variant, self.seed)
        return run_dir is not None and _finished(run_dir)


def run_prefix(env_id: str, variant: str, seed: int) -> str:
    return f"{env_id.replace('/', '-')}__{variant}__{seed}__"


def find_run_dir(runs_dir: Path, env_id: str, variant: str, seed: int) -> Path | None:
    """The newest run folder of this env, variant and seed, if any."""
    found = sorted(runs_dir.glob(run_prefix(env_id, variant, seed) + "*"), key=lambda p: p.name)
    return found[-1] if found else None


def plan(args: Args, preset: Preset, runs_dir: Path) -> list[Run]:
    """Every run of the sweep, with its command and whether it is new, to resume or finished."""
    trainer = str(REPO / preset.trainer / "train.py")
    tracking = ["--track", "--wandb-project-name", args.wandb_project_name] if args.track else []
    if args.track and args.wandb_entity:
        tracking += ["--wandb-entity", args.wandb_entity]
    runs = []
    for variant in args.variants or tuple(preset.variants):
        for env_id in args.env_ids or preset.env_ids:
            for seed in args.seeds or preset.seeds:
                flags = [
                    "--env-id", env_id, "--seed", str(seed), "--exp-name", variant,
                    "--runs-dir", str(runs_dir), *preset.common_flags, *preset.variants[variant],
                    *shlex.split(args.extra), *tracking, *(["--wandb-group", variant] if args.track else []),
                ]  # fmt: skip
                state, run_dir = "new", find_run_dir(runs_dir, env_id, variant, seed)
                if run_dir is not None and _finished(run_dir):
                    state = "finished"
                elif run_dir is not None and (run_dir / "checkpoints" / "latest.pt").is_file():
                    state, flags = "resume", [*flags, "--resume", str(run_dir)]
                runs.append(
                    Run(env_id, seed, variant, [sys.executable, trainer, *flags], state, runs_dir)
                )
    return runs


def _finished(run_dir: Path) -> bool:
    try:
        return bool(json.loads((run_dir / "summary.json").read_text()).get("finished"))
    except (OSError, ValueError):
        return False


class TrainerJob:
    """What submitit runs: one trainer command, its output to a log file; returns the exit code."""

    def __init__(self, command: list[str], log_file: str) -> None:
        self.command, self.log_file = command, log_file

    def __call__(self) -> int:
        with open(self.log_file, "a") as log:
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
            cpus_per_task=args.cpus_per_task, gpus_per_node=args.gpus_per_task or None,
            slurm_array_parallelism=args.array_parallelism, tasks_per_node=1, nodes=1,
        )  # fmt: skip
    else:
        executor = submitit.AutoExecutor(folder=str(log_dir / "submitit"), cluster="local")
        executor.update_parameters(timeout_min=args.timeout_min)
    return executor


def launch(args: Args, runs: list[Run], log_dir: Path) -> list[tuple[Run, int, str]]:
    """Run the runs; returns (run, exit code, log file) for each one that did not finish."""
    executor = make_executor(args, log_dir)
    jobs = [(run, TrainerJob(run.command, str(log_dir / f"{run_prefix(run.env_id, run.variant, run.seed)}log.txt")))
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
            if code == 0 and not run.finished():
                code = -2  # stopped early (SIGTERM, scancel, preemption): its checkpoint resumes it
            label = {0: "done  ", -2: "STOPPED"}.get(code, "FAILED")
            print(f"{label} {run.env_id} {run.variant} seed {run.seed}", flush=True)
            results.append((run, code, job.log_file))
        running = still
        time.sleep(0.5 if not args.slurm_partition else 2.0)
    return [(run, code, log) for run, code, log in results if code != 0]


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
    try:
        return int(handle.result())
    except Exception:  # noqa: BLE001 - the job itself died (killed, preempted, node failure)
        return -1


def tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def validate(args: Args, all_presets: dict[str, Preset]) -> Preset:
    try:
        require_choice("preset", args.preset, all_presets)
        preset = all_presets[args.preset]
        for variant in args.variants:
            require_choice("variants", variant, preset.variants)
        for env_id in args.env_ids:
            require_registered_env(env_id, flag="--env-ids")
        if args.workers < 1:
            raise UsageError("--workers", f"must be at least 1, got {args.workers}")
    except UsageError as err:
        exit_usage(str(err))
    return preset


def main(args: Args) -> int:
    import ale_py  # noqa: F401 - registers the Atari ids checked below

    preset = validate(args, presets())
    runs_dir = Path(args.runs_dir or f"runs/sweep-{args.preset}").resolve()
    runs = plan(args, preset, runs_dir)
    todo = [run for run in runs if run.state != "finished"]
    print(f"{len(runs)} runs: {len(runs) - len(todo)} finished, "
          f"{sum(r.state == 'resume' for r in runs)} to resume, {sum(r.state == 'new' for r in runs)} new")  # fmt: skip
    if args.dry_run:
        for run in runs:
            print(f"[{run.state}] {shlex.join(run.command)}")
        return 0
    if not todo:
        return 0
    log_dir = runs_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    failed = launch(args, todo, log_dir)
    for run, code, log in failed:
        print(
            f"\nFAILED (exit {code}): {shlex.join(run.command)}\n--- last lines of {log} ---\n{tail(log)}"
        )
    print(f"\n{len(todo) - len(failed)} of {len(todo)} runs succeeded; {len(failed)} failed")
    return min(len(failed), 125)


if __name__ == "__main__":
    raise SystemExit(main(tyro.cli(Args)))
