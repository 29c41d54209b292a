"""Public image datasets read from their published on-disk formats into ``ArrayTask`` s.

``PUBLIC_DATASETS`` (a registry) maps a name to a loader with one signature::

    loader(root, size, max_train=None, max_test=None, download=False, upscale=True) -> ArrayTask

``root`` is the user's ``data.root`` folder; images come back as uint8 NHWC RGB
arrays at ``size`` x ``size`` (cv2 ``INTER_AREA`` when downsizing, ``INTER_LINEAR``
when upsizing; non-square images: shorter side to ``size``, then the centre
crop); labels are int64. ``ArrayTask`` computes the per-channel mean/std of the
training images, which the pipeline uses as the downstream normalization (as the
official code does). ``max_train`` / ``max_test`` keep only the first N images
*per class* in file order (deterministic; a tier can run on a fraction of a
dataset). ``upscale=False`` keeps fixed-size datasets whose native images are
smaller than ``size`` (CIFAR, SVHN 32 px; Tiny-ImageNet 64 px) at their native
size: every augmentation recipe resizes to the training size anyway, and a
224-px CIFAR array would take 7.5 GB. ``load_public(name, root, size, ...)``
dispatches by name.

Layouts under ``root`` (the formats the datasets are published in):

* ``cifar10``: ``cifar-10-batches-py/data_batch_1..5, test_batch`` (torchvision
  layout: the python pickles, dicts with ``b"data"`` uint8 [N, 3072] row-major
  CHW and ``b"labels"``). ``cifar100``: ``cifar-100-python/train, test``
  (``b"fine_labels"``). The pickles are read by a restricted unpickler that
  resolves only the globals numpy arrays need (``numpy.core.multiarray._reconstruct``,
  ``numpy.ndarray``, ``numpy.dtype``; ``numpy._core`` spellings and
  ``_frombuffer`` of protocol-5 pickles too) and refuses every other one.
  torchvision's dataset classes are not used for reading (they check the md5 of
  the real files); ``download=True`` fetches missing files with them.
* ``svhn``: ``train_32x32.mat``, ``test_32x32.mat`` in ``root`` or ``root/svhn``
  (``X`` [32, 32, 3, N] uint8, ``y`` [N, 1] with 10 meaning digit 0, mapped to 0
  as torchvision does).
* ``tiny_imagenet``: ``tiny-imagenet-200/wnids.txt`` (class order = line order),
  ``train/<wnid>/images/<wnid>_<i>.JPEG``, ``val/images/val_<i>.JPEG`` with
  ``val/val_annotations.txt`` (tab-separated filename, wnid, box); the val split
  is the test split; grayscale JPEGs are converted to RGB.
* ``imagenet``: ``imagenet/train/<wnid>/*.JPEG`` and ``imagenet/val/<wnid>/*.JPEG``
  (the val images sorted into class folders, as ``torchvision.datasets.ImageNet``
  or the usual ``valprep.sh`` leave them); class order = sorted wnids. Streamed:
  the task holds the file list (``repro.data.files.ImageFiles``) and each image is
  decoded when a loader reads it, so all 1.28 M images serve paper-scale IMP; the
  per-class caps, when set, take the first files of each class.
* The Robust Tickets Fig. 9 sets, through the torchvision dataset classes (their
  layouts, under ``root``): ``aircraft`` (FGVCAircraft, trainval / test,
  ``fgvc-aircraft-2013b/``), ``pets`` (OxfordIIITPet, trainval / test,
  ``oxford-iiit-pet/``), ``flowers`` (Flowers102, train+val / test,
  ``flowers-102/``; torchvision checks the md5 of ``imagelabels.mat`` and
  ``setid.mat``, so only the real files load), ``cars`` (StanfordCars, train /
  test, ``stanford_cars/``; no longer downloadable), ``food`` (Food101, train /
  test, ``food-101/``), ``dtd`` (DTD partition 1, train+val / test,
  ``dtd/dtd/``), and the sets without an official split, split per class in
  torchvision's order: ``sun397`` (``SUN397/``, the first 50 images per class
  train, the next 50 test, the size of the standard partitions; files sorted by
  path), ``caltech101`` (``caltech101/101_ObjectCategories/``, 30 per class train,
  the rest test), ``caltech256`` (``caltech256/256_ObjectCategories/``, 60 per
  class train, the rest test).
* ``cub200``: ``CUB_200_2011/`` (the published archive): ``images.txt`` (``<id> <path>``),
  ``image_class_labels.txt`` (``<id> <class>``, 1-based), ``train_test_split.txt`` (``<id> <1 =
  train>``), ``classes.txt``, ``images/<path>``; the official split (Double-Win Fig. A10).
* ``visda17``: VisDA-2017 classification, ``visda17/{train,validation}/`` (the published tars), each
  with ``image_list.txt`` (``<path relative to the split> <label 0-11>``) and ``<class>/...`` images;
  train = ``train`` (synthetic), test = ``validation`` (real) (Double-Win Fig. A10).
* ``birdsnap``: Birdsnap 1.1, ``birdsnap/`` (the published archive): tab-separated ``species.txt``,
  ``images.txt`` (``path``, ``species_id`` columns) and ``test_images.txt`` (header ``path``), each
  with a header line; images as ``get_birdsnap.py`` stores them (``download/images/<path>``, or
  ``images/<path>``); test = the 2,443 listed images, train = the rest; images named in the script's
  ``fail.txt`` and absent are skipped (Robust Tickets Fig. 9).

Every missing file is one ``DataError`` naming the dataset, the path expected
and how to get it; truncated or corrupted files are a ``DataError`` naming the
file. torchvision is imported only for downloads and the Fig. 9 sets; scipy and
PIL only when a loader needs them.
"""
from __future__ import annotations

