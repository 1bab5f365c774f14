"""Run every bad input of issue 14 through both trainers (and evaluate.py); one line per case.

    python scripts/probe_bad_inputs.py            # about two minutes on a laptop CPU

Each case is a real command in a temporary folder. A case passes when the command ends with the
expected exit code (2: bad input, refused in one ``error:`` line; 3: the run diverged; 0: accepted)
and prints no traceback. The exit code is the number of cases that did not pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
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
]  # fmt: skip


@dataclass
class Case:
    name: str
    command: list[str]
    expected: int


def script(trainer: str, name: str = "train.py") -> list[str]:
    return [sys.executable, str(REPO / trainer / name)]


def run(case: Case, cwd: Path) -> bool:
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
    ok = code == case.expected and one_line and "Traceback" not in err
    print(f"{'PASS' if ok else 'FAIL'}  {case.name:60.60s} exit {code}  {said}", flush=True)
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


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="probe-bad-inputs-") as tmp:
        folder = Path(tmp)
        run_dir, stub = make_checkpoints(folder)
        todo = cases(folder, run_dir, stub)
        failed = sum(not run(case, folder) for case in todo)
    print(f"\n{len(todo) - failed} of {len(todo)} cases handled as expected")
    return failed


if __name__ == "__main__":
    sys.exit(main())
