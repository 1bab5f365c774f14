"""EnvPool's MuJoCo -v5 tasks are gymnasium's: same state, same actions, same steps (issue 33).

The proof ``--env-backend envpool`` rests on (docs/benchmarks/envpool.md has the figures). envpool
is a dev dependency: CI (which installs ``.[dev]``) always runs this; elsewhere, without envpool,
it is skipped.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from conftest import run_trainer

if os.environ.get("PPO_REQUIRE_ENVPOOL"):  # .ci/run sets it: a missing envpool fails, not skips
    import envpool  # noqa: F401
else:
    pytest.importorskip("envpool")

import records  # noqa: E402
from check_envpool_equivalence import compare  # noqa: E402

from common.cli import UsageError  # noqa: E402
from ppo_continuous import train  # noqa: E402
from ppo_continuous.envpool_envs import (  # noqa: E402
    SUPPORTED_ENV_IDS,
    EnvPoolRunEnvs,
    EnvPoolVectorEnv,
    check_backend,
)
from ppo_continuous.run_envs import RunEnvs  # noqa: E402

HORIZON = 1000  # steps per task; episodes that end start again from the same state on both sides
OBS_TOLERANCE = 1e-9  # measured: at most 3e-10 (Swimmer), 1e-12 or less on the others
# EnvPool returns float32 rewards (gymnasium float64): one float32 rounding, 6e-8 relative.
REWARD_TOLERANCE = 1e-6
# HalfCheetah's dynamics amplify any rounding difference tenfold every ~8 steps (below); for
# this many steps from the initial state the two agree within OBS_TOLERANCE.
HALF_CHEETAH_STEPS = 40


@pytest.mark.parametrize("env_id", [e for e in SUPPORTED_ENV_IDS if e != "HalfCheetah-v5"])
def test_same_observations_rewards_and_ends_step_by_step(env_id):
    result = compare(env_id, HORIZON, seed=0)
    assert result.steps == HORIZON
    assert result.steps_within(OBS_TOLERANCE) == HORIZON, max(result.obs_diff)
    assert max(result.reward_diff) <= REWARD_TOLERANCE
    assert result.end_mismatches == 0
    assert result.episodes >= 1  # terminations or the time limit were compared too


def test_half_cheetah_agrees_until_its_dynamics_amplify_rounding_as_gymnasium_alone_does():
    """gymnasium against gymnasium whose initial qpos moved by 1e-15 drifts apart just as
    gymnasium and EnvPool do (docs/benchmarks/envpool.md): rounding, not a different task."""
    envpool = compare("HalfCheetah-v5", 200, seed=0)
    assert envpool.steps_within(OBS_TOLERANCE) >= HALF_CHEETAH_STEPS
    assert max(envpool.reward_diff[:HALF_CHEETAH_STEPS]) <= REWARD_TOLERANCE
    assert envpool.end_mismatches == 0
    rounding = compare("HalfCheetah-v5", 200, seed=0, chaos=True)
    for tolerance in (1e-9, 1e-6, 1e-3):  # measured: 46/46, 60/54, 113/113 steps
        assert envpool.steps_within(tolerance) >= 0.8 * rounding.steps_within(tolerance)


@pytest.mark.parametrize(("obs_clip", "norm_reward"), [(10.0, True), (0.5, False)])
def test_batched_envs_give_the_gymnasium_backends_numbers(obs_clip, norm_reward):
    """EnvPoolRunEnvs against RunEnvs (the trainer's wrapper stack's numbers), both without reset
    noise: normalised observations and rewards, ends, autoresets and episode statistics; under
    today's setup and with two of the 2017 code's choices (--obs-clip, --no-norm-reward)."""
    num_runs, gamma = 3, 0.99
    reference = RunEnvs("Hopper-v5", num_runs, gamma, obs_clip, norm_reward)
    for env in reference.envs:
        env.unwrapped._reset_noise_scale = 0.0
    pool = EnvPoolRunEnvs(
        "Hopper-v5", num_runs, gamma, obs_clip, norm_reward, reset_noise_scale=0.0
    )
    seeds = [1, 2, 3]
    np.testing.assert_array_equal(reference.reset(seeds)[0], pool.reset(seeds)[0])
    rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(300):  # random Hopper episodes last ~20 steps: many ends and autoresets
        # beyond the action bounds, so ClipAction is exercised
        actions = rng.uniform(-1.5, 1.5, (num_runs, 3)).astype(np.float32)
        obs_a, rewards_a, terminated_a, truncated_a, info_a = reference.step(actions)
        obs_b, rewards_b, terminated_b, truncated_b, info_b = pool.step(actions)
        np.testing.assert_allclose(obs_b, obs_a, rtol=0, atol=1e-6)  # float32, a few ulps
        np.testing.assert_allclose(rewards_b, rewards_a, rtol=1e-6)
        assert np.abs(obs_b).max() <= obs_clip
        np.testing.assert_array_equal(terminated_b, terminated_a)
        np.testing.assert_array_equal(truncated_b, truncated_a)
        assert ("final_info" in info_b) == ("final_info" in info_a)
        if "final_info" in info_a:
            ended_a, ended_b = info_a["final_info"]["_episode"], info_b["final_info"]["_episode"]
            np.testing.assert_array_equal(ended_b, ended_a)
            a, b = info_a["final_info"]["episode"], info_b["final_info"]["episode"]
            np.testing.assert_array_equal(b["l"], a["l"])
            np.testing.assert_allclose(b["r"], a["r"], rtol=1e-6)
            episodes += int(ended_a.sum())
    assert episodes > 10
    assert ("return_rms" in pool.state_dict()) == norm_reward
    for name in ("obs_rms", "return_rms") if norm_reward else ("obs_rms",):
        for key, value in reference.state_dict()[name].items():
            np.testing.assert_allclose(pool.state_dict()[name][key], value, rtol=1e-6)
    reference.close()
    pool.close()


def test_envpool_backend_refuses_an_untested_task_in_one_line(tmp_path):
    result = run_trainer(
        "ppo_continuous", "--env-id", "Pendulum-v1", "--env-backend", "envpool",
        cwd=tmp_path, script="batched.py", timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--env-backend" in result.stderr and "Pendulum-v1" in result.stderr


def test_envpool_backend_without_envpool_is_a_usage_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "envpool", None)  # import envpool now raises ImportError
    with pytest.raises(UsageError, match="--env-backend: envpool is not installed"):
        check_backend("envpool", "Hopper-v5")
    check_backend("gymnasium", "Pendulum-v1")  # the default backend needs nothing more


def test_real_group_on_envpool_finishes_every_run(tmp_path):
    """batched.py --env-backend envpool end to end: 2 Hopper runs, 2 iterations of 128 steps."""
    result = run_trainer(
        "ppo_continuous", "--env-id", "Hopper-v5", "--env-backend", "envpool",
        "--exp-names", "clip_0.2", "no_clip", "--seeds", "1", "2", "--objectives", "clip", "none",
        "--num-steps", "128", "--num-minibatches", "2", "--update-epochs", "1",
        "--total-timesteps", "256", "--runs-dir", str(tmp_path / "runs"),
        cwd=tmp_path, script="batched.py", timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*/summary.json")]
    assert len(summaries) == 2
    for summary in summaries:
        assert summary["status"] == "finished" and summary["global_step"] == 256
        assert summary["episodes"] >= 1  # random-ish Hopper episodes end within 128 steps
        assert summary["env_backend"] == "envpool"  # and so the record's row (records.py)
    row, _ = records.result_of_run(next((tmp_path / "runs").glob("*__no_clip__*")))
    assert (row["runner"], row["env_backend"]) == ("batched", "envpool")


def test_single_trainer_envs_give_the_gymnasium_stacks_numbers():
    """train.make_envs on envpool against its gymnasium wrapper stack, no reset noise on either:
    observations, rewards, ends, final_info's episodes, final_obs and the normaliser statistics."""
    args = train.Args(env_id="Hopper-v5", num_envs=3)
    reference = train.make_envs(args)
    for env in reference.envs:
        env.unwrapped._reset_noise_scale = 0.0
    pool = EnvPoolVectorEnv("Hopper-v5", 3, args.gamma, reset_noise_scale=0.0)
    np.testing.assert_allclose(pool.reset(seed=1)[0], reference.reset(seed=1)[0], atol=1e-6)
    assert train.env_dims(pool) == train.env_dims(reference)
    rng = np.random.default_rng(1)
    ended = 0
    for _ in range(200):
        actions = rng.uniform(-1.5, 1.5, (3, 3)).astype(np.float32)
        obs_a, rewards_a, terminated_a, truncated_a, info_a = reference.step(actions)
        obs_a = obs_a.copy()  # copy=False: the next step overwrites it
        obs_b, rewards_b, terminated_b, truncated_b, info_b = pool.step(actions)
        np.testing.assert_allclose(obs_b, obs_a, rtol=0, atol=1e-6)
        np.testing.assert_allclose(rewards_b, rewards_a, rtol=1e-6)
        np.testing.assert_array_equal(terminated_b, terminated_a)
        np.testing.assert_array_equal(truncated_b, truncated_a)
        assert ("final_info" in info_b) == ("final_info" in info_a)
        if "final_info" in info_a:
            mask = info_a["final_info"]["_episode"]
            np.testing.assert_array_equal(info_b["final_info"]["_episode"], mask)
            for key in ("r", "l"):
                np.testing.assert_allclose(info_b["final_info"]["episode"][key][mask],
                                           info_a["final_info"]["episode"][key][mask], rtol=1e-6)  # fmt: skip
            for i in np.flatnonzero(mask):
                np.testing.assert_allclose(
                    info_b["final_obs"][i], info_a["final_obs"][i], atol=1e-6
                )
            ended += int(mask.sum())
    assert ended > 10
    stats_a, stats_b = train.normalizers(reference), train.normalizers(pool)
    assert stats_b.keys() == stats_a.keys()
    for name, rms in stats_a.items():
        for field in ("mean", "var", "count"):
            np.testing.assert_allclose(
                getattr(stats_b[name], field), getattr(rms, field), rtol=1e-6
            )
    reference.close()
    pool.close()


