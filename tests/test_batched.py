"""The batched runner (ppo_continuous/batched.py) learns per step as separate trainer runs do.

One batched update must equal, to float tolerance, R separate updates made with the single
trainer's update code (same batch, same minibatch orders, same initial weights), for every
objective, with gradient clipping and Adam; a run that diverges is frozen while the others go on;
a real group writes per-run folders the results record reads, and resumes after SIGTERM.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO

from common.distributions import gaussian_kl
from common.losses import LossConfig, OldPolicy, normalize_advantages, ppo_loss
from common.objectives import adapt_kl_beta
from ppo_continuous import batched, run_envs, train

sys.path.insert(0, str(REPO / "scripts"))
import records  # noqa: E402

OBS_DIM, ACT_DIM, T, MINIBATCHES, EPOCHS = 5, 3, 64, 4, 3
# (objective, clip_coef, kl_beta, seed): every objective, two clip ranges, a second seed.
RUNS = [("clip", 0.2, 1.0, 1), ("clip", 0.1, 1.0, 2), ("none", 0.2, 1.0, 3),
        ("fixed_kl", 0.2, 3.0, 4), ("adaptive_kl", 0.2, 0.5, 5)]  # fmt: skip


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread, as the runner uses: on a busy 2-core machine more threads only spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_batch(agents: list[train.Agent]) -> batched.Batch:
    """A random rollout per run, with log pi_old, values and the old distribution from each agent."""
    gen = torch.Generator().manual_seed(0)
    num = len(agents)
    obs = torch.randn(num, T, OBS_DIM, generator=gen, dtype=torch.float64)
    actions = torch.randn(num, T, ACT_DIM, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        outs = [agent.evaluate(obs[r], actions[r]) for r, agent in enumerate(agents)]
    log_probs, _, values, means, log_stds = (torch.stack([o[i] for o in outs]) for i in range(5))
    advantages = torch.randn(num, T, generator=gen, dtype=torch.float64) * 3
    returns = values + torch.randn(num, T, generator=gen, dtype=torch.float64)
    return batched.Batch(obs, actions, log_probs, values, means, log_stds.clone(), advantages,
                         returns)  # fmt: skip


def trainer_update(agent, optimizer, batch, r, order, objective, clip_coef, kl_beta, max_grad_norm,
                   clip_vloss):  # fmt: skip
    """Run r's update exactly as ppo_continuous/train.py's step 4 does it (num_envs = 1)."""
    for epoch_order in order:
        for mb in epoch_order.split(T // MINIBATCHES):
            new_log_prob, entropy, new_values, mean, log_std = agent.evaluate(
                batch.obs[r][mb], batch.actions[r][mb]
            )
            old = OldPolicy(batch.log_probs[r], batch.values[r], batch.returns[r])
            loss, _ = ppo_loss(
                LossConfig(objective, vf_coef=0.5, ent_coef=0.01, clip_vloss=clip_vloss),
                old[mb], normalize_advantages(batch.advantages[r][mb]), new_log_prob, new_values,
                entropy, gaussian_kl(batch.means[r][mb], batch.log_stds[r][mb], mean, log_std),
                clip_coef=clip_coef, kl_beta=kl_beta,
            )  # fmt: skip
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(agent.parameters(), max_grad_norm)
            if not (torch.isfinite(loss) and torch.isfinite(norm)):
                return  # the trainer's divergence check: stop before the step
            optimizer.step()


def adam(parameters) -> torch.optim.Adam:
    return torch.optim.Adam(parameters, lr=3e-3, eps=1e-5, fused=True)


def batched_update(agents, batch, order, max_grad_norm, clip_vloss, active=None):
    group = batched.BatchedAgent(agents)
    optimizer = adam(group.parameters())
    run_args = [train.Args(objective=o, clip_coef=c, kl_beta=b, seed=s) for o, c, b, s in RUNS]
    coefs = batched.coefficients(run_args, [b for _, _, b, _ in RUNS])
    active = torch.ones(len(RUNS), dtype=torch.bool) if active is None else active
    _, frozen = batched.update(
        group, optimizer, batch, coefs, order, active, num_minibatches=MINIBATCHES, vf_coef=0.5,
        ent_coef=0.01, clip_vloss=clip_vloss, norm_adv=True, max_grad_norm=max_grad_norm,
    )  # fmt: skip
    return group, optimizer, frozen


def fresh_agents() -> list[train.Agent]:
    return [a.double() for a in batched.initial_agents([s for *_, s in RUNS], OBS_DIM, ACT_DIM)]


def assert_same_agent(got: train.Agent, want: train.Agent, atol: float = 1e-9) -> None:
    for (name, g), w in zip(got.state_dict().items(), want.state_dict().values(), strict=True):
        assert torch.allclose(g.double(), w, rtol=0, atol=atol), (name, (g - w).abs().max())


@pytest.mark.parametrize(("max_grad_norm", "clip_vloss"), [(0.05, True), (1e9, False)])
def test_one_batched_update_equals_separate_trainer_updates(max_grad_norm, clip_vloss):
    """Each run's weights after a batched update of 3 epochs x 4 minibatches equal the weights the
    trainer's update gives that run alone, for clip (two epsilons), none, fixed_kl and adaptive_kl;
    with a gradient clip that bites (0.05) and without, with and without value clipping."""
    agents = fresh_agents()
    batch = make_batch(agents)
    order = batched.random_permutations(EPOCHS, len(RUNS), T)
    group, optimizer, frozen = batched_update(agents, batch, order, max_grad_norm, clip_vloss)
    assert not frozen.any()
    for r, (objective, clip_coef, kl_beta, _) in enumerate(RUNS):
        reference = fresh_agents()[r]
        trainer_update(reference, adam(reference.parameters()), batch, r, order[:, r], objective,
                       clip_coef, kl_beta, max_grad_norm, clip_vloss)  # fmt: skip
        assert_same_agent(group.agent(r).double(), reference)
        moved = [
            (a - b).abs().max()
            for a, b in zip(reference.parameters(), agents[r].parameters(), strict=True)
        ]
        assert max(moved) > 1e-4  # the update did something


def test_a_diverged_run_is_frozen_and_the_others_learn_on():
    """A NaN in one run's advantages freezes that run's weights where the trainer would have
    stopped (the last update before the first non-finite loss) and leaves every other run's
    update exactly as if it ran alone."""
    agents = fresh_agents()
    batch = make_batch(agents)
    order = batched.random_permutations(EPOCHS, len(RUNS), T)
    # A sample of run 2 that the second epoch's second minibatch holds: it diverges mid-update.
    batch.advantages[2, order[1, 2, T // MINIBATCHES]] = float("nan")
    group, _, frozen = batched_update(agents, batch, order, 0.5, False)
    assert frozen.tolist() == [False, False, True, False, False]
    learned = group.agent(2).actor_log_std
    assert not torch.equal(learned, agents[2].actor_log_std)  # it learned before diverging
    for r in range(len(RUNS)):
        objective, clip_coef, kl_beta, _ = RUNS[r]
        reference = fresh_agents()[r]
        trainer_update(reference, adam(reference.parameters()), batch, r, order[:, r], objective,
                       clip_coef, kl_beta, 0.5, False)  # fmt: skip
        assert_same_agent(group.agent(r).double(), reference)


def test_networks_start_as_the_trainer_builds_them_and_evaluate_alike():
    """Run r's initial weights are the trainer's for its seed (torch.manual_seed, then Agent), and
    the batched forward pass gives each run's Agent.evaluate."""
    seeds = [7, 1, 3]
    group = batched.BatchedAgent(batched.initial_agents(seeds, OBS_DIM, ACT_DIM))
    obs, actions = torch.randn(3, 10, OBS_DIM), torch.randn(3, 10, ACT_DIM)
    got = group.evaluate(obs, actions)
    for r, seed in enumerate(seeds):
        torch.manual_seed(seed)
        reference = train.Agent(OBS_DIM, ACT_DIM)
        assert_same_agent(group.agent(r).double(), reference.double(), atol=0)
        want = reference.float().evaluate(obs[r], actions[r])
        for g, w in zip(got, want, strict=True):
            assert torch.allclose(g[r], w, atol=1e-6)


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Pendulum-v1"])
def test_run_envs_give_exactly_the_trainers_wrapped_envs_numbers(env_id):
    """RunEnvs (all runs' normalisations at once) against train.make_envs (gymnasium's wrappers
    in a same-step-autoreset SyncVectorEnv): the same observations, rewards, ends and episode
    returns, bit for bit, over Hopper's many terminations and Pendulum's float32 observations and
    time-limit truncations."""
    num, gamma = 3, 0.99
    reference = train.make_envs(train.Args(env_id=env_id, num_envs=num, gamma=gamma))
    envs = run_envs.RunEnvs(env_id, num, gamma)
    seeds = [5, 9, 11]
    assert np.array_equal(reference.reset(seed=seeds)[0], envs.reset(seeds))
    rng = np.random.default_rng(0)
    ends = {"terminated": 0, "truncated": 0}
    for _ in range(420):
        actions = rng.normal(size=(num, *envs.action_shape)).astype(np.float32) * 2
        obs, rewards, terminated, truncated, info = reference.step(actions)
        got = envs.step(actions)
        for want, have in zip((obs, rewards, terminated, truncated), got[:4], strict=True):
            assert np.array_equal(want, have)
        assert got[0].dtype == obs.dtype == np.float32
        ended = np.flatnonzero(info["final_info"]["_episode"]) if "final_info" in info else []
        assert sorted(got[4]) == list(ended)
        for i in ended:
            episode = info["final_info"]["episode"]
            assert got[4][i] == (episode["r"][i], episode["l"][i])
        ends["terminated"] += int(terminated.sum())
        ends["truncated"] += int(truncated.sum())
    assert ends["terminated" if env_id == "Hopper-v5" else "truncated"] >= 6


