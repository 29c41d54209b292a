"""Public-dataset loaders on tiny files built in the exact published on-disk formats (no download)."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import yaml
from PIL import Image

from repro.config import ConfigError, DataParams, from_dict
from repro.data import DATASETS, PUBLIC_DATASETS, ArrayTask, DataError, first_per_class, fit_square, load_public
from repro.data.public import TORCHVISION_SETS, safe_unpickle
from repro.registries import params_from

from published_formats import (py2_pickle, write_birdsnap, write_cifar10, write_cub200, write_svhn,
                               write_tiny_imagenet, write_visda17)

# ------------------------------------------------------------------ file builders


_py2_pickle = py2_pickle


def _rows(rng, n):
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8)


def make_cifar10(root: Path, seed: int = 0) -> dict:
    """cifar-10-batches-py with 2 images per batch; returns the rows and labels written, in file order."""
    rng = np.random.default_rng(seed)
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    rows, labels = [], []
    for i, label_pair in enumerate([[3, 7], [3, 1], [7, 3], [0, 9], [3, 3]], 1):
        data = _rows(rng, 2)
        (base / f"data_batch_{i}").write_bytes(_py2_pickle({
            "batch_label": f"training batch {i} of 5", "labels": label_pair, "data": data,
            "filenames": [f"img_{i}_{k}.png" for k in range(2)]}))
        rows.append(data)
        labels += label_pair
    test = _rows(rng, 3)
    (base / "test_batch").write_bytes(_py2_pickle({
        "batch_label": "testing batch 1 of 1", "labels": [5, 5, 2], "data": test,
        "filenames": ["t0.png", "t1.png", "t2.png"]}))
    (base / "batches.meta").write_bytes(_py2_pickle({"label_names": [f"c{k}" for k in range(10)],
                                                     "num_cases_per_batch": 2, "num_vis": 3072}))
    return {"train": np.concatenate(rows), "y_train": np.array(labels), "test": test, "y_test": np.array([5, 5, 2])}


def make_cifar100(root: Path) -> dict:
    rng = np.random.default_rng(1)
    base = root / "cifar-100-python"
    base.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, fine, coarse in (("train", [99, 0, 42, 99], [19, 4, 7, 19]), ("test", [42, 1], [7, 1])):
        data = _rows(rng, len(fine))
        (base / split).write_bytes(_py2_pickle({
            "filenames": [f"{split}_{k}.png" for k in range(len(fine))], "batch_label": f"{split} batch",
            "fine_labels": fine, "coarse_labels": coarse, "data": data}))
        out[split], out[f"y_{split}"] = data, np.array(fine)
    return out


def make_svhn(folder: Path) -> dict:
    rng = np.random.default_rng(2)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, labels in (("train", [10, 1, 10, 5, 10]), ("test", [3, 10])):
        x = rng.integers(0, 256, (32, 32, 3, len(labels)), dtype=np.uint8)
        y = np.array(labels, np.uint8).reshape(-1, 1)
        scipy.io.savemat(str(folder / f"{split}_32x32.mat"), {"X": x, "y": y})
        out[split], out[f"y_{split}"] = x, np.array(labels)
    return out


def _jpeg(path: Path, rng, shape=(64, 64), gray: bool = False) -> np.ndarray:
    """Write a JPEG; return what PIL decodes from it as RGB (the loader's reference)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if gray:
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), "L").save(path, "JPEG")
    else:
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8), "RGB").save(path, "JPEG")
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


WNIDS = ["n02000002", "n01000001"]  # line order, deliberately not sorted


def make_tiny(root: Path) -> dict:
    rng = np.random.default_rng(3)
    base = root / "tiny-imagenet-200"
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (base / "words.txt").write_text("n02000002\tsecond\nn01000001\tfirst\n")
    train = {}
    for w in WNIDS:
        (base / "train" / w).mkdir(parents=True)
        (base / "train" / w / f"{w}_boxes.txt").write_text("")
        for i in (10, 0, 2):  # natural file order: 0, 2, 10
            train[(w, i)] = _jpeg(base / "train" / w / "images" / f"{w}_{i}.JPEG", rng, gray=(w == WNIDS[1] and i == 2))
    ann, val = [], []
    for i, w in enumerate([WNIDS[1], WNIDS[0], WNIDS[1]]):
        val.append(_jpeg(base / "val" / "images" / f"val_{i}.JPEG", rng))
        ann.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(ann) + "\n")
    (base / "test" / "images").mkdir(parents=True)  # unlabeled in the real archive; not used
    return {"train": train, "val": val}


def make_imagenet(root: Path) -> dict:
    rng = np.random.default_rng(4)
    imgs = {}
    for split, per in (("train", 3), ("val", 2)):
        for w in ("n09999999", "n01440764"):
            for i in range(per):
                shape = (24, 36) if i == 0 else (30, 20)
                imgs[(split, w, i)] = _jpeg(root / "imagenet" / split / w / f"{w}_{i}.JPEG", rng, shape)
    return imgs


# ------------------------------------------------------------------------ helpers


