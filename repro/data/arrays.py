"""Image classification tasks held as uint8 arrays, and their fastai loaders.

* ``ArrayTask``: ``x_train [N,H,W,3] uint8``, ``y_train [N] int64``, the test
  split, ``num_classes`` and ``name``; ``mean``/``std`` per channel are computed
  from the training images in [0, 1] (the official code normalizes with the
  downstream dataset's own statistics, inside the model).
  ``save``/``load`` use one ``.npz`` file, written atomically and validated on
  load. A streamed task (ImageNet) holds ``ImageFiles`` instead of arrays
  (``repro/data/files.py``); its file stores the file list, not the pixels.
* Augmentation recipes (albumentations, a registry ``RECIPES``):
  ``"cifar"`` = pad 4 (zeros) + random crop back + horizontal flip for
  training, identity (or a resize) for testing; ``"imagenet224"`` =
  RandomResizedCrop + flip for training, Resize 256 + CenterCrop 224 for
  testing (the official code's 224-px transfer setting).
* ``ArrayDataset`` yields ``(float32 CHW tensor in [0, 1], int64 label)``.
* ``subset_indices`` (data-limited transfer, 100/10/1 %), ``validation_split``
  (the official "last n_val training images") and ``make_dataloaders`` /
  ``test_loader`` / ``array_loader`` (fastai ``DataLoader`` s).
"""
from __future__ import annotations

import math
import random
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import Dataset

from ..base import runtime
from ..base.errors import DataError
from ..base.io import atomic_path
from ..base.registry import Registry
from .files import ImageFiles

__all__ = [
    "DataError", "ArrayTask", "channel_stats", "Recipe", "RECIPES", "train_transform",
    "test_transform", "ArrayDataset", "subset_indices", "validation_split",
    "make_dataloaders", "test_loader", "array_loader", "SUBSET_METHODS",
]

SUBSET_METHODS = ("stratified", "first")
_KEYS = ("x_train", "y_train", "x_test", "y_test", "num_classes", "name")
#: a streamed task's file: the file lists (relative to ``root``) and its statistics instead of the pixels
_FILE_KEYS = ("files_train", "y_train", "files_test", "y_test", "num_classes", "name", "root", "size", "mean", "std")
#: images a streamed task's channel statistics are computed from (evenly spaced over the training files)
STATS_SAMPLE = 2048


# --------------------------------------------------------------------------- task


