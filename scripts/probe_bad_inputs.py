"""Run every bad input of issues 14 and 32 through the trainers and scripts; one line per case.

    python scripts/probe_bad_inputs.py            # a few minutes; the cases run one per core

Each case is a real command in a temporary folder. A case passes when the command ends with the
expected exit code (2: bad input, refused in one ``error:`` line; 3: the run diverged; 0: accepted)
and prints no traceback. The exit code is the number of cases that did not pass.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMALL = {
    "ppo_atari": ["--num-envs", "2", "--num-steps", "32", "--num-minibatches", "2"],
    "ppo_continuous": ["--env-id", "Pendulum-v1", "--num-steps", "256", "--num-minibatches", "4"],
}
BAD_FLAGS = [
    ["--learning-rate", "nan"], ["--learning-rate", "inf"], ["--ent-coef", "nan"],
    ["--vf-coef", "nan"], ["--max-grad-norm", "nan"], ["--gamma", "inf"], ["--target-kl", "nan"],
    ["--gamma", "1.5"], ["--gamma", "-0.1"], ["--gae-lambda", "1.5"], ["--clip-coef", "0"],
    ["--clip-coef", "-0.1"], ["--max-grad-norm", "-1"], ["--kl-target", "0"], ["--kl-beta", "0"],
    ["--total-timesteps", "10"], ["--save-every", "-1"], ["--keep-checkpoints", "-1"],
    ["--num-minibatches", "3"], ["--seed", "-1"], ["--resume", "runs/a", "--init-from", "runs/b"],
    ["--runs-dir", "{file}/runs"], ["--runs-dir", "/proc/ppo-runs"],
    ["--exp-name", "x/../../escaped"], ["--exp-name", "two\nlines"], ["--exp-name", "x" * 300],
]  # fmt: skip
# Damage one level down in a real checkpoint (issue 32, case 6): name -> what it does to the data.
DAMAGE = {
    "args without num_steps": lambda d: d["args"].pop("num_steps"),
    "a model tensor removed": lambda d: d["model"].pop(next(iter(d["model"]))),
    "normalizers={}": lambda d: d.update(normalizers={}),
}


@dataclass
class Case:
    name: str
    command: list[str]
    expected: int
    quiet: bool = False  # no warning may be printed either


def script(trainer: str, name: str = "train.py") -> list[str]:
    return [sys.executable, str(REPO / trainer / name)]


def run(case: Case, cwd: Path) -> bool:
    return report(*judge(case, cwd))


def judge(case: Case, cwd: Path) -> tuple[bool, str, int | None, str]:
    """Run one case: whether it passed, its name, its exit code and what it said."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    try:
        result = subprocess.run(case.command, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
        code, err = result.returncode, result.stderr
    except subprocess.TimeoutExpired:
        code, err = None, "timed out"
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    if code == 2:
        said = lines[-1] if lines else ""
        one_line = len(lines) == 1 and said.startswith("error:")
    else:
        said = next((line for line in lines if line.startswith(("diverged:", "error:"))), "")
        one_line = True
    if case.quiet and "Warning" in err:
        one_line, said = False, next(line for line in lines if "Warning" in line)
    ok = code == case.expected and one_line and "Traceback" not in err
    return ok, case.name, code, said


def report(ok: bool, name: str, code: int | None, said: str) -> bool:
    print(f"{'PASS' if ok else 'FAIL'}  {name:60.60s} exit {code}  {said}", flush=True)
    return ok


def make_checkpoints(folder: Path) -> tuple[Path, Path]:
    """A short real Pendulum run, and a checkpoint file holding only a format version."""
    runs = folder / "made"
    subprocess.run([*script("ppo_continuous"), *SMALL["ppo_continuous"], "--total-timesteps", "256",
                    "--update-epochs", "1", "--runs-dir", str(runs)],
                   cwd=folder, capture_output=True, check=True)  # fmt: skip
    (run_dir,) = runs.iterdir()
    import torch

    stub = folder / "stub.pt"
    torch.save({"format_version": 1}, stub)
    return run_dir, stub


def damaged_checkpoints(folder: Path, run_dir: Path) -> dict[str, Path]:
    """A copy of the run's checkpoint per kind of ``DAMAGE``, each in a run folder of its own."""
    import torch

    damaged = {}
    for k, (name, damage) in enumerate(DAMAGE.items()):
        data = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
        damage(data)
        path = folder / f"damaged_{k}" / "checkpoints" / "latest.pt"
        path.parent.mkdir(parents=True)
        torch.save(data, path)
        damaged[name] = path
    return damaged


def read_only(folder: Path, command: list[str]) -> list[str] | None:
    """``command`` run where ``folder`` is read-only: a read-only bind mount in a mount namespace
    of its own (root writes into a chmod-ed folder), a chmod for another user; None if neither."""
    mount = ["unshare", "-rm", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(folder)]
    if subprocess.run([*mount, "true"], capture_output=True).returncode == 0:
        return [*mount, *command]
    if os.geteuid() == 0:
        return None
    folder.chmod(0o555)
    return command


def cases(folder: Path, run_dir: Path, stub: Path) -> list[Case]:
    a_file = folder / "a_file"
    a_file.write_text("not a folder")
    out = []
    for trainer in ("ppo_atari", "ppo_continuous"):
        runs = ["--runs-dir", str(folder / "runs")]
        for flags in BAD_FLAGS:
            flags = [f.replace("{file}", str(a_file)) for f in flags]
            argv = [*SMALL[trainer], *runs, *flags]
            out.append(Case(f"{trainer} {' '.join(flags)}", [*script(trainer), *argv], 2))
        out.append(Case(f"{trainer} --resume <only a format version>",
                        [*script(trainer), "--resume", str(stub)], 2))  # fmt: skip
    out.append(Case("ppo_continuous --env-id BreakoutNoFrameskip-v4",
                    [*script("ppo_continuous"), "--env-id", "BreakoutNoFrameskip-v4"], 2))  # fmt: skip
    out.append(Case("ppo_continuous --resume RUN --total-timesteps 100 (one batch is 256)",
                    [*script("ppo_continuous"), "--resume", str(run_dir), "--total-timesteps", "100"], 2))  # fmt: skip
    out.append(Case("ppo_continuous evaluate.py RUN --episodes 0",
                    [*script("ppo_continuous", "evaluate.py"), str(run_dir), "--episodes", "0"], 2))  # fmt: skip
    out.append(Case("ppo_continuous evaluate.py RUN --out <under a file>",
                    [*script("ppo_continuous", "evaluate.py"), str(run_dir), "--out", f"{a_file}/e.json"], 2))  # fmt: skip
    out.append(Case("ppo_continuous evaluate.py RUN --out <a folder>",
                    [*script("ppo_continuous", "evaluate.py"), str(run_dir), "--episodes", "1", "--out", str(folder)], 0))  # fmt: skip
    cem = script("ppo_continuous", "cem.py")
    small_cem = ["--env-id", "Pendulum-v1", "--num-steps", "200", "--runs-dir", str(folder / "cem")]
    out.append(Case("cem --num-envs 4", [*cem, *small_cem, "--num-envs", "4"], 2))
    out.append(Case("cem Pendulum, 2 iterations: no warning printed",
                    [*cem, *small_cem, "--total-timesteps", "400"], 0, quiet=True))  # fmt: skip
    for name, path in damaged_checkpoints(folder, run_dir).items():
        out.append(Case(f"ppo_continuous --resume <{name}>",
                        [*script("ppo_continuous"), "--resume", str(path)], 2))  # fmt: skip
        out.append(Case(f"ppo_continuous evaluate.py <{name}>",
                        [*script("ppo_continuous", "evaluate.py"), str(path), "--out", str(folder)], 2))  # fmt: skip
    read_only_run = folder / "read_only_run"
    shutil.copytree(run_dir, read_only_run)
    command = read_only(
        read_only_run, [*script("ppo_continuous", "evaluate.py"), str(read_only_run)]
    )
    if command is not None:
        out.append(Case("ppo_continuous evaluate.py <read-only run folder>", command, 2))
    diverge = [
        "--learning-rate",
        "1e6",
        "--save-every",
        "1",
        "--runs-dir",
        str(folder / "diverged"),
    ]
    out.append(Case("ppo_continuous Pendulum --learning-rate 1e6 (diverges)",
                    [*script("ppo_continuous"), "--env-id", "Pendulum-v1", "--num-steps", "1024",
                     "--total-timesteps", "8192", *diverge], 3))  # fmt: skip
    out.append(Case("ppo_atari Breakout --learning-rate 1e6 (diverges)",
                    [*script("ppo_atari"), "--num-envs", "2", "--num-steps", "32", "--num-minibatches", "1",
                     "--update-epochs", "1", "--total-timesteps", "640", *diverge], 3))  # fmt: skip
    return out


def report_and_sweep_cases(folder: Path) -> list[Case]:
    """Issue 32, cases 5 and 8: report.py on damaged or episode-less records, benchmark.py --extra."""
    import json

    runs, cut, random_csv = folder / "no-episode-runs", folder / "cut-runs", folder / "random.csv"
    random_csv.write_text("env_id,score\nPendulum-v1,-1600\n")
    for seed in (1, 2):
        for parent, text in ((runs, None), (cut, '{"env_id": "Pendu')):
            summary = {"env_id": "Pendulum-v1", "exp_name": "clip_0.2", "seed": seed, "finished": True,
                       "mean_return_last_100": None, "mean_return_all_training": None}  # fmt: skip
            (parent / f"run{seed}").mkdir(parents=True)
            (parent / f"run{seed}" / "summary.json").write_text(text or json.dumps(summary))
    record = folder / "records" / "smoke"
    record.mkdir(parents=True)
    (record / "runs.csv").write_text("env_id,variant,seed,status,mean_return_last_100\n"
                                     "Pendulum-v1,clip_0.2,1,finished,-900\n")  # fmt: skip
    (record / "curves.jsonl").write_text(
        '{"env_id": "Pendulum-v1", "variant": "clip_0.2", "seed": 1, "ste'
    )
    report = [
        sys.executable,
        str(REPO / "scripts" / "report.py"),
        "--random-scores",
        str(random_csv),
    ]
    sweep = [sys.executable, str(REPO / "scripts" / "benchmark.py"), "--preset", "smoke",
             "--runs-dir", str(folder / "sweep")]  # fmt: skip
    return [
        Case("report.py --runs-dir <runs without an episode>",
             [*report, "--runs-dir", str(runs), "--out", str(folder / "r1")], 0),
        Case("report.py --runs-dir <only cut summary.json files>",
             [*report, "--runs-dir", str(cut), "--out", str(folder / "r2")], 2),
        Case("report.py --record-dir <a cut curves.jsonl line> (warns)",
             [*report, "--record-dir", str(record.parent), "--out", str(folder / "r3")], 0),
        Case("benchmark.py --record-dir <a cut curves.jsonl line>",
             [*sweep, "--record-dir", str(record), "--dry-run"], 2),
        Case("benchmark.py --extra='--runs-dir elsewhere --seed 5'",
             [*sweep, "--extra=--runs-dir elsewhere --seed 5"], 2),
        Case("benchmark.py --extra='--gamma 1.5' --dry-run", [*sweep, "--extra=--gamma 1.5", "--dry-run"], 2),
        Case("benchmark.py --extra='--objective none' (a variant's own flag)",
             [*sweep, "--extra=--objective none"], 2),
    ]  # fmt: skip


def combination_and_rank_cases(folder: Path, run_dir: Path) -> list[Case]:
    """Issue 32, cases 9 and 10: silent flag combinations, bad input on one rank of two."""
    train = [
        *script("ppo_continuous"),
        "--env-id",
        "Pendulum-v1",
        "--runs-dir",
        str(folder / "runs"),
    ]
    out = [Case(f"ppo_continuous {' '.join(flags)}", [*train, *flags], 2) for flags in (
        ["--algorithm", "vpg", "--update-epochs", "5"], ["--algorithm", "vpg", "--num-minibatches", "4"],
        ["--algorithm", "vpg", "--objective", "clip"], ["--rmsprop-alpha", "0.9"],
        ["--algorithm", "a2c", "--num-steps", "1"],
    )]  # fmt: skip
    out.append(Case("ppo_atari --num-envs 100000",
                    [*script("ppo_atari"), "--num-envs", "100000", "--runs-dir", str(folder / "runs")], 2))  # fmt: skip
    out.append(Case("ppo_continuous evaluate.py RUN --out <new folder>/",
                    [*script("ppo_continuous", "evaluate.py"), str(run_dir), "--episodes", "1",
                     "--out", f"{folder / 'new' / 'folder'}/"], 0))  # fmt: skip

    # Two ranks by hand (as srun starts them), gloo on the CPU; rank 1 alone has a bad flag. The
    # case's exit code and stderr are rank 0's.
    def pendulum(runs_dir: Path, *flags: str) -> str:
        trainer = [sys.executable, str(REPO / "ppo_continuous" / "train.py")]
        return " ".join([*trainer, *SMALL["ppo_continuous"], "--runs-dir", str(runs_dir), *flags])

    def two_ranks() -> str:  # the environment of a new 2-rank world, on a port of its own
        return f"WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT={free_port()}"

    world = two_ranks()
    python = pendulum(folder / "ranks", "--total-timesteps", "512")
    both = (f"RANK=1 {world} {python} --gamma 1.5 2>/dev/null & "
            f"RANK=0 {world} {python}; code=$?; wait; exit $code")  # fmt: skip
    out.append(Case("two ranks by hand, rank 1 --gamma 1.5", ["bash", "-c", both], 2))
    alone = f"PPO_RANKS_JOIN_TIMEOUT_S=5 RANK=0 {world} {python}"
    out.append(Case("rank 0 of 2 by hand, rank 1 never started", ["bash", "-c", alone], 2))
    # kill -9 of rank 1 once the run has saved a checkpoint: rank 0 says so in one line, exit 1.
    killed, world = folder / "killed", two_ranks()
    long_run = pendulum(killed, "--total-timesteps", "10000000", "--save-every", "1")
    kill_one = (f"RANK=1 {world} {long_run} 2>/dev/null & one=$!; "
                f"RANK=0 {world} {long_run} & zero=$!; "
                f"until ls {killed}/*/checkpoints/latest.pt >/dev/null 2>&1; do sleep 0.2; done; "
                f"kill -9 $one; wait $zero")  # fmt: skip
    out.append(Case("two ranks by hand, rank 1 killed with SIGKILL", ["bash", "-c", kill_one], 1))
    return out


def free_port() -> int:
    """A port no one listens on now, for two ranks to meet on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def same_name_runs(folder: Path) -> bool:
    """Three runs started at once with the same env, --exp-name and seed (issue 32, case 1): each
    must finish in a folder of its own (the run name has a second's resolution)."""
    runs = folder / "race"
    command = [*script("ppo_continuous"), *SMALL["ppo_continuous"], "--total-timesteps", "256",
               "--update-epochs", "1", "--runs-dir", str(runs)]  # fmt: skip
    procs = [
        subprocess.Popen(
            [*command, "--learning-rate", lr],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for lr in ("1e-4", "3e-4", "1e-3")
    ]
    codes = [proc.wait(600) for proc in procs]
    summaries = sorted(runs.glob("*/summary.json")) if runs.exists() else []
    ok = codes == [0, 0, 0] and len(summaries) == 3
    return report(ok, "3 runs at once, same name: 3 folders, 3 summaries", max(codes),
                  f"{len(summaries)} summaries in {len(list(runs.glob('*/')))} folders")  # fmt: skip


def resume_while_running(folder: Path) -> bool:
    """``--resume`` of a run that is still training (issue 32, case 1): refused, naming its pid."""
    runs = folder / "live"
    live = subprocess.Popen(
        [*script("ppo_continuous"), *SMALL["ppo_continuous"], "--total-timesteps", "10000000",
         "--save-every", "1", "--runs-dir", str(runs)],
        cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.time() + 300
        while not list(runs.glob("*/checkpoints/latest.pt")) and time.time() < deadline:
            time.sleep(0.2)
        (run_dir,) = runs.iterdir()
        case = Case("ppo_continuous --resume <a run still training>",
                    [*script("ppo_continuous"), "--resume", str(run_dir)], 2)  # fmt: skip
        return run(case, folder)
    finally:
        live.kill()
        live.wait()


def batched_cases(folder: Path) -> list[Case]:
    """Issue 32, case 4: the batched runner refuses what the trainer refuses, in one line."""
    readme = str(REPO / "README.md")
    group = [*script("ppo_continuous", "batched.py"), "--env-id", "Pendulum-v1", "--seeds", "1", "2",
             "--num-steps", "256", "--num-minibatches", "4", "--runs-dir", str(folder / "runs")]  # fmt: skip
    return [Case(f"ppo_continuous batched.py {' '.join(flags)}", [*group, *flags], 2) for flags in (
        ["--clip-coefs", "0"], ["--kl-betas", "-1"], ["--max-grad-norm", "-1"], ["--save-every", "-1"],
        ["--gamma", "1.5"], ["--total-timesteps", "100"], ["--learning-rate", "nan"],
        ["--runs-dir", f"{readme}/x"], ["--group-dir", readme], ["--env-id", "ALE/Pong-v5"],
        ["--exp-names", "x/../../escaped"], ["--resume", str(folder / "no-group")],
    )]  # fmt: skip


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="probe-bad-inputs-") as tmp:
        folder = Path(tmp)
        run_dir, stub = make_checkpoints(folder)
        todo = cases(folder, run_dir, stub)
        todo += report_and_sweep_cases(folder) + combination_and_rank_cases(folder, run_dir)
        todo += batched_cases(folder)
        # The cases are independent commands, each in a process of its own: one per core at a
        # time, reported in order. The two races below start several processes themselves.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            failed = sum(not report(*result) for result in pool.map(judge, todo, repeat(folder)))
        failed += sum(not check(folder) for check in (same_name_runs, resume_while_running))
        total = len(todo) + 2
    print(f"\n{total - failed} of {total} cases handled as expected")
    return failed


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # --help, no flags
    sys.exit(main())
