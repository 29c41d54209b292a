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
from ..base import timing
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
    classifier get a useful gradient (SA at 1/K, loss at ln K).
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
    activations (or a far domain's), so the penultimate features collapse and the head cannot learn
    (the numbers are in docs/RESULTS.md, under linear evaluation). The frozen-BN
    training that follows (fastai ``BnFreeze``) keeps these statistics.
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


class CountImages(Callback):
    """Count the images of every batch (training and validation) for the stage's timing record
    (``repro.base.timing``); changes nothing in training."""

    order = 101

    def after_batch(self):
        timing.count_images(len(self.yb[0]) if self.yb else 0)


__all__ = ["AdversarialTraining", "CountImages", "GaussianNoise", "MaskEnforcer", "LearnableMask", "RaiseOnNaN",
           "NonFiniteLossError", "CancelFitException", "BN_MODES"]


__all__ += ["HeldOutValidation"]