def test_first_per_class_keeps_the_first_n_of_every_class_in_order():
    y = np.array([2, 0, 2, 2, 1, 0, 0, 2])
    assert first_per_class(y, 2).tolist() == [0, 1, 2, 4, 5]
    assert first_per_class(y, None).tolist() == list(range(8))
    assert first_per_class(y, 100).tolist() == list(range(8))
    with pytest.raises(ValueError):
        first_per_class(y, 0)


def test_fit_square_resizes_the_shorter_side_and_centre_crops():
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, 10:30] = 200  # the centre 20 columns
    img[:, 30:] = 50
    out = fit_square(img, 10)
    assert out.shape == (10, 10, 3) and (out == 200).all()
    sq = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert fit_square(sq, 32) is sq
    assert np.array_equal(fit_square(sq, 16), cv2.resize(sq, (16, 16), interpolation=cv2.INTER_AREA))
    assert np.array_equal(fit_square(sq, 40), cv2.resize(sq, (40, 40), interpolation=cv2.INTER_LINEAR))


def test_registry_names_and_disjoint_from_synthetic():
    expected = {"cifar10", "cifar100", "svhn", "tiny_imagenet", "imagenet", "aircraft", "pets", "flowers", "cars",
                "food", "dtd", "sun397", "caltech101", "caltech256", "cub200", "visda17", "birdsnap"}
    assert set(PUBLIC_DATASETS.names()) == expected
    assert not set(PUBLIC_DATASETS.names()) & set(DATASETS.names())
    import torchvision.datasets as tvd

    for name, spec in TORCHVISION_SETS.items():
        assert callable(getattr(tvd, spec.tv_class)), name


# -------------------------------------------------------------------------- CIFAR


def test_cifar10_pixels_and_labels_are_exact(tmp_path):
    ref = make_cifar10(tmp_path)
    t = load_public("cifar10", tmp_path, 32)
    assert isinstance(t, ArrayTask) and t.name == "cifar10" and t.num_classes == 10
    assert t.x_train.dtype == np.uint8 and t.x_train.shape == (10, 32, 32, 3) and t.y_train.dtype == np.int64
    for i in range(10):  # row-major CHW -> HWC, batches 1..5 in order
        assert np.array_equal(t.x_train[i], ref["train"][i].reshape(3, 32, 32).transpose(1, 2, 0))
    assert t.y_train.tolist() == ref["y_train"].tolist()
    assert np.array_equal(t.x_test[2], ref["test"][2].reshape(3, 32, 32).transpose(1, 2, 0))
    assert t.y_test.tolist() == [5, 5, 2]
    # mean/std come from the training images (the downstream normalization)
    assert np.allclose(t.mean, t.x_train.reshape(-1, 3).mean(0) / 255, atol=1e-9)


def test_cifar10_caps_keep_the_first_n_per_class_in_file_order(tmp_path):
    ref = make_cifar10(tmp_path)
    t = load_public("cifar10", tmp_path, 32, max_train=2, max_test=1)
    keep = [0, 1, 2, 3, 4, 6, 7]  # labels 3,7,3,1,7,[3],0,9,[3],[3]: the 3rd+ '3' are dropped
    assert t.y_train.tolist() == ref["y_train"][keep].tolist() == [3, 7, 3, 1, 7, 0, 9]
    assert np.array_equal(t.x_train[5], ref["train"][6].reshape(3, 32, 32).transpose(1, 2, 0))
    assert t.y_test.tolist() == [5, 2]


def test_cifar10_resizes_with_inter_area(tmp_path):
    ref = make_cifar10(tmp_path)
    t = load_public("cifar10", tmp_path, 16)
    img = ref["train"][4].reshape(3, 32, 32).transpose(1, 2, 0)
    assert t.x_train.shape == (10, 16, 16, 3)
    assert np.array_equal(t.x_train[4], cv2.resize(np.ascontiguousarray(img), (16, 16), interpolation=cv2.INTER_AREA))
    # upscale=False keeps the native 32 px when a larger size is asked (the recipes resize at load time)
    assert load_public("cifar10", tmp_path, 224, upscale=False).image_size == (32, 32)


def test_cifar100_uses_fine_labels(tmp_path):
    ref = make_cifar100(tmp_path)
    t = load_public("cifar100", tmp_path, 32)
    assert t.num_classes == 100 and t.y_train.tolist() == [99, 0, 42, 99] and t.y_test.tolist() == [42, 1]
    assert np.array_equal(t.x_test[1], ref["test"][1].reshape(3, 32, 32).transpose(1, 2, 0))


def test_cifar_missing_and_truncated_files_are_one_clear_error(tmp_path):
    with pytest.raises(DataError) as e:
        load_public("cifar10", tmp_path, 32)
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "cifar-10-batches-py" / "data_batch_1") in msg
    assert "data.root" in msg and "data.download: true" in msg
    make_cifar10(tmp_path)
    f = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    f.write_bytes(f.read_bytes()[:500])
    with pytest.raises(DataError, match="truncated or corrupted") as e:
        load_public("cifar10", tmp_path, 32)
    assert str(f) in str(e.value)


