"""Table 2 with our own A2C: games won by our PPO and our A2C on both of the paper's metrics, the
A2C sweep as its own preset, and A2C rows kept out of PPO's per-game numbers."""

from __future__ import annotations

import subprocess
import sys

import atari_tables
import numpy as np
import report
from conftest import REPO
from records import Record

PPO = "ppo_table5"


def rows_of(variant, game, whole, last):
    """Two seeds per game whose means are ``whole`` (all training) and ``last`` (last 100); the
    seeds differ, so only their means decide (a per-seed comparison would not tie where these do)."""
    return [{"env_id": f"{game}NoFrameskip-v4", "variant": variant, "seed": seed,
             "mean_return_all_training": whole + d, "mean_return_last_100": last + 3 * d}
            for seed, d in ((1, -10.0 if variant == PPO else -4.0), (2, 10.0 if variant == PPO else 4.0))]  # fmt: skip


# game: (PPO all training, PPO last 100, A2C all training, A2C last 100), means over seeds.
PLANTED = {
    "Breakout": (100.0, 200.0, 50.0, 300.0),  # (1) PPO, (2) A2C
    "Pong": (5.0, 20.0, 10.0, 15.0),  # (1) A2C, (2) PPO
    "Alien": (800.0, 1500.0, 700.0, 1500.0),  # (1) PPO, (2) tie
    "Seaquest": (400.0, 900.0, 400.0, 1000.0),  # (1) tie, (2) A2C
}
# (1) all training: PPO 2, A2C 1, tie 1; (2) last 100: PPO 1, A2C 2, tie 1.
WON_ALL_TRAINING = {"a2c": 1, "ppo": 2, "tie": 1}
WON_LAST_100 = {"a2c": 2, "ppo": 1, "tie": 1}


def ppo_rows():
    return [r for g, (w, la, _, _) in PLANTED.items() for r in rows_of(PPO, g, w, la)]


def a2c_rows():
    return [r for g, (_, _, w, la) in PLANTED.items() for r in rows_of("a2c", g, w, la)]


def counts(won):
    return {k: won[k] for k in ("a2c", "ppo", "tie")}


def test_ours_vs_our_a2c_counts_each_metric_on_means_over_seeds():
    won = atari_tables.ours_vs_our_a2c(ppo_rows(), a2c_rows())
    assert counts(won["mean_return_all_training"]) == WON_ALL_TRAINING
    assert counts(won["mean_return_last_100"]) == WON_LAST_100
    assert (
        won["mean_return_all_training"]["missing"] == won["mean_return_last_100"]["missing"] == []
    )


def test_a_game_only_one_algorithm_ran_is_missing_not_counted():
    ppo = ppo_rows() + rows_of(PPO, "Qbert", 1.0, 2.0)
    won = atari_tables.ours_vs_our_a2c(ppo, a2c_rows())
    assert counts(won["mean_return_last_100"]) == WON_LAST_100
    assert won["mean_return_last_100"]["missing"] == ["Qbert"]


def test_count_wins_is_games_won_without_the_paper():
    scores = {"x": {"G1": 1.0, "G2": 2.0, "G3": 3.04}, "y": {"G1": 2.0, "G2": 1.0, "G3": 3.0}}
    won = atari_tables.count_wins(scores, ["G1", "G2", "G3", "G4"])
    assert (won["x"], won["y"], won["tie"], won["missing"]) == (1, 1, 1, ["G4"])  # G3: 3.0 = 3.0


def test_the_page_holds_both_tables_with_the_counts():
    text = "\n".join(atari_tables.atari_lines(ppo_rows() + a2c_rows(), reps=50)[0])
    assert "### Table 2: games won" in text  # against the paper's A2C and ACER, as before
    assert "| (2) last 100 episodes: ours vs the paper's A2C and ACER |" in text
    assert "### Table 2, ours: our PPO against our A2C" in text
    w, la = WON_ALL_TRAINING, WON_LAST_100
    assert (f"| (1) avg. episode reward over all training | {w['a2c']} | {w['ppo']} | {w['tie']} |"
            in text)  # fmt: skip
    assert (f"| (2) avg. episode reward over last 100 episodes | {la['a2c']} | {la['ppo']} | {la['tie']} |"
            in text)  # fmt: skip
    assert "has not been run yet" not in text
    # Table 6: ours, then our A2C (all training, last 100), then the paper's A2C, ACER, PPO.
    assert "| Breakout | 100.0 | 200.0 | 50.0 | 300.0 | 303.0 | 456.4 | 274.8 |" in text
    assert "## Atari, variant `a2c`" not in text  # A2C is no PPO variant


