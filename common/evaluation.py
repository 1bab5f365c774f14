"""Test mode: play a saved agent for N episodes and report mean +- std of the return."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import tyro

if TYPE_CHECKING:
    from common.checkpoint import Checkpoint


@dataclass
class EvalArgs:
    checkpoint: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="CHECKPOINT")]
    """a checkpoint file, or a run folder (its checkpoints/latest.pt)"""
    episodes: int = 10
    """how many episodes (Atari: whole games) to play"""
    deterministic: bool = False
    """greedy actions (the mean, or the most likely action) instead of sampling"""
    seed: int = 1000
    """seed of the evaluation envs (a different one from training's by default)"""
    capture_video: bool = False
    """record the episodes to videos/{run_name}-eval"""
    out: str | None = None
    """where to write the JSON result (default: eval.json beside the checkpoint folder)"""
    cuda: bool = True
    """use CUDA when it is available"""


def report(returns: list[float], args: EvalArgs, ckpt: Checkpoint) -> dict:
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
    out = Path(args.out) if args.out else ckpt.file.parent.parent / "eval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    mode = "deterministic" if args.deterministic else "sampled"
    print(
        f"{ckpt.run_name}: {result['mean_return']:.2f} +- {result['std_return']:.2f} over {len(returns)} episodes ({mode}); wrote {out}"
    )
    return result
