"""Draw L^CLIP (eq. 7) for one sample as a function of the ratio r, for A > 0 and A < 0.

    python scripts/plot_clip_objective.py                       # docs/img/clip_objective.png
    python scripts/plot_clip_objective.py --clip-coef 0.1 --out clip.png

The curves are computed by the project's own ``common.objectives.clipped_surrogate`` and
``unclipped_surrogate`` (eq. 6, drawn dashed for comparison), one sample at a time, so the figure in
the documentation shows what the code computes, not a drawing of it. The PPO paper's Figure 1
shows the same two panels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

from common.objectives import clipped_surrogate, unclipped_surrogate

REPO = Path(__file__).resolve().parents[1]


@dataclass
class PlotArgs:
    clip_coef: float = 0.2
    """epsilon of eq. 7 (the paper's MuJoCo value; Atari uses 0.1)"""
    out: str = str(REPO / "docs" / "img" / "clip_objective.png")
    """the PNG to write"""


def objective_curves(
    ratios: np.ndarray, advantage: float, clip_coef: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample L^CLIP and L^CPI at each ratio (objectives to maximise: the losses negated)."""
    adv = torch.tensor([advantage], dtype=torch.float64)
    clipped, unclipped = [], []
    for r in ratios:
        ratio = torch.tensor([r], dtype=torch.float64)
        clipped.append(-clipped_surrogate(ratio, adv, clip_coef).item())
        unclipped.append(-unclipped_surrogate(ratio, adv).item())
    return np.array(clipped), np.array(unclipped)


def main(args: PlotArgs) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = args.clip_coef
    ratios = np.linspace(0.0, 2.0, 401)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=False)
    for ax, advantage in zip(axes, (1.0, -1.0), strict=True):
        clipped, unclipped = objective_curves(ratios, advantage, eps)
        ax.plot(ratios, unclipped, "--", color="0.6", label=r"$L^{CPI}$: $r A$ (eq. 6)")
        ax.plot(ratios, clipped, color="C0", lw=2.2, label=r"$L^{CLIP}$ (eq. 7)")
        for edge in (1.0 - eps, 1.0 + eps):
            ax.axvline(edge, color="0.8", lw=0.8)
        ax.plot([1.0], [advantage], "o", color="C3", zorder=3)
        ax.annotate(
            "r = 1 (the rollout's policy)",
            (1.0, advantage),
            textcoords="offset points",
            xytext=(-150 if advantage > 0 else 10, 12),
            fontsize=8,
            color="C3",
        )
        sign = ">" if advantage > 0 else "<"
        ax.set_title(f"A {sign} 0 (here A = {advantage:+.0f}), epsilon = {eps:g}")
        ax.set_xlabel(r"probability ratio $r = \pi_\theta(a|s) / \pi_{\theta_{old}}(a|s)$")
        ax.set_ylabel("objective for one sample")
        ax.set_xticks([0.0, 1.0 - eps, 1.0, 1.0 + eps, 2.0])
        ax.legend(loc="upper left" if advantage > 0 else "lower left", fontsize=8)
        ax.grid(alpha=0.25)
    fig.suptitle("The clipped surrogate as common/objectives.py computes it", fontsize=10)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main(tyro.cli(PlotArgs))
