"""Play a saved Atari agent: ``python ppo_atari/evaluate.py runs/<run> --episodes 10``.

An episode here is a whole game (all lives), scored unclipped, as in training's logged returns.
"""

from __future__ import annotations

import torch

from common.checkpoint import load_model
from common.cli import parse_args
from common.distributions import sample_categorical
from common.evaluation import EvalArgs, open_evaluation, report, validate_eval
from ppo_atari.envs import GameTracker, atari_spec, make_atari_envs
from ppo_atari.train import Agent


def evaluate(eval_args: EvalArgs) -> dict:
    ckpt, device, videos = open_evaluation(eval_args, "ppo_atari")
    saved = ckpt.args
    envs = make_atari_envs(
        atari_spec(saved["env_id"]), 1, saved["env_backend"], eval_args.seed, False,
        videos and str(videos), render=eval_args.render,
        fire_on_life_loss=saved.get("fire_on_life_loss"),
    )  # fmt: skip
    agent = Agent(int(envs.single_action_space.n)).to(device).to(memory_format=torch.channels_last)
    load_model(agent, ckpt)
    agent.eval()

    games = GameTracker(1)
    obs, info = envs.reset(seed=eval_args.seed)
    games.reset(info)
    returns: list[float] = []
    while len(returns) < eval_args.episodes:
        with torch.inference_mode():
            logits, _ = agent(torch.as_tensor(obs, device=device))
        action = logits.argmax(-1) if eval_args.deterministic else sample_categorical(logits)
        obs, reward, terminated, truncated, info = envs.step(action.cpu().numpy())
        _, _, finished = games.step(reward, terminated, truncated, info)
        returns.extend(float(game_return) for _, game_return, _ in finished)
    envs.close()
    return report(returns, eval_args, ckpt, videos)


if __name__ == "__main__":
    evaluate(parse_args(EvalArgs, validate_eval))