def test_adaptive_betas_follow_the_papers_rule_per_run():
    runs = [train.Args(objective=o, kl_target=0.01) for o in ("adaptive_kl", "adaptive_kl", "fixed_kl", "adaptive_kl")]  # fmt: skip
    kls = [0.001, 0.1, 0.1, 0.01]
    got = batched.adapt_kl_betas(runs, [1.0, 1.0, 3.0, 2.0], kls)
    assert got == [adapt_kl_beta(1.0, 0.001, 0.01), adapt_kl_beta(1.0, 0.1, 0.01), 3.0, 2.0]
    assert got == [0.5, 2.0, 3.0, 2.0]


def test_shared_flags_have_the_trainers_defaults():
    """Every hyperparameter both CLIs have defaults to the same value."""
    trainer = train.Args()
    for f in fields(batched.Args):
        if f.name in batched.TRAINER_FIELDS:
            assert getattr(batched.Args(), f.name) == getattr(trainer, f.name), f.name


def run_group(*flags: str, runs_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "ppo_continuous" / "batched.py"), "--env-id", "Pendulum-v1",
         "--exp-names", "clip_0.2", "no_clip", "adaptive_kl_0.01", "--seeds", "1", "2", "3",
         "--objectives", "clip", "none", "adaptive_kl", "--num-steps", "128",
         "--num-minibatches", "2", "--update-epochs", "2", "--runs-dir", str(runs_dir),
         *flags],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
    )  # fmt: skip