def test_a_pickle_with_a_forbidden_global_is_refused_and_not_run(tmp_path):
    make_cifar10(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    f = tmp_path / "cifar-10-batches-py" / "test_batch"
    f.write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}, protocol=4))
    with pytest.raises(DataError, match=r"refusing to unpickle the global (posix|os|nt)\.system") as e:
        load_public("cifar10", tmp_path, 32)
    assert str(f) in str(e.value) and not marker.exists()
    # builtins are globals too
    f.write_bytes(pickle.dumps({b"data": eval, b"labels": [0]}, protocol=4))
    with pytest.raises(DataError, match=r"builtins\.eval"):
        load_public("cifar10", tmp_path, 32)


def test_safe_unpickle_reads_numpy_arrays_of_any_protocol(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for proto in (3, 4, 5):  # (protocol 2 from Python 2: the CIFAR tests above)
        (tmp_path / "a.pkl").write_bytes(pickle.dumps({b"data": a, b"labels": [1, 2, 3]}, protocol=proto))
        d = safe_unpickle(tmp_path / "a.pkl")
        assert np.array_equal(d[b"data"], a) and d[b"labels"] == [1, 2, 3]


def test_cifar_download_calls_torchvision_only_when_files_are_missing(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    calls = []

    def fake_cifar10(root, train=True, download=False, **kw):
        calls.append((root, train, download))
        make_cifar10(Path(root))

    monkeypatch.setattr(tvd, "CIFAR10", fake_cifar10)
    t = load_public("cifar10", tmp_path / "d", 32, download=True)
    assert calls == [(str(tmp_path / "d"), False, True)] and t.y_train.size == 10
    load_public("cifar10", tmp_path / "d", 32, download=True)
    assert len(calls) == 1


# --------------------------------------------------------------------------- SVHN


@pytest.mark.parametrize("sub", ["", "svhn"])
def test_svhn_pixels_exact_and_label_10_is_digit_0(tmp_path, sub):
    ref = make_svhn(tmp_path / sub if sub else tmp_path)
    t = load_public("svhn", tmp_path, 32)
    assert t.num_classes == 10 and t.y_train.tolist() == [0, 1, 0, 5, 0] and t.y_test.tolist() == [3, 0]
    assert np.array_equal(t.x_train[3], ref["train"][:, :, :, 3])
    assert np.array_equal(t.x_test[1], ref["test"][..., 1])
    capped = load_public("svhn", tmp_path, 32, max_train=2)
    assert capped.y_train.tolist() == [0, 1, 0, 5]


def test_svhn_missing_and_truncated(tmp_path):
    with pytest.raises(DataError) as e:
        load_public("svhn", tmp_path, 32)
    assert str(tmp_path / "train_32x32.mat") in str(e.value) and "\n" not in str(e.value)
    make_svhn(tmp_path)
    f = tmp_path / "test_32x32.mat"
    f.write_bytes(f.read_bytes()[:300])
    with pytest.raises(DataError, match="truncated or corrupted") as e:
        load_public("svhn", tmp_path, 32)
    assert str(f) in str(e.value)


# ------------------------------------------------------------------ Tiny-ImageNet


def test_tiny_imagenet_labels_order_grayscale_and_val_annotations(tmp_path):
    ref = make_tiny(tmp_path)
    t = load_public("tiny_imagenet", tmp_path, 64)
    assert t.num_classes == 2 and t.image_size == (64, 64)
    # class order = wnids.txt line order; files in natural order 0, 2, 10
    assert t.y_train.tolist() == [0, 0, 0, 1, 1, 1]
    order = [(w, i) for w in WNIDS for i in (0, 2, 10)]
    for k, key in enumerate(order):
        assert np.array_equal(t.x_train[k], ref["train"][key]), key
    gray = t.x_train[order.index((WNIDS[1], 2))]
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    # val = test split, labels from val_annotations.txt
    assert t.y_test.tolist() == [1, 0, 1]
    assert np.array_equal(t.x_test[1], ref["val"][1])


def test_tiny_imagenet_resize_and_caps(tmp_path):
    ref = make_tiny(tmp_path)
    t = load_public("tiny_imagenet", tmp_path, 32, max_train=2, max_test=1)
    assert t.image_size == (32, 32)
    assert t.y_train.tolist() == [0, 0, 1, 1] and t.y_test.tolist() == [1, 0]
    exp = cv2.resize(ref["train"][(WNIDS[0], 2)], (32, 32), interpolation=cv2.INTER_AREA)
    assert np.array_equal(t.x_train[1], exp)


def test_tiny_imagenet_missing_and_corrupted(tmp_path):
    with pytest.raises(DataError) as e:
        load_public("tiny_imagenet", tmp_path, 32)
    assert str(tmp_path / "tiny-imagenet-200" / "wnids.txt") in str(e.value)
    make_tiny(tmp_path)
    f = tmp_path / "tiny-imagenet-200" / "val" / "images" / "val_2.JPEG"
    f.write_bytes(f.read_bytes()[:200])
    with pytest.raises(DataError, match="truncated or corrupted") as e:
        load_public("tiny_imagenet", tmp_path, 32)
    assert str(f) in str(e.value)
    (tmp_path / "tiny-imagenet-200" / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99999999\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match="line 1"):
        load_public("tiny_imagenet", tmp_path, 32)


# ----------------------------------------------------------------------- ImageNet


# ------------------------------------------------------ Fig. 9 sets via torchvision


def make_dtd(root: Path) -> dict:
    """torchvision's DTD layout: dtd/dtd/images/<class>/*.jpg + dtd/dtd/labels/{train,val,test}1.txt."""
    rng = np.random.default_rng(5)
    base = root / "dtd" / "dtd"
    imgs, lists = {}, {"train": [], "val": [], "test": []}
    for cls in ("zigzagged", "banded"):
        for i, split in enumerate(("train", "train", "val", "test")):
            name = f"{cls}_{i:04d}.jpg"
            imgs[f"{cls}/{name}"] = _jpeg(base / "images" / cls / name, rng, (40, 30))
            lists[split].append(f"{cls}/{name}")
    (base / "labels").mkdir(parents=True)
    for split, lines in lists.items():
        (base / "labels" / f"{split}1.txt").write_text("\n".join(lines) + "\n")
    (base / "imdb").mkdir()
    return imgs


def test_dtd_through_torchvision_in_its_layout(tmp_path):
    imgs = make_dtd(tmp_path)
    t = load_public("dtd", tmp_path, 16)
    # classes sorted (banded=0, zigzagged=1); train = train1 + val1 in file order
    assert t.num_classes == 2 and t.y_train.tolist() == [1, 1, 0, 0, 1, 0] and t.y_test.tolist() == [1, 0]
    assert np.array_equal(t.x_train[0], fit_square(imgs["zigzagged/zigzagged_0000.jpg"], 16))
    assert np.array_equal(t.x_train[4], fit_square(imgs["zigzagged/zigzagged_0002.jpg"], 16))
    assert np.array_equal(t.x_test[1], fit_square(imgs["banded/banded_0003.jpg"], 16))
    capped = load_public("dtd", tmp_path, 16, max_train=1)
    assert capped.y_train.tolist() == [1, 0]
    with pytest.raises(DataError) as e:
        load_public("dtd", tmp_path / "nowhere", 16)
    assert str(tmp_path / "nowhere" / "dtd" / "dtd") in str(e.value) and "\n" not in str(e.value)


def test_caltech101_split_first_30_per_class(tmp_path):
    rng = np.random.default_rng(6)
    cats = tmp_path / "caltech101" / "101_ObjectCategories"
    for c, n in (("BACKGROUND_Google", 1), ("accordion", 32), ("Faces", 31)):
        for i in range(1, n + 1):
            _jpeg(cats / c / f"image_{i:04d}.jpg", rng, (8, 8), gray=(i == 1))
    t = load_public("caltech101", tmp_path, 8)
    # categories sorted, BACKGROUND_Google dropped: Faces=0, accordion=1
    assert t.num_classes == 2 and t.y_train.tolist() == [0] * 30 + [1] * 30 and t.y_test.tolist() == [0, 1, 1]


def test_flowers102_train_is_train_plus_val_with_zero_based_labels(tmp_path):
    """Flowers102 in torchvision's layout: flowers-102/jpg/image_%05d.jpg, imagelabels.mat (1-based
    labels by image id) and setid.mat (trnid/valid/tstid), read by repro itself: torchvision's class
    refuses any .mat file but the published bytes (md5), so files written in the format would not load
    (the rehearsal's data roots, issue 25). Damaged files are one line naming the file."""
    rng = np.random.default_rng(7)
    base = tmp_path / "flowers-102"
    imgs = {i: _jpeg(base / "jpg" / f"image_{i:05d}.jpg", rng, (20, 28)) for i in range(1, 9)}
    scipy.io.savemat(base / "imagelabels.mat", {"labels": np.array([[2, 1, 2, 1, 1, 2, 2, 1]], np.uint8)})
    scipy.io.savemat(base / "setid.mat", {"trnid": np.array([[3, 2]], np.uint16), "valid": np.array([[5, 6]], np.uint16),
                                          "tstid": np.array([[8, 1, 7, 4]], np.uint16)})
    t = load_public("flowers", tmp_path, 16)
    assert t.num_classes == 102  # the published class count, whatever labels the files hold
    assert t.y_train.tolist() == [1, 0, 0, 1] and t.y_test.tolist() == [0, 1, 1, 0]  # ids 3, 2, 5, 6 | 8, 1, 7, 4
    assert np.array_equal(t.x_train[3], fit_square(imgs[6], 16)) and np.array_equal(t.x_test[2], fit_square(imgs[7], 16))
    scipy.io.savemat(base / "setid.mat", {"trnid": np.array([[3, 9]], np.uint16), "valid": np.array([[5]], np.uint16),
                                          "tstid": np.array([[8]], np.uint16)})
    with pytest.raises(DataError, match=r"setid.mat.*train image ids must lie in \[1, 8\]"):
        load_public("flowers", tmp_path, 16)
    (base / "imagelabels.mat").write_bytes(b"not a mat file")
    with pytest.raises(DataError, match="imagelabels.mat' is not a readable .mat file"):
        load_public("flowers", tmp_path, 16)


# --------------------------------------------------------- config and the data stage


def test_params_accept_public_names_and_list_every_allowed_name():
    from repro.registries import params_from

    p = params_from({"data": {"source": "tiny_imagenet", "downstream": ["cifar10", "dtd"], "ood": "svhn"}})
    assert p.data.caps("cifar10") == (None, None)
    with pytest.raises(ConfigError) as e:
        params_from({"data": {"downstream": ["cifar11"]}})
    msg = str(e.value)
    assert "dataset 'cifar11' is unknown" in msg
    for name in (*PUBLIC_DATASETS.names(), *DATASETS.names()):
        assert name in msg


@pytest.mark.parametrize("data, needle", [
    ({"max_train": 0}, "data.max_train: 0 must be >= 1"),
    ({"max_test": -2}, "data.max_test: -2 must be >= 1"),
    ({"max_train_per_task": {"imagenet": 5}}, "data.max_train_per_task.imagenet: 'imagenet' is not a task"),
    ({"source": "imagenet", "max_test_per_task": {"imagenet": 0}}, "data.max_test_per_task.imagenet: 0 must be >= 1"),
    ({"download": "yes"}, "data.download"),
])
def test_cap_params_are_validated_by_key(data, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        params_from({"data": data})


def test_caps_per_task_override_the_global_cap():
    d = from_dict(DataParams, {"source": "imagenet", "downstream": ["cifar10"], "ood": "svhn", "max_train": 50,
                               "max_train_per_task": {"imagenet": 3}, "max_test_per_task": {"svhn": 7}})
    assert d.caps("imagenet") == (3, None) and d.caps("cifar10") == (50, None) and d.caps("svhn") == (50, 7)


def test_data_stage_builds_public_tasks_from_data_root(tmp_path, monkeypatch, capsys):
    import torch

    from repro.stages import data as data_stage
    from repro.stages.common import run_stage

    root = tmp_path / "datasets"
    make_tiny(root)
    rng = np.random.default_rng(7)
    x, y = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), np.arange(20) % 10  # every class: the data
    write_cifar10(root, x, y, x[:10], y[:10])                                              # stage refuses a lost one
    write_svhn(root, x, y, x[:10], y[:10])
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump({"data": {
        "root": str(root), "source": "tiny_imagenet", "downstream": ["cifar10", "svhn"], "ood": "svhn",
        "ood_per_task": {"svhn": "cifar10"},  # never a task's AUROC against itself (refused at validation)
        "image_size": 32, "max_train_per_task": {"tiny_imagenet": 2}},
        "pretrain": {"early_stopping": {"how": "none"}}}))  # a 4-image source cannot hold out images for it
    monkeypatch.chdir(work)
    monkeypatch.setenv("REPRO_THREADS", "1")
    threads = torch.get_num_threads()
    try:
        assert run_stage("data", data_stage.body) == 0
        (work / "params.yaml").write_text(yaml.safe_dump({"data": {
            "root": str(tmp_path / "empty"), "source": "cifar100", "downstream": ["cifar10"], "ood": "svhn"}}))
        capsys.readouterr()
        assert run_stage("data", data_stage.body) == 2  # a missing dataset: one line naming the path
    finally:
        torch.set_num_threads(threads)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and str(tmp_path / "empty" / "cifar-100-python" / "train") in err[0], err
    built = sorted(f.name for f in (work / "runs" / "data").iterdir())
    assert built == ["cifar10.npz", "svhn.npz", "synth_seg.npz", "tiny_imagenet.npz"]  # + the segment stage's task
    src = ArrayTask.load(work / "runs" / "data" / "tiny_imagenet.npz")
    assert src.image_size == (32, 32) and src.y_train.tolist() == [0, 0, 1, 1] and src.y_test.tolist() == [1, 0, 1]
    c10 = ArrayTask.load(work / "runs" / "data" / "cifar10.npz")
    assert np.array_equal(c10.x_train, x) and c10.y_train.tolist() == y.tolist()
    assert ArrayTask.load(work / "runs" / "data" / "svhn.npz").y_train.tolist() == y.tolist()  # 10 -> digit 0


def test_data_stage_without_segmentation_reads_no_voc(tmp_path, monkeypatch, capsys):
    """segment.pairs: [] (the r18 and vtab overlays): the data stage builds the classification tasks and no
    segmentation task, so segment.task voc2012 needs no VOC files under data.root."""
    from repro.stages import data as data_stage

    root = tmp_path / "datasets"
    x, y = np.random.default_rng(3).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), np.arange(20) % 10
    write_cifar10(root, x, y, x[:10], y[:10])
    cfg = {"data": {"root": str(root), "source": "cifar10", "downstream": ["cifar10"], "ood": "synth_ood",
                    "image_size": 32},
           "pretrain": {"early_stopping": {"how": "none"}}, "segment": {"task": "voc2012", "pairs": []}}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REPRO_THREADS", "1")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(cfg))
    assert data_stage.main() == 0
    assert sorted(f.name for f in (tmp_path / "runs" / "data").iterdir()) == ["cifar10.npz", "synth_ood.npz"]
    cfg["segment"]["pairs"] = [["standard", "omp"]]  # segmentation on: the VOC files are read, and missing
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(cfg))
    capsys.readouterr()
    assert data_stage.main() == 2
    assert "VOC" in capsys.readouterr().err


