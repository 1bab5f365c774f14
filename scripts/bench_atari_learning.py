"""Atari learning benchmark: both backends, same seed, same budget; returns and a learning curve.

    python scripts/bench_atari_learning.py                   # Breakout, 1M steps, both backends
    python scripts/bench_atari_learning.py --seeds 1 2 3     # do the backends agree within noise?
    python scripts/bench_atari_learning.py --seeds 1 2 3 --reuse   # after an interruption

Runs ``ppo_atari/train.py`` once per backend and seed, one after another, then prints the mean
return of the last 100 episodes (whole games, unclipped) per backend beside random play and the
published references, and draws the learning curves (a 100-episode moving average) to a PNG.
With two backends and two or more seeds each it also prints the gap between the backends, its
standard error across seeds and Welch's t-test: that gap is what "agree within noise" is about.
"""

from __future__ import annotations

import csv
import json
import shlex
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro
from welch import backend_gap

from common.scores import game_name, human_random_scores

REPO = Path(__file__).resolve().parents[1]


@dataclass
class BenchArgs:
    env_id: str = "BreakoutNoFrameskip-v4"
    """the Atari game"""
    backends: tuple[str, ...] = ("ale_vector", "gymnasium")
    """backends to compare"""
    seeds: tuple[int, ...] = (1,)
    """seeds per backend"""
    total_timesteps: int = 1_000_000
    """steps per run"""
    runs_dir: str = "runs/bench_atari_learning"
    """where the runs go"""
    plot: str = "atari_learning.png"
    """the learning-curve PNG"""
    extra: str = ""
    """more trainer flags, in quotes, e.g. --extra='--precision bf16'"""
    reuse: bool = False
    """use a run of the same game that already finished in runs_dir instead of training that backend
    and seed again (to finish an interrupted benchmark); it must have been run with the same flags"""


def finished_run(runs: Path, env_id: str) -> Path | None:
    """The newest run folder under ``runs`` whose summary.json says it finished ``env_id``."""
    done = [
        path.parent
        for path in runs.glob("*/summary.json")
        if (record := json.loads(path.read_text())).get("finished") and record["env_id"] == env_id
    ]
    return max(done, key=lambda p: p.stat().st_mtime, default=None)


def run_one(backend: str, seed: int, args: BenchArgs) -> Path:
    runs = Path(args.runs_dir) / f"{backend}__seed{seed}"
    if args.reuse and (done := finished_run(runs, args.env_id)):
        print(f"reusing {done}", flush=True)
        return done
    cmd = [
        sys.executable, str(REPO / "ppo_atari" / "train.py"), "--env-id", args.env_id,
        "--env-backend", backend, "--seed", str(seed), "--total-timesteps", str(args.total_timesteps),
        "--runs-dir", str(runs), *shlex.split(args.extra),
    ]  # fmt: skip
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
    return max(runs.iterdir(), key=lambda p: p.stat().st_mtime)


def episode_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    points = events.Scalars("charts/episodic_return")
    return np.array([p.step for p in points]), np.array([p.value for p in points])


def moving_average(values: np.ndarray, window: int = 100) -> np.ndarray:
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    starts = np.maximum(np.arange(len(values)) + 1 - window, 0)
    return (cumulative[1:] - cumulative[starts]) / counts


def main(args: BenchArgs) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results: dict[str, list[dict]] = {}
    fig, ax = plt.subplots(figsize=(7, 4))
    for colour, backend in enumerate(args.backends):
        for seed in args.seeds:
            run_dir = run_one(backend, seed, args)
            record = json.loads((run_dir / "summary.json").read_text())
            results.setdefault(backend, []).append(record)
            steps, returns = episode_curve(run_dir)
            label = backend if seed == args.seeds[0] else None  # one legend entry per backend
            ax.plot(steps, moving_average(returns), color=f"C{colour}", alpha=0.8, label=label)
    ref = human_random_scores().get(game_name(args.env_id))
    if ref:
        ax.axhline(ref[0], color="grey", linestyle=":", label=f"random ({ref[0]})")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return (100-episode moving average)")
    seeds = "seed" if len(args.seeds) == 1 else "seeds"
    ax.set_title(f"PPO on {args.env_id}, {seeds} {', '.join(map(str, args.seeds))}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)

    print(
        f"\n{args.env_id}, {args.total_timesteps:,} steps; random play: {ref[0] if ref else 'n/a'}"
    )
    for backend, records in results.items():
        last = [r["mean_return_last_100"] for r in records]
        spread = statistics.stdev(last) if len(last) > 1 else 0.0
        sps = statistics.median(r["sps"] for r in records)
        print(f"{backend:>10}: last 100 episodes {statistics.mean(last):.1f} +- {spread:.1f} "
              f"(n={len(last)}); all training {statistics.mean(r['mean_return_all_training'] for r in records):.1f}; "
              f"SPS {sps:.0f}")  # fmt: skip
    last_100 = [[r["mean_return_last_100"] for r in records] for records in results.values()]
    if len(last_100) == 2 and min(len(scores) for scores in last_100) >= 2:
        gap, error, p_value = backend_gap(*last_100)
        verdict = "within noise" if p_value >= 0.05 else "NOT within noise"
        print(f"{' - '.join(results)}: {gap:+.1f} +- {error:.1f} (standard error across seeds); "
              f"Welch's t-test p = {p_value:.2f}: {verdict} at the 5% level")  # fmt: skip
    print(f"learning curves: {args.plot}")
    with open(REPO / "baselines" / "cleanrl_ppo.csv") as handle:
        for row in csv.DictReader(handle):
            if (
                row["script"] == "ppo_atari.py"
                and row["env_id"] == args.env_id
                and row["run_tag"] == "pr-424"
            ):
                print(
                    f"CleanRL ppo_atari.py at {int(row['total_timesteps']):,} steps: {row['cleanrl_mean']} +- {row['cleanrl_pm']}"
                )


if __name__ == "__main__":
    main(tyro.cli(BenchArgs))
