"""fastai callbacks: every paper-specific behaviour of training lives here.

* ``AdversarialTraining``: PGD-k / FGSM-RS replaces the batch before the forward pass.
* ``MaskEnforcer``: pruned weights stay exactly zero (weights re-masked after
  every optimizer step).
* ``GaussianNoise``: random-smoothing pretraining (Gaussian noise, std sigma).
* ``LearnableMask``: LMP score training (scores attached before fit, the final
  binary mask extracted after).
* ``BnRecalibration``: linear evaluation's frozen backbone gets BatchNorm statistics
  re-estimated for the (masked) network on the training images before the head trains.
* ``RaiseOnNaN``: a NaN/inf loss stops the run with an error (never a silent result).
* ``HeldOutValidation``: per-epoch validation SA/RA on held-out training images; keeps the
  best-SA and best-RA weights (checkpoint selection, official Double-Win code).
"""
from __future__ import annotations

from typing import Callable

import torch
from fastai.callback.core import Callback, CancelFitException
from fastai.callback.fp16 import MixedPrecision

from ..attacks import bn_mode as _bn_mode
from ..config.params import LMP_BN
from ..base.errors import NonFiniteLossError
from ..tickets.mask import Mask

AttackFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]

BN_MODES = ("train", "eval")


class AdversarialTraining(Callback):
    """Train on adversarial examples of each batch.

    ``bn_mode='train'`` attacks with batch statistics (official Double-Win code:
    the attack's forward passes also move the running statistics); ``'eval'``
    attacks with running statistics (torchattacks, MadryLab). The mode found is
    restored before the training forward pass. Only training batches are attacked.
    """

    order = MixedPrecision.order - 1  # craft the attack before autocast is entered

    def __init__(self, attack: AttackFn, bn_mode: str = "train"):
        if bn_mode not in BN_MODES:
            raise ValueError(f"bn_mode {bn_mode!r} is not allowed; allowed: {', '.join(BN_MODES)}")
        self.attack, self.bn_mode = attack, bn_mode

    def before_batch(self):
        if not self.training:
            return
        x, y = self.learn.xb[0], self.learn.yb[0]
        with _bn_mode(self.learn.model, self.bn_mode):
            x_adv = self.attack(self.learn.model, x, y)
        self.learn.xb = (x_adv.detach(),)


class GaussianNoise(Callback):
    """Random-smoothing pretraining: add N(0, sigma^2) noise to training inputs (Cohen et al.)."""

    order = MixedPrecision.order - 1

    def __init__(self, sigma: float):
        if not sigma > 0:
            raise ValueError(f"noise sigma must be > 0, got {sigma}")
        self.sigma = sigma

    def before_batch(self):
        if self.training:
            x = self.learn.xb[0]
            self.learn.xb = (x + self.sigma * torch.randn_like(x),)


class MaskEnforcer(Callback):
    """Keep pruned weights exactly zero through SGD with momentum and weight decay.

    The mask is multiplied into the weights before fit and after every optimizer
    step (one fused ``torch._foreach_mul_`` over all masked tensors). Gradients are
    not masked: every optimizer the package uses (SGD with momentum and coupled
    weight decay) updates each element from that element's own gradient and state
    only, so a pruned element's gradient and momentum cannot reach a kept element,
    and the pruned element itself is zeroed again before the next forward pass.
    The kept weights are therefore bit-identical to masking the gradients too, at
    one pass over the weights per step instead of two (``bench/``: mask overhead).
    """

    order = 5

    def __init__(self, mask: Mask):
        self.mask = mask
        self._params: list[torch.nn.Parameter] = []
        self._masks: list[torch.Tensor] = []

    def before_fit(self):
        model = self.learn.model
        self.mask.check_compatible(model)
        params = dict(model.named_parameters())
        self._params, self._masks = [], []
        for name, m in self.mask.items():
            p = params[name]
            self._params.append(p)
            # the mask in the weight's own dtype, device and memory format (channels_last): a plain elementwise multiply
            self._masks.append(torch.empty_like(p).copy_(m))
        self._apply_to_weights()

    @torch.no_grad()
    def _apply_to_weights(self):
        if self._params:
            torch._foreach_mul_(self._params, self._masks)

    def after_step(self):
        self._apply_to_weights()


