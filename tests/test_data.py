"""Tests of the data layer: array tasks, augmentation, subsets, loaders, synthetic tasks."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from repro.data import (
    DATASETS,
    ArrayDataset,
    ArrayTask,
    DataError,
    channel_stats,
    domain_gap_score,
    frechet_distance,
    load_dataset,
    make_dataloaders,
    make_task,
    model_feature_fn,
    subset_indices,
    train_transform,
    validation_split,
)
from repro.data import test_loader as plain_test_loader
from repro.data import test_transform as eval_transform
from repro.models import build_model


def small_task(n_train=240, n_test=60, num_classes=6, size=16, gap=0.0, seed=0, name="t") -> ArrayTask:
    return make_task(name, num_classes, n_train, n_test, size, gap, seed)


@pytest.fixture(scope="module")
def task() -> ArrayTask:
    return small_task()


# ----------------------------------------------------------------------- transforms


@pytest.mark.parametrize("recipe,size", [("cifar", 16), ("cifar", 32), ("imagenet224", 224)])
def test_transform_keeps_shape_dtype_range(task, recipe, size):
    """Train and test pipelines give uint8 [size,size,3]; the dataset gives float32 CHW in [0,1] + int64."""
    for tf in (train_transform(size, 0, recipe), eval_transform(size, recipe)):
        out = tf(image=task.x_train[0])["image"]
        assert out.shape == (size, size, 3) and out.dtype == np.uint8
        x, y = ArrayDataset(task.x_train, task.y_train, tf)[3]
        assert x.shape == (3, size, size) and x.dtype == torch.float32
        assert 0.0 <= x.min().item() and x.max().item() <= 1.0
        assert y.dtype == torch.int64 and y.item() == task.y_train[3]


def _match_shift_flip(img: np.ndarray, out: np.ndarray, pad: int = 4):
    """Return (dy, dx, flipped) such that out is img shifted by (dy, dx) with zero fill (and flipped), else None."""
    h, w, _ = img.shape
    padded = np.zeros((h + 2 * pad, w + 2 * pad, 3), img.dtype)
    padded[pad:pad + h, pad:pad + w] = img
    for flipped in (False, True):
        cand = out[:, ::-1] if flipped else out
        for oy in range(2 * pad + 1):
            for ox in range(2 * pad + 1):
                if np.array_equal(padded[oy:oy + h, ox:ox + w], cand):
                    return oy - pad, ox - pad, flipped
    return None


def test_pad_crop_flip_translates_and_flips():
    """The CIFAR recipe = zero-pad 4 + random crop back + horizontal flip, checked on a known image."""
    rng = np.random.default_rng(0)
    img = rng.integers(1, 256, (16, 16, 3), dtype=np.uint8)  # no zeros: the zero border is identifiable
    tf = train_transform(16, seed=3)
    seen = [_match_shift_flip(img, tf(image=img)["image"]) for _ in range(120)]
    assert all(s is not None for s in seen), "an output is not a zero-filled translate/flip of the input"
    assert {s[2] for s in seen} == {False, True}
    shifts = {(s[0], s[1]) for s in seen}
    assert len(shifts) > 10 and any(s != (0, 0) for s in shifts)
    assert all(abs(dy) <= 4 and abs(dx) <= 4 for dy, dx in shifts)
    # the test transform of the CIFAR recipe is the identity at native size
    assert np.array_equal(eval_transform(16)(image=img)["image"], img)


def test_imagenet224_test_is_resize256_centercrop224():
    """The 224-px recipe's test pipeline is Resize(256) + CenterCrop(224), as the official code."""
    import cv2

    img = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    out = eval_transform(224, "imagenet224")(image=img)["image"]
    ref = cv2.resize(img, (256, 256), interpolation=cv2.INTER_LINEAR)[16:240, 16:240]
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


def test_transform_seed_controls_stream():
    """Same Compose seed -> identical augmentation sequence; another seed -> a different one."""
    img = np.random.default_rng(2).integers(1, 256, (16, 16, 3), dtype=np.uint8)

    def run(seed):
        tf = train_transform(16, seed)
        return np.stack([tf(image=img)["image"] for _ in range(20)])

    assert np.array_equal(run(5), run(5))
    assert not np.array_equal(run(5), run(6))