def test_keep_fraction_takes_the_first_share_of_every_class():
    """A tier's reduced-data option: ceil(f * n_c) first images of each class, both splits."""
    from repro.data import ArrayTask
    from repro.data.public import keep_fraction

    y = np.array([0, 1, 0, 0, 1, 2, 0, 1], np.int64)
    x = (np.arange(8, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8))
    t = keep_fraction(ArrayTask("t", x, y, x[:4], y[:4], 3), 0.5)
    assert t.y_train.tolist() == [0, 1, 0, 1, 2]          # class 0: 2 of 4, class 1: 2 of 3, class 2: 1 of 1
    assert t.x_train[:, 0, 0, 0].tolist() == [0, 1, 2, 4, 5]
    assert t.y_test.tolist() == [0, 1, 0]
    assert keep_fraction(t, 1.0) is t
    with pytest.raises(ValueError, match="outside"):
        keep_fraction(t, 0.0)


def test_written_cifar10_and_tiny_imagenet_round_trip_through_the_loaders(tmp_path):
    """The writers used for offline tier runs (tests/published_formats.py) produce what the loaders read."""
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    y = np.arange(20) % 10
    write_cifar10(tmp_path, x, y, x[:10], y[:10])
    t = load_public("cifar10", tmp_path, 32)
    assert np.array_equal(t.x_train, x) and np.array_equal(t.y_train, y) and np.array_equal(t.y_test, y[:10])
    xs = np.broadcast_to(rng.integers(0, 256, (6, 1, 1, 3), dtype=np.uint8), (6, 64, 64, 3)).copy()  # flat: JPEG-exact-ish
    write_tiny_imagenet(tmp_path, xs, np.array([0, 1, 2, 0, 1, 2]), xs[:3], np.array([2, 1, 0]), 3)
    ti = load_public("tiny_imagenet", tmp_path, 64)
    assert ti.num_classes == 3 and sorted(ti.y_train.tolist()) == [0, 0, 1, 1, 2, 2]
    assert ti.y_test.tolist() == [2, 1, 0]
    assert np.abs(ti.x_train.astype(int) - xs[np.argsort([0, 1, 2, 0, 1, 2], kind="stable")].astype(int)).max() <= 2  # JPEG


