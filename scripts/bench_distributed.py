"""Speed of one run as 1, 2, ... ranks (torchrun) with the same global batch, side by side.

    python scripts/bench_distributed.py                          # Breakout, 1 and 2 ranks, 8 envs in all
    python scripts/bench_distributed.py --ranks 1 2 4 --cuda     # on a GPU node: one GPU per rank

Each configuration runs ``ppo_atari/train.py`` for ``--total-timesteps`` with ``--total-envs``
envs split over the ranks (so the global batch, and the learning, are the same), alternating
configurations ``--repeats`` times; it prints each run's SPS (from its summary.json), the medians
and their ratio to one rank.
"""

from __future__ import annotations

import json
import shlex
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from common.cli import UsageError, parse_args
from common.distributed import torchrun
from common.runtime import code_version, host_description

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Args:
    env_id: str = "BreakoutNoFrameskip-v4"
    """the Atari game"""
    ranks: tuple[int, ...] = (1, 2)
    """the rank counts to compare; each must divide --total-envs"""
    total_envs: int = 8
    """envs over all ranks (each rank steps total_envs / ranks)"""
    total_timesteps: int = 25_600
    """steps per run (all ranks together)"""
    repeats: int = 2
    """alternations of the configurations; the medians are over these"""
    cuda: bool = False
    """let each rank use cuda:{local rank} (default: CPU, as the ranks then share this machine's cores)"""
    runs_dir: str = "runs/bench-distributed"
    """where the runs go"""
    extra: str = ""
    """more trainer flags for every run, in quotes"""


def validate(args: Args) -> None:
    for ranks in args.ranks:
        if ranks < 1 or args.total_envs % ranks:
            raise UsageError(
                "--ranks", f"each must divide --total-envs {args.total_envs}, got {ranks}"
            )
    if args.repeats < 1:
        raise UsageError("--repeats", f"must be at least 1, got {args.repeats}")


def run_once(args: Args, ranks: int, repeat: int) -> float:
    """One run with ``ranks`` ranks; its SPS."""
    runs = Path(args.runs_dir) / f"ranks{ranks}_repeat{repeat}"
    launcher = torchrun(ranks) if ranks > 1 else [sys.executable]
    command = [*launcher, str(REPO / "ppo_atari" / "train.py"), "--env-id", args.env_id,
               "--num-envs", str(args.total_envs // ranks), "--total-timesteps", str(args.total_timesteps),
               "--save-every", "0", "--runs-dir", str(runs), *(["--cuda"] if args.cuda else ["--no-cuda"]),
               *shlex.split(args.extra)]  # fmt: skip
    print("$", shlex.join(command), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    newest = max(runs.glob("*/summary.json"), key=lambda p: p.stat().st_mtime)
    return float(json.loads(newest.read_text())["sps"])


def main(args: Args) -> None:
    sps: dict[int, list[float]] = {ranks: [] for ranks in args.ranks}
    for repeat in range(args.repeats):
        for ranks in args.ranks:
            sps[ranks].append(run_once(args, ranks, repeat))
            print(f"ranks {ranks}: {sps[ranks][-1]:.0f} SPS", flush=True)
    base = statistics.median(sps[args.ranks[0]])
    print(f"\n{args.env_id}, {args.total_envs} envs in all, {args.total_timesteps} steps per run; "
          f"{host_description()}, commit {code_version()}")  # fmt: skip
    print("| ranks | envs per rank | SPS per run | median | vs first |")
    print("|---|---|---|---|---|")
    for ranks, values in sps.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v:.0f}" for v in values)
        print(
            f"| {ranks} | {args.total_envs // ranks} | {runs} | {median:.0f} | {median / base:.2f}x |"
        )


if __name__ == "__main__":
    main(parse_args(Args, validate))