def test_single_trainer_on_envpool_resumes_with_its_normalisers(tmp_path):
    """train.py --env-backend envpool: a run, then --resume for more steps; the checkpoint's
    per-env statistics are restored (the resumed run's counts go on from the saved ones)."""
    import torch

    flags = ["--env-id", "Hopper-v5", "--env-backend", "envpool", "--num-envs", "2",
             "--num-steps", "64", "--num-minibatches", "2", "--update-epochs", "1",
             "--runs-dir", str(tmp_path / "runs")]  # fmt: skip
    result = run_trainer("ppo_continuous", *flags, "--total-timesteps", "256", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    saved = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)["normalizers"]
    # 2 envs x 128 steps: each env's statistics saw its own 128 steps and its resets
    first_count = float(saved["obs_rms_0"]["count"])
    assert first_count > 128
    result = run_trainer("ppo_continuous", "--resume", str(run_dir), "--total-timesteps", "512",
                         cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    resumed = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)["normalizers"]
    assert float(resumed["obs_rms_0"]["count"]) > first_count + 128  # continued, not restarted
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["global_step"] == 512
    assert summary["env_backend"] == "envpool"


def test_learning_comparison_groups_runs_by_backend_and_tests_the_gap(tmp_path, capsys):
    """--learning: per task and backend, the seeds' scores; the gap between the two backends."""
    from check_envpool_equivalence import compare_learning

    scores = {"envpool": [1000.0, 1100.0, 1200.0], "gymnasium": [500.0, 510.0, 520.0]}
    for backend, values in scores.items():
        for seed, value in enumerate(values, start=1):
            run_dir = tmp_path / f"Hopper-v5__clip__{seed}__{backend}"
            run_dir.mkdir()
            summary = {"env_id": "Hopper-v5", "exp_name": "clip", "seed": seed, "status": "finished",
                       "env_backend": backend, "mean_return_last_100": value,
                       "mean_return_all_training": value / 2}  # fmt: skip
            (run_dir / "summary.json").write_text(json.dumps(summary))
    compare_learning(tmp_path)
    out = capsys.readouterr().out
    assert (
        "| Hopper-v5 | envpool | 1, 2, 3 | 1000.0, 1100.0, 1200.0 | 1100.0 +- 100.0 | 550.0 +- 50.0 |"
        in out
    )
    assert "| Hopper-v5 | gymnasium | 1, 2, 3 | 500.0, 510.0, 520.0 | 510.0 +- 10.0 |" in out
    assert "Hopper-v5, last 100 episodes, envpool - gymnasium: +590.0 +- 58.0" in out
    assert "NOT within noise" in out  # p < 0.05 for a gap of 10 standard errors
