"""The paper's Figure 3 from result rows: which runs it shows, and its final scores per task.

Figure 3 compares PPO (clipping, epsilon = 0.2) with TRPO, A2C, vanilla PG with an adaptive step
size and CEM by their learning curves on each MuJoCo task. The paper gives no numbers for it, so
beside the curves (drawn by ``report.py``) the page tabulates each algorithm's final score per
task with the interval Table 1 uses. A module, not a script: ``report.py`` uses it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np
from presets import FIGURE3_VARIANTS, TABLE1_VARIANTS
from table1 import bootstrap_interval, runs_by_env

# The algorithms of Figure 3 that are not a Table 1 setting: a sweep that ran one is a Figure 3 sweep.
COMPARISONS = tuple(v for v in FIGURE3_VARIANTS if v not in TABLE1_VARIANTS)

Score = tuple[float, float, float, int]  # mean over seeds, interval low, high, runs


def algorithms(rows: list[dict[str, Any]]) -> list[str]:
    """The Figure 3 algorithms the rows hold, in the paper's legend order."""
    present = {r["variant"] for r in rows}
    return [v for v in FIGURE3_VARIANTS if v in present]


def algorithm_label(variant: str) -> str:
    """The paper's legend label of a Figure 3 algorithm ("PPO (Clip)" for clip_0.2)."""
    return FIGURE3_VARIANTS[variant][1]


def split_rows(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(Table 1's rows, Figure 3's rows) of the MuJoCo rows.

    Figure 3 is drawn when a comparison algorithm ran, over the rows of Figure 3's algorithms, and
    those algorithms are no Table 1 settings. PPO's clip 0.2 runs stay in Table 1 only when other
    Table 1 settings ran beside them: alone they would make a table of one setting scoring 1.
    """
    if not any(r["variant"] in COMPARISONS for r in rows):
        return rows, []
    figure = [r for r in rows if r["variant"] in FIGURE3_VARIANTS]
    table = [r for r in rows if r["variant"] not in COMPARISONS]
    if {r["variant"] for r in table} <= set(FIGURE3_VARIANTS):
        table = []
    return table, figure


def final_scores(rows: list[dict[str, Any]]) -> dict[str, dict[str, Score]]:
    """Task -> algorithm -> the mean over seeds of the last-100 return, its 95% bootstrap interval
    (Table 1's, resampling seeds) and the run count; runs without a finished episode are left out."""
    scores: dict[str, dict[str, Score]] = defaultdict(dict)
    for env_id, per_variant in sorted(runs_by_env(rows).items()):
        for variant, runs in per_variant.items():
            low, high = bootstrap_interval({env_id: runs})
            scores[env_id][variant] = (float(np.mean(runs)), low, high, len(runs))
    return dict(scores)


def score_cell(score: Score | None) -> str:
    if score is None:
        return "n/a"
    mean, low, high, runs = score
    return f"{mean:.1f} [{low:.1f}, {high:.1f}] (n={runs})"


def still_to_run(rows: list[dict[str, Any]], planned: dict[str, int] | None) -> list[str]:
    """What the preset has not run yet, per algorithm; ``planned``: its runs of each algorithm (a
    preset may plan only some of Figure 3's, as ``paper-figure3-2017`` plans PPO and TRPO)."""
    done, planned = Counter(r["variant"] for r in rows), planned or {}
    left = {v: planned[v] - done[v] for v in FIGURE3_VARIANTS if done[v] < planned.get(v, 0)}
    if not left:
        return []
    return [
        f"Still to run ({sum(left.values())} runs): "
        f"{', '.join(f'{algorithm_label(v)} {n}' for v, n in left.items())}. The preset's "
        "command, on any machine, runs only these.",
        "",
    ]


def figure3_lines(rows: list[dict[str, Any]], planned: dict[str, int] | None = None) -> list[str]:
    """Markdown: the final score of each algorithm on each task, with intervals and run counts."""
    variants = algorithms(rows)
    scores = final_scores(rows)
    tasks = sorted({r["env_id"] for r in rows})
    diverged = sum(r.get("status") == "diverged" for r in rows)
    expected_runs = sum(planned.values()) if planned else None
    lines = [
        "Score: mean return over the last 100 episodes of a run (raw, not normalised), averaged "
        "over seeds. Interval: 95% percentile bootstrap of that mean, resampling seeds (as Table "
        "1's). The paper shows Figure 3 as curves only, so there is no paper column.",
        "",
        f"Runs: {len(rows)}" + (f" of {expected_runs}" if expected_runs else "")
        + f", {diverged} diverged.",
        "",
        *still_to_run(rows, planned),
        "| task | " + " | ".join(algorithm_label(v) for v in variants) + " |",
        "|---" * (len(variants) + 1) + "|",
    ]  # fmt: skip
    for task in tasks:
        cells = [score_cell(scores.get(task, {}).get(v)) for v in variants]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return [*lines, ""]
