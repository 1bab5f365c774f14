"""Continuous-control benchmark: 1M steps per task, returns beside a published reference, and SPS.

    python scripts/bench_continuous.py                      # HalfCheetah, Hopper, Walker2d; seed 1
    python scripts/bench_continuous.py --seeds 1 2 3 --total-timesteps 1000000
    python scripts/bench_continuous.py --env-ids BipedalWalker-v3 LunarLanderContinuous-v3 \
        --plot docs/benchmarks/img/box2d_1M.png             # PPO-for-Beginners' Box2D tasks

Runs ``ppo_continuous/train.py`` with its default flags once per env and seed, one after another
(never two at once), and prints per env the mean return of the last 100 episodes next to a
published reference: CleanRL's 1M-step ``ppo_continuous_action.py`` figure for MuJoCo tasks (v4,
``baselines/cleanrl_ppo.csv``), the SB3 zoo's PPO agent for Box2D tasks
(``baselines/sb3_zoo_ppo.csv``, tuned hyperparameters, its own step budget). ``--plot`` draws the
learning curves, one panel per env. Speed against CleanRL on the same machine is
``bench_vs_cleanrl.py``'s job.
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import tyro
from curves import episode_returns, trailing_mean, train_or_reuse

REPO = Path(__file__).resolve().parents[1]


@dataclass
class BenchArgs:
    env_ids: tuple[str, ...] = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5")
    """tasks to run (any continuous gymnasium id: MuJoCo, Box2D, classic control)"""
    seeds: tuple[int, ...] = (1,)
    """seeds per task"""
    total_timesteps: int = 1_000_000
    """steps per run"""
    runs_dir: str = "runs/bench_continuous"
    """where the runs go (each keeps its TensorBoard events and summary.json)"""
    reuse: bool = False
    """report a finished run found under --runs-dir instead of training it again"""
    plot: str | None = None
    """draw the learning curves (100-episode moving average) to this PNG"""
    out: str | None = None
    """also write the results as JSON here"""


def published_reference(env_id: str) -> str:
    """The published PPO figure for this task, with whose it is and its step budget ('n/a' if none)."""
    family, version = env_id.rsplit("-", 1)
    with open(REPO / "baselines" / "cleanrl_ppo.csv") as handle:
        for row in csv.DictReader(handle):
            if (row["script"], row["env_id"], row["run_tag"]) == (
                "ppo_continuous_action.py", f"{family}-v4", "pr-424"
            ):  # fmt: skip
                return f"CleanRL {float(row['cleanrl_mean']):.0f} +- {float(row['cleanrl_pm']):.0f} (v4, 1M, 3 seeds)"
    with open(REPO / "baselines" / "sb3_zoo_ppo.csv") as handle:
        for row in csv.DictReader(handle):
            if row["algo"] == "ppo" and row["env_id"].rsplit("-", 1)[0] == family:
                spread = f"{float(row['mean_reward']):.0f} +- {float(row['std_or_pm']):.0f}"
                return f"SB3 zoo {spread} ({row['env_id'].rsplit('-', 1)[1]}, {row['n_timesteps']}, 1 agent)"
    return "n/a"


def run_one(env_id: str, seed: int, args: BenchArgs) -> Path:
    runs = Path(args.runs_dir) / f"{env_id}__seed{seed}"
    cmd = [
        sys.executable, str(REPO / "ppo_continuous" / "train.py"), "--env-id", env_id,
        "--seed", str(seed), "--total-timesteps", str(args.total_timesteps),
        "--runs-dir", str(runs), "--save-every", "0",
    ]  # fmt: skip
    return train_or_reuse(cmd, runs, env_id, args.reuse)


def plot_curves(run_dirs: dict[str, list[Path]], seeds: tuple[int, ...], path: str) -> None:
    """One panel per env, one line per seed: the 100-episode moving average against env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(run_dirs), figsize=(4.5 * len(run_dirs), 3.5), squeeze=False)
    for ax, (env_id, dirs) in zip(axes[0], run_dirs.items(), strict=True):
        for run_dir, seed in zip(dirs, seeds, strict=True):
            steps, returns = episode_returns(run_dir)
            ax.plot(steps, trailing_mean(returns, window=100), label=f"seed {seed}")
        ax.set(title=env_id, xlabel="environment steps", ylabel="return (100-episode average)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})


def main(args: BenchArgs) -> None:
    run_dirs = {
        env_id: [run_one(env_id, seed, args) for seed in args.seeds] for env_id in args.env_ids
    }
    results = []
    for env_id, dirs in run_dirs.items():
        runs = [json.loads((d / "summary.json").read_text()) for d in dirs]
        returns = [r["mean_return_last_100"] for r in runs]
        results.append({
            "env_id": env_id, "seeds": list(args.seeds), "last_100_mean": statistics.mean(returns),
            "last_100_std": statistics.stdev(returns) if len(returns) > 1 else 0.0,
            "all_training_mean": statistics.mean(r["mean_return_all_training"] for r in runs),
            "sps_median": statistics.median(r["sps"] for r in runs),
            "wall_time_s_median": statistics.median(r["wall_time_s"] for r in runs),
            "reference": published_reference(env_id),
        })  # fmt: skip
    print(
        f"\n{'env':<26}{'last 100':>22}{'all training':>14}{'SPS':>7}{'wall s':>8}  published PPO"
    )
    for r in results:
        ours = f"{r['last_100_mean']:.1f} +- {r['last_100_std']:.1f} (n={len(r['seeds'])})"
        print(
            f"{r['env_id']:<26}{ours:>22}{r['all_training_mean']:>14.1f}{r['sps_median']:>7.0f}"
            f"{r['wall_time_s_median']:>8.0f}  {r['reference']}"
        )
    if args.plot:
        plot_curves(run_dirs, args.seeds, args.plot)
        print(f"learning curves: {args.plot}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(tyro.cli(BenchArgs))
