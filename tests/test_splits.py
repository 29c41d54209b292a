"""Held-out splits that keep their meaning (issue 25, point 2), on format-exact files: CUB-200-2011 lists its
images sorted by class, so the official "last n" would hold out the last classes and train on the first ones;
the data stage refuses, in one line, any training or held-out split that loses a class; ``auto`` keeps the
official rule where the file order is a fair draw of the classes; ``n`` may be a fraction or per task, so every
task of the `vtab` overlay starts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from published_formats import write_public
from repro.base.errors import DataError
from repro.data import load_public
from repro.data.splits import check_classes, held_out, last_keeps_balance, resolve_how
from repro.registries import params_from
from repro.tiers import combine

ROOT = Path(__file__).resolve().parents[1]


def _tier(*names: str):
    return params_from(combine(list(names), ROOT / "params.yaml"))


@pytest.fixture(scope="module")
def cub(tmp_path_factory):
    """CUB-200-2011 as published (images.txt sorted by class folder, one split flag per image), 200 classes,
    12 training and 2 test images each, 8 px."""
    root = tmp_path_factory.mktemp("cub")
    write_public("cub200", root, 12, 2, size=8)
    return load_public("cub200", root, 8)


def test_cub_files_are_class_sorted_and_the_last_n_keeps_few_classes(cub):
    assert cub.num_classes == 200 and len(cub.y_train) == 2400
    assert (np.diff(cub.y_train) >= 0).all()  # file order = class order, as the real images.txt
    n = len(cub.y_train) // 10
    _, val = held_out(cub.y_train, "last", n)
    assert len(np.unique(cub.y_train[val])) == 20  # the official rule holds out 20 whole classes
    assert not last_keeps_balance(cub.y_train, n) and resolve_how(cub.y_train, "auto", n) == "stratified"


def test_the_official_last_n_on_cub_is_refused_in_one_line(cub):
    """Fails on the code before issue 25: the last 240 of CUB's 2,400 training images passed the data stage's only
    check (n below the image count), and transfer trained on 180 of the 200 classes and validated on 20."""
    with pytest.raises(DataError) as e:
        check_classes("cub200", cub.y_train, cub.num_classes, "last", 240)
    msg = str(e.value)
    assert "\n" not in msg and "'cub200'" in msg and "last rule" in msg and "miss 180 of its 200 classes" in msg


def test_the_a10_overlay_holds_out_a_stratified_tenth_of_cub_with_every_class_on_both_sides(cub):
    from repro.pipeline.data import check_validation

    p = _tier("paper", "a10")
    n = p.transfer.validation.count("cub200", len(cub.y_train))
    assert n == 240  # a tenth (transfer.validation.per_task.cub200: 0.1), not the paper tier's 5,000
    assert check_validation(p, "cub200", cub) == "stratified"
    train, val = held_out(cub.y_train, p.transfer.validation.how, n)
    assert len(np.unique(cub.y_train[val])) == len(np.unique(cub.y_train[train])) == 200
    # proportional: every class keeps 10 or 11 of its 12 images for training
    assert set(np.bincount(cub.y_train[train], minlength=200)) <= {10, 11}


def test_auto_keeps_the_official_last_n_on_shuffled_files():
    """CIFAR's batches are in random class order: there `auto` is the official rule, to the image."""
    y = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 5000))
    assert resolve_how(y, "auto", 5000) == "last"
    assert held_out(y, "auto", 5000)[1].tolist() == list(range(45000, 50000))


def test_a_training_split_without_a_class_is_refused_in_one_line():
    y = np.array([0, 0, 1, 1, 3, 3])
    with pytest.raises(DataError) as e:
        check_classes("birdsnap", y, 4)
    assert "\n" not in str(e.value) and "no image of 1 of its 4 classes (class 2)" in str(e.value)
    assert check_classes("birdsnap", np.array([0, 1, 2, 3]), 4) == "none"


def test_every_vtab_task_starts_with_a_tenth_held_out():
    """The `vtab` overlay inherited the paper tier's 5,000 held-out images, more than Flowers (2,040), Pets (3,680),
    DTD (3,760) or Caltech-101 (3,030) have: the data stage refused them. A tenth of each task leaves both sides
    at least one image per class at the published sizes."""
    from repro.plan.cost import PUBLIC_SIZES

    p = _tier("paper", "vtab")
    v = p.transfer.validation
    for task in p.data.downstream:
        n_train, _, classes = PUBLIC_SIZES[task]
        k = v.count(task, n_train)
        assert classes <= k <= n_train - classes, (task, k, n_train)
    assert v.count("cifar10", 50_000) == 5_000  # the official count where the paper tier runs it


def test_a_vtab_set_from_format_exact_files_keeps_every_class(tmp_path):
    """Flowers-102 as torchvision lays it out (jpg/, imagelabels.mat, setid.mat), 102 classes x 10 training images:
    under the `vtab` overlay the data stage's check passes and both sides hold every class; under the paper tier's
    5,000 it is refused in one line (the set has 1,020)."""
    from repro.pipeline.data import check_validation

    write_public("flowers", tmp_path, 10, 1, size=8)
    t = load_public("flowers", tmp_path, 8)
    rule = check_validation(_tier("paper", "vtab"), "flowers", t)
    n = _tier("paper", "vtab").transfer.validation.count("flowers", len(t.y_train))
    train, val = held_out(t.y_train, rule, n)
    assert n == 102 and len(np.unique(t.y_train[val])) == len(np.unique(t.y_train[train])) == 102
    paper = params_from({**combine(["paper"], ROOT / "params.yaml"),
                         "data": {**combine(["paper"], ROOT / "params.yaml")["data"], "downstream": ["flowers"],
                                  "ood_per_task": {}}})
    with pytest.raises(DataError, match=r"transfer.validation.n = 5000 .*'flowers' has 1020 training"):
        check_validation(paper, "flowers", t)
