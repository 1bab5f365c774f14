"""GAE (eqs. 11-12) against a slow reference loop, and correctness under same-step autoreset."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from common.gae import advantages_and_returns, compute_gae


def reference_gae(rewards, values, next_values, terminal, ends, gamma, lam):
    """The definition, per env and per step in plain Python floats; all inputs are [T][N] lists.

    delta_t = r_t + gamma * V(s_{t+1}) * (1 - term_t) - V(s_t)
    A_t     = delta_t + gamma * lambda * (1 - end_t) * A_{t+1}
    """
    steps, envs = len(rewards), len(rewards[0])
    adv = [[0.0] * envs for _ in range(steps)]
    for e in range(envs):
        next_adv = 0.0
        for t in reversed(range(steps)):
            not_term = 0.0 if terminal[t][e] else 1.0
            not_end = 0.0 if ends[t][e] else 1.0
            delta = float(rewards[t][e]) + gamma * float(next_values[t][e]) * not_term
            delta -= float(values[t][e])
            next_adv = delta + gamma * lam * not_end * next_adv
            adv[t][e] = next_adv
    return adv


def random_rollout(seed: int, steps: int, envs: int):
    """float64 rewards/values and a random mix of terminations and truncations (never both)."""
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(steps, envs, generator=g, dtype=torch.float64)
    values = torch.randn(steps, envs, generator=g, dtype=torch.float64)
    last_value = torch.randn(envs, generator=g, dtype=torch.float64)
    final_values = torch.randn(steps, envs, generator=g, dtype=torch.float64) * 3.0
    terminations = torch.rand(steps, envs, generator=g) < 0.12
    truncations = (torch.rand(steps, envs, generator=g) < 0.12) & ~terminations
    return rewards, values, last_value, final_values, terminations, truncations


def shifted(values: torch.Tensor, last_value: torch.Tensor) -> torch.Tensor:
    """V(s_{t+1}) as the stored rollout gives it: the next row, and last_value after the end."""
    return torch.cat([values[1:], last_value[None]])


GAMMA_LAMBDA = [(0.99, 0.95), (0.99, 0.0), (0.99, 1.0), (0.9, 0.5)]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("steps", "envs"), [(37, 5), (64, 1), (1, 3)])
@pytest.mark.parametrize(("gamma", "lam"), GAMMA_LAMBDA)
def test_compute_gae_matches_reference(seed, steps, envs, gamma, lam):
    rewards, values, _, _, terminations, truncations = random_rollout(seed, steps, envs)
    next_values = torch.randn(steps, envs, generator=torch.Generator().manual_seed(seed + 100))
    next_values = next_values.double()
    ends = terminations | truncations  # truncations only cut the sum; terminations also mask
    if steps * envs > 100:  # the mix really contains both kinds of episode end
        assert terminations.any() and truncations.any()
    adv, returns = compute_gae(rewards, values, next_values, terminations, ends, gamma, lam)
    expected = reference_gae(
        rewards.tolist(), values.tolist(), next_values.tolist(),
        terminations.tolist(), ends.tolist(), gamma, lam,
    )  # fmt: skip
    assert adv.dtype == torch.float64 and adv.shape == (steps, envs)
    assert torch.allclose(adv, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-10)
    assert torch.allclose(returns, adv + values, rtol=0, atol=1e-12)


def test_compute_gae_lambda_zero_is_one_step_td_error():
    rewards, values, last, _, term, trunc = random_rollout(5, 37, 5)
    next_values = shifted(values, last)
    adv, _ = compute_gae(rewards, values, next_values, term, term | trunc, 0.99, 0.0)
    td = rewards + 0.99 * next_values * (~term).double() - values
    assert torch.allclose(adv, td, rtol=0, atol=1e-12)


def test_compute_gae_lambda_one_no_ends_is_discounted_return_minus_value():
    rewards, values, last, *_ = random_rollout(6, 37, 5)
    never = torch.zeros(37, 5, dtype=torch.bool)
    gamma = 0.97
    adv, returns = compute_gae(rewards, values, shifted(values, last), never, never, gamma, 1.0)
    # Monte-Carlo return bootstrapped by V after the last step, computed as a forward sum.
    for e in range(5):
        for t in range(37):
            g = sum(gamma ** (k - t) * rewards[k, e].item() for k in range(t, 37))
            g += gamma ** (37 - t) * last[e].item()
            assert returns[t, e].item() == pytest.approx(g, abs=1e-9)
            assert adv[t, e].item() == pytest.approx(g - values[t, e].item(), abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("gamma", "lam"), GAMMA_LAMBDA)
def test_advantages_and_returns_matches_reference_in_both_modes(seed, gamma, lam):
    rewards, values, last, finals, term, trunc = random_rollout(seed, 37, 5)
    ends = term | trunc
    next_values = shifted(values, last)
    # Without final values: a truncation is a termination (no bootstrap, sum cut).
    adv, ret = advantages_and_returns(rewards, values, last, term, trunc, None, gamma, lam)
    expected = reference_gae(
        rewards.tolist(), values.tolist(), next_values.tolist(), ends.tolist(), ends.tolist(),
        gamma, lam,
    )  # fmt: skip
    assert torch.allclose(adv, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-10)
    assert torch.allclose(ret, adv + values, rtol=0, atol=1e-12)
    # With final values: a truncated step bootstraps V(final obs), the sum is still cut there.
    adv, ret = advantages_and_returns(rewards, values, last, term, trunc, finals, gamma, lam)
    boot = torch.where(trunc, finals, next_values)
    expected = reference_gae(
        rewards.tolist(), values.tolist(), boot.tolist(), term.tolist(), ends.tolist(),
        gamma, lam,
    )  # fmt: skip
    assert torch.allclose(adv, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-10)
    assert torch.allclose(ret, adv + values, rtol=0, atol=1e-12)


def test_truncation_without_final_values_is_exactly_a_termination():
    rewards, values, last, _, term, trunc = random_rollout(7, 37, 5)
    assert trunc.any()
    as_given = advantages_and_returns(rewards, values, last, term, trunc, None, 0.99, 0.95)
    all_term = advantages_and_returns(
        rewards, values, last, term | trunc, torch.zeros_like(trunc), None, 0.99, 0.95
    )
    assert torch.equal(as_given[0], all_term[0]) and torch.equal(as_given[1], all_term[1])


def hand_example():
    # One env, 3 steps, the episode truncated at step 1 (a new episode starts at step 2).
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[10.0], [20.0], [30.0]])
    last_value = torch.tensor([40.0])
    term = torch.zeros(3, 1, dtype=torch.bool)
    trunc = torch.tensor([[False], [True], [False]])
    final_values = torch.tensor([[-999.0], [100.0], [-999.0]])  # only the truncated entry counts
    return rewards, values, last_value, term, trunc, final_values


def test_truncation_bootstraps_from_final_value_by_hand():
    rewards, values, last_value, term, trunc, final_values = hand_example()
    adv, ret = advantages_and_returns(
        rewards, values, last_value, term, trunc, final_values, 0.5, 0.5
    )
    # gamma = lambda = 0.5, so gamma * lambda = 0.25.
    # t=2: delta = 3 + 0.5*40  - 30 = -7                 A2 = -7
    # t=1: delta = 2 + 0.5*100 - 20 = 32 (V(final obs))  A1 = 32        (cut: A2 not added)
    # t=0: delta = 1 + 0.5*20  - 10 = 1                  A0 = 1 + 0.25*32 = 9
    assert adv.squeeze(1).tolist() == pytest.approx([9.0, 32.0, -7.0])
    assert ret.squeeze(1).tolist() == pytest.approx([19.0, 52.0, 23.0])


def test_truncation_without_final_values_by_hand():
    rewards, values, last_value, term, trunc, _ = hand_example()
    adv, ret = advantages_and_returns(rewards, values, last_value, term, trunc, None, 0.5, 0.5)
    # t=2: delta = 3 + 0.5*40 - 30 = -7        A2 = -7
    # t=1: delta = 2 + 0 - 20 = -18 (no boot)  A1 = -18       (cut)
    # t=0: delta = 1 + 0.5*20 - 10 = 1         A0 = 1 + 0.25*(-18) = -3.5
    assert adv.squeeze(1).tolist() == pytest.approx([-3.5, -18.0, -7.0])
    assert ret.squeeze(1).tolist() == pytest.approx([6.5, 2.0, 23.0])


@pytest.mark.parametrize("bootstrap", [True, False])
def test_nothing_leaks_back_across_an_episode_end(bootstrap):
    g = torch.Generator().manual_seed(4)
    rewards = torch.randn(12, 3, generator=g, dtype=torch.float64)
    values = torch.randn(12, 3, generator=g, dtype=torch.float64)
    last = torch.randn(3, generator=g, dtype=torch.float64)
    finals = torch.randn(12, 3, generator=g, dtype=torch.float64)
    term = torch.zeros(12, 3, dtype=torch.bool)
    trunc = torch.zeros_like(term)
    term[4, 0] = True  # env 0 terminates at step 4
    trunc[6, 1] = True  # env 1 is truncated at step 6
    # env 2 never ends: the control, where everything downstream does matter.
    fv = finals if bootstrap else None
    before, _ = advantages_and_returns(rewards, values, last, term, trunc, fv, 0.99, 0.95)
    rewards, values = rewards.clone(), values.clone()
    rewards[5:, 0] += 100.0
    values[5:, 0] -= 7.0
    rewards[7:, 1] -= 100.0
    values[7:, 1] += 5.0
    rewards[7:, 2] += 1.0
    after, _ = advantages_and_returns(rewards, values, last, term, trunc, fv, 0.99, 0.95)
    assert torch.equal(before[:5, 0], after[:5, 0])
    assert torch.equal(before[:7, 1], after[:7, 1])
    # The perturbation was real: later advantages, and the never-ending env's early ones, moved.
    assert not torch.allclose(before[5:, 0], after[5:, 0])
    assert not torch.allclose(before[7:, 1], after[7:, 1])
    assert not torch.allclose(before[:7, 2], after[:7, 2])


# ---------------------------------------------------------------------------------------------
# End to end: a real gymnasium vector env with same-step autoreset, collected like the trainers.


class CounterEnv(gym.Env):
    """obs = steps taken in this episode; reward 1 + obs after the step (distinct per step).

    Episode j terminates after ``term_lengths[j % len(term_lengths)]`` steps. The env records each
    episode's true length as it runs, independently of what the vector env reports.
    """

    def __init__(self, term_lengths: tuple[int, ...]) -> None:
        self.term_lengths = term_lengths
        self.observation_space = gym.spaces.Box(0, 1000, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t, self.episode = 0, -1
        self.true_lengths: list[int] = []  # lengths of every episode begun, the current one last
        self.steps_taken = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.episode = 0, self.episode + 1
        self.true_lengths.append(0)
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        self.steps_taken += 1
        self.true_lengths[-1] = self.t
        terminated = self.t >= self.term_lengths[self.episode % len(self.term_lengths)]
        return np.array([float(self.t)], np.float32), 1.0 + self.t, terminated, False, {}


def value_fn(obs):
    """A known, non-linear V(s) of the counter observation."""
    return 1.0 + 0.5 * obs - 0.03 * obs**2


def collect(steps: int):
    """The rollout loop of ppo_continuous/train.py: obs before each step, reward, both flags."""
    envs = gym.vector.SyncVectorEnv(
        [
            lambda: CounterEnv((3,)),  # terminates every 3 steps
            lambda: CounterEnv((5,)),  # terminates every 5 steps
            # terminates after 5, then 2, then would after 9 but the time limit truncates at 6
            lambda: gym.wrappers.TimeLimit(CounterEnv((5, 2, 9)), max_episode_steps=6),
        ],
        autoreset_mode=AutoresetMode.SAME_STEP,
    )
    n = envs.num_envs
    obs_rows, rewards, terms, truncs = [], [], [], []
    final_obs = np.zeros((steps, n))
    next_obs, _ = envs.reset(seed=0)
    for step in range(steps):
        obs_rows.append(next_obs[:, 0].astype(np.float64))
        next_obs, reward, terminated, truncated, info = envs.step(np.zeros(n, dtype=np.int64))
        rewards.append(reward)
        terms.append(terminated)
        truncs.append(truncated)
        if "final_info" in info:
            for i in np.flatnonzero(truncated):
                final_obs[step, i] = info["final_obs"][i][0]
    inner = [env.unwrapped for env in envs.envs]
    envs.close()
    as_tensor = lambda x: torch.tensor(np.array(x))  # noqa: E731
    return (
        as_tensor(obs_rows).double(),
        as_tensor(rewards).double(),
        as_tensor(terms).bool(),
        as_tensor(truncs).bool(),
        torch.tensor(final_obs, dtype=torch.float64),
        torch.tensor(next_obs[:, 0], dtype=torch.float64),
        inner,
    )


def split_episodes(term, trunc, env):
    """(start, stop, how) per episode of one env's column; how is term, trunc or running."""
    episodes, start = [], 0
    for t in range(term.shape[0]):
        if term[t, env] or trunc[t, env]:
            episodes.append((start, t + 1, "term" if term[t, env] else "trunc"))
            start = t + 1
    if start < term.shape[0]:
        episodes.append((start, term.shape[0], "running"))
    return episodes


