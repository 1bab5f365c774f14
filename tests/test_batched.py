"""The batched runner (ppo_continuous/batched.py) is the single trainer, run R times at once.

The central test runs three runs (three objectives, three seeds, non-default shared flags) through
``batched.main`` and each of them alone through ``train.train`` (the trainer's own loop, with a
stand-in for its ``Run``), with the same action noise and minibatch orders injected into both,
and compares weights, normalisation statistics, betas and every logged metric. Any change to the
trainer's rollout, GAE, update, loss, KL rules or logging that the batched path does not share
makes them differ. Around it: a diverged run is frozen while the others go on; bad input is
refused as the trainer refuses it; a real group resumes after SIGTERM, exits 3 when a run
diverged, and leaves run folders that ``evaluate.py`` plays.
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
import records
import torch
from conftest import REPO
from test_validation import BAD_VALUES, refused

from common.algorithms import make_optimizer
from common.checkpoint import RunState
from common.cli import parse_args
from common.distributed import World
from common.episodes import EpisodeLog
from common.losses import OldPolicy
from common.tracking import Tracker
from ppo_continuous import batched, run_envs, train

OBS_DIM, ACT_DIM = 5, 3


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread, as the runner uses: on a busy 2-core machine more threads only spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# The batched runner against the trainer's own loop.
# ---------------------------------------------------------------------------------------------

# (exp_name, seed, objective, clip_coef, kl_beta): every kind of surrogate, its own seed.
RUNS = [("clip", 1, "clip", 0.2, 1.0), ("none", 2, "none", 0.3, 1.0),
        ("adaptive_kl", 3, "adaptive_kl", 0.2, 0.5)]  # fmt: skip
# Shared flags, many away from the defaults, so the batched path must honour them; each code-level
# flag (common.args.CodeLevelArgs and the trainer's own) off its default in one of the two settings.
SHARED = {"env_id": "Pendulum-v1", "num_steps": 128, "num_minibatches": 4, "update_epochs": 2,
          "total_timesteps": 3 * 128, "ent_coef": 0.01, "gae_lambda": 0.9, "learning_rate": 1e-3}  # fmt: skip
SETTINGS = {
    "ppo2": {"clip_vloss": False, "max_grad_norm": 0.3, "obs_clip": 5.0, "init": "normc",
             "optimizer_eps": 1e-8, "anneal_lr": False},
    "2017": {"norm_reward": False, "adv_norm_scope": "batch", "max_grad_norm": 0.0,
             "vf_coef": 1.0, "gamma": 0.98},
}  # fmt: skip
ITERATIONS = 3
REAL_RANDN_LIKE = torch.randn_like


class Draws:
    """Every random draw of the rollouts and updates, made in advance: the action noise of each
    step and the sample order of each epoch, (R, ...) for the group; run r alone gets row r."""

    def __init__(self, num_runs: int) -> None:
        gen = torch.Generator().manual_seed(123)
        steps, epochs, size = ITERATIONS * SHARED["num_steps"], SHARED["update_epochs"], SHARED["num_steps"]  # fmt: skip
        self.noise = torch.randn(steps, num_runs, 1, generator=gen)
        self.orders = torch.rand(ITERATIONS * epochs, num_runs, size, generator=gen).argsort(-1)
        self.run: int | None = None  # None: the group draws; r: run r alone
        self.steps = self.epochs = 0

    def randn_like(self, mean: torch.Tensor) -> torch.Tensor:
        if mean.shape != (len(self.noise[0]) if self.run is None else 1, 1):  # not an action
            return REAL_RANDN_LIKE(mean)  # e.g. --init normc's weights
        noise = self.noise[self.steps]
        self.steps += 1
        return noise if self.run is None else noise[self.run : self.run + 1]

    def order(self, size: int, device=None) -> torch.Tensor:
        order = self.orders[self.epochs]
        self.epochs += 1
        return order if self.run is None else order[self.run]

    def for_run(self, run: int | None) -> Draws:
        self.run, self.steps, self.epochs = run, 0, 0
        return self


class ReferenceRun:
    """What ``train.train`` uses of ``common.run.Run``, recording what it would write."""

    def __init__(self, args: train.Args) -> None:
        self.device, self.world = torch.device("cpu"), World()
        self.state = RunState(kl_beta=args.kl_beta, episodes=EpisodeLog())
        self.env_seed, self.total_envs = args.seed, args.num_envs
        self.num_iterations = args.total_timesteps // args.num_steps
        self.metrics: dict[int, dict[str, float]] = {}

    def iterations(self):
        for iteration in range(1, self.num_iterations + 1):
            yield iteration
            self.state.iteration = iteration

    def log_episode(self, episode_return: float, episode_length: int) -> None:
        step = self.state.global_step
        self.metrics.setdefault(step, {})["charts/episodic_return"] = float(episode_return)

    def log_iteration(self, metrics: dict[str, float]) -> None:
        self.metrics.setdefault(self.state.global_step, {}).update(metrics)


def trainer_alone(
    r: int, shared: dict, draws: Draws, monkeypatch
) -> tuple[train.Agent, dict, ReferenceRun]:
    """Run r of RUNS through the trainer's own ``train.train``, as ``train.main`` sets it up."""
    exp_name, seed, objective, clip_coef, kl_beta = RUNS[r]
    args = train.Args(**shared, exp_name=exp_name, seed=seed, objective=objective,
                      clip_coef=clip_coef, kl_beta=kl_beta)  # fmt: skip
    torch.manual_seed(seed)
    envs = train.make_envs(args)
    agent = train.Agent.for_envs(envs, args.init)
    optimizer = make_optimizer(args.optimizer, agent.parameters(), args.learning_rate,
                               args.rmsprop_alpha, eps=args.optimizer_eps, fused=True)  # fmt: skip
    run = ReferenceRun(args)
    draws.for_run(r)
    with monkeypatch.context() as patch:
        patch.setattr(torch, "randperm", draws.order)
        train.train(args, run, envs, agent, optimizer)
    return agent, train.normalizers(envs), run


