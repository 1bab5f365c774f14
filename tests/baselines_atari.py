"""A reference of openai/baselines' Atari wrapper stack for one env, written for the tests.

``wrap_deepmind(make_atari(id), episode_life=True, clip_rewards=True, frame_stack=True)``, as the
PPO paper ran it (and CleanRL copies it), on ale-py's single ``AtariEnv``. Each method names the
baselines wrapper it stands for. It shares no code with ``ppo_atari`` so that the conformance test
compares two independent readings of the protocol.

One part is not drawn here: the number of no-op frames at a reset (``NoopResetEnv``, 1 to 30 from
its own RNG). Each backend draws it from its own generator, so ``reset`` takes the count as given.
"""

from __future__ import annotations

from dataclasses import dataclass

import ale_py  # noqa: F401 - registers the ALE ids with gymnasium
import cv2
import gymnasium as gym
import numpy as np


@dataclass
class ReferenceStep:
    obs: np.ndarray  # (4, 84, 84) uint8: what the agent sees next
    clipped_reward: float  # ClipRewardEnv
    value_terminal: bool  # EpisodicLifeEnv's done: a lost life or the game's end
    game_over: bool  # the real end of the game
    lives: int
    score: float  # the unclipped score of the game so far (what Monitor counts)


class BaselinesAtari:
    def __init__(self, env_id: str, fire_on_life_loss: bool = True) -> None:
        # NoFrameskip-v4: one frame per step, no sticky actions; grey frames from ALE's palette.
        self.env = gym.make(env_id, obs_type="grayscale")
        self.fire_game = "FIRE" in self.env.unwrapped.get_action_meanings()
        self.fire_on_life_loss = fire_on_life_loss
        self.max_buffer = np.zeros((2, 210, 160), dtype=np.uint8)
        self.stack = np.zeros((4, 84, 84), dtype=np.uint8)
        self.lives = 0
        self.score = 0.0

    def lives_now(self) -> int:
        return self.env.unwrapped.ale.lives()

    # NoopResetEnv, then FireResetEnv.reset; FrameStack.reset fills the stack.
    def reset(self, seed: int | None, noops: int) -> np.ndarray:
        self.env.reset(seed=seed)
        self.score = 0.0
        for _ in range(noops):
            _, reward, terminated, truncated, _ = self.env.step(0)
            self.score += reward
            if terminated or truncated:
                self.env.reset()
        frame = self._fire_reset()
        self.stack[:] = frame
        return self.stack.copy()

    def _fire_reset(self) -> np.ndarray:
        frame = self._warp(self.env.unwrapped.ale.getScreenGrayscale())
        if self.fire_game:
            for action in (1, 2):
                frame, reward, _, _ = self._skip(action)
                self.score += reward
        self.lives = self.lives_now()
        return frame

    # MaxAndSkipEnv(skip=4): the action repeated 4 times, the max of the last two frames.
    # Like baselines, a step cut short by the game's end keeps the buffer of the step before.
    def _skip(self, action: int) -> tuple[np.ndarray, float, bool, bool]:
        total, terminated, truncated = 0.0, False, False
        for i in range(4):
            frame, reward, terminated, truncated, _ = self.env.step(action)
            total += reward
            if i >= 2:
                self.max_buffer[i - 2] = frame
            if terminated or truncated:
                break
        return self._warp(self.max_buffer.max(axis=0)), total, terminated, truncated

    # WarpFrame: 84x84 with OpenCV's area interpolation (the frames are grey already).
    @staticmethod
    def _warp(frame: np.ndarray) -> np.ndarray:
        return cv2.resize(frame, (84, 84), interpolation=cv2.INTER_AREA)

    # EpisodicLifeEnv.step and .reset (no-op step), FireResetEnv.reset, ClipRewardEnv, FrameStack.
    def step(self, action: int) -> ReferenceStep:
        frame, reward, terminated, truncated = self._skip(action)
        self.score += reward
        game_over = terminated or truncated
        lives = self.lives_now()
        life_lost = 0 < lives < self.lives and not game_over
        self.lives = lives
        score = self.score
        if life_lost and self.fire_on_life_loss and self.fire_game:
            frame, unseen, terminated, truncated = self._skip(0)  # EpisodicLifeEnv.reset
            self.score += unseen
            for action_after in (1, 2):  # FireResetEnv.reset
                if terminated or truncated:
                    break
                frame, unseen, terminated, truncated = self._skip(action_after)
                self.score += unseen
            score, game_over = self.score, terminated or truncated
            self.stack[:] = frame
            self.lives = self.lives_now()
        else:
            self.stack[:-1] = self.stack[1:]
            self.stack[-1] = frame
        return ReferenceStep(
            obs=self.stack.copy(),
            clipped_reward=float(np.sign(reward)),
            value_terminal=game_over or life_lost,
            game_over=game_over,
            lives=self.lives,
            score=score,
        )

    def close(self) -> None:
        self.env.close()
