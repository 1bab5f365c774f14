"""The flags every trainer has besides its algorithm: the experiment, tracking and checkpoints.

A trainer's ``Args`` subclasses ``RunArgs`` and adds its environment and algorithm flags, so the
trainer file shows the hyperparameters of its algorithm and nothing else is written twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal


@dataclass
class RunArgs:
    # Flags that may differ between a run and its resumption (``--resume``); every other flag
    # defines the experiment and is refused if changed. A trainer adds its own (a ClassVar is no flag).
    resumable_flags: ClassVar[frozenset[str]] = frozenset({
        "total_timesteps", "save_every", "keep_checkpoints", "numbered_checkpoints", "resume",
        "init_from", "runs_dir", "cuda", "track", "wandb_project_name", "wandb_entity",
        "wandb_group", "wandb_tags", "capture_video", "log_every",
    })  # fmt: skip

    # Experiment
    exp_name: str = "ppo"
    """the name of this experiment, part of the run name {env_id}__{exp_name}__{seed}__{time}"""
    seed: int = 1
    """seed of the experiment"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = True
    """if toggled, use CUDA when it is available"""
    runs_dir: str = "runs"
    """folder for TensorBoard events, summary.json and checkpoints (runs/{run_name})"""
    # Tracking
    track: bool = False
    """if toggled, track the run with Weights & Biases (offline when there is no API key)"""
    wandb_project_name: str = "ppo-pipeline"
    """the W&B project"""
    wandb_entity: str | None = None
    """the W&B entity (team or user)"""
    wandb_group: str | None = None
    """the W&B group, e.g. one per sweep variant"""
    wandb_tags: tuple[str, ...] = ()
    """W&B tags"""
    log_every: int = 1
    """write the iteration metrics every this many iterations (and at the last); A2C's tiny
    batches log every 200th (continuous) or 13th (Atari), about every 1,000 steps"""
    capture_video: bool = False
    """if toggled, record episodes of env 0 to videos/{run_name} (and upload them with --track)"""
    # Checkpoints
    save_every: int = 50
    """save a checkpoint every this many iterations (and at the end); 0 saves only at the end"""
    keep_checkpoints: int = 3
    """how many numbered checkpoints (iter_*.pt) to keep besides latest.pt (0 keeps all)"""
    numbered_checkpoints: bool = True
    """also write numbered checkpoints (iter_*.pt); --no-numbered-checkpoints keeps latest.pt alone (sweeps do: an Atari checkpoint is ~20 MB)"""
    resume: str | None = None
    """continue the run saved at this checkpoint or run folder (other flags that change the experiment are refused)"""
    init_from: str | None = None
    """start a new run from the weights (and normalisation statistics) of this checkpoint"""


@dataclass
class CodeLevelArgs(RunArgs):
    """The code-level choices around a continuous-control algorithm that the paper does not state:
    what today's PPO codes (ppo2, CleanRL) do by default, each one a flag so that the 2017 code's
    setup (docs/results/setup-2017.md) and every mix of the two can be run."""

    norm_reward: bool = True
    """scale rewards by a running std of the discounted return, clipped to +-10 (ppo2's
    VecNormalize); the 2017 code has no reward scaling (--no-norm-reward)"""
    obs_clip: float = 10.0
    """clip normalised observations to +-this (ppo2: 10; the 2017 code: 5)"""
    init: Literal["orthogonal", "normc"] = "orthogonal"
    """weight initialisation: orthogonal (ppo2, CleanRL) or normc, rows of unit norm (the 2017
    code); both scale the policy's last layer to 0.01 and zero the biases"""
