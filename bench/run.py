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
  pipeline  `dvc repro` of a tier (default: the embedded default) from nothing, --repeats times: the median wall
            time and, per stage, its median wall time, share and the planner's estimate (the stages' timing records);
            a no-op `dvc repro`, `dvc status`; `dvc status`/`dvc dag` of the paper tier

Writes ``bench/results/<machine>.json`` (atomically) and prints a table.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from bench import contention
from bench.common import MODELS, ROOT, log, machine, machine_name
from bench.compile import bench_compile
from bench.data import bench_data
from bench.evaluation import bench_aa, bench_eval
from bench.flops import bench_flops, params_model_rate
from bench.pipeline import bench_pipeline
from bench.report import table
from bench.training import bench_adv, bench_mask
from repro.base import runtime
from repro.base.io import save_json

SECTIONS = ("adv", "compile", "eval", "aa", "mask", "flops", "data", "cost", "contention", "pipeline")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats per comparison (median)")
    ap.add_argument("--tier", default="default",
                    help="tier whose `dvc repro` section `pipeline` times (default: the embedded default)")
    ap.add_argument("--workspace", type=Path, default=None,
                    help="a finished checkout: time its no-op `dvc repro`/`dvc status` instead of reproducing a tier")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/<machine>.json, or <machine>-<sections>.json with --only)")
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
        "pipeline": lambda: bench_pipeline(a.tier, a.workspace, a.repeats),
    }
    res["section_seconds"] = {}
    for name in SECTIONS:  # in this order: flops reuses adv and mask, data reuses flops
        if name in a.only:
            ts = time.perf_counter()
            res[name] = sections[name]()
            res["section_seconds"][name] = round(time.perf_counter() - ts, 1)
            log(f"{name}: {res['section_seconds'][name]:.0f} s")
    res["bench_seconds"] = time.perf_counter() - t0
    # a run of some sections only must not replace the file of a full run: it gets its own name
    suffix = "" if set(a.only) == set(SECTIONS) else "-" + "-".join(n for n in SECTIONS if n in a.only)
    out = a.out or ROOT / "bench" / "results" / f"{machine_name(m)}{suffix}.json"
    save_json(res, out)
    print(table(res))
    log(f"wrote {out} in {res['bench_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
