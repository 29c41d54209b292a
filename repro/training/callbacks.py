"""fastai callbacks: every paper-specific behaviour of training lives here.

* ``AdversarialTraining``: PGD-k / FGSM-RS replaces the batch before the forward pass.
* ``MaskEnforcer``: pruned weights stay exactly zero (gradients masked after the
  backward pass, weights re-masked after the optimizer step).
* ``GaussianNoise``: random-smoothing pretraining (Gaussian noise, std sigma).
* ``LearnableMask``: LMP score training (scores attached before fit, the final
  binary mask extracted after).
* ``RaiseOnNaN``: a NaN/inf loss stops the run with an error (never a silent result).
"""
from __future__ import annotations

from typing import Callable

import torch
from fastai.callback.core import Callback, CancelFitException
from fastai.callback.fp16 import MixedPrecision

from ..attacks import bn_mode as _bn_mode
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
    """Keep pruned weights exactly zero through SGD with momentum and weight decay."""

    order = 5

    def __init__(self, mask: Mask):
        self.mask = mask
        self._pairs: list[tuple[torch.nn.Parameter, torch.Tensor]] = []

    def before_fit(self):
        model = self.learn.model
        self.mask.check_compatible(model)
        params = dict(model.named_parameters())
        self._pairs = []
        for name, m in self.mask.items():
            p = params[name]
            self._pairs.append((p, m.to(device=p.device, dtype=p.dtype)))
        self._apply_to_weights()

    @torch.no_grad()
    def _apply_to_weights(self):
        for p, m in self._pairs:
            p.mul_(m)

    @torch.no_grad()
    def after_backward(self):
        for p, m in self._pairs:
            if p.grad is not None:
                p.grad.mul_(m)

    def after_step(self):
        self._apply_to_weights()


class LearnableMask(Callback):
    """LMP: learn a mask over frozen pretrained weights (straight-through top-k scores).

    Before fit, score parameters are attached to every conv in scope and the
    optimizer is rebuilt over the scores (and the new classifier when
    ``train_head``); after fit, the scores are removed and ``self.mask`` holds
    the binary ticket with exactly ``density`` kept per layer.
    """

    order = 1

    def __init__(self, density: float, granularity: str = "unstructured", train_head: bool = True,
                 seed: int = 0, scope: list[str] | None = None):
        self.density, self.granularity, self.train_head = density, granularity, train_head
        self.seed, self.scope = seed, scope
        self.mask: Mask | None = None

    def before_fit(self):
        from ..tickets import lmp

        model = self.learn.model
        for name, p in model.named_parameters():
            p.requires_grad_(self.train_head and name.startswith("fc."))
        lmp.attach_scores(model, self.density, granularity=self.granularity, seed=self.seed, scope=self.scope)
        device = next(model.parameters()).device
        model.to(device)
        self.learn.create_opt()

    def after_fit(self):
        from ..tickets import lmp

        self.mask = lmp.detach_scores(self.learn.model)


class NonFiniteLossError(RuntimeError):
    pass


class RaiseOnNaN(Callback):
    """Stop with a clear error when the training loss is NaN or infinite."""

    order = 100

    def after_loss(self):
        if self.training and not torch.isfinite(self.learn.loss).all():
            raise NonFiniteLossError(
                f"training loss became {self.learn.loss.detach().float().mean().item()} at epoch {self.epoch}, "
                f"iteration {self.iter}; lower the learning rate or check the inputs")


__all__ = ["AdversarialTraining", "GaussianNoise", "MaskEnforcer", "LearnableMask", "RaiseOnNaN",
           "NonFiniteLossError", "CancelFitException", "BN_MODES"]
