"""The report's computations on small result sets worked out by hand, and the report end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import atari_tables
import numpy as np
import pytest
import report
import table1
from conftest import REPO, assert_usage_error


def rec(env_id, variant, seed, last, whole=None):
    """A result row as the record holds it."""
    return {"env_id": env_id, "variant": variant, "seed": seed, "mean_return_last_100": last,
            "mean_return_all_training": last if whole is None else whole}  # fmt: skip


def summary_of(row):
    """The summary.json a trainer would have written for this row."""
    return {"exp_name": row["variant"], "finished": True, "global_step": 100, "total_timesteps": 100,
            **{k: v for k, v in row.items() if k != "variant"}}  # fmt: skip


def test_normalized_scores_by_hand():
    records = [
        rec("A-v5", "x", 1, 10.0), rec("A-v5", "x", 2, 20.0), rec("A-v5", "y", 1, 30.0), rec("A-v5", "y", 2, 50.0),
        rec("B-v5", "x", 1, 0.0), rec("B-v5", "x", 2, 100.0), rec("B-v5", "y", 1, -100.0), rec("B-v5", "y", 2, -50.0),
        rec("C-v5", "x", 1, 7.0),  # no random score: left out
    ]  # fmt: skip
    result = table1.normalized_scores(records, {"A-v5": 0.0, "B-v5": -100.0})
    # A: random 0, best = y's mean 40 -> x: 10/40, 20/40; y: 30/40, 50/40.
    # B: random -100, best = x's mean 50 (scale 150) -> x: 100/150, 200/150; y: 0, 50/150.
    assert result["x"]["score"] == pytest.approx(np.mean([0.25, 0.5, 100 / 150, 200 / 150]))
    assert result["y"]["score"] == pytest.approx(np.mean([0.75, 1.25, 0.0, 50 / 150]))
    assert result["x"]["runs"] == result["y"]["runs"] == 4
    assert result["y"]["per_env"]["A-v5"] == pytest.approx(1.0)  # the best setting averages to 1
    assert result["x"]["per_env"]["B-v5"] == pytest.approx(1.0)
    assert "C-v5" not in result["x"]["per_env"]


def test_games_won_with_ties_and_missing_games():
    paper = {
        "G1": {"a2c": 10.0, "acer": 20.0, "ppo": 0.0},
        "G2": {"a2c": 5.0, "acer": 5.0, "ppo": 0.0},  # A2C = ACER above ours: a tie
        "G3": {"a2c": 1.0, "acer": 2.0, "ppo": 0.0},  # ours 2.04 rounds to 2.0 = ACER: a tie
        "G4": {"a2c": 1.0, "acer": 2.0, "ppo": 0.0},  # no result of ours
        "G5": {"a2c": 100.0, "acer": 50.0, "ppo": 0.0},
        "G6": {"a2c": 0.0, "acer": 0.0, "ppo": 0.0},
    }
    ours = {"G1": 30.0, "G2": 4.0, "G3": 2.04, "G5": 60.0, "G6": -1.0}
    won = atari_tables.games_won(ours, paper)
    assert (won["a2c"], won["acer"], won["ppo"], won["tie"]) == (1, 0, 1, 3)
    assert won["missing"] == ["G4"]


def test_human_normalized_uses_dqn_zoo_scores():
    from common.scores import human_normalized_score

    # Breakout: random 1.7, human 30.5 (dqn_zoo); Pong: random -20.7, human 14.6.
    assert human_normalized_score("Breakout", 1.7) == pytest.approx(0.0)
    assert human_normalized_score("BreakoutNoFrameskip-v4", 30.5) == pytest.approx(1.0)
    assert human_normalized_score("ALE/Pong-v5", -3.05) == pytest.approx(0.5)
    assert human_normalized_score("NotAGame", 1.0) is None
    assert human_normalized_score("Breakout", None) is None


def test_score_matrix_keeps_equal_runs_per_game():
    records = [rec("BreakoutNoFrameskip-v4", "v", s, 30.5) for s in (1, 2, 3)]
    records += [rec("PongNoFrameskip-v4", "v", s, 14.6) for s in (2, 1)]
    matrix, games = atari_tables.score_matrix(records, "mean_return_last_100")
    assert games == ["Breakout", "Pong"]
    assert matrix.shape == (2, 2) and np.allclose(matrix, 1.0)


def test_rliable_aggregates_on_known_scores():
    scores = {"const": np.full((3, 5), 0.4), "spread": np.array([[0.0, 0.5, 1.0, 1.5, 2.0]] * 2)}
    agg = atari_tables.rliable_aggregates(scores, reps=200)
    for name in ("median", "mean", "iqm"):
        point, low, high = agg["const"][name]
        assert (
            point == pytest.approx(0.4) and low == pytest.approx(0.4) and high == pytest.approx(0.4)
        )
    assert agg["const"]["optimality_gap"][0] == pytest.approx(0.6)
    assert agg["spread"]["median"][0] == pytest.approx(1.0)
    assert agg["spread"]["mean"][0] == pytest.approx(1.0)
    assert agg["spread"]["optimality_gap"][0] == pytest.approx(
        (1.0 + 0.5) / 5
    )  # mean of max(1 - x, 0)


def write_runs(folder, records):
    for i, r in enumerate(records):
        run = folder / f"run{i}"
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps(summary_of(r)))


def run_report(*flags):
    return subprocess.run([sys.executable, str(REPO / "scripts" / "report.py"), *flags],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_atari_report_end_to_end(tmp_path):
    records = [rec(f"{g}NoFrameskip-v4", "ppo_table5", s, v + s, v / 2) for g, v in
               [("Breakout", 300.0), ("Pong", 20.0), ("Alien", 1500.0)] for s in (1, 2, 3)]  # fmt: skip
    write_runs(tmp_path / "runs", records)
    result = run_report(
        "--runs-dir",
        str(tmp_path / "runs"),
        "--out",
        str(tmp_path / "out"),
        "--bootstrap-reps",
        "200",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = (tmp_path / "out" / "report.md").read_text()
    # Ours (mean over seeds): Breakout 302 (all training 150), Pong 22, Alien 1502; the paper's
    # A2C / ACER: Breakout 303.0 / 456.4, Pong 19.7 / 20.7, Alien 1141.7 / 1655.4.
    assert "| Breakout | 150.0 | 302.0 | 303.0 | 456.4 | 274.8 |" in text  # ours beside Table 6
    # Breakout and Alien go to ACER, Pong to ours.
    assert "ours vs the paper's A2C and ACER | 0 | 2 | 1 | 0 |" in text
    assert "IQM" in text
    assert (tmp_path / "out" / "performance_profile.png").stat().st_size > 1000
    assert (tmp_path / "out" / "interval_estimates.png").stat().st_size > 1000


def test_empty_results_folder_is_a_clear_error(tmp_path):
    (tmp_path / "runs").mkdir()
    result = run_report("--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and result.stderr.startswith(
        "error: --runs-dir: no */summary.json"
    )
    result = run_report("--runs-dir", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "is not a folder" in result.stderr


def test_wandb_publishes_the_report_as_an_offline_run(tmp_path):
    records = [
        rec(f"{g}NoFrameskip-v4", "ppo_table5", s, v + s)
        for g, v in [("Breakout", 30.0), ("Pong", 0.0)]
        for s in (1, 2)
    ]
    write_runs(tmp_path / "runs", records)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "report.py"), "--runs-dir", str(tmp_path / "runs"), "--out", str(out),
         "--bootstrap-reps", "100", "--wandb", "--wandb-project-name", "ppo-report-test"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "WANDB_MODE": "offline"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (out / "wandb").glob("offline-run-*")
    media = run / "files" / "media"
    assert len(list((media / "html").glob("*.html"))) == 1
    assert (
        len(list((media / "images").rglob("*.png"))) == 2
    )  # interval estimates, performance profile
    assert len(list((media / "table").rglob("*.json"))) == 1
    assert (run / "files" / "report.md").read_text() == (out / "report.md").read_text()
    assert "the W&B Report needs the online service" in result.stdout


def test_wandb_report_holds_the_markdown_and_live_curves():
    markdown = "# PPO report\n\n## Table 1\n\n| setting | score |\n|---|---|\n| clip 0.2 | 0.82 |\n\n## Plots\n\n![curves](curves.png)\n"
    built = report.wandb_report(
        markdown, "team", "ppo-pipeline", "https://wandb.ai/team/ppo-pipeline/runs/abc"
    )
    text, link, grid = built.blocks
    assert built.entity == "team" and built.project == "ppo-pipeline"
    assert (
        "| clip 0.2 | 0.82 |" in text.text and "curves.png" not in text.text
    )  # local images dropped
    assert link.text[1].url.endswith("/runs/abc")
    (runset,) = grid.runsets
    assert (runset.project, runset.groupby) == ("ppo-pipeline", ["exp_name"])
    (plot,) = grid.panels
    assert (plot.x, plot.y) == ("global_step", ["charts/episodic_return"])


def test_a_wandb_failure_leaves_the_report_written(tmp_path, monkeypatch, capsys):
    write_runs(tmp_path / "runs", [rec("BreakoutNoFrameskip-v4", "x", s, 10.0 + s) for s in (1, 2)])
    out = tmp_path / "out"
    args = report.Args(
        runs_dir=str(tmp_path / "runs"), out=str(out), bootstrap_reps=100, wandb=True
    )
    report.validate(args)

    def broken_init(*_, **__):
        raise RuntimeError("no service")

    monkeypatch.setattr("wandb.init", broken_init)
    report.main(args)  # returns normally
    assert "## " in (out / "report.md").read_text()
    assert "warning: publishing to W&B failed (RuntimeError: no service)" in capsys.readouterr().out


def test_runs_without_a_finished_episode_are_reported_not_a_crash(tmp_path):
    records = [rec("BreakoutNoFrameskip-v4", "x", s, None) for s in (1, 2)]
    write_runs(tmp_path / "runs", records)
    result = run_report("--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| Breakout | n/a | n/a |" in (tmp_path / "out" / "report.md").read_text()


def write_run_with_curve(folder, name, summary, returns):
    """A run folder with summary.json and TensorBoard episode returns, as a trainer leaves it."""
    from torch.utils.tensorboard import SummaryWriter

    run = folder / name
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps(summary))
    writer = SummaryWriter(str(run))
    for i, value in enumerate(returns):
        writer.add_scalar("charts/episodic_return", value, (i + 1) * 100)
    writer.close()


def test_short_and_diverged_runs_are_reported_not_a_crash(tmp_path):
    """A run with fewer than 10 episodes (smoothing) and a diverged one do not stop the report."""
    base = {"env_id": "Pendulum-v1", "global_step": 2048, "total_timesteps": 2048, "seed": 1}
    write_run_with_curve(tmp_path / "runs", "a", {**base, "exp_name": "clip_0.2", "finished": True, "status": "finished",
                         "episodes": 3, "mean_return_all_training": -1200.0, "mean_return_last_100": -1100.0},
                         [-1300.0, -1200.0, -1100.0])  # fmt: skip
    write_run_with_curve(tmp_path / "runs", "b", {**base, "exp_name": "no_clip", "finished": False, "status": "diverged",
                         "episodes": 1, "mean_return_all_training": -1500.0, "mean_return_last_100": -1500.0},
                         [-1500.0])  # fmt: skip
    out = tmp_path / "out"
    result = run_report(
        "--runs-dir",
        str(tmp_path / "runs"),
        "--out",
        str(out),
        "--random-scores",
        str(write_random(tmp_path)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = (out / "report.md").read_text()
    assert "2 runs (1 diverged, 1 finished)" in text
    # Random -1600: clip_0.2 is the best (1.00); no_clip (-1500 - -1600) / 500 = 0.20, 1 diverged.
    assert re.search(
        r"\| No clipping or penalty \| 0\.20 \| -0\.39 \| 2 \| 11 \| \[0\.20, 0\.20\] "
        r"\| -0\.80 \[-0\.80, -0\.80\] \| 1 \| 1 \|",
        text,
    ), text
    assert "nan" not in text.lower()
    assert (out / "curve_Pendulum-v1.png").stat().st_size > 5000


def write_random(tmp_path):
    path = tmp_path / "random.csv"
    path.write_text("env_id,score\nPendulum-v1,-1600\n")
    return path


def test_bad_report_flags_are_one_line_errors(tmp_path):
    from conftest import assert_usage_error

    assert_usage_error(run_report("--bootstrap-reps", "many"), "--bootstrap-reps")
    assert_usage_error(run_report("--no-such-flag"), "--no-such-flag")
    assert_usage_error(run_report("--record-dir", str(tmp_path)), "--record-dir")


def test_gap_interval_tells_a_clear_gap_from_seed_noise():
    best = {"A-v5": [1.0, 0.9, 1.1], "B-v5": [1.0, 0.95, 1.05]}
    behind = {env: [s - 0.5 for s in runs] for env, runs in best.items()}
    noisy = {"A-v5": [0.5, 1.0, 1.3], "B-v5": [0.6, 1.0, 1.2]}  # mean 0.93 against 1.00, wider
    low, high = table1.gap_interval(behind, best)
    assert high < 0 and low < -0.5 < high
    low, high = table1.gap_interval(noisy, best)
    assert low < 0 < high
    assert table1.gap_interval(best, best) != (0.0, 0.0)  # two draws, not one resample subtracted


def test_a_verdict_that_moves_with_the_bootstrap_seed_is_on_the_edge():
    """On the committed record, clipping at 0.1's gap to the best ends at -0.00 with seed 0: some
    seeds' intervals hold 0 and some do not. No clipping's is far from 0 under every seed."""
    from records import Record

    rows = Record.load(REPO / "docs" / "results" / "records" / "paper-table1").results()
    envs = sorted({r["env_id"] for r in rows})
    per_variant = table1.normalized_runs(rows, report.random_scores_for(envs, None))
    best = per_variant["adaptive_kl_0.01"]
    assert table1.verdict_on_the_edge(per_variant["clip_0.1"], best)
    assert not table1.verdict_on_the_edge(per_variant["no_clip"], best)
    assert not table1.verdict_on_the_edge(per_variant["clip_0.2"], best)  # holds 0 under all


def test_table1_page_gives_gaps_to_the_best_and_the_rank_agreement():
    """Three of the paper's settings on two envs, ours in the paper's order (tau = 1)."""
    means = {"clip_0.2": 100.0, "adaptive_kl_0.01": 60.0, "no_clip": 10.0}
    records = [rec(env, v, seed, mean + seed - 2) for env in ("A-v5", "B-v5")
               for v, mean in means.items() for seed in (1, 2, 3)]  # fmt: skip
    lines = table1.table1_lines(records, {"A-v5": 0.0, "B-v5": 0.0}, expected_runs=18)
    table = [line.strip("| ").split(" | ") for line in lines if line.startswith("| ")]
    gap = table[0].index("gap to the best [95%]")  # found by its header: columns may move
    rows = {cells[0]: cells for cells in table}
    assert rows["Clipping, epsilon = 0.2"][gap] == "best"
    # adaptive KL: 0.60 against the best's 1.00 on both envs; seeds 1 apart out of 100.
    point, interval = rows["Adaptive KL d_targ = 0.01"][gap].split(" ", 1)
    assert point == "-0.40" and interval.startswith("[-0.4") and interval.endswith("]")
    assert any(line.endswith("Within seed noise of the best (the interval holds 0): 0 of 2 settings.")
               for line in lines)  # fmt: skip
    assert any(line.startswith("Rank agreement with the paper's column: Kendall's tau 1.00 over "
                               "the 3 settings") for line in lines)  # fmt: skip
    (headline,) = [line for line in lines if line.startswith("**Headline (18 of 18 runs).**")]
    assert "rank 3 of 3 (paper: rank 11), -0.90 [" in headline


def plant(folder, scores: dict[tuple[str, str], list[float]]) -> None:
    """A record with one finished run per (env, variant) and seed, of these last-100 scores."""
    from records import Record

    record = Record(folder)
    for (env_id, variant), per_seed in scores.items():
        for seed, score in enumerate(per_seed, start=1):
            record.add(
                {"env_id": env_id, "variant": variant, "seed": seed, "status": "finished",
                 "global_step": 10_000, "total_timesteps": 10_000, "episodes": 10,
                 "mean_return_all_training": score, "mean_return_last_100": score,
                 "wall_time_s": 10.0, "sps": 1000.0, "commit": "abc", "host": "test",
                 "run_name": f"{env_id}__{variant}__{seed}__1", "runner": "single"},
                {"steps": [10_000], "returns": [score]},
            )  # fmt: skip
    record.save()


def test_table1_page_sets_the_2017_setup_beside_today_and_the_ablation_has_its_table(tmp_path):
    """Hopper and Walker2d (random 16.7 and 1.8): today clip 0.2 is best and no clipping far
    behind; under the 2017 setup no clipping is worse still; the ablation's one choice halves it."""
    records = tmp_path / "records"
    today = {("Hopper-v5", "clip_0.2"): [1016.7, 1016.7, 1016.7], ("Hopper-v5", "no_clip"): [516.7] * 3,
             ("Walker2d-v5", "clip_0.2"): [1001.8] * 3, ("Walker2d-v5", "no_clip"): [501.8] * 3}  # fmt: skip
    plant(records / "paper-table1", today)
    plant(records / "paper-table1-2017", {("Hopper-v5", "clip_0.2"): [2016.7] * 3,
                                          ("Hopper-v5", "no_clip"): [16.7] * 3})  # fmt: skip
    plant(records / "paper-table1-ablation", {("Hopper-v5", "no_clip+no_norm_reward"): [266.7] * 3,
                                              ("Walker2d-v5", "no_clip+no_norm_reward"): [251.8] * 3})  # fmt: skip
    out = tmp_path / "out"
    report.main(report.Args(record_dir=str(records), out=str(out)))
    page = (out / "paper-table1.md").read_text()
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in page.splitlines()
            if line.startswith("| ") and "(" in line and "runs)" in line}  # fmt: skip
    # today: no clipping is 0.50 on both envs; 2017: its own best is clip 0.2, no clipping 0.00
    assert rows["No clipping or penalty"][1:3] == ["-0.39", "11"]
    assert (
        rows["No clipping or penalty"][3] == "0.50"
        and rows["No clipping or penalty"][5] == "2 (6 runs)"
    )
    assert rows["No clipping or penalty"][6] == "0.00" and rows["No clipping or penalty"][
        8
    ].startswith("2 (3 runs)")
    assert rows["Clipping, epsilon = 0.2"][6] == "1.00"
    assert "## Table 1 under today's setup and the 2017 setup" in page
    assert "## Table 1: surrogate objectives" in page  # today's full table stays
    assert "**Incomplete.** The 2017 setup has 6 of 231 runs so far." in page
    ablation = (out / "paper-table1-ablation.md").read_text()
    assert "## The ablation: one 2017 choice at a time" in ablation
    assert "## Table 1: surrogate" not in ablation  # the ablation's own table replaces it
    no_clip_block = ablation.split("**No clipping or penalty**")[1].split("**")[0]
    lines = {line.split(" | ")[0][2:]: line.split(" | ") for line in no_clip_block.splitlines()
             if line.startswith("| ")}  # fmt: skip
    assert lines["today's setup"][1] == "0.50"  # no clipping, from paper-table1 (shared)
    assert lines["+ no_norm_reward"][1] == "0.25" and lines["+ no_norm_reward"][3].startswith(
        "-0.25 ["
    )
    setup_2017 = (out / "paper-table1-2017.md").read_text()
    assert (
        "## Table 1 under today's setup and the 2017 setup" not in setup_2017
    )  # no self-comparison
    # The 2017 page puts its runs on today's scale beside today's runs of the same setting and env
    # (Hopper only: today's Walker2d runs stay out of both averages).
    both = setup_2017.split("## Each setting under both setups, on today's scale")[1]
    no_clip = {line.split(" | ")[0][2:]: line.split(" | ")
               for line in both.split("**No clipping or penalty**")[1].split("**")[0].splitlines()
               if line.startswith("| ")}  # fmt: skip
    assert no_clip["today's setup"][1] == "0.50" and no_clip["today's setup"][4].startswith("3")
    assert no_clip["+ the 2017 setup (all seven choices)"][1] == "0.00"
    assert no_clip["+ the 2017 setup (all seven choices)"][3].startswith("-0.50 [")
    assert "| No clipping or penalty | Hopper-v5 | 0.50 (516.7, n=3) | 0.00 (16.7, n=3) |" in both
    assert (
        "| Clipping, epsilon = 0.2 | Hopper-v5 | 1.00 (1,016.7, n=3) | 2.00 (2,016.7, n=3) |"
        in both
    )


