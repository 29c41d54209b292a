"""Shared tiny fixtures: a toy model and an easy toy task (16x16 RGB, 4 classes)."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from fastai.data.core import DataLoaders
from torch.utils.data import TensorDataset

from repro.models import build_model

torch.set_num_threads(2)


def toy_images(n: int, num_classes: int = 4, size: int = 16, seed: int = 0):
    """Class k = a bright square at one of four positions, in one of four colours, plus noise.

    Easy enough that a width-8 ResNet learns it in a few seconds on CPU.
    """
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, num_classes, (n,), generator=g)
    x = 0.15 * torch.rand(n, 3, size, size, generator=g) + 0.2
    half = size // 2
    colours = torch.tensor([[1, .2, .2], [.2, 1, .2], [.2, .2, 1], [1, 1, .2]])
    for k in range(num_classes):
        idx = (y == k).nonzero().flatten()
        r, c = divmod(k % 4, 2)
        x[idx, :, r * half:(r + 1) * half, c * half:(c + 1) * half] += 0.5 * colours[k % 4].view(1, 3, 1, 1)
    return x.clamp(0, 1), y


def toy_dls(n_train=512, n_valid=128, bs=32, seed=0, num_classes=4) -> DataLoaders:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    xt, yt = toy_images(n_train, num_classes, seed=seed)
    xv, yv = toy_images(n_valid, num_classes, seed=seed + 1)
    return DataLoaders.from_dsets(TensorDataset(xt, yt), TensorDataset(xv, yv), bs=bs, device="cpu")


def tiny_model(num_classes=4, seed=0, **kw):
    torch.manual_seed(seed)
    kw.setdefault("depths", (1, 1))
    kw.setdefault("width", 8)
    return build_model("cifar_resnet", num_classes, **kw)


@pytest.fixture
def dls():
    return toy_dls()


@pytest.fixture
def model():
    return tiny_model()


@pytest.fixture(scope="session")
def smoke_lab(tmp_path_factory):
    """The suite's one whole-pipeline run: the `smoke` tier through `dvc repro` (every stage, figures
    included) in a git + DVC copy of the working tree, results committed. Read-only for its users:
    a test that writes (push, exp run, ...) works on ``clone_lab(smoke_lab, dst)``."""
    import time

    from workspace import commit_all, copy_project, dvc, env, init_repo

    if os.environ.get("REPRO_SMOKE_LAB"):  # debugging: a finished lab of an earlier session, reused as is
        return Path(os.environ["REPRO_SMOKE_LAB"])
    lab = init_repo(copy_project(tmp_path_factory.mktemp("smoke") / "lab"), tier="smoke")
    t0 = time.time()
    # every stage's forward passes, recorded beside the lab (repro.base.devices; test_smoke_pipeline checks them)
    dvc(lab, "repro", timeout=3600, environ=env(REPRO_DEVICE_TRACE=str(lab.parent / "device-trace.jsonl")))
    commit_all(lab, "results")  # dvc.lock and the uncached metrics go to git
    print(f"\n[smoke_lab] dvc repro of the smoke tier: {time.time() - t0:.0f} s")
    return lab
