"""The report's Figure 3: a panel per task, a curve per algorithm, final scores with intervals;
on a planted record (2 tasks x 5 algorithms x 2 seeds) and on the smoke-figure3 sweep for real."""

from __future__ import annotations

import re
import subprocess
import sys

import figure3
import numpy as np
import report
from conftest import REPO, summary
from records import Record

ALGORITHMS = ("clip_0.2", "trpo", "a2c", "vpg_adaptive", "cem")
LABELS = ["PPO (Clip)", "TRPO", "A2C", "Vanilla PG, Adaptive", "CEM"]
TASKS = ("Hopper-v5", "Walker2d-v5")
CELL = r"-?\d+\.\d \[-?\d+\.\d, -?\d+\.\d\] \(n=\d\)"


def final_return(env_id: str, variant: str, seed: int) -> float:
    """The planted last-100 score: distinct per task, algorithm and seed. CEM on Walker2d-v5
    scores 123 and 125, so its cell must read mean 124 with the interval [123, 125]."""
    if (env_id, variant) == ("Walker2d-v5", "cem"):
        return 123.0 + 2 * (seed - 1)
    return 1000.0 * TASKS.index(env_id) + 100.0 * (ALGORITHMS.index(variant) + 1) + seed


def planted_record(folder) -> Record:
    """The results record benchmark.py would have written for the 20 runs (runs.csv, curves.jsonl)."""
    record = Record(folder)
    steps = list(range(1000, 20_001, 1000))
    for env_id in TASKS:
        for variant in ALGORITHMS:
            for seed in (1, 2):
                final = final_return(env_id, variant, seed)
                row = {"env_id": env_id, "variant": variant, "seed": seed, "status": "finished",
                       "global_step": 20_000, "total_timesteps": 20_000, "episodes": 20,
                       "mean_return_all_training": final / 2, "mean_return_last_100": final,
                       "wall_time_s": 10.0, "sps": 2000.0, "commit": "abc1234", "host": "test",
                       "run_name": f"{env_id}__{variant}__{seed}__1", "runner": "single"}  # fmt: skip
                returns = [float(x) for x in np.linspace(0.0, final, len(steps))]
                record.add(row, {"steps": steps, "returns": returns})
    record.save()
    return record


def test_the_grid_has_a_panel_per_task_and_a_line_per_algorithm(tmp_path):
    rows = planted_record(tmp_path / "paper-figure3").results()
    table, figure = figure3.split_rows(rows)
    assert table == [] and len(figure) == 20  # the comparison algorithms are no Table 1 settings
    fig, panels = report.figure3_figure(figure)
    assert [ax.get_title() for ax in panels] == list(TASKS)
    for ax in panels:
        assert [line.get_label() for line in ax.get_lines()] == LABELS
        assert len(ax.collections) == 5  # each mean over 2 seeds has its range shaded
    # One colour per algorithm in every panel; the legend names all five.
    assert [line.get_color() for line in panels[0].get_lines()] == [
        line.get_color() for line in panels[1].get_lines()
    ]
    (legend,) = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert [text.get_text() for text in legend.get_texts()] == LABELS


def test_an_algorithm_keeps_its_colour_where_another_has_no_runs(tmp_path):
    rows = planted_record(tmp_path / "paper-figure3").results()
    rows = [r for r in rows if (r["env_id"], r["variant"]) != ("Hopper-v5", "trpo")]
    _, (hopper, walker) = report.figure3_figure(rows)
    assert [line.get_label() for line in hopper.get_lines()] == [x for x in LABELS if x != "TRPO"]
    colours = {line.get_label(): line.get_color() for line in walker.get_lines()}
    assert {line.get_label(): line.get_color() for line in hopper.get_lines()} == {
        label: colour for label, colour in colours.items() if label != "TRPO"
    }


