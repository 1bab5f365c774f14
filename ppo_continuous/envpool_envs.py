"""EnvPool's C++ MuJoCo tasks as the continuous runners' envs (``--env-backend envpool``).

gymnasium's MuJoCo envs spend about two thirds of their time in Python around ``mj_step``
(``step``, ``_get_obs``, the reward terms, the wrappers). EnvPool (``pip install envpool``) ships
the same ``-v5`` tasks in C++ and steps a batch of them in one call. ``EnvPoolRunEnvs`` is
``run_envs.RunEnvs`` with its R gymnasium envs replaced by one pool of R envs: the same interface
(``reset(seed)``, ``step(actions)`` giving (obs, rewards, terminations, truncations, info),
``state_dict``, ``close``), the same normalisations (``RunEnvs``'s own arrays and formulas), the same
``ClipAction`` and ``RecordEpisodeStatistics`` semantics, and the same same-step autoreset (EnvPool
resets an ended env on its next step; here the ended envs are reset in the step that ended them).
``EnvPoolVectorEnv`` presents them as the single trainer's vector env (``train.make_envs``).

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
from ppo_continuous.run_envs import CLIP, RunEnvs, RunningMeanStds, final_info

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

    def __init__(
        self, env_id: str, num_runs: int, gamma: float, obs_clip: float = CLIP,
        norm_reward: bool = True, **task_kwargs: Any,
    ) -> None:  # fmt: skip
        import envpool

        spec = envpool.make_spec(env_id, **task_kwargs)
        space = spec.gymnasium_observation_space
        self.env_id, self.num_runs, self.task_kwargs = env_id, num_runs, task_kwargs
        self.action_space = spec.gymnasium_action_space
        self._set_up(space, self.action_space, num_runs, gamma, obs_clip, norm_reward)
        # RecordEpisodeStatistics's running sums, one per run
        self._episode_returns = np.zeros(num_runs)
        self._episode_lengths = np.zeros(num_runs, dtype=np.int64)
        self.pool = None  # made by reset, which knows the seeds

    def reset(self, seed: list[int]) -> tuple[np.ndarray, dict]:
        """A new pool, env r seeded with ``seed[r]``; the normalised observations, (R, obs_dim)."""
        self.close()
        self.pool = make_pool(self.env_id, list(seed), **self.task_kwargs)
        obs, info = self.pool.reset()
        self._raw_obs[info["env_id"]] = obs
        self._episode_returns[:], self._episode_lengths[:] = 0.0, 0
        return self._normalize_obs(), {}

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
        # NormalizeReward (unless --no-norm-reward), as in RunEnvs.step
        rewards = self._scaled_rewards(terminations) if self.norm_reward else self._rewards.copy()
        self.final_obs = next_obs  # an ended episode's last (normalised) observation, for bootstrap
        if episodes:  # same-step autoreset, where EnvPool would reset on the next step
            ended_ids = np.flatnonzero(ended).astype(np.int32)
            reset_obs, reset_info = self.pool.reset(ended_ids)
            self._raw_obs[reset_info["env_id"]] = reset_obs
            self._episode_returns[ended], self._episode_lengths[ended] = 0.0, 0
            next_obs = np.where(ended[:, None], self._normalize_obs(ended), next_obs)
        info = final_info(episodes, self.num_runs)
        if info:
            info["final_obs"] = self.final_obs
        return next_obs, rewards, terminations, truncations, info

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None


class RunningStatsRow:
    """Row ``row`` of a ``RunningMeanStds``, read and written as one gymnasium ``RunningMeanStd``
    (``mean``, ``var``, ``count``): what ``train.normalizers`` gives the checkpoints for env i."""

    def __init__(self, stats: RunningMeanStds, row: int) -> None:
        self.stats, self.row = stats, row

    def _get(self, name: str) -> Any:
        return getattr(self.stats, name)[self.row]

    def _set(self, name: str, value: Any) -> None:
        # A restored statistic is float64, as gymnasium's becomes: promote the whole array.
        column = getattr(self.stats, name).astype(np.float64)
        column[self.row] = value
        setattr(self.stats, name, column)

    mean = property(lambda self: self._get("mean"), lambda self, v: self._set("mean", v))
    var = property(lambda self: self._get("var"), lambda self, v: self._set("var", v))
    count = property(lambda self: self._get("count"), lambda self, v: self._set("count", v))


class EnvView:
    """Env i of an ``EnvPoolVectorEnv`` as ``train.normalizers`` reads a wrapped env."""

    def __init__(self, run_envs: EnvPoolRunEnvs, index: int) -> None:
        self.stats = {"obs_rms": RunningStatsRow(run_envs.obs_rms, index)}
        if run_envs.norm_reward:  # as the trainer's normalisers: none without reward scaling
            self.stats["return_rms"] = RunningStatsRow(run_envs.return_rms, index)

    def has_wrapper_attr(self, name: str) -> bool:
        return name in self.stats

    def get_wrapper_attr(self, name: str) -> Any:
        return self.stats[name]


class EnvPoolVectorEnv:
    """``EnvPoolRunEnvs`` as the single trainer's vector env (``train.make_envs``): its ``reset``
    and ``step``, same-step autoreset with ``final_info`` and ``final_obs``, and its numbers."""

    def __init__(
        self, env_id: str, num_envs: int, gamma: float, obs_clip: float = CLIP,
        norm_reward: bool = True, **task_kwargs: Any,
    ) -> None:  # fmt: skip
        self.run_envs = EnvPoolRunEnvs(
            env_id, num_envs, gamma, obs_clip, norm_reward, **task_kwargs
        )
        self.num_envs = num_envs
        self.single_observation_space = self._space(self.run_envs.obs_shape)
        self.single_action_space = self.run_envs.action_space
        self.envs = [EnvView(self.run_envs, i) for i in range(num_envs)]

    @staticmethod
    def _space(shape: tuple[int, ...]) -> Any:
        import gymnasium as gym

        return gym.spaces.Box(-np.inf, np.inf, shape, np.float64)

    def reset(self, seed: int) -> tuple[np.ndarray, dict]:
        """Env i reset with ``seed + i``, as ``SyncVectorEnv`` seeds them."""
        return self.run_envs.reset([seed + i for i in range(self.num_envs)])

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        return self.run_envs.step(actions)  # SyncVectorEnv's info: final_info and final_obs

    def close(self) -> None:
        self.run_envs.close()


def make_run_envs(
    backend: str, env_id: str, num_runs: int, gamma: float, obs_clip: float = CLIP,
    norm_reward: bool = True,
) -> RunEnvs:  # fmt: skip
    """The batched runner's envs on ``backend`` (``BACKENDS``), checked by ``check_backend``."""
    if backend == "envpool":
        return EnvPoolRunEnvs(env_id, num_runs, gamma, obs_clip, norm_reward)
    return RunEnvs(env_id, num_runs, gamma, obs_clip, norm_reward)
