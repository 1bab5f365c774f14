"""The paper's Atari tables from result rows: Table 6 per game, Table 2's games won, rliable.

Per game our two scores (mean over all of training; last 100 episodes) beside the paper's A2C,
ACER and PPO (last 100 episodes; the paper publishes no per-game values for the all-training
metric, only its win counts), the games-won count, and human-normalised aggregates with rliable
(median, mean, IQM, optimality gap; 95% stratified-bootstrap intervals). A module, not a script.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from typing import Any

import numpy as np
from presets import REPO

from common.scores import game_name, human_normalized_score

BASELINES = REPO / "baselines"


def paper_atari() -> dict[str, dict[str, float]]:
    """Game -> the paper's A2C, ACER and PPO last-100-episode scores (Table 6)."""
    with open(BASELINES / "ppo_paper_atari.csv") as handle:
        return {
            row["game"]: {k: float(row[k]) for k in ("a2c", "acer", "ppo")}
            for row in csv.DictReader(handle)
        }


def per_game_means(rows: list[dict[str, Any]], metric: str) -> dict[str, float]:
    """Game -> our mean over seeds of ``metric`` (one variant's rows)."""
    by_game = defaultdict(list)
    for r in rows:
        if r.get(metric) is not None:
            by_game[game_name(r["env_id"])].append(r[metric])
    return {game: float(np.mean(values)) for game, values in by_game.items()}


def games_won(
    ours: dict[str, float], paper: dict[str, dict[str, float]], decimals: int = 1
) -> dict:
    """Table 2's count: per game, the best of A2C, ACER (the paper's) and our PPO.

    Scores are compared at the paper's precision (``decimals``); a shared best is a tie. Games we
    have no result for are not counted and are listed under ``missing``.
    """
    counts = {"a2c": 0, "acer": 0, "ppo": 0, "tie": 0}
    for game, theirs in paper.items():
        if game not in ours:
            continue
        scores = {"a2c": theirs["a2c"], "acer": theirs["acer"], "ppo": ours[game]}
        rounded = {k: round(v, decimals) for k, v in scores.items()}
        top = max(rounded.values())
        winners = [k for k, v in rounded.items() if v == top]
        counts[winners[0] if len(winners) == 1 else "tie"] += 1
    counts["missing"] = sorted(set(paper) - set(ours))
    return counts


def score_matrix(rows: list[dict[str, Any]], metric: str) -> tuple[np.ndarray, list[str]]:
    """Human-normalised scores as (runs, games) for rliable: seeds in order, games sorted.

    rliable's stratified bootstrap needs the same number of runs per game, so every game keeps as
    many seeds as the game with the fewest.
    """
    by_game = defaultdict(list)
    for r in sorted(rows, key=lambda r: r["seed"]):
        hns = human_normalized_score(r["env_id"], r.get(metric))
        if hns is not None:
            by_game[game_name(r["env_id"])].append(hns)
    games = sorted(by_game)
    if not games:  # e.g. runs too short to finish an episode
        return np.empty((0, 0)), []
    runs = min(len(v) for v in by_game.values())
    return np.array([[by_game[g][i] for g in games] for i in range(runs)]), games


def rliable_aggregates(scores: dict[str, np.ndarray], reps: int) -> dict[str, dict[str, tuple]]:
    """Median, mean, IQM and optimality gap with 95% stratified-bootstrap intervals, per algorithm."""
    from rliable import library as rly
    from rliable import metrics

    def aggregate(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_median(x), metrics.aggregate_mean(x),
                         metrics.aggregate_iqm(x), metrics.aggregate_optimality_gap(x)])  # fmt: skip

    np.random.seed(0)  # rliable draws its bootstrap from NumPy's global generator
    points, intervals = rly.get_interval_estimates(scores, aggregate, reps=reps)
    names = ["median", "mean", "iqm", "optimality_gap"]
    return {algo: {n: (float(points[algo][i]), float(intervals[algo][0][i]), float(intervals[algo][1][i]))
                   for i, n in enumerate(names)} for algo in scores}  # fmt: skip


def fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def atari_lines(
    rows: list[dict[str, Any]], reps: int
) -> tuple[list[str], dict[str, np.ndarray], dict[str, dict]]:
    """Markdown for Tables 6 and 2 per variant and the rliable table; the scores and aggregates
    are returned for the plots."""
    paper = paper_atari()
    lines: list[str] = []
    scores_for_rliable: dict[str, np.ndarray] = {}
    for variant in sorted({r["variant"] for r in rows}):
        mine = [r for r in rows if r["variant"] == variant]
        last = per_game_means(mine, "mean_return_last_100")
        whole = per_game_means(mine, "mean_return_all_training")
        won = games_won(last, paper)
        lines += [f"## Atari, variant `{variant}`", "",
                  "### Table 6: per game (ours: mean over seeds; paper: A2C, ACER, PPO, last 100 episodes, 10M steps)", "",
                  "| game | ours, all training | ours, last 100 | paper A2C | paper ACER | paper PPO | ours, human-normalised (last 100) |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for game in sorted({game_name(r["env_id"]) for r in mine}):  # n/a: no finished episode
            p = paper.get(game, {})
            hns = human_normalized_score(game, last.get(game))
            lines.append(f"| {game} | {fmt(whole.get(game), 1)} | {fmt(last.get(game), 1)} | {fmt(p.get('a2c'), 1)} | "
                         f"{fmt(p.get('acer'), 1)} | {fmt(p.get('ppo'), 1)} | {fmt(hns)} |")  # fmt: skip
        lines += ["", "### Table 2: games won", "",
                  "| scoring metric | A2C | ACER | PPO | Tie |", "|---|---|---|---|---|",
                  "| (1) avg. episode reward over all training: paper | 1 | 18 | 30 | 0 |",
                  "| (2) avg. episode reward over last 100 episodes: paper | 1 | 28 | 19 | 1 |",
                  f"| (2) last 100 episodes: ours vs the paper's A2C and ACER | {won['a2c']} | {won['acer']} | {won['ppo']} | {won['tie']} |",
                  "",
                  "The paper publishes per-game A2C and ACER values only for metric (2), so metric (1) cannot be "
                  "recounted with our runs; our per-game all-training values are in the table above. "
                  f"Games counted: {sum(won[k] for k in ('a2c', 'acer', 'ppo', 'tie'))}; without results: "
                  f"{', '.join(won['missing']) or 'none'}.", ""]  # fmt: skip
        matrix, games = score_matrix(mine, "mean_return_last_100")
        if games:
            scores_for_rliable[f"PPO ours ({variant})"] = matrix
    if not scores_for_rliable:
        return lines, {}, {}
    our_games = sorted(
        {
            game_name(r["env_id"])
            for r in rows
            if human_normalized_score(r["env_id"], 0.0) is not None
        }
    )
    for algo in ("a2c", "acer", "ppo"):
        if all(g in paper for g in our_games):
            scores_for_rliable[f"paper {algo.upper()} (mean of 3 seeds)"] = np.array(
                [[human_normalized_score(g, paper[g][algo]) for g in our_games]]
            )
    aggregates = rliable_aggregates(scores_for_rliable, reps)
    lines += ["## Human-normalised aggregates (rliable, 95% stratified-bootstrap CIs)", "",
              "| algorithm | median | mean | IQM | optimality gap |", "|---|---|---|---|---|"]  # fmt: skip
    for algo, agg in aggregates.items():
        cells = [f"{p:.3f} [{lo:.3f}, {hi:.3f}]" for p, lo, hi in agg.values()]
        lines.append(f"| {algo} | " + " | ".join(cells) + " |")
    lines += ["", "The paper's rows are single points per game (its Table 6 means), so their intervals "
              "reflect only the spread over games.", ""]  # fmt: skip
    return lines, scores_for_rliable, aggregates