import importlib
import io
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..base.registry import Registry
from ..base.errors import DataError
from .arrays import ArrayTask
from .files import ImageFiles, fit_square, read_images
from .files import first_line as _first_line

__all__ = ["PUBLIC_DATASETS", "load_public", "first_per_class", "fit_square", "safe_unpickle", "TorchvisionSpec",
           "TORCHVISION_SETS", "VISDA_CLASSES"]

PUBLIC_DATASETS: Registry[Callable[..., ArrayTask]] = Registry("public dataset")

_HOW = "set data.root to the folder holding it, or set data.download: true on a machine with internet"
_IMG_EXT = (".jpeg", ".jpg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


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


def _resize_all(x: np.ndarray, size: int) -> np.ndarray:
    if x.shape[1] == size and x.shape[2] == size:
        return x
    out = np.empty((x.shape[0], size, size, 3), np.uint8)
    for i in range(x.shape[0]):
        out[i] = fit_square(x[i], size)
    return out


def _out_size(size: int, native: int, upscale: bool) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"image size must be a positive int, got {size!r}")
    return int(size) if upscale or native >= size else native


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _cap_check(max_train, max_test) -> None:
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
        raise DataError(f"{dataset}: cannot read {str(path)!r} ({_first_line(e)})") from None
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except _ForbiddenGlobal as e:
        raise DataError(f"{dataset}: {str(path)!r}: {e}") from None
    except Exception as e:  # EOFError, UnpicklingError, ValueError, TypeError, ... from a damaged stream
        raise DataError(f"{dataset}: file {str(path)!r} is truncated or corrupted ({_first_line(e)})") from None


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


