"""Provenance in every summary: the commit of the code and the host it ran on."""

from __future__ import annotations

import subprocess

import pytest
import torch
from conftest import REPO, host_cpu_flags

from common import runtime
from common.runtime import code_version, host_description


def test_code_version_is_this_checkouts_commit():
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert code_version() == head + ("+dirty" if dirty else "")


def test_a_changed_results_record_is_not_dirty_code(tmp_path):
    """A sweep writes its record into the checkout while later runs run: that is not dirty code."""

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], capture_output=True, check=True)

    record = tmp_path / "docs" / "results" / "records" / "p" / "runs.csv"
    record.parent.mkdir(parents=True)
    record.write_text("env_id\n")
    (tmp_path / "train.py").write_text("x = 1\n")
    git("init", "-q")
    git("-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "first")
    clean = code_version(tmp_path)
    assert len(clean) == 12 and "+" not in clean
    record.write_text("env_id\nHopper-v5\n")
    assert code_version(tmp_path) == clean
    (tmp_path / "train.py").write_text("x = 2\n")
    assert code_version(tmp_path) == clean + "+dirty"


def test_host_description_names_cores():
    assert host_description().endswith(" cores") and len(host_description()) > len(" cores")


@pytest.mark.parametrize(
    ("flags", "auto"),
    [
        ({"avx2", "avx512f"}, "fp32"),  # AVX-512 without BF16: autocast emulates bf16
        ({"avx2", "avx512f", "avx512_bf16"}, "bf16"),  # e.g. AMD EPYC Zen 4
        ({"avx2", "amx_bf16", "amx_tile"}, "bf16"),  # Intel AMX
        (set(), "fp32"),  # no /proc/cpuinfo
    ],
)
def test_auto_precision_is_bf16_only_on_a_cpu_with_bf16_in_hardware(flags, auto, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset(flags))
    cpu = torch.device("cpu")
    assert runtime.pick_precision("auto", cpu) == auto
    assert runtime.pick_precision("fp32", cpu) == "fp32"  # forced, whatever the host
    assert runtime.pick_precision("bf16", cpu) == "bf16"


@pytest.mark.parametrize(("flags", "default"), [({"avx2", "amx_bf16"}, "bf16"), ({"avx2"}, "fp32")])
def test_the_atari_default_is_bf16_only_where_the_cpu_computes_it(flags, default, monkeypatch):
    """Decided by the learning comparison (docs/benchmarks/atari_learning.md): on any host."""
    from ppo_atari.train import Args

    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset(flags))
    assert runtime.pick_precision(Args().precision, torch.device("cpu")) == default


def test_cpu_flags_are_this_hosts():
    assert runtime.cpu_flags() == frozenset(host_cpu_flags())


def test_cpuinfo_fields_match_whole_names(monkeypatch, tmp_path):
    planted = tmp_path / "cpuinfo"
    planted.write_text(
        "processor\t: 0\ncpu family\t: 6\nmodel\t\t: 143\nmodel name\t: Some Xeon\n"
        "flags\t\t: fpu avx512_bf16\nvmx flags\t: ept\n\nprocessor\t: 1\nmodel name\t: Other\n"
    )
    monkeypatch.setattr(runtime, "CPUINFO", planted)
    assert runtime.cpuinfo_field("model") == "143"
    assert runtime.cpuinfo_field("model name") == "Some Xeon"  # the first CPU's
    assert runtime.cpuinfo_field("flags") == "fpu avx512_bf16"
    assert runtime.cpuinfo_field("cpu") is None  # a prefix of "cpu family", not a field
    monkeypatch.setattr(runtime, "CPUINFO", tmp_path / "missing")
    assert runtime.cpuinfo_field("flags") is None
