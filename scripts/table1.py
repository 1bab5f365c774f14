"""The paper's Table 1 from result rows: normalised scores, bootstrap intervals, ranks, random scores.

Section 6.1 of the paper: each run scores the mean return of its last 100 episodes; per env the
scores are shifted and scaled so that a random policy scores 0 and the best setting (its mean over
seeds) scores 1; a setting's score is the average over its runs (envs x seeds). A module, not a
script: ``report.py`` and ``measure_random_scores.py`` use it.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from presets import REPO, variant_label, variant_order

from common.files import atomic_write_bytes

BASELINES = REPO / "baselines"
METRIC = "mean_return_last_100"


def paper_table1() -> dict[str, float]:
    """The paper's normalised score per setting label (baselines/ppo_paper_table1_surrogates.csv)."""
    with open(BASELINES / "ppo_paper_table1_surrogates.csv") as handle:
        return {
            row["algorithm_setting"]: float(row["avg_normalized_score"])
            for row in csv.DictReader(handle)
        }


def scored(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with a finite last-100 score (a run that never finished an episode has none)."""
    return [r for r in rows if r.get(METRIC) is not None and np.isfinite(r[METRIC])]


def runs_by_env(rows: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Env -> variant -> the raw score of each of its runs, in seed order: what Table 1 normalises
    and Figure 3 (``figure3.py``) tabulates."""
    by_env: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in sorted(scored(rows), key=lambda r: r["seed"]):
        by_env[r["env_id"]][r["variant"]].append(r[METRIC])
    return {env_id: dict(variants) for env_id, variants in by_env.items()}


def normalized_runs(
    rows: list[dict[str, Any]], random_scores: dict[str, float]
) -> dict[str, dict[str, list[float]]]:
    """Variant -> env -> the normalised score of each of its runs (envs without a random score
    are left out). Per env, 1 is the best variant's mean over seeds and 0 the random policy."""
    result: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for env_id, variants in runs_by_env(rows).items():
        if env_id not in random_scores:
            continue
        best = max(np.mean(scores) for scores in variants.values())
        low = random_scores[env_id]
        scale = best - low if best != low else 1.0
        for variant, scores in variants.items():
            result[variant][env_id] = [(s - low) / scale for s in scores]
    return dict(result)


def normalized_scores(
    rows: list[dict[str, Any]], random_scores: dict[str, float]
) -> dict[str, dict]:
    """Per variant: its mean normalised score over runs, the run count, and per env the mean."""
    return {
        variant: {
            "score": float(np.mean([s for runs in per_env.values() for s in runs])),
            "runs": sum(len(runs) for runs in per_env.values()),
            "per_env": {env: float(np.mean(runs)) for env, runs in per_env.items()},
        }
        for variant, per_env in normalized_runs(rows, random_scores).items()
    }


def bootstrap_means(
    per_env: dict[str, list[float]], reps: int, rng: np.random.Generator
) -> np.ndarray:
    """``reps`` resampled means of the normalised score, resampling seeds within each env
    (stratified, as rliable does), so every resample keeps the setting's mix of envs."""
    strata = [np.asarray(runs, dtype=np.float64) for _, runs in sorted(per_env.items())]
    total = sum(len(s) for s in strata)
    sums = np.zeros(reps)
    for runs in strata:
        picks = rng.integers(0, len(runs), size=(reps, len(runs)))
        sums += runs[picks].sum(axis=1)
    return sums / total


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    return float(np.percentile(samples, tail)), float(np.percentile(samples, 100 - tail))


def bootstrap_interval(
    per_env: dict[str, list[float]], reps: int = 10_000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """A percentile bootstrap interval of a setting's mean normalised score."""
    return percentile_interval(bootstrap_means(per_env, reps, np.random.default_rng(seed)), level)


def gap_interval(
    setting: dict[str, list[float]],
    best: dict[str, list[float]],
    reps: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """A percentile bootstrap interval of (setting's mean - best's mean), each resampled on its
    own (their seeds are separate runs, not pairs): if it holds 0, three seeds cannot tell the
    two apart."""
    rng = np.random.default_rng(seed)
    gaps = bootstrap_means(setting, reps, rng) - bootstrap_means(best, reps, rng)
    return percentile_interval(gaps, level)


def rank_agreement(ours: dict[str, float], paper: dict[str, float]) -> str:
    """Kendall's tau between our scores and the paper's over the settings both have."""
    from scipy.stats import kendalltau

    shared = sorted(set(ours) & set(paper))
    if len(shared) < 3:
        return ""
    tau, p_value = kendalltau([ours[s] for s in shared], [paper[s] for s in shared])
    return (
        f"Rank agreement with the paper's column: Kendall's tau {tau:.2f} over the {len(shared)} "
        f"settings (p = {p_value:.2f}; 1 is the same order, 0 no relation)."
    )


def ranks(scores: dict[str, float]) -> dict[str, int]:
    """1 for the highest score; ties share the better rank."""
    ordered = sorted(scores.values(), reverse=True)
    return {name: ordered.index(value) + 1 for name, value in scores.items()}


def fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def incomplete_note(counted: int, expected_runs: int | None, variants: int) -> list[str]:
    if not expected_runs or counted >= expected_runs:
        return []
    return [
        f"**Incomplete.** Per env, 1 is the best of the settings recorded so far ({variants} of "
        "the paper's 11 have runs), so scores and ranks will move as runs land. Our rank is "
        "among the settings with runs; the paper's rank is among all 11.",
        "",
    ]


def best_setting(our_ranks: dict[str, int]) -> str:
    """The setting ranked first here (on a tie, the one the paper lists first)."""
    return min(our_ranks, key=lambda v: (our_ranks[v], variant_order(v)))


def gap_cell(gap: tuple[float, tuple[float, float]]) -> str:
    """'-0.04 [-0.11, +0.03]': a setting's score minus the best's, and its 95% interval."""
    point, (low, high) = gap
    return f"{point:+.2f} [{low:+.2f}, {high:+.2f}]"


def headline(
    ours: dict[str, dict[str, Any]],
    intervals: dict[str, tuple[float, float]],
    our_ranks: dict[str, int],
    paper_ranks: dict[str, int],
    gaps: dict[str, tuple[float, tuple[float, float]]],
    counted: int,
    expected_runs: int | None,
) -> str:
    """One sentence for the README: the best setting here, where the paper's best (clipping at
    0.2) and no clipping land, each with its score, interval and rank (``table1_lines``' ranks)
    and, below the best, its gap to the best; and the runs counted."""

    def cell(v: str) -> str:
        low, high = intervals[v]
        paper = paper_ranks.get(variant_label(v), "n/a")
        gap = f", {gap_cell(gaps[v])} from the best" if v in gaps else ""
        return (f"{variant_label(v)}: {fmt(ours[v]['score'])} [{fmt(low)}, {fmt(high)}], "
                f"rank {our_ranks[v]} of {len(ours)} (paper: rank {paper}){gap}")  # fmt: skip

    best = best_setting(our_ranks)
    shown = [best] + [v for v in ("clip_0.2", "no_clip") if v in ours and v != best]
    runs = f"{counted} of {expected_runs} runs" if expected_runs else f"{counted} runs"
    return f"**Headline ({runs}).** " + "; ".join(cell(v) for v in shown) + "."


def table1_lines(
    rows: list[dict[str, Any]], random_scores: dict[str, float], expected_runs: int | None = None
) -> list[str]:
    """Markdown: Table 1 beside the paper's column, with intervals and ranks, then per env."""
    per_variant = normalized_runs(rows, random_scores)
    ours = normalized_scores(rows, random_scores)
    paper = paper_table1()
    variants = sorted(ours, key=lambda v: (variant_order(v), v))
    our_ranks = ranks({v: ours[v]["score"] for v in variants})
    paper_ranks = ranks(paper)  # among all of the paper's settings, whichever we have runs of
    diverged = defaultdict(int)
    for r in rows:
        if r.get("status") == "diverged":
            diverged[r["variant"]] += 1
    counted = sum(d["runs"] for d in ours.values())
    intervals = {v: bootstrap_interval(per_variant[v]) for v in variants}
    best = best_setting(our_ranks)
    gaps = {
        v: (ours[v]["score"] - ours[best]["score"], gap_interval(per_variant[v], per_variant[best]))
        for v in variants
        if v != best
    }
    within_noise = [variant_label(v) for v, (_, (_, high)) in gaps.items() if high >= 0]
    lines = [
        "Score: mean return over the last 100 episodes; per env, random policy = 0 and the best "
        "setting (mean over seeds) = 1; averaged over the runs (envs x seeds) of each setting. "
        "Interval: 95% percentile bootstrap of that mean, resampling seeds within each env.",
        "",
        f"Runs counted: {counted}" + (f" of {expected_runs}" if expected_runs else "") + ".",
        "",
        headline(ours, intervals, our_ranks, paper_ranks, gaps, counted, expected_runs),
        "",
        *incomplete_note(counted, expected_runs, len(variants)),
        # The comparison the table exists for (ours beside the paper's) comes first, so that it
        # stays in view on a laptop screen; the columns that qualify it follow.
        "| setting | ours | paper | rank | paper rank | 95% interval | gap to the best [95%] "
        "| runs | diverged |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        low, high = intervals[v]
        label = variant_label(v)
        lines.append(
            f"| {label} | {fmt(ours[v]['score'])} | {fmt(paper.get(label))} | {our_ranks[v]} "
            f"| {paper_ranks.get(label, 'n/a')} | [{fmt(low)}, {fmt(high)}] "
            f"| {gap_cell(gaps[v]) if v in gaps else 'best'} | {ours[v]['runs']} | {diverged[v]} |"
        )
    if gaps:
        lines += [
            "",
            "Gap to the best: the setting's score minus the best's, with a 95% bootstrap interval "
            "of the difference (each setting's seeds resampled within each env, on their own). "
            f"Within seed noise of the best (the interval holds 0): {len(within_noise)} of "
            f"{len(gaps)} settings" + (f" ({'; '.join(within_noise)})." if within_noise else "."),
        ]
    agreement = rank_agreement({variant_label(v): ours[v]["score"] for v in variants}, paper)
    lines += ["", agreement] if agreement else []
    envs = sorted({e for d in ours.values() for e in d["per_env"]})
    lines += ["", "Per env (normalised mean over seeds):", "",
              "| setting | " + " | ".join(envs) + " |", "|---" * (len(envs) + 1) + "|"]  # fmt: skip
    for v in variants:
        lines.append(f"| {v} | " + " | ".join(fmt(ours[v]["per_env"].get(e)) for e in envs) + " |")
    lines += ["", "Raw scores (mean over seeds of the last-100 return):", "",
              "| setting | " + " | ".join(envs) + " |", "|---" * (len(envs) + 1) + "|"]  # fmt: skip
    raw = runs_by_env(rows)
    for v in variants:
        cells = []
        for e in envs:
            values = raw.get(e, {}).get(v, [])
            cells.append(f"{np.mean(values):.1f} (n={len(values)})" if values else "n/a")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    lines += ["", "Random-policy scores (the 0): " + ", ".join(
        f"{e} {s:.1f}" for e, s in sorted(random_scores.items()) if e in envs), ""]  # fmt: skip
    return lines


# ---------------------------------------------------------------- random-policy scores


def measure_random_scores(
    env_ids: list[str], episodes: int = 100, seed: int = 0
) -> dict[str, dict]:
    """Uniformly random actions, ``episodes`` whole episodes per env: mean and std of the return."""
    import gymnasium as gym

    scores = {}
    for env_id in env_ids:
        env = gym.make(env_id)
        env.action_space.seed(seed)
        returns = []
        for episode in range(episodes):
            env.reset(seed=seed + episode)
            total, done = 0.0, False
            while not done:
                _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        env.close()
        scores[env_id] = {"score": float(np.mean(returns)), "std": float(np.std(returns)),
                          "episodes": episodes, "seed": seed}  # fmt: skip
    return scores


def write_random_scores(path: str | Path, scores: dict[str, dict]) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["env_id", "score", "std", "episodes", "seed"])
    for env_id, s in sorted(scores.items()):
        writer.writerow([env_id, f"{s['score']:.3f}", f"{s['std']:.3f}", s["episodes"], s["seed"]])
    atomic_write_bytes(path, text.getvalue().encode())


def read_random_scores(path: str | Path) -> dict[str, float]:
    """env_id -> mean random-policy return, from a CSV with columns env_id and score."""
    with open(path) as handle:
        return {row["env_id"]: float(row["score"]) for row in csv.DictReader(handle)}
