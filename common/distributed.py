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
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn

import torch
import torch.distributed as dist

from common.cli import exit_usage, flag


class RankLost(RuntimeError):
    """A collective failed because another rank of the run is gone (killed, crashed, or its
    connection broke): this rank cannot go on, and says so in one line (``common.run``)."""


# What gloo and NCCL say when a peer's connection closes mid-collective (their RuntimeErrors carry
# no type of their own); any other RuntimeError is a bug and keeps its traceback.
_PEER_LOST = ("gloo/transport", "Connection reset", "Connection closed", "NCCL", "Broken pipe",
              "Socket", "timed out", "Timed out")  # fmt: skip


def _collective(operation: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return operation(*args, **kwargs)
    except RuntimeError as err:
        if isinstance(err, dist.DistError) or any(sign in str(err) for sign in _PEER_LOST):
            said = re.sub(r"^\[[^\]]*\.(cc|cpp):\d+\] ", "", " ".join(str(err).split()))
            raise RankLost(said.split(" This is typically")[0][:200]) from None
        raise


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
        _collective(dist.all_reduce, flat, op=dist.ReduceOp.SUM)
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
        _collective(dist.all_reduce, total, op=dist.ReduceOp.SUM)
        return total.item() / self.size

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one (a stop request, a failure)."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)], device=self.device)
        _collective(dist.all_reduce, value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def sum_tensor(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over the ranks (a new tensor with several ranks; the input is kept)."""
        if not self.distributed:
            return values
        total = values.detach().clone()
        _collective(dist.all_reduce, total, op=dist.ReduceOp.SUM)
        return total

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank (picklable objects)."""
        if not self.distributed:
            return [obj]
        gathered: list[Any] = [None] * self.size
        _collective(dist.all_gather_object, gathered, obj)
        return gathered

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        _collective(dist.broadcast_object_list, box, src=0)
        return box[0]

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Rank 0's weights on every rank (ranks seed differently, so they initialise differently)."""
        if not self.distributed:
            return
        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                _collective(dist.broadcast, tensor.data, src=0)

    def close(self, together: bool = True) -> None:
        """Leave the process group; ``together``: after the other ranks are done with it (not
        after a failure on this rank alone, when they may never get there)."""
        if self.distributed and dist.is_initialized():
            if together:
                _collective(dist.barrier)
            dist.destroy_process_group()
            # Free gloo's objects now: left to the interpreter's teardown, their threads sometimes
            # abort the process ("terminate called without an active exception", 4 exits in 36
            # here; none in 48 with this).
            gc.collect()


# A collective waits this long for a rank that died: well above the longest gap between two (a
# rollout, or rank 0 writing a checkpoint), far below a GPU-hour.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=10)
# How long the ranks wait for each other at their first meeting (PPO_RANKS_JOIN_TIMEOUT_S).
JOIN_TIMEOUT_S = 300.0


class FirstMeetingFailed(Exception):
    """The ranks could not meet: a rank never came (or another MASTER_ADDR, port or world size)."""


def first_meeting(error: str | None) -> tuple[dist.Store, int]:
    """Meet the other ranks before any collective, each with its verdict on its own input: None
    (good) or its one-line error. Returns the rendezvous store (the process group is built on
    it) and this rank when every verdict is good; else exits 2, rank 0 printing the first error.

    A rank that does not come within ``PPO_RANKS_JOIN_TIMEOUT_S`` seconds (default 300) stops
    every rank that came, with one line: no rank waits forever for one that exited or hangs."""
    timeout = float(os.environ.get("PPO_RANKS_JOIN_TIMEOUT_S", JOIN_TIMEOUT_S))
    rank, size = int(os.environ["RANK"]), launched_ranks()
    prefix = f"ppo/first-meeting/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    try:
        store = next(dist.rendezvous("env://", timeout=datetime.timedelta(seconds=timeout)))[0]
        store.set(f"{prefix}/{rank}", error or "")
        keys = [f"{prefix}/{r}" for r in range(size)]
        try:
            store.wait(keys, datetime.timedelta(seconds=timeout))
        except (RuntimeError, dist.DistError):
            absent = [str(r) for r, key in enumerate(keys) if not store.check([key])]
            raise FirstMeetingFailed(f"rank {', '.join(absent)} never reported") from None
        verdicts = [store.get(key).decode() for key in keys]
        _leave_together(store, prefix, rank, size, timeout)
    except (RuntimeError, ValueError, dist.DistError, FirstMeetingFailed) as err:
        reason = " ".join(str(err).split())[:300]
        _meeting_failed(error, rank, size, timeout, reason)
    failing = [(r, verdict) for r, verdict in enumerate(verdicts) if verdict]
    if not failing:
        return store, rank
    if rank == 0 and not error:
        first, message = failing[0]
        print(f"error: {message} (rank {first}'s input)", file=sys.stderr, flush=True)
    elif rank > 0 and error and error != verdicts[0]:  # rank 0 reports another rank's error
        print(f"error: {error} (rank {rank}'s input)", file=sys.stderr, flush=True)
    _exit_bad_input(rank)


def _leave_together(store: dist.Store, prefix: str, rank: int, size: int, timeout: float) -> None:
    """Rank 0 hosts the store (without torchrun): it waits until every rank has read the verdicts."""
    store.add(f"{prefix}/read", 1)
    deadline = time.monotonic() + timeout
    while rank == 0 and store.add(f"{prefix}/read", 0) < size and time.monotonic() < deadline:
        time.sleep(0.05)


def _meeting_failed(
    error: str | None, rank: int, size: int, timeout: float, reason: str
) -> NoReturn:
    """No verdicts: a failing rank says its own error (no one else can), rank 0 why they failed."""
    if error and rank > 0:
        print(f"error: {error} (rank {rank}'s input)", file=sys.stderr, flush=True)
    elif not error:
        print(f"error: torch.distributed: the {size} ranks did not all meet within {timeout:.0f} s "
              f"(start every rank with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE; "
              f"PPO_RANKS_JOIN_TIMEOUT_S sets the wait): {reason}", file=sys.stderr, flush=True)  # fmt: skip
    _exit_bad_input(rank)


def _exit_bad_input(rank: int) -> NoReturn:
    if rank > 0:
        time.sleep(2.0)  # torchrun stops every rank when one exits: let rank 0 print first
    raise SystemExit(2)


def report_bad_input(message: str) -> NoReturn:
    """Bad input on this rank, before the ranks have met: rank 0 says it at once; every rank
    then meets the others with it, so that none waits for this one, and exits 2."""
    if os.environ.get("RANK", "0") == "0":
        print(f"error: {message}", file=sys.stderr, flush=True)
    first_meeting(message)
    raise AssertionError("unreachable: first_meeting exits when a verdict is an error")


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
        store, rank = first_meeting(None)  # this rank's input is good; exits 2 if another's is not
        store.set_timeout(COLLECTIVE_TIMEOUT)
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            store=store,
            rank=rank,
            world_size=size,
            timeout=COLLECTIVE_TIMEOUT,
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