def test_small_tier_data_stage_offline_at_a_fraction(tmp_path, monkeypatch):
    """Tier `small` at --fraction 0.5 on a data.root holding CIFAR-10, Tiny-ImageNet and PASCAL VOC 2012 (the
    small tier's segmentation task): the data stage writes the tasks at 32 px with half of every class (no
    network)."""
    from voc_files import write_voc

    from repro import tiers
    from repro.stages import data as data_stage

    root = tmp_path / "data"
    rng = np.random.default_rng(6)
    x = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    write_cifar10(root, x, np.arange(40) % 10, x[:20], np.arange(20) % 10)
    xs = rng.integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    write_tiny_imagenet(root, xs, np.arange(8) % 2, xs[:4], np.arange(4) % 2, 2)
    write_voc(root, {"train": 2, "val": 1})
    monkeypatch.chdir(tmp_path)
    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "tiers").mkdir()
    (tmp_path / "tiers" / "small.yaml").write_text((repo / "tiers" / "small.yaml").read_text())
    (tmp_path / "params.yaml").write_text((repo / "params.yaml").read_text())
    tiers.apply("small", fraction=0.5)
    cfg = yaml.safe_load((tmp_path / "params.yaml").read_text())
    cfg["data"].update(downstream=["cifar10"], ood="tiny_imagenet")
    assert cfg["pretrain"]["early_stopping"]["n"] == 500  # early-stopped FGSM-RS holds out 1,000 source images, halved
    cfg["pretrain"]["early_stopping"].update(n=2, robust_images=2)  # this test's source has 4 images
    for e in cfg["experiments"].values():
        e.pop("tasks", None)
        e["fractions"] = [1.0]   # DW Fig. 5's 1 % of 10 images would be refused (fewer than 2 images)
    assert cfg["transfer"]["validation"]["n"] == 2500  # the official 5,000 held-out images, halved
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(cfg))
    assert data_stage.main() == 2  # 20 CIFAR images cannot hold out 2,500: refused before anything is written
    assert not (tmp_path / "runs" / "data" / "cifar10.npz").exists()
    cfg["transfer"]["validation"].update(n=10, robust_images=2)  # one of each class (5 would lose 5 classes)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(cfg))
    assert cfg["pretrain"]["train"]["epochs"] == 45 and cfg["data"]["fraction"] == 0.5
    assert data_stage.main() == 0
    c10 = ArrayTask.load(tmp_path / "runs" / "data" / "cifar10.npz")
    assert c10.x_train.shape == (20, 32, 32, 3) and np.bincount(c10.y_train).tolist() == [2] * 10
    tiny = ArrayTask.load(tmp_path / "runs" / "data" / "tiny_imagenet.npz")
    assert tiny.x_train.shape == (4, 32, 32, 3) and tiny.num_classes == 2


