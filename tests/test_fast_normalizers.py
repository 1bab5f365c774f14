"""The continuous trainer's faster normalisation statistics give gymnasium's numbers, bit for bit.

``make_envs`` swaps the statistics inside gymnasium's ``NormalizeObservation`` and
``NormalizeReward`` for ``OneSampleRunningMeanStd``, which skips ``np.mean`` and ``np.var`` on a
batch of one sample. A speed change must not change learning: these tests hold it to the same
numbers as the unmodified wrappers.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers.utils import RunningMeanStd

from ppo_continuous import train
from ppo_continuous.run_envs import OneSampleRunningMeanStd


@pytest.mark.parametrize(
    ("stats_dtype", "sample_dtype"),
    [(np.float64, np.float64), (np.float32, np.float32), (np.float32, np.float64)],
)
def test_one_sample_updates_equal_gymnasiums(stats_dtype, sample_dtype):
    """The same mean, variance, count and types after many one-sample updates, including the
    float32-statistics-meet-float64-sample promotion NormalizeObservation goes through."""
    reference = RunningMeanStd(shape=(5,), dtype=stats_dtype)
    fast = OneSampleRunningMeanStd.replacing(RunningMeanStd(shape=(5,), dtype=stats_dtype))
    rng = np.random.default_rng(3)
    for _ in range(300):
        sample = (rng.normal(size=(1, 5)) * rng.uniform(0.1, 50)).astype(sample_dtype)
        reference.update(sample)
        fast.update(sample)
        assert np.array_equal(fast.mean, reference.mean) and fast.mean.dtype == reference.mean.dtype
        assert np.array_equal(fast.var, reference.var) and fast.var.dtype == reference.var.dtype
        assert fast.count == reference.count


def test_batches_of_several_samples_take_gymnasiums_update():
    reference, fast = RunningMeanStd(shape=(3,)), OneSampleRunningMeanStd(shape=(3,))
    batch = np.random.default_rng(4).normal(size=(7, 3))
    reference.update(batch)
    fast.update(batch)
    assert np.array_equal(fast.mean, reference.mean) and np.array_equal(fast.var, reference.var)
    assert fast.count == reference.count


def gymnasium_stack(env_id: str, num_envs: int, gamma: float) -> gym.vector.SyncVectorEnv:
    """The trainer's wrapper stack as gymnasium ships it, without the faster statistics."""

    def one() -> gym.Env:
        env = gym.wrappers.ClipAction(gym.wrappers.RecordEpisodeStatistics(gym.make(env_id)))
        env = gym.wrappers.NormalizeObservation(env)
        env = gym.wrappers.TransformObservation(env, train.clip_10, env.observation_space)
        env = gym.wrappers.NormalizeReward(env, gamma=gamma)
        return gym.wrappers.TransformReward(env, train.clip_10)

    return gym.vector.SyncVectorEnv(
        [one for _ in range(num_envs)], autoreset_mode=AutoresetMode.SAME_STEP
    )


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Pendulum-v1"])
def test_trainer_envs_give_the_unmodified_wrappers_numbers(env_id):
    """Observations, rewards, ends, final observations and saved statistics, bit for bit, over
    Hopper's terminations (float64 observations) and Pendulum's truncations (float32)."""
    num, gamma, seeds = 2, 0.99, [5, 9]
    reference = gymnasium_stack(env_id, num, gamma)
    envs = train.make_envs(train.Args(env_id=env_id, num_envs=num, gamma=gamma))
    assert np.array_equal(reference.reset(seed=seeds)[0], envs.reset(seed=seeds)[0])
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(450):
        actions = rng.normal(size=(num, *envs.single_action_space.shape)) * 2
        want, got = reference.step(actions), envs.step(actions)
        for w, g in zip(want[:4], got[:4], strict=True):
            assert np.array_equal(w, g) and w.dtype == g.dtype
        if "final_obs" in want[4]:
            ends += 1
            for i in np.flatnonzero(want[4]["_final_obs"]):
                assert np.array_equal(want[4]["final_obs"][i], got[4]["final_obs"][i])
    assert ends >= 2
    saved = train.normalizers(envs)
    for i, env in enumerate(reference.envs):
        for name in ("obs_rms", "return_rms"):
            stats = env.get_wrapper_attr(name)
            assert isinstance(saved[f"{name}_{i}"], OneSampleRunningMeanStd)
            assert np.array_equal(saved[f"{name}_{i}"].mean, stats.mean)
            assert np.array_equal(saved[f"{name}_{i}"].var, stats.var)
            assert saved[f"{name}_{i}"].count == stats.count
