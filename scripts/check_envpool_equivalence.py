"""Is EnvPool's MuJoCo task the same as gymnasium's? Step both from one state with the same actions.

    python scripts/check_envpool_equivalence.py                 # the 7 Table 1 tasks, 1000 steps
    python scripts/check_envpool_equivalence.py --env-ids HalfCheetah-v5 --horizon 300 --chaos
    python scripts/check_envpool_equivalence.py --random-scores   # against random_scores.csv
    python scripts/check_envpool_equivalence.py --learning runs/envpool-learning  # PPO on both

Each task is made on both sides with no reset noise (``reset_noise_scale=0``), so both start in
the model's initial state; EnvPool's Reacher-v5 has no such option and draws its goal at random, so
there gymnasium takes EnvPool's initial state (``set_state`` with the joint angles, goal and
velocities read back from EnvPool's first observation). Then both take the same uniformly random
actions, step by step, and every observation, reward, termination and truncation is compared; an
episode that ends on both sides starts again on both from the same state, until ``--horizon`` steps.

``--chaos`` also runs gymnasium against itself with the initial joint positions moved by 1e-15:
where the two gymnasium runs drift apart as fast as gymnasium and EnvPool do, the difference is
rounding amplified by the dynamics, not a different task. tests/test_envpool_equivalence.py holds
the tolerances; docs/benchmarks/envpool.md has the figures.

``--learning RUNS_DIR`` reads the finished runs in a folder (PPO with the same flags and seeds on
both backends, e.g. ``batched.py --env-backend envpool`` and ``gymnasium``) and compares the
paper's two scores per task: each backend's per-seed scores, mean and spread, and the gap's
standard error and Welch's t-test.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
from records import RECORDS, read_summary
from welch import welch_line

from common.cli import UsageError, parse_args
from common.runtime import route_mujoco_warnings
from ppo_continuous.envpool_envs import SUPPORTED_ENV_IDS, check_backend, make_pool

# EnvPool's Reacher-v5 has no reset_noise_scale; it resets from its own random state instead.
# --chaos: about one rounding error of a joint position near 1 (float64's epsilon is 2.2e-16).
CHAOS_OFFSET = 1e-15
STATE_FROM_OBS = ("Reacher-v5",)


def reacher_state(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(qpos, qvel) of a Reacher-v5 observation: cos(q[:2]), sin(q[:2]), goal, qdot[:2], ...;
    the goal's velocity is zero, as every reset sets it."""
    angles = np.arctan2(obs[2:4], obs[0:2])
    qpos = np.concatenate([angles, obs[4:6]])
    qvel = np.concatenate([obs[6:8], np.zeros(2)])
    return qpos, qvel


class GymnasiumTask:
    """One gymnasium env (its TimeLimit included) stepped one action at a time."""

    def __init__(self, env_id: str, qpos_offset: float = 0.0) -> None:
        route_mujoco_warnings()
        kwargs = {} if env_id in STATE_FROM_OBS else {"reset_noise_scale": 0.0}
        self.env = gym.make(env_id, **kwargs)
        self.qpos_offset = qpos_offset

    def reset(self, seed: int, state: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        obs, _ = self.env.reset(seed=seed)
        if state is None and not self.qpos_offset:
            return obs
        mujoco_env = self.env.unwrapped
        qpos, qvel = state or (mujoco_env.data.qpos.copy(), mujoco_env.data.qvel.copy())
        mujoco_env.set_state(qpos + self.qpos_offset, qvel)
        return mujoco_env._get_obs()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        obs, reward, terminated, truncated, _ = self.env.step(action)
        return obs, float(reward), bool(terminated), bool(truncated)


class EnvPoolTask:
    """One env of an EnvPool, stepped one action at a time."""

    def __init__(self, env_id: str) -> None:
        kwargs = {} if env_id in STATE_FROM_OBS else {"reset_noise_scale": 0.0}
        self.pool = make_pool(env_id, [0], **kwargs)

    def reset(self) -> np.ndarray:
        return self.pool.reset()[0][0]

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        obs, reward, terminated, truncated, _ = self.pool.step(action[None])
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0])


