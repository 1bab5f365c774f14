"""Table 1's sweep shape on each env backend: aggregate SPS and the projected wall time of the sweep.

    python scripts/bench_sweep_backends.py                       # 2 iterations per group
    python scripts/bench_sweep_backends.py --iterations 5 --backends envpool
    python scripts/bench_sweep_backends.py --env-floor    # the envs alone: the sweep's floor

Table 1 runs as groups of the batched runner (``benchmark.py --preset paper-table1 --batched``):
one group per task of its 11 settings, two groups at a time on two cores. This runs that shape,
the Hopper-v5 and HalfCheetah-v5 groups (seed 1, the preset's flags) side by side, for a few
iterations, once with each backend, and reads each run's ``summary.json`` (steps, and the group's
wall time from its first step, so start-up is not counted). The aggregate SPS is the two groups'
steps per second together; the projection is the sweep's 231 runs x 1M steps at that rate (the
other five tasks cost about as much per step or less). docs/benchmarks/envpool.md has the figures.

``--env-floor`` times the envs alone instead, on all 7 tasks: 11 envs (a group's) stepped with
uniformly random actions, on EnvPool (one pool, one thread) and on gymnasium (11 bare envs, no
wrappers, reset when they end), in microseconds per env step; and the hours Table 1's 231M steps
would take on two cores if nothing but the envs ran, the floor no runner goes below.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import tyro
from presets import TABLE1_VARIANTS, presets

from common.cli import UsageError, parse_args
from ppo_continuous import batched, train
from ppo_continuous.envpool_envs import BACKENDS, SUPPORTED_ENV_IDS, check_backend, make_pool

TASKS = ("Hopper-v5", "HalfCheetah-v5")
SWEEP_RUNS = 7 * len(TABLE1_VARIANTS) * 3  # 7 tasks x 11 settings x 3 seeds = 231
SWEEP_STEPS = 1_000_000  # per run


@dataclass
class Args:
    iterations: int = 2
    """iterations of each group (2,048 steps of each of its 11 runs each)"""
    backends: tuple[str, ...] = BACKENDS
    """the env backends to compare"""
    env_floor: bool = False
    """instead, time the envs alone (random actions) on all 7 tasks and project Table 1's floor"""


def validate(args: Args) -> None:
    if args.iterations <= 0:
        raise UsageError("--iterations", f"must be positive, got {args.iterations}")
    for backend in args.backends:
        for task in TASKS:
            check_backend(backend, task)


def group_command(task: str, backend: str, steps: int, runs_dir: Path) -> list[str]:
    """The batched runner's command for Table 1's 11 settings on ``task``, seed 1, ``steps`` each."""
    preset = presets()["paper-table1"]
    common = [f for f in preset.common_flags if f not in ("--total-timesteps", "1000000")]
    settings = [
        tyro.cli(
            train.Args,
            args=[
                "--env-id",
                task,
                "--total-timesteps",
                str(steps),
                *common,
                *flags,
                "--exp-name",
                variant,
                "--seed",
                "1",
            ],
        )  # fmt: skip
        for variant, flags in preset.variants.items()
    ]
    command = batched.command_for(settings, runs_dir / "groups" / task, save_every=10**6)
    return [*command, "--runs-dir", str(runs_dir), "--env-backend", backend]


def phase_seconds(run_dir: Path) -> tuple[float, float]:
    """(rollout, update) seconds of a group's iterations, summed, from a run's TensorBoard log."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    return tuple(
        sum(e.value for e in events.Scalars(f"charts/{name}_seconds"))
        for name in ("rollout", "update")
    )


@dataclass
class Measured:
    sps: float  # both groups' steps per second, added
    steps: int
    rollout_seconds: float  # summed over both groups' iterations
    update_seconds: float


def run_side_by_side(backend: str, iterations: int) -> Measured:
    """Both groups at once on ``backend``, measured from the runs' summaries and logs."""
    steps = iterations * train.Args().num_steps
    with tempfile.TemporaryDirectory() as folder:
        processes = []
        for task in TASKS:
            runs_dir = Path(folder) / task
            command = group_command(task, backend, steps, runs_dir)
            processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.PIPE, text=True))  # fmt: skip
        measured = Measured(0.0, 0, 0.0, 0.0)
        for task, process in zip(TASKS, processes, strict=True):
            _, err = process.communicate()
            if process.returncode != 0:
                raise SystemExit(f"{task} on {backend} failed (exit {process.returncode}): {err}")
            paths = sorted((Path(folder) / task).glob("*/summary.json"))
            summaries = [json.loads(p.read_text()) for p in paths]
            group_steps = sum(s["global_step"] for s in summaries)
            measured.sps += group_steps / max(s["wall_time_s"] for s in summaries)
            measured.steps += group_steps
            rollout, update = phase_seconds(paths[0].parent)
            measured.rollout_seconds += rollout
            measured.update_seconds += update
    return measured


