"""A diverging run stops at once: no step, the last good checkpoint kept, status, one line, exit 3."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import only_run_dir, run_trainer, summary
from torch import nn

from common.checkpoint import load_checkpoint
from common.divergence import EXIT_DIVERGED, Diverged, clip_gradients
from common.episodes import EpisodeLog, run_summary


def _model_and_optimizer():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


@pytest.mark.parametrize("case", ["nan loss", "inf loss", "inf gradient"])
def test_clip_gradients_raises_before_the_optimizer_steps(case):
    model, optimizer = _model_and_optimizer()
    before = [p.detach().clone() for p in model.parameters()]
    out = model(torch.ones(4, 3)).sum()
    if case == "nan loss":
        loss, what = out * float("nan"), "loss"
    elif case == "inf loss":
        loss, what = out * float("inf"), "loss"
    else:  # a finite loss (0) whose gradient, 6e38, overflows float32
        w = model.weight
        loss, what = ((w - w.detach()) * 3e38).sum() * 2 + out * 0, "gradient norm"
        assert torch.isfinite(loss)
    optimizer.zero_grad()
    loss.backward()
    with pytest.raises(Diverged) as err:
        clip_gradients(model.parameters(), 0.5, loss, step=1234)
        optimizer.step()  # the trainers' order: never reached
    assert err.value.what == what and err.value.step == 1234
    assert "at step 1234" in str(err.value)
    for old, new in zip(before, model.parameters(), strict=True):
        assert torch.equal(old, new)


def test_clip_gradients_clips_finite_gradients():
    model, _ = _model_and_optimizer()
    loss = model(torch.ones(4, 3)).sum() * 100
    loss.backward()
    norm = clip_gradients(model.parameters(), 0.5, loss, step=0)
    assert float(norm) > 0.5
    clipped = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
    assert float(clipped) == pytest.approx(0.5, rel=1e-4)


@pytest.mark.parametrize(
    ("global_step", "diverged_at", "status"),
    [(1000, None, "finished"), (500, None, "stopped"), (500, 500, "diverged")],
)
def test_summary_status(global_step, diverged_at, status):
    record = run_summary(
        env_id="E", exp_name="x", seed=1, objective="clip", global_step=global_step,
        total_timesteps=1000, wall_time=1.0, episodes=EpisodeLog(), diverged_at_step=diverged_at,
    )  # fmt: skip
    assert record["status"] == status
    assert record["finished"] is (status == "finished")
    assert record.get("diverged_at_step") == diverged_at


def _finite(tensors) -> bool:
    if isinstance(tensors, dict):
        return all(_finite(v) for v in tensors.values())
    if isinstance(tensors, list | tuple):
        return all(_finite(v) for v in tensors)
    if isinstance(tensors, torch.Tensor) and tensors.is_floating_point():
        return bool(torch.isfinite(tensors).all())
    return True


def check_diverged_run(result, runs_dir, batch: int) -> None:
    """Exit 3, one line naming what diverged and the step, summary.json says so, and the newest
    checkpoint is the last good (finite) iteration's, not one written after the divergence."""
    assert result.returncode == EXIT_DIVERGED, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "diverged" in line]
    assert len(lines) == 1, result.stderr[-3000:]
    match = re.search(
        r"the (loss|gradient norm) is (nan|inf|-inf|[-+0-9.e]+) at step (\d+)", lines[0]
    )
    assert match, lines[0]
    step = int(match.group(3))
    run_dir = only_run_dir(runs_dir)
    assert f"run diverged at step {step} in " in result.stdout  # the end-of-run summary
    done = summary(run_dir)
    assert done["status"] == "diverged" and done["finished"] is False
    assert done["diverged_at_step"] == step and step % batch == 0
    iteration = step // batch  # the iteration whose update diverged
    assert iteration >= 2, "diverged before a checkpoint was written; the test needs one"
    checkpoints = run_dir / "checkpoints"
    assert str(checkpoints / "latest.pt") in lines[0]
    saved = load_checkpoint(checkpoints / "latest.pt").data
    assert saved["run"]["iteration"] == iteration - 1
    assert saved["run"]["global_step"] == (iteration - 1) * batch  # not saved after the rollout
    assert (
        sorted(p.name for p in checkpoints.glob("iter_*.pt"))[-1] == f"iter_{iteration - 1:07d}.pt"
    )
    assert _finite(saved["model"]) and _finite(saved["optimizer"]["state"])


def test_continuous_run_with_a_huge_learning_rate_stops_as_diverged(runs_dir, tmp_path):
    result = run_trainer(
        "ppo_continuous", "--env-id", "Pendulum-v1", "--num-steps", "1024", "--total-timesteps", "8192",
        "--learning-rate", "1e6", "--save-every", "1", "--keep-checkpoints", "0",
        "--runs-dir", str(runs_dir), cwd=tmp_path,
    )  # fmt: skip
    check_diverged_run(result, runs_dir, batch=1024)


def test_atari_run_with_a_huge_learning_rate_stops_as_diverged(runs_dir, tmp_path):
    result = run_trainer(
        "ppo_atari", "--num-envs", "2", "--num-steps", "32", "--num-minibatches", "1",
        "--update-epochs", "1", "--total-timesteps", "640", "--learning-rate", "1e6",
        "--save-every", "1", "--keep-checkpoints", "0", "--runs-dir", str(runs_dir), cwd=tmp_path,
    )  # fmt: skip
    check_diverged_run(result, runs_dir, batch=64)


def test_clipping_gives_the_per_tensor_loops_numbers_bit_for_bit():
    """clip_gradients' batched (foreach) clip against torch's per-tensor loop, on the continuous
    trainer's network: the same norm and the same clipped gradients, so the speed-up changes no
    update."""
    from ppo_continuous.train import Agent

    torch.manual_seed(0)
    agent = Agent(17, 6)
    params = list(agent.parameters())
    for scale in (1e-3, 0.1, 10.0, 1e3):
        grads = [torch.randn_like(p) * scale for p in params]
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        want_norm = nn.utils.clip_grad_norm_(params, 0.5, foreach=False)
        want = [p.grad.clone() for p in params]
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        norm = clip_gradients(params, 0.5, torch.tensor(1.0), step=0)
        assert torch.equal(norm, want_norm)
        assert all(torch.equal(p.grad, w) for p, w in zip(params, want, strict=True))
