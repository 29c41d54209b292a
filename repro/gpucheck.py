"""``make gpu-check`` (``python -m repro.gpucheck``): what to run first on a new CUDA machine, in minutes.

On the resolved device (``device: auto``: the first GPU), for a ResNet-18 at 32 px (the `small` tier's network)
and a ResNet-50 at 224 px (the `paper` tier's), on a few hundred synthetic images (``repro.data.synthetic``, in
memory) and an 80 % OMP ticket, through the code the stages run (``make_dataloaders``, ``train``, ``metrics``):

* one standard and one adversarial (PGD-10) fine-tuning epoch, one evaluation (SA, PGD-20 RA);
* checks: every forward pass on the resolved device through the device seam (``repro.base.devices``: the
  trace the stages write under ``REPRO_DEVICE_TRACE``), every attack in float32 inside an enclosing autocast
  (``full_precision``), the pruned weights still zero after training;
* images/s of the training step, the PGD-10 training step and PGD-20 evaluation, the FLOP rates they achieve
  (torch's flop counter on the same network), beside the planner's assumed ``GPU_TFLOPS``, and each tier's
  GPU-hours at that assumption and at the measured rates (``repro.plan.cost``: training FLOPs at the training
  rate, training-attack FLOPs at the PGD-10 rate, evaluation FLOPs at the PGD-20 rate; the ResNet-50 rates
  stand for every 224-px tier, ResNet-18's 224-px runs included);
* with two or more GPUs, one data-parallel step over NCCL (``torch.distributed``): every rank ends with the
  same weights, equal to one process's step on the whole batch.

Without CUDA it says so in one line and exits 0. ``--device cpu`` runs the same mechanics on the CPU (the
tests do, at ``--width-divisor 16`` and a few images). Exit 1 when a check fails.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .base import devices, runtime

#: the tiers whose GPU-hours are printed, each with the benched network whose rates it takes
TIERS = {"small": "cifar_resnet18", "paper": "resnet50", "paper r18": "resnet50", "paper a10": "resnet50",
         "paper vtab": "resnet50"}


@dataclass(frozen=True)
class Bench:
    arch: str
    size: int
    batch: int
    recipe: str


BENCHES = (Bench("cifar_resnet18", 32, 128, "cifar"), Bench("resnet50", 224, 64, "imagenet224"))


def no_cuda_line() -> str | None:
    """The one line for a machine without CUDA (None when CUDA is present)."""
    if torch.cuda.is_available():
        return None
    return (f"gpu-check: no CUDA device here (torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); "
            "nothing to check: run `make gpu-check` on the GPU machine")


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _batch_timer(dev: torch.device):
    from fastai.callback.core import Callback

    class BatchTimer(Callback):
        """Seconds of every training batch (the attack of adversarial training included)."""
        order = -95

        def before_fit(self):
            self.times = []

        def before_batch(self):
            if self.training:
                _sync(dev)
                self.t0 = time.perf_counter()

        def after_batch(self):
            if self.training:
                _sync(dev)
                self.times.append((time.perf_counter() - self.t0, len(self.yb[0])))

    return BatchTimer()


def _rate(times: list[tuple[float, int]]) -> float:
    """Images/s of the median batch, the first (warm-up: kernels chosen, memory allocated) left out."""
    steady = times[1:] or times
    return statistics.median(n / t for t, n in steady if t > 0)


def fp32_problems(fn, dev: torch.device) -> list[str]:
    """Run ``fn`` inside an enabled autocast (as training's AMP would be) and list every convolution or linear
    layer whose output was not float32: an attack must leave autocast (``repro.attacks.full_precision``)."""
    seen: set[str] = set()

    def hook(module, args, out):
        if isinstance(module, (nn.Conv2d, nn.Linear)) and isinstance(out, torch.Tensor) and out.dtype != torch.float32:
            seen.add(f"{type(module).__name__} output {out.dtype}")

    from torch.nn.modules.module import register_module_forward_hook

    handle = register_module_forward_hook(hook)
    try:
        dtype = torch.float16 if dev.type == "cuda" else torch.bfloat16
        with torch.autocast(device_type=dev.type, dtype=dtype, enabled=True):
            fn()
    finally:
        handle.remove()
    return [f"attack ran in reduced precision: {s}" for s in sorted(seen)]


def check_network(b: Bench, dev: torch.device, images: int, width_divisor: int = 1, seed: int = 0) -> dict:
    """One network through the stages' code on ``dev``: rates, FLOPs per image and the checks' problems."""
    from . import metrics
    from .config import ModelParams, TrainParams
    from .data import make_dataloaders, test_loader
    from .data.synthetic import make_task
    from .models import model_from_params
    from .plan.cost import count_flops
    from .tickets import draw_ticket
    from .training import train
    from .attacks import attack_from_config

    runtime.seed_everything(seed)
    task = make_task(f"gpucheck_{b.arch}", 10, images, max(10, images // 4), size=min(b.size, 64), seed=seed)
    mp = ModelParams(arch=b.arch, width_divisor=width_divisor)
    model = model_from_params(mp, task.num_classes, mean=task.mean, std=task.std)
    mask = draw_ticket("omp", model, 0.8)
    bs = max(2, min(b.batch, images // 4))  # at least 4 batches an epoch: the first one (warm-up) is not timed
    cfg = TrainParams(epochs=1, lr=0.01, momentum=0.9, weight_decay=5e-4, schedule="constant", batch_size=bs)
    out: dict = {"network": f"{b.arch}{f'/{width_divisor}' if width_divisor > 1 else ''} at {b.size} px",
                 "images": images, "problems": []}
    trace = Path(tempfile.mkdtemp(prefix="gpucheck-")) / "trace.jsonl"
    before = os.environ.get(devices.TRACE_ENV)
    os.environ[devices.TRACE_ENV] = str(trace)
    try:
        devices.begin(f"gpucheck {b.arch}", dev)
        for regime, attack in (("standard", None), ("adversarial", attack_from_config("pgd", eps=8 / 255, alpha=2 / 255, steps=10))):
            dls = make_dataloaders(task, bs=bs, size=b.size, seed=seed, device=dev, recipe=b.recipe, drop_last=True)
            timer = _batch_timer(dev)
            learn = train(dls, model, cfg, mask=mask, attack=attack, progress=False, extra_cbs=[timer], compile="off")
            out[f"{regime}_img_s"] = round(_rate(timer.times), 1)
            model = learn.model
        params = dict(model.named_parameters())
        bad = sum(int(torch.count_nonzero(params[k].detach()[~m.to(params[k].device)])) for k, m in mask.items())
        if bad:
            out["problems"].append(f"{bad} pruned weights non-zero after fine-tuning (MaskEnforcer)")
        loader = test_loader(task, bs=bs, size=b.size, device=dev, recipe=b.recipe)
        out["sa"] = round(metrics.evaluate(model, loader, progress=False)["accuracy"], 4)
        fast = runtime.inference_model(model)
        _sync(dev)
        t0 = time.perf_counter()
        out["ra_pgd20"] = round(metrics.robust_accuracy(fast, loader, steps=20, progress=False, seed=seed), 4)
        _sync(dev)
        out["pgd20_eval_img_s"] = round(len(task.y_test) / (time.perf_counter() - t0), 1)
        out["problems"] += fp32_problems(lambda: metrics.robust_accuracy(fast, loader, steps=2, progress=False,
                                                                          seed=seed), dev)
    finally:
        devices.end()
        if before is None:
            os.environ.pop(devices.TRACE_ENV, None)
        else:
            os.environ[devices.TRACE_ENV] = before
    events = devices.read(trace)
    out["problems"] += devices.check(events)
    if not any(e["event"] == "forward" for e in events):
        out["problems"].append("the device trace recorded no forward pass")
    with torch.device("meta"):
        f = count_flops(model_from_params(mp, task.num_classes), b.size)
    out["flops_per_image"] = {"train": f.train, "attack_step": f.attack, "forward": f.forward}
    out["achieved_tflops"] = {
        "train": round(f.train * out["standard_img_s"] / 1e12, 3),
        "adversarial": round((f.train + 10 * f.attack) * out["adversarial_img_s"] / 1e12, 3),
        "eval": round((20 * f.attack + f.forward) * out["pgd20_eval_img_s"] / 1e12, 3)}
    return out


def _ddp_worker(rank: int, world: int, port: int, backend: str, result: str) -> None:
    import torch.distributed as dist

    dev = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).to(dev)
        ref = [p.detach().clone() for p in net.parameters()]
        ddp = nn.parallel.DistributedDataParallel(net, device_ids=[rank] if dev.type == "cuda" else None)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(4 * world, 8, generator=g), torch.randint(0, 3, (4 * world,), generator=g)
        part = slice(4 * rank, 4 * rank + 4)
        nn.functional.cross_entropy(ddp(x[part].to(dev)), y[part].to(dev)).backward()
        opt.step()
        got = torch.cat([p.detach().flatten() for p in net.parameters()])
        every = [torch.empty_like(got) for _ in range(world)]
        dist.all_gather(every, got)
        if rank == 0:  # one process, the whole batch
            single = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).to(dev)
            with torch.no_grad():
                for p, r in zip(single.parameters(), ref):
                    p.copy_(r)
            o = torch.optim.SGD(single.parameters(), lr=0.1)
            nn.functional.cross_entropy(single(x.to(dev)), y.to(dev)).backward()
            o.step()
            want = torch.cat([p.detach().flatten() for p in single.parameters()])
            same = all(torch.equal(every[0], e) for e in every[1:])
            close = torch.allclose(every[0], want, atol=1e-5, rtol=1e-4)
            Path(result).write_text(json.dumps({"same_on_every_rank": same, "equals_one_process": close}))
    finally:
        dist.destroy_process_group()


def ddp_step(world: int, backend: str) -> list[str]:
    """One data-parallel SGD step over ``world`` processes (``backend``: nccl on GPUs, gloo on the CPU); the
    problems (empty: every rank holds the same weights, equal to one process's step on the whole batch)."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = Path(tempfile.mkdtemp(prefix="gpucheck-ddp-")) / "result.json"
    try:
        mp.spawn(_ddp_worker, args=(world, port, backend, str(result)), nprocs=world, join=True)
    except Exception as e:  # a rank failed: NCCL missing, a hung peer, ...
        return [f"DDP step over {world} processes ({backend}) failed: {str(e).strip().splitlines()[-1][:200]}"]
    r = json.loads(result.read_text())
    return [f"DDP step ({backend}): {k.replace('_', ' ')} is false" for k, v in r.items() if not v]


def tier_hours(nets: dict[str, dict], gpu_tflops: float) -> dict[str, dict]:
    """{tier: GPU-hours at ``gpu_tflops`` (the planner's assumption) and at the rates measured on ``nets``}."""
    from .plan.cost import GPU_TFLOPS  # noqa: F401  (the default the planner prints)
    from .plan.hours import gpu_hours, params_for, report

    out = {}
    for tier, arch in TIERS.items():
        r = report(params_for(tier.split()), tier, gpu_tflops)
        rates = nets.get(arch, {}).get("achieved_tflops")
        row = {"runs": r.total.runs, "planner_gpu_hours": round(gpu_hours(r.total, gpu_tflops), 1)}
        if rates and all(v > 0 for v in rates.values()):
            t = r.total
            row["measured_gpu_hours"] = round((t.train / rates["train"] + t.attack / rates["adversarial"]
                                               + t.eval / rates["eval"]) / 1e12 / 3600, 1)
        out[tier] = row
    return out


def run(dev: torch.device, images: int, width_divisor: int = 1, gpu_tflops: float | None = None,
        ddp: bool = True) -> dict:
    from .plan.cost import GPU_TFLOPS

    gpu_tflops = gpu_tflops or GPU_TFLOPS
    rec: dict = {"device": str(dev), "torch": torch.__version__, "cuda": torch.version.cuda,
                 "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
                 "name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU",
                 "planner_tflops": gpu_tflops}
    nets = {b.arch: check_network(b, dev, images, width_divisor) for b in BENCHES}
    rec["networks"] = nets
    rec["problems"] = [f"{a}: {p}" for a, n in nets.items() for p in n["problems"]]
    if ddp and rec["gpus"] >= 2:
        rec["ddp"] = ddp_step(2, "nccl")
        rec["problems"] += rec["ddp"]
    else:
        rec["ddp"] = "skipped (fewer than 2 GPUs)"
    rec["tiers"] = tier_hours(nets, gpu_tflops)
    return rec


def text(rec: dict) -> str:
    verdict = "all checks passed" if not rec["problems"] else f"{len(rec['problems'])} FAILED"
    lines = [f"gpu-check: {rec['device']} {rec['name']} ({rec['gpus']} GPU(s)), torch {rec['torch']}, "
             f"CUDA {rec['cuda']}: {verdict}"]
    lines += [f"  FAILED {p}" for p in rec["problems"]]
    ddp = rec["ddp"] if isinstance(rec["ddp"], str) else ("ok" if not rec["ddp"] else "failed")
    lines.append(f"  checks: device seam, fp32 attacks, mask zero after fine-tuning; DDP step: {ddp}")
    lines.append(f"  | network | train img/s | PGD-10 train img/s | PGD-20 eval img/s | achieved TFLOP/s train / "
                 f"adv / eval (planner assumes {rec['planner_tflops']:g}) |")
    lines.append("  |---|---:|---:|---:|---|")
    for n in rec["networks"].values():
        t = n["achieved_tflops"]
        lines.append(f"  | {n['network']} | {n['standard_img_s']} | {n['adversarial_img_s']} | {n['pgd20_eval_img_s']}"
                     f" | {t['train']} / {t['adversarial']} / {t['eval']} |")
    lines.append(f"  | tier | runs | GPU-hours at {rec['planner_tflops']:g} TFLOP/s | GPU-hours at the measured rates |")
    lines.append("  |---|---:|---:|---:|")
    for tier, r in rec["tiers"].items():
        lines.append(f"  | {tier} | {r['runs']} | {r['planner_gpu_hours']:,} | {r.get('measured_gpu_hours', '')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m repro.gpucheck", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto (CUDA; without it: one line, exit 0) | cuda | cuda:N | cpu")
    ap.add_argument("--images", type=int, default=256, help="training images per network (a few hundred)")
    ap.add_argument("--width-divisor", type=int, default=1, help="model.width_divisor (the tests: 16)")
    ap.add_argument("--gpu-tflops", type=float, default=None, help="the planner's assumed rate (default: its own)")
    ap.add_argument("--json", type=Path, default=None, help="also write the record as JSON here")
    a = ap.parse_args(argv)
    if a.device == "auto":
        line = no_cuda_line()
        if line is not None:
            print(line)
            return 0
    if a.images < 8:
        print(f"gpu-check: error: --images {a.images} is too few; allowed: at least 8", file=sys.stderr)
        return 2
    try:
        dev = runtime.device(a.device)
    except RuntimeError as e:
        print(f"gpu-check: error: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rec = run(dev, a.images, a.width_divisor, a.gpu_tflops)
    print(text(rec))
    if a.json:
        from .base.io import save_json

        save_json(rec, a.json)
    return 1 if rec["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