@dataclass
class Comparison:
    """Step-by-step differences of two runs of one task over ``steps`` steps."""

    env_id: str
    obs_diff: list[float] = field(default_factory=list)  # max |obs_a - obs_b| at each step
    reward_diff: list[float] = field(default_factory=list)  # |r_a - r_b| / max(1, |r_a|)
    end_mismatches: int = 0  # steps whose termination or truncation differ
    episodes: int = 0  # episodes both sides ended together
    truncations: int = 0  # of them, ended by the time limit

    @property
    def steps(self) -> int:
        return len(self.obs_diff)

    def steps_within(self, tolerance: float) -> int:
        """Steps before the observations first differ by more than ``tolerance``."""
        over = np.flatnonzero(np.asarray(self.obs_diff) > tolerance)
        return int(over[0]) if len(over) else self.steps


def compare(env_id: str, horizon: int, seed: int = 0, chaos: bool = False) -> Comparison:
    """EnvPool (or, with ``chaos``, gymnasium with qpos + CHAOS_OFFSET) against gymnasium, ``horizon``
    steps of the same uniformly random actions (seeded by ``seed``) from the same state."""
    reference = GymnasiumTask(env_id)
    other = GymnasiumTask(env_id, qpos_offset=CHAOS_OFFSET) if chaos else EnvPoolTask(env_id)
    space = reference.env.action_space
    actions = np.random.default_rng(seed).uniform(space.low, space.high, (horizon, *space.shape))

    def reset_both(episode: int) -> tuple[np.ndarray, np.ndarray]:
        if chaos:
            return reference.reset(seed + episode), other.reset(seed + episode)
        other_obs = other.reset()
        state = reacher_state(other_obs) if env_id in STATE_FROM_OBS else None
        return reference.reset(seed + episode, state), other_obs

    result = Comparison(env_id)
    obs_a, obs_b = reset_both(0)
    for action in actions:
        obs_a, reward_a, terminated_a, truncated_a = reference.step(action)
        obs_b, reward_b, terminated_b, truncated_b = other.step(action)
        result.obs_diff.append(float(np.max(np.abs(obs_a - obs_b))))
        result.reward_diff.append(abs(reward_a - reward_b) / max(1.0, abs(reward_a)))
        if (terminated_a, truncated_a) != (terminated_b, truncated_b):
            result.end_mismatches += 1
        if (terminated_a or truncated_a) and (terminated_b or truncated_b):
            result.episodes += 1
            result.truncations += truncated_a and truncated_b
            obs_a, obs_b = reset_both(result.episodes)
    return result


def envpool_random_scores(env_id: str, episodes: int = 100, seed: int = 0) -> np.ndarray:
    """The returns of ``episodes`` episodes of uniformly random actions on EnvPool, one env per
    episode (env i seeded with seed + i), as scripts/measure_random_scores.py does on gymnasium."""
    pool = make_pool(env_id, [seed + i for i in range(episodes)])
    space = pool.action_space
    rng = np.random.default_rng(seed)
    returns, done = np.zeros(episodes), np.zeros(episodes, dtype=bool)
    pool.reset()
    while not done.all():
        actions = rng.uniform(space.low, space.high, (episodes, *space.shape))
        _, reward, terminated, truncated, info = pool.step(actions)
        ids = info["env_id"]
        returns[ids] += np.where(done[ids], 0.0, reward)  # an ended env's later steps don't count
        done[ids] |= terminated | truncated
    pool.close()
    return returns


def compare_random_scores(recorded: Path, episodes: int, seed: int) -> None:
    """EnvPool's random-policy scores against ``recorded`` (random_scores.csv): the difference of
    the means and its 95% interval (1.96 standard errors of the difference, Welch)."""
    print(
        "| task | gymnasium (recorded) | envpool | difference | 95% interval |\n|---|---|---|---|---|"
    )
    with open(recorded) as f:
        for row in csv.DictReader(f):
            returns = envpool_random_scores(row["env_id"], episodes, seed)
            mean, std, n = float(row["score"]), float(row["std"]), int(row["episodes"])
            diff = returns.mean() - mean
            half_width = 1.96 * np.sqrt(std**2 / n + returns.std() ** 2 / episodes)
            verdict = "agree" if abs(diff) <= half_width else "DIFFER"
            print(f"| {row['env_id']} | {mean:.2f} +- {std:.2f} (n={n}) | {returns.mean():.2f} +- "
                  f"{returns.std():.2f} (n={episodes}) | {diff:+.2f} | +-{half_width:.2f} ({verdict}) |")  # fmt: skip


