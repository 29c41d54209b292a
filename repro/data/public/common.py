"""What every public dataset loader shares: the ``PUBLIC_DATASETS`` registry, per-class caps and fractions,
resizing, the restricted unpickler of the CIFAR pickles, torchvision downloads; ``load_public``."""
from __future__ import annotations

import importlib
import io
import pickle
import re
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ...base.registry import Registry
from ...base.errors import DataError
from ..arrays import ArrayTask
from ..files import first_line, fit_square



PUBLIC_DATASETS: Registry[Callable[..., ArrayTask]] = Registry("public dataset")

HOW = "set data.root to the folder holding it, or set data.download: true on a machine with internet"
IMG_EXT = (".jpeg", ".jpg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


# ----------------------------------------------------------------------- helpers


def first_per_class(labels: np.ndarray, n) -> np.ndarray:
    """Sorted indices of the first ``n`` samples of every class, in order (``None`` = all).

    ``n`` is one cap for every class, or an integer array indexed by class label.
    """
    y = np.asarray(labels)
    if n is None:
        return np.arange(y.shape[0], dtype=np.int64)
    per_class = isinstance(n, np.ndarray)
    if not per_class and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise ValueError(f"a per-class cap must be a positive int or None, got {n!r}")
    if y.size == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(y, kind="stable")
    ys = y[order]
    starts = np.r_[0, np.flatnonzero(ys[1:] != ys[:-1]) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, ys.size]))
    rank = np.arange(ys.size) - group_start
    return np.sort(order[rank < (n[ys] if per_class else n)]).astype(np.int64)


def keep_fraction(task: ArrayTask, fraction: float) -> ArrayTask:
    """The first ``ceil(fraction * n_c)`` images of every class ``c`` of both splits (file order).

    A tier's reduced-data option (``data.fraction``); ``fraction = 1`` returns ``task`` itself.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"data fraction {fraction} is outside (0, 1]")
    if fraction == 1:
        return task
    keep = lambda y: first_per_class(y, np.ceil(np.bincount(y) * fraction).astype(np.int64))  # noqa: E731
    tr, te = keep(task.y_train), keep(task.y_test)
    return ArrayTask(task.name, task.x_train[tr], task.y_train[tr], task.x_test[te], task.y_test[te], task.num_classes)


def resize_all(x: np.ndarray, size: int) -> np.ndarray:
    if x.shape[1] == size and x.shape[2] == size:
        return x
    out = np.empty((x.shape[0], size, size, 3), np.uint8)
    for i in range(x.shape[0]):
        out[i] = fit_square(x[i], size)
    return out


def out_size(size: int, native: int, upscale: bool) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"image size must be a positive int, got {size!r}")
    return int(size) if upscale or native >= size else native


def natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def cap_check(max_train, max_test) -> None:
    for k, v in (("max_train", max_train), ("max_test", max_test)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise ValueError(f"{k} must be a positive int (images per class) or None, got {v!r}")


# ------------------------------------------------------------- restricted unpickler


def _numpy_global(module: str, name: str):
    # numpy >= 2 moved numpy.core to numpy._core (the old name warns); files written by either load
    for mod in (module.replace("numpy.core", "numpy._core", 1), module):
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {module}.{name}")


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # protocol-5 arrays
}


class _ForbiddenGlobal(pickle.UnpicklingError):
    pass


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves only the globals numpy arrays need; a CIFAR pickle holds nothing else."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return _numpy_global(module, name)
        raise _ForbiddenGlobal(f"refusing to unpickle the global {module}.{name} (only numpy arrays, dicts, "
                               f"lists, bytes and numbers are allowed)")


def safe_unpickle(path: str | Path, dataset: str = "dataset"):
    """``pickle.load(f, encoding="bytes")`` of ``path`` through the restricted unpickler.

    Missing file, forbidden global, truncated or corrupted pickle: one ``DataError`` naming the file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{dataset}: file {str(path)!r} does not exist") from None
    except OSError as e:
        raise DataError(f"{dataset}: cannot read {str(path)!r} ({first_line(e)})") from None
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except _ForbiddenGlobal as e:
        raise DataError(f"{dataset}: {str(path)!r}: {e}") from None
    except Exception as e:  # EOFError, UnpicklingError, ValueError, TypeError, ... from a damaged stream
        raise DataError(f"{dataset}: file {str(path)!r} is truncated or corrupted ({first_line(e)})") from None


def tv_download(dataset: str, root: Path, fn: Callable[[], object]) -> None:
    """Run a torchvision download (needs internet); any failure is one ``DataError``."""
    root.mkdir(parents=True, exist_ok=True)
    try:
        fn()
    except Exception as e:  # URLError, integrity errors, ...: pragma: no cover (no internet in tests)
        raise DataError(f"{dataset}: download into {str(root)!r} failed ({first_line(e)})") from None


def read_text(path: Path, dataset: str, how: str) -> str:
    if not path.is_file():
        raise DataError(f"{dataset}: missing {str(path)!r}; {how}")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{dataset}: file {str(path)!r} is unreadable or corrupted ({first_line(e)})") from None


def image_files(folder: Path) -> list[Path]:
    return sorted((f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMG_EXT),
                  key=lambda f: natural_key(f.name))


def load_public(name: str, root, size: int, max_train: Optional[int] = None, max_test: Optional[int] = None,
                download: bool = False, upscale: bool = True) -> ArrayTask:
    """Build the registered public dataset ``name`` from ``root`` (see the module docstring)."""
    return PUBLIC_DATASETS.get(name)(root, size, max_train=max_train, max_test=max_test, download=download,
                                     upscale=upscale)