def group_of_three(tmp_path: Path, shared: dict, draws: Draws, monkeypatch) -> tuple[dict, dict]:
    """RUNS as one group through ``batched.main``; its checkpoint and each run's logged metrics."""
    logged: dict[str, dict[int, dict[str, float]]] = {}

    def record(tracker, metrics, step):
        logged.setdefault(tracker.run_dir.name.split("__")[1], {}).setdefault(step, {}).update(
            metrics
        )

    names, seeds, objectives, clips, betas = zip(*RUNS, strict=True)
    args = batched.Args(**shared, exp_names=names, seeds=seeds, objectives=objectives,
                        clip_coefs=clips, kl_betas=betas, runs_dir=str(tmp_path / "runs"),
                        group_dir=str(tmp_path / "group"), save_every=0)  # fmt: skip
    batched.validate(args)
    draws.for_run(None)
    with monkeypatch.context() as patch:
        patch.setattr(Tracker, "log", record)
        patch.setattr(batched, "random_orders", lambda num_runs: draws.order)
        batched.main(args)
    return torch.load(tmp_path / "group" / "checkpoints" / "latest.pt", weights_only=True), logged


def close(got: float, want: float) -> bool:
    return abs(got - want) <= 1e-5 + 1e-4 * abs(want)


@pytest.mark.parametrize("setting", SETTINGS)
def test_a_group_of_three_runs_equals_the_trainer_run_three_times(setting, tmp_path, monkeypatch):
    """Weights, normalisation statistics, betas and every logged metric of each run, after three
    iterations of the batched runner, equal the trainer's for that run alone (float rounding:
    the batched matrix products round differently from one run's)."""
    draws = Draws(len(RUNS))
    monkeypatch.setattr(torch, "randn_like", draws.randn_like)  # both paths' action noise
    shared = {**SHARED, **SETTINGS[setting]}
    group, logged = group_of_three(tmp_path, shared, draws, monkeypatch)
    group_agent = batched.BatchedAgent([train.Agent(3, 1) for _ in RUNS])
    group_agent.load_state_dict(group["model"])
    assert draws.steps == ITERATIONS * SHARED["num_steps"]
    for r, (name, *_) in enumerate(RUNS):
        agent, normalizers, reference = trainer_alone(r, shared, draws, monkeypatch)
        assert draws.steps == ITERATIONS * SHARED["num_steps"]
        for (key, got), want in zip(group_agent.agent(r).state_dict().items(),
                                    agent.state_dict().values(), strict=True):  # fmt: skip
            assert torch.allclose(got, want, rtol=1e-4, atol=1e-5), (name, key)
        initial = batched.initial_agents([RUNS[r][1]], 3, 1, shared.get("init", "orthogonal"))[0]
        moved = [float((a - b).abs().max()) for a, b in zip(agent.state_dict().values(), initial.state_dict().values(), strict=True)]  # fmt: skip
        assert max(moved) > 1e-3  # it learned: the comparison is not of two untouched networks
        assert sorted(normalizers) == sorted(
            f"{kind}_0" for kind in group["normalizers"] if "rms" in kind
        )
        for kind in ("obs_rms", "return_rms")[: len(normalizers)]:
            saved, live = group["normalizers"][kind], normalizers[f"{kind}_0"]
            assert np.allclose(saved["mean"][r].numpy(), live.mean, rtol=1e-5, atol=1e-6), kind
            assert np.allclose(saved["var"][r].numpy(), live.var, rtol=1e-5, atol=1e-6), kind
            assert float(saved["count"][r]) == live.count
        assert group["runs"][r]["kl_beta"] == reference.state.kl_beta
        assert sorted(logged[name]) == sorted(reference.metrics)  # the same steps logged
        for step, metrics in reference.metrics.items():
            for key, want in metrics.items():
                assert close(logged[name][step][key], want), (name, step, key)
    assert group["runs"][2]["kl_beta"] != RUNS[2][4]  # the adaptive beta moved
    assert any("charts/episodic_return" in m for m in logged["clip"].values())


