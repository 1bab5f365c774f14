"""CEM's resident memory after a few and after many iterations: it must stay flat.

    python scripts/bench_cem_memory.py                     # 50 and 1,000 iterations, Pendulum-v1
    python scripts/bench_cem_memory.py --iterations 50 200 --env-id InvertedPendulum-v5

Each count is one ``ppo_continuous/cem.py`` run in a process of its own (short members, so an
iteration is quick: ``--steps-per-member`` env steps for each of ``--population`` members), and
its peak resident set size is read from the kernel when it exits (``os.wait4``'s ``ru_maxrss``).
A search distribution that kept its autograd history grew by a population of parameter vectors
per iteration; ``docs/benchmarks/cem_memory.md`` records the figures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import tyro

REPO = Path(__file__).resolve().parents[1]


@dataclass
class MemoryArgs:
    iterations: tuple[int, ...] = (50, 1000)
    """CEM iterations of each measured run"""
    env_id: str = "Pendulum-v1"
    """a small continuous env"""
    population: int = 20
    """CEM's default population"""
    steps_per_member: int = 10
    """env steps each member is scored on (short, so 1,000 iterations take a minute or two)"""


def peak_rss_mb(command: list[str]) -> float:
    """Run ``command`` to its end; its peak resident set size in MB (exit code checked)."""
    with tempfile.TemporaryFile() as stderr:  # a file, not a pipe: the progress bar would fill one
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace")[-2000:]
            sys.exit(f"{' '.join(command)} exited {process.returncode}: {tail}")
    return usage.ru_maxrss / 1024  # kilobytes on Linux


def main(args: MemoryArgs) -> None:
    num_steps = args.population * args.steps_per_member
    with tempfile.TemporaryDirectory(prefix="cem-memory-") as runs:
        for iterations in args.iterations:
            command = [
                sys.executable, str(REPO / "ppo_continuous" / "cem.py"), "--env-id", args.env_id,
                "--population", str(args.population), "--num-steps", str(num_steps),
                "--total-timesteps", str(iterations * num_steps), "--save-every", "0",
                "--runs-dir", runs,
            ]  # fmt: skip
            print(
                f"{iterations:>6} iterations: {peak_rss_mb(command):7.1f} MB peak RSS", flush=True
            )


if __name__ == "__main__":
    main(tyro.cli(MemoryArgs))
