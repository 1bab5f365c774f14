"""Continuous-control benchmark: 1M steps per MuJoCo task, returns beside CleanRL's, and SPS.

    python scripts/bench_continuous.py                      # HalfCheetah, Hopper, Walker2d; seed 1
    python scripts/bench_continuous.py --seeds 1 2 3 --total-timesteps 1000000

Runs ``ppo_continuous/train.py`` once per env and seed, one after another (never two timings at
once), and prints per env the mean return of the last 100 episodes next to CleanRL's published
1M-step figure for ppo_continuous_action.py (MuJoCo v4, baselines/cleanrl_ppo.csv), plus the SPS
and its ratio to CleanRL's ppo_continuous_action.py measured on a 2-core machine (1,340 SPS).
"""

from __future__ import annotations

import csv
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import tyro

REPO = Path(__file__).resolve().parents[1]
CLEANRL_SPS_2_CORES = (
    1340.0  # ppo_continuous_action.py on HalfCheetah, measured on a 2-core machine
)


@dataclass
class BenchArgs:
    env_ids: tuple[str, ...] = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5")
    """MuJoCo tasks to run"""
    seeds: tuple[int, ...] = (1,)
    """seeds per task"""
    total_timesteps: int = 1_000_000
    """steps per run"""
    runs_dir: str = "runs/bench_continuous"
    """where the runs go (each keeps its TensorBoard events and summary.json)"""
    out: str | None = None
    """also write the results as JSON here"""


def cleanrl_reference(env_id: str) -> tuple[float, float] | None:
    """CleanRL's mean and spread at 1M steps for the v4 version of this task."""
    name = env_id.split("-")[0] + "-v4"
    with open(REPO / "baselines" / "cleanrl_ppo.csv") as handle:
        for row in csv.DictReader(handle):
            if (
                row["script"] == "ppo_continuous_action.py"
                and row["env_id"] == name
                and row["run_tag"] == "pr-424"
            ):
                return float(row["cleanrl_mean"]), float(row["cleanrl_pm"])
    return None


def run_one(env_id: str, seed: int, args: BenchArgs) -> dict:
    runs = Path(args.runs_dir) / f"{env_id}__seed{seed}"
    cmd = [
        sys.executable, str(REPO / "ppo_continuous" / "train.py"), "--env-id", env_id,
        "--seed", str(seed), "--total-timesteps", str(args.total_timesteps),
        "--runs-dir", str(runs), "--save-every", "0",
    ]  # fmt: skip
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
    run_dir = max(runs.iterdir(), key=lambda p: p.stat().st_mtime)
    return json.loads((run_dir / "summary.json").read_text())


def main(args: BenchArgs) -> None:
    results = []
    for env_id in args.env_ids:
        runs = [run_one(env_id, seed, args) for seed in args.seeds]
        returns = [r["mean_return_last_100"] for r in runs]
        sps = statistics.median(r["sps"] for r in runs)
        results.append({
            "env_id": env_id, "seeds": list(args.seeds), "last_100_mean": statistics.mean(returns),
            "last_100_std": statistics.stdev(returns) if len(returns) > 1 else 0.0,
            "sps_median": sps, "cleanrl_v4": cleanrl_reference(env_id),
        })  # fmt: skip
    print(
        f"\n{'env':<16}{'ours (last 100)':>22}{'CleanRL v4 1M':>20}{'SPS':>9}{'x CleanRL SPS':>15}"
    )
    for r in results:
        ref = r["cleanrl_v4"]
        ref_text = f"{ref[0]:.0f} +- {ref[1]:.0f}" if ref else "n/a"
        ours = f"{r['last_100_mean']:.0f} +- {r['last_100_std']:.0f} (n={len(r['seeds'])})"
        print(
            f"{r['env_id']:<16}{ours:>22}{ref_text:>20}{r['sps_median']:>9.0f}{r['sps_median'] / CLEANRL_SPS_2_CORES:>15.2f}"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(tyro.cli(BenchArgs))