def test_the_paper_layout_of_seven_tasks_leaves_a_cell_for_the_legend():
    fig, panels, spare = report.figure3_grid(7)
    assert len(panels) == 7 and len(spare) == 1 and not spare[0].axison
    assert panels[0].get_subplotspec().get_geometry()[:2] == (2, 4)


def test_table1_keeps_its_settings_beside_figure3_runs():
    variants = ("clip_0.1", "clip_0.2", "trpo")
    rows = [{"env_id": "Hopper-v5", "variant": v, "seed": 1} for v in variants]
    table, figure = figure3.split_rows(rows)
    assert [r["variant"] for r in table] == ["clip_0.1", "clip_0.2"]
    assert [r["variant"] for r in figure] == ["clip_0.2", "trpo"]
    assert figure3.split_rows(rows[:2]) == (rows[:2], [])  # no comparison algorithm: no Figure 3


def test_report_draws_figure3_and_tabulates_the_final_scores(tmp_path):
    planted_record(tmp_path / "records" / "paper-figure3")
    out = tmp_path / "out"
    report.main(report.Args(record_dir=str(tmp_path / "records"), out=str(out)))
    assert (out / "img" / "paper-figure3" / "figure3.png").stat().st_size > 10_000
    text = (out / "paper-figure3.md").read_text()
    assert "![figure3](img/paper-figure3/figure3.png)" in text
    assert "## Table 1" not in text
    assert "Runs: 20 of 105, 0 diverged." in text  # the preset's 7 tasks x 5 algorithms x 3 seeds
    # Each algorithm has 4 of its 21 runs (2 tasks x 2 seeds).
    assert ("Still to run (85 runs): PPO (Clip) 17, TRPO 17, A2C 17, Vanilla PG, Adaptive 17, "
            "CEM 17.") in text  # fmt: skip
    assert "| task | " + " | ".join(LABELS) + " |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "-v5 |" in line]
    assert [row.split(" | ")[0] for row in rows] == [f"| {task}" for task in TASKS]
    for row in rows:
        cells = row.strip("| ").split(" | ")[1:]
        assert len(cells) == 5 and all(re.fullmatch(CELL, c) for c in cells), row
    walker = rows[1].strip("| ").split(" | ")
    assert walker[LABELS.index("CEM") + 1] == "124.0 [123.0, 125.0] (n=2)"
    assert walker[LABELS.index("TRPO") + 1] == "1201.5 [1201.0, 1202.0] (n=2)"


def test_figure3_shows_table1_clip_runs_and_lists_its_own_it_leaves_out(tmp_path):
    """Figure 3's page takes its PPO (Clip) runs from paper-table1's record (one run per setting
    and seed for both pages), keeps its own where Table 1 has none, and lists each of its own it
    leaves out; Table 1's page is unchanged."""
    records = tmp_path / "records"
    planted_record(records / "paper-figure3")  # Hopper and Walker2d, seeds 1 and 2
    table1 = Record(records / "paper-table1")
    for env_id, variant, seed, final in [("Hopper-v5", "clip_0.2", 1, -50.0), ("Hopper-v5", "clip_0.2", 3, 5000.0),
                                         ("Swimmer-v5", "clip_0.2", 1, 90.0), ("Swimmer-v5", "clip_0.1", 1, 70.0)]:  # fmt: skip
        row = {"env_id": env_id, "variant": variant, "seed": seed, "status": "finished",
               "global_step": 20_000, "total_timesteps": 20_000, "episodes": 20,
               "mean_return_all_training": final / 2, "mean_return_last_100": final,
               "wall_time_s": 10.0, "sps": 2000.0, "commit": "def5678", "host": "test",
               "run_name": f"{env_id}__{variant}__{seed}__2", "runner": "batched"}  # fmt: skip
        table1.add(row, {"steps": [1000, 2000], "returns": [0.0, final]})
    table1.save()
    out = tmp_path / "out"
    report.main(report.Args(record_dir=str(records), out=str(out)))
    text = (out / "paper-figure3.md").read_text()
    assert "Runs: 22 of 105, 0 diverged." in text
    assert "Still to run (83 runs): PPO (Clip) 15, TRPO 17," in text  # Table 1's runs counted
    assert "- 3 of these runs (clip_0.2) are paper-table1's" in text
    assert (
        "- Also in this page's record, not shown: Hopper-v5 clip_0.2 seed 1 (last 100: 101.0"
        in text
    )
    cells = {line.split(" | ")[0][2:]: line.strip("| ").split(" | ")[1:] for line in text.splitlines()
             if line.startswith("| ") and "-v5 |" in line}  # fmt: skip
    # Hopper: Table 1's seeds 1 and 3 (-50, 5000) and its own seed 2 (102), not its own seed 1.
    assert (
        cells["Hopper-v5"][0].startswith(f"{(-50 + 102 + 5000) / 3:.1f} [")
        and "(n=3)" in cells["Hopper-v5"][0]
    )
    assert cells["Swimmer-v5"] == ["90.0 [90.0, 90.0] (n=1)"] + ["n/a"] * 4
    table1_page = (out / "paper-table1.md").read_text()
    assert (
        "trpo" not in table1_page
        and "Figure 3" not in table1_page
        and "4 runs (4 finished)" in table1_page
    )