@pytest.mark.parametrize("bootstrap", [True, False])
def test_same_step_autoreset_rollout_equals_gae_per_true_episode(bootstrap):
    gamma, lam, steps = 0.9, 0.8, 29
    obs, rewards, term, trunc, final_obs, last_obs, inner = collect(steps)
    assert term[:, 2].any() and trunc[:, 2].any()  # env 2 really mixes both kinds of end

    values = value_fn(obs)
    final_values = value_fn(final_obs) if bootstrap else None
    adv, ret = advantages_and_returns(
        rewards, values, value_fn(last_obs), term, trunc, final_values, gamma, lam
    )
    assert torch.allclose(ret, adv + values)

    expected_kinds = {
        0: ["term"] * 9 + ["running"],  # 9 * 3 = 27 steps, then 2 of the 10th episode
        1: ["term"] * 5 + ["running"],  # 5 * 5 = 25, then 4
        2: ["term", "term", "trunc"] * 2 + ["running"],  # (5 + 2 + 6) * 2 = 26, then 3
    }
    for env in range(3):
        episodes = split_episodes(term, trunc, env)
        assert [how for _, _, how in episodes] == expected_kinds[env]
        # Every stored transition is one real env step: as many as the env took, and each
        # episode holds exactly its true number of transitions (no dummy reset steps).
        assert inner[env].steps_taken == steps
        assert [b - a for a, b, _ in episodes] == inner[env].true_lengths
        for a, b, how in episodes:
            length = b - a
            # The stored observations are the episode's own states 0..L-1 in order.
            assert obs[a:b, env].tolist() == [float(i) for i in range(length)]
            assert rewards[a:b, env].tolist() == [1.0 + i for i in range(1, length + 1)]
            # The reference on this episode alone; its true next states are 1..L, and the last
            # step's next state L is the final obs (term/trunc) or the obs after the rollout.
            ends_here = how != "running"
            terminal = how == "term" or (how == "trunc" and not bootstrap)
            ref = reference_gae(
                [[r] for r in rewards[a:b, env].tolist()],
                [[value_fn(float(i))] for i in range(length)],
                [[value_fn(float(i + 1))] for i in range(length)],
                [[False]] * (length - 1) + [[terminal]],
                [[False]] * (length - 1) + [[ends_here]],
                gamma,
                lam,
            )
            assert adv[a:b, env].tolist() == pytest.approx([row[0] for row in ref], abs=1e-10)
