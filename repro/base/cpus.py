"""The CPUs a job may really use, and how a stage splits them into worker processes x threads.

``os.cpu_count()`` counts the host's cores. A job usually may use fewer:

* a cpuset (``taskset``, SLURM ``--cpus-per-task``, ``docker run --cpuset-cpus``): the affinity
  mask, ``os.sched_getaffinity(0)``;
* a CPU quota (``docker run --cpus 4``, Kubernetes limits, systemd ``CPUQuota``): cgroup v2
  ``cpu.max`` (``"<quota> <period>"`` or ``"max <period>"``) or cgroup v1
  ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, in the job's own cgroup or any ancestor.

The budget is the smaller of the two (a quota of 2.5 CPUs gives 2: rounding down never
oversubscribes). Overrides come after it: ``REPRO_THREADS`` (threads per process) and the
``workers`` param (processes); neither can take a stage beyond the budget, so
threads x workers <= budget always. ``REPRO_CGROUP_ROOT`` (or the ``cgroup_root`` argument)
points at another cgroup mount, e.g. a faked one in the tests.

No torch here: the scale-out driver sizes jobs with it on a login node.
``python -m repro.base.cpus [--workers N] [--device cpu|cuda]`` prints the split as JSON.
"""
from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: auto workers never exceed this (one process per run; more only adds memory)
MAX_AUTO_WORKERS = 8


def affinity() -> int:
    """CPUs this process may be scheduled on (the cpuset), else the host's count."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _own_cgroups(proc_cgroup: Path) -> dict[str, str]:
    """controller -> path of this process's cgroup ('' = the v2 unified hierarchy)."""
    out: dict[str, str] = {}
    try:
        for line in proc_cgroup.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                out[c] = path
    except (OSError, ValueError):
        pass
    return out


