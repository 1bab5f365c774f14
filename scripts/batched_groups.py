"""``benchmark.py --batched``: a continuous preset's runs as groups, one process per group (issue 12).

Each group is one env's new runs (all its variants x seeds, or chunks of ``--group-size``), run by
``ppo_continuous/batched.py``, which writes every run's own folder and summary.json exactly where
the single trainer would; the launcher then records each run as it records a trainer's. A group's
checkpoint folder, ``<runs-dir>/groups/<env>__<digest of its runs>``, is the same on a re-launch
with the same runs left, so a stopped group resumes. Runs that already have a single-trainer
checkpoint resume with the single trainer. A module, not a script.
"""

from __future__ import annotations

import functools
import hashlib
import shlex
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import tyro

from common.divergence import EXIT_DIVERGED
from ppo_continuous import batched, train


@dataclass(frozen=True)
class Group:
    """Runs of one env that one ``batched.py`` process trains together."""

    env_id: str
    runs: tuple[Any, ...]  # benchmark.Run
    folder: Path
    command: list[str]


def group_folder(runs_dir: Path, env_id: str, runs: list[Any]) -> Path:
    """Where a group keeps its checkpoint: named by its env and a digest of its (variant, seed)s."""
    key = ",".join(sorted(f"{r.variant}:{r.seed}" for r in runs))
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    return runs_dir / "groups" / f"{env_id.replace('/', '-')}__{digest}"


def make_groups(runs: list[Any], runs_dir: Path, group_size: int = 0) -> list[Group]:
    """Group the new runs by env and shared flags, in plan order, ``group_size`` at most (0: all
    of them). Variants that differ in more than the per-run flags (objective, clip, KL, seed), such
    as the ablation's ``{objective}+{choice}``, go to separate groups: one process trains one
    setting of the shared flags."""
    by_setting: dict[tuple[str, tuple[Any, ...]], list[Any]] = {}
    for run in runs:
        key = (run.env_id, batched.shared_settings(trainer_settings(run)))
        by_setting.setdefault(key, []).append(run)
    groups = []
    for (env_id, _), env_runs in by_setting.items():
        size = group_size or len(env_runs)
        for start in range(0, len(env_runs), size):
            members = env_runs[start : start + size]
            folder = group_folder(runs_dir, env_id, members)
            settings = [trainer_settings(r) for r in members]
            command = batched.command_for(settings, folder)
            if (folder / "checkpoints" / "latest.pt").is_file():
                command += ["--resume", str(folder)]
            groups.append(Group(env_id, tuple(members), folder, command))
    return groups


def trainer_settings(run: Any) -> train.Args:
    """The single trainer's ``Args`` for a planned run, parsed from its trainer flags."""
    flags = run.command[2:]
    where = flags.index("--seed") + 1
    unseeded = (*flags[: where - 1], *flags[where + 1 :])
    return replace(_parse(unseeded), seed=int(flags[where]))


@functools.cache
def _parse(flags: tuple[str, ...]) -> train.Args:
    return tyro.cli(train.Args, args=list(flags))  # once per variant: tyro takes ~20 ms a call


def run_batched(
    args: Any, todo: list[Any], log_dir: Path, record: Any, benchmark: ModuleType
) -> int:
    """Launch the groups (and the single-trainer resumes) and record every run that ends.

    ``benchmark`` is the launcher module itself (its executor, jobs and recording are reused; as
    the running script, its jobs pickle by value for submitit).
    """
    singles = [run for run in todo if run.state == "resume"]
    groups = make_groups([run for run in todo if run.state == "new"], todo[0].runs_dir,
                         args.group_size)  # fmt: skip
    print(f"{len(groups)} batched groups, {len(singles)} single-trainer resumes", flush=True)
    results = benchmark.launch(args, singles, log_dir, record) if singles else []
    executor = benchmark.make_executor(args, log_dir)
    pending, running = list(groups), []
    while pending or running:
        while pending and len(running) < args.workers:
            group = pending.pop(0)
            log = str(log_dir / f"{group.folder.name}.log.txt")
            job = benchmark.TrainerJob(group.command, log)
            running.append((group, log, executor.submit(job)))
        still = []
        for group, log, handle in running:
            code = benchmark._finished_code(handle, args.slurm_partition is not None)
            if code is None:
                still.append((group, log, handle))
                continue
            # A group exits 3 when any of its runs diverged: each run's summary says which.
            run_code = 0 if code == EXIT_DIVERGED else code
            for run in group.runs:
                outcome = benchmark.outcome_of(run, run_code)
                if outcome in ("done", "diverged"):
                    benchmark.record_run(record, run)
                print(f"{outcome} {run.env_id} {run.variant} seed {run.seed} (batched)", flush=True)
                results.append((run, outcome, code, log))
        running = still
        time.sleep(0.5)
    failed = [(run, code, log) for run, outcome, code, log in results if outcome in ("failed", "stopped")]  # fmt: skip
    for run, code, log in failed:
        print(f"FAILED (exit {code}): {run.env_id} {run.variant} seed {run.seed}; see {log}")
    print(f"\n{len(todo) - len(failed)} of {len(todo)} runs ended (finished or diverged); "
          f"{len(failed)} failed or stopped")  # fmt: skip
    return min(len(failed), 125)


def print_groups(todo: list[Any], group_size: int) -> None:
    """``--dry-run --batched``: one line per group command."""
    new = [run for run in todo if run.state == "new"]
    for group in make_groups(new, new[0].runs_dir, group_size) if new else []:
        print(f"[group {len(group.runs)}] {shlex.join(group.command)}")