# Today's Hopper and Walker2d (random 16.7 and 1.8): clip 0.2 best on both, no clipping 0.50 on
# Hopper and 0.00 on Walker2d.
HOPPER_WALKER_TODAY = {("Hopper-v5", "clip_0.2"): [1016.7] * 3, ("Hopper-v5", "no_clip"): [516.7] * 3,
                       ("Walker2d-v5", "clip_0.2"): [1001.8] * 3, ("Walker2d-v5", "no_clip"): [1.8] * 3}  # fmt: skip


def test_an_ablation_choice_run_on_some_tasks_is_compared_on_those_tasks_only(tmp_path):
    """While the ablation fills, a choice run on Hopper only is set against today's no clipping on
    Hopper (0.50), not over both tasks (0.25 with Walker2d's 0.00), and its row says which tasks."""
    records = tmp_path / "records"
    plant(records / "paper-table1", HOPPER_WALKER_TODAY)
    plant(records / "paper-table1-ablation", {("Hopper-v5", "no_clip+no_norm_reward"): [266.7] * 3})
    out = tmp_path / "out"
    report.main(report.Args(record_dir=str(records), out=str(out)))
    ablation = (out / "paper-table1-ablation.md").read_text()
    no_clip_block = ablation.split("**No clipping or penalty**")[1].split("**")[0]
    lines = {line.split(" | ")[0][2:]: line.split(" | ") for line in no_clip_block.splitlines()
             if line.startswith("| ")}  # fmt: skip
    assert lines["today's setup"][1] == "0.25"  # over both tasks
    assert lines["+ no_norm_reward"][1] == "0.25"  # Hopper only
    assert lines["+ no_norm_reward"][3].startswith("-0.25 [")  # against Hopper's 0.50
    assert lines["+ no_norm_reward"][4] == "3 (1 of 2 tasks: Hopper-v5) |"


