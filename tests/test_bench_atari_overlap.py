"""The overlap benchmark runs both rollout orders on the same games and reports their ratio."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO


def test_overlap_benchmark_times_both_loops_alternately(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_atari_overlap.py"), "--repeats", "2", "--num-steps", "4"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    order = re.findall(r"repeat (\d): +(sync|halves)", result.stdout)
    assert order == [("1", "sync"), ("1", "halves"), ("2", "sync"), ("2", "halves")]
    sync = float(re.search(r"sync .* +([\d.]+) ms per rollout", result.stdout)[1])
    halves = float(re.search(r"halves .* +([\d.]+) ms per rollout", result.stdout)[1])
    ratio = float(re.search(r"halves / sync time: ([\d.]+)", result.stdout)[1])
    assert abs(ratio - halves / sync) < 0.01
