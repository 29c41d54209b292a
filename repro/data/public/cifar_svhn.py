"""CIFAR-10/100 (the python pickles) and SVHN (the cropped-digit .mat files)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ...base.errors import DataError
from ..arrays import ArrayTask
from ..files import first_line

from .common import PUBLIC_DATASETS, cap_check, first_per_class, out_size, resize_all, safe_unpickle, tv_download


# ------------------------------------------------------------------------- CIFAR


@dataclass(frozen=True)
class _Cifar:
    folder: str
    train: tuple[str, ...]
    test: str
    label_key: bytes
    num_classes: int
    tv_class: str


_CIFAR = {
    "cifar10": _Cifar("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch",
                      b"labels", 10, "CIFAR10"),
    "cifar100": _Cifar("cifar-100-python", ("train",), "test", b"fine_labels", 100, "CIFAR100"),
}


def _read_cifar_file(path: Path, spec: _Cifar, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    d = safe_unpickle(path, dataset)
    where = f"{dataset}: file {str(path)!r}"
    if not isinstance(d, dict) or b"data" not in d or spec.label_key not in d:
        keys = sorted(k.decode("latin1") if isinstance(k, bytes) else str(k) for k in d) if isinstance(d, dict) else []
        raise DataError(f"{where} is not a CIFAR batch (a dict with b'data' and {spec.label_key!r}; found keys "
                        f"{keys or type(d).__name__})")
    x = d[b"data"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        raise DataError(f"{where}: b'data' must be uint8 [N, 3072], got "
                        f"{getattr(x, 'dtype', type(x).__name__)} {list(getattr(x, 'shape', []))}")
    try:
        y = np.asarray(d[spec.label_key], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{where}: {spec.label_key!r} must be a list of ints") from None
    if y.shape != (x.shape[0],):
        raise DataError(f"{where}: {spec.label_key!r} has {y.size} labels for {x.shape[0]} images")
    if y.size and (y.min() < 0 or y.max() >= spec.num_classes):
        raise DataError(f"{where}: labels must lie in [0, {spec.num_classes - 1}], found [{y.min()}, {y.max()}]")
    return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), y


def _load_cifar(name: str, root, size: int, max_train=None, max_test=None, download: bool = False,
                upscale: bool = True) -> ArrayTask:
    spec, root = _CIFAR[name], Path(root)
    cap_check(max_train, max_test)
    out = out_size(size, 32, upscale)
    base = root / spec.folder
    files = [base / f for f in (*spec.train, spec.test)]
    missing = [f for f in files if not f.is_file()]
    if missing and download:
        def fetch():
            import torchvision.datasets as tvd

            getattr(tvd, spec.tv_class)(str(root), train=False, download=True)  # one archive, every split
        tv_download(name, root, fetch)
        missing = [f for f in files if not f.is_file()]
    if missing:
        raise DataError(f"{name}: missing {str(missing[0])!r}; set data.root to a folder holding {spec.folder}/ "
                        f"(torchvision layout: {', '.join((*spec.train, spec.test))}) or set data.download: true "
                        f"on a machine with internet")
    parts = [_read_cifar_file(f, spec, name) for f in files[:-1]]
    x_tr, y_tr = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    x_te, y_te = _read_cifar_file(files[-1], spec, name)
    i_tr, i_te = first_per_class(y_tr, max_train), first_per_class(y_te, max_test)
    x_tr, x_te = np.ascontiguousarray(x_tr[i_tr]), np.ascontiguousarray(x_te[i_te])
    return ArrayTask(name, resize_all(x_tr, out), y_tr[i_tr], resize_all(x_te, out), y_te[i_te],
                     spec.num_classes)


@PUBLIC_DATASETS.register("cifar10")
def cifar10(root, size: int = 32, max_train=None, max_test=None, download: bool = False,
            upscale: bool = True) -> ArrayTask:
    """CIFAR-10 from ``root/cifar-10-batches-py`` (python pickles, torchvision layout)."""
    return _load_cifar("cifar10", root, size, max_train, max_test, download, upscale)


@PUBLIC_DATASETS.register("cifar100")
def cifar100(root, size: int = 32, max_train=None, max_test=None, download: bool = False,
             upscale: bool = True) -> ArrayTask:
    """CIFAR-100 (fine labels) from ``root/cifar-100-python`` (python pickles, torchvision layout)."""
    return _load_cifar("cifar100", root, size, max_train, max_test, download, upscale)


# -------------------------------------------------------------------------- SVHN


def _read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io

    where = f"svhn: file {str(path)!r}"
    try:
        m = scipy.io.loadmat(str(path))
    except Exception as e:  # MatReadError, ValueError, zlib.error, OSError, ... from a damaged file
        raise DataError(f"{where} is truncated or corrupted ({first_line(e)})") from None
    if "X" not in m or "y" not in m:
        raise DataError(f"{where} lacks the variables X and y")
    x, y = m["X"], np.asarray(m["y"])
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataError(f"{where}: X must be uint8 [32, 32, 3, N], got {getattr(x, 'dtype', '?')} "
                        f"{list(getattr(x, 'shape', []))}")
    y = y.reshape(-1)
    if y.shape[0] != x.shape[3] or y.dtype.kind not in "iuf" or (y.size and np.any(y != np.round(y))):
        raise DataError(f"{where}: y must hold {x.shape[3]} integer labels, got {y.dtype} {list(m['y'].shape)}")
    y = y.astype(np.int64)
    if y.size and (y.min() < 1 or y.max() > 10):
        raise DataError(f"{where}: labels must lie in [1, 10] (10 = digit 0), found [{y.min()}, {y.max()}]")
    y[y == 10] = 0  # torchvision's mapping
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)), y


@PUBLIC_DATASETS.register("svhn")
def svhn(root, size: int = 32, max_train=None, max_test=None, download: bool = False,
         upscale: bool = True) -> ArrayTask:
    """SVHN (cropped digits) from ``root/{train,test}_32x32.mat`` or ``root/svhn/...``; label 10 -> 0."""
    root = Path(root)
    cap_check(max_train, max_test)
    out = out_size(size, 32, upscale)
    names = ("train_32x32.mat", "test_32x32.mat")

    def find() -> Optional[Path]:
        for d in (root, root / "svhn"):
            if all((d / n).is_file() for n in names):
                return d
        return None

    d = find()
    if d is None and download:
        def fetch():
            import torchvision.datasets as tvd

            for split in ("train", "test"):
                tvd.SVHN(str(root), split=split, download=True)
        tv_download("svhn", root, fetch)
        d = find()
    if d is None:
        miss = next(root / n for n in names if not (root / n).is_file())
        raise DataError(f"svhn: missing {str(miss)!r} (or the same under {str(root / 'svhn')!r}); set data.root to "
                        f"a folder holding train_32x32.mat and test_32x32.mat (torchvision layout) or set "
                        f"data.download: true on a machine with internet")
    x_tr, y_tr = _read_svhn(d / names[0])
    x_te, y_te = _read_svhn(d / names[1])
    i_tr, i_te = first_per_class(y_tr, max_train), first_per_class(y_te, max_test)
    return ArrayTask("svhn", resize_all(x_tr[i_tr], out), y_tr[i_tr], resize_all(x_te[i_te], out), y_te[i_te], 10)
