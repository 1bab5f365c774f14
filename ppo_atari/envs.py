"""Atari environments for PPO: ale-py's native C++ vector env, or gymnasium's vector envs.

Both backends give the settings of the PPO paper and CleanRL for ``<Game>NoFrameskip-v4`` ids
(and the registered ones, sticky actions included, for ``ALE/<Game>-v5``): minimal action set,
up to 30 no-ops at reset, 4 frames per action with a max over the last two, 84x84 grey, a stack of
the last 4 frames, the 108,000-frame cap and FIRE at reset where the game needs it. Both return
uint8 observations of shape (num_envs, 4, 84, 84), raw (unclipped) rewards, ``info["lives"]``, and
reset an env within the step in which its game ends (same-step autoreset).

Life loss and reward clipping are not left to the backends: ``GameTracker`` derives them the same
way for both, so a lost life ends the value target's episode while the game itself goes on
(baselines' EpisodicLifeEnv), and the logged returns are unclipped scores of whole games.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from common.cli import UsageError

BACKENDS = ("ale_vector", "gymnasium")
FRAME_SKIP = 4
NOOP_MAX = 30
STACK = 4


@dataclass(frozen=True)
class AtariSpec:
    """What an Atari env id means, read from its gymnasium registration."""

    env_id: str
    game: str
    repeat_action_probability: float
    full_action_space: bool
    max_num_frames_per_episode: int


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
) -> gym.vector.VectorEnv:
    """The vector env of the chosen backend; ``video_folder`` records env 0's episodes as mp4.

    ``render`` shows env 0 in the ALE's own window (render_mode "human", at the game's 60 fps);
    only ale-py's single-game env has that mode, so it always uses the gymnasium backend, in-process.
    """
    if render:
        envs = _gymnasium_vector_env(spec, num_envs, False, video_folder, render=True)
    elif backend == "ale_vector":
        envs = _ale_vector_env(spec, num_envs)
    elif backend == "gymnasium":
        envs = _gymnasium_vector_env(spec, num_envs, async_gymnasium, video_folder)
    else:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    if video_folder is not None and backend == "ale_vector" and not render:
        envs = RecordEnvZero(envs, video_folder)
    envs.action_space.seed(seed)
    return envs


def _ale_vector_env(spec: AtariSpec, num_envs: int) -> gym.vector.VectorEnv:
    from ale_py.vector_env import AtariVectorEnv

    return AtariVectorEnv(
        game=spec.game,
        num_envs=num_envs,
        autoreset_mode=AutoresetMode.SAME_STEP,
        repeat_action_probability=spec.repeat_action_probability,
        full_action_space=spec.full_action_space,
        max_num_frames_per_episode=spec.max_num_frames_per_episode,
        frameskip=FRAME_SKIP,
        maxpool=True,
        noop_max=NOOP_MAX,
        img_height=84,
        img_width=84,
        grayscale=True,
        stack_num=STACK,
        use_fire_reset=True,
        # Its episodic_life resets the whole game on a life loss, and its reward clipping would
        # hide the score: GameTracker does both the way the paper's wrappers did.
        episodic_life=False,
        life_loss_info=False,
        reward_clipping=False,
    )


class FireOnReset(gym.Wrapper):
    """Press FIRE after a reset in games that wait for it (baselines' FireResetEnv)."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(1)
        if terminated or truncated:
            obs, info = self.env.reset(**kwargs)
        return obs, info


def _gymnasium_vector_env(
    spec: AtariSpec,
    num_envs: int,
    use_async: bool,
    video_folder: str | None,
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
            if "FIRE" in env.unwrapped.get_action_meanings():
                env = FireOnReset(env)
            return gym.wrappers.FrameStackObservation(env, STACK)

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
        self.returns[:] = 0
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
        self.returns += reward
        self.lengths += 1
        finished = [(i, self.returns[i], int(self.lengths[i])) for i in np.flatnonzero(game_over)]
        self.returns[game_over] = 0
        self.lengths[game_over] = 0
        return np.sign(reward), np.logical_or(terminated, life_lost), finished
        # --8<-- [end:game_tracker_step]
