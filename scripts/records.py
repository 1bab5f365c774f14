"""The results record: a compact, committed account of every finished run of a sweep.

Run folders (checkpoints, event files) are too big for git and die with the machine they ran on.
What a result needs survives here instead, one folder per preset under ``docs/results/records/``:

- ``runs.csv``: one row per run: env, variant, seed, status, steps, the paper's two scores (mean
  return over all of training and over the last 100 episodes), wall time, SPS, commit, host and
  runner (``single``: ppo_continuous/train.py; ``batched``: several runs in one process, whose
  SPS is the run's steps over the group's wall time) and env backend (``gymnasium``, ``envpool``).
- ``curves.jsonl``: one line per run, its learning curve: episode returns against env steps,
  averaged over consecutive episodes down to at most ``CURVE_POINTS`` points.

The launcher (``benchmark.py``) adds a run when it finishes and skips runs the record holds, so a
sweep re-launched on a fresh machine runs only what is missing; ``report.py`` builds every table
and plot from the record alone. A module, not a script.
"""

from __future__ import annotations

import bisect
import csv
import fcntl
import io
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from curves import episode_returns

from common.files import atomic_write_bytes

REPO = Path(__file__).resolve().parents[1]
RECORDS = REPO / "docs" / "results" / "records"
CURVE_POINTS = 300
# Statuses a record keeps: a run that ended by itself. A stopped run resumes; it is not a result yet.
RESULT_STATUSES = ("finished", "diverged")

FIELDS = (
    "env_id", "variant", "seed", "status", "global_step", "total_timesteps", "episodes",
    "mean_return_all_training", "mean_return_last_100", "wall_time_s", "sps", "commit", "host",
    "run_name", "runner", "env_backend",
)  # fmt: skip
INT_FIELDS = {"seed", "global_step", "total_timesteps", "episodes"}
FLOAT_FIELDS = {"mean_return_all_training", "mean_return_last_100", "wall_time_s", "sps"}

Key = tuple[str, str, int]  # (env_id, variant, seed)


def key_of(row: dict[str, Any]) -> Key:
    return (row["env_id"], row["variant"], int(row["seed"]))


@dataclass
class Record:
    """The rows and curves of one preset's record folder."""

    folder: Path
    rows: dict[Key, dict[str, Any]] = field(default_factory=dict)
    curves: dict[Key, dict[str, list]] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: str | Path, damaged: str = "refuse") -> Record:
        """The record in ``folder``; empty when the folder or its files do not exist yet.

        A damaged line (a row that does not parse, a cut or non-JSON curve line) is a
        ``DamagedRecord`` naming the file and line; with ``damaged="warn"`` (readers: the report)
        it is a warning on stderr and the good lines are used. Writers refuse: they rewrite the
        files and would drop the damaged line without a word."""
        record = cls(Path(folder))
        runs = record.folder / "runs.csv"
        if runs.is_file():
            with open(runs, newline="") as handle:
                reader = csv.DictReader(handle)
                for raw in reader:
                    try:
                        row = parse_row(raw)
                        record.rows[key_of(row)] = row
                    except (ValueError, TypeError) as err:
                        report_damage(runs, reader.line_num, f"not a run row ({err})", damaged)
        curves = record.folder / "curves.jsonl"
        if curves.is_file():
            for number, line in enumerate(curves.read_text().splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    curve = {"steps": entry["steps"], "returns": entry["returns"]}
                    record.curves[key_of(entry)] = curve
                except (ValueError, KeyError, TypeError) as err:
                    reason = f"cut or not a JSON curve ({type(err).__name__}: {err})"
                    report_damage(curves, number, reason, damaged)
        return record

    def __contains__(self, key: Key) -> bool:
        return key in self.rows

    def add(self, row: dict[str, Any], curve: dict[str, list] | None) -> None:
        self.rows[key_of(row)] = row
        if curve is not None:  # a row whose curve the record lacks keeps none
            self.curves[key_of(row)] = without_redone_points(curve)

    def save(self) -> None:
        """Write both files in a stable order (env, variant, seed), each atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        for key in sorted(self.rows):
            writer.writerow({name: format_cell(self.rows[key].get(name)) for name in FIELDS})
        atomic_write_bytes(self.folder / "runs.csv", text.getvalue().encode())
        lines = [
            json.dumps({"env_id": k[0], "variant": k[1], "seed": k[2], **self.curves[k]})
            for k in sorted(self.curves)
        ]
        atomic_write_bytes(self.folder / "curves.jsonl", ("\n".join(lines) + "\n").encode())

    def add_and_save(self, row: dict[str, Any], curve: dict[str, list]) -> None:
        """Add one run and save, keeping the runs other launchers saved since this record was
        loaded: two sweeps of one preset at once (one env each) share the files. Under an
        exclusive lock on the folder, the rows on disk are read back before writing."""
        self.folder.mkdir(parents=True, exist_ok=True)
        folder = os.open(self.folder, os.O_RDONLY)
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            on_disk = Record.load(self.folder)
            for key in on_disk.rows.keys() - self.rows.keys():
                self.add(on_disk.rows[key], on_disk.curves.get(key))
            self.add(row, curve)
            self.save()
        finally:
            os.close(folder)  # and with it the lock

    def results(self) -> list[dict[str, Any]]:
        """Every row with its curve attached (``row["curve"]``), in the record's order."""
        return [{**self.rows[k], "curve": self.curves.get(k)} for k in sorted(self.rows)]


def shared_records(
    folder: Path, shared: dict[str, str], damaged: str = "refuse"
) -> dict[str, Record]:
    """Variant -> the record of the preset it is shared with, the folder beside ``folder`` (a
    preset's record; ``Preset.shared``: Figure 3's clip_0.2 runs are in paper-table1's record)."""
    return {
        variant: Record.load(folder.parent / source, damaged) for variant, source in shared.items()
    }


class DamagedRecord(ValueError):
    """A line of a record's file that cannot be read; the message names the file and the line."""


def report_damage(path: Path, line: int, reason: str, damaged: str) -> None:
    """Raise ``DamagedRecord`` (``damaged="refuse"``) or print a warning and go on (``"warn"``)."""
    message = f"{path} line {line}: {reason}"
    if damaged != "warn":
        raise DamagedRecord(message)
    print(f"warning: {message}; that line is left out", file=sys.stderr, flush=True)


def format_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) >= 1e5 else f"{round(value, 4)}"
    return str(value)


