"""Reports of sweeps: the paper's Tables 1, 2 and 6 and Figure 3 beside ours, rliable statistics, plots.

    python scripts/report.py                                   # docs/results/ from the committed records
    python scripts/report.py --runs-dir runs/sweep-smoke --out reports/smoke   # any sweep's run folders

Without ``--runs-dir`` it reads only the results records (``docs/results/records/<preset>/``,
written by ``benchmark.py``) and rewrites ``docs/results/<preset>.md`` and its plots, so the
results pages are reproducible from what is on main. With ``--runs-dir`` it reads each run's
summary.json and TensorBoard events instead and writes ``report.md`` to ``--out``. No network.

The tables are computed in ``table1.py`` (MuJoCo, the paper's section 6.1), ``figure3.py`` (PPO
against TRPO, A2C, vanilla PG and CEM, drawn when a sweep ran those: the ``paper-figure3`` and
``smoke-figure3`` presets) and ``atari_tables.py`` (Tables 2 and 6, rliable); this file draws the
plots and writes the pages.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import figure3
import numpy as np
import table1
from atari_tables import atari_lines
from curves import trailing_mean
from presets import PAIRS_BASE, PAIRS_ENVS, REPO, presets, variant_label, variant_order
from records import RECORDS, Record, key_of, result_of_run, shared_records
from table1 import measure_random_scores, read_random_scores, table1_lines

from common.cli import UsageError, exit_usage, parse_args, require_positive
from common.scores import game_name, human_random_scores

RESULTS = REPO / "docs" / "results"
# A results page's heading (and the browser tab's title) says what the page is, not its file name.
PAGE_TITLES = {
    "paper-table1": "Table 1: the surrogate objectives on MuJoCo",
    "paper-figure3": "Figure 3: PPO against TRPO, A2C, vanilla PG and CEM",
    "paper-atari49": "Tables 2 and 6: PPO on 49 Atari games",
    "paper-table1-2017": "Table 1 under the 2017 code's setup",
    "paper-table1-ablation": "The ablation: one 2017 choice at a time",
    "paper-figure3-2017": "Figure 3's PPO and TRPO under the 2017 code's setup",
}
# A curve plot can hold Table 1's 11 settings, one more than matplotlib's 10 default colours: each
# setting gets its own colour (the baseline without clipping or penalty black), and its objective
# family its own line style, so no two curves look alike.
FAMILY_LINESTYLES = {"clip": "-", "adaptive_kl": "--", "fixed_kl": "-."}
BASELINE_VARIANT = "no_clip"


@dataclass
class Args:
    runs_dir: str | None = None
    """a sweep's runs folder (holds <run>/summary.json); default: report the committed records instead"""
    record_dir: str = str(RECORDS)
    """the folder of results records, one subfolder per preset (used without --runs-dir)"""
    out: str | None = None
    """where the pages and plots go (default: docs/results, or report/ with --runs-dir)"""
    random_scores: str | None = None
    """CSV of env_id,score for MuJoCo random policies (default: the committed records/random_scores.csv; envs it lacks are measured, 100 episodes each)"""
    bootstrap_reps: int = 2000
    """bootstrap samples for the rliable intervals"""
    wandb: bool = False
    """also publish the report as a W&B run (its Markdown, plots and per-run table); offline without network"""
    wandb_project_name: str = "ppo-pipeline"
    """the W&B project for --wandb"""
    wandb_entity: str | None = None
    """the W&B entity for --wandb"""


def rows_from_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """A record row (with its curve) for every run folder with a readable summary.json, in name
    order; an unreadable one is a warning naming it, and none readable at all is an error."""
    rows, found = [], sorted(runs_dir.glob("*/summary.json"))
    problems = [(path, summary_problem(path)) for path in found]
    if problems and all(problem for _, problem in problems):
        path, problem = problems[0]
        more = f"; {len(found) - 1} more alike" if len(found) > 1 else ""
        exit_usage(f"--runs-dir: none of the {len(found)} summary.json files in {runs_dir} can "
                   f"be read ({path} {problem}{more})")  # fmt: skip
    for path, problem in problems:
        if problem:
            print(f"warning: {path} {problem}; this run is left out", file=sys.stderr, flush=True)
            continue
        row, curve = result_of_run(path.parent)
        rows.append({**row, "curve": curve})
    return rows


