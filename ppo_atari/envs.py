"""Atari environments for PPO: ale-py's native C++ env, or gymnasium's vector envs.

Both backends give the protocol of the PPO paper (openai/baselines' ``wrap_deepmind``, which CleanRL
copies) for ``<Game>NoFrameskip-v4`` ids, and the registered settings, sticky actions included, for
``ALE/<Game>-v5``: minimal action set, up to 30 no-op frames at reset, 4 frames per action with a
max over the last two, 84x84 grey, the 108,000-frame cap; FIRE and action 2 at the start of every
game that has FIRE, and, with ``fire_on_life_loss``, a no-op, FIRE and action 2 after every lost
life; a stack of the last 4 frames, refilled with copies of the first frame after each of those
(``protocol.LifeProtocol``, shared by both). Both return uint8 observations of shape
(num_envs, 4, 84, 84), raw (unclipped) rewards, ``info["lives"]``, and reset an env within the
step in which its game ends (same-step autoreset).

Life loss and reward clipping are not left to the backends: ``GameTracker`` derives them the same
way for both, so a lost life ends the value target's episode while the game itself goes on
(baselines' EpisodicLifeEnv), and the logged returns are unclipped scores of whole games, with the
rewards of the env's own steps (``info["unseen_reward"]``, ``info["start_reward"]``) counted.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Box, Discrete
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from common.cli import UsageError
from ppo_atari.protocol import STACK, EnvStep, LifeProtocol

BACKENDS = ("ale_vector", "gymnasium")
FRAME_SKIP = 4
NOOP_MAX = 30


@dataclass(frozen=True)
class AtariSpec:
    """What an Atari env id means, read from its gymnasium registration."""

    env_id: str
    game: str
    repeat_action_probability: float
    full_action_space: bool
    max_num_frames_per_episode: int

    def fire_on_life_loss(self, flag: bool | None) -> bool:
        """``--fire-on-life-loss``, or its default for the id: on for the paper's ``NoFrameskip-v4``
        ids, off for ``ALE/*-v5``, which keep their own semantics."""
        return self.env_id.endswith("NoFrameskip-v4") if flag is None else flag


def atari_spec(env_id: str) -> AtariSpec | None:
    """The Atari settings of a registered id, or ``None`` if the id is not an ale-py Atari game."""
    import ale_py  # noqa: F401 - registers the ALE ids with gymnasium

    if env_id not in gym.registry:
        return None
    kwargs = gym.spec(env_id).kwargs
    if "game" not in kwargs:
        return None
    return AtariSpec(
        env_id=env_id,
        game=kwargs["game"],
        repeat_action_probability=float(kwargs.get("repeat_action_probability", 0.25)),
        full_action_space=bool(kwargs.get("full_action_space", False)),
        max_num_frames_per_episode=int(
            kwargs.get("max_num_frames_per_episode", 108_000) or 108_000
        ),
    )


def require_atari_id(env_id: str, flag: str = "--env-id") -> AtariSpec:
    """The id's Atari settings; a UsageError naming ``flag`` if it is not an ale-py Atari id."""
    spec = atari_spec(env_id)
    if spec is None:
        raise UsageError(
            flag,
            f"{env_id!r} is not an ale-py Atari id; use <Game>NoFrameskip-v4 or ALE/<Game>-v5, "
            "e.g. BreakoutNoFrameskip-v4 (continuous control: ppo_continuous/train.py)",
        )
    return spec


def make_atari_envs(
    spec: AtariSpec,
    num_envs: int,
    backend: str,
    seed: int,
    async_gymnasium: bool = True,
    video_folder: str | None = None,
    render: bool = False,
    fire_on_life_loss: bool | None = None,
) -> gym.vector.VectorEnv:
    """The vector env of the chosen backend; ``video_folder`` records env 0's episodes as mp4.

    ``render`` shows env 0 in the ALE's own window (render_mode "human", at the game's 60 fps);
    only ale-py's single-game env has that mode, so it always uses the gymnasium backend, in-process.
    ``fire_on_life_loss`` (default: on for the paper's ``NoFrameskip-v4`` ids, off for
    ``ALE/*-v5``) takes baselines' no-op, FIRE and action 2 after every lost life.
    """
    fire_on_life_loss = spec.fire_on_life_loss(fire_on_life_loss)
    if render:
        quiet_ale_window()
        envs = _gymnasium_vector_env(spec, num_envs, False, video_folder, fire_on_life_loss, True)
    elif backend == "ale_vector":
        envs = NativeAtariEnvs(spec, num_envs, fire_on_life_loss)
    elif backend == "gymnasium":
        envs = _gymnasium_vector_env(
            spec, num_envs, async_gymnasium, video_folder, fire_on_life_loss
        )
    else:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    if video_folder is not None and backend == "ale_vector" and not render:
        envs = RecordEnvZero(envs, video_folder)
    envs.action_space.seed(seed)
    return envs


def quiet_ale_window() -> None:
    """Keep the ALE's window from burying the evaluation's result line in noise: its banner
    ("A.L.E: Arcade Learning Environment ...") and, on a Linux machine with no sound card,
    SDL's ALSA errors when the window turns its sound on. A sound card, or SDL_AUDIODRIVER set
    by the user, keeps the game's sound."""
    import ale_py

    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    if sys.platform.startswith("linux") and not Path("/dev/snd").is_dir():
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def single_game(spec: AtariSpec, stack_num: int, **options):
    """One game in ale-py's C++ env (an ``AtariVectorEnv`` of one, stepped in its own thread) with
    the paper's preprocessing: frame skip 4 with a max-pool of the last two frames, grey 84x84, up
    to 30 no-ops at a start, the id's sticky actions, action set and frame cap; ``options`` go to
    ``AtariVectorEnv`` as they are."""
    from ale_py.vector_env import AtariVectorEnv

    return AtariVectorEnv(
        game=spec.game, num_envs=1, num_threads=1, frameskip=FRAME_SKIP, maxpool=True,
        noop_max=NOOP_MAX, img_height=84, img_width=84, grayscale=True, stack_num=stack_num,
        repeat_action_probability=spec.repeat_action_probability,
        full_action_space=spec.full_action_space,
        max_num_frames_per_episode=spec.max_num_frames_per_episode, **options,
    )  # fmt: skip


class NativeAtariEnvs(gym.vector.VectorEnv):
    """ale-py's C++ env (``AtariVectorEnv``), one instance of one game per env, stepped together.

    Every instance is sent its action before any result is read, so the games run in parallel in
    their C++ threads. They do the frame skip, the max-pool, the grey 84x84 frames, the no-op
    starts and the frame cap; one game per instance lets a game take ``LifeProtocol``'s own steps
    (FIRE at a start or after a lost life) while the others wait, which one vector of all the games
    cannot (its ``episodic_life`` resets the whole game).
    """

    def __init__(self, spec: AtariSpec, num_envs: int, fire_on_life_loss: bool) -> None:
        from ale_py import Action

        self.games = [
            single_game(
                spec,
                stack_num=1,
                autoreset_mode=AutoresetMode.SAME_STEP,
                # LifeProtocol presses FIRE (and action 2) as baselines did, and GameTracker does
                # life loss and reward clipping the same way on both backends.
                use_fire_reset=False,
                episodic_life=False,
                life_loss_info=False,
                reward_clipping=False,
            )
            for _ in range(num_envs)
        ]
        actions = self.games[0].ale.get_action_set()
        fire_game = Action.FIRE in actions
        self.protocols = [LifeProtocol(fire_game, fire_on_life_loss) for _ in range(num_envs)]
        self.num_envs = num_envs
        self.single_observation_space = Box(0, 255, (STACK, 84, 84), np.uint8)
        self.single_action_space = Discrete(len(actions))
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}
        self._next_game_frame = [np.zeros((84, 84), np.uint8) for _ in range(num_envs)]
        self._next_game_lives = np.zeros(num_envs, dtype=np.int64)
        self._frame_numbers = np.zeros(num_envs, dtype=np.int64)

    def _receive(self, i: int) -> EnvStep:
        """Game ``i``'s result; at a game's end, the next game's first frame is kept aside."""
        obs, reward, terminated, truncated, info = self.games[i].recv()
        self._frame_numbers[i] = info["episode_frame_number"][0]
        ended = bool(terminated[0] or truncated[0])
        frame = info["final_obs"][0][-1] if ended else obs[0, -1]
        if ended:  # the instance reset itself in this step (same-step autoreset)
            self._next_game_frame[i], self._next_game_lives[i] = obs[0, -1], info["lives"][0]
        lives = -1 if ended else int(info["lives"][0])  # an ended game has no lives left to lose
        return EnvStep(frame, float(reward[0]), bool(terminated[0]), bool(truncated[0]), lives)

    def _step_one(self, i: int, action: int) -> EnvStep:
        self.games[i].send(np.array([action], dtype=np.int64))
        return self._receive(i)

    def _start_game(self, i: int) -> float:
        """FIRE and action 2 at the start of game ``i`` (again if the game ends meanwhile);
        returns their reward, which is the new game's."""
        while True:
            first = EnvStep(self._next_game_frame[i], 0.0, False, False, int(self._next_game_lives[i]))  # fmt: skip
            last = self.protocols[i].start(first, functools.partial(self._step_one, i))
            if not last.game_over:
                return self.protocols[i].unseen_reward

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        start_reward = np.zeros(self.num_envs)
        for i, game in enumerate(self.games):
            obs, info = game.reset(seed=None if seed is None else seed + i)
            self._next_game_frame[i], self._next_game_lives[i] = obs[0, -1], info["lives"][0]
            self._frame_numbers[i] = info["episode_frame_number"][0]
            start_reward[i] = self._start_game(i)
        return self._observations(), self._info(start_reward=start_reward)

    def step(self, actions: np.ndarray):
        for game, action in zip(self.games, np.asarray(actions), strict=True):
            game.send(np.array([action], dtype=np.int64))
        rewards, terminated, truncated = (np.zeros(self.num_envs, dtype=t) for t in (np.float64, bool, bool))  # fmt: skip
        unseen, start = np.zeros(self.num_envs), np.zeros(self.num_envs)
        final_obs = np.full(self.num_envs, None, dtype=object)
        for i, protocol in enumerate(self.protocols):
            agent_step = self._receive(i)
            last = protocol.after(agent_step, functools.partial(self._step_one, i))
            rewards[i], unseen[i] = agent_step.reward, protocol.unseen_reward
            terminated[i], truncated[i] = last.terminated, last.truncated
            if last.game_over:
                final_obs[i] = protocol.observation
                start[i] = self._start_game(i)
        info = self._info(unseen_reward=unseen, start_reward=start)
        ended = terminated | truncated
        if ended.any():
            info["final_obs"], info["_final_obs"] = final_obs, ended
        return self._observations(), rewards, terminated, truncated, info

    def _observations(self) -> np.ndarray:
        return np.stack([protocol.frames for protocol in self.protocols])

    def _info(self, **rewards: np.ndarray) -> dict:
        lives = np.array([protocol.lives for protocol in self.protocols])
        return {"lives": lives, "episode_frame_number": self._frame_numbers.copy(), **rewards}

    def close_extras(self, **kwargs) -> None:
        for game in self.games:
            game.close()


class BaselinesLifeProtocol(gym.Wrapper):
    """``LifeProtocol`` for one gymnasium Atari env after ``AtariPreprocessing``: FIRE and action 2
    at a game's start, the no-op, FIRE and action 2 after a lost life, and the 4-frame stack.

    The vector env moves the info of a game's last step to ``final_info``; the rewards of the env's
    own steps in that step are carried to the next game's reset info, where ``GameTracker`` reads
    them (``unseen_reward``), with the new game's own (``start_reward``).
    """

    def __init__(self, env: gym.Env, fire_on_life_loss: bool) -> None:
        super().__init__(env)
        fire_game = "FIRE" in env.unwrapped.get_action_meanings()
        self.protocol = LifeProtocol(fire_game, fire_on_life_loss)
        self.observation_space = Box(0, 255, (STACK, 84, 84), np.uint8)
        self._info: dict = {}
        self._unseen_at_end = 0.0

    def _step(self, action: int) -> EnvStep:
        frame, reward, terminated, truncated, self._info = self.env.step(action)
        return EnvStep(frame, float(reward), terminated, truncated, int(self._info["lives"]))

    def reset(self, **kwargs):
        while True:
            frame, self._info = self.env.reset(**kwargs)
            first = EnvStep(frame, 0.0, False, False, int(self._info["lives"]))
            if not self.protocol.start(first, self._step).game_over:
                break
            kwargs.pop("seed", None)  # a game over during FIRE: reset again, as FireResetEnv does
        info = {**self._info, "start_reward": self.protocol.unseen_reward,
                "unseen_reward": self._unseen_at_end}  # fmt: skip
        self._unseen_at_end = 0.0
        return self.protocol.observation, info

    def step(self, action):
        agent_step = self._step(action)
        last = self.protocol.after(agent_step, self._step)
        info = {**self._info, "unseen_reward": self.protocol.unseen_reward}
        if last.game_over:
            self._unseen_at_end, info["unseen_reward"] = self.protocol.unseen_reward, 0.0
        observation = self.protocol.observation
        return observation, agent_step.reward, last.terminated, last.truncated, info


def _gymnasium_vector_env(
    spec: AtariSpec,
    num_envs: int,
    use_async: bool,
    video_folder: str | None,
    fire_on_life_loss: bool,
    render: bool = False,
) -> gym.vector.VectorEnv:
    env0_render_mode = "human" if render else "rgb_array" if video_folder else None

    def make_one(index: int):
        def thunk() -> gym.Env:
            mode = env0_render_mode if index == 0 else None
            # frameskip=1 here so AtariPreprocessing can skip 4 and max-pool the last two frames.
            env = gym.make(spec.env_id, frameskip=1, render_mode=mode)
            if mode == "rgb_array":
                env = gym.wrappers.RecordVideo(env, video_folder, disable_logger=True)
            env = gym.wrappers.AtariPreprocessing(
                env, noop_max=NOOP_MAX, frame_skip=FRAME_SKIP, screen_size=84, grayscale_obs=True
            )
            return BaselinesLifeProtocol(env, fire_on_life_loss)

        return thunk

    thunks = [make_one(i) for i in range(num_envs)]
    if not use_async:
        return gym.vector.SyncVectorEnv(thunks, autoreset_mode=AutoresetMode.SAME_STEP)
    with signals_ignored(signal.SIGINT, signal.SIGTERM):
        return gym.vector.AsyncVectorEnv(thunks, autoreset_mode=AutoresetMode.SAME_STEP)


@contextlib.contextmanager
def signals_ignored(*signums: int) -> Iterator[None]:
    """Processes started inside ignore these signals (children inherit SIG_IGN).

    A terminal's Ctrl-C and a cluster's SIGTERM reach the whole process group; env workers must
    leave them to the trainer, which saves a checkpoint after the iteration and then closes them.
    """
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class RecordEnvZero(gym.vector.VectorWrapper):
    """Record env 0 of a native vector env: its frames are the newest frame of the stack.

    The native env renders nothing itself, so the video is the agent's own 84x84 grey view,
    upscaled; each finished game of env 0 becomes one mp4.
    """

    def __init__(self, env: gym.vector.VectorEnv, folder: str, fps: int = 15) -> None:
        super().__init__(env)
        self.folder, self.fps, self.frames, self.episode = folder, fps, [], 0

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.frames = [obs[0, -1]]
        return obs, info

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        if terminated[0] or truncated[0]:
            self.frames.append(info["final_obs"][0][-1])
            self._write()
        self.frames.append(obs[0, -1])
        return obs, reward, terminated, truncated, info

    def _write(self) -> None:
        from pathlib import Path

        import imageio.v2 as imageio

        Path(self.folder).mkdir(parents=True, exist_ok=True)
        path = Path(self.folder) / f"episode-{self.episode}.mp4"
        frames = [np.repeat(np.repeat(f, 4, axis=0), 4, axis=1) for f in self.frames]
        imageio.mimwrite(path, frames, fps=self.fps, macro_block_size=1)
        self.frames, self.episode = [], self.episode + 1


class GameTracker:
    """Turns raw backend steps into PPO's learning signals and whole-game scores.

    - A lost life ends the value target's episode (terminal for GAE) while the game goes on.
    - Rewards for learning are sign-clipped to {-1, 0, 1}, as in the paper and ppo2.
    - Returns are summed unclipped over a whole game (all lives) for logging and reporting.
    """

    def __init__(self, num_envs: int) -> None:
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        self.lives = np.zeros(num_envs, dtype=np.int64)

    def reset(self, info: dict) -> None:
        self.returns[:] = info.get("start_reward", 0.0)
        self.lengths[:] = 0
        self.lives = np.asarray(info["lives"]).copy()

    # --8<-- [start:game_tracker_step]
    def step(self, reward, terminated, truncated, info):
        """Returns (clipped reward, value-target terminal, [(env, game return, game length), ...])."""
        game_over = np.logical_or(terminated, truncated)
        lives = np.asarray(info["lives"])
        # A fall in lives without a game over; after a game over ``lives`` is the new game's.
        life_lost = (lives < self.lives) & ~game_over
        self.lives = lives.copy()
        # The env's own steps (FIRE after a lost life) score for the game, not for learning.
        self.returns += reward + info.get("unseen_reward", 0.0)
        self.lengths += 1
        finished = [(i, self.returns[i], int(self.lengths[i])) for i in np.flatnonzero(game_over)]
        self.returns[game_over] = np.broadcast_to(info.get("start_reward", 0.0), reward.shape)[
            game_over
        ]
        self.lengths[game_over] = 0
        return np.sign(reward), np.logical_or(terminated, life_lost), finished
        # --8<-- [end:game_tracker_step]
