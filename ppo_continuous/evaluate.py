"""Play a saved continuous-control agent: ``python ppo_continuous/evaluate.py runs/<run> --episodes 10``.

The observation statistics saved with the checkpoint are loaded and frozen, so the agent sees
observations scaled exactly as at the end of training.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from gymnasium.error import DependencyNotInstalled

from common.checkpoint import restore_normalizers
from common.cli import exit_usage, parse_args
from common.evaluation import EvalArgs, open_evaluation, report, validate_eval
from common.validation import missing_dependency_message
from ppo_continuous.train import Agent, Args, freeze_normalizers, make_envs, normalizers


def evaluate(eval_args: EvalArgs) -> dict:
    # PPO's, TRPO's and CEM's checkpoints hold the same network (train.Agent) and env settings
    # (CEM's policy is deterministic: evaluate it with --deterministic).
    trainers = ("ppo_continuous", "trpo_continuous", "cem_continuous")
    ckpt, device, videos = open_evaluation(eval_args, trainers)
    saved = {k: v for k, v in ckpt.args.items() if k in Args.__dataclass_fields__}
    args = replace(Args(**saved), num_envs=1, capture_video=eval_args.capture_video)
    try:
        envs = make_envs(
            args, videos and str(videos), eval_args.render, video_episodes=eval_args.episodes
        )
    except DependencyNotInstalled as err:
        exit_usage(f"checkpoint: {missing_dependency_message(args.env_id, err)}")
    stats = normalizers(envs)
    restore_normalizers(stats, ckpt.data)
    freeze_normalizers(envs)  # evaluation must not adapt the statistics it was trained with
    agent = Agent.for_envs(envs).to(device)
    agent.load_state_dict(ckpt.data["model"])
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
    evaluate(parse_args(EvalArgs, validate_eval))
