"""The NoFrameskip-v4 semantics on both Atari backends: life loss, whole-game scores, resets."""

from __future__ import annotations

import numpy as np
import pytest

from ppo_atari.envs import BACKENDS, GameTracker, atari_spec, make_atari_envs

NOOP, FIRE = 0, 1


def make(env_id: str, backend: str, num_envs: int = 4, seed: int = 1):
    envs = make_atari_envs(atari_spec(env_id), num_envs, backend, seed, async_gymnasium=False)
    obs, info = envs.reset(seed=seed)
    return envs, obs, info


@pytest.mark.parametrize("backend", BACKENDS)
def test_shapes_and_dtypes(backend):
    envs, obs, info = make("BreakoutNoFrameskip-v4", backend)
    try:
        assert obs.shape == (4, 4, 84, 84) and obs.dtype == np.uint8
        assert envs.single_action_space.n == 4  # minimal action set: NOOP FIRE RIGHT LEFT
        obs, reward, terminated, truncated, info = envs.step(np.full(4, FIRE))
        assert obs.shape == (4, 4, 84, 84) and obs.dtype == np.uint8
        assert reward.shape == terminated.shape == truncated.shape == (4,)
        assert np.asarray(info["lives"]).tolist() == [5, 5, 5, 5]
    finally:
        envs.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_noop_starts_differ_between_envs(backend):
    # 1 to 30 no-op frames at reset (single frames, as in baselines' NoopResetEnv), then FIRE:
    # envs start at different frame numbers.
    envs, _, info = make("BreakoutNoFrameskip-v4", backend, num_envs=8)
    try:
        frames = np.asarray(info["episode_frame_number"])
        assert len(set(frames.tolist())) > 1, frames
        assert frames.min() >= 1 and frames.max() <= 30 + 2 * 4, frames
    finally:
        envs.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_fire_at_reset_launches_the_ball(backend):
    # In Breakout nothing happens until FIRE. Thanks to FIRE at reset, an agent that only ever
    # does NOOP still loses its lives (the ball is in play and the paddle never moves).
    envs, _, info = make("BreakoutNoFrameskip-v4", backend, num_envs=2)
    try:
        start_lives = np.asarray(info["lives"]).copy()
        for _ in range(300):
            _, _, _, _, info = envs.step(np.full(2, NOOP))
            if (np.asarray(info["lives"]) < start_lives).all():
                break
        assert (np.asarray(info["lives"]) < start_lives).all(), info["lives"]
    finally:
        envs.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_life_loss_ends_value_episode_but_not_the_game(backend):
    envs, _, info = make("BreakoutNoFrameskip-v4", backend, num_envs=2)
    games = GameTracker(2)
    games.reset(info)
    rng = np.random.default_rng(0)
    life_losses = game_overs = 0
    try:
        for _ in range(3000):
            lives_before = games.lives.copy()
            frames_before = np.asarray(info["episode_frame_number"]).copy()
            _, reward, terminated, truncated, info = envs.step(rng.integers(0, 4, 2))
            _, value_terminal, finished = games.step(reward, terminated, truncated, info)
            lost = np.asarray(info["lives"]) < lives_before
            for i in np.flatnonzero(lost & ~terminated):
                life_losses += 1
                assert value_terminal[i]  # the value target's episode ends here ...
                assert i not in [f[0] for f in finished]  # ... but the game is not over
                # ... and it goes on: the frame counter keeps counting instead of restarting.
                assert info["episode_frame_number"][i] > frames_before[i]
            game_overs += len(finished)
            for i, _, _ in finished:
                assert value_terminal[i] or truncated[i]
            if game_overs >= 2:
                break
        assert life_losses >= 8 and game_overs >= 2, (life_losses, game_overs)
        # Breakout has 5 lives: each finished game had 4 losses that were not game overs.
    finally:
        envs.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_logged_returns_are_unclipped_whole_games(backend):
    # Space Invaders pays 5 to 30 points per alien, so clipping would be visible.
    envs, _, info = make("SpaceInvadersNoFrameskip-v4", backend, num_envs=2)
    games = GameTracker(2)
    games.reset(info)
    rng = np.random.default_rng(0)
    raw_sum = np.zeros(2)
    finished_games = []
    try:
        for _ in range(5000):
            _, reward, terminated, truncated, info = envs.step(
                rng.integers(0, envs.single_action_space.n, 2)
            )
            clipped, _, finished = games.step(reward, terminated, truncated, info)
            assert set(np.unique(clipped)) <= {-1.0, 0.0, 1.0}
            raw_sum += reward
            for i, game_return, length in finished:
                finished_games.append(game_return)
                assert game_return == pytest.approx(raw_sum[i])  # every life's points, unclipped
                assert length > 0
                raw_sum[i] = 0.0
            if len(finished_games) >= 2:
                break
        assert len(finished_games) >= 2
        assert max(finished_games) > 30  # far above what clipped rewards would sum to per alien
    finally:
        envs.close()


def test_sticky_actions_follow_the_id():
    assert atari_spec("BreakoutNoFrameskip-v4").repeat_action_probability == 0.0
    assert atari_spec("ALE/Breakout-v5").repeat_action_probability == 0.25
    assert atari_spec("CartPole-v1") is None
    assert atari_spec("NoSuchGameNoFrameskip-v4") is None


def test_game_tracker_on_a_scripted_sequence():
    tracker = GameTracker(2)
    tracker.reset({"lives": np.array([3, 0])})
    # env 0 loses a life (3 -> 2) with a reward of 20; env 1 (a game without lives) scores -1.
    clipped, terminal, finished = tracker.step(
        np.array([20.0, -1.0]),
        np.array([False, False]),
        np.array([False, False]),
        {"lives": np.array([2, 0])},
    )
    assert clipped.tolist() == [1.0, -1.0]
    assert terminal.tolist() == [True, False]
    assert finished == []
    # env 0's game ends (the backend already reset it: lives back to 3); env 1 is truncated.
    clipped, terminal, finished = tracker.step(
        np.array([5.0, 2.0]),
        np.array([True, False]),
        np.array([False, True]),
        {"lives": np.array([3, 0])},
    )
    assert terminal.tolist() == [True, False]  # a truncation is not a termination
    assert finished == [(0, 25.0, 2), (1, 1.0, 2)]
    assert tracker.returns.tolist() == [0.0, 0.0] and tracker.lengths.tolist() == [0, 0]


def test_game_tracker_counts_the_envs_own_steps_in_the_score_not_in_learning():
    """Rewards of the steps the env takes itself (FIRE after a lost life, ``unseen_reward``, and
    at a new game's start, ``start_reward``) belong to the game's score, never to the agent."""
    tracker = GameTracker(2)
    tracker.reset({"lives": np.array([5, 5]), "start_reward": np.array([0.0, 3.0])})
    assert tracker.returns.tolist() == [0.0, 3.0]
    clipped, terminal, finished = tracker.step(
        np.array([0.0, 1.0]),
        np.array([False, True]),
        np.array([False, False]),
        {"lives": np.array([4, 5]), "unseen_reward": np.array([7.0, 2.0]),
         "start_reward": np.array([0.0, 4.0])},
    )  # fmt: skip
    assert clipped.tolist() == [0.0, 1.0]  # the agent learns from its own step's reward alone
    assert terminal.tolist() == [True, True]
    assert finished == [(1, 6.0, 1)]  # 3 at the start + 1 + 2 after the agent's last step
    assert tracker.returns.tolist() == [7.0, 4.0]  # env 1's new game starts with its own reward
