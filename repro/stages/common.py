"""The stage runner: what every stage's ``main`` shares.

A stage module has ``main(argv)``; ``run_stage`` validates params.yaml (schema and registered names)
*before* any work, turns every expected failure (bad params, missing or corrupt input, bad mask) into
one line on stderr and exit code 2, and leaves no half-written output (runs are written to a temporary
folder and renamed: ``repro.base.io.atomic_dir``). What a stage does lives below it (``repro.pipeline``);
what a launcher changes about how it runs arrives through ``repro.base.runctx``.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import time
from typing import Callable

import torch

from .. import registries
from ..base import cpus, devices, runtime, timing
from ..base.errors import EXPECTED_ERRORS, ConfigError
from ..base.io import CKPT_ROOT
from ..base.runctx import log
from ..config import Params


def fmt(x: float | None) -> str:
    """A metric in a log line: 3 decimals, or "n/a" for a metric a run has none of (a diverged run)."""
    return "n/a" if x is None else f"{x:.3f}"


def rounded(x: float | None, digits: int = 4) -> float | None:
    """A metric for a JSON record: rounded, or None for a metric a run has none of (a diverged run)."""
    return None if x is None else round(x, digits)


def parse_level(s: str) -> float:
    v = float(s)
    if not 0 <= v < 1:  # NaN included
        raise SystemExit(f"sparsity level {v} is outside [0, 1)")
    return v


def stage_item(stage: str, given: str | None) -> str:
    """The foreach item of a stage: the command-line argument, else what follows ``<stage>@`` in
    ``DVC_STAGE`` (DVC sets it for every stage command). dvc.yaml passes items this way: no
    params.yaml value is ever interpolated into the shell command line DVC runs (a value such
    as ``standard; rm -rf ~`` would otherwise run before any validation); the value reaches the
    stage as plain data and is validated there."""
    if given is not None:
        return given
    name = os.environ.get("DVC_STAGE", "")
    if not name.startswith(f"{stage}@"):
        raise SystemExit(f"{stage}: give the item on the command line (outside DVC: DVC_STAGE is {name!r})")
    return name[len(stage) + 1:]


def level_main(stage: str, body_for: Callable[[float], Callable[[Params], None]], doc: str, argv=None) -> int:
    """Entry point of a per-level stage: ``python -m repro.stages.<stage> <level>`` (0 = dense); under
    DVC the level comes from ``DVC_STAGE`` (``<stage>@<level>``, see :func:`stage_item`)."""
    import argparse

    from ..plan import level_name

    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("level", nargs="?", help="sparsity level; 0 = the dense baselines (default: from DVC_STAGE)")
    a = ap.parse_args(argv)
    raw = stage_item(stage, a.level)
    try:
        level = parse_level(raw)
    except (ValueError, SystemExit) as e:
        msg = str(e) if isinstance(e, SystemExit) else f"sparsity level {raw!r} is not a number"
        print(f"[{stage}] error: {msg}", file=sys.stderr, flush=True)
        return 2
    return run_stage(f"{stage}@{level_name(level)}", body_for(level))


_FASTAI_WRAP = re.compile(r"^Exception occured in `(\w+)` when calling event `(\w+)`:$")


def one_line(e: BaseException) -> str:
    """The first line of an error's message; fastai prefixes errors raised inside a callback with a line
    of its own ("Exception occured in `RaiseOnNaN` when calling event `after_loss`:"), so for those the
    original message comes first and the callback after it."""
    if isinstance(e, KeyError):
        return str(e.args[0]) if e.args else type(e).__name__
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    m = _FASTAI_WRAP.match(lines[0])
    if m and len(lines) > 1:
        return f"{lines[1]} (in the training callback {m.group(1)}.{m.group(2)})"
    return lines[0]


def run_stage(name: str, body: Callable[[Params], None], params_path: str = "params.yaml") -> int:
    """Validate params, run ``body``, map expected errors to a one-line message and exit code 2."""
    t0 = time.time()
    try:
        p = registries.load(params_path)
    except ConfigError as e:
        print(f"[{name}] error: {e}", file=sys.stderr, flush=True)
        return 2
    runtime.seed_everything(p.seed)
    try:
        # the CPUs this job may use (affinity, cgroup quota), split into worker processes x threads
        split = cpus.split(n_workers(p), device(p).type)
        devices.begin(name, device(p))  # the device trace (REPRO_DEVICE_TRACE), when on
        torch.set_num_threads(split.threads_alone)
        log(name, split.line())
        with timing.stage_record(name, workers=split.workers, threads=split.threads):
            body(p)
    except EXPECTED_ERRORS as e:
        msg = one_line(e)
        print(f"[{name}] error: {msg}", file=sys.stderr, flush=True)
        return 2
    shutil.rmtree(CKPT_ROOT / name, ignore_errors=True)  # every run of the stage is complete
    log(name, f"done in {time.time() - t0:.1f} s")
    return 0


def device(p: Params) -> torch.device:
    return runtime.device(p.device)


def n_workers(p: Params) -> int:
    """Processes for the independent runs of a stage (``repro.base.cpus.workers_for``)."""
    return cpus.workers_for(p.workers, p.device)


