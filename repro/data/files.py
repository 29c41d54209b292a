"""Images read from their files on demand: the streaming side of an ``ArrayTask``.

Full ImageNet (1.28 M JPEGs, ~140 GB) cannot be an in-memory array, yet the official code runs IMP
on all of it. ``ImageFiles`` stands in for a ``uint8 [N, H, W, 3]`` array wherever a task's images
are used, and decodes each image only when it is indexed:

* ``files[i]`` (an integer) is image ``i`` decoded to uint8 RGB at its **native** size, as
  torchvision's ``ImageFolder`` hands it to the transforms, so the ``imagenet224`` recipe crops and
  resizes the original image (RandomResizedCrop + flip; Resize 256 + CenterCrop 224), as the
  official code does.
* ``files[slice]``, ``files[int array]``, ``files[bool mask]`` are views (no decoding).
* ``np.asarray(files)`` decodes every image fitted to the nominal ``size`` x ``size``
  (:func:`fit_square`); meant for small views (channel statistics on a sample, the domain gap).
* ``shape`` is ``(N, size, size, 3)``, ``dtype`` uint8, ``ndim`` 4, like the array it replaces.

Paths are stored relative to ``root`` (the ``data.root`` parameter), so a task index written on
one machine (``runs/data/<name>.npz``, a few MB for ImageNet) reads the same files on another
machine that has the dataset under its own ``data.root``. A missing or damaged file is a one-line
``DataError`` naming it when the image is read.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..base.errors import DataError

__all__ = ["ImageFiles", "fit_square", "read_image", "read_images", "first_line"]


def first_line(e: BaseException) -> str:
    s = str(e).strip()
    return f"{type(e).__name__}: {s.splitlines()[0]}" if s else type(e).__name__


def read_image(path: Path, dataset: str) -> np.ndarray:
    """Decode one image file to uint8 RGB HWC (grayscale/CMYK/palette converted, as torchvision does)."""
    from PIL import Image

    if not path.is_file():
        raise DataError(f"{dataset}: image file {str(path)!r} does not exist")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
        raise DataError(f"{dataset}: image file {str(path)!r} is truncated or corrupted ({first_line(e)})") from None


def fit_square(img: np.ndarray, size: int) -> np.ndarray:
    """uint8 HWC image -> ``size`` x ``size``: shorter side to ``size``, centre crop.

    ``cv2.INTER_AREA`` when downsizing, ``cv2.INTER_LINEAR`` when upsizing;
    an image already at ``size`` x ``size`` is returned unchanged.
    """
    h, w = img.shape[:2]
    if h == size and w == size:
        return img
    scale = size / min(h, w)
    nh, nw = max(size, int(round(h * scale))), max(size, int(round(w * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    r = cv2.resize(np.ascontiguousarray(img), (nw, nh), interpolation=interp)
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    return np.ascontiguousarray(r[top:top + size, left:left + size])


def read_images(paths: Sequence[Path], size: int, dataset: str) -> np.ndarray:
    """Decode image files into one uint8 ``[N, size, size, 3]`` array (:func:`fit_square` each)."""
    out = np.empty((len(paths), size, size, 3), np.uint8)
    for i, p in enumerate(paths):
        out[i] = fit_square(read_image(Path(p), dataset), size)
    return out


class ImageFiles:
    """A lazy ``uint8 [N, size, size, 3]`` array of image files under ``root`` (see the module docstring)."""

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, root: str | Path, paths: Sequence[str] | np.ndarray, size: int, dataset: str):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"image size must be a positive int, got {size!r}")
        self.root = Path(root)
        self.paths = np.asarray(paths, dtype=np.str_).reshape(-1)
        self.size = int(size)
        self.dataset = str(dataset)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (int(self.paths.shape[0]), self.size, self.size, 3)

    def __len__(self) -> int:
        return int(self.paths.shape[0])

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            return read_image(self.root / self.paths[key], self.dataset)
        if isinstance(key, tuple):
            raise TypeError("ImageFiles can only be indexed along the first axis (images)")
        return ImageFiles(self.root, self.paths[key], self.size, self.dataset)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = read_images([self.root / p for p in self.paths], self.size, self.dataset)
        return out if dtype is None else out.astype(dtype)

    def sample(self, n: int) -> np.ndarray:
        """``n`` evenly spaced images (all when fewer), decoded at the nominal size."""
        if len(self) <= n:
            return np.asarray(self)
        return np.asarray(self[np.linspace(0, len(self) - 1, n).round().astype(np.int64)])

    def __repr__(self) -> str:
        return f"ImageFiles({self.dataset!r}, {len(self)} files under {str(self.root)!r}, size={self.size})"
