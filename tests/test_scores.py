"""common/scores.py: human-normalised Atari scores from the shipped dqn_zoo human/random table.

Expected values are worked out here from the published figures (dqn_zoo's Atari-57 table, read
straight from the CSV with the csv module), not from the module under test.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from common.scores import game_name, human_normalized_score, human_random_scores

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "common" / "data" / "atari_human_random.csv"


def csv_rows() -> list[dict[str, str]]:
    with SHIPPED.open(newline="") as f:
        return list(csv.DictReader(f))


def test_shipped_table_is_the_baselines_copy():
    """The package's copy is byte-for-byte the project's baselines table, as its README says."""
    assert SHIPPED.read_bytes() == (REPO / "baselines" / "atari_human_random.csv").read_bytes()


def test_table_holds_the_57_games_and_the_papers_49():
    """All of Atari-57 is loaded, one entry per game, and 49 rows are marked as the PPO paper's."""
    rows = csv_rows()
    table = human_random_scores()
    assert len(table) == 57
    assert set(table) == {r["game"] for r in rows}
    assert sum(r["in_ppo_paper_49"] == "yes" for r in rows) == 49


@pytest.mark.parametrize(
    ("game", "random", "human"),
    [
        # dqn_zoo@45061f4b atari_data.py, the published figures.
        ("Breakout", 1.7, 30.5),
        ("Pong", -20.7, 14.6),
        ("MontezumaRevenge", 0.0, 4753.3),
        ("Skiing", -17098.1, -4336.9),
        # Alien's human score is 7127.7 in dqn_zoo but 6875.4 in the Nature DQN columns: the
        # module must read the dqn_zoo ones.
        ("Alien", 227.8, 7127.7),
    ],
)
def test_reference_scores_are_dqn_zoos(game, random, human):
    """(random, human) per game are the dqn_zoo columns, in that order, not the Nature DQN ones."""
    assert human_random_scores()[game] == (pytest.approx(random), pytest.approx(human))


@pytest.mark.parametrize(
    ("env_id", "expected"),
    [
        ("BreakoutNoFrameskip-v4", "Breakout"),
        ("ALE/Breakout-v5", "Breakout"),
        ("BreakoutDeterministic-v4", "Breakout"),
        ("Breakout-v4", "Breakout"),
        ("Breakout", "Breakout"),
        ("MontezumaRevengeNoFrameskip-v4", "MontezumaRevenge"),
        ("ALE/MontezumaRevenge-v5", "MontezumaRevenge"),
        ("ALE/VideoPinball-v5", "VideoPinball"),
    ],
)
def test_game_name_strips_namespace_suffix_and_version(env_id, expected):
    """The v4 (NoFrameskip, Deterministic, plain), ALE/...-v5 and bare ids all name the same game."""
    assert game_name(env_id) == expected


def test_breakout_random_is_0_and_human_is_1():
    """(score - random) / (human - random) with Breakout's 1.7 and 30.5, for every id form."""
    random, human = 1.7, 30.5
    for env_id in ("BreakoutNoFrameskip-v4", "ALE/Breakout-v5", "Breakout"):
        assert human_normalized_score(env_id, random) == pytest.approx(0.0, abs=1e-12)
        assert human_normalized_score(env_id, human) == pytest.approx(1.0)
        assert human_normalized_score(env_id, 16.1) == pytest.approx(0.5)
        # Beyond human and below random are not clipped.
        assert human_normalized_score(env_id, 400.0) == pytest.approx((400.0 - 1.7) / 28.8)
        assert human_normalized_score(env_id, 0.0) == pytest.approx(-1.7 / 28.8)


def test_negative_reference_scores():
    """Pong and Skiing have negative random (and for Skiing human) scores; the sign is kept right."""
    assert human_normalized_score("ALE/Pong-v5", 0.0) == pytest.approx(20.7 / 35.3)
    assert human_normalized_score("PongNoFrameskip-v4", 21.0) == pytest.approx(41.7 / 35.3)
    assert human_normalized_score("PongNoFrameskip-v4", -21.0) == pytest.approx(-0.3 / 35.3)
    # Skiing: random -17098.1, human -4336.9, so a less negative score is better.
    assert human_normalized_score("SkiingNoFrameskip-v4", -4336.9) == pytest.approx(1.0)
    assert human_normalized_score("ALE/Skiing-v5", -10717.5) == pytest.approx(0.5)
    assert human_normalized_score("ALE/Skiing-v5", -30000.0) < 0


def test_every_game_in_the_table_by_both_id_forms():
    """For all 57 rows: the CSV's gym id and the ALE/<Game>-v5 id score random as 0, human as 1."""
    for row in csv_rows():
        random, human = float(row["random"]), float(row["human"])
        midpoint = (random + human) / 2
        for env_id in (row["gym_id"], f"ALE/{row['game']}-v5"):
            assert human_normalized_score(env_id, random) == pytest.approx(0.0, abs=1e-9), env_id
            assert human_normalized_score(env_id, human) == pytest.approx(1.0), env_id
            assert human_normalized_score(env_id, midpoint) == pytest.approx(0.5), env_id


@pytest.mark.parametrize(
    "env_id", ["CartPole-v1", "HalfCheetah-v5", "ALE/NotAGame-v5", "NotAGameNoFrameskip-v4", ""]
)
def test_env_without_reference_scores_gives_none(env_id):
    """A non-Atari or unknown id has no human/random reference, so there is no normalised score."""
    assert human_normalized_score(env_id, 10.0) is None


def test_no_score_yet_gives_none():
    """A run with no finished episode (score None) has no normalised score, even for a known game."""
    assert human_normalized_score("BreakoutNoFrameskip-v4", None) is None
    assert human_normalized_score("ALE/Breakout-v5", None) is None
