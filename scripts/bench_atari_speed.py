"""Speed of the Atari trainer against the bound set by its parts, measured in one run.

    python scripts/bench_atari_speed.py                       # both backends, fp32
    python scripts/bench_atari_speed.py --precision bf16 --backends ale_vector

Measures, on this machine: env-only steps/s of each backend, policy inference at batch num_envs,
one minibatch update, and from them the bound 1 / (rollout cost per step + update cost per step);
then runs the real trainer for a few iterations per backend and prints trainer SPS / bound.
All figures are medians of repeated timings.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro


@dataclass
class BenchArgs:
    env_id: str = "BreakoutNoFrameskip-v4"
    """the Atari game"""
    backends: tuple[str, ...] = ("ale_vector", "gymnasium")
    """backends to measure"""
    precision: str = "fp32"
    """fp32 or bf16"""
    num_envs: int = 8
    num_steps: int = 128
    num_minibatches: int = 4
    update_epochs: int = 4
    repeats: int = 9
    """timings per part (the median is reported)"""
    trainer_iterations: int = 30
    """iterations of the real trainer per backend (1,024 steps each)"""


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def autocast(precision: str):
    import contextlib

    return (
        torch.autocast("cpu", dtype=torch.bfloat16)
        if precision == "bf16"
        else contextlib.nullcontext()
    )


def measure_parts(args: BenchArgs) -> dict:
    """Each part timed as the trainer runs it, per iteration: the env for a whole rollout (its
    resets and no-op starts included), inference num_steps times, the K x M minibatch updates."""
    from common.distributions import (
        categorical_entropy,
        categorical_kl,
        categorical_log_prob,
        sample_categorical,
    )
    from common.divergence import gradient_step
    from common.losses import LossConfig, NewPolicy, OldPolicy, normalize_advantages, ppo_loss
    from ppo_atari.envs import atari_spec, make_atari_envs
    from ppo_atari.train import Agent

    spec = atari_spec(args.env_id)
    parts: dict = {"env_rollout_s": {}}
    for backend in args.backends:
        envs = make_atari_envs(spec, args.num_envs, backend, seed=1)
        envs.reset(seed=1)
        rng = np.random.default_rng(0)
        actions = [
            rng.integers(0, envs.single_action_space.n, args.num_envs)
            for _ in range(args.num_steps)
        ]

        def rollout(envs=envs, actions=actions):
            for a in actions:
                envs.step(a)

        parts["env_rollout_s"][backend] = median_seconds(rollout, args.repeats)
        envs.close()

    torch.manual_seed(0)
    agent = Agent(4).to(memory_format=torch.channels_last)
    obs = torch.randint(0, 256, (args.num_envs, 4, 84, 84), dtype=torch.uint8)

    def infer():
        for _ in range(args.num_steps):
            with torch.inference_mode(), autocast(args.precision):
                logits, _ = agent(obs)
                categorical_log_prob(logits, sample_categorical(logits))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the trainer's rollout does on a CPU
    parts["inference_rollout_s"] = median_seconds(infer, args.repeats)
    torch.set_num_threads(threads)

    batch = args.num_envs * args.num_steps
    b_obs = torch.randint(0, 256, (batch, 4, 84, 84), dtype=torch.uint8)
    b_actions = torch.randint(0, 4, (batch,))
    b_logits, b_other = torch.randn(batch, 4), torch.randn(4, batch)
    optimizer = torch.optim.Adam(agent.parameters(), lr=2.5e-4, eps=1e-5, foreach=True)
    config = LossConfig("clip", vf_coef=0.5, ent_coef=0.01, clip_vloss=True)
    old = OldPolicy(b_other[0], b_other[1], b_other[3])

    def update():
        for _ in range(args.update_epochs):
            for mb in torch.randperm(batch).split(batch // args.num_minibatches):
                with autocast(args.precision):
                    logits, values = agent(b_obs[mb])
                new = NewPolicy(categorical_log_prob(logits, b_actions[mb]),
                                categorical_entropy(logits), values)  # fmt: skip
                loss, _ = ppo_loss(
                    config, old[mb], new, normalize_advantages(b_other[2, mb]),
                    categorical_kl(b_logits[mb], logits), clip_coef=0.1, kl_beta=1.0,
                )  # fmt: skip
                gradient_step(optimizer, loss, agent.parameters(), 0.5, step=0)

    parts["update_s"] = median_seconds(update, max(3, args.repeats // 3))
    return parts


def bound_sps(parts: dict, backend: str, args: BenchArgs) -> float:
    """1 / (rollout cost per step + update cost per step)."""
    batch = args.num_envs * args.num_steps
    rollout_per_step = (parts["env_rollout_s"][backend] + parts["inference_rollout_s"]) / batch
    return 1.0 / (rollout_per_step + parts["update_s"] / batch)


def trainer_sps(backend: str, args: BenchArgs) -> tuple[float, float, float]:
    """Run the real trainer: (SPS, rollout s, update s), medians over iterations after the first."""
    steps = args.trainer_iterations * args.num_envs * args.num_steps
    with tempfile.TemporaryDirectory() as runs:
        cmd = [
            sys.executable, str(Path(__file__).parents[1] / "ppo_atari" / "train.py"),
            "--env-id", args.env_id, "--env-backend", backend, "--precision", args.precision,
            "--total-timesteps", str(steps), "--runs-dir", runs, "--save-every", "0",
            "--num-envs", str(args.num_envs), "--num-steps", str(args.num_steps),
            "--num-minibatches", str(args.num_minibatches), "--update-epochs", str(args.update_epochs),
        ]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(next(Path(runs).glob("*")))).Reload()
        iteration = [e.value for e in events.Scalars("charts/iteration_seconds")][1:]
        rollout = [e.value for e in events.Scalars("charts/rollout_seconds")][1:]
    batch = args.num_envs * args.num_steps
    median_iteration, median_rollout = statistics.median(iteration), statistics.median(rollout)
    return batch / median_iteration, median_rollout, median_iteration - median_rollout


def main(args: BenchArgs) -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, precision {args.precision}")  # fmt: skip
    parts = measure_parts(args)
    batch = args.num_envs * args.num_steps
    print(f"per iteration of {batch} steps (medians of {args.repeats} repeats):")
    infer, update, updates = (
        parts["inference_rollout_s"],
        parts["update_s"],
        args.update_epochs * args.num_minibatches,
    )
    print(
        f"  inference, {args.num_steps} calls at batch {args.num_envs}: {infer * 1e3:.0f} ms ({infer / args.num_steps * 1e3:.2f} ms each)"
    )
    print(
        f"  update, {updates} minibatches: {update * 1e3:.0f} ms ({update / updates * 1e3:.1f} ms each)"
    )
    for backend in args.backends:
        env_s = parts["env_rollout_s"][backend]
        bound = bound_sps(parts, backend, args)
        sps, rollout_s, update_s = trainer_sps(backend, args)
        print(
            f"  {backend:>10}: env-only {batch / env_s:,.0f} steps/s ({env_s * 1e3:.0f} ms); bound {bound:,.0f} SPS; "
            f"trainer {sps:,.0f} SPS (rollout {rollout_s * 1e3:.0f} ms, rest {update_s * 1e3:.0f} ms); "
            f"trainer/bound {sps / bound:.2f}"
        )


if __name__ == "__main__":
    main(tyro.cli(BenchArgs))
