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


def write_cifar100(root: Path, x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray) -> Path:
    """cifar-100-python/{train,test,meta}: dicts with b'data' [N, 3072] CHW rows, fine and coarse labels."""
    base = Path(root) / "cifar-100-python"
    base.mkdir(parents=True, exist_ok=True)
    rows = lambda a: np.ascontiguousarray(a.transpose(0, 3, 1, 2).reshape(len(a), -1))  # noqa: E731
    for split, xs, ys in (("train", x, y), ("test", xt, yt)):
        (base / split).write_bytes(py2_pickle({
            "filenames": [f"{split}_{k}.png" for k in range(len(ys))], "batch_label": f"{split} batch",
            "fine_labels": [int(v) for v in ys], "coarse_labels": [int(v) // 5 for v in ys], "data": rows(xs)}))
    (base / "meta").write_bytes(py2_pickle({"fine_label_names": [f"c{k}" for k in range(100)],
                                            "coarse_label_names": [f"s{k}" for k in range(20)]}))
    return base


def write_svhn(root: Path, x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray) -> Path:
    """train_32x32.mat / test_32x32.mat: X uint8 [32, 32, 3, N], y [N, 1] with 10 for the digit 0."""
    import scipy.io

    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    for split, xs, ys in (("train", x, y), ("test", xt, yt)):
        lab = np.where(np.asarray(ys) == 0, 10, ys).astype(np.uint8).reshape(-1, 1)
        scipy.io.savemat(str(base / f"{split}_32x32.mat"), {"X": np.ascontiguousarray(xs.transpose(1, 2, 3, 0)),
                                                             "y": lab})
    return base


def wnid(c: int) -> str:
    return f"n{1440764 + 7919 * c:08d}"


def write_imagenet(root: Path, x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray) -> Path:
    """imagenet/{train,val}/<wnid>/ JPEGs (the val images sorted into class folders, as valprep.sh leaves them)."""
    base = Path(root) / "imagenet"
    for i, (img, c) in enumerate(zip(x, y)):
        _save(base / "train" / wnid(c) / f"{wnid(c)}_{i}.JPEG", img)
    for i, (img, c) in enumerate(zip(xv, yv), 1):
        _save(base / "val" / wnid(c) / f"ILSVRC2012_val_{i:08d}.JPEG", img)
    return base


def write_flowers102(root: Path, x: np.ndarray, y: np.ndarray, split: np.ndarray) -> Path:
    """flowers-102/: jpg/image_%05d.jpg, imagelabels.mat (labels 1-102 by image id), setid.mat (trnid, valid,
    tstid: the image ids of each split; ``split`` holds 'train', 'val' or 'test' per image)."""
    import scipy.io

    base = Path(root) / "flowers-102"
    for i, img in enumerate(x, 1):
        _save(base / "jpg" / f"image_{i:05d}.jpg", img)
    scipy.io.savemat(str(base / "imagelabels.mat"), {"labels": (np.asarray(y) + 1).astype(np.uint8).reshape(1, -1)})
    ids = {k: (np.flatnonzero(np.asarray(split) == s) + 1).astype(np.uint16).reshape(1, -1)
           for k, s in (("trnid", "train"), ("valid", "val"), ("tstid", "test"))}
    scipy.io.savemat(str(base / "setid.mat"), ids)
    return base


def write_aircraft(root: Path, x: np.ndarray, y: np.ndarray, is_test: np.ndarray, num_classes: int) -> Path:
    """fgvc-aircraft-2013b/data/: images/<7-digit id>.jpg, variants.txt, images_variant_{trainval,test}.txt."""
    base = Path(root) / "fgvc-aircraft-2013b" / "data"
    names = [f"Variant-{c:03d} {c % 7}" for c in range(num_classes)]  # real names hold spaces and dashes
    base.mkdir(parents=True, exist_ok=True)
    (base / "variants.txt").write_text("".join(f"{n}\n" for n in names))
    lines = {"trainval": [], "test": []}
    for i, (img, c, t) in enumerate(zip(x, y, is_test)):
        iid = f"{1000000 + 37 * i:07d}"
        _save(base / "images" / f"{iid}.jpg", img)
        lines["test" if t else "trainval"].append(f"{iid} {names[c]}\n")
    for split, ls in lines.items():
        (base / f"images_variant_{split}.txt").write_text("".join(ls))
    return base.parent


def write_pets(root: Path, x: np.ndarray, y: np.ndarray, is_test: np.ndarray, num_classes: int) -> Path:
    """oxford-iiit-pet/: images/<Breed_name>_<n>.jpg, annotations/{trainval,test}.txt (``<id> <class 1-37> <species
    1-2> <breed id>``), annotations/trimaps/."""
    base = Path(root) / "oxford-iiit-pet"
    breeds = [(f"Breed_{c}" if c % 2 else f"breed_{c}") for c in range(num_classes)]  # cats capitalised, as the real
    (base / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
    lines = {"trainval": [], "test": []}
    count = [0] * num_classes
    for img, c, t in zip(x, y, is_test):
        count[c] += 1
        iid = f"{breeds[c]}_{count[c]}"
        _save(base / "images" / f"{iid}.jpg", img)
        lines["test" if t else "trainval"].append(f"{iid} {c + 1} {1 + c % 2} {c // 2 + 1}\n")
    for split, ls in lines.items():
        (base / "annotations" / f"{split}.txt").write_text("".join(ls))
    return base


def write_cars(root: Path, x: np.ndarray, y: np.ndarray, is_test: np.ndarray, num_classes: int) -> Path:
    """stanford_cars/: devkit/cars_meta.mat (class_names), devkit/cars_train_annos.mat and
    cars_test_annos_withlabels.mat (struct arrays ``annotations`` with bbox_x1..y2, class 1-based, fname),
    cars_train/ and cars_test/ JPEGs."""
    import scipy.io

    base = Path(root) / "stanford_cars"
    (base / "devkit").mkdir(parents=True, exist_ok=True)
    names = np.empty((1, num_classes), dtype=object)
    names[0, :] = [f"Make{c} Model {2000 + c}" for c in range(num_classes)]
    scipy.io.savemat(str(base / "devkit" / "cars_meta.mat"), {"class_names": names})
    dt = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), ("fname", "O")]
    for split, folder, mat in (("train", "cars_train", base / "devkit" / "cars_train_annos.mat"),
                               ("test", "cars_test", base / "cars_test_annos_withlabels.mat")):
        rows = [(k, img, c) for k, (img, c, t) in enumerate(zip(x, y, is_test)) if bool(t) == (split == "test")]
        ann = np.zeros((1, len(rows)), dtype=dt)
        for j, (k, img, c) in enumerate(rows):
            fname = f"{j + 1:05d}.jpg"
            _save(base / folder / fname, img)
            h, w = img.shape[:2]
            ann[0, j] = (np.uint8(0), np.uint8(0), np.uint16(w - 1), np.uint16(h - 1), np.uint8(c + 1), fname)
        scipy.io.savemat(str(mat), {"annotations": ann})
    return base


def write_food101(root: Path, x: np.ndarray, y: np.ndarray, is_test: np.ndarray, num_classes: int) -> Path:
    """food-101/: images/<class>/<id>.jpg, meta/{classes.txt, train.json, test.json} ({class: ["class/id"]})."""
    import json

    base = Path(root) / "food-101"
    names = [f"dish_{c:03d}" for c in range(num_classes)]
    (base / "meta").mkdir(parents=True, exist_ok=True)
    (base / "meta" / "classes.txt").write_text("".join(f"{n}\n" for n in names))
    meta = {"train": {n: [] for n in names}, "test": {n: [] for n in names}}
    for i, (img, c, t) in enumerate(zip(x, y, is_test)):
        rel = f"{names[c]}/{100000 + i}"
        _save(base / "images" / f"{rel}.jpg", img)
        meta["test" if t else "train"][names[c]].append(rel)
    for split, m in meta.items():
        (base / "meta" / f"{split}.json").write_text(json.dumps(m))
    return base


def write_dtd(root: Path, x: np.ndarray, y: np.ndarray, split: np.ndarray, num_classes: int) -> Path:
    """dtd/dtd/: images/<class>/<class>_<n>.jpg, labels/{train,val,test}1.txt (``<class>/<file>``), imdb/."""
    base = Path(root) / "dtd" / "dtd"
    names = [f"texture{c:02d}" for c in range(num_classes)]
    lists = {"train": [], "val": [], "test": []}
    (base / "imdb").mkdir(parents=True, exist_ok=True)
    for i, (img, c, s) in enumerate(zip(x, y, split)):
        rel = f"{names[c]}/{names[c]}_{i:04d}.jpg"
        _save(base / "images" / rel, img)
        lists[str(s)].append(rel)
    (base / "labels").mkdir(parents=True, exist_ok=True)
    for s, ls in lists.items():
        (base / "labels" / f"{s}1.txt").write_text("".join(f"{r}\n" for r in ls))
    return base


def write_sun397(root: Path, x: np.ndarray, y: np.ndarray, num_classes: int) -> Path:
    """SUN397/: ClassName.txt (``/a/abbey`` lines) and <letter>/<class>/sun_<id>.jpg images."""
    base = Path(root) / "SUN397"
    names = [f"/{chr(97 + c % 26)}/scene_{c:03d}" for c in range(num_classes)]
    base.mkdir(parents=True, exist_ok=True)
    (base / "ClassName.txt").write_text("".join(f"{n}\n" for n in names))
    for i, (img, c) in enumerate(zip(x, y)):
        _save(base / names[c][1:] / f"sun_{'abcdefghijklmnop'[i % 16]}{i:015d}.jpg", img)
    return base


def write_caltech101(root: Path, x: np.ndarray, y: np.ndarray, num_classes: int) -> Path:
    """caltech101/101_ObjectCategories/<category>/image_%04d.jpg, plus the BACKGROUND_Google folder
    torchvision drops (categories sorted; the class of an image = its category's place among them)."""
    base = Path(root) / "caltech101" / "101_ObjectCategories"
    names = sorted(f"category_{c:03d}" for c in range(num_classes))
    count = [0] * num_classes
    for img, c in zip(x, y):
        count[c] += 1
        _save(base / names[c] / f"image_{count[c]:04d}.jpg", img)
    _save(base / "BACKGROUND_Google" / "image_0001.jpg", x[0])
    return base


def write_caltech256(root: Path, x: np.ndarray, y: np.ndarray, num_classes: int) -> Path:
    """caltech256/256_ObjectCategories/<NNN>.<name>/<NNN>_<i>.jpg (categories sorted; the last is clutter)."""
    base = Path(root) / "caltech256" / "256_ObjectCategories"
    count = [0] * num_classes
    for img, c in zip(x, y):
        count[c] += 1
        folder = f"{c + 1:03d}." + ("clutter" if c == num_classes - 1 else f"object-{c}")
        _save(base / folder / f"{c + 1:03d}_{count[c]:04d}.jpg", img)
    return base


def write_voc2012(root: Path, x: np.ndarray, m: np.ndarray, is_val: np.ndarray) -> Path:
    """VOCdevkit/VOC2012/: JPEGImages/<id>.jpg, SegmentationClass/<id>.png (palette PNGs, 255 = void),
    ImageSets/Segmentation/{train,val}.txt."""
    base = Path(root) / "VOCdevkit" / "VOC2012"
    palette = []
    for k in range(256):  # VOC's colour map: bits of the index spread over the channels
        r = g = b = 0
        c = k
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    lists = {"train": [], "val": []}
    (base / "SegmentationClass").mkdir(parents=True, exist_ok=True)
    for i, (img, mask, v) in enumerate(zip(x, m, is_val)):
        iid = f"2007_{i:06d}"
        _save(base / "JPEGImages" / f"{iid}.jpg", img)
        pm = Image.fromarray(mask.astype(np.uint8), "P")
        pm.putpalette(palette)
        pm.save(base / "SegmentationClass" / f"{iid}.png")
        lists["val" if v else "train"].append(iid)
    (base / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    for s, ls in lists.items():
        (base / "ImageSets" / "Segmentation" / f"{s}.txt").write_text("".join(f"{i}\n" for i in ls))
    return base


#: classes a loader fixes (the others take their class list from the files): the published counts
FIXED_CLASSES = {"cifar10": 10, "cifar100": 100, "svhn": 10, "visda17": 12, "flowers": 102}
#: the sets without an official split: the loader takes the first K images of every class for training
FIRST_K_TRAIN = {"sun397": 50, "caltech101": 30, "caltech256": 60}
#: the image size each set is written at (the published size for the fixed-size sets)
NATIVE = {"cifar10": 32, "cifar100": 32, "svhn": 32, "tiny_imagenet": 64}


def write_public(name: str, root: Path, n_train: int, n_test: int, size: int = 32, classes: int | None = None,
                 seed: int = 0) -> dict:
    """Write the public dataset ``name`` under ``root`` in its published format: ``n_train`` training and ``n_test``
    test images per class, of ``classes`` classes (default: the published count, ``repro.plan.cost.PUBLIC_SIZES``;
    fixed for the sets whose loader fixes it), synthetic images a network can learn (``repro.data.synthetic``) at
    ``size`` px (fixed-size sets at their native size). The sets without an official split get
    ``FIRST_K_TRAIN`` + ``n_test`` images per class, as their loaders split them. Returns what was written:
    {"classes", "train", "test"} (image counts per split as the loader will read them)."""
    from repro.data.synthetic import make_task
    from repro.plan.cost import PUBLIC_SIZES

    c = FIXED_CLASSES.get(name) or classes or PUBLIC_SIZES[name][2]
    tr_per = FIRST_K_TRAIN.get(name, n_train)
    px = NATIVE.get(name, size)
    t = make_task(f"rehearse_{name}", c, c * tr_per, c * n_test, size=px, gap=0.3, seed=seed)
    order_tr, order_te = np.argsort(t.y_train, kind="stable"), np.argsort(t.y_test, kind="stable")
    x, y = t.x_train, t.y_train
    xt, yt = t.x_test, t.y_test
    xs, ys = x[order_tr], y[order_tr]  # class-sorted, as CUB's images.txt and the folder layouts are
    # train and test images of each class together, in class order (CUB: one images.txt, a split flag per image)
    both_x = np.concatenate([xs, xt[order_te]])
    both_y = np.concatenate([ys, yt[order_te]])
    test_flag = np.r_[np.zeros(len(ys), bool), np.ones(len(yt), bool)]
    by_class = np.argsort(both_y, kind="stable")
    bx, by, bt = both_x[by_class], both_y[by_class], test_flag[by_class]
    root = Path(root)
    if name == "cifar10":
        write_cifar10(root, x, y, xt, yt)
    elif name == "cifar100":
        write_cifar100(root, x, y, xt, yt)
    elif name == "svhn":
        write_svhn(root, x, y, xt, yt)
    elif name == "tiny_imagenet":
        write_tiny_imagenet(root, x, y, xt, yt, c)
    elif name == "imagenet":
        write_imagenet(root, x, y, xt, yt)
    elif name == "cub200":
        write_cub200(root, bx, by, ~bt, c)
    elif name == "visda17":
        write_visda17(root, xs, ys, xt, yt)
    elif name == "birdsnap":
        write_birdsnap(root, np.concatenate([x, xt]), np.concatenate([y, yt]), test_flag, c)
    elif name == "flowers":
        half = np.arange(len(y)) % 2 == 0  # train and val alternate: the loader's training split is both
        write_flowers102(root, np.concatenate([x, xt]), np.concatenate([y, yt]),
                         np.r_[np.where(half, "train", "val"), np.full(len(yt), "test")])
    elif name == "aircraft":
        write_aircraft(root, bx, by, bt, c)
    elif name == "pets":
        write_pets(root, bx, by, bt, c)
    elif name == "cars":
        write_cars(root, np.concatenate([x, xt]), np.concatenate([y, yt]), test_flag, c)
    elif name == "food":
        write_food101(root, np.concatenate([x, xt]), np.concatenate([y, yt]), test_flag, c)
    elif name == "dtd":  # every class in train and in val (torchvision takes each split's classes from its list)
        half = np.r_[[np.sum(y[:k] == y[k]) % 2 == 0 for k in range(len(y))]] if len(y) else np.zeros(0, bool)
        write_dtd(root, np.concatenate([x, xt]), np.concatenate([y, yt]),
                  np.r_[np.where(half, "train", "val"), np.full(len(yt), "test")], c)
    elif name == "sun397":
        write_sun397(root, bx, by, c)
    elif name == "caltech101":
        write_caltech101(root, bx, by, c)
    elif name == "caltech256":
        write_caltech256(root, bx, by, c)
    else:
        raise ValueError(f"no format writer for {name!r}")
    return {"classes": c, "train": len(y), "test": len(yt)}


def write_voc(root: Path, n_train: int, n_test: int, size: int = 32, seed: int = 0) -> dict:
    """PASCAL VOC 2012 segmentation (``write_voc2012``) from the synthetic segmentation task, its classes as VOC
    class ids (0 background), with a void (255) border as the real masks have."""
    from repro.data.segmentation import make_seg_task

    t = make_seg_task("rehearse_voc", 21, n_train, n_test, size=size, seed=seed)
    m_tr, m_te = t.m_train.copy(), t.m_test.copy()
    for m in (m_tr, m_te):
        m[:, 0, :] = m[:, -1, :] = 255
    write_voc2012(root, np.concatenate([t.x_train, t.x_test]), np.concatenate([m_tr, m_te]),
                  np.r_[np.zeros(n_train, bool), np.ones(n_test, bool)])
    return {"classes": 21, "train": n_train, "test": n_test}


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
