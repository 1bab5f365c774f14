"""Measure the random-policy scores that Table 1 normalises with (a random policy scores 0).

    python scripts/measure_random_scores.py                      # the 7 MuJoCo tasks, 100 episodes each
    python scripts/measure_random_scores.py --env-ids Pendulum-v1 --episodes 20 --out random.csv

Uniformly random actions for whole episodes, seeded; writes env_id, score (mean return), std,
episodes and seed to ``--out`` (default: the committed docs/results/records/random_scores.csv).
"""

from __future__ import annotations

from dataclasses import dataclass

from presets import MUJOCO_TABLE1
from records import RECORDS
from table1 import measure_random_scores, write_random_scores

from common.cli import UsageError, parse_args, require_positive, require_registered_env


@dataclass
class Args:
    env_ids: tuple[str, ...] = MUJOCO_TABLE1
    """the envs to measure (default: the 7 MuJoCo tasks of Table 1)"""
    episodes: int = 100
    """whole episodes per env"""
    seed: int = 0
    """seed of the first episode (episode i resets with seed + i) and of the action sampler"""
    out: str = str(RECORDS / "random_scores.csv")
    """the CSV to write"""


def validate(args: Args) -> None:
    require_positive(episodes=args.episodes)
    if not args.env_ids:
        raise UsageError("--env-ids", "give at least one env id")
    for env_id in args.env_ids:
        require_registered_env(env_id, flag="--env-ids")


def main(args: Args) -> None:
    scores = measure_random_scores(list(args.env_ids), args.episodes, args.seed)
    write_random_scores(args.out, scores)
    for env_id, s in sorted(scores.items()):
        print(f"{env_id}: {s['score']:.2f} +- {s['std']:.2f} over {s['episodes']} episodes")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main(parse_args(Args, validate))
