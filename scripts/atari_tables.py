"""The paper's Atari tables from result rows: Table 6 per game, Table 2's games won, rliable.

Per game our two scores (mean over all of training; last 100 episodes) beside the paper's A2C,
ACER and PPO (last 100 episodes; the paper publishes no per-game values for the all-training
metric, only its win counts), the games-won count, and human-normalised aggregates with rliable
(median, mean, IQM, optimality gap; 95% stratified-bootstrap intervals). Rows of this pipeline's
A2C (variant ``a2c``: the ``paper-atari49-a2c`` preset) are kept apart from PPO's: they get their
own columns, their own rliable row and a second games-won table, ours against our A2C on both of
the paper's metrics. A module, not a script.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from typing import Any

import numpy as np
from presets import REPO

from common.scores import game_name, human_normalized_score

BASELINES = REPO / "baselines"
# Our A2C's variant (the paper-atari49-a2c preset's) and the command that sweeps it.
A2C_VARIANT = "a2c"
A2C_SWEEP = "python scripts/benchmark.py --preset paper-atari49-a2c"
METRICS = {"mean_return_all_training": "(1) avg. episode reward over all training",
           "mean_return_last_100": "(2) avg. episode reward over last 100 episodes"}  # fmt: skip


def is_a2c(row: dict[str, Any]) -> bool:
    """A row of our A2C, not of a PPO variant."""
    return row["variant"] == A2C_VARIANT


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


def count_wins(scores: dict[str, dict[str, float]], games: list[str], decimals: int = 1) -> dict:
    """Per game, which algorithm scores best: algorithm -> game -> score in, wins per algorithm out.

    Scores are compared at ``decimals`` (the tables' precision); a shared best is a ``tie``. Games
    some algorithm has no score for are not counted and are listed under ``missing``.
    """
    counts: dict = {**{algo: 0 for algo in scores}, "tie": 0}
    missing = []
    for game in games:
        if any(game not in by_game for by_game in scores.values()):
            missing.append(game)
            continue
        rounded = {algo: round(by_game[game], decimals) for algo, by_game in scores.items()}
        top = max(rounded.values())
        winners = [algo for algo, v in rounded.items() if v == top]
        counts[winners[0] if len(winners) == 1 else "tie"] += 1
    counts["missing"] = sorted(missing)
    return counts


def games_won(
    ours: dict[str, float], paper: dict[str, dict[str, float]], decimals: int = 1
) -> dict:
    """Table 2's count: per game of the paper's, the best of A2C, ACER (the paper's) and our PPO.

    Scores are compared at the paper's precision (``decimals``); a shared best is a tie. Games we
    have no result for are not counted and are listed under ``missing``.
    """
    theirs = {algo: {game: p[algo] for game, p in paper.items()} for algo in ("a2c", "acer")}
    return count_wins({**theirs, "ppo": ours}, list(paper), decimals)


def ours_vs_our_a2c(ppo: list[dict[str, Any]], a2c: list[dict[str, Any]]) -> dict[str, dict]:
    """Table 2's count between our PPO and our A2C on both of the paper's metrics (mean over
    seeds per game; the games either has run): metric -> ``count_wins``'s counts."""
    games = sorted({game_name(r["env_id"]) for r in ppo + a2c})
    return {
        metric: count_wins({"a2c": per_game_means(a2c, metric), "ppo": per_game_means(ppo, metric)},
                           games)
        for metric in METRICS
    }  # fmt: skip


def ours_vs_our_a2c_lines(ppo: list[dict[str, Any]], a2c: list[dict[str, Any]]) -> list[str]:
    """The second games-won table (ours against our A2C), or how to run the A2C sweep."""
    if not a2c:
        return [f"Ours against our A2C (both metrics): the A2C sweep has not been run yet "
                f"(`{A2C_SWEEP}`: the same 49 games, seeds and 10M steps).", ""]  # fmt: skip
    won = ours_vs_our_a2c(ppo, a2c)
    lines = ["### Table 2, ours: our PPO against our A2C (`--algorithm a2c`), games won", "",
             "| scoring metric | A2C (ours) | PPO (ours) | Tie |", "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {label} | {won[m]['a2c']} | {won[m]['ppo']} | {won[m]['tie']} |"
              for m, label in METRICS.items()]  # fmt: skip
    lines += ["", "Per game, the mean over seeds, compared at one decimal (a shared best is a tie). "
              + " ".join(f"Metric {label[:3]}: {sum(won[m][k] for k in ('a2c', 'ppo', 'tie'))} games "
                         f"counted, without a result of both: {', '.join(won[m]['missing']) or 'none'}."
                         for m, label in METRICS.items()), ""]  # fmt: skip
    return lines


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
    """Markdown for Tables 6 and 2 per PPO variant and the rliable table; the scores and
    aggregates are returned for the plots. Our A2C's rows (``is_a2c``) are never a PPO variant's:
    they are their own columns and rliable row, and the second Table 2 counts against them."""
    paper = paper_atari()
    a2c = [r for r in rows if is_a2c(r)]
    ppo_rows = [r for r in rows if not is_a2c(r)]
    a2c_last = per_game_means(a2c, "mean_return_last_100")
    a2c_whole = per_game_means(a2c, "mean_return_all_training")
    a2c_head = " our A2C, all training | our A2C, last 100 |" if a2c else ""
    lines: list[str] = []
    if a2c and not ppo_rows:
        lines += [f"Our A2C only ({len(a2c)} runs): Tables 6 and 2 come with PPO's runs "
                  "(the paper-atari49 preset); its scores are in the rliable table below.", ""]  # fmt: skip
    scores_for_rliable: dict[str, np.ndarray] = {}
    for variant in sorted({r["variant"] for r in ppo_rows}):
        mine = [r for r in ppo_rows if r["variant"] == variant]
        last = per_game_means(mine, "mean_return_last_100")
        whole = per_game_means(mine, "mean_return_all_training")
        won = games_won(last, paper)
        lines += [f"## Atari, variant `{variant}`", "",
                  "### Table 6: per game (ours: mean over seeds; paper: A2C, ACER, PPO, last 100 episodes, 10M steps)", "",
                  f"| game | ours, all training | ours, last 100 |{a2c_head} paper A2C | paper ACER | paper PPO | ours, human-normalised (last 100) |",
                  "|---|---|---|" + "---|---|" * bool(a2c) + "---|---|---|---|"]  # fmt: skip
        for game in sorted({game_name(r["env_id"]) for r in mine}):  # n/a: no finished episode
            p = paper.get(game, {})
            hns = human_normalized_score(game, last.get(game))
            ours_a2c = (
                f" {fmt(a2c_whole.get(game), 1)} | {fmt(a2c_last.get(game), 1)} |" if a2c else ""
            )
            lines.append(f"| {game} | {fmt(whole.get(game), 1)} | {fmt(last.get(game), 1)} |{ours_a2c} {fmt(p.get('a2c'), 1)} | "
                         f"{fmt(p.get('acer'), 1)} | {fmt(p.get('ppo'), 1)} | {fmt(hns)} |")  # fmt: skip
        lines += ["", "### Table 2: games won", "",
                  "| scoring metric | A2C | ACER | PPO | Tie |", "|---|---|---|---|---|",
                  "| (1) avg. episode reward over all training: paper | 1 | 18 | 30 | 0 |",
                  "| (2) avg. episode reward over last 100 episodes: paper | 1 | 28 | 19 | 1 |",
                  f"| (2) last 100 episodes: ours vs the paper's A2C and ACER | {won['a2c']} | {won['acer']} | {won['ppo']} | {won['tie']} |",
                  "",
                  "The paper publishes per-game A2C and ACER values only for metric (2), so metric (1) cannot be "
                  "recounted with our runs against them; our per-game all-training values are in the table above. "
                  f"Games counted: {sum(won[k] for k in ('a2c', 'acer', 'ppo', 'tie'))}; without results: "
                  f"{', '.join(won['missing']) or 'none'}.", ""]  # fmt: skip
        lines += ours_vs_our_a2c_lines(mine, a2c)
        matrix, games = score_matrix(mine, "mean_return_last_100")
        if games:
            scores_for_rliable[f"PPO ours ({variant})"] = matrix
    matrix, games = score_matrix(a2c, "mean_return_last_100")
    if games:
        scores_for_rliable[f"A2C ours ({A2C_VARIANT})"] = matrix
    if not scores_for_rliable:
        return lines, {}, {}
    our_games = sorted(  # the paper's points on the games our PPO ran (our A2C's without PPO runs)
        {
            game_name(r["env_id"])
            for r in (ppo_rows or a2c)
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
