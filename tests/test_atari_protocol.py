"""Both Atari backends follow the paper's protocol step by step: baselines' wrapper stack.

``tests/baselines_atari.py`` writes out openai/baselines' ``wrap_deepmind`` for one env on ale-py's
single ``AtariEnv``. Each backend and that reference are driven with the same seed and the same
fixed action sequence through several lost lives and game overs, and compared at every agent step:
the frames the agent sees, the clipped reward, the value target's terminal, the game's end, the
lives and the unclipped score of the game.

Allowed differences, each for a stated reason:
- the number of no-op frames at a reset is drawn by each backend's own RNG (ale-py's C++ env draws
  0 to 29, baselines 1 to 30), so the reference is told the count the backend drew (read from
  ``info["episode_frame_number"]``);
- at the step that ends a game the agent sees the next game's first frames, which are compared;
  the last frames of the ended game (``final_obs``) are not, since baselines' max-pool keeps the
  previous step's frames when a game ends within a frame skip and the backends do not.
"""

from __future__ import annotations

import numpy as np
import pytest
from baselines_atari import BaselinesAtari

from ppo_atari.envs import BACKENDS, GameTracker, atari_spec, make_atari_envs

SEED = 3
START_FRAMES = 8  # FireResetEnv's FIRE and action 2, 4 frames each


def drawn_noops(info: dict, fire_game: bool) -> int:
    """The no-op frames a backend's reset drew: its frame count less FireResetEnv's steps."""
    return int(info["episode_frame_number"][0]) - (START_FRAMES if fire_game else 0)


def assert_same_frames(obs: np.ndarray, expected: np.ndarray, where: str) -> None:
    assert obs.shape == expected.shape == (4, 84, 84), where
    differ = np.argwhere(obs != expected)
    assert differ.size == 0, f"{where}: {len(differ)} pixels differ, first at {differ[0].tolist()}"


def play(env_id: str, backend: str, game_overs_wanted: int, fire_on_life_loss: bool = True):
    """Drive a backend and the reference side by side; returns (life losses, game overs)."""
    envs = make_atari_envs(
        atari_spec(env_id), 1, backend, SEED, async_gymnasium=False,
        fire_on_life_loss=fire_on_life_loss,
    )  # fmt: skip
    reference = BaselinesAtari(env_id)
    rng = np.random.default_rng(0)
    life_losses = game_overs = 0
    try:
        obs, info = envs.reset(seed=SEED)
        expected = reference.reset(SEED, drawn_noops(info, reference.fire_game))
        assert_same_frames(obs[0], expected, "after reset")
        games = GameTracker(1)
        games.reset(info)
        for t in range(6000):
            action = int(rng.integers(envs.single_action_space.n))
            obs, reward, terminated, truncated, info = envs.step(np.array([action]))
            clipped, value_terminal, finished = games.step(reward, terminated, truncated, info)
            ref = reference.step(action)
            where = f"{env_id} on {backend}, step {t}"
            assert clipped[0] == ref.clipped_reward, where
            assert bool(value_terminal[0]) == ref.value_terminal, where
            assert bool(terminated[0] or truncated[0]) == ref.game_over, where
            if ref.game_over:
                assert finished[0][1] == pytest.approx(ref.score), where
                expected = reference.reset(None, drawn_noops(info, reference.fire_game))
                game_overs += 1
            else:
                assert int(info["lives"][0]) == ref.lives, where
                assert games.returns[0] == pytest.approx(ref.score), where
                life_losses += int(ref.value_terminal)
                expected = ref.obs
            assert_same_frames(obs[0], expected, where)
            if game_overs == game_overs_wanted:
                return life_losses, game_overs
    finally:
        envs.close()
        reference.close()
    raise AssertionError(f"{env_id}: only {game_overs} game overs in 6000 steps")


@pytest.mark.parametrize("backend", BACKENDS)
def test_breakout_fire_after_every_lost_life(backend):
    # Breakout has FIRE and 5 lives: two whole games are 8 lost lives and 2 game overs.
    life_losses, game_overs = play("BreakoutNoFrameskip-v4", backend, game_overs_wanted=2)
    assert life_losses >= 8 and game_overs == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_game_without_fire(backend):
    # Ms. Pac-Man has no FIRE action: lost lives and game overs need no extra steps.
    life_losses, game_overs = play("MsPacmanNoFrameskip-v4", backend, game_overs_wanted=1)
    assert life_losses >= 2 and game_overs == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_fire_after_life_loss_the_protocol_differs(backend):
    # The conformance check above can fail: with the flag off, the first lost life in Breakout
    # leaves the ball unlaunched, and the frames part from the reference's.
    with pytest.raises(AssertionError, match="pixels differ|step"):
        play("BreakoutNoFrameskip-v4", backend, game_overs_wanted=1, fire_on_life_loss=False)
