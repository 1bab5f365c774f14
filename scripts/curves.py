"""Learning curves of finished runs, shared by the benchmarks, the results record and the reports.

A module, not a script: ``episode_returns`` reads a run folder's TensorBoard events,
``trailing_mean`` smooths them, ``finished_run`` finds the run a benchmark can reuse and
``train_or_reuse`` runs a benchmark's trainer command unless it may reuse one, on a share of the
cores from ``core_shares`` when several train at once.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np


def episode_returns(run_dir: Path) -> tuple[list[int], list[float]]:
    """The run's episodes: (env steps, returns) from ``charts/episodic_return``, each once.

    A resumed run writes a new events file and, going on from its checkpoint, logs again the steps
    the interrupted session had already logged after it. TensorBoard's reader of the whole folder
    keeps both copies (the curve runs backwards); here each file's episodes replace the earlier
    files' from its first episode's step on. What stays of an interrupted session is a handful of
    episodes that ended between its checkpoint and that step (8 of 2,106 in a Breakout run resumed
    twice); the scores in ``summary.json`` come from the checkpointed episode log and are exact.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps: list[int] = []
    returns: list[float] = []
    files = sorted(
        Path(run_dir).glob("events.out.tfevents.*"), key=lambda f: int(f.name.split(".")[3])
    )
    for events_file in files:  # in the order the sessions wrote them
        events = EventAccumulator(str(events_file), size_guidance={"scalars": 0}).Reload()
        if "charts/episodic_return" not in events.Tags()["scalars"]:
            continue
        points = events.Scalars("charts/episodic_return")
        kept = bisect.bisect_left(steps, points[0].step)  # steps stay sorted
        steps[kept:] = [p.step for p in points]
        returns[kept:] = [p.value for p in points]
    return steps, returns


def trailing_mean(values: list[float] | np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average; the first points average what there is, so any length works."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return x
    sums = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    start = np.maximum(idx - window, 0)
    return (sums[idx] - sums[start]) / (idx - start)


def finished_run(runs: Path, env_id: str) -> Path | None:
    """The newest run folder under ``runs`` whose summary.json says it finished ``env_id``."""
    done = []
    for path in runs.glob("*/summary.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as err:  # cut by a crash or an edit: not a run to reuse
            print(f"warning: {path}: cannot be read ({err}); not reused", file=sys.stderr)
            continue
        if isinstance(record, dict) and record.get("finished") and record.get("env_id") == env_id:
            done.append(path.parent)
    return max(done, key=lambda p: p.stat().st_mtime, default=None)


def core_shares(jobs: int) -> list[list[int]]:
    """The cores this process may use, dealt into ``jobs`` disjoint shares: one per run when that
    many train at once. Each run then computes on its own cores instead of every run's torch
    threads contending for all of them. On 2 cores, a BeamRider run in fp32 and one in bf16, one
    core each, did 261 and 350 SPS side by side; one fp32 run on both cores does about 350."""
    if hasattr(os, "sched_getaffinity"):
        cores = sorted(os.sched_getaffinity(0))
    else:  # macOS, Windows: no affinity; the shares only set the thread counts
        cores = list(range(os.cpu_count() or 1))
    if not 1 <= jobs <= len(cores):
        raise ValueError(f"{jobs} runs at a time need 1 to {len(cores)} cores, one each at least")
    return [cores[i::jobs] for i in range(jobs)]


def train_or_reuse(
    command: list[str], runs: Path, env_id: str, reuse: bool, cores: list[int] | None = None
) -> Path:
    """The run folder of ``command``, a trainer writing its run under ``runs``: with ``reuse``, a
    finished run of ``env_id`` already there instead of training again; else the newest after it.
    With ``cores`` (a share from ``core_shares``) the trainer runs on those cores only (where the
    OS lets a process be pinned) with one torch thread per core."""
    if reuse and (done := finished_run(runs, env_id)):
        print(f"reusing {done}", flush=True)
        return done
    pinned = f"  [cores {','.join(map(str, cores))}]" if cores else ""
    print("$", " ".join(command) + pinned, flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(len(cores))} if cores else None
    with subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL) as trainer:
        if cores and hasattr(os, "sched_setaffinity"):
            # Set from here rather than in a preexec_fn (unsafe beside threads); torch starts its
            # thread pools after this, during its import, so they inherit the pinning.
            with contextlib.suppress(ProcessLookupError):  # it already ended: wait() says how
                os.sched_setaffinity(trainer.pid, cores)
        if trainer.wait() != 0:
            raise subprocess.CalledProcessError(trainer.returncode, command)
    return max(runs.iterdir(), key=lambda p: p.stat().st_mtime)