def test_the_ablation_page_shows_each_choice_task_by_task(tmp_path):
    """The pooled change can hide a choice that moves one task far: the per-task table gives
    today's mean on each task and each choice's change there, with '-' where it has not run.
    Hopper: no clipping 0.50 today, 0.25 with the choice (seeds equal, so the interval is a point);
    Walker2d: today's 0.00 and no run of the choice."""
    records = tmp_path / "records"
    plant(records / "paper-table1", HOPPER_WALKER_TODAY)
    plant(records / "paper-table1-ablation", {("Hopper-v5", "no_clip+no_norm_reward"): [266.7] * 3,
                                              ("Hopper-v5", "no_clip+no_grad_clip"): [766.7] * 3})  # fmt: skip
    out = tmp_path / "out"
    report.main(report.Args(record_dir=str(records), out=str(out)))
    ablation = (out / "paper-table1-ablation.md").read_text()
    by_task = ablation.split("### Task by task")[1]
    block = by_task.split("**No clipping or penalty**")[1].split("**")[0]
    table = [line.strip("| ").split(" | ") for line in block.splitlines() if line.startswith("| ")]
    assert table[0] == ["setup", "Hopper-v5", "Walker2d-v5"]
    rows = {cells[0]: cells[1:] for cells in table[1:]}
    assert rows["today's setup"] == ["0.50", "0.00"]
    assert rows["+ no_grad_clip"] == ["+0.25 [+0.25, +0.25]", "-"]
    assert rows["+ no_norm_reward"] == ["-0.25 [-0.25, -0.25]", "-"]


