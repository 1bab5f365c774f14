"""Value loss, advantage normalisation, the diagnostics and the full eq. 9 loss."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from common.losses import (
    LossConfig,
    LossLog,
    NewPolicy,
    OldPolicy,
    approx_kl,
    clip_fraction,
    explained_variance,
    minibatches,
    normalize_advantages,
    ppo_loss,
    shuffled_minibatches,
    value_loss,
)
from common.objectives import clipped_surrogate, kl_penalty_surrogate


def test_value_loss_unclipped_by_hand():
    values = torch.tensor([1.0, 3.0, 5.0])
    old = torch.tensor([0.0, 2.9, 3.0])
    returns = torch.tensor([2.0, 0.0, 3.0])
    # Squared errors 1, 9, 4 -> 0.5 * 14 / 3.
    assert value_loss(values, old, returns, 0.2, clip_vloss=False).item() == pytest.approx(
        0.5 * 14.0 / 3
    )


def test_value_loss_clipped_takes_the_larger_error_by_hand():
    values = torch.tensor([1.0, 3.0, 5.0])
    old = torch.tensor([0.0, 2.9, 3.0])
    returns = torch.tensor([2.0, 0.0, 3.0])
    # Clipped values: 0 + clamp(1, +-0.2) = 0.2; 2.9 + 0.1 = 3.0 (inside); 3 + clamp(2) = 3.2.
    # Unclipped errors: 1, 9, 4.  Clipped errors: (0.2 - 2)^2 = 3.24, 9, (3.2 - 3)^2 = 0.04.
    # Element-wise max: 3.24 (clipped larger), 9 (equal), 4 (unclipped larger).
    expected = 0.5 * (3.24 + 9.0 + 4.0) / 3
    assert value_loss(values, old, returns, 0.2, clip_vloss=True).item() == pytest.approx(expected)


def test_value_loss_clipped_gradient_is_zero_where_the_clipped_error_wins():
    values = torch.tensor([1.0, 5.0], requires_grad=True)
    old, returns = torch.tensor([0.0, 3.0]), torch.tensor([2.0, 3.0])
    value_loss(values, old, returns, 0.2, clip_vloss=True).backward()
    # Sample 0: the clipped value 0.2 is constant in v -> no gradient. Sample 1: unclipped error
    # 0.5 * (v - R)^2 / n -> (5 - 3) / 2 = 1.
    assert values.grad.tolist() == pytest.approx([0.0, 1.0])


@pytest.mark.parametrize("seed", [0, 1])
def test_normalize_advantages(seed):
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(1000, generator=g) * 5 + 3
    advantages = normalize_advantages(raw)
    assert abs(advantages.mean().item()) < 1e-5
    assert abs(advantages.std().item() - 1.0) < 1e-4
    # An affine map of the raw advantages, order preserved.
    assert torch.equal(torch.argsort(advantages), torch.argsort(raw))
    # A constant minibatch does not divide by zero.
    assert torch.all(torch.isfinite(normalize_advantages(torch.full((8,), 2.0))))


def test_approx_kl_is_zero_at_log_ratio_zero():
    log_ratio = torch.zeros(10)
    estimates = approx_kl(log_ratio, log_ratio.exp())
    assert set(estimates) == {"old_approx_kl", "approx_kl"}
    assert estimates["old_approx_kl"].item() == 0.0
    assert estimates["approx_kl"].item() == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_approx_kl_k3_is_never_negative(seed):
    g = torch.Generator().manual_seed(seed)
    log_ratio = torch.randn(256, generator=g) * 2.0 + (seed - 2)  # biased up and down
    assert approx_kl(log_ratio, log_ratio.exp())["approx_kl"].item() >= 0.0
    # Per sample too: (r - 1) - log r >= 0 for every r > 0.
    for lr in log_ratio[:20]:
        single = lr.reshape(1)
        assert approx_kl(single, single.exp())["approx_kl"].item() >= 0.0
    # k1 can be negative, so it is not k3 in disguise.
    positive = torch.full((4,), 0.3)
    assert approx_kl(positive, positive.exp())["old_approx_kl"].item() < 0


def test_approx_kl_estimates_the_analytic_kl():
    # x ~ p = N(0, 1), log r = log q(x) - log p(x) with q = N(0.5, 1.2); both estimate KL[p||q].
    g = torch.Generator().manual_seed(0)
    p_mean, p_std, q_mean, q_std = 0.0, 1.0, 0.5, 1.2
    x = torch.randn(400_000, generator=g, dtype=torch.float64) * p_std + p_mean
    p, q = torch.distributions.Normal(p_mean, p_std), torch.distributions.Normal(q_mean, q_std)
    log_ratio = q.log_prob(x) - p.log_prob(x)
    exact = math.log(q_std / p_std) + (p_std**2 + (p_mean - q_mean) ** 2) / (2 * q_std**2) - 0.5
    assert exact == pytest.approx(0.1163, abs=1e-4)  # log 1.2 + 1.25 / 2.88 - 0.5
    estimates = approx_kl(log_ratio, log_ratio.exp())
    assert estimates["old_approx_kl"].item() == pytest.approx(exact, rel=0.03)
    assert estimates["approx_kl"].item() == pytest.approx(exact, rel=0.03)


def test_clip_fraction_by_hand():
    ratio = torch.tensor([1.0, 1.15, 0.85, 1.3, 0.7, 1.25, 0.95, 2.0])
    # |r - 1| > 0.2 for 1.3, 0.7, 1.25, 2.0 -> 4 of 8.
    assert clip_fraction(ratio, 0.2).item() == pytest.approx(0.5)
    # With eps = 0.1: also 1.15 and 0.85 -> 6 of 8.
    assert clip_fraction(ratio, 0.1).item() == pytest.approx(0.75)
    assert clip_fraction(torch.ones(5), 0.2).item() == 0.0


def test_explained_variance():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(100, generator=g, dtype=torch.float64)
    assert explained_variance(target, target) == pytest.approx(1.0)
    mean_prediction = torch.full((100,), target.mean().item(), dtype=torch.float64)
    assert explained_variance(mean_prediction, target) == pytest.approx(0.0, abs=1e-9)
    # Halfway between the mean and the truth: residual 0.5 (y - mean), variance 1/4 -> 0.75.
    halfway = 0.5 * target + 0.5 * target.mean()
    assert explained_variance(halfway, target) == pytest.approx(0.75, abs=1e-9)
    # A constant offset is not penalised (variance, not squared error).
    assert explained_variance(target + 3.0, target) == pytest.approx(1.0)
    assert explained_variance(-target, target) < 0
    assert math.isnan(explained_variance(torch.randn(5, generator=g), torch.ones(5)))


def ppo_inputs(seed: int, n: int = 64):
    g = torch.Generator().manual_seed(seed)
    return {
        "new_log_prob": torch.randn(n, generator=g) * 0.3,
        "old_log_prob": torch.randn(n, generator=g) * 0.3,
        "entropy": torch.rand(n, generator=g) + 0.5,
        "kl": torch.rand(n, generator=g) * 0.05,
        "new_values": torch.randn(n, generator=g),
        "old_values": torch.randn(n, generator=g),
        "advantages": torch.randn(n, generator=g) * 4 + 1,
        "returns": torch.randn(n, generator=g),
    }


STAT_KEYS = {"policy_loss", "value_loss", "entropy", "kl", "approx_kl", "old_approx_kl", "clipfrac"}


def call_ppo_loss(x, objective="clip", clip_coef=0.1, kl_beta=2.0, vf_coef=0.5, ent_coef=0.01,
                  clip_vloss=True):  # fmt: skip
    config = LossConfig(objective, vf_coef, ent_coef, clip_vloss)
    old = OldPolicy(x["old_log_prob"], x["old_values"], x["returns"])
    new = NewPolicy(log_probs=x["new_log_prob"], entropy=x["entropy"], values=x["new_values"])
    return ppo_loss(
        config, old, new, x["advantages"], x["kl"], clip_coef=clip_coef, kl_beta=kl_beta
    )  # fmt: skip


@pytest.mark.parametrize("objective", ["clip", "adaptive_kl"])
@pytest.mark.parametrize("clip_vloss", [True, False])
def test_ppo_loss_is_eq9_from_its_parts(objective, clip_vloss):
    x = ppo_inputs(0)
    clip_coef, kl_beta, vf_coef, ent_coef = 0.1, 2.0, 0.5, 0.01
    loss, stats = call_ppo_loss(x, objective, clip_coef, kl_beta, vf_coef, ent_coef, clip_vloss)
    log_ratio = x["new_log_prob"] - x["old_log_prob"]
    ratio = torch.exp(log_ratio)
    adv = x["advantages"]  # used as given: normalising them is the trainer's visible step
    if objective == "clip":
        pg = clipped_surrogate(ratio, adv, clip_coef)
    else:
        pg = kl_penalty_surrogate(ratio, adv, x["kl"], kl_beta)
    v = value_loss(x["new_values"], x["old_values"], x["returns"], clip_coef, clip_vloss)
    ent = x["entropy"].mean()
    expected = pg + vf_coef * v - ent_coef * ent
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6, abs=1e-7)
    assert set(stats) == STAT_KEYS
    assert stats["policy_loss"].item() == pytest.approx(pg.item(), rel=1e-6)
    assert stats["value_loss"].item() == pytest.approx(v.item(), rel=1e-6)
    assert stats["entropy"].item() == pytest.approx(ent.item(), rel=1e-6)
    assert stats["kl"].item() == pytest.approx(x["kl"].mean().item(), rel=1e-6)
    assert stats["old_approx_kl"].item() == pytest.approx((-log_ratio).mean().item(), rel=1e-5)
    k3 = ((ratio - 1) - log_ratio).mean().item()
    assert stats["approx_kl"].item() == pytest.approx(k3, rel=1e-5)
    clipped = ((ratio - 1).abs() > clip_coef).float().mean().item()
    assert stats["clipfrac"].item() == pytest.approx(clipped)
    assert 0.0 < clipped < 1.0  # the inputs exercise the clip
    assert all(not s.requires_grad for s in stats.values())


def test_ppo_loss_coefficients_and_advantages_matter():
    # Guards the test above against passing vacuously: each switch changes the loss.
    x = ppo_inputs(1)
    ref = call_ppo_loss(x)[0].item()
    for change in (
        {"clip_vloss": False},
        {"vf_coef": 1.0},
        {"ent_coef": 0.1},
        {"objective": "adaptive_kl"},
        {"clip_coef": 0.3},
    ):
        assert call_ppo_loss(x, **change)[0].item() != pytest.approx(ref), change
    normalised = {**x, "advantages": normalize_advantages(x["advantages"])}
    assert call_ppo_loss(normalised)[0].item() != pytest.approx(ref)  # not normalised inside


def test_ppo_loss_gradient_flows_to_policy_and_value_not_old():
    x = ppo_inputs(2)
    for name in ("new_log_prob", "new_values", "entropy"):
        x[name].requires_grad_(True)
    loss, _ = call_ppo_loss(x, clip_coef=0.2, kl_beta=1.0, clip_vloss=False)
    loss.backward()
    new_values, entropy = x["new_values"], x["entropy"]
    n = new_values.numel()
    # d/dV of 0.5 * 0.5 * mean((V - R)^2) is 0.5 * (V - R) / n; d/dS of -0.01 * mean(S) is -0.01/n.
    assert torch.allclose(new_values.grad, 0.5 * (new_values - x["returns"]).detach() / n)
    assert torch.allclose(entropy.grad, torch.full((n,), -0.01 / n))
    assert x["new_log_prob"].grad.abs().sum() > 0


@dataclass
class Rows:
    """A minimal batch for ``shuffled_minibatches``: sample i is row i of ``data``."""

    data: torch.Tensor

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index) -> Rows:
        return Rows(self.data[index])

    @property
    def device(self) -> torch.device:
        return self.data.device


@pytest.mark.parametrize("batch_size", [64, 70])  # 70: the last minibatch of each epoch is short
def test_minibatches_are_each_epochs_random_order_in_chunks(batch_size):
    """Both samplers give epoch e's minibatches as consecutive chunks of the batch in the order
    of the e-th ``torch.randperm``: a new order each epoch, every sample once per epoch."""
    data = torch.randn(batch_size, 3)
    size = batch_size // 8
    torch.manual_seed(4)
    orders = [torch.randperm(batch_size) for _ in range(3)]
    expected = [data[order[start : start + size]] for order in orders
                for start in range(0, batch_size, size)]  # fmt: skip
    torch.manual_seed(4)
    indexed = [data[mb] for mb in minibatches(batch_size, 8, 3, data.device, LossLog())]
    torch.manual_seed(4)
    sliced = [mb.data for mb in shuffled_minibatches(Rows(data), 8, 3, LossLog())]
    assert len(indexed) == len(sliced) == len(expected) == 3 * math.ceil(batch_size / size)
    for got_indexed, got_sliced, want in zip(indexed, sliced, expected, strict=True):
        assert torch.equal(got_indexed, want) and torch.equal(got_sliced, want)


@pytest.mark.parametrize("kls, epochs_run", [([0.001, 0.001, 0.001], 3), ([0.001, 0.02, 0.001], 2)])
def test_shuffled_minibatches_stop_after_the_epoch_whose_last_kl_exceeds_the_target(
    kls, epochs_run
):
    """--target-kl: the epochs stop after the first one whose last minibatch's approx_kl is above
    it (a high KL earlier in an epoch does not count)."""
    log, seen = LossLog(), []
    for i, _mb in enumerate(
        shuffled_minibatches(Rows(torch.zeros(16, 1)), 4, 3, log, target_kl=0.01)
    ):
        epoch, last_of_epoch = i // 4, i % 4 == 3
        seen.append(epoch)
        kl = kls[epoch] if last_of_epoch else 1.0
        log.add({"approx_kl": torch.tensor(kl)})
    assert sorted(set(seen)) == list(range(epochs_run))
    assert len(seen) == 4 * epochs_run
