"""Write image arrays as the published dataset files (for offline runs of the real tiers).

``python tests/published_formats.py ROOT`` fills ``ROOT`` with a CIFAR-10
(``cifar-10-batches-py``, Python-2 protocol-2 pickles as the real files) and a
Tiny-ImageNet-200 tree (``wnids.txt``, ``train/<wnid>/images/*.JPEG``,
``val/images`` + ``val_annotations.txt``) whose images are the package's
synthetic tasks (so a model can learn them), at the published image sizes
(32 and 64 px). It is how the `small` tier is run end to end without a network.
"""
from __future__ import annotations

import argparse
import io
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
from PIL import Image


class Py2Pickler(pickle._Pickler):
    """What Python 2's cPickle wrote for the real CIFAR files: protocol 2, str as BINSTRING."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_str(self, obj):
        if isinstance(obj, str):
            obj = obj.encode("latin1")
        n = len(obj)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_str
    dispatch[str] = _save_str


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    # numpy 1.x (which wrote the real files) named the reconstructor numpy.core.multiarray._reconstruct
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n_reconstruct\n", b"cnumpy.core.multiarray\n_reconstruct\n")


def write_cifar10(root: Path, x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray) -> Path:
    """``x`` uint8 [N,32,32,3] split over data_batch_1..5 in order; ``xt`` as test_batch."""
    base = Path(root) / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    rows = lambda a: np.ascontiguousarray(a.transpose(0, 3, 1, 2).reshape(len(a), -1))  # noqa: E731  HWC -> CHW rows
    for i, part in enumerate(np.array_split(np.arange(len(y)), 5), 1):
        (base / f"data_batch_{i}").write_bytes(py2_pickle({
            "batch_label": f"training batch {i} of 5", "labels": [int(v) for v in y[part]], "data": rows(x[part]),
            "filenames": [f"img_{i}_{k}.png" for k in range(len(part))]}))
    (base / "test_batch").write_bytes(py2_pickle({
        "batch_label": "testing batch 1 of 1", "labels": [int(v) for v in yt], "data": rows(xt),
        "filenames": [f"t{k}.png" for k in range(len(yt))]}))
    (base / "batches.meta").write_bytes(py2_pickle({"label_names": [f"c{k}" for k in range(10)],
                                                    "num_cases_per_batch": len(y) // 5, "num_vis": 3072}))
    return base


def write_tiny_imagenet(root: Path, x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray,
                        num_classes: int) -> Path:
    """A tiny-imagenet-200 tree: JPEGs of ``x`` by class, ``xv`` in val/images with the annotations file."""
    base = Path(root) / "tiny-imagenet-200"
    wnids = [f"n{10000000 + 7919 * c:08d}" for c in range(num_classes)]
    (base / "val" / "images").mkdir(parents=True, exist_ok=True)
    (base / "test" / "images").mkdir(parents=True, exist_ok=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (base / "words.txt").write_text("".join(f"{w}\tclass {c}\n" for c, w in enumerate(wnids)))
    count = [0] * num_classes
    for img, c in zip(x, y):
        folder = base / "train" / wnids[c] / "images"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{wnids[c]}_{count[c]}.JPEG", "JPEG", quality=95)
        count[c] += 1
    ann = []
    for i, (img, c) in enumerate(zip(xv, yv)):
        Image.fromarray(img).save(base / "val" / "images" / f"val_{i}.JPEG", "JPEG", quality=95)
        ann.append(f"val_{i}.JPEG\t{wnids[c]}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(ann) + "\n")
    return base


def _save(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, "PNG" if path.suffix == ".png" else "JPEG", quality=95)


def write_cub200(root: Path, x: np.ndarray, y: np.ndarray, is_train: np.ndarray, num_classes: int) -> Path:
    """CUB_200_2011/: images.txt, image_class_labels.txt (1-based), train_test_split.txt, classes.txt, images/."""
    base = Path(root) / "CUB_200_2011"
    names = [f"{c + 1:03d}.Bird_{c + 1}" for c in range(num_classes)]
    (base / "images").mkdir(parents=True, exist_ok=True)
    (base / "classes.txt").write_text("".join(f"{c + 1} {n}\n" for c, n in enumerate(names)))
    imgs, labs, split = [], [], []
    for i, (img, c, t) in enumerate(zip(x, y, is_train), 1):
        rel = f"{names[c]}/Bird_{c + 1}_{i:04d}_{1000 + i}.jpg"
        _save(base / "images" / rel, img)
        imgs.append(f"{i} {rel}\n")
        labs.append(f"{i} {c + 1}\n")
        split.append(f"{i} {int(bool(t))}\n")
    (base / "images.txt").write_text("".join(imgs))
    (base / "image_class_labels.txt").write_text("".join(labs))
    (base / "train_test_split.txt").write_text("".join(split))
    return base


VISDA_CLASSES = ("aeroplane", "bicycle", "bus", "car", "horse", "knife", "motorcycle", "person", "plant",
                 "skateboard", "train", "truck")


def write_visda17(root: Path, x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray) -> Path:
    """visda17/{train,validation}/<class>/... PNG/JPEG images and each split's image_list.txt."""
    base = Path(root) / "visda17"
    for split, xs, ys in (("train", x, y), ("validation", xv, yv)):
        lines = []
        for i, (img, c) in enumerate(zip(xs, ys)):
            cls = VISDA_CLASSES[c]
            rel = (f"{cls}/src_1_0{c:07d}_{i:032x}__{i % 5}_{i % 3}_001.png" if split == "train"
                   else f"{cls}/{i:012d}.jpg")
            _save(base / split / rel, img)
            lines.append(f"{rel} {int(c)}\n")
        (base / split / "image_list.txt").write_text("".join(lines))
    return base