def test_the_ablation_page_sets_each_pair_against_the_first_choice_alone(tmp_path):
    """paper-table1-ablation-pairs on the ablation's page: no clipping without return normalisation
    (1.00 on InvertedPendulum, 0.50 on InvertedDoublePendulum; random 5.23 and 49.09, today's best
    1,005.23 and 1,049.09), each second choice's change from that, and the whole 2017 setup's; the
    pairs stay out of the one-choice tables, and the shared runs are shown once, not set aside."""
    records = tmp_path / "records"
    ip, idp = "InvertedPendulum-v5", "InvertedDoublePendulum-v5"
    plant(records / "paper-table1", {(ip, "clip_0.2"): [1005.23] * 3, (ip, "no_clip"): [5.23] * 3,
                                     (idp, "clip_0.2"): [1049.09] * 3, (idp, "no_clip"): [49.09] * 3})  # fmt: skip
    plant(
        records / "paper-table1-2017",
        {(ip, "no_clip"): [105.23] * 3, (idp, "no_clip"): [49.09] * 3},
    )
    plant(records / "paper-table1-ablation", {(ip, "no_clip+no_norm_reward"): [1005.23] * 3,
                                              (idp, "no_clip+no_norm_reward"): [549.09] * 3})  # fmt: skip
    plant(
        records / "paper-table1-ablation-pairs",
        {(ip, "no_clip+no_norm_reward+no_grad_clip"): [255.23] * 3},
    )
    out = tmp_path / "out"
    report.main(report.Args(record_dir=str(records), out=str(out)))
    page = (out / "paper-table1-ablation.md").read_text()
    one_choice, pairs = page.split("## Two 2017 choices at once")
    assert "no_grad_clip" not in one_choice.split("## The ablation")[1]
    assert "Also in this page's record, not shown" not in page
    table = [line.strip("| ").split(" | ") for line in pairs.splitlines() if line.startswith("| ")]
    assert table[0] == ["setup", idp, ip]
    rows = {cells[0]: cells[1:] for cells in table[1:]}
    assert rows["no return normalisation"] == ["0.50", "1.00"]
    assert rows["+ no_grad_clip"] == ["-", "-0.75 [-0.75, -0.75]"]
    assert rows["+ the other six (the 2017 setup)"] == [
        "-0.50 [-0.50, -0.50]",
        "-0.90 [-0.90, -0.90]",
    ]


