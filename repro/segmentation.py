"""Segmentation transfer of a ticket (Robust Tickets Fig. 7, Double-Win Fig. A10's VOC panel).

* ``SegmentationNet``: the ticket's ResNet backbone with torchvision's segmentation head
  (``FCNHead`` or ``DeepLabHead`` of ``torchvision.models.segmentation``) as ``classifier``. The
  backbone's modules are registered under their own names (``conv1``, ``bn1``, ``layer1`` ...,
  ``normalize``; no ``fc``), so its parameter names are torchvision's ResNet names and the
  classification ticket's mask applies as is (``MaskEnforcer``). ImageNet ResNets with
  bottleneck blocks get torchvision's segmentation geometry (``replace_stride_with_dilation =
  [False, True, True]``, output stride 8: the strides, dilations and paddings of torchvision's
  own dilated ResNet are copied onto the convs); the CIFAR ResNets of the embedded default keep
  their strides (a 16-px input gives a 4 x 4 map). Logits are bilinearly upsampled to the input.
* ``SegConfig`` / ``IterationSchedule``: RT's iteration-based recipe (30k iterations, SGD
  momentum 0.9, weight decay 1e-4, batch 4, lr x0.1 at 18k and 22k; RT names no base lr, 0.01 is
  the named choice). ``train_segmentation`` builds a fastai ``Learner`` (loss: cross-entropy
  ignoring 255; metrics: mIoU and pixel accuracy) and runs that many optimizer steps.
* ``confusion`` / ``miou`` / ``pixel_accuracy``: the metrics from a class confusion matrix
  (pixels labelled 255 ignored; mIoU over the classes present in the labels or predictions).
"""
from __future__ import annotations

import math
import random
from functools import partial
from typing import Optional

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from .config.params import SegRecipe
from .data.segmentation import IGNORE, SegTask
from .tickets.mask import Mask

__all__ = ["SegmentationNet", "SegConfig", "SegDataset", "confusion", "miou", "pixel_accuracy", "train_segmentation",
           "evaluate_segmentation", "HEADS"]

HEADS = ("fcn", "deeplabv3")
_BACKBONE = ("normalize", "conv1", "bn1", "relu", "maxpool")


def _dilate_like_torchvision(net: nn.Module) -> None:
    """Output stride 8: copy stride/dilation/padding of torchvision's dilated ResNet onto ``net``'s convs."""
    from torchvision.models import resnet as tvr

    layers = [len(getattr(net, f"layer{i}")) for i in range(1, 5)]
    with torch.device("meta"):
        ref = tvr.ResNet(tvr.Bottleneck, layers, replace_stride_with_dilation=[False, True, True])
    mods = dict(net.named_modules())
    for name, m in ref.named_modules():
        if isinstance(m, nn.Conv2d):
            mine = mods[name]
            mine.stride, mine.dilation, mine.padding = m.stride, m.dilation, m.padding