def test_real_group_writes_run_folders_and_resumes_after_sigterm(runs_dir: Path):
    """Pendulum, 3 runs: SIGTERM stops after an iteration with a group checkpoint and per-run
    summaries saying ``stopped``; --resume finishes every run in its own folder, which the results
    record reads (status, steps, scores, curve, commit, host)."""
    group_dir = runs_dir / "group"
    proc = run_group("--total-timesteps", "3200", "--group-dir", str(group_dir), runs_dir=runs_dir)
    deadline = time.time() + 60
    while not (group_dir / "group.json").is_file() and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-3000:]
    assert "continue with --resume" in out
    folders = sorted(d for d in runs_dir.iterdir() if d.name.startswith("Pendulum-v1__"))
    assert [d.name.split("__")[1:3] for d in folders] == [
        ["adaptive_kl_0.01", "3"], ["clip_0.2", "1"], ["no_clip", "2"]]  # fmt: skip
    stopped = [json.loads((d / "summary.json").read_text()) for d in folders]
    assert {s["status"] for s in stopped} == {"stopped"}
    assert len({s["global_step"] for s in stopped}) == 1 and stopped[0]["global_step"] < 3200

    resumed = run_group("--resume", str(group_dir), runs_dir=runs_dir)
    out, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, out[-3000:]
    assert sorted(d for d in runs_dir.iterdir() if d.name.startswith("Pendulum-v1__")) == folders
    for folder, before in zip(folders, stopped, strict=True):
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["runner"] == "batched"
        # 200-step episodes; the resume resets the envs (as the trainer's does), losing at most one.
        assert summary["global_step"] == 3200 and summary["episodes"] in (15, 16)
        assert summary["episodes"] > before["episodes"]
        assert summary["objective"] == before["objective"]
        row, curve = records.result_of_run(folder)
        assert row["status"] == "finished" and row["variant"] == before["exp_name"]
        assert row["commit"] != "unknown" and row["host"] != "unknown"
        assert len(curve["steps"]) == summary["episodes"] and curve["steps"][-1] <= 3200


