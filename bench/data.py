"""Bench section `data`: fastai + albumentations loading per image vs the training step per image."""
from __future__ import annotations

import time

from bench.common import ours_rate, task32
from repro.data import make_dataloaders


def bench_data(models: list[str], flops: dict) -> dict:
    """Loading + albumentations per image (fastai DataLoader, cifar recipe) vs training per image."""
    bs, n = 128, 1024
    task = task32(n)
    dls = make_dataloaders(task, bs=bs, size=32, seed=0, device="cpu", recipe="cifar")
    for _ in dls.train:  # warm-up
        break
    t0 = time.perf_counter()
    seen = sum(len(yb) for _, yb in dls.train)
    per_img = (time.perf_counter() - t0) / seen
    out = {"load_ms_per_img": per_img * 1e3}
    for key in models:
        std = flops.get(key, {}).get("standard_img_s") or ours_rate(key, 0, masked=False)
        out[key] = {"fraction_of_standard_step": per_img * std}
    return out
