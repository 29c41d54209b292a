"""`make bench`: speed of the package measured against baselines in the same process.

Every number is a ratio to something run in the same session, on the same
model, data, batch and threads, with the two sides interleaved (A B A B ...)
so drift of the machine hits both; the median over repeats is reported.

Sections (``--only`` picks some):
  adv       PGD-10 adversarial fine-tuning with a 80 % ticket: our fastai path vs the official
            code's way (bench/baseline.py), per model; images/s and ratio
  compile   PGD-10 adversarial fine-tuning of ResNet-18 with runtime.compile: on vs the official code's way:
            steady per-batch ratio, cold/warm compile cost, break-even run length, ratio over one CIFAR-10 epoch
  flops     achieved GFLOP/s of our PGD-10 and standard training steps vs this machine's
            fp32 matmul rate measured now
  cost      achieved GFLOP/s of params.yaml's own model as its stages run it (one thread per
            worker): the rates `python -m repro.plan cost` turns FLOPs into CPU-hours with
  contention  a training step alone vs beside one busy process, per thread/OpenMP setting, each in
            a fresh process (bench/contention.py); paired ratio
  mask      mask enforcement overhead: masked / dense step time (our path)
  eval      PGD-20 robust accuracy throughput: ours (metrics.robust_accuracy, Conv-BN folded)
            vs torchattacks' PGD on the same model and batches, each followed by the same classification
  data      fastai + albumentations loading per image vs the training step per image
  pipeline  the smoke tier's `dvc repro` wall time, a no-op `dvc repro`, `dvc status` of the paper tier

Writes ``bench/results/<machine>.json`` (atomically) and prints a table.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import baseline  # noqa: E402
import contention  # noqa: E402

from repro.base import cpus, runtime  # noqa: E402
from repro.attacks import attack_from_config  # noqa: E402
from repro.data import make_dataloaders  # noqa: E402
from repro.data.synthetic import make_task  # noqa: E402
from repro.base.io import save_json  # noqa: E402
from repro.models import build_model, model_from_params  # noqa: E402
from repro.tickets import draw_ticket  # noqa: E402
from repro.training import make_learner  # noqa: E402
from repro.config import TrainParams  # noqa: E402

EPS, ALPHA = 8 / 255, 2 / 255
SECTIONS = ("adv", "compile", "eval", "aa", "mask", "flops", "data", "cost", "contention", "pipeline")

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


# ------------------------------------------------------------------------- sections
def bench_adv(repeats: int, models: list[str]) -> dict:
    out = {}
    for key in models:
        ours, base = [], []
        for r in range(repeats):
            ours.append(ours_rate(key, 10))
            base.append(baseline_rate(key, 10))
            log(f"adv {key} repeat {r + 1}/{repeats}: ours {ours[-1]:.1f} img/s, baseline {base[-1]:.1f} img/s")
        out[key] = {"model": MODELS[key][0], "batch": MODELS[key][3], "ours_img_s": statistics.median(ours),
                    "baseline_img_s": statistics.median(base), "ratio": median_ratio(ours, base),
                    "ratio_range": ratio_range(ours, base), "ours_runs": ours, "baseline_runs": base}
    return out


#: timed batches per run of the compile section (after one warm-up batch, which also compiles)
COMPILE_BATCHES = 6
#: the run length (batches of 32) the section projects its measured parts to: one epoch of CIFAR-10's
#: 50,000 training images; a 100-epoch fine-tune (the papers') is 100 times longer
COMPILE_PROJECT_BATCHES = 50_000 // 32


class _BatchTimes:
    """Wall time of every training batch (attack included); the learner's own validation pass is skipped
    (the official loop has none here)."""

    def __init__(self):
        from fastai.callback.core import Callback, CancelValidException

        rec = self

        class BatchTimesCB(Callback):
            order = -100

            def before_batch(self):
                if self.training:
                    rec.t = time.perf_counter()

            def after_batch(self):
                if self.training:
                    rec.times.append(time.perf_counter() - rec.t)

            def before_validate(self):
                raise CancelValidException()

        self.cb, self.times, self.t = BatchTimesCB(), [], None


def ours_batch_times(key: str, steps: int, compile: str, batches: int, seed: int = 0) -> list[float]:
    """Per-batch seconds of our fastai path (as ``ours_rate``) with ``runtime.compile`` = ``compile``."""
    _, _, _, bs, _ = MODELS[key]
    task = task32(bs * (batches + 1), seed)
    dls = make_dataloaders(task, bs=bs, size=32, seed=seed, device="cpu" if not torch.cuda.is_available() else None,
                           recipe="cifar", drop_last=True)
    model = model_for(key, seed)
    attack = attack_from_config("pgd", eps=EPS, alpha=ALPHA, steps=steps)
    rec = _BatchTimes()
    learn = make_learner(dls, model, TrainParams(epochs=1, lr=0.01, schedule="constant", batch_size=bs),
                         mask=ticket(model), attack=attack, attack_bn_mode="train", progress=False,
                         extra_cbs=[rec.cb], compile=compile)
    t0 = time.perf_counter()
    learn.fit(1, lr=0.01)
    total = time.perf_counter() - t0
    runtime.uncompile(learn.model)
    return [total, *rec.times]


def bench_compile(repeats: int, key: str = "r18", batches: int = COMPILE_BATCHES) -> dict:
    """PGD-10 adversarial fine-tuning of an 80 % ticket, ``runtime.compile: on`` vs the official code's way
    (and vs our own eager path), per batch in steady state, plus the compile cost of a run.

    The first compiled run starts from an empty inductor cache (a cold compile, what a first run on a
    machine pays); the later repeats find its on-disk cache (a warm compile). The compile cost of a run is
    its wall time minus its batches at the steady compiled rate. A run of L batches then takes
    ``cost + L * t_compiled`` against ``L * t_baseline``: the section reports the measured steady ratio,
    the break-even L, and the ratio over ``COMPILE_PROJECT_BATCHES`` batches (one CIFAR-10 epoch) computed
    from the cold compile cost, i.e. arithmetic on the measured parts, not a timed run of that length."""
    cache = tempfile.mkdtemp(prefix="repro-bench-inductor-")
    old_cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # read when inductor first compiles: cold in repeat 1
    _, _, _, bs, _ = MODELS[key]
    comp_step, eager_step, base_step, cost = [], [], [], []
    try:
        for r in range(repeats):
            total, *times = ours_batch_times(key, 10, "on", batches)
            steady = statistics.median(times[1:])
            comp_step.append(steady)
            cost.append(total - len(times) * steady)
            eager_step.append(statistics.median(ours_batch_times(key, 10, "off", batches)[2:]))
            base_step.append(bs / baseline_rate(key, 10, batches=batches))
            log(f"compile {key} repeat {r + 1}/{repeats}: compiled {comp_step[-1]:.2f} s/batch "
                f"(compile {cost[-1]:.0f} s, {'cold' if r == 0 else 'warm'}), eager {eager_step[-1]:.2f}, "
                f"baseline {base_step[-1]:.2f}")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if old_cache is None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = old_cache
    t_c, t_b, t_e = (statistics.median(v) for v in (comp_step, base_step, eager_step))
    # the work both sides do, counted by torch: the ratio of FLOPs is what skipping the attack's parameter
    # gradients buys at an equal FLOP rate; anything above it needs a faster FLOP rate than the baseline's
    f_ours, f_base = step_flops(key, 10), step_flops(key, 10, official=True)
    cold = cost[0]
    length = COMPILE_PROJECT_BATCHES
    return {
        "model": MODELS[key][0], "batch": bs, "timed_batches": batches, "threads": torch.get_num_threads(),
        "compiled_s_per_batch": t_c, "eager_s_per_batch": t_e, "baseline_s_per_batch": t_b,
        "compiled_img_s": bs / t_c, "eager_img_s": bs / t_e, "baseline_img_s": bs / t_b,
        # steady state: paired per repeat (each compiled run next to its baseline and eager runs)
        "ratio_steady": median_ratio(base_step, comp_step), "ratio_steady_range": ratio_range(base_step, comp_step),
        "ratio_compiled_vs_eager": median_ratio(eager_step, comp_step),
        "gflop_per_img": f_ours / 1e9, "baseline_gflop_per_img": f_base / 1e9, "work_ratio": f_base / f_ours,
        "ratio_eager_vs_baseline": median_ratio(base_step, eager_step),
        "compile_cold_s": cold, "compile_warm_s": statistics.median(cost[1:]) if len(cost) > 1 else None,
        "break_even_batches": cold / (t_b - t_c) if t_b > t_c else None,
        "project_batches": length, "ratio_over_project": length * t_b / (cold + length * t_c),
        "ratio_over_timed_run": (batches + 1) * t_b / (cold + (batches + 1) * t_c),
        "compiled_runs": comp_step, "eager_runs": eager_step, "baseline_runs": base_step, "compile_cost_runs": cost,
    }


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


#: (timed batches, minimum repeats) of the mask section per model
MASK_WINDOW = {"tiny": (48, 4), "r18": (8, 3)}


def bench_mask(models: list[str], repeats: int) -> dict:
    out = {}
    for key in models:
        masked, dense = [], []
        # standard steps are cheap: a longer window than the adversarial runs (a few seconds), and for
        # the tiny ResNet, whose whole run lasts ~4 s, more repeats against the machine's noise
        nb, reps = MASK_WINDOW[key]
        for _ in range(max(repeats, reps)):
            dense.append(ours_rate(key, 0, masked=False, batches=nb))
            masked.append(ours_rate(key, 0, masked=True, batches=nb))
        # time per step is 1 / rate: masked time / dense time = dense rate / masked rate
        out[key] = {"masked_img_s": statistics.median(masked), "dense_img_s": statistics.median(dense),
                    "dense_runs": dense, "masked_runs": masked,
                    "overhead": median_ratio(dense, masked) - 1.0,
                    "overhead_range": [r - 1.0 for r in ratio_range(dense, masked)]}
        log(f"mask {key}: dense {out[key]['dense_img_s']:.1f} img/s, masked {out[key]['masked_img_s']:.1f} img/s")
    return out


#: (batches, batch size) per robust-accuracy call in the eval section: a call lasts a few seconds here
EVAL_BATCHES = {"tiny": (3, 64), "r18": (1, 16)}


def bench_eval(models: list[str], repeats: int) -> dict:
    """Robust accuracy (PGD-20) of ``batches`` batches, end to end on both sides: ours is
    ``metrics.robust_accuracy`` (which folds Conv-BN into a copy of the model once per call, then
    attacks and classifies); torchattacks' PGD attacks the model itself, then the same classification."""
    import torchattacks

    from repro.metrics import robust_accuracy

    out = {}
    dev = runtime.device()
    for key in models:
        batches, bs = EVAL_BATCHES[key]
        model = runtime.prepare_model(model_for(key), dev).eval()
        g = torch.Generator().manual_seed(0)
        loader = [(torch.rand(bs, 3, 32, 32, generator=g).to(dev), torch.randint(0, 10, (bs,), generator=g).to(dev))
                  for _ in range(batches)]
        ta = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=20, random_start=True)

        def ours_once():
            robust_accuracy(model, loader, eps=EPS, alpha=ALPHA, steps=20, progress=False)

        def ta_once():
            correct = 0
            for x, y in loader:
                adv = ta(x, y)
                with torch.no_grad():
                    correct += int((model(adv).argmax(1) == y).sum())

        ours_once(), ta_once()  # warm-up
        o, t = [], []
        for _ in range(repeats):
            for fn, acc in ((ours_once, o), (ta_once, t)):
                t0 = time.perf_counter()
                fn()
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                acc.append(bs * batches / (time.perf_counter() - t0))
        out[key] = {"ours_img_s": statistics.median(o), "torchattacks_img_s": statistics.median(t),
                    "ratio": median_ratio(o, t), "ratio_range": ratio_range(o, t), "batches": batches,
                    "batch_size": bs, "ours_runs": o, "torchattacks_runs": t}
        log(f"eval {key}: ours {out[key]['ours_img_s']:.1f} img/s, torchattacks {out[key]['torchattacks_img_s']:.1f}")
    return out


