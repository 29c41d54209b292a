"""Where a stage's time goes: one record per stage run, written outside every DVC output.

``stage_record(name)`` wraps a stage's work (``repro.stages.common.run_stage`` and the figures stage use it) and
writes ``.cache/repro/timing/<stage>.json`` when it ends: the stage's wall time from process start (``wall_s``),
its start-up (process start to the body: interpreter and imports, ``startup_s``), the body's wall and CPU time
(CPU of this process and of its finished worker processes), the workers × threads it ran with, and one entry per
run of ``repro.base.cpus.parallel_map`` (its name, wall and CPU seconds in its worker, images processed). Images
are counted where batches pass (``count_images``: training batches, evaluation and attack passes), per process.
The records are not outputs of the pipeline (their numbers differ run to run), so DVC never sees them;
``python -m bench.run --only pipeline`` reads them after a ``dvc repro`` and commits the table.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

TIMING_ROOT = Path(".cache") / "repro" / "timing"

_IMAGES = [0]  # images counted in this process since the last reset
_RUNS: list[dict] = []  # per-run records of the stage running in this process


def count_images(n: int) -> None:
    _IMAGES[0] += int(n)


def process_start() -> float:
    """This process's start (epoch seconds), from /proc; the import of this module if /proc is not there."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        start_ticks = int(Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + start_ticks / ticks
    except (OSError, ValueError, StopIteration, IndexError):
        return _IMPORTED


_IMPORTED = time.time()


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed_call(fn: Callable, item: Any) -> tuple[Any, dict]:
    """``fn(item)`` and its record (in a worker process of ``parallel_map``, or in this one: the stage's own count
    is set aside meanwhile, so no image is counted twice)."""
    outer, _IMAGES[0] = _IMAGES[0], 0
    w0, c0 = time.perf_counter(), _cpu()
    try:
        out = fn(item)
    finally:
        images, _IMAGES[0] = _IMAGES[0], outer
    name = getattr(item, "name", None) or (item if isinstance(item, str) else repr(item))
    return out, {"run": str(name), "wall_s": round(time.perf_counter() - w0, 3), "cpu_s": round(_cpu() - c0, 3),
                 "images": images}


def add_run(record: dict) -> None:
    _RUNS.append(record)


@contextlib.contextmanager
def stage_record(name: str, root: Path | None = None, **info) -> Iterator[dict]:
    """Time the body of stage ``name``; its record goes to ``<root>/<name>.json`` (default ``TIMING_ROOT``) when
    the body ends, whether it succeeded (``ok``) or not."""
    _RUNS.clear()
    _IMAGES[0] = 0
    start = process_start()
    w0, c0 = time.time(), _cpu()
    rec: dict = {"stage": name, "startup_s": round(w0 - start, 3), **info}
    ok = False
    try:
        yield rec
        ok = True
    finally:
        end = time.time()
        rec.update(ok=ok, body_wall_s=round(end - w0, 3), body_cpu_s=round(_cpu() - c0, 3),
                   wall_s=round(end - start, 3), images=_IMAGES[0] + sum(r["images"] for r in _RUNS),
                   runs=list(_RUNS), when=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(end)))
        out = Path(root or TIMING_ROOT) / f"{name}.json"
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f".{out.name}.tmp")
            tmp.write_text(json.dumps(rec, indent=1) + "\n")
            os.replace(tmp, out)
        except OSError:  # a read-only workspace: the stage's result matters, its timing does not
            pass
