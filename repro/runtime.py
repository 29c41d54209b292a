"""Run-time device choice and determinism.

The device is chosen at run time: CUDA when present (with AMP and
channels_last), the CPU otherwise. The logic is identical on both; only
these switches differ.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def device(prefer: str = "auto") -> torch.device:
    if prefer == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if prefer.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {prefer!r} requested but CUDA is not available; use 'cpu' or 'auto'")
    return torch.device(prefer)


def use_amp(dev: torch.device) -> bool:
    """Mixed precision only on CUDA (bf16 autocast is slower on these CPUs)."""
    return dev.type == "cuda"


def prepare_model(model: torch.nn.Module, dev: torch.device) -> torch.nn.Module:
    model = model.to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch (all devices); make CPU/CUDA kernels deterministic."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
