"""Hours from the FLOPs of ``repro.plan.cost``: GPU-hours at a stated throughput, CPU-hours at the rates ``make
bench`` measured on this machine; the report and ``python -m repro.plan cost``."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..config import Params
from .cost import BENCH_RESULTS, GPU_NAME, GPU_TFLOPS, Cost, experiment_costs, stage_costs

@dataclass(frozen=True)
class CpuRate:
    """Achieved GFLOP/s on this machine (``make bench``): standard training steps, adversarial training
    steps (applied to the attack FLOPs), evaluation attacks."""
    standard: float
    attack: float
    eval: float
    source: str
    stage_start_s: float = 0.0  # a stage process's start-up (imports), measured by the same bench

    def hours(self, c: Cost) -> float:
        return (c.train / self.standard + c.attack / self.attack + c.eval / self.eval) / 1e9 / 3600

    def seconds(self, c: Cost, stages: int = 1) -> float:
        """Compute time of ``c`` plus the start-up of ``stages`` stage processes."""
        return self.hours(c) * 3600 + stages * self.stage_start_s


def bench_rate(p: Params, results: Path = BENCH_RESULTS) -> CpuRate | None:
    """Achieved rates from ``make bench`` results, newest first: the ``cost`` section when it measured
    the tier's own model (same model params and image size, one thread per worker as the stages run:
    its rates x its workers); otherwise the ``flops`` section's benched model nearest the tier's
    (2 threads): the tiny CIFAR ResNet for ``cifar_resnet``, ResNet-18 for the rest."""
    from ..config import to_dict

    found = []
    for f in sorted(results.glob("*.json")):
        try:
            found.append((f, json.loads(f.read_text())))
        except (OSError, json.JSONDecodeError):
            continue
    found.sort(key=lambda fr: fr[1].get("when", ""), reverse=True)
    model = json.loads(json.dumps(to_dict(p.model)))
    start = next((r["cost"]["stage_start_s"] for _, r in found if "stage_start_s" in r.get("cost", {})), 0.0)
    for f, r in found:
        own = r.get("cost")
        if own and own.get("model") == model and own.get("image_size") == p.data.image_size:
            w = own["workers"]
            return CpuRate(own["standard"]["gflops_per_thread"] * w, own["adversarial"]["gflops_per_thread"] * w,
                           own["evaluation"]["gflops_per_thread"] * w,
                           f"{f} (this tier's model, {w} workers x 1 thread, {r.get('when', '?')})", start)
    key = "tiny" if p.model.arch == "cifar_resnet" else "r18"
    for f, r in found:
        fl = r.get("flops", {}).get(key)
        if fl:
            return CpuRate(fl["standard_gflops"], fl["pgd10_gflops"], fl["pgd10_gflops"],
                           f"{f} (benched {key} model, 2 threads, {r.get('when', '?')})", start)
    return None


def gpu_hours(c: Cost, tflops: float) -> float:
    return c.flops / (tflops * 1e12) / 3600


@dataclass
class Report:
    tier: str
    stages: dict[str, Cost]
    experiments: dict[str, Cost]
    gpu_tflops: float
    cpu: CpuRate | None
    total: Cost = field(default_factory=Cost)

    def __post_init__(self):
        for c in self.stages.values():
            self.total.add(c)


def report(p: Params, tier: str, gpu_tflops: float = GPU_TFLOPS, results: Path = BENCH_RESULTS) -> Report:
    if not gpu_tflops > 0:
        raise ValueError(f"--gpu-tflops {gpu_tflops} must be > 0 (the device's dense throughput in TFLOP/s)")
    return Report(tier, stage_costs(p), experiment_costs(p), gpu_tflops, bench_rate(p, results))


def _fmt_hours(h: float) -> str:
    if h < 1 / 60:
        return f"{h * 3600:.1f} s"
    if h < 1:
        return f"{h * 60:.1f} min"
    return f"{h:,.1f} h" if h < 100 else f"{h:,.0f} h"


def _fmt_flops(x: float) -> str:
    for unit, v in (("ZFLOP", 1e21), ("EFLOP", 1e18), ("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9)):
        if x >= v:
            return f"{x / v:,.3g} {unit}"
    return f"{x:.3g} FLOP" if x else "0"


def table(r: Report) -> str:
    cpu = r.cpu
    head = f"| {{}} | runs | FLOPs (train / attack / eval) | GPU-hours @ {r.gpu_tflops:g} TFLOP/s |" + \
        (" CPU-hours, this machine |" if cpu else "")
    sep = "|---|---:|---:|---:|" + ("---:|" if cpu else "")

    def row(name: str, c: Cost, stages: int = 0) -> str:
        s = f"| {name} | {c.runs} | {_fmt_flops(c.flops)} ({_fmt_flops(c.train)} / {_fmt_flops(c.attack)} / " \
            f"{_fmt_flops(c.eval)}) | " \
            f"{_fmt_hours(gpu_hours(c, r.gpu_tflops))} |"
        return s + (f" {_fmt_hours(cpu.seconds(c, stages) / 3600)} |" if cpu else "")

    lines = [f"Tier {r.tier}: {r.total.runs} runs, {_fmt_flops(r.total.flops)}; "
             f"GPU at {r.gpu_tflops:g} TFLOP/s" + (f" ({GPU_NAME})" if r.gpu_tflops == GPU_TFLOPS else "")
             + (f"; CPU at the measured {cpu.standard:.1f} / {cpu.attack:.1f} / {cpu.eval:.1f} GFLOP/s "
                f"(standard / adversarial training / evaluation) "
                f"of {cpu.source}, plus {cpu.stage_start_s:.1f} s of start-up per stage"
                if cpu else "; no bench result with a flops section (make bench) for CPU-hours"),
             "", head.format("stage"), sep]
    lines += [row(k, c, 1) for k, c in r.stages.items()]
    lines.append(row("**total**", r.total, len(r.stages)))
    lines += ["", head.format("experiment (transfer + evaluation over every level; compute only)"), sep]
    lines += [row(k, c) for k, c in r.experiments.items()]
    return "\n".join(lines)


def summary(r: Report) -> dict:
    out = {"tier": r.tier, "runs": r.total.runs, "flops": r.total.flops, "train_flops": r.total.train,
           "attack_flops": r.total.attack, "eval_flops": r.total.eval, "gpu_tflops": r.gpu_tflops,
           "gpu_hours": gpu_hours(r.total, r.gpu_tflops)}
    if r.cpu:
        start = len(r.stages) * r.cpu.stage_start_s / 3600
        out.update(cpu_hours=r.cpu.seconds(r.total, len(r.stages)) / 3600, cpu_compute_hours=r.cpu.hours(r.total),
                   cpu_startup_hours=start, cpu_source=r.cpu.source)
    out["stages"] = {k: asdict(c) for k, c in r.stages.items()}
    out["experiments"] = {k: asdict(c) for k, c in r.experiments.items()}
    return out


def params_for(tiers: list[str], params: Path = Path("params.yaml"), fraction: float = 1.0) -> Params:
    """The tier's merged params (``repro.tiers.combine``), validated; params.yaml is not written."""
    from ..registries import params_from
    from ..tiers import combine

    return params_from(combine(tiers, params, fraction))


