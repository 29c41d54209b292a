"""The Robust Tickets Fig. 9 sets read through their torchvision classes (``TORCHVISION_SETS``)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ...base.errors import DataError
from ..arrays import ArrayTask
from ..files import first_line, fit_square

from .common import PUBLIC_DATASETS, cap_check, first_per_class, out_size


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
    for attr in ("image_files", "_images"):
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
                        f"({first_line(e)}); set data.root to the folder holding {spec.folder.split('/')[0]}/ in "
                        f"torchvision's layout or set data.download: true on a machine with internet{note}") from None
    except FileNotFoundError as e:
        raise DataError(f"{name}: missing {str(e.filename or e)!r} (torchvision.datasets.{spec.tv_class} layout "
                        f"under {where!r}){note}") from None
    except Exception as e:  # a damaged split file, a failed download, ...
        raise DataError(f"{name}: torchvision.datasets.{spec.tv_class}({kwargs}) under {where!r} failed "
                        f"({first_line(e)}){note}") from None


def _tv_decode(name: str, ds, i: int, label: int, size: int) -> np.ndarray:
    try:
        img, target = ds[i]
    except Exception as e:
        raise DataError(f"{name}: image {_tv_path(ds, i)!r} is missing, truncated or corrupted "
                        f"({first_line(e)})") from None
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
    cap_check(max_train, max_test)
    out = out_size(size, size, upscale)
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