def test_mujoco_runs_without_an_episode_are_a_page_not_a_crash(tmp_path):
    """Table 1 of runs that never ended an episode (scores null) says so instead of a ValueError."""
    write_runs(tmp_path / "runs", [rec("Pendulum-v1", "clip_0.2", s, None) for s in (1, 2)])
    out = tmp_path / "out"
    result = run_report("--runs-dir", str(tmp_path / "runs"), "--out", str(out),
                        "--random-scores", str(write_random(tmp_path)))  # fmt: skip
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert (
        "No scores yet: none of the 2 runs has a last-100 return" in (out / "report.md").read_text()
    )


def test_a_corrupt_summary_is_named_in_a_warning_and_none_readable_is_an_error(tmp_path):
    runs = tmp_path / "runs"
    write_runs(runs, [rec("Pendulum-v1", "clip_0.2", s, -1000.0) for s in (1, 2)])
    cut = runs / "run1" / "summary.json"
    cut.write_text(cut.read_text()[:40])  # cut by a crash or a full disk
    out = tmp_path / "out"
    result = run_report("--runs-dir", str(runs), "--out", str(out),
                        "--random-scores", str(write_random(tmp_path)))  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"warning: {cut} cannot be read (JSONDecodeError" in result.stderr
    assert "1 runs (1 finished)" in (out / "report.md").read_text()
    (runs / "run0" / "summary.json").write_text("[]")
    result = run_report("--runs-dir", str(runs), "--out", str(out))
    assert_usage_error(result, "--runs-dir: none of the 2 summary.json files")
    assert f"({runs / 'run0' / 'summary.json'} is not a JSON object; 1 more alike)" in result.stderr


