"""Bench section `compile`: PGD-10 adversarial fine-tuning with ``runtime.compile: on`` vs the official
code's way (and our eager path): steady per-batch ratio, cold/warm compile cost, break-even run length."""
from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time

import torch

from bench.common import (ALPHA, EPS, MODELS, baseline_rate, log, median_ratio, model_for, ratio_range, task32,
                          ticket)
from bench.flops import step_flops
from repro.attacks import attack_from_config
from repro.base import runtime
from repro.config import TrainParams
from repro.data import make_dataloaders
from repro.training import make_learner

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