def _robust_tiny(seed: int = 0):
    """A small adversarially trained model (PGD-3 at 8/255, 4 epochs, ~20 s) on the default synthetic task
    (10 classes, 16 px), and 100 of its test images: RA well above 0, so the attacks have work to do."""
    import torch.nn.functional as F

    from repro.attacks import pgd
    from repro.data.synthetic import make_task
    from repro.models import build_model

    torch.manual_seed(seed)
    t = make_task("synth_near", 10, 600, 300, size=16, gap=0.15, seed=seed)
    x = torch.tensor(t.x_train).permute(0, 3, 1, 2).float() / 255
    y = torch.tensor(t.y_train).long()
    model = build_model("cifar_resnet", 10, depths=(1, 1, 1), width=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for _ in range(4):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 32):
            idx = perm[i:i + 32]
            model.eval()
            xa = pgd(model, x[idx], y[idx], eps=EPS, alpha=EPS / 2, steps=3)
            model.train()
            loss = F.cross_entropy(model(xa), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    xt = torch.tensor(t.x_test[:100]).permute(0, 3, 1, 2).float() / 255
    return model.eval(), xt, torch.tensor(t.y_test[:100]).long()


def bench_aa(repeats: int) -> dict:
    """``ra_aa`` (``metrics.robust_accuracy_aa``: APGD-CE then APGD-T over 9 classes, 100 iterations each,
    standard AutoAttack) vs torchattacks 3.5.1's same members (``MultiAttack([APGD(ce), APGDT])``, 100
    iterations, 9 targets) on the same robust model and 100 images, both end to end (attack + classify)."""
    import torchattacks

    from repro.metrics import robust_accuracy_aa

    model, x, y = _robust_tiny()
    ta = torchattacks.MultiAttack([
        torchattacks.APGD(model, norm="Linf", eps=EPS, steps=100, n_restarts=1, loss="ce", seed=0),
        torchattacks.APGDT(model, norm="Linf", eps=EPS, steps=100, n_restarts=1, n_classes=10, seed=0)])
    accs: dict = {}

    def ours_once():
        accs["ours"] = robust_accuracy_aa(model, [(x, y)], steps=100, n_target_classes=9, progress=False, seed=0)

    def ta_once():
        with torch.no_grad():
            accs["torchattacks"] = (model(ta(x, y)).argmax(1) == y).float().mean().item()

    o, t = [], []
    for _ in range(repeats):
        for fn, acc in ((ours_once, o), (ta_once, t)):
            t0 = time.perf_counter()
            fn()
            acc.append(len(y) / (time.perf_counter() - t0))
    with torch.no_grad():
        sa = (model(x).argmax(1) == y).float().mean().item()
    out = {"model": "ResNet-8 w8, 10 classes, 16 px, PGD-3 adversarially trained", "images": len(y), "sa": sa,
           "ra_aa": accs["ours"], "ra_torchattacks": accs["torchattacks"],
           "ours_img_s": statistics.median(o), "torchattacks_img_s": statistics.median(t),
           "ratio": median_ratio(o, t), "ratio_range": ratio_range(o, t), "ours_runs": o, "torchattacks_runs": t,
           "note": "shared 2-core machine (other jobs running): the timings are noisy"}
    log(f"aa: ours {out['ours_img_s']:.2f} img/s (RA {accs['ours']:.2f}), torchattacks {out['torchattacks_img_s']:.2f} "
        f"img/s (RA {accs['torchattacks']:.2f})")
    return out


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


def _run(cmd: list[str], cwd: Path, env: dict) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - t0


def bench_pipeline(tier: str, workspace: Path | None = None) -> dict:
    """Wall times of the pipeline in a scratch copy of the repository (tracked files only).

    With ``workspace`` (a checkout where ``dvc repro`` has finished, e.g. after ``make repro``) the
    no-op ``dvc repro`` and ``dvc status`` are timed there and no tier is reproduced.
    """
    venv_bin = Path(sys.executable).parent
    dvc = str(venv_bin / "dvc")
    env = dict(os.environ, PATH=f"{venv_bin}:{os.environ.get('PATH', '')}", PYTHONWARNINGS="ignore")
    out = {"tier": tier}
    with tempfile.TemporaryDirectory(prefix="repro-bench-") as tmp:
        work = Path(tmp) / "repo"
        files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        for f in files:
            if (ROOT / f).is_file():
                (work / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / f, work / f)
        for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "bench"]):
            _run(cmd, work, env)
        paper = Path(tmp) / "paper"
        shutil.copytree(work, paper)
        _run([sys.executable, "-m", "repro.tiers", "use", "paper"], paper, env)
        out["paper_dvc_status_s"] = _run([dvc, "status"], paper, env)
        out["paper_dvc_dag_s"] = _run([dvc, "dag"], paper, env)
        if workspace is not None:
            work, out["tier"] = workspace, f"workspace {workspace}"
        else:
            if tier != "default":
                _run([sys.executable, "-m", "repro.tiers", "use", tier], work, env)
            log(f"pipeline: `dvc repro` of tier {tier} (a few minutes) ...")
            out["repro_s"] = _run([dvc, "repro"], work, env)
        out["noop_repro_s"] = _run([dvc, "repro"], work, env)
        out["status_s"] = _run([dvc, "status"], work, env)
    return out