def test_an_empty_figure3_record_is_a_page_not_a_crash(tmp_path):
    Record(tmp_path / "records" / "paper-figure3").save()  # runs.csv with its header alone
    out = tmp_path / "out"
    report.main(report.Args(record_dir=str(tmp_path / "records"), out=str(out)))
    assert "0 runs ()" in (out / "paper-figure3.md").read_text()
    assert not (out / "img" / "paper-figure3" / "figure3.png").exists()


def test_smoke_figure3_sweep_and_report(tmp_path):
    """One short run of each algorithm on Pendulum-v1 through the launcher, then the report."""
    runs = tmp_path / "runs"
    sweep = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), "--preset", "smoke-figure3",
                            "--runs-dir", str(runs), "--workers", "1"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    dirs = [d for d in runs.iterdir() if d.is_dir() and d.name != "logs"]
    assert sorted(summary(d)["exp_name"] for d in dirs) == sorted(ALGORITHMS)
    assert {summary(d)["algorithm"] for d in dirs} == {"ppo", "trpo", "a2c", "vpg", "cem"}
    out = tmp_path / "report"
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "report.py"), "--runs-dir", str(runs),
                             "--out", str(out)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "figure3.png").stat().st_size > 5000
    text = (out / "report.md").read_text()
    assert "![figure3](figure3.png)" in text and "## Table 1" not in text
    (row,) = [line for line in text.splitlines() if line.startswith("| Pendulum-v1 |")]
    cells = row.strip("| ").split(" | ")[1:]
    one_run = CELL.replace("n=\\d", "n=1")
    assert len(cells) == 5 and all(re.fullmatch(one_run, c) for c in cells), row


def test_a_preset_that_plans_only_ppo_and_trpo_lists_only_those_as_still_to_run(tmp_path):
    """paper-figure3-2017 plans 21 PPO (Clip) and 21 TRPO runs, none of the other algorithms."""
    records = tmp_path / "records"
    planted = planted_record(tmp_path / "planted").results()
    record = Record(records / "paper-figure3-2017")
    for row in planted:
        if row["variant"] in ("clip_0.2", "trpo") and not (
            row["variant"] == "trpo" and row["seed"] == 2
        ):
            record.add(row, {"steps": [1000, 2000], "returns": [0.0, row["mean_return_last_100"]]})
    record.save()  # PPO (Clip) 4 runs, TRPO 2 runs
    out = tmp_path / "out"
    report.main(report.Args(record_dir=str(records), out=str(out)))
    text = (out / "paper-figure3-2017.md").read_text()
    assert "Runs: 6 of 42, 0 diverged." in text
    assert "Still to run (36 runs): PPO (Clip) 17, TRPO 19. The preset's command" in text