def channel_stats(x: np.ndarray, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images ``[N,H,W,C]`` scaled to [0, 1].

    For ``ImageFiles`` (a streamed task): of ``STATS_SAMPLE`` evenly spaced images at the nominal size.
    """
    if isinstance(x, ImageFiles) and len(x):
        x = x.sample(STATS_SAMPLE)
    if x.ndim != 4 or x.shape[0] == 0:
        raise DataError(f"channel_stats needs a non-empty [N,H,W,C] array, got shape {x.shape}")
    c = x.shape[-1]
    s1 = np.zeros(c, np.float64)
    s2 = np.zeros(c, np.float64)
    for i in range(0, x.shape[0], chunk):
        b = x[i:i + chunk].reshape(-1, c).astype(np.float64)
        s1 += b.sum(0)
        s2 += (b * b).sum(0)
    n = x.shape[0] * x.shape[1] * x.shape[2]
    mean = s1 / n
    var = np.maximum(s2 / n - mean**2, 0.0)
    mean, std = mean / 255.0, np.sqrt(var) / 255.0
    std = np.maximum(std, 1e-6)  # a constant channel must not divide by zero in Normalize
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _check_arrays(x_train, y_train, x_test, y_test, num_classes, where: str) -> None:
    """Raise one clear ``DataError`` naming ``where`` and the first problem found."""
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise DataError(f"{where}: num_classes must be a positive int, got {num_classes!r}")
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if not isinstance(x, (np.ndarray, ImageFiles)) or x.dtype != np.uint8:
            raise DataError(f"{where}: x_{split} must be a uint8 array, got {getattr(x, 'dtype', type(x).__name__)}")
        if x.ndim != 4 or x.shape[-1] != 3 or x.shape[1] < 1 or x.shape[2] < 1:
            raise DataError(f"{where}: x_{split} must have shape [N,H,W,3], got {list(x.shape)}")
        if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu":
            raise DataError(f"{where}: y_{split} must be an integer array, got {getattr(y, 'dtype', type(y).__name__)}")
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise DataError(f"{where}: y_{split} must have shape [{x.shape[0]}] to match x_{split}, got {list(y.shape)}")
        if y.size and (int(y.min()) < 0 or int(y.max()) >= num_classes):
            raise DataError(f"{where}: y_{split} labels must lie in [0, {num_classes - 1}], "
                            f"found [{int(y.min())}, {int(y.max())}]")
    if x_train.shape[0] == 0:
        raise DataError(f"{where}: the training split is empty")
    if x_test.shape[0] and x_test.shape[1:] != x_train.shape[1:]:
        raise DataError(f"{where}: x_test images {list(x_test.shape[1:])} differ from x_train {list(x_train.shape[1:])}")


@dataclass(eq=False)
class ArrayTask:
    """One classification task as uint8 arrays (images NHWC RGB, labels int64)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    #: ``(mean, std)`` per channel; computed from ``x_train`` when not given (a streamed task's file stores them)
    stats: tuple | None = field(default=None, repr=False)

    def __post_init__(self):
        self.y_train = np.asarray(self.y_train)
        self.y_test = np.asarray(self.y_test)
        _check_arrays(self.x_train, self.y_train, self.x_test, self.y_test, self.num_classes,
                      f"task {self.name!r}")
        if isinstance(self.x_train, ImageFiles) != isinstance(self.x_test, ImageFiles):
            raise DataError(f"task {self.name!r}: both splits must be arrays, or both ImageFiles")
        self.y_train = self.y_train.astype(np.int64, copy=False)
        self.y_test = self.y_test.astype(np.int64, copy=False)
        self.num_classes = int(self.num_classes)
        if self.stats is None:
            self.stats = channel_stats(self.x_train)
        self.stats = tuple(tuple(float(v) for v in s) for s in self.stats)

    @property
    def mean(self) -> tuple[float, float, float]:
        return self.stats[0]

    @property
    def std(self) -> tuple[float, float, float]:
        return self.stats[1]

    @property
    def streamed(self) -> bool:
        """True when the images are read from their files on demand (``ImageFiles``)."""
        return isinstance(self.x_train, ImageFiles)

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.x_train.shape[1]), int(self.x_train.shape[2])

    def __repr__(self) -> str:
        return (f"ArrayTask({self.name!r}, classes={self.num_classes}, train={len(self.y_train)}, "
                f"test={len(self.y_test)}, size={self.image_size})")

    def save(self, path: str | Path) -> Path:
        """Write one uncompressed ``.npz`` atomically (temporary file + rename)."""
        path = Path(path)
        if self.streamed:
            tr, te = self.x_train, self.x_test
            if tr.root != te.root or tr.size != te.size:
                raise DataError(f"task {self.name!r}: both splits must share one root and size to be saved")
            arrays = dict(files_train=tr.paths, files_test=te.paths, root=np.str_(str(tr.root)),
                          size=np.int64(tr.size), mean=np.asarray(self.mean), std=np.asarray(self.std))
        else:
            arrays = dict(x_train=self.x_train, x_test=self.x_test)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            # a file object: np.savez would append '.npz' to a temporary name
            np.savez(f, **arrays, y_train=self.y_train, y_test=self.y_test,
                     num_classes=np.int64(self.num_classes), name=np.str_(self.name))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ArrayTask":
        """Read and validate a file written by ``save``; every failure is one ``DataError``."""
        path = Path(path)
        where = f"dataset file {str(path)!r}"
        if not path.is_file():
            raise DataError(f"{where} does not exist")
        try:
            with np.load(path, allow_pickle=False) as z:
                keys = _FILE_KEYS if "files_train" in z.files else _KEYS
                missing = [k for k in keys if k not in z.files]
                if missing:
                    raise DataError(f"{where} lacks the arrays {', '.join(missing)}")
                arrs = {k: z[k] for k in keys}  # reads (and CRC-checks) every member now
        except DataError:
            raise
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DataError(f"{where} is truncated or corrupted ({type(e).__name__}: {first})") from None
        nc, name = arrs["num_classes"], arrs["name"]
        if nc.shape != () or nc.dtype.kind not in "iu":
            raise DataError(f"{where}: num_classes must be an integer scalar, got {nc.dtype} {list(nc.shape)}")
        if name.shape != () or name.dtype.kind != "U":
            raise DataError(f"{where}: name must be a string scalar, got {name.dtype} {list(name.shape)}")
        if "files_train" in arrs:
            return cls._load_streamed(arrs, str(name), int(nc), where)
        _check_arrays(arrs["x_train"], arrs["y_train"], arrs["x_test"], arrs["y_test"], int(nc), where)
        return cls(str(name), arrs["x_train"], arrs["y_train"], arrs["x_test"], arrs["y_test"], int(nc))

    @classmethod
    def _load_streamed(cls, arrs: dict, name: str, nc: int, where: str) -> "ArrayTask":
        for k in ("files_train", "files_test"):
            if arrs[k].ndim != 1 or (arrs[k].size and arrs[k].dtype.kind != "U"):
                raise DataError(f"{where}: {k} must be a list of file names, got {arrs[k].dtype} {list(arrs[k].shape)}")
        for k in ("mean", "std"):
            if arrs[k].shape != (3,) or not np.isfinite(arrs[k]).all():
                raise DataError(f"{where}: {k} must be 3 finite numbers, got {arrs[k].tolist()}")
        root = Path(str(arrs["root"]))
        if not root.is_dir():
            raise DataError(f"{where} streams images from {str(root)!r}, which is not a folder here; "
                            f"set data.root to where the dataset lies and rerun the data stage")
        size = int(arrs["size"])
        x_train = ImageFiles(root, arrs["files_train"], size, name)
        x_test = ImageFiles(root, arrs["files_test"], size, name)
        stats = (tuple(arrs["mean"].tolist()), tuple(arrs["std"].tolist()))
        return cls(name, x_train, arrs["y_train"], x_test, arrs["y_test"], nc, stats=stats)


