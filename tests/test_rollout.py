"""The continuous trainer's rollout (``train.Rollout.collect``) against a plain per-step one.

``collect`` stages each step in NumPy arrays and copies them into its torch buffers once per
iteration, for speed. The reference below writes each step straight into torch tensors and acts
through the module calls, as the trainer once did: with the same seeds both must give the same
observations, actions, rewards, episode ends, final observations, next observation and logged
episodes, bit for bit. Several envs, terminations and truncations (Hopper with a short time
limit) are where a staging slip would show.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ppo_continuous import train

STEPS, ENVS = 96, 3


def fake_run(num_envs: int) -> SimpleNamespace:
    """What ``collect`` uses of a Run: the step counter, the env count, the episode log."""
    episodes: list[tuple[float, int]] = []
    return SimpleNamespace(
        state=SimpleNamespace(global_step=0),
        total_envs=num_envs,
        log_episode=lambda r, length: episodes.append((float(r), int(length))),
        episodes=episodes,
    )


def reference_collect(rollout: train.Rollout, agent: train.Agent, next_obs: torch.Tensor, run):
    """One step at a time, each written into torch tensors; acting through ``agent.actor_mean``."""
    out = {name: torch.zeros_like(buffer) for name, buffer in rollout.buffers().items()}
    for step in range(rollout.num_steps):
        run.state.global_step += run.total_envs
        out["obs"][step] = next_obs
        with torch.no_grad():
            mean = agent.actor_mean(next_obs)
            action = mean + agent.actor_log_std.exp() * torch.randn_like(mean)
        out["actions"][step] = action
        next_obs_np, reward, terminated, truncated, info = rollout.envs.step(action.numpy())
        out["rewards"][step] = torch.as_tensor(reward)
        out["terminations"][step] = torch.as_tensor(terminated)
        out["truncations"][step] = torch.as_tensor(truncated)
        next_obs = torch.as_tensor(next_obs_np, dtype=torch.float32).clone()
        if "final_info" in info:
            for i in np.flatnonzero(truncated):
                out["final_obs"][step, i] = torch.as_tensor(info["final_obs"][i])
            episode = info["final_info"]["episode"]
            for i in np.flatnonzero(info["final_info"]["_episode"]):
                run.log_episode(episode["r"][i], episode["l"][i])
    return out, next_obs


def collect_twice(collect, args: train.Args):
    """Two iterations of ``collect`` from a fresh agent, envs and seed; what each filled."""
    torch.manual_seed(3)
    envs = train.make_envs(args, None)
    agent = train.Agent.for_envs(envs)
    rollout = train.Rollout(args, envs, torch.device("cpu"))
    run = fake_run(args.num_envs)
    next_obs = rollout.reset(seed=7)
    filled = []
    for _ in range(2):
        got, next_obs = collect(rollout, agent, next_obs, run)
        filled.append({name: value.clone() for name, value in got.items()})
    envs.close()
    return filled, next_obs, run.episodes


def trainer_collect(rollout, agent, next_obs, run):
    next_obs = rollout.collect(agent, next_obs, run)
    return rollout.buffers(), next_obs


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Pendulum-v1"])
def test_collect_equals_a_plain_per_step_rollout(env_id):
    args = replace(
        train.Args(env_id=env_id), num_envs=ENVS, num_steps=STEPS, bootstrap_truncated=True
    )
    with pytest.MonkeyPatch.context() as patch:  # a short time limit: truncations in each iteration
        make = train.gym.make
        patch.setattr(train.gym, "make", lambda *a, **kw: make(*a, max_episode_steps=40, **kw))
        want, want_next, want_episodes = collect_twice(reference_collect, args)
        got, got_next, got_episodes = collect_twice(trainer_collect, args)
    assert want_episodes and got_episodes == want_episodes
    assert any(bool(it["truncations"].any()) for it in want)
    for iteration, (g, w) in enumerate(zip(got, want, strict=True)):
        for name in w:
            # final_obs counts only where an episode was truncated (the rest is left over)
            mask = w["truncations"] if name == "final_obs" else slice(None)
            assert torch.equal(g[name][mask], w[name][mask]), f"{name}, iteration {iteration}"
    assert torch.equal(got_next, want_next)


def test_batch_indexing_takes_every_field_at_the_same_rows():
    """``Batch[index]`` (the update's minibatches) keeps each sample's fields together."""
    n = 10
    batch = train.Batch(
        obs=torch.randn(n, 4), actions=torch.randn(n, 2), means=torch.randn(n, 2),
        log_stds=torch.randn(n, 2), advantages=torch.randn(n),
        old=train.OldPolicy(torch.randn(n), torch.randn(n), torch.randn(n)),
    )  # fmt: skip
    for index in (torch.tensor([7, 2, 2, 0]), slice(3, 8)):
        part = batch[index]
        for name in ("obs", "actions", "means", "log_stds", "advantages"):
            assert torch.equal(getattr(part, name), getattr(batch, name)[index]), name
        for name in ("log_probs", "values", "returns"):
            assert torch.equal(getattr(part.old, name), getattr(batch.old, name)[index]), name
    assert len(batch) == n and len(batch[slice(3, 8)]) == 5
