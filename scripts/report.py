"""Reports of a sweep: the paper's Tables 1, 2 and 6 beside ours, rliable statistics, plots.

    python scripts/report.py --runs-dir runs/sweep-paper-table1 --out reports/table1
    python scripts/report.py --runs-dir runs/sweep-paper-atari49 --out reports/atari49

Reads ``<runs-dir>/*/summary.json`` and the TensorBoard events beside them; needs no network.
Writes ``report.md`` and PNG plots to ``--out``.

- Table 1 (MuJoCo): each run's score is its mean return over the last 100 episodes; per env the
  scores are shifted and scaled so a random policy scores 0 and the best setting (its mean over
  seeds) scores 1, then averaged over envs and seeds, as in the paper's section 6.1.
- Tables 2 and 6 (Atari): per game our two scores (mean over all of training; last 100 episodes),
  beside the paper's A2C, ACER and PPO (last 100 episodes; the paper publishes no per-game values
  for the all-training metric, only its win counts), the games-won counts, and human-normalised
  aggregates with rliable (median, mean, IQM, optimality gap; 95% stratified-bootstrap CIs).
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from common.cli import exit_usage  # noqa: E402
from common.scores import game_name, human_random_scores  # noqa: E402

BASELINES = REPO / "baselines"


@dataclass
class Args:
    runs_dir: str
    """the sweep's runs folder (holds <run>/summary.json)"""
    out: str = "report"
    """folder for report.md and the PNG plots"""
    random_scores: str | None = None
    """CSV of env_id,score for MuJoCo random policies (default: measured, 100 episodes each)"""
    bootstrap_reps: int = 2000
    """bootstrap samples for the rliable intervals"""
    wandb: bool = False
    """also publish the report as a W&B run (its Markdown, plots and per-run table); offline without network"""
    wandb_project_name: str = "ppo-pipeline"
    """the W&B project for --wandb"""
    wandb_entity: str | None = None
    """the W&B entity for --wandb"""


def load_summaries(runs_dir: Path) -> list[dict]:
    records = []
    for path in sorted(runs_dir.glob("*/summary.json")):
        record = json.loads(path.read_text())
        record["run_dir"] = str(path.parent)
        records.append(record)
    return records


# ---------------------------------------------------------------- Table 1 (MuJoCo)


def normalized_scores(records: list[dict], random_scores: dict[str, float]) -> dict[str, dict]:
    """Per variant: the mean normalised score over its runs, and per env the normalised means.

    Per env, the best setting is the one with the highest mean (over seeds) last-100 score; it
    scores 1 and a random policy 0. A variant's score averages the normalised score of each of its
    runs (envs x seeds). Envs without a random score are left out.
    """
    by_env_variant: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r.get("mean_return_last_100") is not None and r["env_id"] in random_scores:
            by_env_variant[r["env_id"]][r["exp_name"]].append(r["mean_return_last_100"])
    result: dict[str, dict] = defaultdict(lambda: {"runs": [], "per_env": {}})
    for env_id, variants in by_env_variant.items():
        best = max(np.mean(scores) for scores in variants.values())
        low = random_scores[env_id]
        scale = best - low if best != low else 1.0
        for variant, scores in variants.items():
            normalized = [(s - low) / scale for s in scores]
            result[variant]["runs"].extend(normalized)
            result[variant]["per_env"][env_id] = float(np.mean(normalized))
    return {v: {"score": float(np.mean(d["runs"])), "runs": len(d["runs"]), "per_env": d["per_env"]}
            for v, d in result.items()}  # fmt: skip


def measure_random_scores(
    env_ids: list[str], episodes: int = 100, seed: int = 0
) -> dict[str, float]:
    """Mean return of uniformly random actions, per env (the 0 of the normalised score)."""
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
        scores[env_id] = float(np.mean(returns))
        env.close()
    return scores


def paper_table1() -> dict[str, float]:
    with open(BASELINES / "ppo_paper_table1_surrogates.csv") as handle:
        return {
            row["algorithm_setting"]: float(row["avg_normalized_score"])
            for row in csv.DictReader(handle)
        }


# ---------------------------------------------------------------- Tables 2 and 6 (Atari)


def paper_atari() -> dict[str, dict[str, float]]:
    """Game -> the paper's A2C, ACER and PPO last-100-episode scores (Table 6)."""
    with open(BASELINES / "ppo_paper_atari.csv") as handle:
        return {
            row["game"]: {k: float(row[k]) for k in ("a2c", "acer", "ppo")}
            for row in csv.DictReader(handle)
        }


def per_game_means(records: list[dict], metric: str) -> dict[str, float]:
    """Game -> our mean over seeds of ``metric`` (one variant's records)."""
    by_game = defaultdict(list)
    for r in records:
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