# -------------------------------------------------------------------------- subsets


def test_stratified_fraction_keeps_proportions():
    """Stratified subsets keep class proportions (round per class) and at least 1 sample per class."""
    y = np.repeat(np.arange(5), [500, 300, 100, 40, 3])
    np.random.default_rng(0).shuffle(y)
    for f in (0.1, 0.01):
        idx = subset_indices(y, f, "stratified", seed=0)
        assert np.all(np.diff(idx) > 0) and idx.min() >= 0 and idx.max() < len(y)
        counts = np.bincount(y[idx], minlength=5)
        expect = [max(1, round(f * n)) for n in (500, 300, 100, 40, 3)]
        assert counts.tolist() == expect
    assert not np.array_equal(subset_indices(y, 0.1, seed=0), subset_indices(y, 0.1, seed=1))
    assert np.array_equal(subset_indices(y, 0.1, seed=4), subset_indices(y, 0.1, seed=4))
    assert np.array_equal(subset_indices(y, 1.0), np.arange(len(y)))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 7), min_size=1, max_size=300),
       st.floats(0.001, 1.0), st.integers(0, 2**31 - 1))
def test_stratified_invariants_property(labels, fraction, seed):
    """For any labels/fraction: unique sorted in-range indices, every present class kept, per-class count rounded."""
    y = np.asarray(labels)
    idx = subset_indices(y, fraction, "stratified", seed)
    assert len(np.unique(idx)) == len(idx) and np.all(np.diff(idx) > 0)
    assert set(np.unique(y[idx])) == set(np.unique(y))
    for c in np.unique(y):
        n_c = int((y == c).sum())
        assert (y[idx] == c).sum() == min(n_c, max(1, round(fraction * n_c)))


def test_first_n_takes_exactly_the_first():
    """how='first' (official data-limited runs) takes exactly the first round(fraction*N) samples."""
    y = np.random.default_rng(0).integers(0, 10, 5000)
    assert np.array_equal(subset_indices(y, 0.1, "first"), np.arange(500))
    assert np.array_equal(subset_indices(y, 0.01, "first"), np.arange(50))
    assert np.array_equal(subset_indices(y[:10], 0.01, "first"), np.arange(1))


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, float("nan"), float("inf"), "a", None, True])
def test_invalid_fraction_rejected(bad):
    """A fraction outside (0, 1] (or not a number) is rejected with a one-line error naming it."""
    with pytest.raises(ValueError) as e:
        subset_indices(np.zeros(10, int), bad)
    msg = str(e.value)
    assert "fraction" in msg and "\n" not in msg


def test_invalid_subset_method_rejected():
    """An unknown subset method is rejected, listing the allowed ones."""
    with pytest.raises(ValueError, match="stratified, first"):
        subset_indices(np.zeros(10, int), 0.5, how="random")


def test_validation_split_is_last_images(task):
    """Validation = the last n_val training images (official); the train loader never sees them."""
    tr, va = validation_split(100, 20)
    assert np.array_equal(tr, np.arange(80)) and np.array_equal(va, np.arange(80, 100))
    with pytest.raises(ValueError, match="n_val"):
        validation_split(100, 100)
    dls = make_dataloaders(task, 32, fraction=0.5, how="first", val_from_train=40, device="cpu")
    n = len(task.y_train)
    assert np.array_equal(dls.valid_ds.indices, np.arange(n - 40, n))
    assert np.array_equal(dls.train_ds.indices, np.arange(round(0.5 * (n - 40))))
    assert dls.train.n + dls.valid.n == round(0.5 * (n - 40)) + 40


# --------------------------------------------------------------------------- loaders


def test_fastai_batches_float_unit_range(task):
    """DataLoaders batches: float32 in [0,1] of shape [bs,3,H,W], int64 labels, on the requested device."""
    for size in (16, 32):
        dls = make_dataloaders(task, bs=32, size=size, device="cpu")
        for dl in (dls.train, dls.valid):
            xb, yb = next(iter(dl))
            assert xb.shape == (32, 3, size, size) and xb.dtype == torch.float32
            assert xb.min().item() >= 0 and xb.max().item() <= 1 and xb.device.type == "cpu"
            assert yb.shape == (32,) and yb.dtype == torch.int64
            assert 0 <= yb.min().item() and yb.max().item() < task.num_classes
    assert dls.c == task.num_classes and dls.device == torch.device("cpu")
    assert dls.valid.n == len(task.y_test)


