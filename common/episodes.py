"""Episode returns kept for logging and for the paper's two per-run scores (section 6.4)."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np


class EpisodeLog:
    """Every finished episode's undiscounted return and length.

    The paper scores a run two ways: (1) the mean episodic return over all of training and (2) the
    mean over the last 100 episodes. Both come from here.
    """

    def __init__(
        self, returns: list[float] | None = None, lengths: list[int] | None = None
    ) -> None:
        self.count = 0
        self.return_sum = 0.0
        self.last_returns: deque[float] = deque(maxlen=100)
        self.last_lengths: deque[int] = deque(maxlen=100)
        for ret, length in zip(returns or [], lengths or [], strict=True):
            self.add(ret, length)

    def add(self, episode_return: float, episode_length: int) -> None:
        self.count += 1
        self.return_sum += float(episode_return)
        self.last_returns.append(float(episode_return))
        self.last_lengths.append(int(episode_length))

    @property
    def latest_return(self) -> float | None:
        return self.last_returns[-1] if self.last_returns else None

    def scores(self) -> dict[str, Any]:
        """The two scores, ``None`` while no episode has finished."""
        return {
            "episodes": self.count,
            "mean_return_all_training": self.return_sum / self.count if self.count else None,
            "mean_return_last_100": float(np.mean(self.last_returns))
            if self.last_returns
            else None,
        }

    def state_dict(self) -> dict[str, Any]:
        """Plain numbers only, so a checkpoint loads with ``torch.load(weights_only=True)``."""
        return {
            "count": self.count,
            "return_sum": self.return_sum,
            "last_returns": list(self.last_returns),
            "last_lengths": list(self.last_lengths),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state["count"])
        self.return_sum = float(state["return_sum"])
        self.last_returns = deque((float(x) for x in state["last_returns"]), maxlen=100)
        self.last_lengths = deque((int(x) for x in state["last_lengths"]), maxlen=100)


def run_summary(
    *,
    env_id: str,
    exp_name: str,
    seed: int,
    objective: str,
    global_step: int,
    total_timesteps: int,
    wall_time: float,
    episodes: EpisodeLog,
    extra: dict[str, Any] | None = None,
    diverged_at_step: int | None = None,
    algorithm: str = "ppo",
) -> dict[str, Any]:
    """The per-run record that ``runs/{run_name}/summary.json`` holds and sweeps aggregate.

    ``status`` is ``finished`` (all steps done), ``stopped`` (ended early, e.g. by SIGTERM: the
    checkpoint resumes it) or ``diverged`` (stopped at ``diverged_at_step`` by a non-finite loss or
    gradient); ``finished`` is kept as a boolean for older readers.
    """
    if diverged_at_step is not None:
        status = "diverged"
    else:
        status = "finished" if global_step >= total_timesteps else "stopped"
    return {
        "env_id": env_id,
        "exp_name": exp_name,
        "algorithm": algorithm,
        "seed": seed,
        "objective": objective,
        "global_step": global_step,
        "total_timesteps": total_timesteps,
        "status": status,
        "finished": status == "finished",
        **({"diverged_at_step": diverged_at_step} if diverged_at_step is not None else {}),
        "wall_time_s": round(wall_time, 3),
        "sps": round(global_step / wall_time, 1) if wall_time > 0 else None,
        **episodes.scores(),
        **(extra or {}),
    }