# ------------------------------------------- CUB-200-2011, VisDA-2017, Birdsnap (list files)


def _decoded(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _imgs(n, seed, shape=(20, 28)):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape, 3), dtype=np.uint8)


def test_cub200_official_split_one_based_labels_and_pixels(tmp_path):
    x, y = _imgs(6, 10), np.array([2, 0, 1, 2, 0, 1])
    base = write_cub200(tmp_path, x, y, np.array([1, 0, 1, 1, 0, 0]), num_classes=3)
    t = load_public("cub200", tmp_path, 16)
    assert t.num_classes == 3 and t.y_train.tolist() == [2, 1, 2] and t.y_test.tolist() == [0, 0, 1]
    rel = (base / "images.txt").read_text().splitlines()[3].split()[1]  # image id 4, the third training image
    assert np.array_equal(t.x_train[2], fit_square(_decoded(base / "images" / rel), 16))
    assert load_public("cub200", tmp_path, 16, max_train=1).y_train.tolist() == [2, 1]


def test_cub200_missing_and_damaged_files_are_one_line(tmp_path):
    with pytest.raises(DataError) as e:
        load_public("cub200", tmp_path, 16)
    assert str(tmp_path / "CUB_200_2011" / "classes.txt") in str(e.value) and "\n" not in str(e.value)
    base = write_cub200(tmp_path, _imgs(3, 11), np.array([0, 1, 0]), np.array([1, 1, 0]), num_classes=2)
    (base / "image_class_labels.txt").write_text("1 1\n2 3\n3 1\n")
    with pytest.raises(DataError, match=r"line 2: class id 3 is outside \[1, 2\]"):
        load_public("cub200", tmp_path, 16)
    (base / "image_class_labels.txt").write_text("1 1\n2 2\n")
    with pytest.raises(DataError, match="image id 3 of images.txt is missing"):
        load_public("cub200", tmp_path, 16)
    (base / "image_class_labels.txt").write_text("1 1\n2 2\n3 1\n")
    victim = base / "images" / (base / "images.txt").read_text().splitlines()[0].split()[1]
    victim.write_bytes(victim.read_bytes()[:40])
    with pytest.raises(DataError) as e:
        load_public("cub200", tmp_path, 16)
    assert str(victim) in str(e.value) and "truncated or corrupted" in str(e.value) and "\n" not in str(e.value)


