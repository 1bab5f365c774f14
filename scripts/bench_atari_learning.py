"""Atari learning benchmark: both backends, same seed, same budget; returns and a learning curve.

    python scripts/bench_atari_learning.py                   # Breakout, 1M steps, both backends
    python scripts/bench_atari_learning.py --seeds 1 2 3     # do the backends agree within noise?
    python scripts/bench_atari_learning.py --seeds 1 2 3 --reuse   # after an interruption
    python scripts/bench_atari_learning.py --seeds 1 2 3 --jobs 2  # two runs at a time, a core each
    python scripts/bench_atari_learning.py --backends ale_vector --seeds 1 2 3 --reuse \
        --against-last-100 25.2 21.7 --against-all-training 12.7 10.9  # against CleanRL's seeds

Runs ``ppo_atari/train.py`` once per backend and seed, one after another (or ``--jobs`` at a
time, each pinned to its own share of the cores), then prints the mean return of the last 100
episodes (whole games, unclipped) per backend beside random play and the published references,
and draws the learning curves (a 100-episode moving average) to a PNG. With two backends and two
or more seeds each it also prints the gap between the backends, its standard error across seeds
and Welch's t-test: that gap is what "agree within noise" is about.
``--against-last-100`` and ``--against-all-training`` test the first backend the same way against
another setup's per-seed scores (the paper's two scores of CleanRL's runs, for instance).
"""

from __future__ import annotations

import csv
import json
import queue
import shlex
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from curves import core_shares, episode_returns, trailing_mean, train_or_reuse
from welch import welch_line

from common.cli import UsageError, parse_args
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
    jobs: int = 1
    """runs to train at a time, each on its own share of the cores with one torch thread per core
    (pinned where the OS allows): two at a time on 2 cores finish sooner than one after the other.
    Not for speed figures: each run's SPS is then that of its share"""
    against_name: str = "CleanRL ppo_atari.py"
    """the other setup that --against-last-100 and --against-all-training come from"""
    against_last_100: tuple[float, ...] = ()
    """another setup's last-100 scores, one per seed: the first backend is tested against them (Welch)"""
    against_all_training: tuple[float, ...] = ()
    """the same setup's scores over all of training, one per seed, tested the same way"""


def validate(args: BenchArgs) -> None:
    try:
        core_shares(args.jobs)
    except ValueError as err:
        raise UsageError("--jobs", str(err)) from None


def run_one(backend: str, seed: int, args: BenchArgs, cores: list[int] | None = None) -> Path:
    runs = Path(args.runs_dir) / f"{backend}__seed{seed}"
    cmd = [
        sys.executable, str(REPO / "ppo_atari" / "train.py"), "--env-id", args.env_id,
        "--env-backend", backend, "--seed", str(seed), "--total-timesteps", str(args.total_timesteps),
        "--runs-dir", str(runs), *shlex.split(args.extra),
    ]  # fmt: skip
    return train_or_reuse(cmd, runs, args.env_id, args.reuse, cores)


def run_all(args: BenchArgs) -> dict[tuple[str, int], Path]:
    """Every backend and seed's run folder, trained ``--jobs`` at a time: a run takes a free share
    of the cores and gives it back when it ends."""
    todo = [(backend, seed) for backend in args.backends for seed in args.seeds]
    if args.jobs == 1:
        return {key: run_one(*key, args) for key in todo}
    free_shares: queue.Queue[list[int]] = queue.Queue()
    for share in core_shares(args.jobs):
        free_shares.put(share)

    def train(key: tuple[str, int]) -> Path:
        cores = free_shares.get()
        try:
            return run_one(*key, args, cores)
        finally:
            free_shares.put(cores)

    with ThreadPoolExecutor(args.jobs) as pool:
        return dict(zip(todo, pool.map(train, todo), strict=True))


def main(args: BenchArgs) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dirs = run_all(args)
    results: dict[str, list[dict]] = {}
    fig, ax = plt.subplots(figsize=(7, 4))
    for colour, backend in enumerate(args.backends):
        for seed in args.seeds:
            run_dir = run_dirs[backend, seed]
            record = json.loads((run_dir / "summary.json").read_text())
            results.setdefault(backend, []).append(record)
            steps, returns = episode_returns(run_dir)
            label = backend if seed == args.seeds[0] else None  # one legend entry per backend
            ax.plot(
                steps,
                trailing_mean(returns, window=100),
                color=f"C{colour}",
                alpha=0.8,
                label=label,
            )
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
        print(welch_line(" - ".join(results), *last_100))
    first, records = next(iter(results.items()))
    for score, against in (("mean_return_last_100", args.against_last_100),
                           ("mean_return_all_training", args.against_all_training)):  # fmt: skip
        if against:
            ours = [r[score] for r in records]
            print(welch_line(f"{first} - {args.against_name}, {score}", ours, list(against)))
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
    main(parse_args(BenchArgs, validate))
