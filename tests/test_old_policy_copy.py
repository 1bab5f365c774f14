"""The continuous trainer keeps pi_old's log-std fixed while it optimises pi (KL[pi_old || pi]).

The policy's log-std is a parameter that Adam updates in place; if the trainer kept a view of it
as the old policy's log-std instead of a copy, the "old" distribution would follow the new one and
the analytic KL would lose its log-std part without any error.
"""

from __future__ import annotations

import math

import torch
from conftest import only_run_dir, run_trainer, scalars

# log_std + 0.5 + log(sqrt(2 pi)): a diagonal Gaussian's entropy per action dimension.
ENTROPY_OFFSET = 0.5 + 0.5 * math.log(2.0 * math.pi)


def log_std_kl(delta: float) -> float:
    """KL[N(m, s) || N(m, s e^delta)] = delta + e^(-2 delta) / 2 - 1/2: convex, 0 at delta = 0."""
    return delta + math.exp(-2.0 * delta) / 2.0 - 0.5


def test_analytic_kl_keeps_the_old_log_std(runs_dir, tmp_path):
    """The logged analytic KL of iteration 2 is at least the KL its log-std change alone implies.

    A large entropy bonus pushes the log-std up every Adam step; a large fixed KL penalty holds it
    near pi_old's, as long as the KL sees pi_old's log-std. Per minibatch the logged ``losses/kl``
    is (mean part >= 0) + sum_d log_std_kl(log_std_d - old_log_std_d), and ``losses/entropy`` is
    sum_d log_std_d + const, both averaged over the iteration's minibatches; so by convexity (Jensen)
    kl >= D * log_std_kl((entropy - old_entropy) / D) exactly, with old_entropy from the checkpoint
    written after iteration 1 (pi_old of iteration 2). With a view instead of a copy the log-std
    part is 0, the penalty no longer holds the log-std, and the logged KL falls far below the bound
    (about 1e-4 against 0.03, against about 1.2 times the bound with the copy).
    """
    result = run_trainer(
        "ppo_continuous", "--env-id", "Pendulum-v1", "--seed", "1",
        "--num-envs", "1", "--num-steps", "256", "--num-minibatches", "4", "--update-epochs", "10",
        "--total-timesteps", "512", "--objective", "fixed_kl", "--kl-beta", "10", "--ent-coef", "1",
        "--learning-rate", "0.01", "--no-anneal-lr",
        "--save-every", "1", "--keep-checkpoints", "0",
        "--runs-dir", str(runs_dir), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(runs_dir)
    logged = scalars(run_dir)
    assert [step for step, _ in logged["losses/kl"]] == [256, 512]

    saved = torch.load(run_dir / "checkpoints" / "iter_0000001.pt", weights_only=True)
    old_log_std = saved["model"]["actor_log_std"].double()
    dims = old_log_std.numel()
    old_entropy = float((old_log_std + ENTROPY_OFFSET).sum())

    kl = logged["losses/kl"][1][1]
    mean_delta = (logged["losses/entropy"][1][1] - old_entropy) / dims
    # The entropy bonus moved the log-std by a margin, so its KL part is material here.
    assert mean_delta > 0.01, mean_delta
    bound = dims * log_std_kl(mean_delta)
    assert kl >= 0.99 * bound, (
        f"analytic KL {kl:.3g} is below {bound:.3g}, the KL of the log-std change alone: "
        "pi_old's log-std follows the updated policy (a view of the parameter, not a copy)"
    )
