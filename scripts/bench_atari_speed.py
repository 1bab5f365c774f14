"""Speed of the Atari trainer against the bound set by its parts, measured in one run.

    python scripts/bench_atari_speed.py                       # both backends, fp32
    python scripts/bench_atari_speed.py --precision bf16 --backends ale_vector

Measures, on this machine: env-only steps/s of each backend, policy inference at batch num_envs,
one minibatch update, and from them the bound 1 / (rollout cost per step + update cost per step);
then runs the real trainer for a few iterations per backend and prints trainer SPS / bound.
All figures are medians of repeated timings.
"""

from __future__ import annotations

import json
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
    repeats: int = 30
    """timings per part (the median is reported)"""
    trainer_iterations: int = 30
    """iterations of the real trainer per backend (1,024 steps each)"""


def median_seconds(fn, repeats: int, warmup: int = 3) -> float:
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
    from common.distributions import categorical_entropy, categorical_log_prob, sample_categorical
    from ppo_atari.envs import atari_spec, make_atari_envs
    from ppo_atari.train import Agent

    spec = atari_spec(args.env_id)
    parts: dict = {"env_step_s": {}}
    for backend in args.backends:
        envs = make_atari_envs(spec, args.num_envs, backend, seed=1)
        envs.reset(seed=1)
        rng = np.random.default_rng(0)
        parts["env_step_s"][backend] = median_seconds(
            lambda envs=envs, rng=rng: envs.step(
                rng.integers(0, envs.single_action_space.n, args.num_envs)
            ),
            repeats=args.repeats * 10,
        )
        envs.close()

    torch.manual_seed(0)
    agent = Agent(4).to(memory_format=torch.channels_last)
    obs = torch.randint(0, 256, (args.num_envs, 4, 84, 84), dtype=torch.uint8)

    def infer():
        with torch.inference_mode(), autocast(args.precision):
            logits, _ = agent(obs)
            categorical_log_prob(logits, sample_categorical(logits))

    parts["inference_s"] = median_seconds(infer, args.repeats * 10)

    minibatch = args.num_envs * args.num_steps // args.num_minibatches
    mb_obs = torch.randint(0, 256, (minibatch, 4, 84, 84), dtype=torch.uint8)
    mb_actions = torch.randint(0, 4, (minibatch,))
    optimizer = torch.optim.Adam(agent.parameters(), lr=2.5e-4, eps=1e-5, foreach=True)

    def update():
        with autocast(args.precision):
            logits, values = agent(mb_obs)
        loss = -categorical_log_prob(logits, mb_actions).mean() + values.pow(2).mean()
        loss = loss - 0.01 * categorical_entropy(logits).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
        optimizer.step()

    parts["minibatch_update_s"] = median_seconds(update, args.repeats)
    return parts


def bound_sps(parts: dict, backend: str, args: BenchArgs) -> float:
    rollout_per_step = (parts["env_step_s"][backend] + parts["inference_s"]) / args.num_envs
    updates = args.update_epochs * args.num_minibatches
    update_per_step = updates * parts["minibatch_update_s"] / (args.num_envs * args.num_steps)
    return 1.0 / (rollout_per_step + update_per_step)


def trainer_sps(backend: str, args: BenchArgs) -> float:
    """Run the real trainer; SPS excludes its first iteration (start-up)."""
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
        return _steady_sps(next(Path(runs).glob("*")))


def _steady_sps(run_dir: Path) -> float:
    """Median SPS over iterations after the first, from the logged iteration times."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir)).Reload()
    seconds = [e.value for e in events.Scalars("charts/iteration_seconds")][1:]
    steps = json.loads((run_dir / "summary.json").read_text())["global_step"]
    per_iteration = steps / (len(seconds) + 1)
    return per_iteration / statistics.median(seconds)


def main(args: BenchArgs) -> None:
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    parts = measure_parts(args)
    print(f"inference at batch {args.num_envs}: {parts['inference_s'] * 1e3:.2f} ms (median)")
    print(
        f"one minibatch update ({args.precision}): {parts['minibatch_update_s'] * 1e3:.1f} ms (median)"
    )
    for backend in args.backends:
        env_s = parts["env_step_s"][backend]
        bound = bound_sps(parts, backend, args)
        sps = trainer_sps(backend, args)
        print(
            f"{backend:>10}: env-only {args.num_envs / env_s:,.0f} steps/s ({env_s * 1e3:.2f} ms per step of {args.num_envs}); "
            f"bound {bound:,.0f} SPS; trainer {sps:,.0f} SPS (median over iterations); trainer/bound {sps / bound:.2f}"
        )


if __name__ == "__main__":
    main(tyro.cli(BenchArgs))
