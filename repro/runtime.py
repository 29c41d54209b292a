"""Run-time device choice and determinism.

The device is chosen at run time: CUDA when present (with AMP), the CPU
otherwise. Models are channels_last on both (measured in ``bench/``: faster
convolutions on CUDA and on this CPU). The logic is identical on both; only
the AMP switch differs.
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
    """Move ``model`` to ``dev`` in channels_last memory format (CPU and CUDA alike)."""
    return model.to(dev).to(memory_format=torch.channels_last)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch (all devices); make CPU/CUDA kernels deterministic."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite (raised by ``training.RaiseOnNaN``; here so that stages
    can map it to a one-line error without importing the training stack)."""