def _tv_download(dataset: str, root: Path, fn: Callable[[], object]) -> None:
    """Run a torchvision download (needs internet); any failure is one ``DataError``."""
    root.mkdir(parents=True, exist_ok=True)
    try:
        fn()
    except Exception as e:  # URLError, integrity errors, ...: pragma: no cover (no internet in tests)
        raise DataError(f"{dataset}: download into {str(root)!r} failed ({_first_line(e)})") from None


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
    _cap_check(max_train, max_test)
    out = _out_size(size, 32, upscale)
    base = root / spec.folder
    files = [base / f for f in (*spec.train, spec.test)]
    missing = [f for f in files if not f.is_file()]
    if missing and download:
        def fetch():
            import torchvision.datasets as tvd

            getattr(tvd, spec.tv_class)(str(root), train=False, download=True)  # one archive, every split
        _tv_download(name, root, fetch)
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
    return ArrayTask(name, _resize_all(x_tr, out), y_tr[i_tr], _resize_all(x_te, out), y_te[i_te],
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
        raise DataError(f"{where} is truncated or corrupted ({_first_line(e)})") from None
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
    _cap_check(max_train, max_test)
    out = _out_size(size, 32, upscale)
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
        _tv_download("svhn", root, fetch)
        d = find()
    if d is None:
        miss = next(root / n for n in names if not (root / n).is_file())
        raise DataError(f"svhn: missing {str(miss)!r} (or the same under {str(root / 'svhn')!r}); set data.root to "
                        f"a folder holding train_32x32.mat and test_32x32.mat (torchvision layout) or set "
                        f"data.download: true on a machine with internet")
    x_tr, y_tr = _read_svhn(d / names[0])
    x_te, y_te = _read_svhn(d / names[1])
    i_tr, i_te = first_per_class(y_tr, max_train), first_per_class(y_te, max_test)
    return ArrayTask("svhn", _resize_all(x_tr[i_tr], out), y_tr[i_tr], _resize_all(x_te[i_te], out), y_te[i_te], 10)


# ------------------------------------------------------------------ Tiny-ImageNet

_TINY_URL, _TINY_MD5 = "http://cs231n.stanford.edu/tiny-imagenet-200.zip", "90528d7ca1a48142e341f4ef8d21d0de"


def _read_text(path: Path, dataset: str, how: str) -> str:
    if not path.is_file():
        raise DataError(f"{dataset}: missing {str(path)!r}; {how}")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{dataset}: file {str(path)!r} is unreadable or corrupted ({_first_line(e)})") from None


def _image_files(folder: Path) -> list[Path]:
    return sorted((f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in _IMG_EXT),
                  key=lambda f: _natural_key(f.name))


@PUBLIC_DATASETS.register("tiny_imagenet")
def tiny_imagenet(root, size: int = 64, max_train=None, max_test=None, download: bool = False,
                  upscale: bool = True) -> ArrayTask:
    """Tiny-ImageNet-200 from ``root/tiny-imagenet-200`` (the published zip, extracted); val = test split."""
    root = Path(root)
    _cap_check(max_train, max_test)
    out = _out_size(size, 64, upscale)
    base = root / "tiny-imagenet-200"
    how = (f"set data.root to a folder holding tiny-imagenet-200/ (the extracted {_TINY_URL}) or set "
           f"data.download: true on a machine with internet")
    if not (base / "wnids.txt").is_file() and download:
        def fetch():
            from torchvision.datasets.utils import download_and_extract_archive

            download_and_extract_archive(_TINY_URL, str(root), md5=_TINY_MD5)
        _tv_download("tiny_imagenet", root, fetch)
    wnids = [w.strip() for w in _read_text(base / "wnids.txt", "tiny_imagenet", how).splitlines() if w.strip()]
    if not wnids or len(set(wnids)) != len(wnids):
        raise DataError(f"tiny_imagenet: {str(base / 'wnids.txt')!r} must list distinct class ids, one a line")
    cls = {w: i for i, w in enumerate(wnids)}
    tr_paths, tr_y = [], []
    for w in wnids:
        folder = base / "train" / w / "images"
        if not folder.is_dir():
            raise DataError(f"tiny_imagenet: missing {str(folder)!r}; {how}")
        files = _image_files(folder)
        if max_train is not None:
            files = files[:max_train]
        tr_paths += files
        tr_y += [cls[w]] * len(files)
    ann = base / "val" / "val_annotations.txt"
    te_paths, te_y = [], []
    for k, line in enumerate(_read_text(ann, "tiny_imagenet", how).splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < 2 or cols[1].strip() not in cls:
            raise DataError(f"tiny_imagenet: {str(ann)!r} line {k} is not 'filename<TAB>wnid<TAB>box' with a wnid "
                            f"of wnids.txt: {line.strip()[:80]!r}")
        te_paths.append(base / "val" / "images" / cols[0].strip())
        te_y.append(cls[cols[1].strip()])
    te_y = np.asarray(te_y, np.int64)
    keep = first_per_class(te_y, max_test)
    te_paths, te_y = [te_paths[i] for i in keep], te_y[keep]
    x_tr = read_images(tr_paths, out, "tiny_imagenet")
    x_te = read_images(te_paths, out, "tiny_imagenet")
    return ArrayTask("tiny_imagenet", x_tr, np.asarray(tr_y, np.int64), x_te, te_y, len(wnids))


# ----------------------------------------------------------------------- ImageNet


@PUBLIC_DATASETS.register("imagenet")
def imagenet(root, size: int = 224, max_train=None, max_test=None, download: bool = False,
             upscale: bool = True) -> ArrayTask:
    """ImageNet from ``root/imagenet/{train,val}/<wnid>/*.JPEG``, streamed from its files.

    The task's images are an :class:`~repro.data.files.ImageFiles` (paths relative to ``root``),
    decoded at their native size when read; ``size`` is the nominal size (224). ``max_train`` /
    ``max_test`` keep the first files (natural order) of every class; ``None`` keeps all.
    """
    root = Path(root)
    _cap_check(max_train, max_test)
    base = root / "imagenet"
    how = ("ImageNet needs a login at image-net.org and cannot be downloaded automatically; set data.root to a "
           "folder holding imagenet/train/<wnid>/*.JPEG and imagenet/val/<wnid>/*.JPEG (val sorted into class "
           "folders, as torchvision.datasets.ImageNet leaves it)")
    for split in ("train", "val"):
        if not (base / split).is_dir():
            raise DataError(f"imagenet: missing {str(base / split)!r}; {how}")
    wnids = sorted(d.name for d in (base / "train").iterdir() if d.is_dir())
    if not wnids:
        raise DataError(f"imagenet: {str(base / 'train')!r} has no class folders; {how}")
    cls = {w: i for i, w in enumerate(wnids)}
    val_dirs = sorted(d.name for d in (base / "val").iterdir() if d.is_dir())
    if not val_dirs:
        raise DataError(f"imagenet: {str(base / 'val')!r} has no class folders (the val images must be sorted "
                        f"into val/<wnid>/); {how}")
    extra = [w for w in val_dirs if w not in cls]
    if extra:
        raise DataError(f"imagenet: {str(base / 'val' / extra[0])!r} is a class missing from {str(base / 'train')!r}")

    def collect(split: str, names: list[str], cap) -> tuple[ImageFiles, np.ndarray]:
        paths, ys = [], []
        for w in names:
            files = _image_files(base / split / w)
            if cap is not None:
                files = files[:cap]
            paths += [str(f.relative_to(root)) for f in files]
            ys += [cls[w]] * len(files)
        return ImageFiles(root, paths, size, "imagenet"), np.asarray(ys, np.int64)

    x_tr, y_tr = collect("train", wnids, max_train)
    x_te, y_te = collect("val", val_dirs, max_test)
    if len(x_tr) == 0:
        raise DataError(f"imagenet: {str(base / 'train')!r} holds no image files; {how}")
    return ArrayTask("imagenet", x_tr, y_tr, x_te, y_te, len(wnids))


# ------------------------------------------------ Fig. 9 sets (torchvision classes)


@dataclass(frozen=True)
class TorchvisionSpec:
    """How one Fig. 9 set is read with its torchvision class.

    ``train`` / ``test``: keyword arguments of the splits concatenated into each
    split. ``test == ()``: no official split; the first ``per_class_train``
    images of every class (torchvision's order, or sorted by path when
    ``sort_by_path``) are the training set, the next ``per_class_test`` (None =
    all the rest) the test set.
    """

    tv_class: str
    folder: str
    train: tuple[dict, ...]
    test: tuple[dict, ...] = ()
    per_class_train: int = 0
    per_class_test: Optional[int] = None
    sort_by_path: bool = False
    download_note: str = ""


TORCHVISION_SETS: dict[str, TorchvisionSpec] = {
    "aircraft": TorchvisionSpec("FGVCAircraft", "fgvc-aircraft-2013b", ({"split": "trainval"},), ({"split": "test"},)),
    "pets": TorchvisionSpec("OxfordIIITPet", "oxford-iiit-pet", ({"split": "trainval"},), ({"split": "test"},)),
    "flowers": TorchvisionSpec("Flowers102", "flowers-102", ({"split": "train"}, {"split": "val"}),
                               ({"split": "test"},),
                               download_note="torchvision also checks the md5 of imagelabels.mat and setid.mat"),
    "cars": TorchvisionSpec("StanfordCars", "stanford_cars", ({"split": "train"},), ({"split": "test"},),
                            download_note="its original URL is gone, so torchvision cannot download it; place "
                                          "the devkit, cars_train, cars_test and cars_test_annos_withlabels.mat "
                                          "there by hand"),
    "food": TorchvisionSpec("Food101", "food-101", ({"split": "train"},), ({"split": "test"},)),
    "dtd": TorchvisionSpec("DTD", "dtd/dtd", ({"split": "train", "partition": 1}, {"split": "val", "partition": 1}),
                           ({"split": "test", "partition": 1},)),
    "sun397": TorchvisionSpec("SUN397", "SUN397", ({},), per_class_train=50, per_class_test=50, sort_by_path=True),
    "caltech101": TorchvisionSpec("Caltech101", "caltech101/101_ObjectCategories", ({"target_type": "category"},),
                                  per_class_train=30),
    "caltech256": TorchvisionSpec("Caltech256", "caltech256/256_ObjectCategories", ({},), per_class_train=60),
}


def _tv_labels(ds) -> list[int]:
    """Labels of a torchvision dataset without decoding its images (decodes only as a fallback)."""
    for attr in ("_labels", "y"):
        v = getattr(ds, attr, None)
        if v is not None:
            return [int(t) for t in v]
    if getattr(ds, "_samples", None) is not None:
        return [int(t) for _, t in ds._samples]
    return [int(ds[i][1]) for i in range(len(ds))]


def _tv_path(ds, i: int) -> str:
    for attr in ("_image_files", "_images"):
        v = getattr(ds, attr, None)
        if v is not None:
            return str(v[i])
    if getattr(ds, "_samples", None) is not None:
        return str(ds._samples[i][0])
    return f"item {i}"


def _tv_classes(ds) -> Optional[list]:
    v = getattr(ds, "classes", None)
    if v is None:
        v = getattr(ds, "categories", None)
    return None if v is None else list(v)


def _tv_open(name: str, spec: TorchvisionSpec, root: Path, kwargs: dict, download: bool):
    import torchvision.datasets as tvd

    where = str(root / spec.folder)
    note = f" ({spec.download_note})" if spec.download_note else ""
    try:
        return getattr(tvd, spec.tv_class)(str(root), download=download, **kwargs)
    except RuntimeError as e:  # torchvision's "Dataset not found (or corrupted)"
        raise DataError(f"{name}: torchvision.datasets.{spec.tv_class} found no usable data under {where!r} "
                        f"({_first_line(e)}); set data.root to the folder holding {spec.folder.split('/')[0]}/ in "
                        f"torchvision's layout or set data.download: true on a machine with internet{note}") from None
    except FileNotFoundError as e:
        raise DataError(f"{name}: missing {str(e.filename or e)!r} (torchvision.datasets.{spec.tv_class} layout "
                        f"under {where!r}){note}") from None
    except Exception as e:  # a damaged split file, a failed download, ...
        raise DataError(f"{name}: torchvision.datasets.{spec.tv_class}({kwargs}) under {where!r} failed "
                        f"({_first_line(e)}){note}") from None


def _tv_decode(name: str, ds, i: int, label: int, size: int) -> np.ndarray:
    try:
        img, target = ds[i]
    except Exception as e:
        raise DataError(f"{name}: image {_tv_path(ds, i)!r} is missing, truncated or corrupted "
                        f"({_first_line(e)})") from None
    if int(target) != label:
        raise DataError(f"{name}: item {i} has label {target}, expected {label}")
    if hasattr(img, "convert"):
        arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    else:  # a tensor CHW (a non-default loader)
        arr = np.asarray(img).transpose(1, 2, 0).astype(np.uint8)
    return fit_square(arr, size)


def _load_torchvision(name: str, root, size: int, max_train=None, max_test=None, download: bool = False,
                      upscale: bool = True) -> ArrayTask:
    spec, root = TORCHVISION_SETS[name], Path(root)
    _cap_check(max_train, max_test)
    out = _out_size(size, size, upscale)
    tr_sets = [_tv_open(name, spec, root, kw, download) for kw in spec.train]
    te_sets = [_tv_open(name, spec, root, kw, download) for kw in spec.test]
    classes = [_tv_classes(d) for d in (*tr_sets, *te_sets)]
    if any(c != classes[0] for c in classes[1:]):
        raise DataError(f"{name}: the splits under {str(root / spec.folder)!r} disagree on the class list")
    # items: (dataset, index, label) in file order
    def items(sets) -> list[tuple[object, int, int]]:
        return [(d, i, y) for d in sets for i, y in enumerate(_tv_labels(d))]

    tr, te = items(tr_sets), items(te_sets)
    if not spec.test:
        if spec.sort_by_path:
            tr.sort(key=lambda t: _tv_path(t[0], t[1]))
        y = np.asarray([t[2] for t in tr], np.int64)
        first = set(first_per_class(y, spec.per_class_train).tolist())
        rest = [t for k, t in enumerate(tr) if k not in first]
        tr = [t for k, t in enumerate(tr) if k in first]
        if spec.per_class_test is not None:
            y_rest = np.asarray([t[2] for t in rest], np.int64)
            rest = [rest[k] for k in first_per_class(y_rest, spec.per_class_test)]
        te = rest
    n_cls = len(classes[0]) if classes[0] else 1 + max(t[2] for t in (*tr, *te))

    def build(its, cap) -> tuple[np.ndarray, np.ndarray]:
        y = np.asarray([t[2] for t in its], np.int64)
        keep = first_per_class(y, cap)
        x = np.empty((keep.size, out, out, 3), np.uint8)
        for j, k in enumerate(keep):
            d, i, lab = its[k]
            x[j] = _tv_decode(name, d, i, lab, out)
        return x, y[keep]

    x_tr, y_tr = build(tr, max_train)
    x_te, y_te = build(te, max_test)
    return ArrayTask(name, x_tr, y_tr, x_te, y_te, n_cls)


def _torchvision_loader(name: str):
    spec = TORCHVISION_SETS[name]

    def loader(root, size: int = 224, max_train=None, max_test=None, download: bool = False,
               upscale: bool = True) -> ArrayTask:
        return _load_torchvision(name, root, size, max_train, max_test, download, upscale)

    loader.__name__ = name
    loader.__doc__ = (f"Robust Tickets Fig. 9 set {name!r} via torchvision.datasets.{spec.tv_class} "
                      f"under root/{spec.folder}.")
    return loader


for _name in TORCHVISION_SETS:
    PUBLIC_DATASETS.register(_name)(_torchvision_loader(_name))


# ------------------------------------------------- list-file sets (CUB, VisDA, Birdsnap)


def _list_task(name: str, tr: list[tuple[Path, int]], te: list[tuple[Path, int]], num_classes: int, size: int,
               max_train, max_test) -> ArrayTask:
    """Decode the (path, label) lists of both splits (file order; the first N per class when capped)."""
    def build(items, cap) -> tuple[np.ndarray, np.ndarray]:
        y = np.asarray([t[1] for t in items], np.int64)
        keep = first_per_class(y, cap)
        return read_images([items[k][0] for k in keep], size, name), y[keep]

    x_tr, y_tr = build(tr, max_train)
    x_te, y_te = build(te, max_test)
    if not len(y_tr) or not len(y_te):
        raise DataError(f"{name}: the {'training' if not len(y_tr) else 'test'} split is empty")
    return ArrayTask(name, x_tr, y_tr, x_te, y_te, num_classes)


def _list_start(root, folder: str, size: int, upscale: bool, max_train, max_test) -> tuple[Path, Path, int]:
    """Checked arguments of a list-file loader: (root, root/folder, output image size)."""
    _cap_check(max_train, max_test)
    return Path(root), Path(root) / folder, _out_size(size, size, upscale)


def _table(path: Path, dataset: str, how: str, ncols: int, sep: Optional[str] = None,
           header: bool = False) -> list[tuple[int, list[str]]]:
    """Non-empty lines of a list file split into at least ``ncols`` fields: [(line number, fields)]."""
    rows = []
    for k, line in enumerate(_read_text(path, dataset, how).splitlines(), 1):
        if not line.strip() or (header and not rows and k == 1):
            continue
        cols = line.rstrip("\r\n").split(sep) if sep else line.split()
        if len(cols) < ncols:
            raise DataError(f"{dataset}: {str(path)!r} line {k} has {len(cols)} fields, expected {ncols}: "
                            f"{line.strip()[:80]!r}")
        rows.append((k, cols))
    return rows


def _int_field(v: str, path: Path, k: int, dataset: str, what: str) -> int:
    try:
        return int(v)
    except ValueError:
        raise DataError(f"{dataset}: {str(path)!r} line {k}: {what} {v!r} is not an integer") from None


_CUB_URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"


@PUBLIC_DATASETS.register("cub200")
def cub200(root, size: int = 224, max_train=None, max_test=None, download: bool = False,
           upscale: bool = True) -> ArrayTask:
    """CUB-200-2011 from ``root/CUB_200_2011`` (the published archive, extracted).

    ``images.txt`` (``<image_id> <relative path under images/>``), ``image_class_labels.txt``
    (``<image_id> <class_id>``, 1-based), ``train_test_split.txt`` (``<image_id> <is_training_image>``),
    ``classes.txt`` (``<class_id> <name>``); the official split (5,994 train / 5,794 test).
    """
    root, base, out = _list_start(root, "CUB_200_2011", size, upscale, max_train, max_test)
    how = (f"set data.root to a folder holding CUB_200_2011/ (the extracted {_CUB_URL}) or set data.download: "
           f"true on a machine with internet")
    if not (base / "images.txt").is_file() and download:
        def fetch():
            from torchvision.datasets.utils import download_and_extract_archive

            download_and_extract_archive(_CUB_URL, str(root))
        _tv_download("cub200", root, fetch)
    classes = _table(base / "classes.txt", "cub200", how, 2)
    paths = {}
    for k, cols in _table(base / "images.txt", "cub200", how, 2):
        paths[cols[0]] = cols[1]
    labels, is_train = {}, {}
    lab_file, split_file = base / "image_class_labels.txt", base / "train_test_split.txt"
    for k, (i, c, *_) in _table(lab_file, "cub200", how, 2):
        labels[i] = _int_field(c, lab_file, k, "cub200", "class id") - 1
        if not 0 <= labels[i] < len(classes):
            raise DataError(f"cub200: {str(lab_file)!r} line {k}: class id {c} is outside [1, {len(classes)}]")
    for k, (i, s, *_) in _table(split_file, "cub200", how, 2):
        if s not in ("0", "1"):
            raise DataError(f"cub200: {str(split_file)!r} line {k}: is_training_image must be 0 or 1, got {s!r}")
        is_train[i] = s == "1"
    for f, d in ((lab_file, labels), (split_file, is_train)):
        miss = next((i for i in paths if i not in d), None)
        if miss is not None:
            raise DataError(f"cub200: image id {miss} of images.txt is missing from {str(f)!r}")
    items = [(base / "images" / p, labels[i], is_train[i]) for i, p in paths.items()]
    tr = [(p, y) for p, y, t in items if t]
    te = [(p, y) for p, y, t in items if not t]
    return _list_task("cub200", tr, te, len(classes), out, max_train, max_test)


VISDA_CLASSES = ("aeroplane", "bicycle", "bus", "car", "horse", "knife", "motorcycle", "person", "plant",
                 "skateboard", "train", "truck")
_VISDA_URL = "http://csr.bu.edu/ftp/visda17/clf/"


@PUBLIC_DATASETS.register("visda17")
def visda17(root, size: int = 224, max_train=None, max_test=None, download: bool = False,
            upscale: bool = True) -> ArrayTask:
    """VisDA-2017 classification from ``root/visda17/{train,validation}`` (the published tars, extracted).

    Each split holds ``<class>/...`` image folders and ``image_list.txt`` (``<path relative to the
    split> <label>``, labels 0-11 in ``VISDA_CLASSES`` order). Training split = ``train`` (synthetic
    renders), test split = ``validation`` (real COCO crops): the challenge's labelled splits.
    """
    root, base, out = _list_start(root, "visda17", size, upscale, max_train, max_test)
    how = (f"set data.root to a folder holding visda17/train/ and visda17/validation/ (the extracted "
           f"{_VISDA_URL}{{train,validation}}.tar); they are not fetched automatically (12 GB)")
    splits = []
    for split in ("train", "validation"):
        lst = base / split / "image_list.txt"
        items = []
        for k, cols in _table(lst, "visda17", how, 2):
            y = _int_field(cols[-1], lst, k, "visda17", "label")
            if not 0 <= y < len(VISDA_CLASSES):
                raise DataError(f"visda17: {str(lst)!r} line {k}: label {y} is outside [0, {len(VISDA_CLASSES) - 1}]")
            items.append((base / split / " ".join(cols[:-1]), y))
        splits.append(items)
    return _list_task("visda17", splits[0], splits[1], len(VISDA_CLASSES), out, max_train, max_test)


_BIRDSNAP_URL = "http://thomasberg.org/datasets/birdsnap/1.1/birdsnap.tgz"


@PUBLIC_DATASETS.register("birdsnap")
def birdsnap(root, size: int = 224, max_train=None, max_test=None, download: bool = False,
             upscale: bool = True) -> ArrayTask:
    """Birdsnap 1.1 from ``root/birdsnap`` (the published archive, images fetched by its get_birdsnap.py).

    ``species.txt`` (tab-separated, header; ``id`` 1-500), ``images.txt`` (tab-separated, header;
    ``path``, ``species_id`` columns), ``test_images.txt`` (header ``path``, then the 2,443 test
    paths); the images under ``download/images/<path>`` (the script's default) or ``images/<path>``.
    Test split = the listed test images, training split = every other image. Flickr images the
    script could not fetch (listed in its ``fail.txt``) are skipped; any other missing image stops
    with one line naming it.
    """
    root, base, out = _list_start(root, "birdsnap", size, upscale, max_train, max_test)
    how = (f"set data.root to a folder holding birdsnap/ (the extracted {_BIRDSNAP_URL} with its images "
           f"fetched by get_birdsnap.py); Flickr images cannot be downloaded by this package")

    def header_table(path: Path, need: tuple[str, ...]) -> tuple[dict, list[tuple[int, list[str]]]]:
        lines = _read_text(path, "birdsnap", how).splitlines()
        head = lines[0].rstrip("\r").split("\t") if lines else []
        miss = [c for c in need if c not in head]
        if miss:
            raise DataError(f"birdsnap: {str(path)!r} must start with a tab-separated header naming "
                            f"{', '.join(need)}; missing {', '.join(miss)}")
        col = {c: head.index(c) for c in need}
        rows = [(k, ln.rstrip("\r").split("\t")) for k, ln in enumerate(lines[1:], 2) if ln.strip()]
        for k, r in rows:
            if len(r) <= max(col.values()):
                raise DataError(f"birdsnap: {str(path)!r} line {k} has {len(r)} fields, expected {len(head)}")
        return col, rows

    scol, species = header_table(base / "species.txt", ("id",))
    n_cls = len(species)
    icol, images = header_table(base / "images.txt", ("path", "species_id"))
    tcol, tests = header_table(base / "test_images.txt", ("path",))
    test_set = {r[tcol["path"]].strip() for _, r in tests}
    img_dir = base / "download" / "images"
    if not img_dir.is_dir():
        img_dir = base / "images"
    failed: set[str] = set()
    if (base / "fail.txt").is_file():
        failed = {tok.strip() for ln in _read_text(base / "fail.txt", "birdsnap", how).splitlines()
                  for tok in ln.split("\t")}
    tr, te = [], []
    for k, r in images:
        p = r[icol["path"]].strip()
        y = _int_field(r[icol["species_id"]], base / "images.txt", k, "birdsnap", "species_id") - 1
        if not 0 <= y < n_cls:
            raise DataError(f"birdsnap: {str(base / 'images.txt')!r} line {k}: species_id {y + 1} is outside "
                            f"[1, {n_cls}]")
        if p in failed and not (img_dir / p).is_file():
            continue
        (te if p in test_set else tr).append((img_dir / p, y))
    return _list_task("birdsnap", tr, te, n_cls, out, max_train, max_test)


def load_public(name: str, root, size: int, max_train: Optional[int] = None, max_test: Optional[int] = None,
                download: bool = False, upscale: bool = True) -> ArrayTask:
    """Build the registered public dataset ``name`` from ``root`` (see the module docstring)."""
    return PUBLIC_DATASETS.get(name)(root, size, max_train=max_train, max_test=max_test, download=download,
                                     upscale=upscale)
