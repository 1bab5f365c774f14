"""What a run tells its user: the run folder first, a summary after the progress bar, the steps it
will really run, a missing env dependency as one line, and MuJoCo's warnings without a log file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import REPO, assert_usage_error, only_run_dir, pendulum_flags, run_trainer, summary

PENDULUM = pendulum_flags(update_epochs=1)


def run_merged(trainer: str, *flags: str, cwd: Path) -> subprocess.CompletedProcess:
    """Like ``run_trainer``, with stderr (the progress bar) and stdout in one stream, in the order
    they were written, so a line glued onto the bar's shows as such."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    return subprocess.run(
        [sys.executable, str(REPO / trainer / "train.py"), *flags],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600, env=env,
    )  # fmt: skip


def test_a_run_names_its_folder_and_ends_with_a_summary_after_the_bar(runs_dir, tmp_path):
    # 600 steps is 2 batches of 256 and a remainder that does not run.
    result = run_merged("ppo_continuous", *PENDULUM, "--total-timesteps", "600", "--track",
                        "--runs-dir", str(runs_dir), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    run_dir = only_run_dir(runs_dir)
    done = summary(run_dir)
    lines = result.stdout.split("\n")
    assert f"run folder: {run_dir}" in lines[0], lines[:3]
    steps_notes = [line for line in lines if "--total-timesteps 600" in line]
    assert steps_notes == [
        "--total-timesteps 600 is not a multiple of the batch (num_envs * num_steps = 256): "
        "running 2 iterations, 512 steps"
    ], lines[:5]
    # The summary's first line starts a line of its own: not glued onto the closed bar.
    (end,) = [i for i, line in enumerate(lines) if "run finished" in line]
    assert lines[end].startswith("run finished: 512 steps in 0m"), lines[end - 1 : end + 1]
    assert f"SPS), {run_dir}" in lines[end]
    rest = "\n".join(lines[end + 1 :])
    assert f"all training: {done['mean_return_all_training']:.2f} (2 episodes)" in rest
    assert f"last 100: {done['mean_return_last_100']:.2f}" in rest
    assert f"tensorboard --logdir {runs_dir}\n" in rest
    assert f"watch it play: python ppo_continuous/evaluate.py {run_dir} --render" in rest
    assert f"python ppo_continuous/evaluate.py {run_dir} --capture-video --episodes 1\n" in rest
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    assert f"wandb sync {offline}" in rest


def test_a_multiple_of_the_batch_says_nothing_about_steps(runs_dir, tmp_path):
    result = run_trainer("ppo_continuous", *PENDULUM, "--total-timesteps", "512",
                         "--runs-dir", str(runs_dir), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "is not a multiple" not in result.stdout + result.stderr
    assert "run finished: 512 steps" in result.stdout
    assert "wandb sync" not in result.stdout  # no W&B, no sync command


BLOCK_BOX2D = """
    import sys

    class BlockBox2D:
        # What a machine without the Box2D wheel looks like to gymnasium.
        def find_spec(self, name, path=None, target=None):
            if name == "Box2D" or name.startswith("Box2D."):
                raise ModuleNotFoundError("No module named 'Box2D'", name="Box2D")
            return None

    sys.meta_path.insert(0, BlockBox2D())
"""


def test_a_missing_env_dependency_is_one_line_naming_the_package(runs_dir, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(BLOCK_BOX2D))
    result = run_trainer(
        "ppo_continuous", "--env-id", "BipedalWalker-v3", "--runs-dir", str(runs_dir),
        cwd=tmp_path, env={"PYTHONPATH": str(site)},
    )  # fmt: skip
    assert_usage_error(result, "--env-id")
    assert "'BipedalWalker-v3' needs a package that is not installed" in result.stderr
    assert 'pip install "gymnasium[box2d]"' in result.stderr
    assert not any(runs_dir.iterdir())  # refused before any work


def test_mujoco_warns_once_and_leaves_no_log_file(runs_dir, tmp_path):
    # HalfCheetah's XML has the deprecated settotalmass: MuJoCo warned at each of the 3 loads
    # (the flag check's probe and 2 envs) and appended each to MUJOCO_LOG.TXT in the cwd.
    result = run_trainer(
        "ppo_continuous", "--env-id", "HalfCheetah-v5", "--num-envs", "2", "--num-steps", "64",
        "--num-minibatches", "2", "--update-epochs", "1", "--total-timesteps", "128",
        "--runs-dir", str(runs_dir), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert output.count("'settotalmass' is deprecated") == 1, output[-3000:]
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def finished_summary() -> dict:
    return {"status": "finished", "global_step": 512, "total_timesteps": 512, "wall_time_s": 3.0,
            "sps": 170.0, "episodes": 0}  # fmt: skip


def test_the_summary_shows_the_agent_in_a_window_with_a_display(monkeypatch):
    from common.console import end_lines

    monkeypatch.setenv("DISPLAY", ":0")
    lines = end_lines(finished_summary(), "runs/r", "ppo_atari")
    assert "  watch it play: python ppo_atari/evaluate.py runs/r --render" in lines
    assert (
        "  record video:  python ppo_atari/evaluate.py runs/r --capture-video --episodes 1" in lines
    )


def test_the_summary_says_how_to_render_without_a_display(monkeypatch):
    from common.console import end_lines

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    lines = end_lines(finished_summary(), "runs/r", "ppo_continuous")
    (watch,) = [line for line in lines if "watch it play" in line]
    assert watch.startswith("  watch it play: python ppo_continuous/evaluate.py runs/r --render")
    assert "xvfb-run" in watch
    assert any("--capture-video --episodes 1" in line for line in lines)
