"""Human-normalised Atari scores, (score - random) / (human - random), from shipped reference data."""

from __future__ import annotations

import csv
import functools
from importlib import resources


@functools.cache
def human_random_scores() -> dict[str, tuple[float, float]]:
    """Game name (e.g. ``Breakout``) -> (random, human) of dqn_zoo's Atari-57 table."""
    text = resources.files("common.data").joinpath("atari_human_random.csv").read_text()
    return {
        row["game"]: (float(row["random"]), float(row["human"]))
        for row in csv.DictReader(text.splitlines())
    }


def game_name(env_id: str) -> str:
    """``BreakoutNoFrameskip-v4`` or ``ALE/Breakout-v5`` -> ``Breakout``."""
    name = env_id.split("/")[-1].split("-")[0]
    return name.removesuffix("NoFrameskip").removesuffix("Deterministic")


def human_normalized_score(env_id: str, score: float | None) -> float | None:
    """``None`` when there is no score yet or the game has no human and random reference."""
    ref = human_random_scores().get(game_name(env_id))
    if score is None or ref is None:
        return None
    random_score, human_score = ref
    return (score - random_score) / (human_score - random_score)
