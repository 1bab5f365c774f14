"""This project's trainers against CleanRL's, side by side: the same machine, the same run, turn about.

    python scripts/bench_vs_cleanrl.py --cleanrl-dir ~/cleanrl --cleanrl-python ~/cleanrl-venv/bin/python
    python scripts/bench_vs_cleanrl.py --suite continuous --cleanrl-dir ... --cleanrl-python ...

Each repeat runs every trainer once, in turn, with the same hyperparameters: for Atari, CleanRL's
``ppo_atari.py`` and ``ppo_atari_envpool.py`` beside ``ppo_atari/train.py`` on both backends (8 envs
x 128 steps, 4 minibatches, 4 epochs, Breakout); for continuous control, CleanRL's
``ppo_continuous_action.py`` beside ``ppo_continuous/train.py`` (1 env x 2048 steps, HalfCheetah).
SPS is each trainer's own figure for its training loop: the last ``SPS:`` line CleanRL prints (steps
since its loop started), and this project's ``summary.json``. It prints every run, the medians and
each median's ratio to the first CleanRL trainer's. It installs nothing.

CleanRL runs in its own venv with its own pins (pyproject.toml: gymnasium 0.29.1, ale-py 0.8.1,
shimmy, gym 0.23.1 for EnvPool's old API; EnvPool). On Python 3.11, set up as follows (torch: the same CPU build as this project's,
so the networks run on the same library):

    git clone https://github.com/vwxyzjn/cleanrl ~/cleanrl
    python3.11 -m venv ~/cleanrl-venv
    ~/cleanrl-venv/bin/pip install torch==2.13.0 "gymnasium==0.29.1" "ale-py==0.8.1" "shimmy>=1.1,<2" \\
        "gym==0.23.1" "envpool==0.8.4" tyro tensorboard "opencv-python-headless<5" "numpy<2" \\
        "mujoco==2.3.3" "imageio<3"

CleanRL pins EnvPool below 0.7, which has no Python 3.11 wheel; 0.8.4 is the nearest that installs.
ale-py 0.8.1 ships no ROMs (CleanRL fetches them with AutoROM, which needs the internet); copy the
ones inside this project's ale-py wheel into it:

    cp "$(python -c 'import ale_py, os; print(os.path.dirname(ale_py.__file__))')"/roms/*.bin \\
       "$(~/cleanrl-venv/bin/python -c 'import ale_py, os; print(os.path.dirname(ale_py.__file__))')"/roms/

EnvPool ships its own ROMs. CleanRL's continuous script runs HalfCheetah-v4 (gymnasium 0.29 has no
v5); this trainer runs v5, the same model in MuJoCo's newer bindings.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from common.cli import UsageError, parse_args
from common.runtime import code_version, host_description

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Args:
    cleanrl_dir: str = ""
    """a CleanRL checkout (holding cleanrl/ppo_atari.py)"""
    cleanrl_python: str = ""
    """the Python of CleanRL's venv (see this script's docstring)"""
    suite: Literal["atari", "continuous"] = "atari"
    """atari: Breakout, 8 envs x 128 steps; continuous: HalfCheetah, 1 env x 2048 steps"""
    repeats: int = 3
    """runs of each trainer, taken in turn; the medians are over these"""
    total_timesteps: int | None = None
    """steps per run (default: 51,200 for atari, 102,400 for continuous)"""
    trainers: tuple[str, ...] = ()
    """only these trainers (default: all of the suite's; names as printed)"""


@dataclass(frozen=True)
class Trainer:
    name: str
    cleanrl: bool
    script: str
    flags: tuple[str, ...]


def suite_trainers(suite: str) -> list[Trainer]:
    """The trainers of a suite, CleanRL's first; the same hyperparameters (each one's defaults)."""
    if suite == "atari":
        return [
            Trainer("cleanrl ppo_atari.py", True, "cleanrl/ppo_atari.py", ("--env-id", "BreakoutNoFrameskip-v4")),
            Trainer("cleanrl ppo_atari_envpool.py", True, "cleanrl/ppo_atari_envpool.py", ("--env-id", "Breakout-v5")),
            # the default flags: --precision auto, bf16 where the CPU or GPU has it in hardware
            Trainer("ours ale_vector", False, "ppo_atari/train.py", ("--env-backend", "ale_vector")),
            Trainer("ours gymnasium", False, "ppo_atari/train.py", ("--env-backend", "gymnasium")),
            Trainer("ours ale_vector fp32", False, "ppo_atari/train.py",
                    ("--env-backend", "ale_vector", "--precision", "fp32")),
        ]  # fmt: skip
    return [
        Trainer("cleanrl ppo_continuous_action.py", True, "cleanrl/ppo_continuous_action.py",
                ("--env-id", "HalfCheetah-v4")),
        Trainer("ours", False, "ppo_continuous/train.py", ("--env-id", "HalfCheetah-v5")),
    ]  # fmt: skip


def validate(args: Args) -> None:
    cleanrl_needed = not args.trainers or any(t.startswith("cleanrl") for t in args.trainers)
    if cleanrl_needed and not (Path(args.cleanrl_dir) / "cleanrl" / "ppo_atari.py").is_file():
        raise UsageError(
            "--cleanrl-dir",
            f"no cleanrl/ppo_atari.py in {args.cleanrl_dir!r}; give a CleanRL checkout",
        )
    if cleanrl_needed and not Path(args.cleanrl_python).is_file():
        raise UsageError(
            "--cleanrl-python",
            f"no Python at {args.cleanrl_python!r}; give CleanRL's venv's bin/python",
        )
    names = [t.name for t in suite_trainers(args.suite)]
    for name in args.trainers:
        if name not in names:
            raise UsageError("--trainers", f"unknown trainer {name!r}; allowed: {', '.join(names)}")
    if args.repeats < 1:
        raise UsageError("--repeats", f"must be at least 1, got {args.repeats}")


def last_sps(output: str) -> float:
    """The last ``SPS: N`` line CleanRL printed (its steps since the loop started, per second)."""
    found = re.findall(r"^SPS: (\d+(?:\.\d+)?)", output, flags=re.MULTILINE)
    if not found:
        raise RuntimeError("CleanRL printed no SPS line:\n" + output[-2000:])
    return float(found[-1])


def run_once(args: Args, trainer: Trainer, steps: int, workdir: Path) -> float:
    """One run of ``trainer`` for ``steps`` steps in ``workdir``; its SPS."""
    if trainer.cleanrl:
        command = [args.cleanrl_python, str(Path(args.cleanrl_dir) / trainer.script), *trainer.flags,
                   "--total-timesteps", str(steps), "--seed", "1"]  # fmt: skip
    else:
        command = [sys.executable, str(REPO / trainer.script), *trainer.flags, "--total-timesteps",
                   str(steps), "--seed", "1", "--save-every", "0", "--runs-dir", str(workdir / "runs")]  # fmt: skip
    print("$", shlex.join(command), flush=True)
    # CleanRL's scripts import cleanrl_utils from the checkout's root, as its editable install does
    env = {**os.environ, "PYTHONPATH": args.cleanrl_dir} if trainer.cleanrl else None
    done = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{trainer.name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    if trainer.cleanrl:
        return last_sps(done.stdout)
    newest = max((workdir / "runs").glob("*/summary.json"), key=lambda p: p.stat().st_mtime)
    return float(json.loads(newest.read_text())["sps"])


def table(sps: dict[str, list[float]]) -> list[str]:
    """Markdown: each trainer's runs, median, and ratio to the first trainer's median."""
    first = statistics.median(next(iter(sps.values())))
    lines = ["| trainer | SPS per run | median | vs first |", "|---|---|---|---|"]
    for name, values in sps.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v:.0f}" for v in values)
        lines.append(f"| {name} | {runs} | {median:.0f} | {median / first:.2f}x |")
    return lines


def main(args: Args) -> None:
    steps = args.total_timesteps or (51_200 if args.suite == "atari" else 102_400)
    trainers = [
        t for t in suite_trainers(args.suite) if not args.trainers or t.name in args.trainers
    ]
    sps: dict[str, list[float]] = {t.name: [] for t in trainers}
    with tempfile.TemporaryDirectory(prefix="bench-vs-cleanrl-") as tmp:
        for repeat in range(args.repeats):
            for trainer in trainers:
                workdir = Path(tmp) / f"{trainer.name.replace(' ', '_')}_{repeat}"
                workdir.mkdir()
                sps[trainer.name].append(run_once(args, trainer, steps, workdir))
                print(f"{trainer.name}: {sps[trainer.name][-1]:.0f} SPS", flush=True)
    print(f"\n{args.suite}, {steps} steps per run, {args.repeats} runs each in turn; "
          f"{host_description()}, commit {code_version()}")  # fmt: skip
    print("\n".join(table(sps)))


if __name__ == "__main__":
    main(parse_args(Args, validate))
