"""Streamed tasks: ImageNet read from its folder layout file by file (``repro/data/files.py``).

The official Double-Win code runs IMP on all 1.28 M ImageNet images with torchvision's
``ImageFolder``: each image decoded from its JPEG when a batch needs it, RandomResizedCrop + flip
applied to the original image, Resize 256 + CenterCrop 224 for evaluation. These tests build a tiny
ImageNet tree in that layout and check that the task holds file names, not pixels; that every
image reaches the loaders exactly as PIL decodes it; and that missing or damaged files are one
clear error.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from repro.data import ArrayTask, DataError, fit_square, load_public, make_dataloaders, test_loader, test_transform
from repro.data import files as files_mod
from repro.data.files import ImageFiles
from repro.data.public import keep_fraction
from repro.data.gap import domain_gap_score

WNIDS = ("n09999999", "n01440764")  # listed unsorted: the class order is the sorted wnids


def _jpeg(path: Path, rng, shape) -> np.ndarray:
    """Write a JPEG; return what PIL decodes from it as RGB (the reference of every check)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8), "RGB").save(path, "JPEG")
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def make_imagenet(root: Path, per_train: int = 3, per_val: int = 2) -> dict:
    """``imagenet/{train,val}/<wnid>/<wnid>_<i>.JPEG`` (val already sorted into class folders)."""
    rng = np.random.default_rng(4)
    imgs = {}
    for split, per in (("train", per_train), ("val", per_val)):
        for w in WNIDS:
            for i in range(per):
                shape = (24, 36) if i % 2 == 0 else (30, 20)  # landscape and portrait, as in ImageNet
                imgs[(split, w, i)] = _jpeg(root / "imagenet" / split / w / f"{w}_{i}.JPEG", rng, shape)
    return imgs


def test_imagenet_is_streamed_from_sorted_class_folders(tmp_path):
    ref = make_imagenet(tmp_path)
    t = load_public("imagenet", tmp_path, 16)
    assert t.streamed and isinstance(t.x_train, ImageFiles) and isinstance(t.x_test, ImageFiles)
    assert t.num_classes == 2 and t.image_size == (16, 16) and t.x_train.shape == (6, 16, 16, 3)
    assert t.y_train.tolist() == [0, 0, 0, 1, 1, 1] and t.y_test.tolist() == [0, 0, 1, 1]  # n01440764 < n09999999
    # an indexed image is the file as PIL decodes it, at its native size (the recipe crops it later)
    assert np.array_equal(t.x_train[0], ref[("train", "n01440764", 0)]) and t.x_train[0].shape == (24, 36, 3)
    assert np.array_equal(t.x_test[3], ref[("val", "n09999999", 1)])
    # a view is lazy; as an array it is fitted to the nominal size
    view = t.x_train[np.array([4, 1])]
    assert isinstance(view, ImageFiles) and len(view) == 2
    assert np.array_equal(np.asarray(view)[0], fit_square(ref[("train", "n09999999", 1)], 16))
    # per-class caps take the first files of each class
    capped = load_public("imagenet", tmp_path, 16, max_train=2, max_test=1)
    assert capped.y_train.tolist() == [0, 0, 1, 1] and capped.y_test.tolist() == [0, 1]
    assert list(capped.x_train.paths) == [os.path.join("imagenet", "train", w, f"{w}_{i}.JPEG")
                                          for w in sorted(WNIDS) for i in range(2)]
    with pytest.raises(DataError) as e:
        load_public("imagenet", tmp_path / "nowhere", 16)
    assert str(tmp_path / "nowhere" / "imagenet" / "train") in str(e.value)


def test_channel_statistics_of_a_streamed_task_come_from_its_images(tmp_path):
    """Downstream normalization uses the dataset's own statistics (official code); a streamed task
    computes them from (a sample of up to STATS_SAMPLE of) its images at the nominal size."""
    make_imagenet(tmp_path)
    t = load_public("imagenet", tmp_path, 16)
    dense = ArrayTask("dense", np.asarray(t.x_train), t.y_train, np.asarray(t.x_test), t.y_test, 2)
    assert np.allclose(t.mean, dense.mean) and np.allclose(t.std, dense.std)


def test_a_streamed_task_file_holds_file_names_not_pixels(tmp_path, monkeypatch):
    make_imagenet(tmp_path, per_train=40)
    t = load_public("imagenet", tmp_path, 224)
    path = t.save(tmp_path / "imagenet.npz")
    assert path.stat().st_size < 20_000  # 84 names and labels; the pixels at 224 px would be 12.6 MB

    def no_stats(*a, **k):
        raise AssertionError("loading a streamed task must not decode images for its statistics")

    monkeypatch.setattr("repro.data.arrays.channel_stats", no_stats)
    back = ArrayTask.load(path)
    assert back.streamed and back.stats == t.stats and back.num_classes == 2
    assert np.array_equal(back.x_train.paths, t.x_train.paths) and np.array_equal(back.y_test, t.y_test)
    assert np.array_equal(back.x_train[5], t.x_train[5])


