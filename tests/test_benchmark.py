"""The sweep launcher: dry runs of the paper presets, a real local sweep through submitit, resume."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, assert_usage_error, summary

LAUNCHER = str(REPO / "scripts" / "benchmark.py")


def launch(*flags: str, cwd, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, LAUNCHER, *flags], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def commands(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("[")]


def test_dry_run_paper_table1(tmp_path):
    result = launch(
        "--preset", "paper-table1", "--dry-run", "--runs-dir", str(tmp_path / "runs"),
        "--record-dir", str(tmp_path / "record"), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = commands(result.stdout)
    assert len(lines) == 7 * 11 * 3  # 7 MuJoCo tasks x 11 settings x 3 seeds
    assert all(line.startswith("[new]") and "ppo_continuous/train.py" in line for line in lines)
    # Sweep runs keep latest.pt alone: no numbered checkpoints.
    assert all("train.py --no-numbered-checkpoints --env-id" in line for line in lines)
    expected = (f"--env-id Hopper-v5 --seed 2 --exp-name adaptive_kl_0.01 --runs-dir {tmp_path / 'runs'} "
                "--total-timesteps 1000000 --no-clip-vloss --objective adaptive_kl --kl-target 0.01")  # fmt: skip
    assert any(line.endswith(expected) for line in lines), lines[:3]
    for env in [
        "HalfCheetah",
        "Hopper",
        "InvertedDoublePendulum",
        "InvertedPendulum",
        "Reacher",
        "Swimmer",
        "Walker2d",
    ]:
        assert sum(f"--env-id {env}-v5 " in line for line in lines) == 33
    assert sum("--objective fixed_kl --kl-beta 10" in line for line in lines) == 21
    assert sum("--objective none" in line for line in lines) == 21


def test_dry_run_paper_atari49_with_tracking(tmp_path):
    result = launch("--preset", "paper-atari49", "--dry-run", "--track", "--wandb-project-name", "p",
                    "--runs-dir", str(tmp_path / "runs"), "--no-record", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = commands(result.stdout)
    assert len(lines) == 49 * 3
    assert all(
        "ppo_atari/train.py" in line and "--total-timesteps 10000000" in line for line in lines
    )
    assert all(
        "--update-epochs 3 --vf-coef 2 --anneal-clip --no-clip-vloss" in line for line in lines
    )  # Table 5
    assert all("--track --wandb-project-name p --wandb-group ppo_table5" in line for line in lines)
    assert any("--env-id MontezumaRevengeNoFrameskip-v4 --seed 3 " in line for line in lines)


def run_dirs(runs):
    return sorted(p for p in runs.iterdir() if p.is_dir() and p.name != "logs")


def test_smoke_sweep_runs_then_skips_everything(tmp_path):
    runs = tmp_path / "runs"
    first = launch("--preset", "smoke", "--workers", "2", "--runs-dir", str(runs), cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    dirs = run_dirs(runs)
    assert len(dirs) == 4  # 2 envs x 2 seeds
    assert {(summary(d)["env_id"], summary(d)["seed"]) for d in dirs} == {
        (e, s) for e in ("Pendulum-v1", "InvertedPendulum-v5") for s in (1, 2)}  # fmt: skip
    assert all(summary(d)["finished"] for d in dirs)
    second = launch("--preset", "smoke", "--runs-dir", str(runs), cwd=tmp_path)
    assert second.returncode == 0
    assert "4 runs: 0 in the record, 4 finished, 0 to resume, 0 new" in second.stdout
    assert run_dirs(runs) == dirs

    # The report reads the sweep's summaries and event files: Table 1 and a learning curve per env.
    out = tmp_path / "report"
    report = subprocess.run([sys.executable, str(REPO / "scripts" / "report.py"), "--runs-dir", str(runs),
                             "--out", str(out)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert report.returncode == 0, report.stderr[-3000:]
    text = (out / "report.md").read_text()
    # One setting is the best of itself on every env: normalised score 1.00 over 4 runs, rank 1
    # here and in the paper (0.82); none diverged.
    assert re.search(
        r"\| Clipping, epsilon = 0\.2 \| 1\.00 \| 0\.82 \| 1 \| 1 \| \[[-0-9.]+, [-0-9.]+\] \| best \| 4 \| 0 \|",
        text,
    ), text
    for env in ("Pendulum-v1", "InvertedPendulum-v5"):
        assert (out / f"curve_{env}.png").stat().st_size > 5000
        assert f"![curve_{env}](curve_{env}.png)" in text


def test_killed_run_is_resumed_on_relaunch(tmp_path):
    runs = tmp_path / "runs"
    flags = ["--preset", "smoke", "--env-ids", "Pendulum-v1", "--seeds", "1", "--runs-dir", str(runs),
             "--extra=--total-timesteps 40960"]  # fmt: skip
    # Start the sweep's single run by hand, exactly as the launcher would, and kill it mid-way.
    dry = launch(*flags, "--dry-run", cwd=tmp_path)
    command = commands(dry.stdout)[0].removeprefix("[new] ").split(" ")
    proc = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    # Sweep runs keep latest.pt alone (--no-numbered-checkpoints); --save-every 1 writes it each iteration.
    while not list(runs.glob("*/checkpoints/latest.pt")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (killed,) = run_dirs(runs)
    assert not (killed / "summary.json").exists() or not summary(killed)["finished"]

    result = launch(*flags, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 runs: 0 in the record, 0 finished, 1 to resume, 0 new" in result.stdout
    assert run_dirs(runs) == [killed]  # resumed in place, no new run
    done = summary(killed)
    assert done["finished"] and done["global_step"] == 40960


def test_failed_runs_are_reported_and_counted(tmp_path):
    # CartPole has discrete actions: the continuous trainer refuses it (exit 2); Pendulum runs.
    result = launch("--preset", "smoke", "--env-ids", "Pendulum-v1", "CartPole-v1", "--runs-dir",
                    str(tmp_path / "runs"), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2, result.stdout[-3000:]  # two runs failed
    assert result.stdout.count("FAILED (exit 2):") == 2
    assert (
        "--env-id CartPole-v1" in result.stdout and "Box (continuous)" in result.stdout
    )  # log tail
    assert "2 of 4 runs succeeded; 2 failed; 0 diverged" in result.stdout


@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        (["--preset", "paper-table2"], "--preset"),
        (["--preset", "smoke", "--variants", "clip_0.5"], "--variants"),
        (["--preset", "smoke", "--env-ids", "Hopper-v9"], "--env-ids"),
        (["--preset", "smoke", "--env-ids", "BreakoutNoFrameskip-v4"], "--env-ids"),
        (["--preset", "paper-atari49", "--env-ids", "Hopper-v5"], "--env-ids"),
        (["--preset", "smoke", "--extra=--exp-name 'a"], "--extra"),
        (["--preset", "smoke", "--workers", "0"], "--workers"),
        (["--preset", "smoke", "--no-such-flag"], "--no-such-flag"),
        (["--preset", "smoke", "--workers", "two"], "--workers"),
        (["--preset", "smoke", "--batched", "--extra=--num-envs 2"], "--extra"),
        (["--preset", "smoke", "--batched", "--extra=--target-kl 0.02"], "--extra"),
    ],
)
def test_bad_input_is_a_clear_error(flags, flag, tmp_path):
    assert_usage_error(launch(*flags, "--dry-run", cwd=tmp_path), flag)


def test_a_damaged_record_is_refused_naming_its_file_and_line(tmp_path):
    """The launcher rewrites the record, so a cut curve line would be dropped: it refuses instead."""
    import records

    record = records.Record(tmp_path / "record")
    row = {"env_id": "Pendulum-v1", "variant": "clip_0.2", "seed": 1, "status": "finished"}
    record.add(row, {"steps": [100], "returns": [-1500.0]})
    record.save()
    curves = record.folder / "curves.jsonl"
    curves.write_text(curves.read_text()[:-10])
    result = launch("--preset", "smoke", "--record-dir", str(record.folder), "--dry-run",
                    "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)  # fmt: skip
    assert_usage_error(result, "--record-dir")
    assert f"{curves} line 1: cut or not a JSON curve" in result.stderr


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ("--runs-dir elsewhere", "--runs-dir is set by the sweep for every run; use --runs-dir"),
        ("--seed=5", "--seed is set by the sweep for every run; use --seeds"),
        ("--exp-name x", "--exp-name is set by the sweep for every run; use --variants"),
        ("--resume runs/x", "--resume is set by the sweep"),
        ("--objective none", "--objective defines variant 'clip_0.2' (--objective clip --clip-coef 0.2)"),
        ("--gamma 1.5", "--gamma: must be a number in [0, 1], got 1.5 (in variant clip_0.2's runs)"),
        ("--num-minibatches 3", "--num-minibatches: must be a divisor of the batch size"),
        ("--no-such-flag", "--no-such-flag"),
        ("--env-backend envpool", "--env-backend is set by the sweep for every run; use --env-backend"),
    ],
)  # fmt: skip
def test_extra_cannot_override_the_sweep_and_is_validated_before_any_run(extra, said, tmp_path):
    """Checked at plan time, also without --dry-run: nothing is launched, no folder is made."""
    runs = tmp_path / "runs"
    result = launch("--preset", "smoke", f"--extra={extra}", "--runs-dir", str(runs), cwd=tmp_path)
    assert_usage_error(result, "--extra")
    assert said in result.stderr, result.stderr
    assert not runs.exists()


def test_extra_may_override_the_presets_common_flags(tmp_path):
    result = launch("--preset", "smoke-figure3", "--dry-run", "--extra=--total-timesteps 8000 --numbered-checkpoints",
                    "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert all(
        line.endswith("--total-timesteps 8000 --numbered-checkpoints")
        for line in commands(result.stdout)
    )


def test_env_backend_runs_a_recorded_preset_on_envpool_and_keeps_its_record(tmp_path):
    """--env-backend envpool goes to every run (single and batched) and keeps the record: the runs
    it holds are skipped as on gymnasium; each new run's row will say envpool (records.py)."""
    record = tmp_path / "record"
    done = launch("--preset", "paper-table1", "--dry-run", "--env-backend", "envpool", "--env-ids",
                  "Hopper-v5", "--runs-dir", str(tmp_path / "runs"), "--record-dir", str(record),
                  cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = commands(done.stdout)
    assert len(lines) == 33 and all("--env-backend envpool" in line for line in lines)
    own = launch("--preset", "paper-table1-2017", "--dry-run", "--batched", "--env-backend",
                 "envpool", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)  # fmt: skip
    assert own.returncode == 0, own.stderr
    assert "records/paper-table1-2017)" in own.stdout  # the preset's own record, not dropped
    # Its groups, planned against an empty record (the committed one may hold every run).
    batched = launch("--preset", "paper-table1-2017", "--dry-run", "--batched", "--env-backend",
                     "envpool", "--runs-dir", str(tmp_path / "runs"), "--record-dir",
                     str(tmp_path / "record-2017"), cwd=tmp_path)  # fmt: skip
    assert batched.returncode == 0, batched.stderr
    group = next(line for line in commands(batched.stdout) if "--env-id Hopper-v5" in line)
    assert "batched.py --env-id Hopper-v5 --env-backend envpool" in group


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--preset", "paper-figure3"], "not Atari, TRPO or CEM (trpo, cem)"),
        (["--preset", "smoke"], "envpool runs only HalfCheetah-v5"),
        (["--preset", "paper-atari49"], "not Atari"),
    ],
)
def test_env_backend_envpool_refuses_runs_it_cannot_run(flags, said, tmp_path):
    done = launch(*flags, "--env-backend", "envpool", "--dry-run", cwd=tmp_path)
    assert_usage_error(done, "--env-backend")
    assert said in done.stderr, done.stderr
