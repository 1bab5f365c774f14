"""The results record: rows and curves survive a round trip, curves are downsampled honestly, and
the launcher plans exactly the runs the record lacks."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import records
from conftest import REPO

LAUNCHER = str(REPO / "scripts" / "benchmark.py")


def row(env_id, variant, seed, last=1.0, status="finished"):
    return {"env_id": env_id, "variant": variant, "seed": seed, "status": status,
            "global_step": 1_000_000, "total_timesteps": 1_000_000, "episodes": 500,
            "mean_return_all_training": None if last is None else last / 2, "mean_return_last_100": last, "wall_time_s": 300.5,
            "sps": 3327.8, "commit": "abc123", "host": "test host, 2 cores",
            "run_name": f"{env_id}__{variant}__{seed}__1", "runner": "single", "env_backend": "envpool"}  # fmt: skip


def planned_runs(stdout: str) -> set[tuple[str, str, int]]:
    """(env, variant, seed) of every ``[new]`` line of a dry run."""
    planned = set()
    for line in stdout.splitlines():
        if line.startswith("[new]"):
            words = line.split()
            planned.add((words[words.index("--env-id") + 1], words[words.index("--exp-name") + 1],
                         int(words[words.index("--seed") + 1])))  # fmt: skip
    return planned


def test_record_round_trip(tmp_path):
    record = records.Record(tmp_path / "rec")
    record.add(
        row("Hopper-v5", "clip_0.2", 2, last=2345.678), {"steps": [10, 20], "returns": [1.5, 2.5]}
    )
    record.add(
        row("Hopper-v5", "clip_0.2", 1, last=None, status="diverged"), {"steps": [], "returns": []}
    )
    record.save()
    loaded = records.Record.load(tmp_path / "rec")
    assert list(loaded.rows) == [("Hopper-v5", "clip_0.2", 1), ("Hopper-v5", "clip_0.2", 2)]
    assert loaded.rows[("Hopper-v5", "clip_0.2", 2)] == row(
        "Hopper-v5", "clip_0.2", 2, last=2345.678
    )
    assert loaded.rows[("Hopper-v5", "clip_0.2", 1)]["mean_return_last_100"] is None
    assert loaded.rows[("Hopper-v5", "clip_0.2", 1)]["status"] == "diverged"
    assert loaded.curves[("Hopper-v5", "clip_0.2", 2)] == {"steps": [10, 20], "returns": [1.5, 2.5]}
    # Saving what was loaded writes the same bytes: the record is stable under git.
    before = {p.name: p.read_bytes() for p in (tmp_path / "rec").iterdir()}
    loaded.save()
    assert before == {p.name: p.read_bytes() for p in (tmp_path / "rec").iterdir()}


def test_rows_recorded_before_the_backend_column_are_gymnasiums(tmp_path):
    """Every run recorded before the env_backend column existed ran on gymnasium."""
    folder = tmp_path / "rec"
    folder.mkdir()
    old_fields = [name for name in records.FIELDS if name != "env_backend"]
    old_row = row("Hopper-v5", "clip_0.2", 1)
    with open(folder / "runs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=old_fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerow(old_row)
    loaded = records.Record.load(folder).rows[("Hopper-v5", "clip_0.2", 1)]
    assert loaded == {**old_row, "env_backend": "gymnasium"}


def test_two_launchers_adding_to_one_record_keep_each_others_runs(tmp_path):
    """Two sweeps of one preset at once (one env each) each hold the record they loaded; a run
    one of them adds must not erase the runs the other saved meanwhile."""
    folder = tmp_path / "rec"
    walker, cheetah = records.Record.load(folder), records.Record.load(folder)
    walker.add_and_save(row("Walker2d-v5", "clip_0.2", 1), {"steps": [1], "returns": [1.0]})
    cheetah.add_and_save(row("HalfCheetah-v5", "clip_0.2", 1), {"steps": [2], "returns": [2.0]})
    walker.add_and_save(row("Walker2d-v5", "clip_0.2", 2), {"steps": [3], "returns": [3.0]})
    saved = records.Record.load(folder)
    assert sorted(saved.rows) == [("HalfCheetah-v5", "clip_0.2", 1), ("Walker2d-v5", "clip_0.2", 1),
                                  ("Walker2d-v5", "clip_0.2", 2)]  # fmt: skip
    assert saved.curves[("HalfCheetah-v5", "clip_0.2", 1)] == {"steps": [2], "returns": [2.0]}


def test_downsample_averages_consecutive_episodes():
    steps, returns = list(range(0, 1000, 10)), [float(i) for i in range(100)]
    assert records.downsample(steps, returns, points=200) == {"steps": steps, "returns": returns}
    curve = records.downsample(steps, returns, points=10)
    assert len(curve["steps"]) == 10
    assert curve["steps"][0] == 45 and curve["returns"][0] == 4.5  # episodes 0-9 averaged
    assert curve["returns"][-1] == 94.5
    assert np.all(np.diff(curve["steps"]) > 0)


def test_launcher_plans_exactly_the_runs_missing_from_the_record(tmp_path):
    """A fresh machine (no run folders) with a record of some finished runs plans the rest."""
    record = records.Record(tmp_path / "record")
    done = [("Hopper-v5", "clip_0.2", 1), ("Hopper-v5", "clip_0.2", 3), ("Swimmer-v5", "no_clip", 2),
            ("HalfCheetah-v5", "fixed_kl_10", 1)]  # fmt: skip
    for env_id, variant, seed in done:
        record.add(row(env_id, variant, seed), {"steps": [1], "returns": [0.0]})
    record.add(row("Walker2d-v5", "no_clip", 1, status="diverged"), {"steps": [], "returns": []})
    record.save()
    result = subprocess.run(
        [sys.executable, LAUNCHER, "--preset", "paper-table1", "--dry-run", "--runs-dir", str(tmp_path / "runs"),
         "--record-dir", str(tmp_path / "record")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "231 runs: 5 in the record, 0 finished, 0 to resume, 226 new" in result.stdout
    planned = planned_runs(result.stdout)
    from presets import MUJOCO_TABLE1, TABLE1_VARIANTS

    everything = {(e, v, s) for e in MUJOCO_TABLE1 for v in TABLE1_VARIANTS for s in (1, 2, 3)}
    assert planned == everything - set(done) - {("Walker2d-v5", "no_clip", 1)}


def test_figure3_takes_its_ppo_runs_from_the_table1_record(tmp_path):
    """Figure 3's PPO (Clip) is Table 1's clip_0.2: a run of it in paper-table1's record (the
    folder beside Figure 3's) is not run again; Table 1's other settings count for nothing."""
    table1 = records.Record(tmp_path / "records" / "paper-table1")
    for key in [("Hopper-v5", "clip_0.2", 2), ("Swimmer-v5", "clip_0.2", 1), ("Swimmer-v5", "clip_0.1", 3),
                ("Hopper-v5", "no_clip", 1)]:  # fmt: skip
        table1.add(row(*key), {"steps": [1], "returns": [0.0]})
    table1.save()
    figure3 = records.Record(tmp_path / "records" / "paper-figure3")
    for key in [("Hopper-v5", "clip_0.2", 1), ("Hopper-v5", "trpo", 1)]:
        figure3.add(row(*key), {"steps": [1], "returns": [0.0]})
    figure3.save()
    result = subprocess.run(
        [sys.executable, LAUNCHER, "--preset", "paper-figure3", "--dry-run", "--runs-dir", str(tmp_path / "runs"),
         "--record-dir", str(tmp_path / "records" / "paper-figure3")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "105 runs: 4 in the record, 0 finished, 0 to resume, 101 new" in result.stdout
    from presets import FIGURE3_VARIANTS, MUJOCO_TABLE1

    everything = {(e, v, s) for e in MUJOCO_TABLE1 for v in FIGURE3_VARIANTS for s in (1, 2, 3)}
    done = {("Hopper-v5", "clip_0.2", 1), ("Hopper-v5", "trpo", 1), ("Hopper-v5", "clip_0.2", 2),
            ("Swimmer-v5", "clip_0.2", 1)}  # fmt: skip
    assert planned_runs(result.stdout) == everything - done


def test_a_shared_setting_must_run_the_same_in_both_presets():
    import dataclasses

    from presets import check_shared, presets

    known = presets()
    assert known["paper-figure3"].shared == {"clip_0.2": "paper-table1"}
    longer = ["--total-timesteps", "2000000", "--no-clip-vloss"]
    changed = {
        **known,
        "paper-table1": dataclasses.replace(known["paper-table1"], common_flags=longer),
    }
    # the first preset that shares a paper-table1 setting is refused (the ablation or Figure 3)
    with pytest.raises(ValueError, match="'s (no_clip|clip_0.2) is shared with paper-table1 but"):
        check_shared(changed)
    elsewhere = {
        **known,
        "paper-figure3": dataclasses.replace(
            known["paper-figure3"], scripts={"clip_0.2": "trpo.py"}
        ),
    }
    with pytest.raises(ValueError, match="does not run the same"):
        check_shared(elsewhere)


def test_a_sweep_records_its_runs_and_a_relaunch_elsewhere_runs_nothing(tmp_path):
    """Runs land in the record as they finish, with their curves; a second machine (another
    runs folder) given the same record runs none of them again."""
    flags = [
        "--preset",
        "smoke",
        "--env-ids",
        "Pendulum-v1",
        "--record-dir",
        str(tmp_path / "record"),
    ]
    first = subprocess.run([sys.executable, LAUNCHER, *flags, "--runs-dir", str(tmp_path / "a")],
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    record = records.Record.load(tmp_path / "record")
    assert sorted(record.rows) == [("Pendulum-v1", "clip_0.2", 1), ("Pendulum-v1", "clip_0.2", 2)]
    for key, r in record.rows.items():
        summary = json.loads(
            next(
                (tmp_path / "a").glob(f"Pendulum-v1__clip_0.2__{key[2]}__*/summary.json")
            ).read_text()
        )
        assert r["mean_return_last_100"] == pytest.approx(summary["mean_return_last_100"], abs=1e-3)
        assert (
            r["status"] == "finished"
            and r["global_step"] == 2048
            and r["commit"] == summary["commit"]
        )
        curve = record.curves[key]
        assert len(curve["steps"]) == summary["episodes"] == 10  # 2048 steps of 200-step episodes
        assert curve["steps"][0] == 200 and np.mean(curve["returns"]) == pytest.approx(
            summary["mean_return_all_training"], abs=1e-2
        )
    second = subprocess.run([sys.executable, LAUNCHER, *flags, "--runs-dir", str(tmp_path / "b")],
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert second.returncode == 0
    assert "2 runs: 2 in the record, 0 finished, 0 to resume, 0 new" in second.stdout
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").glob("Pendulum*"))


def test_record_only_adds_finished_runs_and_starts_none(tmp_path):
    """Runs that ended in a runs folder (launched elsewhere) are recorded; nothing else runs."""
    runs = tmp_path / "runs"
    flags = ["--preset", "smoke", "--env-ids", "Pendulum-v1", "--runs-dir", str(runs)]
    first = subprocess.run([sys.executable, LAUNCHER, *flags, "--seeds", "1", "--no-record"],
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert first.returncode == 0, first.stdout[-2000:]
    only = subprocess.run([sys.executable, LAUNCHER, *flags, "--record-dir", str(tmp_path / "record"), "--record-only"],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert only.returncode == 0, only.stdout[-2000:] + only.stderr[-2000:]
    assert "2 runs: 0 in the record, 1 finished, 0 to resume, 1 new" in only.stdout
    assert sorted(records.Record.load(tmp_path / "record").rows) == [("Pendulum-v1", "clip_0.2", 1)]
    assert len(list(runs.glob("Pendulum-v1__*"))) == 1  # seed 2 was not started


def test_a_diverged_run_is_reported_and_recorded_as_diverged(tmp_path):
    """The launcher says DIVERGED (not failed, not finished), counts it apart, and the record
    keeps it with its status, so it is never re-run to move a number."""
    flags = ["--preset", "smoke", "--env-ids", "Pendulum-v1", "--seeds", "1", "--runs-dir", str(tmp_path / "runs"),
             "--record-dir", str(tmp_path / "record"), "--extra=--learning-rate 1e6"]  # fmt: skip
    result = subprocess.run(
        [sys.executable, LAUNCHER, *flags], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "DIVERGED Pendulum-v1 clip_0.2 seed 1" in result.stdout
    assert "0 of 1 runs succeeded; 0 failed; 1 diverged" in result.stdout
    (row,) = records.Record.load(tmp_path / "record").rows.values()
    assert row["status"] == "diverged" and row["global_step"] < 2048
    again = subprocess.run(
        [sys.executable, LAUNCHER, *flags, "--dry-run"], capture_output=True, text=True, timeout=300
    )
    assert "1 runs: 1 in the record, 0 finished, 0 to resume, 0 new" in again.stdout


def test_the_2017_presets_plan_their_runs_with_the_2017_flags(tmp_path):
    """paper-table1-2017: Table 1's 231 runs, each with every 2017 flag; paper-table1-ablation:
    from today's setup one 2017 choice at a time, today's runs taken from paper-table1's record."""
    from presets import MUJOCO_TABLE1, SETUP_2017, SETUP_2017_FLAGS, TABLE1_VARIANTS, presets

    def dry_run(preset: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, LAUNCHER, "--preset", preset, "--dry-run", "--runs-dir", str(tmp_path / "runs"),
             "--record-dir", str(tmp_path / "records" / preset)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    table1 = records.Record(tmp_path / "records" / "paper-table1")
    for key in [("Hopper-v5", "no_clip", 1), ("Hopper-v5", "clip_0.1", 1)]:
        table1.add(row(*key), {"steps": [1], "returns": [0.0]})
    table1.save()
    result = dry_run("paper-table1-2017")
    assert result.returncode == 0, result.stderr
    assert "231 runs: 0 in the record, 0 finished, 0 to resume, 231 new" in result.stdout
    every = {(e, v, s) for e in MUJOCO_TABLE1 for v in TABLE1_VARIANTS for s in (1, 2, 3)}
    assert planned_runs(result.stdout) == every  # today's record counts for nothing here
    for line in result.stdout.splitlines():
        if line.startswith("[new]"):
            assert " ".join(SETUP_2017_FLAGS) in line
    result = dry_run("paper-table1-ablation")
    assert result.returncode == 0, result.stderr
    assert "336 runs: 1 in the record, 0 finished, 0 to resume, 335 new" in result.stdout
    ablation = presets()["paper-table1-ablation"]
    for objective in ("no_clip", "clip_0.2"):
        today = ablation.variants[objective]
        assert today == TABLE1_VARIANTS[objective][0]
        for choice, flags in SETUP_2017.items():
            assert ablation.variants[f"{objective}+{choice}"] == [*today, *flags]
    assert len(SETUP_2017) == 7 and len(ablation.variants) == 2 * (1 + 7)
    result = dry_run("paper-table1-ablation-pairs")  # no return normalisation and one more choice
    assert result.returncode == 0, result.stderr
    assert "42 runs: 0 in the record, 0 finished, 0 to resume, 42 new" in result.stdout
    pairs = presets()["paper-table1-ablation-pairs"]
    first = ablation.variants["no_clip+no_norm_reward"]
    assert pairs.variants["no_clip+no_norm_reward"] == first
    assert pairs.shared == {"no_clip+no_norm_reward": "paper-table1-ablation"}
    for choice, flags in SETUP_2017.items():
        if choice != "no_norm_reward":
            assert pairs.variants[f"no_clip+no_norm_reward+{choice}"] == [*first, *flags]
    assert len(pairs.variants) == 7 and set(pairs.env_ids) == {
        "InvertedPendulum-v5",
        "InvertedDoublePendulum-v5",
    }
    result = dry_run("paper-figure3-2017")  # TRPO under its 2017 flags; PPO's from Table 1's 2017
    assert result.returncode == 0, result.stderr
    assert "42 runs: 0 in the record, 0 finished, 0 to resume, 42 new" in result.stdout
    trpo = [line for line in result.stdout.splitlines() if "trpo.py" in line]
    assert len(trpo) == 21 and all(
        line.endswith("--optimizer-eps 1e-8 --init normc") for line in trpo
    )
    assert presets()["paper-figure3-2017"].shared == {"clip_0.2": "paper-table1-2017"}


def test_a_resumed_runs_curve_keeps_the_later_points_and_never_steps_back():
    curve = {"steps": [10, 20, 20, 30, 40, 25, 35, 45], "returns": [1, 2, 3, 4, 5, 6, 7, 8]}
    fixed = records.without_redone_points(curve)
    # 30 and 40 were logged by the session that was lost; the resumed one logged 25 on again
    assert fixed == {"steps": [10, 20, 20, 25, 35, 45], "returns": [1, 2, 3, 6, 7, 8]}
    record = records.Record(REPO / "unused")
    record.add(row("Hopper-v5", "clip_0.2", 1), curve)
    assert record.curves[("Hopper-v5", "clip_0.2", 1)] == fixed


@pytest.mark.parametrize("preset", ["paper-table1", "paper-figure3"])
def test_every_committed_curve_goes_forward(preset):
    record = records.Record.load(REPO / "docs" / "results" / "records" / preset)
    for key, curve in record.curves.items():
        assert curve["steps"] == sorted(curve["steps"]), key
