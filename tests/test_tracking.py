"""Tracking, all offline: a W&B offline run, videos, and W&B failures that must not stop training."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, only_run_dir, pendulum_flags, run_trainer, scalars, summary

PENDULUM = pendulum_flags(update_epochs=1)


def read_wandb_records(path: Path):
    """Decode an offline ``run-*.wandb`` file: W&B's LevelDB-style log of protobuf Records.

    Layout: a 7-byte header (':W&B', a 2-byte magic, a 1-byte version), then 32 KiB blocks of
    chunks, each with a 7-byte header (CRC32 4, little-endian length 2, type 1: 1 full, 2 first,
    3 middle, 4 last) and its payload; records may span blocks.
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:8]
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        left_in_block = block - pos % block
        if left_in_block < 7:
            pos += left_in_block  # trailer padding
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        payload = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        pending = payload if kind in (1, 2) else pending + payload
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record
            pending = b""


def history_keys(records) -> set[str]:
    keys = set()
    for record in records:
        if record.WhichOneof("record_type") == "history":
            keys.update(item.key or "/".join(item.nested_key) for item in record.history.item)
    return keys


def test_track_offline_writes_a_wandb_run_with_metrics_and_config(runs_dir, tmp_path):
    result = run_trainer(
        "ppo_continuous", *PENDULUM, "--total-timesteps", "1024", "--track",
        "--wandb-project-name", "ppo-tests", "--wandb-group", "variant-a", "--wandb-tags", "t1", "t2",
        "--runs-dir", str(runs_dir), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wandb sync" in result.stderr  # says how to upload the offline run later
    run_dir = only_run_dir(runs_dir)
    offline = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, list((run_dir / "wandb").iterdir())
    records = list(read_wandb_records(next(offline[0].glob("run-*.wandb"))))
    keys = history_keys(records)
    for name in ["charts/episodic_return", "charts/SPS", "losses/value_loss", "losses/policy_loss",
                 "losses/approx_kl", "losses/clipfrac"]:  # fmt: skip
        assert name in keys, sorted(keys)
    run_records = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run_records and run_records[0].run_group == "variant-a"
    config = {item.key: json.loads(item.value_json) for item in run_records[0].config.update}
    assert config["env_id"] == "Pendulum-v1" and config["num_steps"] == 256  # the full Args
    assert config["objective"] == "clip" and "learning_rate" in config
    assert set(run_records[0].tags) == {"t1", "t2"}
    summaries = [r.summary for r in records if r.WhichOneof("record_type") == "summary"]
    summary_keys = {item.key for s in summaries for item in s.update}
    assert {"mean_return_last_100", "mean_return_all_training", "sps"} <= summary_keys


def run_with_injected_failure(
    patch: str, flags: list[str], cwd: Path
) -> subprocess.CompletedProcess:
    """Run the continuous trainer in a process where ``patch`` has broken part of W&B."""
    script = cwd / "inject.py"
    script.write_text(
        textwrap.dedent(f"""
        import runpy, sys
        import wandb
        import wandb.sdk.wandb_run as wandb_run
        def boom(*args, **kwargs):
            raise RuntimeError("injected W&B failure")
        {patch}
        sys.argv = ["train.py", *{flags!r}]
        runpy.run_path({str(REPO / "ppo_continuous" / "train.py")!r}, run_name="__main__")
        """)
    )
    return subprocess.run(
        [sys.executable, str(script)], cwd=cwd, capture_output=True, text=True, timeout=300,
        env={"WANDB_MODE": "offline", "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )  # fmt: skip


@pytest.mark.parametrize(
    "patch",
    [
        "wandb.init = boom",  # at init
        "wandb_run.Run.log = boom; wandb_run.Run.finish = boom",  # at log and finish time
        # sync_tensorboard's hook, called when the TensorBoard writer opens its event file
        "import wandb.integration.tensorboard.monkeypatch as tb; tb._notify_tensorboard_logdir = boom",
    ],
    ids=["init", "log", "tensorboard_sync"],
)
def test_wandb_failure_leaves_the_run_intact(patch, runs_dir, tmp_path):
    flags = [
        *PENDULUM,
        "--total-timesteps",
        "768",
        "--track",
        "--capture-video",
        "--runs-dir",
        str(runs_dir),
    ]
    result = run_with_injected_failure(patch, flags, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("injected W&B failure") == 1, result.stderr  # warned once
    run_dir = only_run_dir(runs_dir)
    logged = scalars(run_dir)
    assert [step for step, _ in logged["charts/SPS"]] == [256, 512, 768]
    done = summary(run_dir)
    assert done["finished"] is True and done["global_step"] == 768


def mp4_frames(path: Path) -> int:
    import imageio.v3 as iio

    return sum(1 for _ in iio.imiter(path))


def assert_videos_recorded_and_uploaded(result, runs_dir: Path, cwd: Path, min_frames: int) -> None:
    """A playable mp4 in the run's own videos/ folder, which the run's first line names (nothing
    in the working directory); each one, the last written when the envs close included, is a W&B
    video too."""
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(runs_dir)
    videos = sorted((run_dir / "videos").glob("*.mp4"))
    assert videos, list(run_dir.rglob("*"))
    assert not (cwd / "videos").exists()
    assert f"run folder: {run_dir} (videos in {run_dir / 'videos'})" in result.stdout
    assert mp4_frames(videos[0]) > min_frames
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    uploaded = list((offline / "files" / "media" / "videos").rglob("*.mp4"))
    assert len(uploaded) == len(videos), (uploaded, videos)


@pytest.mark.parametrize("backend", ["ale_vector", "gymnasium"])
def test_capture_video_atari(backend, runs_dir, tmp_path):
    # Breakout games of a random agent last ~150-250 steps; 2 envs x 256 steps finish at least one.
    result = run_trainer(
        "ppo_atari", "--env-backend", backend, "--capture-video", "--track", "--num-envs", "2", "--num-steps", "256",
        "--num-minibatches", "2", "--update-epochs", "1", "--total-timesteps", "1024",
        "--runs-dir", str(runs_dir), cwd=tmp_path,
    )  # fmt: skip
    assert_videos_recorded_and_uploaded(result, runs_dir, tmp_path, min_frames=10)


def test_capture_video_mujoco(runs_dir, tmp_path):
    # HalfCheetah's episodes last 1,000 steps: the run ends mid-episode, so its one video is written
    # when the envs close, after the training loop, and must still be uploaded.
    result = run_trainer(
        "ppo_continuous", "--env-id", "HalfCheetah-v5", "--capture-video", "--track", "--num-steps", "256",
        "--num-minibatches", "4", "--update-epochs", "1", "--total-timesteps", "256",
        "--runs-dir", str(runs_dir), cwd=tmp_path,
    )  # fmt: skip
    assert_videos_recorded_and_uploaded(result, runs_dir, tmp_path, min_frames=3)


def test_unreachable_wandb_server_falls_back_to_offline_in_seconds(tmp_path):
    """With an API key but no server answering, W&B's init gave up after its 60 s timeout before
    the run went on offline; the online attempt now has a short timeout of its own."""
    script = tmp_path / "start.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time, warnings
        from common.tracking import Tracker, WandbSettings
        start = time.time()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tracker = Tracker({str(tmp_path / "run")!r}, "run", {{"a": 1}}, WandbSettings(project="p"))
        print("seconds", time.time() - start)
        print("mode", tracker.wandb_run.settings.mode)
        print("warned", any("could not start online" in str(w.message) for w in caught))
        tracker.close()
    """))  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "WANDB_API_KEY": "a" * 40,
           "WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_SILENT": "true"}  # fmt: skip
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert out["mode"] == "offline" and out["warned"] == "True", result.stdout
    assert float(out["seconds"]) < 30, result.stdout
