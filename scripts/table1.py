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


def env_bests(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Env -> the best variant's mean raw score over its seeds: Table 1's 1 on that env."""
    return {
        env_id: float(max(np.mean(scores) for scores in variants.values()))
        for env_id, variants in runs_by_env(rows).items()
    }


def normalized_runs(
    rows: list[dict[str, Any]],
    random_scores: dict[str, float],
    bests: dict[str, float] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Variant -> env -> the normalised score of each of its runs (envs without a random score
    are left out). Per env, 1 is the best variant's mean over seeds (or ``bests[env]``, another
    table's 1, to put two sets of runs on one scale) and 0 the random policy."""
    result: dict[str, dict[str, list[float]]] = defaultdict(dict)
    own_bests = env_bests(rows)
    for env_id, variants in runs_by_env(rows).items():
        if env_id not in random_scores or (bests is not None and env_id not in bests):
            continue
        best = own_bests[env_id] if bests is None else bests[env_id]
        low = random_scores[env_id]
        scale = best - low if best != low else 1.0
        for variant, scores in variants.items():
            result[variant][env_id] = [(s - low) / scale for s in scores]
    return dict(result)


def pooled_mean(per_env: dict[str, list[float]]) -> float:
    """A setting's score: the mean over all its runs, every env's seeds together."""
    return float(np.mean([s for runs in per_env.values() for s in runs]))


def normalized_scores(
    rows: list[dict[str, Any]],
    random_scores: dict[str, float],
    bests: dict[str, float] | None = None,
) -> dict[str, dict]:
    """Per variant: its mean normalised score over runs, the run count, and per env the mean."""
    return {
        variant: {
            "score": pooled_mean(per_env),
            "runs": sum(len(runs) for runs in per_env.values()),
            "per_env": {env: float(np.mean(runs)) for env, runs in per_env.items()},
        }
        for variant, per_env in normalized_runs(rows, random_scores, bests).items()
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


BOOTSTRAP_SEEDS = range(20)
"""The bootstrap seeds a "within seed noise" verdict is checked under: a verdict that changes with
the seed is on the edge, and the page says so rather than taking the seed-0 interval's side."""


def verdict_on_the_edge(setting: dict[str, list[float]], best: dict[str, list[float]]) -> bool:
    """Whether "the gap's interval holds 0" depends on the bootstrap's seed (of ``BOOTSTRAP_SEEDS``)."""
    holds_zero = {gap_interval(setting, best, seed=seed)[1] >= 0 for seed in BOOTSTRAP_SEEDS}
    return len(holds_zero) > 1


def table1_lines(
    rows: list[dict[str, Any]], random_scores: dict[str, float], expected_runs: int | None = None
) -> list[str]:
    """Markdown: Table 1 beside the paper's column, with intervals and ranks, then per env."""
    per_variant = normalized_runs(rows, random_scores)
    ours = normalized_scores(rows, random_scores)
    if not ours:  # no run has ended an episode (or no env has a random score): nothing to rank
        return [f"No scores yet: none of the {len(rows)} runs has a last-100 return (no episode "
                "ended) on an env with a random-policy score.", ""]  # fmt: skip
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
    on_the_edge = [
        variant_label(v) for v in gaps if verdict_on_the_edge(per_variant[v], per_variant[best])
    ]
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
            "On the edge (whether the interval holds 0 changes with the bootstrap's seed, of "
            f"{len(BOOTSTRAP_SEEDS)} tried): "
            + ("; ".join(on_the_edge) + "." if on_the_edge else "none.")
            + " A percentile bootstrap over 3 seeds per task is narrow: it cannot show more spread "
            "than the three runs have, so these intervals understate the uncertainty.",
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


def setups_lines(
    today: list[dict[str, Any]], setup_2017: list[dict[str, Any]], random_scores: dict[str, float]
) -> list[str]:
    """Markdown: the paper's column beside ours under today's setup and under the 2017 code's
    (docs/results/setup-2017.md), each normalised as the paper does (per env, its own best
    setting = 1), with intervals, ranks and Kendall's tau against the paper."""
    paper = paper_table1()
    columns = {name: normalized_runs(rows, random_scores)
               for name, rows in (("today", today), ("2017", setup_2017))}  # fmt: skip
    scores = {name: {v: pooled_mean(per_env) for v, per_env in runs.items()}
              for name, runs in columns.items()}  # fmt: skip
    column_ranks = {name: ranks(s) for name, s in scores.items()}
    paper_ranks = ranks(paper)
    variants = sorted(
        set(scores["today"]) | set(scores["2017"]), key=lambda v: (variant_order(v), v)
    )

    def cell(name: str, v: str) -> str:
        if v not in columns[name]:
            return "n/a | | "
        low, high = bootstrap_interval(columns[name][v])
        runs = sum(len(r) for r in columns[name][v].values())
        return (f"{fmt(scores[name][v])} | [{fmt(low)}, {fmt(high)}] | "
                f"{column_ranks[name][v]} ({runs} runs)")  # fmt: skip

    lines = [
        "Each column normalised as the paper's: per env, its own best setting = 1 and the random "
        "policy = 0. Today's setup is this project's default (ppo2's and CleanRL's stabilisers); "
        "the 2017 setup is the code released with the paper ([what differs](setup-2017.md)).",
        "",
        *setup_incomplete_note(setup_2017),
        "| setting | paper | paper rank | today | 95% | rank | 2017 setup | 95% | rank |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        label = variant_label(v)
        lines.append(f"| {label} | {fmt(paper.get(label))} | {paper_ranks.get(label, 'n/a')} | "
                     f"{cell('today', v)} | {cell('2017', v)} |")  # fmt: skip
    for name in ("today", "2017"):
        agreement = rank_agreement({variant_label(v): s for v, s in scores[name].items()}, paper)
        if agreement:
            lines += ["", f"{'Today' if name == 'today' else 'The 2017 setup'}: {agreement}"]
    return [*lines, ""]


def setup_complete(setup_2017: list[dict[str, Any]], expected: int = 231) -> bool:
    """The 2017 record holds Table 1's 231 runs: its column is final."""
    return len(setup_2017) >= expected


def setup_incomplete_note(setup_2017: list[dict[str, Any]], expected: int = 231) -> list[str]:
    """Until the 2017 record holds Table 1's 231 runs its column is provisional, and says so."""
    if setup_complete(setup_2017, expected):
        return []
    return [
        f"**Incomplete.** The 2017 setup has {len(setup_2017)} of {expected} runs so far. Per env "
        "its 1 is the best of its settings recorded there yet (a setting alone on an env scores 1 "
        "there), so its scores and ranks will move as runs land; nothing is concluded from it "
        "until it is complete.",
        "",
    ]


def ablation_lines(
    ablation: list[dict[str, Any]], today: list[dict[str, Any]], random_scores: dict[str, float]
) -> list[str]:
    """Markdown: for each ablated objective, its score under today's setup and with one 2017
    choice at a time, all on Table 1's scale (per env, today's best setting = 1), each with its
    change from today's and that change's 95% interval (the two resampled on their own). A choice
    not yet run on every task is compared with today's runs on the tasks it has, and says so."""
    runs, objectives = ablated(ablation, today, random_scores)
    lines = [
        "On Table 1's scale: per env, today's best setting = 1 and the random policy = 0. Change: "
        "the score minus the same objective's under today's setup on the same tasks, with a 95% "
        "bootstrap interval; an interval that holds 0 cannot tell the choice from today's with "
        "three seeds.",
        "",
    ]
    for objective in objectives:
        base = runs.get(objective, {})
        lines += [f"**{variant_label(objective)}**", "",
                  "| setup | score | 95% | change from today's [95%] | runs |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for v in [objective] + sorted(x for x in runs if x.startswith(objective + "+")):
            per_env = runs[v]
            score = pooled_mean(per_env)
            low, high = bootstrap_interval(per_env)
            change = "today's"
            shared = {env: base[env] for env in per_env if env in base}
            if v != objective and shared:
                change = change_cell({env: per_env[env] for env in shared}, shared)
            name = "today's setup" if v == objective else "+ " + v.split("+", 1)[1]
            count = str(sum(len(r) for r in per_env.values()))
            if v != objective and len(per_env) < len(base):
                count += f" ({len(per_env)} of {len(base)} tasks: {', '.join(sorted(per_env))})"
            lines.append(
                f"| {name} | {fmt(score)} | [{fmt(low)}, {fmt(high)}] | {change} | {count} |"
            )
        lines.append("")
    return lines


def ablated(
    ablation: list[dict[str, Any]], today: list[dict[str, Any]], random_scores: dict[str, float]
) -> tuple[dict[str, dict[str, list[float]]], list[str]]:
    """The ablation's runs on today's scale (variant -> env -> normalised scores) and its ablated
    objectives in the paper's order (a variant ``{objective}+{choice}`` names a choice)."""
    runs = normalized_runs(ablation, random_scores, env_bests(today))
    objectives = sorted({v.split("+")[0] for v in runs}, key=lambda v: (variant_order(v), v))
    return runs, objectives


def change_cell(mine: dict[str, list[float]], today: dict[str, list[float]]) -> str:
    """A choice's change from today's over the same tasks, and its 95% interval (the two sets of
    runs resampled on their own)."""
    return gap_cell((pooled_mean(mine) - pooled_mean(today), gap_interval(mine, today)))


def ablation_by_task_lines(
    ablation: list[dict[str, Any]], today: list[dict[str, Any]], random_scores: dict[str, float]
) -> list[str]:
    """Markdown: ``ablation_lines``' changes task by task, which the pooled score can hide (a
    choice that lifts two tasks far and leaves five alone)."""
    runs, objectives = ablated(ablation, today, random_scores)
    return [line for objective in objectives for line in per_task_change_lines(objective, runs)]


def per_task_change_lines(
    objective: str,
    runs: dict[str, dict[str, list[float]]],
    base_label: str = "today's setup",
    title: str | None = None,
) -> list[str]:
    """Markdown: one objective's table of ``ablation_by_task_lines``. The base row (``objective``'s
    own runs, today's setup unless ``base_label`` says otherwise) holds its mean normalised score on
    each task; each choice's row its change from that on the task, with a 95% interval over the
    seeds of each; '-' where the choice has not run on the task yet. ``title`` heads the table
    (default: the objective's label in the paper)."""
    base = runs.get(objective, {})
    envs = sorted(base)
    choices = sorted(v for v in runs if v.startswith(objective + "+"))
    if not envs or not choices:
        return []
    lines = [
        f"**{title or variant_label(objective)}** ({base_label}: the mean score on the task; a choice: "
        "its change from that, [95%])",
        "",
        "| setup | " + " | ".join(envs) + " |",
        "|---" * (len(envs) + 1) + "|",
        f"| {base_label} | " + " | ".join(fmt(float(np.mean(base[env]))) for env in envs) + " |",
    ]
    for v in choices:
        cells = [
            change_cell({env: runs[v][env]}, {env: base[env]}) if env in runs[v] else "-"
            for env in envs
        ]
        lines.append(f"| + {v[len(objective) + 1 :]} | " + " | ".join(cells) + " |")
    return [*lines, ""]