def summary_problem(path: Path) -> str | None:
    """What makes a run's summary.json unusable (cut, not JSON, a field missing), None if nothing."""
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return f"cannot be read ({type(err).__name__}: {err})"
    if not isinstance(summary, dict):
        return "is not a JSON object"
    missing = [name for name in ("env_id", "exp_name", "seed") if name not in summary]
    return f"has no {', '.join(missing)}" if missing else None


def rows_from_record(folder: Path) -> list[dict[str, Any]]:
    """The rows of one results record; a damaged line or a missing curves.jsonl is a warning."""
    if not (folder / "curves.jsonl").is_file():
        print(f"warning: {folder / 'curves.jsonl'} is missing; the page has no learning curves "
              f"of the runs in {folder / 'runs.csv'}", file=sys.stderr, flush=True)  # fmt: skip
    return Record.load(folder, damaged="warn").results()


def is_atari(env_id: str) -> bool:
    return game_name(env_id) in human_random_scores() or "NoFrameskip" in env_id


def random_scores_for(envs: list[str], path: str | None) -> dict[str, float]:
    """The random-policy score per env: ``--random-scores``, else the committed file, with any
    env it lacks measured here (100 seeded episodes)."""
    committed = RECORDS / "random_scores.csv"
    scores = (
        read_random_scores(path)
        if path
        else read_random_scores(committed)
        if committed.is_file()
        else {}
    )
    missing = [e for e in envs if e not in scores]
    if missing and not path:
        scores.update({e: s["score"] for e, s in measure_random_scores(missing).items()})
    return scores


def runs_lines(rows: list[dict[str, Any]]) -> list[str]:
    """What the runs cost and where they ran: wall time and SPS per runner, commits, hosts.

    A batched run's wall time is its group's (the group's runs share one process), so batched
    runs are summarised apart and their times are not added up as if they were separate.
    """
    by_key = lambda name: sorted({str(r.get(name) or "unknown") for r in rows})  # noqa: E731
    lines = []
    for runner in by_key("runner"):
        mine = [
            r for r in rows if str(r.get("runner") or "unknown") == runner and r.get("wall_time_s")
        ]
        if not mine:
            continue
        wall = [r["wall_time_s"] for r in mine]
        sps = [r["sps"] for r in mine if r.get("sps")]
        shared = (
            " (a run's wall time is its group's: runs of one group share a process)"
            if runner == "batched"
            else ""
        )
        backends = ", ".join(
            f"{sum(r.get('env_backend') == b for r in mine)} on {b}"
            for b in sorted({str(r.get("env_backend")) for r in mine})
        )
        lines.append(
            f"- {runner} runner: {len(mine)} runs ({backends}), wall time per run median "
            f"{np.median(wall) / 60:.0f} minutes{shared}; SPS per run median {np.median(sps):.0f}, "
            f"range {min(sps):.0f} to {max(sps):.0f}."
        )
    for source in by_key("shared_from"):
        mine = [r for r in rows if r.get("shared_from") == source]
        if mine:
            settings = ", ".join(sorted({r["variant"] for r in mine}))
            lines.append(f"- {len(mine)} of these runs ({settings}) are {source}'s: the same "
                         "setting with the same flags, run once for both pages.")  # fmt: skip
    if not lines:
        return []
    return ["Runs:", "", *lines,
            f"- Commits: {', '.join(by_key('commit'))}. Hosts: {'; '.join(by_key('host'))}.", ""]  # fmt: skip


# ---------------------------------------------------------------- plots