FLOOR_ENVS, FLOOR_STEPS = 11, 1000


def env_step_microseconds(task: str, backend: str, seed: int = 0) -> float:
    """Microseconds per env step of FLOOR_ENVS envs of ``task`` under random actions, nothing else."""
    actions_of = np.random.default_rng(seed)
    if backend == "envpool":
        pool = make_pool(task, list(range(FLOOR_ENVS)))
        pool.reset()
        space = pool.action_space
        actions = actions_of.uniform(space.low, space.high, (FLOOR_STEPS, FLOOR_ENVS, *space.shape))
        start = time.perf_counter()
        for batch in actions:
            pool.step(batch)  # EnvPool resets an ended env on its next step
        seconds = time.perf_counter() - start
        pool.close()
    else:
        envs = [gym.make(task) for _ in range(FLOOR_ENVS)]
        for i, env in enumerate(envs):
            env.reset(seed=seed + i)
        space = envs[0].action_space
        actions = actions_of.uniform(space.low, space.high, (FLOOR_STEPS, FLOOR_ENVS, *space.shape))
        start = time.perf_counter()
        for batch in actions:
            for env, action in zip(envs, batch, strict=True):
                _, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    env.reset()
        seconds = time.perf_counter() - start
        for env in envs:
            env.close()
    return seconds / (FLOOR_STEPS * FLOOR_ENVS) * 1e6


def print_env_floor(backends: tuple[str, ...]) -> None:
    print(f"| task | {' | '.join(f'{b}, us per env step' for b in backends)} |\n"
          f"|---|{'---|' * len(backends)}")  # fmt: skip
    per_task = {b: [] for b in backends}
    for task in SUPPORTED_ENV_IDS:
        cells = []
        for backend in backends:
            per_task[backend].append(env_step_microseconds(task, backend))
            cells.append(f"{per_task[backend][-1]:.1f}")
        print(f"| {task} | {' | '.join(cells)} |", flush=True)
    steps_per_task = SWEEP_RUNS * SWEEP_STEPS / len(SUPPORTED_ENV_IDS)
    for backend, micros in per_task.items():
        hours = sum(steps_per_task * m / 1e6 for m in micros) / 3600 / 2
        print(f"{backend}: Table 1's {SWEEP_RUNS * SWEEP_STEPS / 1e6:.0f}M env steps alone take "
              f"{hours:.2f} h on two cores")  # fmt: skip


def main(args: Args) -> None:
    if args.env_floor:
        print_env_floor(args.backends)
        return
    print(f"{len(TASKS)} groups of {len(TABLE1_VARIANTS)} runs ({', '.join(TASKS)}) side by side, "
          f"{args.iterations} iterations each")  # fmt: skip
    print("| backend | aggregate SPS | steps | rollout / update s (both groups) | wall (s) |"
          " projected Table 1 (231 x 1M steps) |\n|---|---|---|---|---|---|")  # fmt: skip
    for backend in args.backends:
        start = time.time()
        m = run_side_by_side(backend, args.iterations)
        hours = SWEEP_RUNS * SWEEP_STEPS / m.sps / 3600
        print(
            f"| {backend} | {m.sps:,.0f} | {m.steps:,} | {m.rollout_seconds:.1f} / "
            f"{m.update_seconds:.1f} | {time.time() - start:.0f} | {hours:.1f} h |",
            flush=True,
        )


if __name__ == "__main__":
    main(parse_args(Args, validate))
