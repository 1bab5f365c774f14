"""A diverging run stops at once and says so, keeping its last good checkpoint.

Between ``loss.backward()`` and ``optimizer.step()`` (``gradient_step``) comes ``clip_gradients``: when the
loss or the gradient norm is not finite (NaN or inf), it raises ``Diverged`` before the optimizer
steps, so no non-finite update reaches the weights and no checkpoint is written after it. The
trainer then writes ``summary.json`` with ``"status": "diverged"`` and the step, prints one line
and exits with ``EXIT_DIVERGED``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

import torch
from torch import nn

from common.cli import speaks
from common.distributed import World

EXIT_DIVERGED = 3
"""The exit code of a run stopped by divergence (2 is bad input, 0 a finished or stopped run)."""


class Diverged(Exception):
    """The loss or the gradient norm of an update was not finite."""

    def __init__(self, what: str, value: float, step: int) -> None:
        super().__init__(f"the {what} is {value} at step {step}")
        self.what, self.value, self.step = what, value, step


def clip_gradients(
    parameters: Iterable[torch.Tensor], max_norm: float, loss: torch.Tensor, step: int
) -> torch.Tensor:
    """Clip the global gradient norm to ``max_norm`` (0: no clipping) and return it (before clipping).

    Raises ``Diverged`` when ``loss`` or the norm is not finite; call it before
    ``optimizer.step()``, which must then not run. One host sync per call, for both checks.
    """
    # foreach: one batched pass over the tensors (CUDA's default); CPU's default, a Python loop
    # per tensor, takes several percent of a small network's update. The same norm, bit for bit.
    if max_norm > 0:
        norm = nn.utils.clip_grad_norm_(parameters, max_norm, foreach=True)
    else:  # measured for the divergence check, gradients left as they are (the 2017 code)
        grads = [p.grad for p in parameters if p.grad is not None]
        norm = nn.utils.get_total_norm(grads, foreach=True)
    loss = loss.detach()
    if not bool(torch.isfinite(loss) & torch.isfinite(norm)):
        if not torch.isfinite(loss):
            raise Diverged("loss", loss.item(), step)
        raise Diverged("gradient norm", norm.item(), step)
    return norm


def gradient_step(
    optimizer: torch.optim.Optimizer,
    loss: torch.Tensor,
    parameters: Iterable[torch.Tensor],
    max_grad_norm: float,
    step: int,
    world: World | None = None,
) -> None:
    """One step down ``loss``: backward, the gradients' mean over the ranks (``world``, when a run
    has several), the global gradient-norm clip, the optimizer's step.

    Raises ``Diverged`` (from ``clip_gradients``) before the optimizer steps when the loss or the
    gradient norm is not finite, so no such update reaches the weights. A non-finite loss or
    gradient on one rank is non-finite on all after the mean, so all ranks stop at the same
    minibatch.
    """
    parameters = list(parameters)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if world is not None:  # the mean over the ranks, of the gradients and of the loss
        loss = world.average_gradients(parameters, loss)
    clip_gradients(parameters, max_grad_norm, loss, step)
    optimizer.step()


def stop_diverged(err: Diverged, checkpoint_folder: str | Path) -> NoReturn:
    """Print one line saying what diverged, where, and what was kept; exit ``EXIT_DIVERGED``."""
    latest = Path(checkpoint_folder) / "latest.pt"
    kept = (
        f"the last good checkpoint, {latest}, is kept"
        if latest.is_file()
        else "no checkpoint had been saved yet"
    )
    if not speaks():  # every rank stops; rank 0 says why
        raise SystemExit(EXIT_DIVERGED)
    print(
        f"diverged: {err}; stopped before the update, {kept}; try a smaller --learning-rate",
        file=sys.stderr,
        flush=True,
    )
    raise SystemExit(EXIT_DIVERGED)