def human_normalized(score: float, game: str) -> float | None:
    ref = human_random_scores().get(game)
    if ref is None:
        return None
    random_score, human_score = ref
    return (score - random_score) / (human_score - random_score)


def score_matrix(records: list[dict], metric: str) -> tuple[np.ndarray, list[str]]:
    """Human-normalised scores as (runs, games) for rliable: seeds in order, games sorted.

    rliable's stratified bootstrap needs the same number of runs per game, so every game keeps as
    many seeds as the game with the fewest.
    """
    by_game = defaultdict(list)
    for r in sorted(records, key=lambda r: r["seed"]):
        hns = (
            human_normalized(r[metric], game_name(r["env_id"]))
            if r.get(metric) is not None
            else None
        )
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

    points, intervals = rly.get_interval_estimates(scores, aggregate, reps=reps)
    names = ["median", "mean", "iqm", "optimality_gap"]
    return {algo: {n: (float(points[algo][i]), float(intervals[algo][0][i]), float(intervals[algo][1][i]))
                   for i, n in enumerate(names)} for algo in scores}  # fmt: skip


# ---------------------------------------------------------------- plots


def learning_curves(records: list[dict], out: Path) -> list[Path]:
    """One PNG per env: episodic return against steps, one line per variant (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    by_env = defaultdict(lambda: defaultdict(list))
    for r in records:
        events = EventAccumulator(r["run_dir"], size_guidance={"scalars": 0}).Reload()
        if "charts/episodic_return" in events.Tags()["scalars"]:
            points = events.Scalars("charts/episodic_return")
            by_env[r["env_id"]][r["exp_name"]].append(
                ([p.step for p in points], [p.value for p in points])
            )
    paths = []
    for env_id, variants in sorted(by_env.items()):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for variant, curves in sorted(variants.items()):
            end = min(max(steps) for steps, _ in curves if steps)
            grid = np.linspace(0, end, 50)
            ys = [
                np.interp(grid, steps, np.convolve(vals, np.ones(10) / 10, mode="same"))
                for steps, vals in curves
                if steps
            ]
            ax.plot(grid, np.mean(ys, axis=0), label=f"{variant} (n={len(ys)})")
        ax.set(title=env_id, xlabel="environment steps", ylabel="episodic return")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / f"curve_{env_id.replace('/', '-')}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


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


def fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def mujoco_section(records: list[dict], random_scores: dict[str, float]) -> list[str]:
    from benchmark import TABLE1_VARIANTS

    ours = normalized_scores(records, random_scores)
    paper = paper_table1()
    lines = ["## Table 1: surrogate objectives on MuJoCo (normalised score)", "",
             "Random policy = 0, best setting per env = 1, averaged over envs and seeds (paper, section 6.1).", "",
             "| setting | ours | runs | paper |", "|---|---|---|---|"]  # fmt: skip
    for variant in sorted(
        ours, key=lambda v: list(TABLE1_VARIANTS).index(v) if v in TABLE1_VARIANTS else 99
    ):
        label = TABLE1_VARIANTS.get(variant, (None, variant))[1]
        lines.append(
            f"| {label} | {fmt(ours[variant]['score'])} | {ours[variant]['runs']} | {fmt(paper.get(label))} |"
        )
    envs = sorted({e for d in ours.values() for e in d["per_env"]})
    lines += ["", "Per env (normalised mean over seeds):", "", "| setting | " + " | ".join(envs) + " |",
              "|---" * (len(envs) + 1) + "|"]  # fmt: skip
    for variant, d in ours.items():
        lines.append(f"| {variant} | " + " | ".join(fmt(d["per_env"].get(e)) for e in envs) + " |")
    lines += [
        "",
        "Random-policy scores used: "
        + ", ".join(f"{e} {s:.1f}" for e, s in sorted(random_scores.items())),
        "",
    ]
    return lines


def atari_section(records: list[dict], args: Args, out: Path) -> tuple[list[str], list[Path]]:
    paper = paper_atari()
    lines, plots = [], []
    scores_for_rliable: dict[str, np.ndarray] = {}
    for variant in sorted({r["exp_name"] for r in records}):
        mine = [r for r in records if r["exp_name"] == variant]
        last = per_game_means(mine, "mean_return_last_100")
        whole = per_game_means(mine, "mean_return_all_training")
        won = games_won(last, paper)
        lines += [f"## Atari, variant `{variant}`", "",
                  "### Table 6: per game (ours: mean over seeds; paper: A2C, ACER, PPO, last 100 episodes, 10M steps)", "",
                  "| game | ours, all training | ours, last 100 | paper A2C | paper ACER | paper PPO | ours, human-normalised (last 100) |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for game in sorted({game_name(r["env_id"]) for r in mine}):  # n/a: no finished episode
            p = paper.get(game, {})
            hns = human_normalized(last[game], game) if game in last else None
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
    if scores_for_rliable:
        our_games = sorted(
            {
                game_name(r["env_id"])
                for r in records
                if human_normalized(0.0, game_name(r["env_id"])) is not None
            }
        )
        for algo in ("a2c", "acer", "ppo"):
            if all(g in paper for g in our_games):
                scores_for_rliable[f"paper {algo.upper()} (mean of 3 seeds)"] = np.array(
                    [[human_normalized(paper[g][algo], g) for g in our_games]]
                )
        aggregates = rliable_aggregates(scores_for_rliable, args.bootstrap_reps)
        lines += ["## Human-normalised aggregates (rliable, 95% stratified-bootstrap CIs)", "",
                  "| algorithm | median | mean | IQM | optimality gap |", "|---|---|---|---|---|"]  # fmt: skip
        for algo, agg in aggregates.items():
            cells = [f"{p:.3f} [{lo:.3f}, {hi:.3f}]" for p, lo, hi in agg.values()]
            lines.append(f"| {algo} | " + " | ".join(cells) + " |")
        lines += ["", "The paper's rows are single points per game (its Table 6 means), so their intervals "
                  "reflect only the spread over games.", ""]  # fmt: skip
        plots += rliable_plots(scores_for_rliable, aggregates, out)
    return lines, plots


def main(args: Args) -> None:
    runs_dir, out = Path(args.runs_dir), Path(args.out)
    if not runs_dir.is_dir():
        exit_usage(f"--runs-dir: {runs_dir} is not a folder")
    records = load_summaries(runs_dir)
    if not records:
        exit_usage(
            f"--runs-dir: no */summary.json in {runs_dir}; run a sweep first (scripts/benchmark.py)"
        )
    out.mkdir(parents=True, exist_ok=True)
    atari = [
        r
        for r in records
        if game_name(r["env_id"]) in human_random_scores() or "NoFrameskip" in r["env_id"]
    ]
    mujoco = [r for r in records if r not in atari]
    lines = [
        f"# Report of {runs_dir}",
        "",
        f"{len(records)} runs; {len(atari)} Atari, {len(mujoco)} other.",
        "",
    ]
    plots = learning_curves(records, out)
    if mujoco:
        envs = sorted({r["env_id"] for r in mujoco})
        random_scores = (
            read_random_scores(args.random_scores)
            if args.random_scores
            else measure_random_scores(envs)
        )
        lines += mujoco_section(mujoco, random_scores)
    if atari:
        atari_lines, atari_plots = atari_section(atari, args, out)
        lines += atari_lines
        plots += atari_plots
    lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'report.md'} and {len(plots)} plots")
    if args.wandb:
        publish_to_wandb(args, runs_dir, out, records, plots)


def publish_to_wandb(
    args: Args, runs_dir: Path, out: Path, records: list[dict], plots: list[Path]
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
        run = log_report_run(args, runs_dir, out, records, plots, mode)
        if mode != "online":
            print(f"published to W&B offline: {run.settings.sync_dir} (wandb sync it; "
                  "the W&B Report needs the online service, run --wandb again when online)")  # fmt: skip
            return
        report = wandb_report((out / "report.md").read_text(), run.entity, run.project, run.url)
        report.save()
        print(f"published to W&B: report {report.url}, report run {run.url}")
    except Exception as error:  # the local report is already written
        print(f"warning: publishing to W&B failed ({type(error).__name__}: {error}); "
              f"the report in {out} is complete")  # fmt: skip
    finally:
        if wandb.run is not None:
            wandb.run.finish()


def log_report_run(
    args: Args, runs_dir: Path, out: Path, records: list[dict], plots: list[Path], mode: str
):
    """A W&B run of job type "report": the Markdown as HTML, the plots, the runs as a table."""
    import html

    import wandb

    run = wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, job_type="report",
                     name=f"report-{runs_dir.name}", dir=str(out), mode=mode,
                     settings=wandb.Settings(init_timeout=60, silent=True))  # fmt: skip
    columns = [
        "env_id",
        "exp_name",
        "seed",
        "global_step",
        "mean_return_all_training",
        "mean_return_last_100",
        "sps",
    ]
    table = wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in records])
    markdown = (out / "report.md").read_text()
    run.log({
        "report": wandb.Html(f"<pre>{html.escape(markdown)}</pre>"),
        "runs": table,
        **{f"plots/{p.stem}": wandb.Image(str(p)) for p in plots},
    })  # fmt: skip
    run.save(str(out / "report.md"), base_path=str(out), policy="now")
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


def read_random_scores(path: str) -> dict[str, float]:
    with open(path) as handle:
        return {row["env_id"]: float(row["score"]) for row in csv.DictReader(handle)}


if __name__ == "__main__":
    main(tyro.cli(Args))
