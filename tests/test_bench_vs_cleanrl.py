"""scripts/bench_vs_cleanrl.py with a stand-in CleanRL checkout: SPS read from CleanRL's own lines,
medians and ratios in turn, and bad paths refused in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO, assert_usage_error

SCRIPT = str(REPO / "scripts" / "bench_vs_cleanrl.py")


def fake_cleanrl(root: Path) -> Path:
    """A checkout whose two Atari scripts print CleanRL's per-iteration SPS lines, the last one
    depending on the script, and count their runs in a file."""
    (root / "cleanrl").mkdir(parents=True)
    for name, last in (("ppo_atari.py", 400), ("ppo_atari_envpool.py", 600)):
        (root / "cleanrl" / name).write_text(
            "import pathlib, sys\n"
            f"runs = pathlib.Path({str(root / (name + '.runs'))!r})\n"
            "n = int(runs.read_text()) + 1 if runs.exists() else 1\n"
            "runs.write_text(str(n))\n"
            f"print('SPS: 123'); print('global_step=1'); print('SPS:', {last} + 10 * n)\n"
        )
    return root


def test_medians_and_ratios_from_cleanrls_own_sps_lines(tmp_path):
    cleanrl = fake_cleanrl(tmp_path / "cleanrl")
    done = subprocess.run(
        [sys.executable, SCRIPT, "--cleanrl-dir", str(cleanrl), "--cleanrl-python", sys.executable,
         "--repeats", "3", "--trainers", "cleanrl ppo_atari.py", "cleanrl ppo_atari_envpool.py"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # Runs 1, 2, 3 of each print 410/420/430 and 610/620/630 last: medians 420 and 620.
    assert "| cleanrl ppo_atari.py | 410, 420, 430 | 420 | 1.00x |" in done.stdout
    assert "| cleanrl ppo_atari_envpool.py | 610, 620, 630 | 620 | 1.48x |" in done.stdout
    # In turn: the first trainer's second run comes after the second trainer's first.
    order = [
        Path(line.split()[2]).name for line in done.stdout.splitlines() if line.startswith("$")
    ]
    assert order == ["ppo_atari.py", "ppo_atari_envpool.py"] * 3


def test_missing_checkout_is_one_line_exit_2(tmp_path):
    done = subprocess.run([sys.executable, SCRIPT, "--cleanrl-dir", str(tmp_path), "--cleanrl-python",
                           sys.executable], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert_usage_error(done, "--cleanrl-dir")
