"""Image classification tasks held as uint8 arrays (augmentation: ``transforms``; loaders: ``loaders``;
subsets and held-out splits: ``splits``).

* ``ArrayTask``: ``x_train [N,H,W,3] uint8``, ``y_train [N] int64``, the test
  split, ``num_classes`` and ``name``; ``mean``/``std`` per channel are computed
  from the training images in [0, 1] (the official code normalizes with the
  downstream dataset's own statistics, inside the model).
  ``save``/``load`` use one ``.npz`` file, written atomically and validated on
  load. A streamed task (ImageNet) holds ``ImageFiles`` instead of arrays
  (``repro/data/files.py``); its file stores the file list, not the pixels.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..base.errors import DataError
from ..base.io import atomic_path
from .files import ImageFiles

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