def _ancestors(base: Path, rel: str) -> list[Path]:
    """``base/rel``, its parents, ..., ``base`` (quotas nest: the tightest one counts)."""
    parts = [p for p in rel.strip("/").split("/") if p and p != ".."]
    return [base.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def _read_v2(d: Path) -> float | None:
    try:
        quota, period = (d / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        q, p = float(quota), float(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _read_v1(d: Path) -> float | None:
    try:
        q = float((d / "cpu.cfs_quota_us").read_text().strip())
        p = float((d / "cpu.cfs_period_us").read_text().strip())
    except (OSError, ValueError):
        return None
    return q / p if q > 0 and p > 0 else None  # -1 = no quota


def cgroup_quota(root: str | Path | None = None, proc_cgroup: str | Path = "/proc/self/cgroup") -> float | None:
    """CPUs' worth of quota of this process's cgroup (v2 ``cpu.max``, else v1 CFS), the tightest
    along its ancestors; None when there is no quota (or no cgroup file system)."""
    root = Path(root or os.environ.get("REPRO_CGROUP_ROOT") or CGROUP_ROOT)
    own = _own_cgroups(Path(proc_cgroup))
    found = []
    # v2: <root>/<path>/cpu.max ... <root>/cpu.max (inside a container the root is its own cgroup)
    for d in _ancestors(root, own.get("", "")):
        q = _read_v2(d)
        if q is not None:
            found.append(q)
    # v1: <root>/cpu (or cpu,cpuacct)/<path>/cpu.cfs_quota_us ... up to the controller's root
    for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        base = root / mount
        if base.is_dir():
            for d in _ancestors(base, own.get("cpu", "")):
                q = _read_v1(d)
                if q is not None:
                    found.append(q)
            break
    return min(found) if found else None


def budget(cgroup_root: str | Path | None = None) -> tuple[int, dict]:
    """(CPUs this job may use, where that number came from)."""
    aff = affinity()
    quota = cgroup_quota(cgroup_root)
    n = aff if quota is None else max(1, min(aff, math.floor(quota + 1e-9)))
    return n, {"host": os.cpu_count(), "affinity": aff, "quota": quota}


def _positive_env(name: str) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return 0
    try:
        v = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer; allowed: a number of threads >= 1, or unset") from None
    if v < 0:
        raise ValueError(f"{name}={raw!r} is negative; allowed: a number of threads >= 1, or unset (0 = auto)")
    return v


@dataclass(frozen=True)
class Split:
    """How a stage uses its budget: ``workers`` processes x ``threads`` torch threads each (the runs of
    a stage in parallel), or ``threads_alone`` threads when it runs in one process."""
    budget: int
    workers: int
    threads: int
    threads_alone: int
    host: int | None
    affinity: int
    quota: float | None

    def line(self) -> str:
        q = "none" if self.quota is None else f"{self.quota:g}"
        return (f"cpu budget {self.budget} (host {self.host}, affinity {self.affinity}, cgroup quota {q}): "
                f"{self.workers} worker(s) x {self.threads} thread(s); {self.threads_alone} thread(s) in one process")


def split(workers: int = 0, device_type: str = "cpu", cgroup_root: str | Path | None = None) -> Split:
    """Workers x threads within the budget.

    ``workers`` (the param; 0 = auto): auto is one process per budgeted CPU on the CPU (tiny networks
    do not scale over threads; up to ``MAX_AUTO_WORKERS``), one on CUDA; a given number is capped at
    the budget. ``REPRO_THREADS`` sets the threads per process, capped so that workers x threads
    never exceeds the budget; by default each worker gets ``budget // workers``."""
    n, src = budget(cgroup_root)
    if workers < 0:
        raise ValueError(f"workers={workers} is negative; allowed: 0 (auto) or a number of processes >= 1")
    if workers:
        w = min(workers, n)
    elif device_type == "cuda":
        w = 1
    else:
        w = min(n, MAX_AUTO_WORKERS)
    env = _positive_env("REPRO_THREADS")
    per = max(1, n // w)
    return Split(budget=n, workers=w, threads=min(env, per) if env else per,
                 threads_alone=min(env, n) if env else n, host=src["host"], affinity=src["affinity"],
                 quota=src["quota"])


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m repro.base.cpus", description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=0, help="the workers param (0 = auto)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--cgroup-root", default=None, help=f"cgroup mount (default $REPRO_CGROUP_ROOT or {CGROUP_ROOT})")
    a = ap.parse_args(argv)
    try:
        s = split(a.workers, a.device, a.cgroup_root)
    except ValueError as e:
        print(f"repro.base.cpus: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(s)))
    return 0


# ------------------------------------------------------------------------- the pool
def workers_for(workers: int, device: str) -> int:
    """Processes for the independent runs of a stage: ``workers`` (capped at the CPU budget), or (0 = auto) one
    per CPU the job may use on the CPU (tiny networks do not scale over threads), 1 on CUDA (``split``); what a
    launcher sets (``runctx.workers``: torchrun's 1) wins. ``device``: params' ``device`` (auto, cpu, cuda[:N])."""
    from . import runctx
    from .runtime import device as resolve

    forced = runctx.current().workers
    return forced if forced is not None else split(workers, resolve(device).type).workers


def _init_worker(threads: int) -> None:
    torch = sys.modules.get("torch")  # a worker of a process that never loaded torch has nothing to set
    if torch is not None:
        torch.set_num_threads(threads)


def parallel_map(fn: Callable, items: list, workers: int, cost: Callable[[Any], float] | None = None) -> Iterator:
    """``fn(item)`` for every item, in order; in ``workers`` forked processes when > 1.

    Each run seeds itself from its own spec, so results do not depend on the worker that ran it, on the
    number of workers or on the order runs start in. ``cost(item)``: an estimate of a run's work; the runs then
    start longest first (so no worker idles at the end behind one long run started last); results still come
    in the items' order. Every run's wall and CPU time and images go to the stage's timing record
    (``repro.base.timing``).
    """
    from functools import partial

    from . import timing

    call = partial(timing.timed_call, fn)
    if workers <= 1 or len(items) <= 1:
        for item in items:
            out, rec = call(item)
            timing.add_run(rec)
            yield out
        return
    import multiprocessing as mp

    threads = split(workers).threads  # workers x threads within the CPU budget
    order = sorted(range(len(items)), key=lambda i: -cost(items[i])) if cost else range(len(items))
    with mp.get_context("fork").Pool(workers, initializer=_init_worker, initargs=(threads,)) as pool:
        pending = {i: pool.apply_async(call, (items[i],)) for i in order}  # workers take them in this order
        for i in range(len(items)):
            out, rec = pending.pop(i).get()
            timing.add_run(rec)
            yield out


if __name__ == "__main__":
    sys.exit(main())
