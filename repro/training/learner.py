"""The one training entry point: a fastai ``Learner`` plus the paper's callbacks.

``repro.config.TrainParams`` holds the optimizer/schedule of one run (the official code
uses plain SGD with momentum and coupled L2 weight decay, i.e.
``torch.optim.SGD``, wrapped for fastai). ``make_learner`` assembles the
learner; ``train`` builds and fits it.
"""
from __future__ import annotations

import math
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Iterable

import torch
from fastai.callback.core import Callback
from fastai.callback.training import BnFreeze
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.metrics import accuracy
from fastai.optimizer import OptimWrapper
from torch import nn

from ..base import runtime
from ..config.params import LINEAR_BN, TrainParams
from ..models import freeze_backbone
from ..tickets.mask import Mask
from . import ddp
from .callbacks import (AdversarialTraining, AttackFn, BnRecalibration, CountImages, GaussianNoise, MaskEnforcer,
                        RaiseOnNaN)
from .schedules import scheduler


class AutoCompile(Callback):
    """``runtime.compile: auto``: time ``probe`` training batches eagerly (attack included, after one warm-up
    batch) and compile the model in place if the rest of the run would take at least
    ``runtime.COMPILE_MIN_SECONDS`` at that pace (``runtime.should_compile``: CUDA only). ``estimate``: that
    eager remainder in seconds; ``compiled``: the decision."""

    order = -90  # around the whole batch: AdversarialTraining crafts the attack in before_batch

    def __init__(self, dev: torch.device, probe: int = runtime.COMPILE_PROBE_BATCHES):
        self.dev, self.probe = torch.device(dev), probe

    def before_fit(self):
        self.times, self.estimate, self.compiled, self.t0 = [], None, False, None

    def _now(self) -> float:
        if self.dev.type == "cuda" and torch.cuda.is_available():
            torch.cuda.synchronize(self.dev)
        return time.perf_counter()

    def before_batch(self):
        if self.training and self.estimate is None:
            self.t0 = self._now()

    def after_batch(self):
        if not self.training or self.estimate is not None or self.t0 is None:
            return
        self.times.append(self._now() - self.t0)
        if len(self.times) > self.probe:
            left = self.n_epoch * self.n_iter - (self.epoch * self.n_iter + self.iter + 1)
            self.estimate = left * statistics.median(self.times[1:])
            if runtime.should_compile("auto", self.dev, self.estimate):
                runtime.compile_model(self.learn.model)
                self.compiled = True


def sgd(cfg: TrainParams):
    """``torch.optim.SGD`` (coupled L2 weight decay, as the official code) for fastai."""
    return partial(OptimWrapper, opt=torch.optim.SGD, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def live_callback(live_dir) -> Callback:
    """DVCLive's fastai callback logging into ``live_dir``, its ``after_fit`` (``Live.end``) under a lock shared by
    every process of the repository. ``Live.end`` deletes DVCLive's step signal file (``.dvc/tmp/exps/run/
    DVCLIVE_STEP_COMPLETED``, for the VS Code extension) by a check then a remove, so two worker processes of one
    stage ending their runs together failed one of them with FileNotFoundError ('error: 2 (in the training callback
    DVCLiveCallback.after_fit)': the paper tier's rehearsal, stage pretrain_eps, 4 models on 2 workers)."""
    import fcntl

    from dvclive import Live
    from dvclive.fastai import DVCLiveCallback
    from dvclive.vscode import _find_non_queue_root

    class LockedEndLive(DVCLiveCallback):
        def after_fit(self):
            root = _find_non_queue_root()  # where DVCLive keeps the signal file; None: it keeps none
            if root is None:
                return super().after_fit()
            lock = Path(root) / ".dvc" / "tmp" / "repro-dvclive-end.lock"
            lock.parent.mkdir(parents=True, exist_ok=True)
            with lock.open("a") as f:
                fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
                super().after_fit()

    return LockedEndLive(live=Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=False, report=None))


