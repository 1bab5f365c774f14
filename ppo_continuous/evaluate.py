"""Play a saved continuous-control agent: ``python ppo_continuous/evaluate.py runs/<run> --episodes 10``.

The observation statistics saved with the checkpoint are loaded and frozen, so the agent sees
observations scaled exactly as at the end of training. A CEM checkpoint plays deterministically
(the actor's mean) unless ``--no-deterministic`` is given.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

import torch
from gymnasium.error import DependencyNotInstalled

from common.checkpoint import BATCHED_RUN_TRAINER, load_model, restore_normalizers
from common.cli import exit_usage, flags_on_command_line, parse_args
from common.evaluation import EvalArgs, open_evaluation, report, validate_eval
from common.validation import missing_dependency_message
from ppo_continuous.train import Agent, Args, freeze_normalizers, make_envs, normalizers


def evaluate(eval_args: EvalArgs, given_flags: Collection[str] = ()) -> dict:
    """Play the checkpoint; ``given_flags``: the flags named on the command line (a flag not
    named there counts as given only when its value is not the default)."""
    # PPO's, TRPO's and CEM's checkpoints, and each run's of a batched group, hold the same
    # network (train.Agent) and env settings.
    trainers = ("ppo_continuous", "trpo_continuous", "cem_continuous", BATCHED_RUN_TRAINER)
    ckpt, device, videos = open_evaluation(eval_args, trainers)
    if ckpt.data["trainer"] == "cem_continuous" and not eval_args.deterministic:
        # CEM's policy is the actor's mean (its log std was never trained): play it so by
        # default; an explicit --no-deterministic still samples.
        eval_args = replace(eval_args, deterministic="deterministic" not in given_flags)
    saved = {k: v for k, v in ckpt.args.items() if k in Args.__dataclass_fields__}
    # gymnasium whatever the run trained on: it renders, and EnvPool's tasks are the same
    args = replace(
        Args(**saved), num_envs=1, capture_video=eval_args.capture_video, env_backend="gymnasium"
    )
    try:
        envs = make_envs(
            args, videos and str(videos), eval_args.render, video_episodes=eval_args.episodes
        )
    except DependencyNotInstalled as err:
        exit_usage(f"checkpoint: {missing_dependency_message(args.env_id, err)}")
    stats = normalizers(envs)
    restore_normalizers(stats, ckpt.data, ckpt)
    freeze_normalizers(envs)  # evaluation must not adapt the statistics it was trained with
    agent = Agent.for_envs(envs).to(device)
    load_model(agent, ckpt)
    agent.eval()

    returns: list[float] = []
    obs, _ = envs.reset(seed=eval_args.seed)
    while len(returns) < eval_args.episodes:
        with torch.no_grad():
            action, mean = agent.act(torch.as_tensor(obs, dtype=torch.float32, device=device))
        chosen = mean if eval_args.deterministic else action
        obs, _, _, _, info = envs.step(chosen.cpu().numpy())
        if "final_info" in info:
            returns.extend(
                float(r) for r in info["final_info"]["episode"]["r"][info["final_info"]["_episode"]]
            )
    envs.close()
    return report(returns, eval_args, ckpt, videos)


if __name__ == "__main__":
    evaluate(parse_args(EvalArgs, validate_eval), flags_on_command_line())