# ----------------------------------------------------------------------- transforms


class Recipe(NamedTuple):
    """Builders of the training (augmenting) and test albumentations pipelines."""

    train: Callable[[int], list]
    test: Callable[[int], list]


RECIPES: Registry[Recipe] = Registry("augmentation recipe")


class _MaybeResize(A.ImageOnlyTransform):
    """Resize to ``size`` x ``size`` only if needed (identity for native-size images)."""

    def __init__(self, size: int, p: float = 1.0):
        super().__init__(p=p)
        self.size = size

    def apply(self, img, **params):
        if img.shape[0] == self.size and img.shape[1] == self.size:
            return img
        return cv2.resize(img, (self.size, self.size), interpolation=cv2.INTER_LINEAR)

    def get_transform_init_args_names(self):
        return ("size",)


RECIPES.register("cifar")(Recipe(
    # the CIFAR recipe: zero-pad 4, random crop back to size, horizontal flip
    train=lambda size: [_MaybeResize(size), A.Pad(padding=4, fill=0, border_mode=cv2.BORDER_CONSTANT),
                        A.RandomCrop(size, size), A.HorizontalFlip(p=0.5)],
    test=lambda size: [_MaybeResize(size)],
))

RECIPES.register("pad_crop")(Recipe(
    # the CIFAR translation scaled to the image (pad size/8: 4 px at 32, 2 px at 16), no flip:
    # for the synthetic tasks, whose classes are oriented patterns a mirror image would change
    train=lambda size: [_MaybeResize(size), A.Pad(padding=max(1, size // 8), fill=0, border_mode=cv2.BORDER_CONSTANT),
                        A.RandomCrop(size, size)],
    test=lambda size: [_MaybeResize(size)],
))

RECIPES.register("none")(Recipe(
    # no augmentation: the synthetic tasks draw a fresh translation, contrast, phase and noise
    # for every image, so their training set already carries these nuisances
    train=lambda size: [_MaybeResize(size)],
    test=lambda size: [_MaybeResize(size)],
))

RECIPES.register("imagenet224")(Recipe(
    # the official 224-px transfer: RandomResizedCrop + flip; Resize 256 + CenterCrop 224
    train=lambda size: [A.RandomResizedCrop(size=(size, size)), A.HorizontalFlip(p=0.5)],
    test=lambda size: [A.SmallestMaxSize(max_size=int(round(size * 256 / 224))), A.CenterCrop(size, size)],
))


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"image size must be a positive int, got {size!r}")
    return int(size)


def train_transform(size: int, seed: int | None = 0, recipe: str = "cifar") -> A.Compose:
    """Augmenting pipeline of ``recipe`` producing ``size`` x ``size`` uint8 HWC images.

    The random stream belongs to the ``Compose`` (``seed``), independent of global RNGs.
    """
    return A.Compose(RECIPES.get(recipe).train(_check_size(size)), seed=seed)


def test_transform(size: int, recipe: str = "cifar") -> A.Compose:
    """Deterministic evaluation pipeline of ``recipe`` (identity for native-size CIFAR images)."""
    return A.Compose(RECIPES.get(recipe).test(_check_size(size)), seed=0)


# pytest must not collect these public helpers as tests when a test module imports them
train_transform.__test__ = test_transform.__test__ = False  # type: ignore[attr-defined]


# ------------------------------------------------------------------------- dataset


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


# ----------------------------------------------------------------------- subsets


def _check_fraction(fraction) -> float:
    try:
        f = float(fraction)
    except (TypeError, ValueError):
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}") from None
    if isinstance(fraction, bool) or not math.isfinite(f) or not 0 < f <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    return f