class LearnableMask(Callback):
    """LMP: learn a mask over frozen pretrained weights (straight-through top-k scores).

    Before fit, score parameters are attached to every conv in scope and the
    optimizer is rebuilt over the scores (and the new classifier when
    ``train_head``); after fit, the scores are removed and ``self.mask`` holds
    the binary ticket with exactly ``density`` kept per layer (``self.initial_mask``: the
    top-k of the initial scores).

    Weights and BatchNorm's affine parameters never train. ``bn`` says what BatchNorm's
    *statistics* do: ``train`` (default) normalizes with batch statistics and re-estimates the
    running statistics for the masked network, as edge-popup / hidden-networks train their
    scores; ``frozen`` keeps the dense network's running statistics (eval mode). With frozen
    statistics a kaiming-initialised (random) top-k mask shifts every layer's pre-BN
    activations away from the statistics they are normalised with; after a few layers the
    ReLUs output zeros for every image, the logits are constant and neither the scores nor the
    classifier get a useful gradient (measured: SA exactly 1/K, loss at ln K).
    ``train_scores=False`` keeps the initial random mask (the same regime without mask
    learning: the baseline a learned mask must beat).
    """

    order = 1

    def __init__(self, density: float, granularity: str = "unstructured", train_head: bool = True,
                 seed: int = 0, scope: list[str] | None = None, bn: str = "train", train_scores: bool = True):
        if bn not in LMP_BN:
            raise ValueError(f"bn {bn!r} is not allowed; allowed: {', '.join(LMP_BN)}")
        if granularity == "channel" and bn == "train":
            # A BatchNorm with batch statistics after each conv makes the loss invariant to the scale of a kept
            # output channel, so its straight-through score gradient is ~0 (only BN's eps breaks the invariance),
            # while a pruned (all-zero) channel's is amplified by 1/sqrt(eps): the learned mask follows rounding
            # noise, differently on each CPU's kernels (tests/test_tickets_lmp.py).
            raise ValueError("LMP granularity 'channel' with bn 'train' cannot learn: batch-statistics BatchNorm "
                             "cancels a kept channel's scale, so its score gets no gradient; allowed: unstructured, "
                             "row, kernel, or channel with bn 'frozen'")
        self.density, self.granularity, self.train_head = density, granularity, train_head
        self.seed, self.scope, self.bn, self.train_scores = seed, scope, bn, train_scores
        self.mask: Mask | None = None
        self.initial_mask: Mask | None = None

    def before_fit(self):
        from ..tickets import lmp

        model = self.learn.model
        for name, p in model.named_parameters():
            p.requires_grad_(self.train_head and name.startswith("fc."))
        scores = lmp.attach_scores(model, self.density, granularity=self.granularity, seed=self.seed,
                                   scope=self.scope)
        for s in scores:
            s.requires_grad_(self.train_scores)
        self.initial_mask = lmp.current_mask(model)
        device = next(model.parameters()).device
        model.to(device)
        self.learn.create_opt()

    def before_train(self):
        if self.bn == "frozen":
            for m in self.learn.model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def after_fit(self):
        from ..tickets import lmp

        self.mask = lmp.detach_scores(self.learn.model)


class BnRecalibration(Callback):
    """Re-estimate every BatchNorm's running statistics once, before fit, then keep them.

    Linear evaluation (``transfer.linear_bn: recalibrate``): one pass over the training loader
    with no gradients, BatchNorm in train mode with a cumulative average (``momentum=None``),
    after the ticket's mask is applied (``MaskEnforcer``, order 5). No weight or affine parameter
    changes. Why: the dense pretrained statistics no longer describe a pruned backbone's
    activations (or a far domain's); measured on the embedded default, ``synth_far``, the
    θ_AT OMP ticket at 89.26 %: the penultimate features' standard deviation over images is 0.02
    with the dense statistics (the head cannot learn: SA 0.09) and 0.33 after recalibration.
    The frozen-BN training that follows (fastai ``BnFreeze``) keeps these statistics.
    """

    order = 6  # after MaskEnforcer applied the mask; before EpochCheckpoint (99) restores a resumed run

    @torch.no_grad()
    def before_fit(self):
        model = self.learn.model
        bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if not bns:
            return
        was_training = model.training
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average: every training batch weighs the same
        model.train()
        for xb, *_ in self.learn.dls.train:
            model(xb)
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        model.train(was_training)