def test_a_diverged_run_is_frozen_and_the_others_learn_on():
    """A NaN in one run's advantages freezes that run's weights where the trainer would have
    stopped (the update before the first non-finite loss), and the other runs' updates are
    the ones they get with every run learning."""
    runs = [train.Args(objective=o, seed=s, num_steps=64, num_minibatches=4, update_epochs=3)
            for o, s in [("clip", 1), ("none", 2), ("adaptive_kl", 3)]]  # fmt: skip
    orders = torch.rand(3, len(runs), 64, generator=torch.Generator().manual_seed(0)).argsort(-1)

    def updated(poison: bool):
        agent = batched.BatchedAgent(batched.initial_agents([1, 2, 3], OBS_DIM, ACT_DIM))
        batch = random_batch(agent, poison)
        shared, config = batched.group_args(runs)
        step = batched.GroupStep(torch.ones(len(runs), dtype=torch.bool))
        epochs = iter(orders)
        optimizer = torch.optim.Adam(agent.parameters(), lr=3e-3, eps=1e-5)
        train.update(agent, optimizer, batch, shared, config, torch.ones(3, 1), 0, step=step,
                     draw_order=lambda size: next(epochs))  # fmt: skip
        return agent, step

    clean, _ = updated(poison=False)
    poisoned, step = updated(poison=True)
    assert step.newly_frozen.tolist() == [False, True, False]
    initial = batched.BatchedAgent(batched.initial_agents([1, 2, 3], OBS_DIM, ACT_DIM))
    log_std = poisoned.actor_log_std.detach()
    assert not torch.equal(log_std[1], initial.actor_log_std[1])  # it learned before diverging
    assert torch.isfinite(log_std).all()
    for r in (0, 2):
        for got, want in zip(poisoned.parameters(), clean.parameters(), strict=True):
            assert torch.equal(got[r], want[r])


def random_batch(agent: batched.BatchedAgent, poison: bool) -> train.Batch:
    """A random rollout per run, (R, T, ...); with ``poison``, a NaN advantage in run 1 that the
    second epoch's second minibatch holds."""
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(3, 64, OBS_DIM, generator=gen)
    actions = torch.randn(3, 64, ACT_DIM, generator=gen)
    with torch.no_grad():
        old = agent.evaluate(obs, actions)
        log_stds = old.log_stds.clone()
    advantages = torch.randn(3, 64, generator=gen) * 3
    if poison:
        orders = torch.rand(3, 3, 64, generator=torch.Generator().manual_seed(0)).argsort(-1)
        advantages[1, orders[1, 1, 16]] = float("nan")
    returns = old.values + torch.randn(3, 64, generator=gen)
    return train.Batch(obs, actions, old.means, log_stds, advantages,
                       OldPolicy(old.log_probs, old.values, returns))  # fmt: skip