SCORES = {"mean_return_last_100": "last 100 episodes", "mean_return_all_training": "all training"}


def compare_learning(runs_dir: Path) -> None:
    """Per task, the scores of the finished runs in ``runs_dir`` on each backend, and their gap.

    A run's backend is its summary's ``env_backend``; summaries written before that field existed
    are told apart by their experiment name instead (e.g. ``clip_0.2_envpool``)."""
    runs: dict[tuple[str, str], list[dict]] = {}
    for summary_path in sorted(runs_dir.glob("*/summary.json")):
        summary = read_summary(summary_path.parent)
        if summary and summary.get("status") == "finished":
            key = (summary["env_id"], summary.get("env_backend") or summary["exp_name"])
            runs.setdefault(key, []).append(summary)
    print("| task | backend | seeds | last 100 episodes, per seed | mean +- std | all training, "
          "mean +- std |\n|---|---|---|---|---|---|")  # fmt: skip
    for (env_id, backend), found in sorted(runs.items()):
        found.sort(key=lambda s: s["seed"])
        cells = [np.array([s[score] for s in found]) for score in SCORES]
        print(f"| {env_id} | {backend} | {', '.join(str(s['seed']) for s in found)} | "
              f"{', '.join(f'{v:.1f}' for v in cells[0])} | "
              + " | ".join(f"{c.mean():.1f} +- {c.std(ddof=1) if len(c) > 1 else 0:.1f}" for c in cells)
              + " |")  # fmt: skip
    print()
    for env_id in sorted({env for env, _ in runs}):
        labels = sorted(label for env, label in runs if env == env_id)
        pairs = [runs[(env_id, label)] for label in labels]
        if len(pairs) != 2:
            print(f"- {env_id}: needs runs on two backends, found {labels}")
            continue
        for score, name in SCORES.items():
            first, second = ([s[score] for s in p] for p in pairs)
            print(f"- {welch_line(f'{env_id}, {name}, {labels[0]} - {labels[1]}', first, second)}")


@dataclass
class Args:
    env_ids: tuple[str, ...] = SUPPORTED_ENV_IDS
    """the tasks to compare"""
    horizon: int = 1000
    """steps per task (episodes that end start again from the same state)"""
    seed: int = 0
    """seed of the random actions"""
    tolerance: float = 1e-9
    """observation difference reported as 'steps within'"""
    chaos: bool = False
    """also compare gymnasium with gymnasium whose initial qpos is moved by CHAOS_OFFSET"""
    random_scores: bool = False
    """instead, measure random-policy scores on EnvPool and compare them with the recorded ones"""
    episodes: int = 100
    """episodes per task for --random-scores"""
    learning: str | None = None
    """instead, compare the finished PPO runs in this runs folder, envpool against gymnasium"""


def validate(args: Args) -> None:
    if args.learning is not None and not Path(args.learning).is_dir():
        raise UsageError("--learning", f"not a folder of runs: {args.learning}")
    if args.horizon <= 0:
        raise UsageError("--horizon", f"must be positive, got {args.horizon}")
    for env_id in args.env_ids:
        check_backend("envpool", env_id)


def main(args: Args) -> None:
    if args.learning is not None:
        compare_learning(Path(args.learning))
        return
    if args.random_scores:
        compare_random_scores(RECORDS / "random_scores.csv", args.episodes, args.seed)
        return
    print("| task | pair | steps | within tol | max obs diff | max reward diff | end mismatches"
          " | episodes (truncated) |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    for env_id in args.env_ids:
        for chaos in (False, True) if args.chaos else (False,):
            c = compare(env_id, args.horizon, args.seed, chaos)
            pair = f"gymnasium vs gymnasium+{CHAOS_OFFSET:.0e}" if chaos else "gymnasium vs envpool"
            print(f"| {env_id} | {pair} | {c.steps} | {c.steps_within(args.tolerance)} | "
                  f"{max(c.obs_diff):.1e} | {max(c.reward_diff):.1e} | {c.end_mismatches} | "
                  f"{c.episodes} ({c.truncations}) |")  # fmt: skip


if __name__ == "__main__":
    main(parse_args(Args, validate))
