"""Test mode: play a saved agent for N episodes and report mean +- std of the return."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, NamedTuple

import numpy as np
import torch
import tyro

from common.checkpoint import Checkpoint, load_checkpoint
from common.cli import UsageError, exit_usage
from common.runtime import pick_device
from common.validation import require_writable_dir


@dataclass
class EvalArgs:
    checkpoint: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="CHECKPOINT")]
    """a checkpoint file, or a run folder (its checkpoints/latest.pt)"""
    episodes: int = 10
    """how many episodes (Atari: whole games) to play"""
    deterministic: bool = False
    """greedy actions (the mean, or the most likely action) instead of sampling (always on for a
    CEM checkpoint, whose policy is deterministic, unless --no-deterministic is given)"""
    seed: int = 1000
    """seed of the evaluation envs (a different one from training's by default)"""
    capture_video: bool = False
    """record the episodes as mp4 into the run folder's videos/eval-{time}/"""
    render: bool = False
    """watch the agent play in a window (needs a display; see --capture-video for none)"""
    out: str | None = None
    """where to write the JSON result: a file, or a folder for a new eval-{time}.json (default: the
    run folder)"""
    cuda: bool = True
    """use CUDA when it is available"""


def validate_eval(args: EvalArgs) -> None:
    """Refuse bad input before the checkpoint is opened (one line, exit code 2)."""
    if args.episodes < 1:
        raise UsageError("--episodes", f"must be a positive integer, got {args.episodes}")
    if not 0 <= args.seed < 2**32:
        raise UsageError("--seed", f"must be an integer in [0, 2**32 - 1], got {args.seed}")
    if args.out is not None:
        out = Path(args.out)
        require_writable_dir(out if out_is_folder(args.out) else out.parent, "--out")
    if args.render:
        require_display()
        if args.capture_video:
            raise UsageError(
                "--render",
                "cannot be combined with --capture-video (an env renders either to a window or "
                "to frames); run once with each",
            )


def require_display() -> None:
    """``--render`` opens a window, so it needs an X11 or Wayland display."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UsageError(
            "--render",
            "opens a window, but there is no display (neither DISPLAY nor WAYLAND_DISPLAY is set); "
            "use --capture-video to record mp4s instead, or run under a virtual display: "
            "xvfb-run python ... --render",
        )


class Evaluation(NamedTuple):
    """What every evaluate.py starts from: the trainer's checkpoint, the device, the video folder."""

    checkpoint: Checkpoint
    device: torch.device
    videos: Path | None


def open_evaluation(args: EvalArgs, trainer: str | tuple[str, ...]) -> Evaluation:
    """Open a checkpoint of ``trainer`` (one of them, for a tuple; one line and exit 2 otherwise),
    seed torch, pick the device and, with ``--capture-video``, this evaluation's video folder."""
    ckpt = load_checkpoint(args.checkpoint, trainer, flag="checkpoint")
    try:  # before any episode is played: a read-only run folder must not cost the whole evaluation
        require_writable_dir(output_file(args, ckpt).parent, "--out")
    except UsageError as err:
        exit_usage(f"{err}; pass --out with a writable place for the result")
    torch.manual_seed(args.seed)
    return Evaluation(ckpt, pick_device(args.cuda), video_folder(args, ckpt))


def run_folder(ckpt: Checkpoint) -> Path:
    """The run folder a checkpoint belongs to (the one holding its ``checkpoints/``), else its own."""
    folder = ckpt.file.parent
    return folder.parent if folder.name == "checkpoints" else folder


def video_folder(args: EvalArgs, ckpt: Checkpoint) -> Path | None:
    """With ``--capture-video``: a new folder per evaluation in the run's ``videos/``."""
    if not args.capture_video:
        return None
    return run_folder(ckpt) / "videos" / f"eval-{time.strftime('%Y%m%d-%H%M%S')}"


def output_file(args: EvalArgs, ckpt: Checkpoint) -> Path:
    """``--out`` if it names a file; otherwise a new ``eval-<time>.json`` in the ``--out`` folder
    (one that exists, or a name ending with a slash) or, by default, the run folder, so that one
    evaluation never replaces another's result (a 1-episode ``--render`` would otherwise
    overwrite a 10-episode score)."""
    if args.out is not None and not out_is_folder(args.out):
        return Path(args.out)
    folder = run_folder(ckpt) if args.out is None else Path(args.out)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out, copies = folder / f"eval-{stamp}.json", 1
    while out.exists():  # two evaluations in the same second
        copies += 1
        out = folder / f"eval-{stamp}-{copies}.json"
    return out


def out_is_folder(out: str) -> bool:
    """``--out`` names a folder when it is one, or ends with a slash (a new one)."""
    return out.endswith(("/", os.sep)) or Path(out).is_dir()


def report(
    returns: list[float], args: EvalArgs, ckpt: Checkpoint, videos: Path | None = None
) -> dict:
    """Print mean +- std of the first ``args.episodes`` returns and write them as JSON; returns it."""
    returns = returns[: args.episodes]
    result = {
        "checkpoint": str(ckpt.file),
        "run_name": ckpt.run_name,
        "episodes": len(returns),
        "deterministic": args.deterministic,
        "seed": args.seed,
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "returns": [float(r) for r in returns],
    }
    out = output_file(args, ckpt)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    mode = "deterministic" if args.deterministic else "sampled"
    videos_note = f"; videos in {videos}" if videos else ""
    print(
        f"{ckpt.run_name}: {result['mean_return']:.2f} +- {result['std_return']:.2f} over {len(returns)} episodes ({mode}); wrote {out}{videos_note}"
    )
    return result