def test_visda17_train_is_synthetic_split_test_is_validation_labels_from_image_list(tmp_path):
    x, y, xv, yv = _imgs(4, 12), np.array([11, 0, 11, 5]), _imgs(3, 13), np.array([5, 0, 0])
    base = write_visda17(tmp_path, x, y, xv, yv)
    t = load_public("visda17", tmp_path, 16)
    assert t.num_classes == 12 and t.y_train.tolist() == [11, 0, 11, 5] and t.y_test.tolist() == [5, 0, 0]
    assert np.array_equal(t.x_train[1], fit_square(x[1], 16))  # PNG: lossless
    rel = (base / "validation" / "image_list.txt").read_text().splitlines()[2].split()[0]
    assert rel.startswith("aeroplane/") and np.array_equal(t.x_test[2], fit_square(_decoded(base / "validation" / rel), 16))
    (base / "train" / "image_list.txt").write_text("aeroplane/a.png 12\n")
    with pytest.raises(DataError, match=r"line 1: label 12 is outside \[0, 11\]"):
        load_public("visda17", tmp_path, 16)
    with pytest.raises(DataError) as e:
        load_public("visda17", tmp_path / "none", 16)
    assert str(tmp_path / "none" / "visda17" / "train" / "image_list.txt") in str(e.value) and "\n" not in str(e.value)


def test_birdsnap_test_list_header_columns_and_failed_downloads(tmp_path):
    x, y = _imgs(7, 14), np.array([1, 0, 1, 2, 0, 2, 1])
    base = write_birdsnap(tmp_path, x, y, np.array([0, 1, 0, 0, 0, 1, 1]), num_classes=3, failed=(2,))
    t = load_public("birdsnap", tmp_path, 16)
    # image 2 was never fetched (fail.txt): skipped; test = images 1, 5, 6
    assert t.num_classes == 3 and t.y_train.tolist() == [1, 2, 0] and t.y_test.tolist() == [0, 2, 1]
    rel = (base / "images.txt").read_text().splitlines()[4].split("\t")[2]  # image 3
    assert np.array_equal(t.x_train[1], fit_square(_decoded(base / "download" / "images" / rel), 16))
    (base / "fail.txt").unlink()
    with pytest.raises(DataError) as e:  # a missing image nobody reported failed: one line naming it
        load_public("birdsnap", tmp_path, 16)
    assert "Bird_Species_2/100002.jpg" in str(e.value) and "\n" not in str(e.value)
    (base / "test_images.txt").write_text("file\nBird_Species_1/100001.jpg\n")
    with pytest.raises(DataError, match="header naming path; missing path"):
        load_public("birdsnap", tmp_path, 16)


