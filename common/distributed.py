"""One run across several processes with ``torch.distributed``: what each rank shares, written once.

Launched by ``torchrun --nproc-per-node K ppo_atari/train.py ...`` (or by ``srun``/submitit, which
set the same variables: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``),
every rank steps its own envs, collects its own rollout and computes its own advantages; the
ranks meet only where learning needs them to agree:

- each minibatch, ``average_gradients`` (one all-reduce of all gradients, as DDP does) and the
  advantage normalisation's mean and std over the ranks' minibatches (``normalize_advantages``),
  so K ranks with N envs each take the step one process with K x N envs would take;
- each iteration, the stop request (SIGTERM on any rank stops all after the same iteration), the
  episodes each rank finished (rank 0 logs them all) and the decisions taken on a mean over the
  batch (adaptive-KL beta, early stopping at ``--target-kl``), so every rank keeps the same weights.

Run as one plain process, ``World()`` is a world of one, and every method is the identity (or
nothing: ``gather`` gives ``[obj]``). NCCL carries the collectives on GPUs, gloo on CPUs.
"""

from __future__ import annotations

import datetime
import gc
import os
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from common.cli import exit_usage, flag


@dataclass
class World:
    """This process's place among the ranks of one run: its rank, how many, and its GPU index."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Rank 0, the one that prints, logs, checkpoints and writes the summary."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def average_gradients(
        self, parameters: Iterable[torch.Tensor], loss: torch.Tensor
    ) -> torch.Tensor:
        """Replace each gradient by its mean over the ranks, and return the mean of ``loss``: one
        all-reduce of one flat buffer. A non-finite loss or gradient on any rank is then
        non-finite on all, so all stop at the same minibatch (``common.divergence``)."""
        if not self.distributed:
            return loss
        grads = [p.grad for p in parameters if p.grad is not None]
        flat = torch.cat(
            [*(g.reshape(-1) for g in grads), loss.detach().reshape(1).to(grads[0].dtype)]
        )
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.size
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
            offset += grad.numel()
        return flat[-1]

    def mean(self, value: float) -> float:
        """The mean of a number over the ranks (each rank's batch is the same size)."""
        if not self.distributed:
            return value
        total = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total.item() / self.size

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one (a stop request, a failure)."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def sum_tensor(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over the ranks (a new tensor with several ranks; the input is kept)."""
        if not self.distributed:
            return values
        total = values.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank (picklable objects)."""
        if not self.distributed:
            return [obj]
        gathered: list[Any] = [None] * self.size
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Rank 0's weights on every rank (ranks seed differently, so they initialise differently)."""
        if not self.distributed:
            return
        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def close(self, together: bool = True) -> None:
        """Leave the process group; ``together``: after the other ranks are done with it (not
        after a failure on this rank alone, when they may never get there)."""
        if self.distributed and dist.is_initialized():
            if together:
                dist.barrier()
            dist.destroy_process_group()
            # Free gloo's objects now: left to the interpreter's teardown, their threads sometimes
            # abort the process ("terminate called without an active exception", 4 exits in 36
            # here; none in 48 with this).
            gc.collect()


def torchrun(ranks: int) -> list[str]:
    """The command that starts a script as ``ranks`` ranks on this machine (this Python's torchrun)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={ranks}",
    ]


def launched_ranks() -> int:
    """How many ranks the launcher started (``WORLD_SIZE``; 1 for a plain process)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def join_world(cuda: bool) -> World:
    """Join the run's process group when a launcher started several ranks, else a world of one.

    Each rank takes ``cuda:{LOCAL_RANK}`` (modulo the GPUs it sees) when ``cuda`` is allowed and
    present (NCCL between them), the CPU otherwise (gloo).
    """
    size = launched_ranks()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = cuda and torch.cuda.is_available()
    # SLURM may show each task its own GPU alone: then it is cuda:0 for every rank
    device = torch.device(f"cuda:{local_rank % torch.cuda.device_count()}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if size == 1:
        return World(device=device)
    if not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            # A collective waits this long for a rank that died: well above the longest gap
            # between two (a rollout, or rank 0 writing a checkpoint), far below a GPU-hour.
            timeout=datetime.timedelta(minutes=10),
            **({"device_id": device} if use_cuda else {}),
        )
    return World(
        rank=dist.get_rank(), size=dist.get_world_size(), local_rank=local_rank, device=device
    )


def require_same_args(world: World, args: Any) -> None:
    """Every rank must run the same experiment: the first flag on which a rank differs from rank 0
    is one line from rank 0, and exit code 2 on every rank."""
    if not world.distributed:
        return
    every_rank = world.gather(asdict(args))
    reference = every_rank[0]
    differing = [
        (rank, name, value)
        for rank, theirs in enumerate(every_rank)
        for name, value in theirs.items()
        if value != reference.get(name)
    ]
    if differing:
        rank, name, value = differing[0]
        exit_usage(
            f"{flag(name)}: ranks disagree on their arguments (rank {rank} has {value!r}, rank 0 "
            f"{reference.get(name)!r}); give every rank the same command line"
        )
