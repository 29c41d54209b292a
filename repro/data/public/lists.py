"""The list-file sets: CUB-200-2011, VisDA-2017, Birdsnap, Flowers-102 (Double-Win Fig. A10, Robust Tickets Fig. 9)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ...base.errors import DataError
from ..arrays import ArrayTask
from ..files import read_images

from .common import PUBLIC_DATASETS, cap_check, first_per_class, out_size, read_text, tv_download


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
    cap_check(max_train, max_test)
    return Path(root), Path(root) / folder, out_size(size, size, upscale)


def _table(path: Path, dataset: str, how: str, ncols: int, sep: Optional[str] = None,
           header: bool = False) -> list[tuple[int, list[str]]]:
    """Non-empty lines of a list file split into at least ``ncols`` fields: [(line number, fields)]."""
    rows = []
    for k, line in enumerate(read_text(path, dataset, how).splitlines(), 1):
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
        tv_download("cub200", root, fetch)
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
        lines = read_text(path, "birdsnap", how).splitlines()
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
        failed = {tok.strip() for ln in read_text(base / "fail.txt", "birdsnap", how).splitlines()
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


_FLOWERS_SPLITS = {"trnid": "train", "valid": "val", "tstid": "test"}


@PUBLIC_DATASETS.register("flowers")
def flowers(root, size: int = 224, max_train=None, max_test=None, download: bool = False,
            upscale: bool = True) -> ArrayTask:
    """Oxford Flowers-102 from ``root/flowers-102`` (torchvision's layout of the published files).

    ``jpg/image_%05d.jpg`` (image ids from 1), ``imagelabels.mat`` (``labels``: the class, 1-102, of every
    image id), ``setid.mat`` (``trnid``, ``valid``, ``tstid``: the image ids of each split). Training split =
    train + val (in that order, each in its file's order), test split = test; 102 classes, labels 0-based.
    Read here rather than through ``torchvision.datasets.Flowers102``, which refuses any ``.mat`` file but the
    published bytes (md5), so that files written in the same format load too; ``download: true`` fetches
    with torchvision, which checks those md5s.
    """
    root, base, out = _list_start(root, "flowers-102", size, upscale, max_train, max_test)
    how = ("set data.root to a folder holding flowers-102/ (102flowers.tgz extracted into jpg/, imagelabels.mat, "
           "setid.mat, as torchvision.datasets.Flowers102 leaves them) or set data.download: true on a machine with "
           "internet")
    if not (base / "setid.mat").is_file() and download:
        def fetch():
            import torchvision.datasets as tvd

            tvd.Flowers102(str(root), split="test", download=True)  # every file, md5-checked
        tv_download("flowers", root, fetch)

    def mat(name: str) -> dict:
        path = base / name
        if not path.is_file():
            raise DataError(f"flowers: missing {str(path)!r}; {how}")
        from scipy.io import loadmat

        try:
            return loadmat(str(path), squeeze_me=True)
        except Exception as e:  # a truncated or foreign file
            raise DataError(f"flowers: {str(path)!r} is not a readable .mat file ({str(e).splitlines()[0][:80]})") from None

    def ints(d: dict, key: str, path: str) -> np.ndarray:
        v = d.get(key)
        try:
            a = np.atleast_1d(np.asarray(v)).astype(np.int64)
        except (TypeError, ValueError):
            a = None
        if v is None or a is None or a.ndim != 1:
            raise DataError(f"flowers: {str(base / path)!r} needs a 1-D integer array {key!r}")
        return a

    labels = ints(mat("imagelabels.mat"), "labels", "imagelabels.mat")
    if labels.size == 0 or labels.min() < 1 or labels.max() > 102:
        raise DataError(f"flowers: {str(base / 'imagelabels.mat')!r}: labels must lie in [1, 102]")
    sets = mat("setid.mat")
    ids = {split: ints(sets, key, "setid.mat") for key, split in _FLOWERS_SPLITS.items()}
    for split, a in ids.items():
        if a.size and (a.min() < 1 or a.max() > labels.size):
            raise DataError(f"flowers: {str(base / 'setid.mat')!r}: {split} image ids must lie in [1, {labels.size}] "
                            f"(the images of imagelabels.mat)")
    item = lambda i: (base / "jpg" / f"image_{i:05d}.jpg", int(labels[i - 1]) - 1)  # noqa: E731
    tr = [item(i) for i in (*ids["train"], *ids["val"])]
    te = [item(i) for i in ids["test"]]
    return _list_task("flowers", tr, te, 102, out, max_train, max_test)
