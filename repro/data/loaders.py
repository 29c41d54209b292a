"""fastai loaders of an ``ArrayTask``: ``ArrayDataset`` yields ``(float32 CHW tensor in [0, 1], int64 label)``;
``make_dataloaders`` (training: a fraction of the data, optionally the held-out images as validation),
``test_loader`` and ``array_loader``."""
from __future__ import annotations

import random
from typing import Sequence

import albumentations as A
import numpy as np
import torch
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import Dataset

from ..base import devices, runtime
from ..base.errors import DataError
from .arrays import ArrayTask
from .splits import subset_indices, validation_split
from .transforms import test_transform, train_transform


class ArrayDataset(Dataset):
    """``(float32 CHW in [0, 1], int64 label)`` items from uint8 HWC images.

    ``indices`` selects a view of the arrays without copying them; ``transform``
    is an albumentations pipeline applied to each uint8 image (None = identity).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: A.Compose | None = None,
                 indices: Sequence[int] | np.ndarray | None = None):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise DataError(f"ArrayDataset needs uint8 images [N,H,W,3], got {images.dtype} {list(images.shape)}")
        labels = np.asarray(labels)
        if labels.shape != (images.shape[0],):
            raise DataError(f"ArrayDataset needs labels of shape [{images.shape[0]}], got {list(labels.shape)}")
        self.images, self.labels, self.transform = images, labels.astype(np.int64, copy=False), transform
        if indices is None:
            self.indices = np.arange(images.shape[0], dtype=np.int64)
        else:
            self.indices = np.asarray(indices, dtype=np.int64)
            if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= images.shape[0]):
                raise DataError(f"ArrayDataset indices must lie in [0, {images.shape[0] - 1}]")

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, i: int):
        j = self.indices[i]
        img = self.images[j]
        if self.transform is not None:
            img = self.transform(image=img)["image"]
        x = torch.from_numpy(np.ascontiguousarray(img).transpose(2, 0, 1).astype(np.float32) / 255.0)
        return x, torch.tensor(self.labels[j], dtype=torch.int64)

    def reseed(self, seed: int) -> None:
        """Reseed the augmentation stream (used per DataLoader worker)."""
        if self.transform is not None and hasattr(self.transform, "set_random_seed"):
            self.transform.set_random_seed(int(seed) % 2**32)


def _wif_reseed(dl_self=None):
    """fastai calls ``wif`` in each worker after seeding it: give each worker its own augmentation stream."""
    info = torch.utils.data.get_worker_info()
    if info is None:
        return
    ds = info.dataset.d.dataset  # _FakeLoader -> fastai DataLoader -> ArrayDataset
    if isinstance(ds, ArrayDataset):
        ds.reseed(info.seed)


def _device(device) -> torch.device:
    return runtime.device() if device is None else torch.device(device)


def array_loader(images: np.ndarray, labels: np.ndarray | None, bs: int, size: int, recipe: str = "cifar",
                 device=None, num_workers: int = 0) -> TorchDataLoader:
    """A plain evaluation loader (no shuffle, no augmentation) over uint8 images.

    ``labels=None`` gives zeros (e.g. out-of-distribution images). A plain torch
    DataLoader (batches on the CPU, in pinned memory when ``device`` is CUDA; the evaluation functions move
    them to the model's device, ``non_blocking``), so evaluation-only stages never import fastai.
    """
    if labels is None:
        labels = np.zeros(images.shape[0], np.int64)
    ds = ArrayDataset(images, labels, test_transform(size, recipe))
    return TorchDataLoader(ds, batch_size=bs, shuffle=False, drop_last=False, num_workers=num_workers,
                           pin_memory=devices.pin(_device(device)))


def test_loader(task: ArrayTask, bs: int, size: int | None = None, recipe: str = "cifar",
                device=None, num_workers: int = 0) -> TorchDataLoader:
    """Plain evaluation loader over ``task``'s test split (no augmentation)."""
    size = task.image_size[0] if size is None else size
    return array_loader(task.x_test, task.y_test, bs, size, recipe, device, num_workers)


def make_dataloaders(
    task: ArrayTask,
    bs: int,
    size: int | None = None,
    fraction: float = 1.0,
    how: str = "stratified",
    seed: int = 0,
    num_workers: int = 0,
    device=None,
    val_from_train: int = 0,
    recipe: str = "cifar",
    valid_bs: int | None = None,
    drop_last: bool = False,
):
    """fastai ``DataLoaders(train, valid)`` for one run.

    train: shuffled, augmented (``recipe``), restricted to ``fraction`` of the
    training pool (``how``: "stratified" or the official "first"); valid: the
    test split, or, when ``val_from_train > 0``, the last ``val_from_train``
    training images (held out *before* the fraction is taken; not augmented).
    Deterministic given ``seed``: the shuffle RNG and the augmentation stream are
    both derived from it (global RNG states are left untouched). ``device=None``
    puts batches on ``runtime.device()`` (CUDA when present).
    ``dls.c`` is the number of classes, ``dls.task`` the task.
    """
    from fastai.data.core import (
        DataLoaders,  # heavy import, only where training needs it
    )
    from fastai.data.load import DataLoader

    if isinstance(bs, bool) or not isinstance(bs, (int, np.integer)) or bs < 1:
        raise ValueError(f"batch size must be a positive int, got {bs!r}")
    size = task.image_size[0] if size is None else size
    n = task.y_train.shape[0]
    if val_from_train:
        pool, val_idx = validation_split(n, val_from_train)
        vx, vy, v_idx = task.x_train, task.y_train, val_idx
    else:
        pool = np.arange(n, dtype=np.int64)
        vx, vy, v_idx = task.x_test, task.y_test, None
        if task.x_test.shape[0] == 0:
            raise DataError(f"task {task.name!r} has an empty test split; use val_from_train > 0")
    train_idx = pool[subset_indices(task.y_train[pool], fraction, how, seed)]
    if len(train_idx) < 2:
        raise DataError(f"task {task.name!r}: data fraction {fraction} leaves {len(train_idx)} training image; "
                        "allowed: at least 2 (batch norm trains on batches of 2 or more)")
    # a last batch of one image cannot train batch norm (torch raises): it is skipped, the rest of the epoch runs
    drop_last = drop_last or len(train_idx) % bs == 1
    train_ds = ArrayDataset(task.x_train, task.y_train, train_transform(size, seed, recipe), train_idx)
    valid_ds = ArrayDataset(vx, vy, test_transform(size, recipe), v_idx)
    dev = _device(device)
    # fastai draws each DataLoader's shuffle RNG from the global `random` module at
    # construction; build under a seeded state and restore the caller's state after.
    state = random.getstate()
    try:
        random.seed(int(seed))
        # pinned host batches on CUDA (devices.pin): fastai copies each batch to `dev` as it is drawn
        train_dl = DataLoader(train_ds, bs=bs, shuffle=True, drop_last=drop_last, num_workers=num_workers,
                              device=dev, wif=_wif_reseed, pin_memory=devices.pin(dev))
        valid_dl = DataLoader(valid_ds, bs=valid_bs or bs, shuffle=False, drop_last=False,
                              num_workers=num_workers, device=dev, pin_memory=devices.pin(dev))
    finally:
        random.setstate(state)
    dls = DataLoaders(train_dl, valid_dl, device=dev)
    dls.c = task.num_classes
    dls.task = task
    return dls


test_loader.__test__ = False  # type: ignore[attr-defined]
