"""The modes every attack runs in: parameters without gradients (``no_param_grad``), BatchNorm in train or eval
mode (``bn_mode``), float32 even under AMP (``full_precision``)."""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch
from torch import nn


@contextlib.contextmanager
def no_param_grad(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily set ``requires_grad=False`` on the parameters that had it.

    On exit exactly those parameters get ``requires_grad=True`` back (frozen
    parameters stay frozen), even if the body raised.
    """
    changed = [p for p in model.parameters() if p.requires_grad]
    for p in changed:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p in changed:
            p.requires_grad_(True)


@contextlib.contextmanager
def bn_mode(model: nn.Module, mode: Optional[str]) -> Iterator[nn.Module]:
    """Put ``model`` in ``'train'`` or ``'eval'`` mode; restore every module's flag on exit.

    The per-module ``training`` flags found on entry are restored exactly, so
    mixed modes (e.g. a frozen BatchNorm kept in eval inside a training model,
    fastai's ``BnFreeze``) survive. ``mode=None`` leaves the flags as they are
    (useful to attack a model whose frozen BN must not start tracking
    statistics).
    """
    if mode not in ("train", "eval", None):
        raise ValueError(f"bn_mode must be 'train', 'eval' or None, got {mode!r}")
    saved = [(m, m.training) for m in model.modules()]
    try:
        if mode == "train":
            model.train()
        elif mode == "eval":
            model.eval()
        yield model
    finally:
        for m, flag in saved:
            m.training = flag


@contextlib.contextmanager
def full_precision(device) -> Iterator[None]:
    """Disable autocast on ``device``'s type (CPU bf16/fp16, CUDA fp16) for the body.

    Evaluation attacks and the logits they classify always compute in float32, also when a
    caller (a fastai Learner, ``torch.autocast`` around an evaluation) has autocast on: in
    fp16 the input gradient of a confidently classified image underflows to exactly zero,
    PGD never leaves its random start on it and the robust accuracy is inflated.
    """
    with torch.autocast(device_type=torch.device(device).type, enabled=False):
        yield


