"""Shared test helpers: a small pattern task and a plainly trained tiny model (attacks, metrics)."""
from __future__ import annotations

import contextlib
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from repro.models import build_model


def make_synthetic(n: int, seed: int, size: int = 16, k: int = 4, signal: float = 0.1, noise: float = 0.3):
    """Class c: a colour offset plus a sinusoid of frequency c+1 (alternating axis), plus noise; clamped to [0,1]."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.arange(n) % k)[torch.randperm(n, generator=g)]
    colours = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 0]])[:k]
    ii = torch.arange(size, dtype=torch.float32)
    rr, cc = torch.meshgrid(ii, ii, indexing="ij")
    pats = torch.stack([torch.sin(2 * math.pi * (f + 1) * (rr if f % 2 == 0 else cc) / size) for f in range(k)])
    x = 0.5 + signal * (colours[y] - 0.5)[:, :, None, None] + signal * pats[y][:, None]
    x = x + noise * torch.randn(n, 3, size, size, generator=g)
    return x.clamp(0, 1), y


def train_tiny(seed: int = 0, n_train: int = 1024, epochs: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    x, y = make_synthetic(n_train, seed=1000 + seed)
    model = build_model("cifar_resnet", 4, depths=(1, 1), width=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n_train, generator=g)
        for i in range(0, n_train, 64):
            idx = perm[i:i + 64]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    opt.zero_grad(set_to_none=True)
    return model.eval()


def write_own_eps_choice(p, ws) -> None:
    """``ws/metrics/eps.json`` as stage select_eps writes it (``repro.plan.load_choice`` reads it back), every task
    and regime of RT keeping pgd_adversarial's own eps: for tests that run a later stage on the committed params
    without running select_eps first."""
    import json
    from pathlib import Path

    from repro.config.constants import eps_label
    from repro.plan import candidates, selection_keys

    labels = [eps_label(e) for _, e in candidates(p)]
    doc = {"kind": "pgd_adversarial", "own": labels[0], "candidates": labels, "tasks": {}}
    for t, r in selection_keys(p):
        doc["tasks"].setdefault(t, {})[r] = {"eps": labels[0], "source": "", "checkpoint": "last", "n_held_out": 1,
                                             "held_out_sa": {e: 0.5 for e in labels}, "epoch": {e: 0 for e in labels}}
    (Path(ws) / "metrics").mkdir(exist_ok=True)
    (Path(ws) / "metrics" / "eps.json").write_text(json.dumps(doc))


def train_small_robust(eps: float = 8 / 255) -> nn.Module:
    """A small adversarially trained model (PGD-3 at ``eps``, a few seconds) on 4-class synthetic images: the
    model the AutoAttack tests attack (tests/test_autoattack.py, tests/test_autoattack_members.py)."""
    from repro.attacks import pgd

    torch.manual_seed(0)
    x, y = make_synthetic(768, seed=21, signal=0.06, noise=0.2)
    m = build_model("cifar_resnet", 4, depths=(1, 1), width=8)
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            m.eval()
            xa = pgd(m, x[idx], y[idx], eps=eps, alpha=eps / 2, steps=3)
            m.train()
            loss = F.cross_entropy(m(xa), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return m.eval()


@contextlib.contextmanager
def one_thread():
    """Tiny convolutions are much slower with 2 OpenMP threads on a shared 2-core box; restore afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Imported by a test module: its tests run with one thread."""
    with one_thread():
        yield