class RaiseOnNaN(Callback):
    """Stop with a clear error when the training loss is NaN or infinite."""

    order = 100

    def after_loss(self):
        if self.training and not torch.isfinite(self.learn.loss).all():
            raise NonFiniteLossError(
                f"training loss became {self.learn.loss.detach().float().mean().item()} at epoch {self.epoch}, "
                f"iteration {self.iter}; lower the learning rate or check the inputs")


# --------------------------------------------------------------------------- resumable runs
CHECKPOINT_FORMAT = 1
CHECKPOINT_NAME = "last.pt"


def _aug_generators(loader) -> list:
    """Every albumentations transform (the Compose and each child) of a loader's dataset, in a fixed
    order: each holds its own numpy and python random streams."""
    out, todo = [], [getattr(getattr(loader, "dataset", None), "transform", None)]
    while todo:
        t = todo.pop(0)
        if t is None:
            continue
        if hasattr(t, "random_generator") and hasattr(t, "py_random"):
            out.append(t)
        todo.extend(getattr(t, "transforms", []) or [])
    return out


def rng_state(learn) -> dict:
    """Every random stream a fastai training loop draws from (CPU and CUDA)."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "loaders": [dl.rng.getstate() for dl in learn.dls.loaders],
        "augment": [[(t.random_generator.bit_generator.state, t.py_random.getstate()) for t in _aug_generators(dl)]
                    for dl in learn.dls.loaders],
    }
    return state


def set_rng_state(learn, state: dict) -> None:
    import random

    import numpy as np

    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for dl, s in zip(learn.dls.loaders, state["loaders"]):
        dl.rng.setstate(s)
    for dl, states in zip(learn.dls.loaders, state["augment"]):
        for t, (np_state, py_state) in zip(_aug_generators(dl), states):
            t.random_generator.bit_generator.state = np_state
            t.py_random.setstate(py_state)


def _do_fit_from_start_epoch(learn) -> None:
    """fastai's ``Learner._do_fit``, starting at ``learn.start_epoch``: the epochs a checkpoint already
    holds are not run at all (fastai's own ``start_epoch`` runs their after_epoch events, which would
    log them again)."""
    from fastai.callback.core import CancelEpochException

    for epoch in range(getattr(learn, "start_epoch", 0), learn.n_epoch):
        learn.epoch = epoch
        learn._with_events(learn._do_epoch, "epoch", CancelEpochException)


class EpochCheckpoint(Callback):
    """Per-epoch checkpoints: a killed run resumes where it stopped and ends bit-identical to an
    uninterrupted one.

    After every epoch but the last, ``<directory>/last.pt`` is written atomically (weights-only
    tensor file) with: the model and optimizer state, the number of finished epochs, every RNG
    state (python, numpy, torch CPU/CUDA, each fastai DataLoader's shuffle RNG, the albumentations
    streams of the datasets), the Recorder's smoothed loss (the logged ``train_loss``), the state
    of any callback with ``ckpt_state()``/``ckpt_load(state)`` (e.g. weight snapshots), the mixed
    precision scaler, and a copy of every file the run has written so far under ``carry_dir``
    (per-epoch CSV and DVCLive logs). The LR schedule needs nothing: fastai derives its position
    from the epoch.

    Before fit, a checkpoint whose ``key`` matches (the stage passes a hash of the run's name,
    params and inputs) is loaded, its files restored under ``carry_dir``, and training continues
    with the next epoch; a checkpoint that cannot be read or belongs to another key is ignored
    (it is a cache; the run starts over). Deleting the folder once the run's outputs are written
    is the caller's job (``repro.stages.common.run_checkpoint``).
    """

    order = 99  # after every callback that sets state up in before_fit or records in after_epoch

    def __init__(self, directory, key: str, carry_dir=None):
        from pathlib import Path

        self.directory, self.key = Path(directory), str(key)
        self.carry_dir = None if carry_dir is None else Path(carry_dir)
        self.resumed_from: int | None = None

    @property
    def path(self):
        return self.directory / CHECKPOINT_NAME

    def after_create(self):
        import types

        self.learn._do_fit = types.MethodType(_do_fit_from_start_epoch, self.learn)

    # -- saving -------------------------------------------------------------------------
    def after_epoch(self):
        if self.epoch + 1 >= self.n_epoch:  # the run is about to finish: nothing left to resume
            return
        from ..base.io import save_torch

        learn = self.learn
        rec = learn.recorder
        state = {
            "format": CHECKPOINT_FORMAT, "key": self.key, "epochs_done": self.epoch + 1,
            "model": learn.model.state_dict(),
            "opt": learn.opt.state_dict(),
            "rng": rng_state(learn),
            "recorder": {"count": rec.smooth_loss.count, "val": rec.smooth_loss.val,
                         "values": [[float(v) for v in row] for row in rec.values]},
            "callbacks": {cb.name: cb.ckpt_state() for cb in learn.cbs if hasattr(cb, "ckpt_state")},
            "scaler": learn.scaler.state_dict() if getattr(learn, "scaler", None) is not None else None,
            "live": self._live_state(),
            "files": self._snapshot_files(),
        }
        save_torch(state, self.path)

    def _snapshot_files(self) -> dict:
        if self.carry_dir is None or not self.carry_dir.is_dir():
            return {}
        return {str(f.relative_to(self.carry_dir)): f.read_bytes()
                for f in sorted(self.carry_dir.rglob("*")) if f.is_file()}

    def _live_cb(self):
        return next((cb for cb in self.learn.cbs if type(cb).__name__ == "DVCLiveCallback"), None)

    def _live_state(self):
        cb = self._live_cb()
        return None if cb is None else {"step": cb.live._step, "summary": dict(cb.live.summary)}

    # -- loading ------------------------------------------------------------------------
    def before_fit(self):
        self.learn.start_epoch = 0
        self.resumed_from = None
        state = self._read()
        if state is None:
            return
        learn = self.learn
        learn.model.load_state_dict(state["model"])
        learn.opt.load_state_dict(state["opt"])
        rec = learn.recorder
        rec.smooth_loss.count, rec.smooth_loss.val = state["recorder"]["count"], state["recorder"]["val"]
        rec.values = [list(row) for row in state["recorder"]["values"]]
        for cb in learn.cbs:
            if hasattr(cb, "ckpt_load") and cb.name in state["callbacks"]:
                cb.ckpt_load(state["callbacks"][cb.name])
        if state["scaler"] is not None and getattr(learn, "scaler", None) is not None:
            learn.scaler.load_state_dict(state["scaler"])
        self._restore_files(state["files"], state["live"])
        set_rng_state(learn, state["rng"])
        learn.start_epoch = self.resumed_from = int(state["epochs_done"])
        print(f"resuming after epoch {self.resumed_from} of {self.n_epoch} from {str(self.path)!r}", flush=True)

    def _read(self):
        import sys

        from ..base.io import CheckpointError, load_torch

        if not self.path.is_file():
            return None
        try:
            state = load_torch(self.path)
            if not (isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT):
                raise CheckpointError(f"{str(self.path)!r} is not a run checkpoint of format {CHECKPOINT_FORMAT}")
        except CheckpointError as e:
            print(f"warning: ignoring the unreadable run checkpoint ({e}); the run starts over",
                  file=sys.stderr, flush=True)
            return None
        if state.get("key") != self.key or not 0 < int(state["epochs_done"]) < self.n_epoch:
            return None  # another configuration's checkpoint (hash collision or a changed epoch count)
        return state

    def _restore_files(self, files: dict, live: dict | None) -> None:
        csv_loggers = [cb for cb in self.learn.cbs
                       if type(cb).__name__ == "CSVLogger" and getattr(cb, "file", None) is not None]
        for cb in csv_loggers:  # it opened its file (header only) in before_fit: close, restore, append
            cb.file.close()
        if self.carry_dir is not None:
            for rel, data in files.items():
                f = self.carry_dir / rel
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_bytes(data)
        for cb in csv_loggers:
            cb.file = open(cb.file.name, "a")
        cb = self._live_cb()
        if cb is not None and live is not None:
            cb.live._step = live["step"]
            cb.live.summary = dict(live["summary"])


__all__ = ["AdversarialTraining", "GaussianNoise", "MaskEnforcer", "LearnableMask", "RaiseOnNaN",
           "NonFiniteLossError", "CancelFitException", "BN_MODES", "EpochCheckpoint"]


class HeldOutValidation(Callback):
    """Checkpoint selection on held-out training images (the official Double-Win code validates on
    the last 5,000 training images and keeps the best-validation-SA and best-validation-RA weights).

    After every epoch: validation SA on every image of ``loader`` (default: the learner's valid
    loader, which the caller fills with held-out *training* images, never the test set) and
    validation RA under ``attack_kwargs`` PGD on its first ``n_robust`` images (0 = no RA, no
    ``best_ra``), both in float32 (no autocast) on an eval-mode copy of the model. ``self.history``
    holds ``{'epoch', 'val_sa', 'val_ra'}`` per epoch; ``self.best`` maps ``'best_sa'``/``'best_ra'``
    to ``{'epoch', 'value', 'state'}`` (a CPU copy of the weights; ties keep the earlier epoch).
    The random start of epoch ``e`` is seeded with ``(seed, e)``: a resumed run gives the same numbers.
    """

    order = 60  # after the Recorder's validation pass, before snapshots (90) and EpochCheckpoint (99)

    def __init__(self, attack_kwargs: dict, n_robust: int, seed: int = 0, loader=None):
        if n_robust < 0:
            raise ValueError(f"n_robust must be >= 0, got {n_robust}")
        self.attack_kwargs, self.n_robust, self.seed, self.loader = dict(attack_kwargs), int(n_robust), seed, loader
        self.history: list[dict] = []
        self.best: dict[str, dict] = {}

    def before_fit(self):
        self.history, self.best = [], {}

    def after_epoch(self):
        from functools import partial

        from .. import metrics
        from ..base import runtime
        from ..attacks import pgd

        loader = self.loader if self.loader is not None else self.learn.dls.valid
        fast = runtime.inference_model(self.learn.model)  # eval copy; the training model is untouched
        sa = metrics.accuracy(*metrics.collect_logits(fast, loader, progress=False, amp=False))
        ra = None
        if self.n_robust:
            gen = torch.Generator().manual_seed(int(self.seed) * 100_003 + int(self.epoch))
            attack = partial(pgd, amp=False, generator=gen, **self.attack_kwargs)
            ra = metrics.accuracy(*metrics.collect_logits(fast, _first_images(loader, self.n_robust),
                                                          attack=attack, progress=False, amp=False))
        self.history.append({"epoch": int(self.epoch), "val_sa": sa, "val_ra": ra})
        for key, value in (("best_sa", sa), ("best_ra", ra)):
            if value is not None and (key not in self.best or value > self.best[key]["value"]):
                state = {k: v.detach().cpu().clone() for k, v in self.learn.model.state_dict().items()}
                self.best[key] = {"epoch": int(self.epoch), "value": value, "state": state}

    def ckpt_state(self):  # EpochCheckpoint: the validation log and the best weights so far
        return {"history": self.history, "best": self.best}

    def ckpt_load(self, state):
        self.history, self.best = list(state["history"]), dict(state["best"])


def _first_images(loader, n: int):
    """The batches of ``loader`` truncated to its first ``n`` images."""
    left = n
    for batch in loader:
        if left <= 0:
            return
        x, y = batch[0], batch[1]
        yield x[:left], y[:left]
        left -= len(y)


__all__ += ["HeldOutValidation"]
