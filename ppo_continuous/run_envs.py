"""One env per run, stepped together, with the single trainer's normalisations done for all at once.

The single trainer wraps its env in gymnasium's ``NormalizeObservation``, a clip to +-10,
``NormalizeReward(gamma)`` and another clip (``train.make_envs``), inside a ``SyncVectorEnv``. Run
R times in one process, those wrappers (each a Python call and a handful of NumPy operations on
one small array per step) cost about as much as the MuJoCo env under them. ``RunEnvs`` keeps the
inner wrappers per env (``RecordEpisodeStatistics``, ``ClipAction``) and computes the four outer
ones for all R runs in one pass of array operations: the same formulas as gymnasium's
``RunningMeanStd`` (Chan et al.'s parallel update) in the same floating-point types, applied at
the same moments (every step, and again on the reset observation when an episode ends, as the
same-step autoreset does), so each run sees exactly the numbers its own wrapper stack would give.
``tests/test_batched.py`` checks that, number for number, against ``train.make_envs``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers.utils import RunningMeanStd

from common.runtime import route_mujoco_warnings

EPSILON = 1e-8  # NormalizeObservation's and NormalizeReward's default epsilon
CLIP = 10.0  # train.clip_10


class OneSampleRunningMeanStd(RunningMeanStd):
    """gymnasium's ``RunningMeanStd`` with the same statistics and formulas, faster on one sample.

    ``NormalizeObservation`` and ``NormalizeReward`` update their statistics with a batch of one
    sample on every step, and most of that update's time goes to ``np.mean`` and ``np.var``
    (generic reductions, each tens of microseconds of Python). A batch of one needs neither: its
    mean is the sample and its variance zero, both exactly, so the result is bit for bit the same.
    """

    @classmethod
    def replacing(cls, stats: RunningMeanStd) -> OneSampleRunningMeanStd:
        """A copy of ``stats`` (a wrapper's fresh statistics) to put in its place."""
        fast = cls(shape=stats.mean.shape, dtype=stats.mean.dtype)
        fast.mean, fast.var, fast.count = stats.mean, stats.var, stats.count
        return fast

    def update(self, x: np.ndarray) -> None:
        if len(x) != 1:
            super().update(x)
            return
        # update_mean_var_count_from_moments(mean, var, count, x[0], 0, 1), its terms in its order,
        # less those that are exact no-ops with a batch of one: times 1, plus a zero variance.
        delta = x[0] - self.mean
        tot_count = self.count + 1
        self.mean = self.mean + delta / tot_count
        self.var = (self.var * self.count + np.square(delta) * self.count / tot_count) / tot_count
        self.count = tot_count


class RunningMeanStds:
    """R of gymnasium's ``RunningMeanStd``, one row each; ``update`` takes one sample per run."""

    def __init__(self, num_runs: int, shape: tuple[int, ...], dtype: Any = np.float64) -> None:
        self.mean = np.zeros((num_runs, *shape), dtype=dtype)
        self.var = np.ones((num_runs, *shape), dtype=dtype)
        self.count = np.full(num_runs, 1e-4)  # RunningMeanStd's epsilon, a Python float there

    def update(self, x: np.ndarray, which: np.ndarray | None = None) -> None:
        """``update_mean_var_count_from_moments`` with a batch of one sample (mean x, var 0), for
        the runs in ``which`` (all by default)."""
        # gymnasium's count is a Python float, which takes the type of the array it meets
        # (NumPy's NEP 50): ``typed`` reproduces that, so float32 statistics stay float32.
        count = self.count.reshape(-1, *([1] * (self.mean.ndim - 1)))
        tot_count = count + 1

        def typed(value: np.ndarray, like: np.ndarray) -> np.ndarray:
            return value.astype(like.dtype)

        delta = x - self.mean
        new_mean = self.mean + typed(delta * 1 / typed(tot_count, delta), delta)
        m_a = self.var * typed(count, self.var)
        m_b = np.zeros(x.shape, dtype=x.dtype) * 1  # np.var of one sample
        scaled = np.square(delta) * typed(count, delta) * 1 / typed(tot_count, delta)
        m2 = m_a + m_b + scaled
        new_var = m2 / typed(tot_count, m2)
        if which is None:
            self.mean, self.var, self.count = new_mean, new_var, self.count + 1
            return
        rows = which.reshape(count.shape)
        self.mean = np.where(rows, new_mean, self.mean)
        self.var = np.where(rows, new_var, self.var)
        self.count = np.where(which, self.count + 1, self.count)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.var = np.asarray(state["mean"]), np.asarray(state["var"])
        self.count = np.asarray(state["count"], dtype=np.float64)


class RunEnvs:
    """R envs of ``env_id``, env r for run r, with same-step autoreset (as ``train.make_envs``).

    It answers ``reset`` and ``step`` as gymnasium's ``SyncVectorEnv`` does, so the trainer's own
    ``train.Rollout`` steps it."""

    def __init__(
        self, env_id: str, num_runs: int, gamma: float, obs_clip: float = CLIP,
        norm_reward: bool = True,
    ) -> None:  # fmt: skip
        route_mujoco_warnings()  # no MUJOCO_LOG.TXT; each distinct warning once
        # The trainer's stack from the inside out: RecordEpisodeStatistics, then ClipAction.
        self.envs = [
            gym.wrappers.ClipAction(gym.wrappers.RecordEpisodeStatistics(gym.make(env_id)))
            for _ in range(num_runs)
        ]
        self._set_up(self.envs[0].observation_space, self.envs[0].action_space, num_runs,
                     gamma, obs_clip, norm_reward)  # fmt: skip

    def _set_up(
        self, space: gym.Space, action_space: gym.Space, num_runs: int, gamma: float,
        obs_clip: float, norm_reward: bool,
    ) -> None:  # fmt: skip
        """The spaces, the normalisers' statistics and the step buffers, for R runs of one task."""
        self.single_observation_space, self.single_action_space = space, action_space
        self.obs_shape: tuple[int, ...] = space.shape
        self.action_shape: tuple[int, ...] = action_space.shape
        self.gamma, self.obs_clip, self.norm_reward = gamma, obs_clip, norm_reward
        # NormalizeObservation keeps float32 statistics (its observation space's type) until the
        # first float64 observation promotes them; NormalizeReward's are float64.
        self.obs_rms = RunningMeanStds(num_runs, self.obs_shape, dtype=np.float32)
        self.return_rms = RunningMeanStds(num_runs, ())
        self.discounted_reward = np.zeros(num_runs)
        self._raw_obs = np.zeros((num_runs, *self.obs_shape), dtype=space.dtype)
        self._rewards = np.zeros(num_runs)

    def _normalize_obs(self, which: np.ndarray | None = None) -> np.ndarray:
        """NormalizeObservation.observation then the clip, for the runs in ``which``."""
        self.obs_rms.update(self._raw_obs, which)
        normalized = np.float32(
            (self._raw_obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + EPSILON)
        )
        return np.clip(normalized, -self.obs_clip, self.obs_clip)

    def reset(self, seed: list[int]) -> tuple[np.ndarray, dict]:
        """Reset env r with ``seed[r]``; the normalised observations, (R, obs_dim) float32."""
        for r, (env, env_seed) in enumerate(zip(self.envs, seed, strict=True)):
            self._raw_obs[r] = env.reset(seed=env_seed)[0]
        return self._normalize_obs(), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Step every env; returns (obs, rewards, terminations, truncations, info).

        Where an episode ended, ``info["final_info"]`` holds its return and length (from
        RecordEpisodeStatistics) as ``SyncVectorEnv`` gives them; its env was reset, and ``obs``
        holds the new episode's first observation, as in ``train.make_envs``.
        """
        num_runs = len(self.envs)
        terminations = np.zeros(num_runs, dtype=bool)
        truncations = np.zeros(num_runs, dtype=bool)
        episodes = {}
        for r, env in enumerate(self.envs):
            obs, reward, terminated, truncated, info = env.step(actions[r])
            self._raw_obs[r], self._rewards[r] = obs, float(reward)
            terminations[r], truncations[r] = terminated, truncated
            if terminated or truncated:
                episodes[r] = (float(info["episode"]["r"]), int(info["episode"]["l"]))
        next_obs = self._normalize_obs()
        rewards = self._scaled_rewards(terminations) if self.norm_reward else self._rewards.copy()
        if episodes:  # same-step autoreset: the reset observation also updates the statistics
            ended = np.zeros(num_runs, dtype=bool)
            for r in episodes:
                self._raw_obs[r] = self.envs[r].reset()[0]
                ended[r] = True
            next_obs = np.where(ended[:, None], self._normalize_obs(ended), next_obs)
        return next_obs, rewards, terminations, truncations, final_info(episodes, num_runs)

    def _scaled_rewards(self, terminations: np.ndarray) -> np.ndarray:
        """NormalizeReward: the discounted return's running variance scales the reward."""
        self.discounted_reward = (
            self.discounted_reward * self.gamma * (1 - terminations) + self._rewards
        )
        self.return_rms.update(self.discounted_reward)
        return np.clip(self._rewards / np.sqrt(self.return_rms.var + EPSILON), -CLIP, CLIP)

    def state_dict(self) -> dict[str, Any]:
        stats = {"obs_rms": self.obs_rms.state_dict(), "discounted_reward": self.discounted_reward}
        if self.norm_reward:  # as the trainer's normalisers: no return statistics without it
            stats["return_rms"] = self.return_rms.state_dict()
        return stats

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.obs_rms.load_state_dict(state["obs_rms"])
        if "return_rms" in state:
            self.return_rms.load_state_dict(state["return_rms"])
        self.discounted_reward = np.asarray(state["discounted_reward"], dtype=np.float64)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def final_info(episodes: dict[int, tuple[float, int]], num_envs: int) -> dict:
    """``SyncVectorEnv``'s info for the envs whose episode ended: (return, length) by env."""
    if not episodes:
        return {}
    ended = np.zeros(num_envs, dtype=bool)
    returns, lengths = np.zeros(num_envs), np.zeros(num_envs, dtype=np.int64)
    for r, (episode_return, length) in episodes.items():
        ended[r], returns[r], lengths[r] = True, episode_return, length
    return {"final_info": {"episode": {"r": returns, "l": lengths}, "_episode": ended}}