def test_vtab_overlay_runs_rt_fig9_on_the_paper_tier():
    """RT Fig. 9 / Table II: OMP tickets of the published ResNet-18s, linear evaluation on the 12 VTAB tasks, FID."""
    from repro.tiers import combine

    p = params_from(combine(["paper", "vtab"]))
    vtab = ["cifar10", "aircraft", "cifar100", "pets", "flowers", "cars", "food", "dtd", "birdsnap", "sun397",
            "caltech101", "caltech256"]
    assert all(t in PUBLIC_DATASETS for t in vtab) and set(vtab) <= set(p.data.downstream)
    rt = p.experiments["rt_omp"]
    assert list(rt.tasks) == vtab and rt.regimes == ("linear",)
    assert set(rt.pairs) == {("standard", "omp"), ("pgd_adversarial", "omp")} and p.model.arch == "resnet18"
    assert p.pretrain.kinds == ("standard", "pgd_adversarial")
    assert {k: p.pretrain.published[k] for k in p.pretrain.kinds} == {
        "standard": "torchvision_resnet18_imagenet1k_v1", "pgd_adversarial": "madrylab_resnet18_linf_eps4.0"}
    assert p.evaluation.domain_gap == "fid"
    assert all(not e.pairs for name, e in p.experiments.items() if name != "rt_omp")


def test_a10_overlay_runs_dw_figA10_classification_on_cub_and_visda():
    """DW Fig. A10: the three pretrainings' IMP tickets on CUB-200 and VisDA17, and VOC segmentation."""
    from repro.tiers import combine

    p = params_from(combine(["paper", "a10"]))
    e = p.experiments["dw_pretraining"]
    assert e.tasks == ("cub200", "visda17") and e.regimes == ("standard",)
    assert {k for k, m in e.pairs if m == "imp"} == {"standard", "fast_adversarial", "pgd_adversarial"}
    assert all(not x.pairs for name, x in p.experiments.items() if name != "dw_pretraining")
    assert p.segment.task == "voc2012" and {k for k, m in p.segment.pairs} == {"standard", "fast_adversarial",
                                                                                "pgd_adversarial"}


@pytest.mark.parametrize("overlay", ["a10", "vtab", "r18"])
def test_overlays_run_what_they_name_and_nothing_else(overlay):
    """Issue 25, point 5: no overlay trains DW Table A2's reference model (none of them has adversarial transfer
    of its own), and a10 and vtab run no study (its dense adversarial baselines and ticket runs); r18 keeps the
    study it names (CIFAR-10). What each one runs: every run of every level belongs to an experiment's grid or
    to the study it names. Only a10 segments (DW Fig. A10's VOC panel); r18 and vtab name no segmentation figure:
    no segment run, and the planner prices none."""
    from repro.plan import runs_for_level, seg_runs, study_baselines
    from repro.plan.cost import stage_costs
    from repro.tiers import combine

    p = params_from(combine(["paper", overlay]))
    costs = stage_costs(p)
    assert not p.evaluation.transfer_attack and costs["reference"].flops == 0
    segments = overlay == "a10"
    assert (p.segment.pairs == ()) == (not segments) and bool(seg_runs(p)) == segments
    assert (costs["segment"].runs, costs["segment"].flops > 0) == ((len(seg_runs(p)), True) if segments else (0, False))
    named_study = overlay == "r18"
    assert bool(p.study_tasks) == named_study and bool(study_baselines(p)) == named_study
    regimes = {r.regime for lv in (0.0, *p.sweep.sparsities) for r in runs_for_level(p, lv)}
    allowed = {r for e in p.experiments.values() if e.pairs for r in e.regimes}
    assert regimes - allowed <= ({"standard", "adversarial"} if named_study else set()), regimes
    assert costs["study"].flops > 0 if named_study else costs["study"].flops == 0


def test_a_tier_without_study_or_transfer_attack_says_so_and_trains_nothing(tmp_path, monkeypatch):
    """study.tasks: [] and evaluation.transfer_attack: false: the study stage records that it is off (no ticket
    drawn, nothing fine-tuned) and the reference stage writes runs/reference/off.json instead of a model."""
    import json

    from repro.pipeline.reference import train_reference
    from repro.stages import study

    monkeypatch.chdir(tmp_path)
    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    cfg["study"] = {"tasks": []}
    cfg["evaluation"]["transfer_attack"] = False
    p = params_from(cfg)
    assert p.study_tasks == () and study._study(p, 0.5, tmp_path / "s") == {
        "sparsity": 0.5, "method": "imp", "study": "off: study.tasks is empty"}
    assert not (tmp_path / "s").exists()
    assert train_reference(p) is None
    assert json.loads((tmp_path / "runs" / "reference" / "off.json").read_text())["transfer_attack"] is False
    cfg["evaluation"]["transfer_attack_task"] = "synth_near"
    with pytest.raises(ConfigError, match="transfer_attack_task: 'synth_near' names the transfer-attack task, but"):
        params_from(cfg)
