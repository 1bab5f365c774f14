"""What a run tells its user besides the progress bar: where it goes, and at the end what happened.

Both trainers print one line before the progress bar starts (the run folder, and how many steps
will run when ``--total-timesteps`` is not a whole number of batches) and a short summary after
the bar is closed, so neither is glued onto the bar's line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any


def planned_steps(total_timesteps: int, batch_size: int) -> int:
    """The steps a run makes: whole iterations of one batch, ``total_timesteps // batch_size``
    of them (at least one), as CleanRL does; a remainder smaller than a batch is not run."""
    return max(1, total_timesteps // batch_size) * batch_size


def announce_start(
    run_dir: str | Path,
    total_timesteps: int,
    batch_size: int,
    videos: str | Path | None,
    ranks: int = 1,
) -> None:
    """One line naming the run folder (and the videos folder); one more when the last partial
    batch of ``--total-timesteps`` will not run (``batch_size``: all ``ranks``' together)."""
    video_note = f" (videos in {videos})" if videos else ""
    print(f"run folder: {run_dir}{video_note}", flush=True)
    steps = planned_steps(total_timesteps, batch_size)
    if steps != total_timesteps:
        batch = "num_envs * num_steps" if ranks == 1 else f"{ranks} ranks * num_envs * num_steps"
        print(
            f"--total-timesteps {total_timesteps} is not a multiple of the batch "
            f"({batch} = {batch_size}): running {steps // batch_size} "
            f"iterations, {steps} steps",
            flush=True,
        )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _scores_line(summary: dict[str, Any]) -> str:
    """The paper's two scores (section 6.4): the mean episodic return over all of training and
    over the last 100 episodes."""
    if not summary["episodes"]:
        return "  no episode has ended yet, so there is no mean return"
    return (
        f"  mean return over all training: {summary['mean_return_all_training']:.2f} "
        f"({summary['episodes']} episodes); over the last 100: "
        f"{summary['mean_return_last_100']:.2f}"
    )


def has_display() -> bool:
    """Whether a window can open here: an X11 or Wayland display is set."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _play_lines(trainer: str, run_dir: str | Path) -> list[str]:
    """The commands that show the trained agent: in a window, and as an mp4 that needs no display."""
    evaluate = f"python {trainer}/evaluate.py {run_dir}"
    # Without a display --render is refused in one line; xvfb-run gives it a virtual one (to
    # watch through VNC), and the video needs none.
    no_display = (
        "" if has_display() else "   (no display here: prefix xvfb-run -a, or record video)"
    )
    return [
        f"  watch it play: {evaluate} --render" + no_display,
        f"  record video:  {evaluate} --capture-video --episodes 1",
    ]


def end_lines(
    summary: dict[str, Any],
    run_dir: str | Path,
    trainer: str,
    wandb_sync_dir: str | None = None,
    train_script: str | None = None,
) -> list[str]:
    """The end-of-run summary: how it ended, the paper's two scores, and the next commands.

    ``trainer`` is the folder of ``evaluate.py``; ``train_script`` defaults to its ``train.py``."""
    train_script = train_script or f"{trainer}/train.py"
    status, step = summary["status"], summary["global_step"]
    how = {
        "finished": f"finished: {step} steps",
        "stopped": f"stopped at step {step} of {summary['total_timesteps']}",
        "diverged": f"diverged at step {summary.get('diverged_at_step', step)}",
    }[status]
    sps = "n/a" if summary.get("sps") is None else f"{summary['sps']:.0f}"
    lines = [
        f"run {how} in {_duration(summary['wall_time_s'])} ({sps} SPS), {run_dir}",
        _scores_line(summary),
    ]
    if status == "stopped":
        ranks = summary.get("ranks", 1)
        launcher = f"torchrun --nproc-per-node {ranks}" if ranks > 1 else "python"
        lines.append(f"  continue it:   {launcher} {train_script} --resume {run_dir}")
    lines.append(f"  curves:        tensorboard --logdir {Path(run_dir).parent}")
    if status != "diverged" or Path(run_dir, "checkpoints", "latest.pt").is_file():
        lines += _play_lines(trainer, run_dir)
    if wandb_sync_dir:
        lines.append(f"  upload to W&B: wandb sync {wandb_sync_dir}")
    return lines


def announce_end(
    summary: dict[str, Any],
    run_dir: str | Path,
    trainer: str,
    wandb_sync_dir: str | None = None,
    train_script: str | None = None,
) -> None:
    """Print ``end_lines`` to stdout; call it after the progress bar is closed."""
    sys.stderr.flush()  # the closed bar's last line goes out first
    lines = end_lines(summary, run_dir, trainer, wandb_sync_dir, train_script)
    print("\n".join(lines), flush=True)