# ------------------------------------------------------------------------- report
def _span(r: list[float]) -> str:
    return f"repeats {r[0]:.2f}–{r[1]:.2f}"


def table(res: dict) -> str:
    """Markdown table of the results; a ratio is the median of the paired per-repeat ratios."""
    rows = ["| measurement | ours | baseline | ratio |", "|---|---|---|---|"]
    for key, r in res.get("adv", {}).items():
        rows.append(f"| PGD-10 adversarial fine-tuning, {r['model']}, batch {r['batch']}, 80 % ticket (img/s) | "
                    f"{r['ours_img_s']:.1f} | {r['baseline_img_s']:.1f} (official code's way) | **{r['ratio']:.2f}×** "
                    f"({_span(r['ratio_range'])}) |")
    r = res.get("compile")
    if r:
        rows.append(f"| PGD-10 adversarial fine-tuning, {r['model']}, batch {r['batch']}, 80 % ticket, "
                    f"`runtime.compile: on`, steady state (img/s) | {r['compiled_img_s']:.1f} | "
                    f"{r['baseline_img_s']:.1f} (official code's way) | **{r['ratio_steady']:.2f}×** "
                    f"({_span(r['ratio_steady_range'])}; {r['ratio_compiled_vs_eager']:.2f}× our eager path) |")
        if "work_ratio" in r:
            rows.append(f"| the work of a step, counted by torch (GFLOP per image): the bound on the ratio at an equal FLOP "
                        f"rate | {r['gflop_per_img']:.2f} | {r['baseline_gflop_per_img']:.2f} | {r['work_ratio']:.2f}× "
                        f"(our eager path: {r['ratio_eager_vs_baseline']:.2f}×) |")
        even = "never" if r["break_even_batches"] is None else f"{r['break_even_batches']:.0f} batches"
        rows.append(f"| the same over a run of {r['project_batches']} batches (one CIFAR-10 epoch), cold compile "
                    f"{r['compile_cold_s']:.0f} s included (break-even: {even}) | | | "
                    f"**{r['ratio_over_project']:.2f}×** |")
    for key, r in res.get("eval", {}).items():
        rows.append(f"| PGD-20 robust accuracy, {MODELS[key][0]}, {r['batches']} x {r['batch_size']} images (img/s) | "
                    f"{r['ours_img_s']:.1f} | "
                    f"{r['torchattacks_img_s']:.1f} (torchattacks 3.5.1) | **{r['ratio']:.2f}×** "
                    f"({_span(r['ratio_range'])}) |")
    r = res.get("aa")
    if r:
        rows.append(f"| AutoAttack RA (APGD-CE + APGD-T, 100 it., 9 targets), {r['model']}, {r['images']} images "
                    f"(img/s; RA {r['ra_aa']:.2f} vs {r['ra_torchattacks']:.2f}) | {r['ours_img_s']:.2f} | "
                    f"{r['torchattacks_img_s']:.2f} (torchattacks 3.5.1) | **{r['ratio']:.2f}×** ({_span(r['ratio_range'])}) |")
    for key, r in res.get("mask", {}).items():
        rows.append(f"| mask enforcement, {MODELS[key][0]}: masked / dense step time | "
                    f"{r['masked_img_s']:.1f} img/s | {r['dense_img_s']:.1f} img/s (dense) | "
                    f"{1 + r['overhead']:.3f} ({100 * r['overhead']:+.1f} %; repeats "
                    f"{100 * r['overhead_range'][0]:+.1f} to {100 * r['overhead_range'][1]:+.1f} %) |")
    fl = res.get("flops", {})
    for key in MODELS:
        if key in fl:
            r = fl[key]
            rows.append(f"| achieved GFLOP/s, {MODELS[key][0]}: standard / PGD-10 step | "
                        f"{r['standard_gflops']:.1f} / {r['pgd10_gflops']:.1f} | {fl['matmul_gflops']:.0f} (fp32 matmul) | "
                        f"{r['standard_fraction_of_matmul']:.2f} / {r['pgd10_fraction_of_matmul']:.2f} |")
    d = res.get("data", {})
    for key in MODELS:
        if key in d:
            rows.append(f"| data loading + albumentations per image vs standard step, {MODELS[key][0]} | "
                        f"{d['load_ms_per_img']:.3f} ms | | {d[key]['fraction_of_standard_step']:.3f} |")
    c = res.get("cost")
    if c:
        rows.append(f"| achieved GFLOP/s of params.yaml's model ({c['image_size']} px) per worker thread: standard / "
                    f"adversarial (PGD-{c['adversarial']['attack_steps']}) training / PGD-{c['evaluation']['attack_steps']} "
                    f"evaluation (the planner's CPU rates) | {c['standard']['gflops_per_thread']:.2f} / "
                    f"{c['adversarial']['gflops_per_thread']:.2f} / {c['evaluation']['gflops_per_thread']:.2f} | | |")
    rows += contention.table_rows(res.get("contention", {}))
    p = res.get("pipeline")
    if p:
        if "repro_s" in p:
            rows.append(f"| `dvc repro`, tier {p['tier']} (s) | {p['repro_s']:.0f} | | |")
        rows.append(f"| no-op `dvc repro` / `dvc status` (s) | {p['noop_repro_s']:.1f} / {p['status_s']:.1f} | | |")
        rows.append(f"| `dvc status` / `dvc dag`, paper tier DAG (s) | {p['paper_dvc_status_s']:.1f} / "
                    f"{p['paper_dvc_dag_s']:.1f} | | |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats per comparison (median)")
    ap.add_argument("--tier", default="smoke", help="tier whose `dvc repro` is timed (default: smoke)")
    ap.add_argument("--workspace", type=Path, default=None,
                    help="a finished checkout: time its no-op `dvc repro`/`dvc status` instead of reproducing a tier")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/<machine>.json)")
    a = ap.parse_args(argv)
    if a.repeats < 1:
        ap.error(f"--repeats must be >= 1, got {a.repeats}")
    threads = int(os.environ.get("REPRO_THREADS", 0)) or (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    runtime.seed_everything(0)
    m = machine()
    res: dict = {"machine": m, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "repeats": a.repeats,
                 "settings": {"eps": "8/255", "alpha": "2/255", "sparsity": 0.8, "image_size": 32,
                              "bn_mode_during_attack": "train"}}
    t0 = time.perf_counter()
    sections = {
        "adv": lambda: bench_adv(a.repeats, a.models),
        "compile": lambda: bench_compile(a.repeats),
        "eval": lambda: bench_eval(a.models, a.repeats),
        "aa": lambda: bench_aa(a.repeats),
        "mask": lambda: bench_mask(a.models, a.repeats),
        "flops": lambda: bench_flops(a.models, res.get("adv", {}), max(1, a.repeats - 1), res.get("mask")),
        "data": lambda: bench_data(a.models, res.get("flops", {})),
        "cost": lambda: params_model_rate(max(2, a.repeats)),
        "contention": lambda: contention.bench_contention(max(3, a.repeats), log=log),
        "pipeline": lambda: bench_pipeline(a.tier, a.workspace),
    }
    res["section_seconds"] = {}
    for name in SECTIONS:  # in this order: flops reuses adv and mask, data reuses flops
        if name in a.only:
            ts = time.perf_counter()
            res[name] = sections[name]()
            res["section_seconds"][name] = round(time.perf_counter() - ts, 1)
            log(f"{name}: {res['section_seconds'][name]:.0f} s")
    res["bench_seconds"] = time.perf_counter() - t0
    out = a.out or ROOT / "bench" / "results" / f"{machine_name(m)}.json"
    save_json(res, out)
    print(table(res))
    log(f"wrote {out} in {res['bench_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