def assert_same_agent(got: train.Agent, want: train.Agent) -> None:
    for (name, g), w in zip(got.state_dict().items(), want.state_dict().values(), strict=True):
        assert torch.equal(g, w), name


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
        assert_same_agent(group.agent(r), reference)
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
    assert np.array_equal(reference.reset(seed=seeds)[0], envs.reset(seed=seeds)[0])
    rng = np.random.default_rng(0)
    ends = {"terminated": 0, "truncated": 0}
    for _ in range(420):
        actions = rng.normal(size=(num, *envs.action_shape)).astype(np.float32) * 2
        obs, rewards, terminated, truncated, info = reference.step(actions)
        got = envs.step(actions)
        for want, have in zip((obs, rewards, terminated, truncated), got[:4], strict=True):
            assert np.array_equal(want, have)
        assert got[0].dtype == obs.dtype == np.float32
        assert ("final_info" in info) == ("final_info" in got[4])
        if "final_info" in info:
            want, have = info["final_info"], got[4]["final_info"]
            assert np.array_equal(want["_episode"], have["_episode"])
            ended = want["_episode"]
            for key in ("r", "l"):
                assert np.array_equal(want["episode"][key][ended], have["episode"][key][ended])
        ends["terminated"] += int(terminated.sum())
        ends["truncated"] += int(truncated.sum())
    assert ends["terminated" if env_id == "Hopper-v5" else "truncated"] >= 6


def test_shared_flags_have_the_trainers_defaults():
    """Every hyperparameter both CLIs have defaults to the same value."""
    trainer = train.Args()
    for f in fields(batched.Args):
        if f.name in batched.TRAINER_FIELDS:
            assert getattr(batched.Args(), f.name) == getattr(trainer, f.name), f.name


# ---------------------------------------------------------------------------------------------
# Bad input, divergence, resume and playable runs: the trainer's behaviour.
# ---------------------------------------------------------------------------------------------

# The trainer's flags this runner does not have: one env per run, no warm start, no early stop,
# the group's one checkpoint.
NOT_BATCHED = {"--num-envs", "--keep-checkpoints", "--init-from", "--target-kl"}
BATCHED_PROBES = [probe for probe in BAD_VALUES if not NOT_BATCHED & set(probe[0])] + [
    (["--learning-rate", "nan"], "--learning-rate", "finite"),
    (["--clip-coef", "inf"], "--clip-coef", "finite"),
    (["--kl-beta", "nan"], "--kl-beta", "finite"),
    (["--exp-name", "x/../../escaped"], "--exp-name", "path"),
]


@pytest.mark.parametrize(("argv", "flag", "allowed"), BATCHED_PROBES)
def test_every_bad_value_the_trainer_refuses_the_batched_runner_refuses_alike(
    capsys, argv, flag, allowed, runs_dir
):
    """The trainer's validation table (tests/test_validation.py) through both CLIs: the same
    one line, a per-run flag named as the batched runner spells it (--clip-coef: --clip-coefs)."""
    want = refused(capsys, "ppo_continuous", argv, runs_dir)
    plural = {**batched.PLURAL, "--exp-name": "--exp-names"}
    with pytest.raises(SystemExit) as stop:
        parse_args(batched.Args, batched.validate,
                   ["--env-id", "Pendulum-v1", "--num-steps", "256", "--num-minibatches", "4",
                    "--runs-dir", str(runs_dir), *(plural.get(a, a) for a in argv)])  # fmt: skip
    assert stop.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0] == want.replace(f"{flag}:", f"{plural.get(flag, flag)}:", 1)


@pytest.mark.parametrize("folder_flag", ["--runs-dir", "--group-dir"])
def test_a_folder_under_a_file_is_refused_in_one_line(capsys, folder_flag, tmp_path):
    a_file = tmp_path / "README.md"
    a_file.write_text("not a folder")
    with pytest.raises(SystemExit) as stop:
        parse_args(batched.Args, batched.validate,
                   ["--env-id", "Pendulum-v1", "--runs-dir", str(tmp_path / "runs"),
                    folder_flag, str(a_file / "x")])  # fmt: skip
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: {folder_flag}: ")


def small_group(tmp_path: Path, **flags) -> batched.Args:
    return batched.Args(env_id="Pendulum-v1", exp_names=("a", "b", "c"), seeds=(1, 2, 3),
                        objectives=("clip", "none", "adaptive_kl"), num_steps=64,
                        num_minibatches=2, update_epochs=1, total_timesteps=128,
                        runs_dir=str(tmp_path / "runs"), group_dir=str(tmp_path / "group"),
                        **flags)  # fmt: skip


def run_folders(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "runs").glob("Pendulum-v1__*"))


