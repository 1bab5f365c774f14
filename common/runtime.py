"""Seeding, device choice and small network helpers both trainers use."""

from __future__ import annotations

import random

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


def layer_init(layer: nn.Module, std: float = np.sqrt(2), bias: float = 0.0) -> nn.Module:
    """Orthogonal weights with gain ``std`` and constant bias, as in openai/baselines ppo2."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer
