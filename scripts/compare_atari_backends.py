"""Do the two Atari backends play the same game? Random play, many whole games, Welch's t-test.

    python scripts/compare_atari_backends.py                          # Breakout, 400 games each
    python scripts/compare_atari_backends.py --env-id PongNoFrameskip-v4 --games 100

A learning run gives one score per seed, so comparing backends by training has little power (see
``bench_atari_learning.py --seeds``). Random play isolates the environment: a seeded uniform policy
plays whole games on each backend, through the trainer's own ``make_atari_envs`` and
``GameTracker``, and the whole-game score, game length and lives lost per game are compared with
Welch's t-test. Equal settings (no-op starts, frame skip and max-pool, FIRE at reset, life handling,
the frame cap) give equal distributions; a difference in any of them moves at least one of these.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
from welch import backend_gap

from common.cli import UsageError, parse_args, require_choice, require_positive
from common.scores import game_name, human_random_scores
from ppo_atari.envs import (
    BACKENDS,
    GameTracker,
    atari_spec,
    make_atari_envs,
    require_atari_id,
)

MEASURES = ("score", "length", "lives_lost")


@dataclass
class CompareArgs:
    env_id: str = "BreakoutNoFrameskip-v4"
    """the Atari game"""
    games: int = 400
    """whole games to play on each backend"""
    num_envs: int = 8
    """parallel envs per backend"""
    seed: int = 1
    """seed of the envs and of the random policy"""
    backends: tuple[str, ...] = BACKENDS
    """backends to compare (two for the t-test)"""


def play_random_games(backend: str, args: CompareArgs) -> dict[str, list[float]]:
    """Whole-game score, length (agent steps) and lives lost of ``args.games`` random games."""
    envs = make_atari_envs(atari_spec(args.env_id), args.num_envs, backend, args.seed)
    rng = np.random.default_rng(args.seed)
    num_actions = int(envs.single_action_space.n)
    games = GameTracker(args.num_envs)
    _, info = envs.reset(seed=args.seed)
    games.reset(info)
    lives_lost = np.zeros(args.num_envs, dtype=np.int64)
    results: dict[str, list[float]] = {name: [] for name in MEASURES}
    try:
        while len(results["score"]) < args.games:
            actions = rng.integers(num_actions, size=args.num_envs)
            _, reward, terminated, truncated, info = envs.step(actions)
            _, value_terminal, finished = games.step(reward, terminated, truncated, info)
            lives_lost += value_terminal  # a life lost, or the last one (the game over)
            for env, score, length in finished:
                results["score"].append(float(score))
                results["length"].append(float(length))
                results["lives_lost"].append(float(lives_lost[env]))
                lives_lost[env] = 0
    finally:
        envs.close()
    return {name: values[: args.games] for name, values in results.items()}


def validate(args: CompareArgs) -> None:
    """Bad input: one line naming the flag, exit code 2, before any game is played."""
    require_positive(num_envs=args.num_envs)
    if args.games < 2:
        raise UsageError(
            "--games", f"needs at least 2 games for a standard error, got {args.games}"
        )
    for backend in args.backends:
        require_choice("backends", backend, BACKENDS)
    require_atari_id(args.env_id)


def main(args: CompareArgs) -> None:
    per_backend = {}
    for backend in args.backends:
        start = time.time()
        per_backend[backend] = play_random_games(backend, args)
        print(f"{backend}: {args.games} games in {time.time() - start:.0f} s", flush=True)

    ref = human_random_scores().get(game_name(args.env_id))
    print(f"\n{args.env_id}, uniform random policy, {args.games} whole games per backend "
          f"(published random score: {ref[0] if ref else 'n/a'}; other protocol)")  # fmt: skip
    for name in MEASURES:
        row = [f"{name:>10}:"]
        for backend, results in per_backend.items():
            values = results[name]
            error = statistics.stdev(values) / len(values) ** 0.5
            row.append(f"{backend} {statistics.mean(values):.2f} +- {error:.2f}")
        if len(per_backend) == 2:
            gap, error, p_value = backend_gap(*(r[name] for r in per_backend.values()))
            verdict = "same" if p_value >= 0.05 else "DIFFERENT"
            row.append(f"gap {gap:+.2f} +- {error:.2f}, p = {p_value:.2f} ({verdict} at 5%)")
        print("  ".join(row))


if __name__ == "__main__":
    main(parse_args(CompareArgs, validate))
