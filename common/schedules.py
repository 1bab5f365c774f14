"""The alpha schedule of the paper's Atari runs (Table 5): step size and clip range annealed linearly."""

from __future__ import annotations

from typing import Any


# --8<-- [start:linear_anneal]
def linear_anneal(
    initial: float, iteration: int, num_iterations: int, anchor: tuple[int, float] = (1, 1.0)
) -> float:
    """``initial * alpha`` with alpha falling linearly from 1 at iteration 1 to 1/N at iteration N.

    This is the paper's alpha schedule for the Atari step size and clip range (Table 5), and
    CleanRL's ``--anneal-lr``; ``iteration`` counts from 1. A run resumed with another N passes
    the ``anchor`` its checkpoint continues from (``anneal_fraction``).
    """
    return initial * anneal_fraction(iteration, num_iterations, anchor)
    # --8<-- [end:linear_anneal]


def anneal_fraction(
    iteration: int, num_iterations: int, anchor: tuple[int, float] = (1, 1.0)
) -> float:
    """alpha on the straight line from ``anchor`` = (iteration k, alpha_k) to 0 at iteration N + 1.

    The default anchor (1, 1) gives the paper's alpha = 1 - (iteration - 1) / N: 1 at iteration 1,
    1/N at iteration N. A resume with another N anchors the line at the last iteration done.
    """
    k, alpha_k = anchor
    return alpha_k * (num_iterations + 1.0 - iteration) / (num_iterations + 1.0 - k)


def anneal_learning_rate(
    optimizer: Any, args: Any, iteration: int, num_iterations: int, anchor=(1, 1.0)
) -> None:
    """With ``--anneal-lr``, this iteration's step size, ``linear_anneal`` of ``--learning-rate``."""
    if args.anneal_lr:
        lr = linear_anneal(args.learning_rate, iteration, num_iterations, anchor)
        optimizer.param_groups[0]["lr"] = lr
