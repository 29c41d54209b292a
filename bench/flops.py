"""Bench sections `flops` (achieved GFLOP/s of our standard and PGD-10 steps vs this machine's fp32
matmul rate) and `cost` (achieved GFLOP/s of params.yaml's own model as its stages run it: the rates
``python -m repro.plan cost`` turns FLOPs into CPU-hours with)."""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from bench.common import ROOT, _Timer, log, model_for, ours_rate
from repro.attacks import attack_from_config
from repro.base import cpus, runtime
from repro.config import TrainParams
from repro.data import make_dataloaders
from repro.data.synthetic import make_task
from repro.models import model_from_params
from repro.training import make_learner


def matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    dev = runtime.device()
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    a @ b
    best = float("inf")
    for _ in range(reps):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if dev.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def _pass_flops(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, params: bool, inputs: bool) -> int:
    """FLOPs torch counts for one forward + backward pass that computes the parameters' gradients
    (``params``) and/or the input's (``inputs``)."""
    from torch.utils.flop_counter import FlopCounterMode

    from repro.attacks import no_param_grad

    x = x.clone().requires_grad_(inputs)
    with FlopCounterMode(display=False) as fc:
        if params:
            torch.nn.functional.cross_entropy(model(x), y).backward()
        else:
            with no_param_grad(model):
                torch.nn.functional.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return fc.get_total_flops()


def step_flops(key: str, steps: int, official: bool = False) -> float:
    """FLOPs of one training step per image (attack forward/backward included), counted by torch.

    Ours: each attack iteration takes the input gradient only. ``official``: each attack iteration's
    ``loss.backward()`` also computes every parameter's gradient, as advertorch does (bench/baseline.py).
    The training pass is the same in both: parameter gradients only."""
    model = model_for(key)
    bs = 8
    x, y = torch.rand(bs, 3, 32, 32), torch.randint(0, 10, (bs,))
    train = _pass_flops(model, x, y, params=True, inputs=False)
    attack = _pass_flops(model, x, y, params=official, inputs=True)
    return (train + steps * attack) / bs


def bench_flops(models: list[str], adv: dict, repeats: int, mask: dict | None = None) -> dict:
    """Achieved GFLOP/s; the step rates come from the adv and mask sections when they ran."""
    peak = max(matmul_gflops() for _ in range(2))
    out = {"matmul_gflops": peak}
    for key in models:
        if mask and key in mask:
            std = mask[key]["dense_runs"]  # the dense standard steps timed by the mask section
        else:
            std = [ours_rate(key, 0, masked=False) for _ in range(repeats)]
        f_std, f_adv = step_flops(key, 0), step_flops(key, 10)
        adv_rate = adv[key]["ours_img_s"] if key in adv else ours_rate(key, 10)
        out[key] = {
            "standard_gflop_per_img": f_std / 1e9, "pgd10_gflop_per_img": f_adv / 1e9,
            "standard_img_s": statistics.median(std),
            "standard_gflops": f_std * statistics.median(std) / 1e9,
            "pgd10_gflops": f_adv * adv_rate / 1e9,
        }
        out[key]["standard_fraction_of_matmul"] = out[key]["standard_gflops"] / peak
        out[key]["pgd10_fraction_of_matmul"] = out[key]["pgd10_gflops"] / peak
    return out


def params_model_rate(repeats: int = 2, params: Path = ROOT / "params.yaml") -> dict:
    """Achieved GFLOP/s of params.yaml's own model the way its stages run it: one thread per worker
    process (``repro.base.cpus``), at the tier's image size, recipe and transfer batch sizes; standard
    fine-tuning and adversarial fine-tuning with the tier's attack. ``python -m repro.plan cost``
    turns the pipeline's FLOPs into CPU-hours with these rates (x the workers) when the tier's model
    is this one; the embedded default's tiny network reaches a far smaller fraction of the matmul
    rate than the benched models (per-batch overheads dominate)."""
    from repro.config import to_dict
    from repro.registries import load as load_params
    from repro.plan.cost import count_flops

    p = load_params(params)
    size, tp = p.data.image_size, p.transfer
    f = count_flops(model_from_params(p.model, 10), size)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {"model": to_dict(p.model), "image_size": size, "threads": 1, "workers": cpus.split().workers,
           "flops_per_img": {"train": f.train, "attack": f.attack}}
    try:
        for regime, cfg, steps in (("standard", tp.standard, 0), ("adversarial", tp.adversarial, tp.attack.steps)):
            rates = []
            for r in range(repeats):
                nb = 24 if steps else 48
                task = make_task("bench", num_classes=10, n_train=cfg.batch_size * (nb + 1), n_test=16, size=size,
                                 gap=0.3, seed=r)
                dls = make_dataloaders(task, bs=cfg.batch_size, size=size, seed=r, device="cpu",
                                       recipe=p.data.recipe, drop_last=True)
                torch.manual_seed(r)
                timer = _Timer(1)
                attack = attack_from_config("pgd", **tp.attack.kwargs()) if steps else None
                learn = make_learner(dls, model_from_params(p.model, 10), TrainParams(epochs=1, lr=0.01, schedule="constant",
                                                                         batch_size=cfg.batch_size),
                                     attack=attack, attack_bn_mode=tp.bn_mode, progress=False, extra_cbs=[timer.cb])
                learn.fit(1, lr=0.01)
                rates.append(timer.rate)
            img_s = statistics.median(rates)
            out[regime] = {"batch": cfg.batch_size, "attack_steps": steps, "img_s_per_thread": img_s,
                           "img_s_runs": rates, "gflops_per_thread": img_s * (f.train + steps * f.attack) / 1e9}
            log(f"flops: params.yaml model, {regime}: {img_s:.0f} img/s on 1 thread "
                f"({out[regime]['gflops_per_thread']:.2f} GFLOP/s)")
        # evaluation: the RA attack on the Conv-BN folded copy at the evaluation batch size
        from repro import metrics
        from repro.data import array_loader

        e = p.evaluation
        n = 2 * e.batch_size
        task = make_task("bench", num_classes=10, n_train=16, n_test=n, size=size, gap=0.3, seed=0)
        model = runtime.inference_model(model_from_params(p.model, 10).eval())
        rates = []
        for r in range(repeats):
            loader = array_loader(task.x_test, task.y_test, e.batch_size, size, recipe=p.data.recipe, device="cpu")
            t = time.perf_counter()
            metrics.robust_accuracy(model, loader, eps=e.attack.eps, alpha=e.attack.alpha, steps=e.attack.steps,
                                    progress=False, seed=r)
            rates.append(n / (time.perf_counter() - t))
        img_s = statistics.median(rates)
        out["evaluation"] = {"batch": e.batch_size, "attack_steps": e.attack.steps, "img_s_per_thread": img_s,
                             "img_s_runs": rates, "gflops_per_thread": img_s * (e.attack.steps + 1) * f.attack / 1e9}
        log(f"flops: params.yaml model, PGD-{e.attack.steps} evaluation: {img_s:.0f} img/s on 1 thread "
            f"({out['evaluation']['gflops_per_thread']:.2f} GFLOP/s)")
    finally:
        torch.set_num_threads(old)
    # what every stage pays before its work: a fresh Python importing a training stage's modules
    starts = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import repro.stages.transfer"], cwd=ROOT, check=True,
                       capture_output=True)
        starts.append(time.perf_counter() - t)
    out["stage_start_s"] = statistics.median(starts)
    log(f"cost: a stage's start-up (imports) {out['stage_start_s']:.1f} s")
    return out
