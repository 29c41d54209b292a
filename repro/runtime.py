"""Run-time device choice and determinism.

The device is chosen at run time: CUDA when present (with AMP), the CPU
otherwise. Models are channels_last on both (measured in ``bench/``: faster
convolutions on CUDA and on this CPU). The logic is identical on both; only
the AMP switch differs.
"""
from __future__ import annotations

import os
import random
import warnings

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


def inference_model(model: torch.nn.Module) -> torch.nn.Module:
    """An eval-mode copy of ``model`` for evaluation and evaluation-mode attacks: every Conv-BN
    pair folded into one convolution (``torch.fx``'s conv-BN fusion), parameters frozen.

    In eval mode a BatchNorm is an affine map with fixed statistics, so folding it into the
    preceding convolution computes the same function (up to float rounding, ~1e-6 on the
    logits) and removes the BN forward and backward from each of PGD-20's 20 iterations
    (measured in ``bench/``). ``model`` itself is not changed. A model that ``torch.fx``
    cannot trace is returned unchanged (with a warning), as is a model this function made.
    """
    if getattr(model, "_repro_inference", False):
        return model
    from torch.fx.experimental.optimization import fuse

    saved = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        fused = fuse(model)  # a deep copy; the original keeps its modules
    except Exception as err:  # untraceable forward (data-dependent control flow, wrappers)
        warnings.warn(f"inference_model: {type(model).__name__} could not be traced for conv-BN folding "
                      f"({type(err).__name__}: {err}); evaluating the unfused model", stacklevel=2)
        return model
    finally:
        for m, flag in saved:
            m.training = flag
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    if convs and convs[0].weight.is_contiguous(memory_format=torch.channels_last):
        fused = fused.to(memory_format=torch.channels_last)  # folded weights are new, contiguous tensors
    fused.eval().requires_grad_(False)
    fused._repro_inference = True
    return fused


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