def write_record(folder):
    """A results record of two Pendulum runs of the smoke preset, each with a curve."""
    import records

    record = records.Record(folder / "smoke")
    for seed in (1, 2):
        row = {**rec("Pendulum-v1", "clip_0.2", seed, -1000.0 + seed), "status": "finished"}
        record.add(
            row,
            {"steps": [100 * i for i in range(1, 21)], "returns": [-1500.0 + i for i in range(20)]},
        )
    record.save()
    return record.folder


def test_a_cut_curve_line_is_named_and_the_good_lines_used(tmp_path):
    folder = write_record(tmp_path / "records")
    curves = folder / "curves.jsonl"
    curves.write_text(curves.read_text()[:-30])  # the last line cut
    out = tmp_path / "out"
    flags = ["--record-dir", str(tmp_path / "records"), "--out", str(out),
             "--random-scores", str(write_random(tmp_path))]  # fmt: skip
    result = run_report(*flags)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"warning: {curves} line 2: cut or not a JSON curve (JSONDecodeError" in result.stderr
    assert "2 runs (2 finished)" in (out / "smoke.md").read_text()
    assert (out / "img" / "smoke" / "curve_Pendulum-v1.png").is_file()  # seed 1's curve
    curves.unlink()
    result = run_report(*flags)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"warning: {curves} is missing; the page has no learning curves" in result.stderr


def test_the_2017_page_stops_calling_its_column_incomplete_at_231_runs(tmp_path):
    """The 2017 page's comparison on today's scale says why it uses today's scale: while the 2017
    column fills, because its own scale says little; once it holds Table 1's 231 runs, not so."""
    from presets import MUJOCO_TABLE1, TABLE1_VARIANTS

    records = tmp_path / "records"
    every = {(env, v): [100.0 + i, 110.0 + i, 120.0 + i]
             for env in MUJOCO_TABLE1 for i, v in enumerate(TABLE1_VARIANTS)}  # fmt: skip
    plant(records / "paper-table1", every)
    partial = dict(list(every.items())[:-1])  # one setting of one task short: 228 runs
    for planted, still_filling in ((partial, True), (every, False)):
        plant(records / "paper-table1-2017", planted)
        out = tmp_path / f"out-{len(planted)}"
        report.main(report.Args(record_dir=str(records), out=str(out)))
        page = (out / "paper-table1-2017.md").read_text()
        both = page.split("## Each setting under both setups, on today's scale")[1]
        assert ("Until the 2017 column is complete" in both) == still_filling
        assert ("**Incomplete.**" in (out / "paper-table1.md").read_text()) == still_filling
