"""One PPO update of ``ppo_continuous/train.py`` on a fixed batch, as K ranks or as one process.

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/distributed_update.py ranks OUT
    python tests/distributed_update.py single OUT          # the same update on all 8 envs at once
    python tests/distributed_update.py rank0_alone OUT     # rank 0's half, no averaging (a control)
    torchrun ... tests/distributed_update.py nan_loss_on_rank1 OUT   # do both ranks stop?

The batch is 16 steps of 8 envs, fixed by a seed. As ranks, rank r holds envs 4r..4r+3 and takes
minibatch m of its own batch from a fixed partition; as one process, minibatch m is the union of
the ranks' minibatch m. The trainer's own ``update`` runs (per-minibatch advantage normalisation,
gradient clipping, Adam, 2 epochs of 4 minibatches); the final weights go to OUT.
``tests/test_distributed.py`` compares them.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import torch

import ppo_continuous.train as trainer
from common.distributed import join_world
from common.divergence import Diverged, gradient_step
from common.losses import LossConfig, OldPolicy

STEPS, ENVS, RANKS, OBS, ACT = 16, 8, 2, 3, 1
MINIBATCHES, EPOCHS = 4, 2
LOCAL_ENVS = ENVS // RANKS


def full_batch() -> dict[str, torch.Tensor]:
    """(T, 8, ...) tensors of a made-up rollout, the same in every process."""
    g = torch.Generator().manual_seed(0)
    return {
        "obs": torch.randn(STEPS, ENVS, OBS, generator=g),
        "actions": torch.randn(STEPS, ENVS, ACT, generator=g),
        "means": 0.1 * torch.randn(STEPS, ENVS, ACT, generator=g),
        "log_stds": torch.full((STEPS, ENVS, ACT), -0.2),
        "advantages": 3.0 * torch.randn(STEPS, ENVS, generator=g) + 1.0,
        "log_probs": -torch.rand(STEPS, ENVS, generator=g) - 0.5,
        "values": torch.randn(STEPS, ENVS, generator=g),
        "returns": torch.randn(STEPS, ENVS, generator=g),
    }


def as_batch(parts: dict[str, torch.Tensor]) -> trainer.Batch:
    """Flatten (T, N, ...) to (T * N, ...): sample t of env n is row t * N + n, as the trainer does."""
    flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in parts.items()}
    old = OldPolicy(flat["log_probs"], flat["values"], flat["returns"])
    return trainer.Batch(flat["obs"], flat["actions"], flat["means"], flat["log_stds"],
                         flat["advantages"], old)  # fmt: skip


def local_minibatches(rank: int) -> list[torch.Tensor]:
    """Rank ``rank``'s fixed minibatches of its own STEPS x LOCAL_ENVS batch, epoch after epoch."""
    size = STEPS * LOCAL_ENVS
    g = torch.Generator().manual_seed(100 + rank)
    return [idx for _ in range(EPOCHS) for idx in torch.randperm(size, generator=g).split(size // MINIBATCHES)]  # fmt: skip


def to_global(rank: int, local: torch.Tensor) -> torch.Tensor:
    """Local row t * LOCAL_ENVS + n of rank r is global row t * ENVS + r * LOCAL_ENVS + n."""
    t, n = local // LOCAL_ENVS, local % LOCAL_ENVS
    return t * ENVS + rank * LOCAL_ENVS + n


def update(batch: trainer.Batch, minibatches: list[torch.Tensor], world=None) -> trainer.Agent:
    torch.manual_seed(0)
    agent = trainer.Agent(OBS, ACT)
    args = replace(trainer.Args(), num_minibatches=MINIBATCHES, update_epochs=EPOCHS)
    optimizer = torch.optim.Adam(agent.parameters(), lr=3e-3, eps=1e-5)
    # the fixed partition, in place of each epoch's random one
    trainer.shuffled_minibatches = lambda batch, *_args, **_kw: (batch[mb] for mb in minibatches)
    trainer.update(agent, optimizer, batch, args, LossConfig.from_args(args), 1.0, 0, world)
    return agent


def stopped_together(out: str) -> None:
    """Rank 1's loss alone is NaN (a constant term: its gradients stay finite); each rank writes
    to OUT.rank<r> what ``gradient_step`` did: both must raise ``Diverged`` at that step."""
    world = join_world(cuda=False)
    torch.manual_seed(0)
    agent = trainer.Agent(OBS, ACT)
    optimizer = torch.optim.Adam(agent.parameters(), lr=1e-3)
    loss = agent.value(torch.randn(8, OBS)).pow(2).mean()
    if world.rank == 1:
        loss = loss + torch.tensor(float("nan"))
    try:
        gradient_step(optimizer, loss, agent.parameters(), 0.5, 7, world)
        outcome = "stepped"
    except Diverged as err:
        outcome = f"diverged: {err}"
    Path(f"{out}.rank{world.rank}").write_text(outcome)
    world.close()


def main(mode: str, out: str) -> None:
    torch.set_num_threads(1)
    parts = full_batch()
    if mode == "single":
        per_rank = [local_minibatches(r) for r in range(RANKS)]
        merged = [torch.cat([to_global(r, per_rank[r][m]) for r in range(RANKS)])
                  for m in range(len(per_rank[0]))]  # fmt: skip
        agent = update(as_batch(parts), merged)
    elif mode in ("ranks", "rank0_alone"):
        world = join_world(cuda=False) if mode == "ranks" else None
        rank = world.rank if world else 0
        mine = {k: v[:, rank * LOCAL_ENVS : (rank + 1) * LOCAL_ENVS] for k, v in parts.items()}
        agent = update(as_batch(mine), local_minibatches(rank), world)
        if world:
            world.close()
        if rank != 0:
            return
    elif mode == "nan_loss_on_rank1":
        stopped_together(out)
        return
    else:
        raise SystemExit(f"unknown mode {mode}")
    torch.save(agent.state_dict(), out)


if __name__ == "__main__":
    main(*sys.argv[1:3])