def write_birdsnap(root: Path, x: np.ndarray, y: np.ndarray, is_test: np.ndarray, num_classes: int,
                   failed: tuple[int, ...] = ()) -> Path:
    """birdsnap/: species.txt, images.txt, test_images.txt (tab-separated, header lines) and
    download/images/<dir>/<file>.jpg as get_birdsnap.py stores them; images with an index in ``failed``
    are left out and listed in fail.txt, as when Flickr no longer serves them."""
    base = Path(root) / "birdsnap"
    base.mkdir(parents=True, exist_ok=True)
    dirs = [f"Bird_Species_{c + 1}" for c in range(num_classes)]
    (base / "species.txt").write_text("id\tcommon\tscientific\tdir\n" + "".join(
        f"{c + 1}\tBird Species {c + 1}\tAvis species{c + 1}\t{d}\n" for c, d in enumerate(dirs)))
    parts = [f"{p}_{a}" for p in ("back", "beak", "belly") for a in ("x", "y")]
    head = ["url", "md5", "path", "species_id", "bb_x1", "bb_y1", "bb_x2", "bb_y2", *parts]
    rows, tests, fails = ["\t".join(head)], ["path"], []
    for i, (img, c, t) in enumerate(zip(x, y, is_test)):
        rel = f"{dirs[c]}/{100000 + i}.jpg"
        if i in failed:
            fails.append(f"{rel}\n")
        else:
            _save(base / "download" / "images" / rel, img)
        rows.append("\t".join([f"http://farm1.staticflickr.com/{i}.jpg", f"{i:032x}", rel, str(c + 1), "0", "0",
                               str(img.shape[1] - 1), str(img.shape[0] - 1)] + ["1"] * len(parts)))
        if t:
            tests.append(rel)
    (base / "images.txt").write_text("\n".join(rows) + "\n")
    (base / "test_images.txt").write_text("\n".join(tests) + "\n")
    if fails:
        (base / "fail.txt").write_text("".join(fails))
    return base


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path)
    ap.add_argument("--tiny-classes", type=int, default=200)
    ap.add_argument("--tiny-per-class", type=int, default=10, help="training images per Tiny-ImageNet class")
    ap.add_argument("--cifar-per-class", type=int, default=50, help="training images per CIFAR-10 class")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from repro.data.synthetic import make_task

    src = make_task("tiny_source", a.tiny_classes, a.tiny_classes * a.tiny_per_class, a.tiny_classes * 2, size=64)
    write_tiny_imagenet(a.root, src.x_train, src.y_train, src.x_test, src.y_test, a.tiny_classes)
    down = make_task("cifar_down", 10, 10 * a.cifar_per_class, 10 * max(2, a.cifar_per_class // 5), size=32, gap=0.3)
    write_cifar10(a.root, down.x_train, down.y_train, down.x_test, down.y_test)
    print(f"wrote Tiny-ImageNet ({len(src.y_train)} + {len(src.y_test)} images) and CIFAR-10 "
          f"({len(down.y_train)} + {len(down.y_test)}) under {a.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
