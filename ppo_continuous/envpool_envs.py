"""EnvPool's C++ MuJoCo tasks as the batched runner's envs (``--env-backend envpool``).

gymnasium's MuJoCo envs spend about two thirds of their time in Python around ``mj_step``
(``step``, ``_get_obs``, the reward terms, the wrappers). EnvPool (``pip install envpool``) ships
the same ``-v5`` tasks in C++ and steps a batch of them in one call. ``EnvPoolRunEnvs`` is
``run_envs.RunEnvs`` with its R gymnasium envs replaced by one pool of R envs: the same interface
(``reset(seeds)``, ``step(actions)`` giving (obs, rewards, terminations, truncations, episodes),
``state_dict``, ``close``), the same normalisations (``RunEnvs``'s own arrays and formulas), the same
``ClipAction`` and ``RecordEpisodeStatistics`` semantics, and the same same-step autoreset (EnvPool
resets an ended env on its next step; here the ended envs are reset in the step that ended them).

Only the tasks ``scripts/check_envpool_equivalence.py`` has shown to be the same as gymnasium's
(``tests/test_envpool_equivalence.py``) are allowed; docs/benchmarks/envpool.md has the evidence.
Env r is seeded with seed r (EnvPool's ``env_seed``), but EnvPool draws its reset noise from its own
random number generator, so the same seed does not give gymnasium's initial state: the two
backends give the same task, not the same episodes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from common.cli import UsageError
from ppo_continuous.run_envs import CLIP, EPSILON, RunEnvs, RunningMeanStds

BACKENDS = ("gymnasium", "envpool")
# The Table 1 tasks whose equivalence with gymnasium's is tested (tests/test_envpool_equivalence.py)
SUPPORTED_ENV_IDS = (
    "HalfCheetah-v5", "Hopper-v5", "InvertedDoublePendulum-v5", "InvertedPendulum-v5",
    "Reacher-v5", "Swimmer-v5", "Walker2d-v5",
)  # fmt: skip


def check_backend(backend: str, env_id: str) -> None:
    """UsageError (one line, exit 2) unless ``backend`` can run ``env_id`` here."""
    if backend not in BACKENDS:
        raise UsageError("--env-backend", f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "gymnasium":
        return
    if env_id not in SUPPORTED_ENV_IDS:
        raise UsageError(
            "--env-backend",
            f"envpool runs only {', '.join(SUPPORTED_ENV_IDS)} (tested equal to gymnasium's); "
            f"got --env-id {env_id!r}, use --env-backend gymnasium",
        )
    try:
        import envpool  # noqa: F401
    except ImportError:
        raise UsageError(
            "--env-backend", 'envpool is not installed: pip install -e ".[envpool]"'
        ) from None


def make_pool(env_id: str, seeds: list[int], num_threads: int = 1, **task_kwargs: Any):
    """One EnvPool of ``len(seeds)`` envs of ``env_id`` stepped together (synchronously), env i
    seeded with ``seeds[i]``; ``task_kwargs`` are the task's options (e.g. reset_noise_scale).
    One thread by default: on a few shared cores more threads only contend."""
    import envpool

    return envpool.make_gymnasium(
        env_id, num_envs=len(seeds), env_seed=list(seeds), num_threads=num_threads, **task_kwargs
    )


class EnvPoolRunEnvs(RunEnvs):
    """R envs of ``env_id`` in one EnvPool, env r for run r; ``RunEnvs``'s interface and numbers."""

    def __init__(self, env_id: str, num_runs: int, gamma: float, **task_kwargs: Any) -> None:
        import envpool

        spec = envpool.make_spec(env_id, **task_kwargs)
        space = spec.gymnasium_observation_space
        self.env_id, self.num_runs, self.task_kwargs = env_id, num_runs, task_kwargs
        self.action_space = spec.gymnasium_action_space
        self.obs_shape: tuple[int, ...] = space.shape
        self.action_shape: tuple[int, ...] = self.action_space.shape
        self.gamma = gamma
        self.obs_rms = RunningMeanStds(num_runs, self.obs_shape, dtype=np.float32)
        self.return_rms = RunningMeanStds(num_runs, ())
        self.discounted_reward = np.zeros(num_runs)
        self._raw_obs = np.zeros((num_runs, *self.obs_shape), dtype=space.dtype)
        self._rewards = np.zeros(num_runs)
        # RecordEpisodeStatistics's running sums, one per run
        self._episode_returns = np.zeros(num_runs)
        self._episode_lengths = np.zeros(num_runs, dtype=np.int64)
        self.pool = None  # made by reset, which knows the seeds

    def reset(self, seeds: list[int]) -> np.ndarray:
        """A new pool, env r seeded with ``seeds[r]``; the normalised observations, (R, obs_dim)."""
        self.close()
        self.pool = make_pool(self.env_id, list(seeds), **self.task_kwargs)
        obs, info = self.pool.reset()
        self._raw_obs[info["env_id"]] = obs
        self._episode_returns[:], self._episode_lengths[:] = 0.0, 0
        return self._normalize_obs()

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Every env steps once; as ``RunEnvs.step`` (same-step autoreset, episodes by run)."""
        space = self.action_space
        clipped = np.clip(actions, space.low, space.high)  # ClipAction
        obs, reward, terminated, truncated, info = self.pool.step(clipped)
        runs = info["env_id"]  # the order EnvPool returned them in
        self._raw_obs[runs], self._rewards[runs] = obs, reward
        terminations = np.zeros(self.num_runs, dtype=bool)
        truncations = np.zeros(self.num_runs, dtype=bool)
        terminations[runs], truncations[runs] = terminated, truncated
        # RecordEpisodeStatistics: the raw return and length of each episode that ended
        self._episode_returns += self._rewards
        self._episode_lengths += 1
        ended = terminations | truncations
        episodes = {
            int(r): (float(self._episode_returns[r]), int(self._episode_lengths[r]))
            for r in np.flatnonzero(ended)
        }
        next_obs = self._normalize_obs()
        # NormalizeReward, as in RunEnvs.step: the discounted return's running variance
        self.discounted_reward = (
            self.discounted_reward * self.gamma * (1 - terminations) + self._rewards
        )
        self.return_rms.update(self.discounted_reward)
        rewards = np.clip(self._rewards / np.sqrt(self.return_rms.var + EPSILON), -CLIP, CLIP)
        if episodes:  # same-step autoreset, where EnvPool would reset on the next step
            ended_ids = np.flatnonzero(ended).astype(np.int32)
            reset_obs, reset_info = self.pool.reset(ended_ids)
            self._raw_obs[reset_info["env_id"]] = reset_obs
            self._episode_returns[ended], self._episode_lengths[ended] = 0.0, 0
            next_obs = np.where(ended[:, None], self._normalize_obs(ended), next_obs)
        return next_obs, rewards, terminations, truncations, episodes

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None


def make_run_envs(backend: str, env_id: str, num_runs: int, gamma: float) -> RunEnvs:
    """The batched runner's envs on ``backend`` (``BACKENDS``), checked by ``check_backend``."""
    if backend == "envpool":
        return EnvPoolRunEnvs(env_id, num_runs, gamma)
    return RunEnvs(env_id, num_runs, gamma)