def make_learner(
    dls: DataLoaders,
    model: nn.Module,
    cfg: TrainParams,
    *,
    mask: Mask | None = None,
    attack: AttackFn | None = None,
    attack_bn_mode: str = "train",
    noise_sigma: float = 0.0,
    linear_eval: bool = False,
    linear_bn: str = "recalibrate",
    live_dir: str | Path | None = None,
    csv_log: str | Path | None = None,
    progress: bool = True,
    extra_cbs: Iterable[Callback] = (),
    compile: str = "auto",
) -> Learner:
    """A fastai Learner for one run.

    mask: ticket enforced throughout training; attack: adversarial training
    (PGD-k or FGSM-RS callable); noise_sigma > 0: random-smoothing
    pretraining; linear_eval: freeze everything but the classifier and keep
    BatchNorm statistics frozen, after re-estimating them once for the masked backbone
    (``linear_bn="recalibrate"``) or as pretrained (``"frozen"``); live_dir: DVCLive logs in that folder
    (no dvc.yaml is written there: the stage's own folder, not the root);
    csv_log: a per-epoch CSV (fastai's CSVLogger), the cheap log for the
    hundreds of short runs of a transfer stage (DVCLive costs seconds per run);
    compile: ``runtime.compile``: ``on`` compiles the model in place before fit, ``off`` never, ``auto``
    (``AutoCompile``) decides on the device and the run's eager time, timed on its first batches.
    """
    dev = torch.device(dls.device) if dls.device is not None else runtime.device()
    runtime.should_compile(compile, dev, 0.0)  # validates ``compile`` before any work
    model = runtime.prepare_model(model, dev)
    if compile == "on":
        runtime.compile_model(model)
    cbs: list[Callback] = [RaiseOnNaN(), CountImages()]
    if compile == "auto" and runtime.should_compile("auto", dev, math.inf):  # a long enough run would compile here
        cbs.append(AutoCompile(dev))
    if mask is not None:
        mask.apply(model)
        cbs.append(MaskEnforcer(mask))
    if attack is not None:
        cbs.append(AdversarialTraining(attack, bn_mode=attack_bn_mode))
    if noise_sigma > 0:
        cbs.append(GaussianNoise(noise_sigma))
    if linear_bn not in LINEAR_BN:
        raise ValueError(f"linear_bn {linear_bn!r} is not allowed; allowed: {', '.join(LINEAR_BN)}")
    if linear_eval:
        freeze_backbone(model)
        if linear_bn == "recalibrate":
            cbs.append(BnRecalibration())
        cbs.append(BnFreeze())
    if live_dir is not None:
        cbs.append(live_callback(live_dir))
    if csv_log is not None:
        from fastai.callback.progress import CSVLogger

        Path(csv_log).parent.mkdir(parents=True, exist_ok=True)
        cbs.append(CSVLogger(fname=str(Path(csv_log).resolve())))
    cbs.extend(extra_cbs)
    learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss(), opt_func=sgd(cfg), lr=cfg.lr,
                    cbs=cbs, metrics=[accuracy], wd_bn_bias=True, train_bn=True)
    learn.recorder.add_time = False  # no wall-clock column in the per-epoch logs: same run, same files
    if runtime.use_amp(dev):
        learn = learn.to_fp16()
    if not progress:
        learn.remove_cbs([cb for cb in learn.cbs if type(cb).__name__ in ("ProgressCallback",)])
        learn.logger = lambda *a, **k: None
    return learn


def train(dls: DataLoaders, model: nn.Module, cfg: TrainParams, **kwargs) -> Learner:
    """Build the learner and fit ``cfg.epochs`` epochs with the configured LR schedule."""
    learn = make_learner(dls, model, cfg, **kwargs)
    cbs = [scheduler(cfg)]
    if ddp.active():  # under torchrun (repro.launch.torchrun): data-parallel over the processes
        cbs.append(ddp.DistributedTrainer())
    try:
        learn.fit(cfg.epochs, lr=cfg.lr, cbs=cbs)
    finally:
        runtime.uncompile(learn.model)  # the trained model is evaluated and saved as the eager module
    return learn
