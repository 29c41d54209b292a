"""Tiny-ImageNet (decoded into arrays) and ImageNet (streamed from its folders as a file list)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...base.errors import DataError
from ..arrays import ArrayTask
from ..files import ImageFiles, read_images

from .common import PUBLIC_DATASETS, cap_check, first_per_class, image_files, out_size, read_text, tv_download


# ------------------------------------------------------------------ Tiny-ImageNet

_TINY_URL, _TINY_MD5 = "http://cs231n.stanford.edu/tiny-imagenet-200.zip", "90528d7ca1a48142e341f4ef8d21d0de"


@PUBLIC_DATASETS.register("tiny_imagenet")
def tiny_imagenet(root, size: int = 64, max_train=None, max_test=None, download: bool = False,
                  upscale: bool = True) -> ArrayTask:
    """Tiny-ImageNet-200 from ``root/tiny-imagenet-200`` (the published zip, extracted); val = test split."""
    root = Path(root)
    cap_check(max_train, max_test)
    out = out_size(size, 64, upscale)
    base = root / "tiny-imagenet-200"
    how = (f"set data.root to a folder holding tiny-imagenet-200/ (the extracted {_TINY_URL}) or set "
           f"data.download: true on a machine with internet")
    if not (base / "wnids.txt").is_file() and download:
        def fetch():
            from torchvision.datasets.utils import download_and_extract_archive

            download_and_extract_archive(_TINY_URL, str(root), md5=_TINY_MD5)
        tv_download("tiny_imagenet", root, fetch)
    wnids = [w.strip() for w in read_text(base / "wnids.txt", "tiny_imagenet", how).splitlines() if w.strip()]
    if not wnids or len(set(wnids)) != len(wnids):
        raise DataError(f"tiny_imagenet: {str(base / 'wnids.txt')!r} must list distinct class ids, one a line")
    cls = {w: i for i, w in enumerate(wnids)}
    tr_paths, tr_y = [], []
    for w in wnids:
        folder = base / "train" / w / "images"
        if not folder.is_dir():
            raise DataError(f"tiny_imagenet: missing {str(folder)!r}; {how}")
        files = image_files(folder)
        if max_train is not None:
            files = files[:max_train]
        tr_paths += files
        tr_y += [cls[w]] * len(files)
    ann = base / "val" / "val_annotations.txt"
    te_paths, te_y = [], []
    for k, line in enumerate(read_text(ann, "tiny_imagenet", how).splitlines(), 1):
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
    cap_check(max_train, max_test)
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
            files = image_files(base / split / w)
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