def curves_by_env(rows: list[dict[str, Any]]) -> dict[str, dict[str, list]]:
    """Env -> variant -> the (steps, returns) curve of each run that has one."""
    by_env: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        curve = r.get("curve")
        if curve and curve["steps"]:
            by_env[r["env_id"]][r["variant"]].append((curve["steps"], curve["returns"]))
    return by_env


def mean_curve(ax, curves: list[tuple[list, list]], **style: Any):
    """Draw the mean over seeds of the smoothed curves, on 100 steps up to the shortest run's end
    (so every seed counts at every point), with the range over seeds shaded; returns the line."""
    end = min(steps[-1] for steps, _ in curves)
    grid = np.linspace(0, end, 100)
    ys = np.array(
        [np.interp(grid, steps, trailing_mean(vals, window=10)) for steps, vals in curves]
    )
    (line,) = ax.plot(grid, ys.mean(axis=0), **style)
    if len(ys) > 1:
        ax.fill_between(grid, ys.min(axis=0), ys.max(axis=0), alpha=0.12, color=line.get_color())
    return line


def curve_styles(variants: list[str]) -> dict[str, dict[str, Any]]:
    """A distinct colour and line style for each variant, the same in every plot of a page."""
    styles, colour = {}, 0
    for variant in variants:
        if variant == BASELINE_VARIANT:
            styles[variant] = {"color": "black", "linestyle": ":"}
            continue
        family = next((f for f in FAMILY_LINESTYLES if variant.startswith(f + "_")), None)
        styles[variant] = {
            "color": f"C{colour % 10}",
            "linestyle": FAMILY_LINESTYLES.get(family, "-"),
        }
        colour += 1
    if colour > 10:  # more than ten colours wrap around: the line style keeps them apart
        for i, variant in enumerate(v for v in variants if v != BASELINE_VARIANT):
            styles[variant]["linestyle"] = ("-", "--", "-.", ":")[i // 10 % 4]
    return styles


def learning_curves(rows: list[dict[str, Any]], img_dir: Path) -> list[Path]:
    """One PNG per env: episodic return against steps, one line per variant (mean over seeds,
    with the range over seeds shaded), the legend beside the plot in a readable size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    by_env = curves_by_env(rows)
    every_variant = sorted({v for variants in by_env.values() for v in variants},
                           key=lambda v: (variant_order(v), v))  # fmt: skip
    styles = curve_styles(every_variant)
    for env_id, variants in sorted(by_env.items()):
        fig, ax = plt.subplots(figsize=(8, 3.6))
        for variant in (v for v in every_variant if v in variants):
            curves = variants[variant]
            mean_curve(ax, curves, label=f"{variant} (n={len(curves)})", linewidth=1.3,
                       **styles[variant])  # fmt: skip
        ax.set(title=env_id, xlabel="environment steps", ylabel="episodic return")
        ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                  handlelength=2.6)  # fmt: skip
        fig.tight_layout()
        path = img_dir / f"curve_{env_id.replace('/', '-')}.png"
        fig.savefig(path, dpi=100, metadata={"Software": None})
        plt.close(fig)
        paths.append(path)
    return paths


def figure3_grid(tasks: int, columns: int = 4):
    """A figure of one panel per task in rows of ``columns``: (figure, panels, spare cells).

    The spare cells of the last row are blank; the first holds the legend, as in the paper."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(tasks, columns)
    grid_rows = -(-tasks // cols)
    fig, axes = plt.subplots(grid_rows, cols, figsize=(3.2 * cols, 2.6 * grid_rows), squeeze=False)
    cells = list(axes.flat)
    for ax in cells[tasks:]:
        ax.axis("off")
    return fig, cells[:tasks], cells[tasks:]


def figure3_figure(rows: list[dict[str, Any]]):
    """The paper's Figure 3: a panel per task, a curve per algorithm (mean over seeds, range
    shaded), each algorithm in one colour throughout; returns (figure, panels)."""
    variants = figure3.algorithms(rows)
    by_env = curves_by_env(rows)
    fig, panels, spare = figure3_grid(len(by_env))
    for ax, (env_id, curves) in zip(panels, sorted(by_env.items()), strict=True):
        for i, variant in enumerate(variants):
            if curves.get(variant):
                label = figure3.algorithm_label(variant)
                mean_curve(ax, curves[variant], label=label, color=f"C{i}", linewidth=1)
        ax.set_title(env_id, fontsize=10)
        ax.set_xlabel("environment steps", fontsize=8)
        ax.set_ylabel("episodic return", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.get_offset_text().set_fontsize(7)
    drawn = {line.get_label(): line for ax in panels for line in ax.get_lines()}
    labels = [figure3.algorithm_label(v) for v in variants if figure3.algorithm_label(v) in drawn]
    legend_at = spare[0] if spare else panels[-1]
    legend_at.legend([drawn[label] for label in labels], labels, fontsize=10,
                     loc="center" if spare else "best")  # fmt: skip
    fig.tight_layout()
    return fig, panels


def figure3_plot(rows: list[dict[str, Any]], img_dir: Path) -> list[Path]:
    """figure3.png in ``img_dir`` from the rows' curves (none when no run has a curve)."""
    import matplotlib.pyplot as plt

    if not curves_by_env(rows):
        return []
    fig, _ = figure3_figure(rows)
    path = img_dir / "figure3.png"
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return [path]


def rliable_plots(scores: dict[str, np.ndarray], aggregates: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rliable import library as rly

    names = ["median", "mean", "iqm", "optimality_gap"]
    fig, axes = plt.subplots(1, 4, figsize=(12, 0.6 + 0.5 * len(scores)))
    for ax, name in zip(axes, names, strict=True):
        for row, algo in enumerate(scores):
            point, low, high = aggregates[algo][name]
            ax.plot([low, high], [row, row], linewidth=6, alpha=0.6)
            ax.plot([point], [row], "k|", markersize=12)
        ax.set_yticks(range(len(scores)), list(scores) if name == "median" else [""] * len(scores))
        ax.set_title(name.replace("_", " "))
    fig.tight_layout()
    intervals = out / "interval_estimates.png"
    fig.savefig(intervals, dpi=100)
    plt.close(fig)

    thresholds = np.linspace(0.0, 8.0, 81)
    profiles, profile_cis = rly.create_performance_profile(scores, thresholds)
    fig, ax = plt.subplots(figsize=(6, 4))
    for algo in scores:
        ax.plot(thresholds, profiles[algo], label=algo)
        ax.fill_between(thresholds, profile_cis[algo][0], profile_cis[algo][1], alpha=0.2)
    ax.set(xlabel="human-normalised score tau", ylabel="fraction of games with score > tau")
    ax.legend()
    fig.tight_layout()
    profile = out / "performance_profile.png"
    fig.savefig(profile, dpi=100)
    plt.close(fig)
    return [intervals, profile]


# ---------------------------------------------------------------- the report


def write_page(
    rows: list[dict[str, Any]],
    args: Args,
    title: str,
    page: Path,
    img_dir: Path,
    planned: dict[str, int] | None = None,
    superseded: list[dict[str, Any]] = (),
    sections: list[str] = (),
    site_page: bool = False,
) -> list[Path]:
    """Write one Markdown page (tables, then plots linked relative to the page); returns the plots.
    ``superseded``: the page's own runs of a shared setting that the page shows from the other
    record instead, listed so that none goes unmentioned. ``sections``: the page's own Markdown
    (the setups' comparison; the ablation's table, which replaces the generic Table 1).
    ``site_page``: a page of the documentation site (docs/results/), laid out for it."""
    img_dir.mkdir(parents=True, exist_ok=True)
    atari = [r for r in rows if is_atari(r["env_id"])]
    mujoco = [r for r in rows if r not in atari]
    statuses = defaultdict(int)
    for r in rows:
        statuses[r.get("status") or "unknown"] += 1
    # The results pages hide the site's right-hand table of contents (they have few headings):
    # their wide tables then fit a 1280-px screen with the paper's columns in view.
    front_matter = ["---", "hide:", "  - toc", "---", ""] if site_page else []
    lines = [*front_matter, f"# {title}", "",
             f"{len(rows)} runs ({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}); "
             f"{len(atari)} Atari, {len(mujoco)} other.", ""]  # fmt: skip
    lines += runs_lines(rows) + superseded_lines(superseded)
    table, figure = figure3.split_rows(mujoco)
    plots = figure3_plot(figure, img_dir) + learning_curves(rows, img_dir)
    if table and not (sections and sections[0].startswith("## The ablation")):
        random_scores = random_scores_for(sorted({r["env_id"] for r in table}), args.random_scores)
        lines += ["## Table 1: surrogate objectives on MuJoCo (normalised score)", ""]
        lines += table1_lines(table, random_scores, sum(planned.values()) if planned else None)
    lines += list(sections)
    if figure:
        lines += ["## Figure 3: PPO against the comparison algorithms (final scores)", ""]
        lines += figure3.figure3_lines(figure, planned)
    if atari:
        import matplotlib

        matplotlib.use("Agg")
        atari_text, scores, aggregates = atari_lines(atari, args.bootstrap_reps)
        lines += atari_text
        if scores:
            plots += rliable_plots(scores, aggregates, img_dir)
    lines += ["## Plots", ""]
    lines += [f"![{p.stem}]({os.path.relpath(p, page.parent)})" for p in plots]
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(lines) + "\n")
    print(f"wrote {page} and {len(plots)} plots")
    return plots


def validate(args: Args) -> None:
    require_positive(bootstrap_reps=args.bootstrap_reps)
    if args.runs_dir is not None:
        runs_dir = Path(args.runs_dir)
        if not runs_dir.is_dir():
            raise UsageError("--runs-dir", f"{runs_dir} is not a folder")
        if not list(runs_dir.glob("*/summary.json")):
            raise UsageError(
                "--runs-dir",
                f"no */summary.json in {runs_dir}; run a sweep first (scripts/benchmark.py)",
            )
    elif not list(Path(args.record_dir).glob("*/runs.csv")):
        raise UsageError("--record-dir", f"no <preset>/runs.csv in {args.record_dir}; run a paper preset "
                         "with scripts/benchmark.py, or give --runs-dir")  # fmt: skip


def main(args: Args) -> None:
    if args.runs_dir is not None:
        runs_dir = Path(args.runs_dir)
        out = Path(args.out or "report")
        rows = rows_from_runs(runs_dir)
        plots = write_page(rows, args, f"Report of {runs_dir}", out / "report.md", out)
        if args.wandb:
            publish_to_wandb(args, runs_dir.name, out, rows, plots)
        return
    out = Path(args.out) if args.out else RESULTS
    for preset, records in pages_of_records(Path(args.record_dir)).items():
        rows = [row for folder in records for row in rows_from_record(folder)]
        rows = shared_rows(records, rows)
        superseded = [r for r in rows if r.get("superseded_by")]
        rows = [r for r in rows if not r.get("superseded_by")]
        planned = planned_runs([folder.name for folder in records])
        plots = write_page(
            rows, args, PAGE_TITLES.get(preset, f"Results: {preset}"), out / f"{preset}.md",
            out / "img" / preset, planned, superseded,
            setup_sections(preset, Path(args.record_dir), rows, args), site_page=True,
        )  # fmt: skip
        if args.wandb:
            publish_to_wandb(args, preset, out, rows, plots, page=out / f"{preset}.md")


def pages_of_records(record_dir: Path) -> dict[str, list[Path]]:
    """Results page (a preset's name) -> the record folders it shows: a preset's own, and those
    of presets reported with it (paper-atari49-a2c's on paper-atari49's page)."""
    known = presets()
    pages: dict[str, list[Path]] = defaultdict(list)
    for runs in sorted(record_dir.glob("*/runs.csv")):
        preset = runs.parent.name
        page = known[preset].reported_with if preset in known else None
        pages[page or preset].append(runs.parent)
    return dict(sorted(pages.items()))


def setup_sections(
    preset: str, record_dir: Path, rows: list[dict[str, Any]], args: Args
) -> list[str]:
    """The 2017-setup sections of a page: Table 1's gets the paper's column beside ours under both
    setups once paper-table1-2017 has runs; the ablation's page is its table (docs/results/setup-2017.md)."""
    if preset == "paper-table1":
        setup_2017 = Record.load(record_dir / "paper-table1-2017").results()
        if not setup_2017:
            return []
        envs = sorted({r["env_id"] for r in rows + setup_2017})
        return ["## Table 1 under today's setup and the 2017 setup", "",
                *table1.setups_lines(rows, setup_2017, random_scores_for(envs, args.random_scores))]  # fmt: skip
    if preset == "paper-table1-2017" and rows:
        today = Record.load(record_dir / "paper-table1").results()
        random = random_scores_for(envs_of(rows + today), args.random_scores)
        why = ("Until the 2017 column is complete, its own normalisation (its best setting = 1 "
               "per env) says little; here each setting with 2017 runs is put on Table 1's scale "
               "under today's setup instead," if not table1.setup_complete(rows) else
               "Here each setting under the 2017 setup is put on Table 1's scale under today's "
               "setup (per env, today's best setting = 1), so that the two setups' runs are "
               "scored alike,")  # fmt: skip
        return ["## Each setting under both setups, on today's scale", "",
                f"{why} beside today's runs of the same setting on the same tasks "
                f"({', '.join(envs_of(rows))}).", "",
                *table1.ablation_lines(both_setups(rows, today), today, random),
                *per_env_both_setups(rows, today, random)]  # fmt: skip
    if preset == "paper-table1-ablation":
        today = Record.load(record_dir / "paper-table1").results()
        random = random_scores_for(sorted({r["env_id"] for r in rows + today}), args.random_scores)
        one = [r for r in rows if r["variant"].count("+") < 2]  # pairs: paper-table1-ablation-pairs
        setup_2017 = Record.load(record_dir / "paper-table1-2017").results()
        return ["## The ablation: one 2017 choice at a time (normalised score)", "",
                *table1.ablation_lines(one, today, random),
                "### Task by task", "", *table1.ablation_by_task_lines(one, today, random),
                *pair_lines(rows, setup_2017, today, random)]  # fmt: skip
    return []


def pair_lines(
    ablation: list[dict[str, Any]],
    setup_2017: list[dict[str, Any]],
    today: list[dict[str, Any]],
    random: dict[str, float],
) -> list[str]:
    """The ablation page's section for paper-table1-ablation-pairs: on the tasks where no clipping
    learns without return normalisation, that variant's mean, each second 2017 choice's change
    from it, and the whole 2017 setup's (on today's scale)."""
    pairs = [r for r in ablation if r["variant"].startswith(PAIRS_BASE + "+")]
    if not pairs:
        return []
    envs = set(PAIRS_ENVS)
    whole = [{**r, "variant": f"{PAIRS_BASE}+{PAIRS_WHOLE_SETUP}"} for r in setup_2017
             if r["variant"] == "no_clip" and r["env_id"] in envs]  # fmt: skip
    base = [r for r in ablation if r["variant"] == PAIRS_BASE and r["env_id"] in envs]
    runs = table1.normalized_runs(base + pairs + whole, random, table1.env_bests(today))
    return [
        "## Two 2017 choices at once: no return normalisation and one more", "",
        "Without return normalisation, no clipping learns the two pendulums (above); under the "
        "whole 2017 setup, which has no return normalisation either, it does not. On those two "
        "tasks, `paper-table1-ablation-pairs` adds one more 2017 choice at a time to the first. "
        "A change far below 0 names a choice that holds no clipping down there; the last row is "
        "the whole 2017 setup (paper-table1-2017's no clipping), for reference. On today's scale, "
        "as above.", "",
        *table1.per_task_change_lines(PAIRS_BASE, runs, "no return normalisation",
                                      "No clipping or penalty on the two pendulums"),
    ]  # fmt: skip


SETUP_2017_LABEL = "the 2017 setup (all seven choices)"
PAIRS_WHOLE_SETUP = "the other six (the 2017 setup)"


def envs_of(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({r["env_id"] for r in rows})


def per_env_both_setups(
    setup_2017: list[dict[str, Any]], today: list[dict[str, Any]], random: dict[str, float]
) -> list[str]:
    """Per setting and env: the mean of each setup's runs on today's scale, and the raw means."""
    bests = table1.env_bests(today)
    scaled = {name: table1.normalized_runs(runs, random, bests)
              for name, runs in (("today", today), ("2017", setup_2017))}  # fmt: skip
    raw = {
        name: table1.runs_by_env(runs) for name, runs in (("today", today), ("2017", setup_2017))
    }
    lines = ["Per env (on today's scale; raw mean of the last-100 return over seeds in brackets):", "",
             "| setting | env | today's setup | the 2017 setup |", "|---|---|---|---|"]  # fmt: skip
    for variant in sorted({r["variant"] for r in setup_2017}, key=variant_order):
        for env in envs_of([r for r in setup_2017 if r["variant"] == variant]):
            cells = []
            for name in ("today", "2017"):
                scores = scaled[name].get(variant, {}).get(env, [])
                raws = raw[name].get(env, {}).get(variant, [])
                cells.append(f"{np.mean(scores):.2f} ({np.mean(raws):,.1f}, n={len(raws)})"
                             if scores else "no runs")  # fmt: skip
            lines.append(f"| {variant_label(variant)} | {env} | {' | '.join(cells)} |")
    return [*lines, ""]


def both_setups(
    setup_2017: list[dict[str, Any]], today: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Today's runs of the settings and envs the 2017 record has (so that both sides average the
    same tasks while it fills), and the 2017 runs as the ablation names a setting with 2017 choices
    (``{setting}+{choices}``), for ``table1.ablation_lines``."""
    cells = {(r["variant"], r["env_id"]) for r in setup_2017}
    return [r for r in today if (r["variant"], r["env_id"]) in cells] + [
        {**r, "variant": f"{r['variant']}+{SETUP_2017_LABEL}"} for r in setup_2017
    ]


def superseded_lines(superseded: list[dict[str, Any]]) -> list[str]:
    """One line per recorded run the page leaves out for the shared record's run of its setting."""
    lines = [
        f"- Also in this page's record, not shown: {r['env_id']} {r['variant']} seed {r['seed']} "
        f"(last 100: {r['mean_return_last_100']:.1f}; {r['runner']} runner at {r['commit']}); the "
        "page shows the shared record's run of that setting and seed, so that each setting has one "
        "run per seed for both pages."
        for r in superseded
    ]
    return [*lines, ""] if lines else []


def shared_rows(folders: list[Path], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The page's runs: a shared variant's runs come from the record of the preset it is shared with
    (Figure 3's clip_0.2 from paper-table1's: one run for both pages), each marked ``shared_from``;
    a run of it in the page's own record is kept aside, marked ``superseded_by``, where that
    record has the same run. Other runs are the page's own. A variant shared with a record the
    page shows anyway (the ablation's pairs share their first choice with the ablation) needs none
    of this."""
    known, page, source_keys = presets(), list(rows), set()
    shown = {folder.name for folder in folders}
    for folder in folders:
        preset = known.get(folder.name)
        if preset is None:
            continue
        outside = {v: source for v, source in preset.shared.items() if source not in shown}
        for variant, source in shared_records(folder, outside, "warn").items():
            for row in source.results():
                planned = row["env_id"] in preset.env_ids and row["seed"] in preset.seeds
                if row["variant"] == variant and planned and key_of(row) not in source_keys:
                    page.append({**row, "shared_from": source.folder.name})
                    source_keys.add(key_of(row))
    return [
        {**r, "superseded_by": "shared"}
        if "shared_from" not in r and key_of(r) in source_keys
        else r
        for r in page
    ]


def planned_runs(names: list[str]) -> dict[str, int] | None:
    """The runs the presets plan of each setting (None when one is not a known preset)."""
    known = presets()
    if not all(name in known for name in names):
        return None
    planned: Counter[str] = Counter()
    for preset in map(known.get, names):
        for variant in preset.variants:
            planned[variant] += len(preset.env_ids) * len(preset.seeds)
    return dict(planned)


def publish_to_wandb(
    args: Args, name: str, out: Path, rows: list[dict], plots: list[Path], page: Path | None = None
) -> None:
    """Publish the report to W&B; a W&B failure is a warning, the files in ``out`` stay the result.

    Two parts: a run of job type "report" holding the Markdown, every plot and the runs as a table
    (works offline too; ``wandb sync`` uploads it later), and, when online, a W&B Report built with
    wandb-workspaces: the Markdown plus live learning curves of the project's runs.
    """
    import wandb

    from common.tracking import wandb_has_credentials

    mode = os.environ.get("WANDB_MODE") or ("online" if wandb_has_credentials() else "offline")
    try:
        page = page or out / "report.md"
        run = log_report_run(args, name, page, rows, plots, mode)
        if mode != "online":
            print(f"published to W&B offline: {run.settings.sync_dir} (wandb sync it; "
                  "the W&B Report needs the online service, run --wandb again when online)")  # fmt: skip
            return
        report = wandb_report(page.read_text(), run.entity, run.project, run.url)
        report.save()
        print(f"published to W&B: report {report.url}, report run {run.url}")
    except Exception as error:  # the local report is already written
        print(f"warning: publishing to W&B failed ({type(error).__name__}: {error}); "
              f"the report in {out} is complete")  # fmt: skip
    finally:
        if wandb.run is not None:
            wandb.run.finish()


def log_report_run(
    args: Args, name: str, page: Path, rows: list[dict], plots: list[Path], mode: str
):
    """A W&B run of job type "report": the Markdown as HTML, the plots, the runs as a table."""
    import html

    import wandb

    run = wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, job_type="report",
                     name=f"report-{name}", dir=str(page.parent), mode=mode,
                     settings=wandb.Settings(init_timeout=60, silent=True))  # fmt: skip
    columns = [
        "env_id",
        "variant",
        "seed",
        "status",
        "global_step",
        "mean_return_all_training",
        "mean_return_last_100",
        "sps",
    ]
    table = wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])
    markdown = page.read_text()
    run.log({
        "report": wandb.Html(f"<pre>{html.escape(markdown)}</pre>"),
        "runs": table,
        **{f"plots/{p.stem}": wandb.Image(str(p)) for p in plots},
    })  # fmt: skip
    run.save(str(page), base_path=str(page.parent), policy="now")
    return run


def wandb_report(markdown: str, entity: str, project: str, report_run_url: str):
    """The report as a W&B Report (wandb-workspaces); built offline, ``.save()`` needs the service.

    The Markdown without its local image links (the plots live in the report run), then the
    project's learning curves grouped by experiment, which stay live as runs are added.
    """
    import wandb_workspaces.reports.v2 as wr

    text = markdown.split("\n## Plots\n", 1)[0]
    curves = wr.PanelGrid(
        runsets=[wr.Runset(entity=entity, project=project, name="runs", groupby=["exp_name"])],
        panels=[
            wr.LinePlot(title="episodic return", x="global_step", y=["charts/episodic_return"],
                        groupby_aggfunc="mean", groupby_rangefunc="stderr", smoothing_factor=0.9),
        ],
    )  # fmt: skip
    return wr.Report(
        entity=entity,
        project=project,
        title="PPO results",
        description="Written by scripts/report.py",
        blocks=[
            wr.MarkdownBlock(text=text),
            wr.P(["Plots, the runs table and report.md: ", wr.Link("report run", report_run_url)]),
            curves,
        ],
    )


if __name__ == "__main__":
    main(parse_args(Args, validate))