def test_without_a2c_rows_the_page_says_the_sweep_has_not_run():
    text = "\n".join(atari_tables.atari_lines(ppo_rows(), reps=50)[0])
    assert "the A2C sweep has not been run yet" in text
    assert "`python scripts/benchmark.py --preset paper-atari49-a2c`" in text
    assert "### Table 2, ours" not in text
    assert "| Breakout | 100.0 | 200.0 | 303.0 | 456.4 | 274.8 |" in text  # no A2C columns


def test_a2c_rows_do_not_leak_into_ppo_numbers():
    alone_text, alone_scores, _ = atari_tables.atari_lines(ppo_rows(), reps=50)
    a2c = a2c_rows() + rows_of("a2c", "Qbert", 1.0, 2.0)  # a game PPO has not run
    text, scores, _ = atari_tables.atari_lines(ppo_rows() + a2c, reps=50)
    assert not any(line.startswith("## Atari, variant `a2c`") for line in text)
    # The count against the paper's A2C and ACER is PPO's alone.
    against_paper = [line for line in alone_text if "ours vs the paper's A2C and ACER" in line]
    assert len(against_paper) == 1 and against_paper[0] in text
    # rliable: PPO's matrix is PPO's alone; our A2C is its own row.
    key = f"PPO ours ({PPO})"
    assert np.array_equal(scores[key], alone_scores[key])
    assert "A2C ours (a2c)" in scores and "A2C ours (a2c)" not in alone_scores
    # The paper's points are on PPO's games (4), not on our A2C's extra one.
    assert scores["paper PPO (mean of 3 seeds)"].shape == (1, len(PLANTED))
    # Per game, PPO's means are PPO's rows' means.
    for game, (whole, last, _, _) in PLANTED.items():
        assert f"| {game} | {whole:.1f} | {last:.1f} |" in "\n".join(text)


def test_the_a2c_sweep_is_its_own_preset_and_paper_atari49_stays_ppo(tmp_path):
    from presets import presets

    known = presets()
    ppo, a2c = known["paper-atari49"], known["paper-atari49-a2c"]
    assert list(ppo.variants) == [PPO] and ppo.reported_with is None
    assert a2c.variants == {"a2c": ["--algorithm", "a2c"]} and a2c.recorded
    assert (a2c.env_ids, a2c.seeds, a2c.common_flags) == (ppo.env_ids, ppo.seeds, ppo.common_flags)
    assert a2c.reported_with == "paper-atari49"
    dry = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "benchmark.py"), "--preset", "paper-atari49-a2c",
         "--dry-run", "--no-record", "--runs-dir", str(tmp_path / "runs")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    lines = [line for line in dry.stdout.splitlines() if line.startswith("[")]
    assert len(lines) == 49 * 3
    assert all(
        "ppo_atari/train.py" in line
        and "--exp-name a2c " in line
        and line.endswith("--total-timesteps 10000000 --algorithm a2c")
        for line in lines
    ), lines[:2]


def test_report_shows_the_a2c_record_on_paper_atari49s_page(tmp_path):
    records = tmp_path / "records"
    for preset, rows in (("paper-atari49", ppo_rows()), ("paper-atari49-a2c", a2c_rows())):
        record = Record(records / preset)
        for row in rows:
            record.add({**row, "status": "finished"}, {"steps": [], "returns": []})
        record.save()
    assert report.pages_of_records(records) == {
        "paper-atari49": [records / "paper-atari49", records / "paper-atari49-a2c"]
    }
    out = tmp_path / "out"
    report.main(report.Args(record_dir=str(records), out=str(out), bootstrap_reps=50))
    assert sorted(p.name for p in out.glob("*.md")) == ["paper-atari49.md"]
    text = (out / "paper-atari49.md").read_text()
    assert "16 runs (16 finished); 16 Atari, 0 other." in text
    assert "### Table 2, ours: our PPO against our A2C" in text
    la = WON_LAST_100
    assert (f"| (2) avg. episode reward over last 100 episodes | {la['a2c']} | {la['ppo']} | {la['tie']} |"
            in text)  # fmt: skip