def subset_indices(y: np.ndarray, fraction: float, how: str = "stratified", seed: int = 0) -> np.ndarray:
    """Sorted indices of a ``fraction`` of the samples with labels ``y`` (data-limited transfer).

    ``"stratified"`` (default): per class, ``max(1, round(fraction * n_c))`` samples
    drawn at random (``seed``), so class proportions are kept and every present
    class keeps at least one sample (for tiny fractions the total may therefore
    exceed ``round(fraction * N)``). ``"first"``: the official code's first
    ``max(1, round(fraction * N))`` samples, in dataset order.
    """
    f = _check_fraction(fraction)
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {list(y.shape)}")
    n = y.shape[0]
    if how == "first":
        return np.arange(max(1, int(round(f * n))), dtype=np.int64)
    if how != "stratified":
        raise ValueError(f"subset method {how!r} is not allowed; allowed: {', '.join(SUBSET_METHODS)}")
    if f == 1.0:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) % 2**32, 0x5B5E7]))
    picked = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        k = min(idx.size, max(1, int(round(f * idx.size))))
        picked.append(rng.permutation(idx)[:k])
    return np.sort(np.concatenate(picked)).astype(np.int64)


def validation_split(n: int, n_val: int) -> tuple[np.ndarray, np.ndarray]:
    """The official code's validation set: the last ``n_val`` of ``n`` training images.

    Returns ``(train_indices, val_indices)``.
    """
    if isinstance(n_val, bool) or not isinstance(n_val, (int, np.integer)) or not 0 <= n_val < n:
        raise ValueError(f"n_val must be an int in [0, {n - 1}] for {n} training images, got {n_val!r}")
    return np.arange(n - n_val, dtype=np.int64), np.arange(n - n_val, n, dtype=np.int64)


def check_held_out(n: int, total: int, task: str | None = None) -> None:
    """``transfer.validation.n`` held-out images must leave training images: ``n`` in [1, ``total`` - 1].
    One check for the data stage (early, naming the task) and the transfer stages (at split time)."""
    if not 0 < n < total:
        where = f"task {task!r} has {total} training images (after data.fraction)" if task else \
            f"there are {total} training images"
        raise DataError(f"transfer.validation.n = {n} held-out images, but {where}; allowed: n in [1, {total - 1}] "
                        "(lower transfer.validation.n, or use more data)")


# ---------------------------------------------------------------------- loaders


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
    DataLoader (batches on the CPU; the evaluation functions move them to the
    model's device), so evaluation-only stages never import fastai.
    """
    if labels is None:
        labels = np.zeros(images.shape[0], np.int64)
    ds = ArrayDataset(images, labels, test_transform(size, recipe))
    return TorchDataLoader(ds, batch_size=bs, shuffle=False, drop_last=False, num_workers=num_workers,
                           pin_memory=_device(device).type == "cuda")


def test_loader(task: ArrayTask, bs: int, size: int | None = None, recipe: str = "cifar",
                device=None, num_workers: int = 0) -> TorchDataLoader:
    """Plain evaluation loader over ``task``'s test split (no augmentation)."""
    size = task.image_size[0] if size is None else size
    return array_loader(task.x_test, task.y_test, bs, size, recipe, device, num_workers)


test_loader.__test__ = False  # type: ignore[attr-defined]


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
    from fastai.data.core import DataLoaders  # heavy import, only where training needs it
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
    train_ds = ArrayDataset(task.x_train, task.y_train, train_transform(size, seed, recipe), train_idx)
    valid_ds = ArrayDataset(vx, vy, test_transform(size, recipe), v_idx)
    dev = _device(device)
    # fastai draws each DataLoader's shuffle RNG from the global `random` module at
    # construction; build under a seeded state and restore the caller's state after.
    state = random.getstate()
    try:
        random.seed(int(seed))
        train_dl = DataLoader(train_ds, bs=bs, shuffle=True, drop_last=drop_last, num_workers=num_workers,
                              device=dev, wif=_wif_reseed)
        valid_dl = DataLoader(valid_ds, bs=valid_bs or bs, shuffle=False, drop_last=False,
                              num_workers=num_workers, device=dev)
    finally:
        random.setstate(state)
    dls = DataLoaders(train_dl, valid_dl, device=dev)
    dls.c = task.num_classes
    dls.task = task
    return dls
