"""The paper's Atari protocol around the emulator: what openai/baselines' wrappers add to it.

The PPO paper ran its Atari games through baselines' ``wrap_deepmind``, which CleanRL copies. Below
the frame skip and the 84x84 grey frames (done by ale-py on both backends), that stack does three
things at the boundaries of a life or a game, for one env:

- ``FireResetEnv.reset``: in games whose actions include FIRE, every start presses FIRE and then
  takes action 2, so play begins without the agent having to find the button;
- ``EpisodicLifeEnv`` with ``FireResetEnv`` outside it: a lost life ends the agent's episode, and
  the "reset" that follows is a no-op step, then FIRE and action 2, while the game goes on;
- ``FrameStack``: after each of those the stack holds four copies of the first frame the agent
  sees; otherwise the last four frames.

The steps taken here are the env's, not the agent's: they are not in the agent's rollout, their
rewards are not learned from, but they count towards the game's score (baselines' Monitor sat
below the wrappers and saw every reward). ``LifeProtocol`` does this for one env on top of any
``step(action) -> EnvStep``, so both backends share it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

NOOP, FIRE, ACTION_2 = 0, 1, 2
STACK = 4


@dataclass
class EnvStep:
    """One 4-frame step of one env: its newest 84x84 frame, raw reward, flags and lives."""

    frame: np.ndarray
    reward: float
    terminated: bool
    truncated: bool
    lives: int

    @property
    def game_over(self) -> bool:
        return self.terminated or self.truncated


Step = Callable[[int], EnvStep]


class LifeProtocol:
    """Baselines' start-of-game and after-a-lost-life steps, and its frame stack, for one env."""

    def __init__(self, fire_game: bool, fire_on_life_loss: bool, stack: int = STACK) -> None:
        """``fire_game``: the game's actions include FIRE (``FireResetEnv`` applies);
        ``fire_on_life_loss``: a lost life is followed by no-op, FIRE and action 2."""
        self.fire_game = fire_game
        self.fire_on_life_loss = fire_on_life_loss and fire_game
        self.frames = np.zeros((stack, 84, 84), dtype=np.uint8)
        self.lives = 0
        self.unseen_reward = 0.0
        self.unseen_steps = 0

    @property
    def observation(self) -> np.ndarray:
        return self.frames.copy()

    def start(self, first: EnvStep, step: Step) -> EnvStep:
        """A game was (re)set and ``first`` is its frame after the no-ops: FIRE and action 2 in
        FIRE games, then the stack is filled with the last frame. Returns the last ``EnvStep``;
        if the game ended during those steps it has ``game_over`` set and the caller resets."""
        self.unseen_reward, self.unseen_steps = 0.0, 0
        last = self._unseen_steps((FIRE, ACTION_2) if self.fire_game else (), first, step)
        self._fill(last)
        return last

    def after(self, agent_step: EnvStep, step: Step) -> EnvStep:
        """The agent's step is done: push its frame, or, after a lost life (the game not over),
        take the no-op, FIRE and action 2 steps and fill the stack with the last frame.

        Returns the ``EnvStep`` the agent's next observation comes from; if the game ended during
        the env's own steps it has ``game_over`` set (the agent's step counts as the game's end)."""
        self.unseen_reward, self.unseen_steps = 0.0, 0
        life_lost = 0 < agent_step.lives < self.lives and not agent_step.game_over
        if life_lost and self.fire_on_life_loss:
            last = self._unseen_steps((NOOP, FIRE, ACTION_2), agent_step, step)
            self._fill(last)
            return last
        self.frames[:-1] = self.frames[1:]
        self.frames[-1] = agent_step.frame
        self.lives = agent_step.lives
        return agent_step

    def _unseen_steps(self, actions: tuple[int, ...], last: EnvStep, step: Step) -> EnvStep:
        for action in actions:
            if last.game_over:
                break
            last = step(action)
            self.unseen_reward += last.reward
            self.unseen_steps += 1
        return last

    def _fill(self, last: EnvStep) -> None:
        self.frames[:] = last.frame
        self.lives = last.lives