class SegmentationNet(nn.Module):
    """ResNet backbone (its own parameter names) + torchvision FCN / DeepLabV3 head as ``classifier``."""

    def __init__(self, backbone: nn.Module, num_classes: int, head: str = "fcn", dilate: Optional[bool] = None):
        super().__init__()
        from torchvision.models.segmentation.deeplabv3 import DeepLabHead
        from torchvision.models.segmentation.fcn import FCNHead

        if head not in HEADS:
            raise ValueError(f"segmentation head {head!r} is not allowed; allowed: {', '.join(HEADS)}")
        stages = [n for n in ("layer1", "layer2", "layer3", "layer4", "layer5") if hasattr(backbone, n)]
        for n in (*_BACKBONE, *stages):
            self.add_module(n, getattr(backbone, n))
        self.stages = stages
        last = getattr(backbone, stages[-1])[-1]
        channels = (last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels
        bottleneck_imagenet = len(stages) == 4 and hasattr(last, "conv3") and not isinstance(backbone.maxpool, nn.Identity)
        if dilate is None:
            dilate = bottleneck_imagenet
        if dilate:
            if not bottleneck_imagenet:
                raise ValueError("dilation (output stride 8) needs an ImageNet ResNet with bottleneck blocks")
            _dilate_like_torchvision(self)
        self.classifier = FCNHead(channels, num_classes) if head == "fcn" else DeepLabHead(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        f = self.maxpool(self.relu(self.bn1(self.conv1(self.normalize(x)))))
        for n in self.stages:
            f = getattr(self, n)(f)
        return F.interpolate(self.classifier(f), size=size, mode="bilinear", align_corners=False)


# ------------------------------------------------------------------------------- metrics


def confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[C, C] counts (rows: label, columns: prediction) over pixels whose label is not 255."""
    keep = target != IGNORE
    idx = target[keep].long() * num_classes + pred[keep].long()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes).cpu()


def miou(conf: torch.Tensor | np.ndarray) -> float:
    """Mean over classes present (in labels or predictions) of TP / (TP + FP + FN)."""
    c = np.asarray(conf, dtype=np.float64)
    tp = np.diag(c)
    union = c.sum(0) + c.sum(1) - tp
    present = union > 0
    return float((tp[present] / union[present]).mean()) if present.any() else 0.0


def pixel_accuracy(conf: torch.Tensor | np.ndarray) -> float:
    c = np.asarray(conf, dtype=np.float64)
    return float(np.trace(c) / c.sum()) if c.sum() else 0.0


def _metric(fn, name: str):
    from fastai.metrics import Metric

    class _SegMetric(Metric):
        def reset(self):
            self.conf = None

        def accumulate(self, learn):
            pred, y = learn.pred.argmax(1), learn.y if not isinstance(learn.y, tuple) else learn.y[0]
            c = confusion(pred, y, learn.pred.shape[1])
            self.conf = c if self.conf is None else self.conf + c

        @property
        def value(self):
            return None if self.conf is None else fn(self.conf)

        @property
        def name(self):
            return name

    return _SegMetric()


# ---------------------------------------------------------------------------------- data


class SegDataset(Dataset):
    """``(float32 CHW in [0, 1], int64 HW mask)``; training items are flipped horizontally with p = 0.5
    from a generator seeded by (seed, item, draw count), so a run is reproducible."""

    def __init__(self, x: np.ndarray, m: np.ndarray, train: bool, seed: int = 0, indices=None):
        self.x, self.m, self.train, self.seed = x, m, train, int(seed)
        self.indices = np.arange(x.shape[0]) if indices is None else np.asarray(indices)
        self.draws = 0

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, i: int):
        j = int(self.indices[i])
        img, mask = self.x[j], self.m[j]
        if self.train:
            self.draws += 1
            if np.random.default_rng([self.seed, j, self.draws]).random() < 0.5:
                img, mask = img[:, ::-1], mask[:, ::-1]
        x = torch.from_numpy(np.ascontiguousarray(img).transpose(2, 0, 1).astype(np.float32) / 255.0)
        return x, torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64))


# ------------------------------------------------------------------------------ training


#: the recipe ``train_segmentation`` takes (``SegmentParams`` is one): one definition, in the config layer
SegConfig = SegRecipe


def _iteration_schedule(cfg: SegConfig):
    from fastai.callback.core import Callback, CancelFitException

    class IterationSchedule(Callback):
        """Sets the lr of every step from the step count and ends the fit after ``cfg.iterations`` steps."""

        order = 60

        def before_fit(self):
            self.step = 0  # optimizer steps taken (fastai's train_iter lags by one when the fit is cancelled)

        def before_batch(self):
            if self.training:
                self.opt.set_hyper("lr", cfg.lr_at(self.step))

        def after_step(self):
            self.step += 1
            if self.step >= cfg.iterations:
                raise CancelFitException()

    return IterationSchedule()


def epoch_plan(n_train: int, batch_size: int, iterations: int) -> tuple[int, int]:
    """(training batches an epoch, epochs) of a run: whole batches (the last partial one dropped) when a batch
    fits, else one short batch; whole epochs until ``iterations`` batches are done. The cost planner uses it too."""
    batches = n_train // batch_size if n_train >= batch_size else 1
    return batches, int(math.ceil(iterations / batches))


def train_segmentation(task: SegTask, backbone: nn.Module, cfg: SegConfig, *, mask: Optional[Mask] = None,
                       head: str = "fcn", seed: int = 0, device=None, train_fraction: float = 1.0):
    """Fine-tune ``backbone`` (with ``mask`` enforced) + a new head on ``task``: a fitted fastai Learner.

    The validation set is the task's test split (metrics after the last epoch: ``mIoU``, ``pixel_acc``).
    """
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.learner import Learner
    from fastai.optimizer import OptimWrapper

    from .base import devices, runtime
    from .training.callbacks import CountImages, MaskEnforcer, RaiseOnNaN

    dev = torch.device(device) if device is not None else runtime.device()
    torch.manual_seed(seed)
    model = devices.place(SegmentationNet(backbone, task.num_classes, head), dev)  # the device seam
    n_train = task.x_train.shape[0]
    keep = np.arange(max(1, int(math.ceil(n_train * train_fraction))))
    state = random.getstate()  # fastai draws the shuffle RNG from `random` at construction
    try:
        random.seed(int(seed))
        train_dl = DataLoader(SegDataset(task.x_train, task.m_train, True, seed, keep), bs=cfg.batch_size,
                              shuffle=True, drop_last=len(keep) >= cfg.batch_size, device=dev, num_workers=0)
        valid_dl = DataLoader(SegDataset(task.x_test, task.m_test, False), bs=max(cfg.batch_size, 32), shuffle=False,
                              device=dev, num_workers=0)
    finally:
        random.setstate(state)
    dls = DataLoaders(train_dl, valid_dl, device=dev)
    cbs = [RaiseOnNaN(), CountImages(), _iteration_schedule(cfg)]
    if mask is not None:
        mask.apply(model)
        cbs.append(MaskEnforcer(mask))
    opt = partial(OptimWrapper, opt=torch.optim.SGD, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss(ignore_index=IGNORE), opt_func=opt, lr=cfg.lr,
                    cbs=cbs, metrics=[_metric(miou, "miou"), _metric(pixel_accuracy, "pixel_acc")],
                    wd_bn_bias=True, train_bn=True)
    learn.recorder.add_time = False
    learn.remove_cbs([cb for cb in learn.cbs if type(cb).__name__ == "ProgressCallback"])
    learn.logger = lambda *a, **k: None
    _, epochs = epoch_plan(len(keep), cfg.batch_size, cfg.iterations)  # len(train_dl) batches an epoch
    learn.fit(epochs, lr=cfg.lr)
    return learn


@torch.no_grad()
def evaluate_segmentation(model: nn.Module, task: SegTask, batch_size: int = 64, seed: int = 0) -> dict:
    """mIoU and pixel accuracy of ``model`` (eval mode) on ``task``'s test split, and ``miou_se``: the bootstrap
    standard error of the mIoU over the test images (:func:`miou_bootstrap_se`; the claims' noise for one run)."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    per_image = []
    try:
        for s in range(0, task.x_test.shape[0], batch_size):
            x = torch.from_numpy(task.x_test[s:s + batch_size]).permute(0, 3, 1, 2).float().div_(255).to(dev)
            y = torch.from_numpy(task.m_test[s:s + batch_size].astype(np.int64)).to(dev)
            pred = model(x).argmax(1)
            per_image += [confusion(pred[i], y[i], task.num_classes) for i in range(len(y))]
    finally:
        model.train(was)
    stack = torch.stack(per_image)
    conf = stack.sum(0)
    return {"miou": miou(conf), "pixel_acc": pixel_accuracy(conf), "confusion": conf.tolist(),
            "miou_se": miou_bootstrap_se(stack.reshape(len(per_image), -1).numpy(), task.num_classes, seed)}


def miou_bootstrap_se(per_image: np.ndarray, num_classes: int, seed: int = 0, draws: int = 200) -> float:
    """Standard deviation of the mIoU over ``draws`` bootstrap resamples of the test images (per-image
    confusion matrices, flattened, one row each)."""
    rng = np.random.default_rng(seed)
    n = per_image.shape[0]
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(draws)])
    confs = (counts @ per_image).reshape(draws, num_classes, num_classes)
    return round(float(np.std([miou(c) for c in confs], ddof=1)), 6)
