"""Seeding, device choice and small network helpers both trainers use."""

from __future__ import annotations

import functools
import os
import platform
import random
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn


def seed_everything(seed: int, torch_deterministic: bool) -> None:
    """Seed Python, NumPy and torch; ``torch_deterministic`` also pins cuDNN to deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = torch_deterministic


def pick_device(cuda: bool) -> torch.device:
    """CUDA when it is present and allowed by ``--cuda``, else the CPU."""
    return torch.device("cuda" if cuda and torch.cuda.is_available() else "cpu")


# CPU features whose instructions compute bf16 products in hardware (AVX-512 BF16, Intel AMX).
NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


CPUINFO = Path("/proc/cpuinfo")


def cpuinfo_field(name: str) -> str | None:
    """The first CPU's ``name`` field in ``/proc/cpuinfo``; None where the file or field is missing.
    The name must match a whole field: "model" is not "model name", nor "cpu" "cpu family"."""
    try:
        for line in CPUINFO.read_text().splitlines():
            field, colon, value = line.partition(":")
            if colon and field.strip() == name:
                return value.strip()
    except OSError:
        pass
    return None


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as ``/proc/cpuinfo`` lists them; empty where it does not exist."""
    return frozenset((cpuinfo_field("flags") or "").split())


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 in hardware: a CUDA GPU that supports it, or a CPU with
    AVX-512 BF16 or AMX. Elsewhere autocast emulates bf16: the same numerics, only slower."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(cpu_flags() & NATIVE_BF16_CPU_FLAGS)


def pick_precision(choice: str, device: torch.device) -> str:
    """``--precision``: ``auto`` is bf16 where ``device`` has native bf16, fp32 elsewhere."""
    if choice != "auto":
        return choice
    return "bf16" if native_bf16(device) else "fp32"


# --8<-- [start:layer_init]
def layer_init(layer: nn.Module, std: float = np.sqrt(2), bias: float = 0.0) -> nn.Module:
    """Orthogonal weights with gain ``std`` and constant bias, as in openai/baselines ppo2."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer
    # --8<-- [end:layer_init]


def normc_init(layer: nn.Linear, std: float = 1.0) -> nn.Linear:
    """Gaussian weights rescaled so each unit's incoming weights have norm ``std``, zero bias: the
    2017 code's ``normc_initializer`` (openai/baselines da99706, ``common/tf_util.py``)."""
    with torch.no_grad():
        weight = torch.randn_like(layer.weight)
        layer.weight.copy_(weight * (std / weight.norm(dim=1, keepdim=True)))
        layer.bias.zero_()
    return layer


def run_layers(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``layers(x)``, calling each layer's ``forward`` directly: the same arithmetic without
    ``nn.Module.__call__``'s hook handling, which for one observation a step (a rollout) costs
    about as much as the arithmetic. Module hooks do not fire, so use it only for acting;
    ``train()``/``eval()`` still apply, as they act inside each layer's ``forward``."""
    for layer in layers:
        x = layer.forward(x)
    return x


# What runs and sweeps write into a checkout (results records, pages): output, not code.
RESULTS_PATHS = ("docs/results",)


def code_version(repo: Path | None = None) -> str:
    """The git commit of this checkout (``+dirty`` when tracked code changed), or ``unknown``.

    Recorded in every run's summary, so a result can be traced to the code that produced it. A
    sweep writes its results record into the checkout while later runs still run, so changes under
    ``RESULTS_PATHS`` do not count as dirty: ``+dirty`` means the code itself differs.
    """
    repo = repo or Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()  # fmt: skip

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        outputs = [f":(exclude){path}" for path in RESULTS_PATHS]
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", *outputs)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")  # fmt: skip


@functools.cache
def host_description() -> str:
    """The CPU model and core count, so speed figures say which machine they came from."""
    model = cpuinfo_field("model name") or platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores"


class MuJoCoWarning(UserWarning):
    """A warning MuJoCo's C library raised (e.g. a deprecated XML attribute of a gymnasium model)."""


def _warn_from_mujoco(message: str) -> None:
    try:
        warnings.warn(f"MuJoCo: {message}", MuJoCoWarning, stacklevel=2)
    except Exception as err:  # noqa: BLE001 - an exception must not cross back into MuJoCo's C code
        print(f"MuJoCo: {message} ({err})", file=sys.stderr)


@functools.cache
def route_mujoco_warnings() -> None:
    """Send MuJoCo's warnings through Python's ``warnings`` instead of MuJoCo's default handler.

    The default handler prints each warning and appends it to ``MUJOCO_LOG.TXT`` in the working
    directory. A model's deprecated XML (HalfCheetah's ``settotalmass``) warns at every load, once
    per env; as Python warnings each distinct one is shown once per run (the default filter) and
    no log file is written. Does nothing when MuJoCo is not installed.
    """
    try:
        import mujoco
    except ImportError:
        return
    mujoco.set_mju_user_warning(_warn_from_mujoco)