def test_missing_or_damaged_files_are_one_clear_error(tmp_path):
    make_imagenet(tmp_path)
    t = load_public("imagenet", tmp_path, 16)
    path = t.save(tmp_path / "imagenet.npz")
    victim = tmp_path / t.x_train.paths[2]
    victim.write_bytes(victim.read_bytes()[:40])  # truncated JPEG
    with pytest.raises(DataError, match="truncated or corrupted") as e:
        t.x_train[2]
    assert str(victim) in str(e.value)
    victim.unlink()
    with pytest.raises(DataError, match="does not exist"):
        ArrayTask.load(path).x_train[2]
    # the dataset moved away: the task file names the folder it needs, and how to fix it
    (tmp_path / "imagenet").rename(tmp_path / "elsewhere")
    os.rename(tmp_path, tmp_path.with_name(tmp_path.name + "_moved"))
    with pytest.raises(DataError, match="data.root") as e:
        ArrayTask.load(tmp_path.with_name(tmp_path.name + "_moved") / "imagenet.npz")
    assert str(tmp_path) in str(e.value)


def test_streamed_images_reach_the_loaders_through_the_imagenet224_recipe(tmp_path):
    """Training: fastai loaders decode each file (also in worker processes); evaluation: Resize
    (shorter side 256/224 of the size) + CenterCrop of the original image, exactly."""
    ref = make_imagenet(tmp_path)
    t = load_public("imagenet", tmp_path, 16)
    xb, yb = next(iter(test_loader(t, bs=4, size=16, recipe="imagenet224", device="cpu")))
    want = test_transform(16, "imagenet224")(image=ref[("val", "n01440764", 0)])["image"]
    assert xb.shape == (4, 3, 16, 16) and yb.tolist() == [0, 0, 1, 1]
    assert torch.equal(xb[0], torch.from_numpy(want.transpose(2, 0, 1).astype(np.float32) / 255))
    for workers in (0, 2):
        dls = make_dataloaders(t, bs=3, size=16, recipe="imagenet224", device="cpu", num_workers=workers)
        batches = list(dls.train)
        assert sum(len(b[1]) for b in batches) == 6 and all(b[0].shape[1:] == (3, 16, 16) for b in batches)
        assert sorted(torch.cat([b[1] for b in batches]).tolist()) == [0, 0, 0, 1, 1, 1]


def test_fractions_of_a_streamed_task_stay_streamed(tmp_path):
    make_imagenet(tmp_path, per_train=4)
    t = keep_fraction(load_public("imagenet", tmp_path, 16), 0.5)
    assert t.streamed and t.y_train.tolist() == [0, 0, 1, 1]
    assert list(t.x_train.paths)[:2] == [os.path.join("imagenet", "train", "n01440764", f"n01440764_{i}.JPEG")
                                         for i in range(2)]


def test_domain_gap_decodes_only_the_drawn_source_images(tmp_path, monkeypatch):
    """The Robust Tickets domain gap draws n_source source images; on a streamed source only those
    are read, and the score equals the one of the same images held in memory."""
    make_imagenet(tmp_path, per_train=10, per_val=5)
    src = load_public("imagenet", tmp_path, 16)
    dense = ArrayTask("imagenet", np.asarray(src.x_train), src.y_train, np.asarray(src.x_test), src.y_test, 2)
    g = np.random.default_rng(0)
    target = ArrayTask("t", g.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8), np.arange(12) % 2,
                       g.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8), np.arange(4) % 2, 2)
    reads = []
    real = files_mod.read_image
    monkeypatch.setattr(files_mod, "read_image", lambda p, d: reads.append(p) or real(p, d))
    gap = domain_gap_score(src, target, n_source=7)
    assert len(reads) == 7
    assert gap == pytest.approx(domain_gap_score(dense, target, n_source=7), rel=1e-12)


def test_paper_tier_data_stage_writes_imagenet_as_a_file_list(tmp_path, monkeypatch):
    """The `paper` tier's data settings, offline on tiny files: the data stage streams ImageNet
    (no cap), and the pretrained-source helpers read the task back from runs/data."""
    import yaml

    from published_formats import write_cifar10
    from repro.stages import data as data_stage
    from repro.pipeline.inputs import load_task
    from repro.stages.common import run_stage

    root = tmp_path / "datasets"
    make_imagenet(root)
    g = np.random.default_rng(1)
    write_cifar10(root, g.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), np.arange(20) % 10,
                  g.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8), np.arange(10))
    tier = yaml.safe_load((Path(__file__).resolve().parents[1] / "tiers" / "paper.yaml").read_text())["data"]
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump({"data": {
        **tier, "root": str(root), "downstream": ["cifar10"], "ood": "synth_ood"},  # never a task against itself
        "pretrain": {"early_stopping": {"kinds": []}}}))   # 6 ImageNet images cannot hold out early stopping's 300
    monkeypatch.chdir(work)
    monkeypatch.setenv("REPRO_THREADS", "1")
    threads = torch.get_num_threads()
    try:
        assert run_stage("data", data_stage.body) == 0
    finally:
        torch.set_num_threads(threads)
    src = load_task("imagenet")
    assert src.streamed and src.image_size == (224, 224) and len(src.y_train) == 6 and len(src.y_test) == 4
    assert (work / "runs" / "data" / "imagenet.npz").stat().st_size < 10_000
    assert not load_task("cifar10").streamed
