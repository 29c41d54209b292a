"""The baseline: adversarial fine-tuning written the way the official Double-Win code works.

What the official code does (``../shared/reference/official-code-facts.md``), rebuilt
here from that description so it runs on the same model, data, batch and threads:

* masks are ``torch.nn.utils.prune`` masks: every conv weight becomes
  ``weight_orig * weight_mask``, recomputed by a forward pre-hook on *every*
  forward pass (eleven per PGD-10 step);
* the attack is advertorch's ``LinfPGDAttack`` (``perturb_iterative``): a
  ``delta`` tensor with ``requires_grad``, summed cross-entropy,
  ``loss.backward()`` (which also computes and accumulates every parameter's
  gradient), a signed step, clamp to the eps-ball and to [0, 1];
* the attack runs with the model in train mode (batch statistics), and the
  accumulated parameter gradients are cleared by ``optimizer.zero_grad()``
  before the training backward pass;
* data: a torch ``DataLoader`` over PIL images with torchvision's
  ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip`` and ``ToTensor``.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune
from torch.utils.data import DataLoader, Dataset


class PILArrays(Dataset):
    """uint8 NHWC arrays served as PIL images through torchvision transforms (CIFAR10-style)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, train: bool = True):
        import torchvision.transforms as T
        from PIL import Image

        self.x, self.y, self._pil = x, y, Image.fromarray
        size = x.shape[1]
        aug = [T.RandomCrop(size, padding=4), T.RandomHorizontalFlip()] if train else []
        self.tf = T.Compose([*aug, T.ToTensor()])

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.tf(self._pil(self.x[i])), int(self.y[i])


def loader(x: np.ndarray, y: np.ndarray, bs: int, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(PILArrays(x, y), batch_size=bs, shuffle=True, drop_last=True, generator=g)


def apply_prune_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """``prune.custom_from_mask`` on each masked weight (a forward pre-hook per module)."""
    modules = dict(model.named_modules())
    for name, m in masks.items():
        mod_name, _, pname = name.rpartition(".")
        prune.custom_from_mask(modules[mod_name], pname, m.to(torch.float32))


def advertorch_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float,
                   steps: int) -> torch.Tensor:
    """advertorch ``perturb_iterative`` with L-inf, random init, ``CrossEntropyLoss(reduction='sum')``."""
    delta = torch.zeros_like(x).uniform_(-eps, eps)
    delta = (x + delta).clamp(0, 1) - x
    delta.requires_grad_()
    for _ in range(steps):
        loss = F.cross_entropy(model(x + delta), y, reduction="sum")
        loss.backward()  # parameters' .grad accumulate too, as in advertorch
        grad_sign = delta.grad.detach().sign()
        delta.data = delta.data + alpha * grad_sign
        delta.data = delta.data.clamp(-eps, eps)
        delta.data = (x + delta.data).clamp(0, 1) - x
        delta.grad.data.zero_()
    return (x + delta).clamp(0, 1).detach()


def train_epoch(model: nn.Module, dl: DataLoader, opt: torch.optim.Optimizer, eps: float, alpha: float,
                steps: int, warmup: int = 1, max_batches: int | None = None) -> tuple[int, float]:
    """One epoch of the official adversarial fine-tuning loop; (images, seconds) after ``warmup`` batches."""
    n, t0 = 0, None
    for i, (x, y) in enumerate(dl):
        if max_batches is not None and i >= max_batches:
            break
        if i == warmup:
            t0 = time.perf_counter()
        model.train()
        x_adv = advertorch_pgd(model, x, y, eps, alpha, steps) if steps else x
        loss = F.cross_entropy(model(x_adv), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= warmup:
            n += len(y)
    if t0 is None:
        raise ValueError(f"the loader has too few batches for {warmup} warm-up batch(es)")
    return n, time.perf_counter() - t0