def parse_row(raw: dict[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name in FIELDS:
        text = raw.get(name, "")
        if name in INT_FIELDS:
            row[name] = int(text) if text else None
        elif name in FLOAT_FIELDS:
            row[name] = float(text) if text else None
        else:
            row[name] = text or None
    # Rows written before the column existed are gymnasium's: no recorded run used another backend.
    row["env_backend"] = row["env_backend"] or "gymnasium"
    return row


def status_of(summary: dict[str, Any]) -> str:
    """``finished``, ``diverged`` or ``stopped``; summaries older than the status field say only finished."""
    if summary.get("status"):
        return str(summary["status"])
    return "finished" if summary.get("finished") else "stopped"


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def result_of_run(run_dir: str | Path) -> tuple[dict[str, Any], dict[str, list]]:
    """A run folder's record row and its downsampled learning curve (from its TensorBoard events)."""
    run_dir = Path(run_dir)
    summary = read_summary(run_dir)
    if summary is None:
        raise ValueError(f"{run_dir} has no readable summary.json")
    row = {name: summary.get(name) for name in FIELDS}
    row.update(
        variant=summary["exp_name"],
        status=status_of(summary),
        wall_time_s=summary.get("wall_time_s"),
        run_name=run_dir.name,
        commit=summary.get("commit") or "unknown",
        host=summary.get("host") or "unknown",
        runner=summary.get("runner") or "single",  # batched: ppo_continuous/batched.py
        env_backend=summary.get("env_backend") or "gymnasium",  # summaries before it: gymnasium
    )
    steps, returns = episode_returns(run_dir)
    return row, downsample(steps, returns)


def without_redone_points(curve: dict[str, list]) -> dict[str, list]:
    """The curve with its steps in order: where they go back (a run resumed from a checkpoint
    logged again the steps after it), the later points replace the earlier from the first later
    step on, as ``curves.episode_returns`` does for a run folder's events files. Launchers before
    a8ba407 recorded 44 batched Table 1 runs resumed from a group checkpoint with both copies."""
    steps, returns = list(curve["steps"]), list(curve["returns"])
    kept_steps: list[int] = []
    kept_returns: list[float] = []
    for step, value in zip(steps, returns, strict=True):
        if kept_steps and step < kept_steps[-1]:  # a resumed session's first point
            cut = bisect.bisect_left(kept_steps, step)
            del kept_steps[cut:], kept_returns[cut:]
        kept_steps.append(step)
        kept_returns.append(value)
    return {**curve, "steps": kept_steps, "returns": kept_returns}


def downsample(
    steps: list[int], returns: list[float], points: int = CURVE_POINTS
) -> dict[str, list]:
    """At most ``points`` points: consecutive episodes averaged in equal groups (all kept if fewer)."""
    if len(steps) <= points:
        return {"steps": [int(s) for s in steps], "returns": [round(float(r), 3) for r in returns]}
    groups = np.array_split(np.arange(len(steps)), points)
    step_array, return_array = (
        np.asarray(steps, dtype=np.float64),
        np.asarray(returns, dtype=np.float64),
    )
    return {
        "steps": [int(round(step_array[g].mean())) for g in groups],
        "returns": [round(float(return_array[g].mean()), 3) for g in groups],
    }
