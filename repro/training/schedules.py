"""Learning-rate schedules of the official code, as fastai ``ParamScheduler`` functions.

A fastai schedule is a function of ``pct`` (fraction of training done, per
batch). A step decay at epoch ``e`` of ``n`` is a drop at ``pct = e / n``:
fastai's ``pct_train`` at the first batch of epoch ``e`` is exactly ``e / n``.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

from ..config.params import SCHEDULES, TrainParams


def step_decay(lr: float, milestones: Sequence[int], n_epoch: int, gamma: float = 0.1) -> Callable[[float], float]:
    """MultiStepLR: ``lr * gamma**(number of milestones reached)``."""
    bad = [m for m in milestones if not 0 < m <= n_epoch]
    if bad:
        raise ValueError(f"milestones: {bad} are outside (0, {n_epoch}] epochs (lr step decay)")
    ms = sorted(milestones)

    def sched(pct: float) -> float:
        epoch = pct * n_epoch + 1e-9
        return lr * gamma ** sum(epoch >= m for m in ms)

    return sched


def cosine(lr: float, final: float = 0.0) -> Callable[[float], float]:
    """Cosine annealing from ``lr`` to ``final`` over the whole run (official SVHN recipe)."""

    def sched(pct: float) -> float:
        return final + (lr - final) * (1 + math.cos(math.pi * min(max(pct, 0.0), 1.0))) / 2

    return sched


def constant(lr: float) -> Callable[[float], float]:
    """Fixed learning rate (IMP retraining on ImageNet uses a fixed 5e-4)."""
    return lambda pct: lr


def make_schedule(kind: str, lr: float, n_epoch: int, milestones: Sequence[int] = (), gamma: float = 0.1):
    if kind == "step":
        return step_decay(lr, milestones, n_epoch, gamma)
    if kind == "cosine":
        return cosine(lr)
    if kind == "constant":
        return constant(lr)
    raise ValueError(f"unknown lr schedule {kind!r}; allowed: {', '.join(SCHEDULES)}")


def scheduler(cfg: TrainParams):
    """fastai's ``ParamScheduler`` of the run's lr schedule."""
    from fastai.callback.schedule import ParamScheduler

    return ParamScheduler({"lr": make_schedule(cfg.schedule, cfg.lr, cfg.epochs, cfg.milestones, cfg.gamma)})
