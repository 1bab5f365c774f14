"""Does stepping half the games while the policy runs on the other half speed up the Atari rollout?

    python scripts/bench_atari_overlap.py                  # Breakout, 8 games x 128 steps, 9 repeats

ale-py's C++ env steps asynchronously: ``send`` starts a step in its own thread and ``recv`` waits
for it. The trainer's rollout sends every game its action, waits for all of them, then runs the
policy on all 8 observations, so the emulator and the network take turns. Split in two halves, the
network can run on one half while the other half's games step:

    sync:   send 8 -> recv 8 -> policy(8)
    halves: recv A -> policy(A) -> send A -> recv B -> policy(B) -> send B

Both loops here use what the trainer uses (one ale-py env per game, frame skip 4, max-pool, grey
84x84, a 4-frame stack; the trainer's Nature CNN on one torch thread, sampling its action), with
random weights and without the life protocol, which is the same in both. The two loops alternate,
``--repeats`` times each; the script prints each timing, the medians and their ratio.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

from common.distributions import sample_categorical
from ppo_atari.envs import atari_spec, single_game
from ppo_atari.train import Agent

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Args:
    env_id: str = "BreakoutNoFrameskip-v4"
    """the Atari game"""
    num_envs: int = 8
    """games, split into two halves for the overlapped loop"""
    num_steps: int = 128
    """agent steps per game per timing (one rollout of the trainer)"""
    repeats: int = 9
    """timings of each loop, alternated"""


def make_games(env_id: str, count: int) -> list:
    games = [single_game(atari_spec(env_id), stack_num=4) for _ in range(count)]
    for seed, game in enumerate(games):
        game.reset(seed=seed)
    return games


def policy(agent: Agent, observations: list[np.ndarray]) -> np.ndarray:
    with torch.inference_mode():
        logits, _ = agent(torch.from_numpy(np.concatenate(observations)))
        return sample_categorical(logits).numpy()


def send(games: list, actions: np.ndarray) -> None:
    for game, action in zip(games, actions, strict=True):
        game.send(np.array([action], dtype=np.int64))


def recv(games: list) -> list[np.ndarray]:
    return [game.recv()[0] for game in games]


def sync_rollout(agent: Agent, games: list, steps: int) -> float:
    """The trainer's order: all games step, then the policy runs on all of them."""
    observations = [game.reset()[0] for game in games]
    start = time.perf_counter()
    for _ in range(steps):
        send(games, policy(agent, observations))
        observations = recv(games)
    return time.perf_counter() - start


def halves_rollout(agent: Agent, games: list, steps: int) -> float:
    """One half's games step while the policy runs on the other half."""
    half = len(games) // 2
    groups = (games[:half], games[half:])
    observations = [[game.reset()[0] for game in group] for group in groups]
    start = time.perf_counter()
    send(groups[0], policy(agent, observations[0]))
    for step in range(steps):
        send(groups[1], policy(agent, observations[1]))  # half A's games are stepping meanwhile
        observations[0] = recv(groups[0])
        if step + 1 < steps:
            send(groups[0], policy(agent, observations[0]))  # half B's games are stepping meanwhile
        observations[1] = recv(groups[1])
    return time.perf_counter() - start


def main(args: Args) -> None:
    torch.set_num_threads(1)  # as the trainer's rollout does on a CPU
    torch.manual_seed(0)
    agent = Agent(4).to(memory_format=torch.channels_last)
    games = make_games(args.env_id, args.num_envs)
    steps = args.num_envs * args.num_steps
    timings: dict[str, list[float]] = {"sync": [], "halves": []}
    for warm_up in (sync_rollout, halves_rollout):
        warm_up(agent, games, 8)
    for repeat in range(args.repeats):
        for name, loop in (("sync", sync_rollout), ("halves", halves_rollout)):
            seconds = loop(agent, games, args.num_steps)
            timings[name].append(seconds)
            print(
                f"repeat {repeat + 1}: {name:>6} {seconds * 1000:7.1f} ms ({steps / seconds:,.0f} steps/s)",
                flush=True,
            )
    sync, halves = (statistics.median(timings[name]) for name in ("sync", "halves"))
    print(
        f"\n{args.env_id}, {args.num_envs} games x {args.num_steps} steps, medians of {args.repeats}:"
    )
    print(
        f"  sync   (trainer's order)  {sync * 1000:7.1f} ms per rollout, {steps / sync:,.0f} steps/s"
    )
    print(
        f"  halves (overlapped)       {halves * 1000:7.1f} ms per rollout, {steps / halves:,.0f} steps/s"
    )
    print(f"  halves / sync time: {halves / sync:.3f}")
    for game in games:
        game.close()


if __name__ == "__main__":
    main(tyro.cli(Args))
