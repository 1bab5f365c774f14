"""GAE (eqs. 11-12) against a slow reference loop, and correctness under same-step autoreset."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from common.gae import advantages_and_returns, compute_gae


def reference_gae(rewards, values, next_values, terminal, ends, gamma, lam):
    """Per env, per step, in plain floats: the definition, nothing clever."""
    steps, envs = len(rewards), len(rewards[0])
    adv = [[0.0] * envs for _ in range(steps)]
    for e in range(envs):
        running = 0.0
        for t in reversed(range(steps)):
            bootstrap = 0.0 if terminal[t][e] else next_values[t][e]
            delta = rewards[t][e] + gamma * bootstrap - values[t][e]
            running = delta + gamma * lam * (0.0 if ends[t][e] else running)
            adv[t][e] = running
    return adv


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("gamma", "lam"), [(0.99, 0.95), (0.9, 0.0), (0.97, 1.0)])
def test_compute_gae_matches_reference(seed, gamma, lam):
    g = torch.Generator().manual_seed(seed)
    steps, envs = 37, 5
    rewards, values, next_values = (
        torch.randn(steps, envs, generator=g, dtype=torch.float64) for _ in range(3)
    )
    terminations = torch.rand(steps, envs, generator=g) < 0.1
    truncations = (torch.rand(steps, envs, generator=g) < 0.1) & ~terminations
    ends = terminations | truncations
    adv, returns = compute_gae(rewards, values, next_values, terminations, ends, gamma, lam)
    expected = reference_gae(rewards.tolist(), values.tolist(), next_values.tolist(),
                             terminations.tolist(), ends.tolist(), gamma, lam)  # fmt: skip
    assert torch.allclose(adv, torch.tensor(expected, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(returns, adv + values)


def test_truncation_without_final_values_is_a_termination():
    g = torch.Generator().manual_seed(3)
    rewards, values = torch.randn(20, 3, generator=g), torch.randn(20, 3, generator=g)
    last = torch.randn(3, generator=g)
    term = torch.zeros(20, 3, dtype=torch.bool)
    trunc = torch.zeros(20, 3, dtype=torch.bool)
    trunc[7, 1] = True
    as_trunc = advantages_and_returns(rewards, values, last, term, trunc, None, 0.99, 0.95)
    as_term = advantages_and_returns(rewards, values, last, trunc, term, None, 0.99, 0.95)
    assert torch.equal(as_trunc[0], as_term[0])


def test_truncation_bootstraps_from_final_value_by_hand():
    # One env, 3 steps, the episode truncated at step 1; gamma = 0.5, lambda = 0.5.
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[10.0], [20.0], [30.0]])
    last_value = torch.tensor([40.0])
    term = torch.zeros(3, 1, dtype=torch.bool)
    trunc = torch.tensor([[False], [True], [False]])
    final_values = torch.tensor([[0.0], [100.0], [0.0]])  # V(final obs) at the truncation
    adv, _ = advantages_and_returns(
        rewards, values, last_value, term, trunc, final_values, 0.5, 0.5
    )
    # t=2: delta = 3 + 0.5*40 - 30 = -7;                      A2 = -7
    # t=1: delta = 2 + 0.5*100 - 20 = 32 (bootstrap V(final)); A1 = 32 (cut: A2 not added)
    # t=0: delta = 1 + 0.5*20 - 10 = 1;                       A0 = 1 + 0.25*32 = 9
    assert adv.squeeze(1).tolist() == pytest.approx([9.0, 32.0, -7.0])


def test_nothing_leaks_across_an_episode_end():
    g = torch.Generator().manual_seed(4)
    rewards, values = torch.randn(10, 2, generator=g), torch.randn(10, 2, generator=g)
    last = torch.randn(2, generator=g)
    term = torch.zeros(10, 2, dtype=torch.bool)
    term[4, 0] = True
    trunc = torch.zeros_like(term)
    trunc[6, 1] = True
    finals = torch.randn(10, 2, generator=g)
    before = advantages_and_returns(rewards, values, last, term, trunc, finals, 0.99, 0.95)[0]
    rewards[5:, 0] += 100.0  # after env 0's termination
    rewards[7:, 1] -= 100.0  # after env 1's truncation
    values[7:, 1] += 5.0
    after = advantages_and_returns(rewards, values, last, term, trunc, finals, 0.99, 0.95)[0]
    assert torch.equal(before[:5, 0], after[:5, 0])
    assert torch.equal(before[:7, 1], after[:7, 1])
    assert not torch.equal(before[5:, 0], after[5:, 0])


class CounterEnv(gym.Env):
    """obs = step within the episode; reward 1 + obs; terminates after ``length`` steps."""

    def __init__(self, length: int) -> None:
        self.length, self.t = length, 0
        self.observation_space = gym.spaces.Box(0, 1000, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([float(self.t)], np.float32), 1.0 + self.t, self.t >= self.length, False, {}


def test_same_step_autoreset_rollout_has_no_dummy_steps():
    """A rollout collected as the trainers do it equals GAE computed episode by episode."""
    gamma, lam, steps = 0.9, 0.8, 23
    makers = [
        lambda: CounterEnv(3),
        lambda: gym.wrappers.TimeLimit(CounterEnv(50), max_episode_steps=5),
    ]
    envs = gym.vector.SyncVectorEnv(makers, autoreset_mode=AutoresetMode.SAME_STEP)
    value = lambda obs: 0.5 * obs + 1.0  # noqa: E731 - any known function of the observation
    obs, _ = envs.reset(seed=0)
    rows = {k: [] for k in ("obs", "reward", "term", "trunc", "final")}
    for _ in range(steps):
        rows["obs"].append(obs[:, 0].copy())
        obs, reward, term, trunc, info = envs.step(np.zeros(2, dtype=np.int64))
        final = (
            np.array([info["final_obs"][i][0] if trunc[i] else 0.0 for i in range(2)])
            if "final_obs" in info
            else np.zeros(2)
        )
        for key, val in zip(
            ("reward", "term", "trunc", "final"), (reward, term, trunc, final), strict=True
        ):
            rows[key].append(np.asarray(val, dtype=np.float64))
    t = {k: torch.tensor(np.array(v)) for k, v in rows.items()}
    values = value(t["obs"])
    adv, _ = advantages_and_returns(t["reward"], values, value(torch.tensor(obs[:, 0], dtype=torch.float64)),
                                    t["term"].bool(), t["trunc"].bool(), value(t["final"]), gamma, lam)  # fmt: skip
    for env in range(2):
        # Split env's transitions into true episodes by their observation counter restarting at 0.
        starts = [i for i in range(steps) if t["obs"][i, env] == 0]
        for a, b in zip(starts, [*starts[1:], steps], strict=True):
            episode_obs = t["obs"][a:b, env].tolist()
            assert episode_obs == list(range(b - a))  # every transition is a real step: no dummies
            last_obs = b - a
            finished = b < steps
            ended_by_term = bool(t["term"][b - 1, env]) if finished else False
            next_v = [value(torch.tensor(o + 1.0)).item() for o in episode_obs]
            ref = reference_gae([[r] for r in t["reward"][a:b, env].tolist()], [[value(torch.tensor(o)).item()] for o in episode_obs],
                                [[v] for v in next_v], [[False]] * (last_obs - 1) + [[ended_by_term]],
                                [[False]] * (last_obs - 1) + [[finished]], gamma, lam)  # fmt: skip
            assert adv[a:b, env].tolist() == pytest.approx([r[0] for r in ref])
    # Episode lengths are the envs' true ones: 3 for env 0, 5 (time limit) for env 1.
    assert int(t["term"][:, 0].sum()) == steps // 3 and int(t["trunc"][:, 1].sum()) == steps // 5
