"""Helpers shared by the trainer tests: run a trainer as a user would, read what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pendulum_flags(update_epochs: int) -> list[str]:
    """A small continuous run: Pendulum-v1, 256 steps per iteration in 4 minibatches."""
    return ["--env-id", "Pendulum-v1", "--num-steps", "256", "--num-minibatches", "4",
            "--update-epochs", str(update_epochs)]  # fmt: skip


def run_trainer(
    trainer: str,
    *flags: str,
    cwd: Path | None = None,
    timeout: float = 600,
    env: dict | None = None,
    script: str = "train.py",
) -> subprocess.CompletedProcess:
    """``python <trainer>/<script> FLAGS`` in ``cwd`` (``train.py`` by default), output captured."""
    full_env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run(
        [sys.executable, str(REPO / trainer / script), *flags],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env,
    )  # fmt: skip


def host_cpu_flags() -> set[str]:
    """This host's CPU flags, read here independently of ``common.runtime``."""
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    return set(
        next((line for line in lines if line.startswith("flags")), "").partition(":")[2].split()
    )


def only_run_dir(runs_dir: Path) -> Path:
    dirs = [d for d in runs_dir.iterdir() if d.is_dir()]
    assert len(dirs) == 1, f"expected one run folder in {runs_dir}, found {dirs}"
    return dirs[0]


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every TensorBoard scalar the run wrote: name -> [(step, value), ...]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def fake_run(
    folder: Path,
    env_id: str,
    last_100: float,
    *,
    finished: bool = True,
    mtime: float = 0,
    seed: int = 1,
) -> Path:
    """A run folder as the trainers leave it (summary.json, episodic returns), for the scripts that
    read finished runs: five episodes rising to ``last_100``."""
    from torch.utils.tensorboard import SummaryWriter

    folder.mkdir(parents=True)
    with SummaryWriter(str(folder)) as writer:
        for step in range(5):
            writer.add_scalar("charts/episodic_return", last_100 * step / 4, step * 1000)
    record = {"env_id": env_id, "finished": finished, "mean_return_last_100": last_100, "seed": seed,
              "mean_return_all_training": last_100 / 2, "sps": 700.0, "wall_time_s": 60.0}  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(record))
    if mtime:
        os.utime(folder, (mtime, mtime))
    return folder


def assert_usage_error(result: subprocess.CompletedProcess, flag: str) -> None:
    """Exit code 2, one ``error:`` line on stderr naming the flag, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), lines[0]
    assert flag in lines[0], lines[0]
    assert "Traceback" not in result.stderr


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    path = tmp_path / "runs"
    path.mkdir()
    return path