def test_test_loader_is_plain(task):
    """test_loader: the test split in order, no augmentation (= uint8 images / 255)."""
    dl = plain_test_loader(task, bs=25, size=16, device="cpu")
    xs, ys = zip(*list(dl))
    x, y = torch.cat(xs), torch.cat(ys)
    ref = torch.from_numpy(task.x_test).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(x, ref) and torch.equal(y, torch.from_numpy(task.y_test))


def test_loaders_deterministic_by_seed(task):
    """Same seed -> same first train batch (order and augmentation); another seed -> different; global RNG untouched."""
    def first(seed):
        dls = make_dataloaders(task, bs=16, seed=seed, device="cpu")
        return next(iter(dls.train))

    random.seed(123)
    before = random.getstate()
    a, b, c = first(0), first(0), first(1)
    assert random.getstate() == before
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1]) and not torch.equal(a[0], c[0])
    # two epochs of one loader shuffle differently
    dls = make_dataloaders(task, bs=16, seed=0, device="cpu")
    e1 = torch.cat([yb for _, yb in dls.train])
    e2 = torch.cat([yb for _, yb in dls.train])
    assert not torch.equal(e1, e2) and sorted(e1.tolist()) == sorted(e2.tolist())


# ----------------------------------------------------------------------------- npz


def test_npz_round_trip(task, tmp_path):
    """save/load reproduces every array, name, num_classes and stats; no temporary file is left."""
    p = task.save(tmp_path / "sub" / "task.npz")
    back = ArrayTask.load(p)
    for k in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(back, k), getattr(task, k)) and getattr(back, k).dtype == getattr(task, k).dtype
    assert (back.name, back.num_classes, back.mean, back.std) == (task.name, task.num_classes, task.mean, task.std)
    assert sorted(x.name for x in p.parent.iterdir()) == ["task.npz"]


def _expect_one_line(path, match):
    with pytest.raises(DataError) as e:
        ArrayTask.load(path)
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg and match in msg, msg


def test_corrupted_or_truncated_npz_clear_error(task, tmp_path):
    """Missing, truncated, byte-flipped or garbage files raise one-line DataErrors naming the file."""
    good = task.save(tmp_path / "good.npz")
    raw = good.read_bytes()
    _expect_one_line(tmp_path / "absent.npz", "does not exist")
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    _expect_one_line(tmp_path / "trunc.npz", "truncated or corrupted")
    flipped = bytearray(raw)
    mid = len(raw) // 3
    flipped[mid:mid + 64] = bytes(255 - b for b in flipped[mid:mid + 64])
    (tmp_path / "flip.npz").write_bytes(bytes(flipped))
    _expect_one_line(tmp_path / "flip.npz", "truncated or corrupted")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all" * 10)
    _expect_one_line(tmp_path / "junk.npz", "truncated or corrupted")


def test_inconsistent_npz_clear_error(task, tmp_path):
    """Wrong keys, dtypes, shapes or label ranges in a well-formed npz raise one-line DataErrors."""
    base = dict(x_train=task.x_train, y_train=task.y_train, x_test=task.x_test, y_test=task.y_test,
                num_classes=np.int64(task.num_classes), name=np.str_("t"))
    cases = {
        "nokey": ({k: v for k, v in base.items() if k != "y_test"}, "lacks"),
        "dtype": ({**base, "x_train": task.x_train.astype(np.float32)}, "uint8"),
        "shape": ({**base, "y_train": task.y_train[:-1]}, "shape"),
        "range": ({**base, "y_test": task.y_test + task.num_classes}, "labels must lie"),
        "chans": ({**base, "x_test": task.x_test[..., :2]}, "[N,H,W,3]"),
    }
    for name, (arrs, match) in cases.items():
        p = tmp_path / f"{name}.npz"
        with open(p, "wb") as f:
            np.savez(f, **arrs)
        _expect_one_line(p, match)
    with pytest.raises(DataError, match="labels must lie"):
        ArrayTask("bad", task.x_train, task.y_train + 100, task.x_test, task.y_test, task.num_classes)


