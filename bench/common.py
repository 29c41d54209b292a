"""What the bench sections share: the machine's description, the paired-ratio helpers, the benched
models, the tiny synthetic task, the ticket, and the images/s of our fastai path and of the official
code's way (bench/baseline.py) on the same model, ticket and data."""
from __future__ import annotations

import os
import platform
import socket
import statistics
import time
from pathlib import Path

import torch

from bench import baseline
from repro.attacks import attack_from_config
from repro.base import runtime
from repro.config import TrainParams
from repro.data import make_dataloaders
from repro.data.synthetic import make_task
from repro.models import build_model
from repro.tickets import draw_ticket
from repro.training import make_learner

ROOT = Path(__file__).resolve().parents[1]

EPS, ALPHA = 8 / 255, 2 / 255

#: the models compared: (label, arch, kwargs, batch size, timed batches per run)
MODELS = {
    "tiny": ("ResNet-8 w16 (tiny)", "cifar_resnet", dict(depths=(1, 1, 1), width=16), 64, 6),
    "r18": ("CIFAR ResNet-18 w64", "cifar_resnet18", {}, 32, 2),
}


def log(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


# ------------------------------------------------------------------------- machine
def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dev = runtime.device()
    return {
        "host": socket.gethostname(), "cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(),
        "device": str(dev), "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else None,
        "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
    }


def machine_name(m: dict) -> str:
    kind = (m["gpu"] or m["cpu"] or "cpu").lower()
    slug = "".join(c if c.isalnum() else "-" for c in kind).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    return f"{slug[:48]}-{m['cores']}c"


# ------------------------------------------------------------------------- helpers
def median_ratio(a: list[float], b: list[float]) -> float:
    """Median of the paired ratios a_i / b_i: each pair ran back to back (interleaved), so a drift
    of the machine between repeats cancels within a pair."""
    return statistics.median(x / y for x, y in zip(a, b))


def ratio_range(a: list[float], b: list[float]) -> list[float]:
    """[min, max] of the paired ratios a_i / b_i (how much the repeats disagree)."""
    r = [x / y for x, y in zip(a, b)]
    return [min(r), max(r)]


def task32(n: int, seed: int = 0):
    return make_task("bench", num_classes=10, n_train=n, n_test=64, size=32, gap=0.3, seed=seed)


def model_for(key: str, seed: int = 0) -> torch.nn.Module:
    _, arch, kw, _, _ = MODELS[key]
    torch.manual_seed(seed)
    return build_model(arch, 10, **kw)


def ticket(model: torch.nn.Module, sparsity: float = 0.8):
    return draw_ticket("omp", model, sparsity)


class _Timer:
    """Wall time of the training batches after ``warmup`` (data loading included), via a callback."""

    def __init__(self, warmup: int):
        from fastai.callback.core import Callback

        timer = self

        class TimerCB(Callback):
            order = -100  # before every other callback (the attack runs in before_batch)

            def before_batch(self):
                if self.training and self.iter == warmup:
                    timer.t0 = time.perf_counter()

            def after_batch(self):
                if self.training and self.iter >= warmup:
                    timer.n += len(self.learn.yb[0])

            def after_train(self):
                timer.t1 = time.perf_counter()

        self.cb, self.t0, self.t1, self.n = TimerCB(), None, None, 0

    @property
    def rate(self) -> float:
        return self.n / (self.t1 - self.t0)


def ours_rate(key: str, steps: int, masked: bool = True, warmup: int = 1, seed: int = 0, batches: int = 0) -> float:
    """Images/s of our fastai path: make_learner + MaskEnforcer + AdversarialTraining (bn train)."""
    _, _, _, bs, nb = MODELS[key]
    nb = batches or nb
    task = task32(bs * (warmup + nb), seed)
    dls = make_dataloaders(task, bs=bs, size=32, seed=seed, device="cpu" if not torch.cuda.is_available() else None,
                           recipe="cifar", drop_last=True)
    model = model_for(key, seed)
    attack = attack_from_config("pgd", eps=EPS, alpha=ALPHA, steps=steps) if steps else None
    timer = _Timer(warmup)
    learn = make_learner(dls, model, TrainParams(epochs=1, lr=0.01, schedule="constant", batch_size=bs),
                         mask=ticket(model) if masked else None, attack=attack, attack_bn_mode="train",
                         progress=False, extra_cbs=[timer.cb])
    learn.fit(1, lr=0.01)
    return timer.rate


def baseline_rate(key: str, steps: int, warmup: int = 1, seed: int = 0, batches: int = 0) -> float:
    """Images/s of the official code's way (bench/baseline.py) on the same model, ticket and data."""
    _, _, _, bs, nb = MODELS[key]
    nb = batches or nb
    task = task32(bs * (warmup + nb), seed)
    dev = runtime.device()
    model = model_for(key, seed)
    masks = ticket(model)
    model = model.to(dev)
    baseline.apply_prune_masks(model, {k: v.to(dev) for k, v in masks.items()})
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    dl = baseline.loader(task.x_train, task.y_train, bs, seed)
    if dev.type == "cuda":
        dl = ((x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)) for x, y in dl)
    n, t = baseline.train_epoch(model, dl, opt, EPS, ALPHA, steps, warmup=warmup)
    return n / t