LAUNCHER = str(REPO / "scripts" / "benchmark.py")


def test_launcher_dry_run_groups_table1_by_env(tmp_path):
    """--batched --dry-run: Table 1's 231 runs as 7 groups of 33 (one per env), each group's
    per-run lists holding exactly its env's variants x seeds and the preset's shared flags."""
    result = subprocess.run(
        [sys.executable, LAUNCHER, "--preset", "paper-table1", "--batched", "--dry-run",
         "--runs-dir", str(tmp_path / "runs"), "--record-dir", str(tmp_path / "rec")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("[group")]
    assert len(lines) == 7 and all(line.startswith("[group 33]") for line in lines)
    hopper = next(line.split() for line in lines if "--env-id Hopper-v5" in line)
    seeds = hopper[hopper.index("--seeds") + 1 : hopper.index("--seeds") + 34]
    names = hopper[hopper.index("--exp-names") + 1 : hopper.index("--exp-names") + 34]
    assert sorted(zip(names, map(int, seeds), strict=True)) == sorted(
        (v, s) for v in batched_variants() for s in (1, 2, 3)
    )
    assert (
        "--no-clip-vloss" in hopper and hopper[hopper.index("--total-timesteps") + 1] == "1000000"
    )


def batched_variants() -> list[str]:
    import presets

    return list(presets.TABLE1_VARIANTS)


def test_launcher_batched_smoke_sweep_records_every_run(tmp_path):
    """The smoke preset (2 envs x 2 seeds) with --batched: two processes, four run folders, four
    record rows with runner ``batched``; a re-launch plans nothing."""
    flags = [sys.executable, LAUNCHER, "--preset", "smoke", "--batched", "--workers", "2",
             "--runs-dir", str(tmp_path / "runs"), "--record-dir", str(tmp_path / "rec"),
             "--extra=--total-timesteps 512"]  # fmt: skip
    result = subprocess.run(flags, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 batched groups" in result.stdout
    record = records.Record.load(tmp_path / "rec")
    assert sorted(record.rows) == [("InvertedPendulum-v5", "clip_0.2", 1), ("InvertedPendulum-v5", "clip_0.2", 2),
                                   ("Pendulum-v1", "clip_0.2", 1), ("Pendulum-v1", "clip_0.2", 2)]  # fmt: skip
    for row in record.rows.values():
        assert row["runner"] == "batched" and row["status"] == "finished"
        assert row["global_step"] == 512
    again = subprocess.run(flags, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert again.returncode == 0 and "4 in the record" in again.stdout and "0 new" in again.stdout