def test_channel_stats_are_training_stats(task):
    """mean/std are the per-channel statistics of the training images in [0, 1]."""
    f = task.x_train.astype(np.float64) / 255
    np.testing.assert_allclose(task.mean, f.mean((0, 1, 2)), atol=1e-9)
    np.testing.assert_allclose(task.std, f.std((0, 1, 2)), atol=1e-7)
    m7, s7 = channel_stats(task.x_train, chunk=7)
    np.testing.assert_allclose(m7, task.mean, rtol=1e-12)
    np.testing.assert_allclose(s7, task.std, rtol=1e-9)


# ------------------------------------------------------------------------ synthetic


def test_synthetic_generation_deterministic_bytes():
    """Same (name, seed, params) -> identical bytes; another seed or name -> different images."""
    a = small_task(seed=3, gap=0.4)
    b = small_task(seed=3, gap=0.4)
    for k in ("x_train", "y_train", "x_test", "y_test"):
        assert getattr(a, k).tobytes() == getattr(b, k).tobytes()
    assert a.x_train.tobytes() != small_task(seed=4, gap=0.4).x_train.tobytes()
    assert a.x_train.tobytes() != small_task(seed=3, gap=0.4, name="u").x_train.tobytes()
    for name in DATASETS.names():
        kw = dict(n_train=120, n_test=40, seed=1) if name != "synth_source" else dict(
            num_classes=20, n_train=200, n_test=40, seed=1)
        assert load_dataset(name, **kw).x_train.tobytes() == load_dataset(name, **kw).x_train.tobytes()


def test_synthetic_labels_in_range_and_balanced():
    """Every registered task: uint8 images, labels in [0, C), all classes present and balanced."""
    for name in DATASETS.names():
        t = load_dataset(name, n_train=200, n_test=40, size=16, **({"num_classes": 20} if name == "synth_source" else {}))
        assert t.x_train.dtype == np.uint8 and t.x_train.shape[1:] == (16, 16, 3)
        for y in (t.y_train, t.y_test):
            assert y.dtype == np.int64 and y.min() >= 0 and y.max() < t.num_classes
        counts = np.bincount(t.y_train, minlength=t.num_classes)
        assert counts.min() >= 1 and counts.max() - counts.min() <= 1
    assert make_task("s32", 4, 40, 8, size=32, gap=0.5, seed=0).x_train.shape == (40, 32, 32, 3)
    with pytest.raises(ValueError, match="gap"):
        make_task("x", 4, 40, 8, gap=1.5)


def test_domain_gap_monotone_in_gap():
    """The FID-style domain-gap score grows with the downstream task's gap parameter."""
    source = make_task("synth_source", 32, 3200, 0, 16, 0.0, 0)
    scores = [domain_gap_score(source, make_task("down", 10, 1000, 0, 16, g, 0)) for g in (0, .25, .5, .75, 1)]
    assert all(b > a for a, b in zip(scores, scores[1:])), scores
    ood = load_dataset("synth_ood", n_train=500, n_test=0)
    assert domain_gap_score(source, ood) > scores[-1]


def test_frechet_distance_gaussian_case():
    """Fréchet distance: ~0 for the same distribution, |mu1-mu2|^2 for a pure mean shift."""
    r = np.random.default_rng(0)
    a = r.standard_normal((20000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + np.array([3.0, 0, 4.0])) == pytest.approx(25.0, rel=1e-6)
    assert frechet_distance(a, 2 * a) == pytest.approx(3.0, rel=0.05)  # Tr(1 + 4 - 2*2) per dim


def test_domain_gap_with_model_features(task):
    """A model's penultimate features can replace the default features (feature_fn)."""
    model = build_model("cifar_resnet", task.num_classes, depths=(1,), width=4)
    fn = model_feature_fn(model, bs=64)
    assert fn(task.x_test[:10]).shape == (10, 4)
    near = domain_gap_score(task, small_task(gap=0.0, name="v"), feature_fn=fn)
    assert np.isfinite(near) and near >= 0
    assert domain_gap_score(task, task, feature_fn=fn) == pytest.approx(0.0, abs=1e-6)