def main(argv=None) -> int:
    import argparse
    import sys

    from ..config import ConfigError

    ap = argparse.ArgumentParser(prog="python -m repro.plan cost", description=__doc__.splitlines()[0])
    ap.add_argument("--tier", nargs="+", default=["default"],
                    help="tier(s) merged as `repro.tiers use` would (default: params.yaml as it is)")
    ap.add_argument("--fraction", type=float, default=1.0, help="as `repro.tiers use --fraction`")
    ap.add_argument("--gpu-tflops", type=float, default=GPU_TFLOPS,
                    help=f"device throughput in TFLOP/s (default {GPU_TFLOPS:g}: {GPU_NAME}; A100 fp32: 19.5)")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--bench-results", type=Path, default=BENCH_RESULTS,
                    help=f"folder of `make bench` results with the CPU rates (default {BENCH_RESULTS})")
    ap.add_argument("--json", action="store_true", help="print the totals and per-stage FLOPs as JSON")
    a = ap.parse_args(argv)
    try:
        p = params_for(a.tier, a.params, a.fraction)
        r = report(p, "+".join(a.tier), a.gpu_tflops, a.bench_results)
    except (ConfigError, ValueError) as e:
        print(f"repro.plan cost: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary(r), indent=1) if a.json else table(r))
    return 0