def test_a_diverged_run_makes_the_group_exit_3_and_keeps_finite_checkpoints(
    tmp_path, monkeypatch, capsys
):
    """Run b's loss turns NaN: b is frozen and written as diverged, a and c finish, the group
    exits 3 (as the trainer does) with one line, and every run's checkpoint is finite."""
    loss_of = train.minibatch_loss

    def nan_for_b(*args, **kwargs):
        loss, stats = loss_of(*args, **kwargs)
        return loss * torch.tensor([1.0, float("nan"), 1.0]), stats

    monkeypatch.setattr(train, "minibatch_loss", nan_for_b)
    with pytest.raises(SystemExit) as stop:
        batched.main(small_group(tmp_path))
    assert stop.value.code == 3
    err = capsys.readouterr().err
    assert "diverged: 1 of 3 runs (Pendulum-v1__b__2__" in err
    statuses = [
        json.loads((d / "summary.json").read_text())["status"] for d in run_folders(tmp_path)
    ]
    assert statuses == ["finished", "diverged", "finished"]
    for folder in run_folders(tmp_path):
        model = torch.load(folder / "checkpoints" / "latest.pt", weights_only=True)["model"]
        assert all(torch.isfinite(t).all() for t in model.values())
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the stop request was removed


def test_resume_refuses_a_changed_flag_and_each_run_plays_in_evaluate(tmp_path, capsys):
    """A finished group: ``--resume G --total-timesteps N`` is refused in one line naming the
    flag (it would otherwise do nothing); ``evaluate.py`` plays a run folder of the group."""
    batched.main(small_group(tmp_path))
    capsys.readouterr()  # the group's progress bar
    resume = batched.Args(resume=str(tmp_path / "group"), total_timesteps=256)
    with pytest.raises(SystemExit) as stop:
        batched.main(resume, given_flags={"resume", "total_timesteps"})
    assert stop.value.code == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: --total-timesteps: cannot be changed when resuming a group")
    assert "\n" not in line
    played = subprocess.run(
        [sys.executable, str(REPO / "ppo_continuous" / "evaluate.py"), str(run_folders(tmp_path)[2]),
         "--episodes", "1", "--out", str(tmp_path / "eval.json")],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert played.returncode == 0, played.stderr[-2000:]
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["episodes"] == 1 and result["run_name"].startswith("Pendulum-v1__c__3__")


def test_a_runs_checkpoint_is_refused_by_train_resume_in_one_line(tmp_path, capsys):
    batched.main(small_group(tmp_path))
    with pytest.raises(SystemExit) as stop:
        train.main(train.Args(resume=str(run_folders(tmp_path)[0])), {"resume"})
    assert stop.value.code == 2
    assert "ppo_continuous.batched_run" in capsys.readouterr().err


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


def test_launcher_dry_run_groups_the_ablation_by_setting(tmp_path):
    """--batched --dry-run of the ablation, whose variants differ in shared flags (annealing, reward
    normalisation, ...): one group per env and setting, each holding no clipping and clip 0.2 under
    one 2017 choice (or none) x 3 seeds, every new run in exactly one group."""
    result = subprocess.run(
        [sys.executable, LAUNCHER, "--preset", "paper-table1-ablation", "--batched", "--dry-run",
         "--runs-dir", str(tmp_path / "runs"), "--record-dir", str(tmp_path / "rec")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    new = int(result.stdout.split(" new")[0].rsplit(" ", 1)[-1])
    lines = [line.split() for line in result.stdout.splitlines() if line.startswith("[group")]
    planned = []
    for words in lines:
        names = words[words.index("--exp-names") + 1 : words.index("--seeds")]
        choices = {name.partition("+")[2] for name in names}
        assert len(names) == 6 and len(choices) == 1, names
        assert (
            sorted(name.partition("+")[0] for name in names) == ["clip_0.2"] * 3 + ["no_clip"] * 3
        )
        seeds = words[words.index("--seeds") + 1 : words.index("--seeds") + 7]
        env = words[words.index("--env-id") + 1]
        planned += [(env, name, seed) for name, seed in zip(names, seeds, strict=True)]
    assert len(planned) == len(set(planned)) == new and len(lines) == new // 6


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


def test_the_launcher_records_the_finished_runs_of_a_group_that_exits_3(tmp_path, monkeypatch):
    """A group with a diverged run exits 3; the launcher takes each run's outcome from its own
    summary: the finished runs are recorded as done, the diverged one as diverged, none failed."""
    from types import SimpleNamespace

    import batched_groups
    import benchmark

    def planned(seed: int, status: str):
        return SimpleNamespace(env_id="Pendulum-v1", variant="clip_0.2", seed=seed, state="new",
                               runs_dir=tmp_path, status=lambda: status)  # fmt: skip

    runs = [planned(1, "finished"), planned(2, "diverged"), planned(3, "finished")]
    group = batched_groups.Group("Pendulum-v1", tuple(runs), tmp_path / "group", ["true"])
    monkeypatch.setattr(batched_groups, "make_groups", lambda *args: [group])
    recorded = []
    launcher = SimpleNamespace(
        launch=None, TrainerJob=lambda command, log: None, outcome_of=benchmark.outcome_of,
        make_executor=lambda args, log_dir: SimpleNamespace(submit=lambda job: "handle"),
        _finished_code=lambda handle, slurm: 3, record_run=lambda record, run: recorded.append(run),
    )  # fmt: skip
    args = SimpleNamespace(group_size=0, workers=1, slurm_partition=None)
    failed = batched_groups.run_batched(args, runs, tmp_path, None, launcher)
    assert failed == 0 and recorded == runs


def test_a_stopped_group_is_planned_as_a_group_again_not_as_single_resumes(tmp_path):
    """A batched run stopped by SIGTERM has its own checkpoint, written by the batched runner,
    which the single trainer refuses: under --batched the launcher plans it into a group again
    (the same runs give the same group folder, which resumes), never as a single-trainer resume."""
    import batched_groups
    import benchmark
    import presets

    runs_dir = tmp_path / "runs"
    for seed in (1, 2):
        folder = runs_dir / f"Pendulum-v1__clip_0.2__{seed}__1"
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "checkpoints" / "latest.pt").write_bytes(b"batched")
        (folder / "summary.json").write_text(json.dumps({"runner": "batched", "status": "stopped"}))
    preset = presets.presets()["smoke"]
    args = benchmark.Args(preset="smoke", batched=True, env_ids=("Pendulum-v1",))
    planned = benchmark.plan(args, preset, runs_dir)
    assert [run.state for run in planned] == ["new", "new"]
    assert all("--resume" not in run.command for run in planned)
    group_dir = batched_groups.group_folder(runs_dir, "Pendulum-v1", planned)
    (group_dir / "checkpoints").mkdir(parents=True)
    (group_dir / "checkpoints" / "latest.pt").write_bytes(b"group")
    (group,) = batched_groups.make_groups(planned, runs_dir)
    assert group.command[-2:] == ["--resume", str(group_dir)]
    # Without --batched the single trainer is asked, and refuses in one line (exit 2).
    single = benchmark.plan(
        benchmark.Args(preset="smoke", env_ids=("Pendulum-v1",)), preset, runs_dir
    )
    assert [run.state for run in single] == ["resume", "resume"]


def test_a_group_killed_before_its_summary_is_planned_as_a_group_again(tmp_path):
    """A group killed outright (SIGKILL, a lost machine) leaves its runs a checkpoint written by
    the batched runner and no summary.json: the launcher still plans them into a group (whose
    checkpoint resumes them), never as single-trainer resumes, which the trainer refuses."""
    import benchmark
    import presets

    from common.checkpoint import BATCHED_RUN_TRAINER

    runs_dir = tmp_path / "runs"
    for seed, trainer in ((1, BATCHED_RUN_TRAINER), (2, "ppo_continuous")):
        folder = runs_dir / f"Pendulum-v1__clip_0.2__{seed}__1"
        (folder / "checkpoints").mkdir(parents=True)
        torch.save({"trainer": trainer}, folder / "checkpoints" / "latest.pt")
    preset = presets.presets()["smoke"]
    args = benchmark.Args(preset="smoke", batched=True, env_ids=("Pendulum-v1",))
    planned = benchmark.plan(args, preset, runs_dir)
    # seed 1 ran in a group; seed 2 is a single-trainer run, which resumes itself
    assert [run.state for run in planned] == ["new", "resume"]
    assert "--resume" not in planned[0].command and "--resume" in planned[1].command


def test_a_resume_takes_a_no_flag_given_again_at_its_saved_value(capsys):
    """The launcher resumes a group with the group's whole command, ``--no-anneal-lr`` included:
    both readings of that flag (``no_anneal_lr``, ``anneal_lr``) reach the check, which crashed on
    the one that is no field; the field's saved value is accepted, another refused in one line."""
    from common.cli import flags_on_command_line

    saved = batched.Args(anneal_lr=False)
    given = flags_on_command_line(["--no-anneal-lr", "--resume", "group"])
    batched.refuse_changed_flags(batched.Args(anneal_lr=False, resume="group"), saved, given)
    with pytest.raises(SystemExit) as stop:
        batched.refuse_changed_flags(batched.Args(anneal_lr=True, resume="group"), saved, given)
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith("error: --anneal-lr: cannot be changed when resuming")
