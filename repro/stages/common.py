"""What every stage shares: validated params, task/model loading, run folders, errors.

A stage module has ``main(argv)``; ``run_stage`` validates params.yaml
*before* any work, turns every expected failure (bad params, missing or corrupt
input, bad mask) into one line on stderr and exit code 2, and leaves no
half-written output (runs are written to a temporary folder and renamed).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import torch

from .. import runtime
from ..config import ConfigError, Params, load_params, to_dict
from ..data import ArrayTask, DataError
from ..io import CheckpointError, load_torch, save_json
from ..models import replace_head, set_normalization
from ..plan import RUNS
from ..tickets.mask import MaskError

EXPECTED_ERRORS = (ConfigError, CheckpointError, MaskError, DataError, FileNotFoundError, KeyError, ValueError)


def log(stage: str, msg: str) -> None:
    print(f"[{stage}] {msg}", flush=True)


def parse_level(s: str) -> float:
    v = float(s)
    if not 0 <= v < 1:
        raise SystemExit(f"sparsity level {v} is outside [0, 1)")
    return v


def level_main(stage: str, body_for: Callable[[float], Callable[[Params], None]], doc: str, argv=None) -> int:
    """Entry point of a per-level stage: ``python -m repro.stages.<stage> <level>`` (0 = dense)."""
    import argparse

    from ..plan import level_name

    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("level", type=parse_level, help="sparsity level; 0 = the dense baselines")
    a = ap.parse_args(argv)
    return run_stage(f"{stage}@{level_name(a.level)}", body_for(a.level))


def run_stage(name: str, body: Callable[[Params], None], params_path: str = "params.yaml") -> int:
    """Validate params, run ``body``, map expected errors to a one-line message and exit code 2."""
    t0 = time.time()
    try:
        p = load_params(params_path)
    except ConfigError as e:
        print(f"[{name}] error: {e}", file=sys.stderr, flush=True)
        return 2
    runtime.seed_everything(p.seed)
    torch.set_num_threads(int(os.environ.get("REPRO_THREADS", 0)) or max(1, os.cpu_count() or 1))
    try:
        body(p)
    except EXPECTED_ERRORS as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, KeyError):
            msg = str(e.args[0]) if e.args else msg
        print(f"[{name}] error: {msg}", file=sys.stderr, flush=True)
        return 2
    log(name, f"done in {time.time() - t0:.1f} s")
    return 0


def device(p: Params) -> torch.device:
    return runtime.device(p.device)


def n_workers(p: Params) -> int:
    """Processes for the independent runs of a stage: ``workers``, or (0 = auto) one per CPU core
    with one thread each on the CPU (tiny networks do not scale over threads), 1 on CUDA."""
    if p.workers:
        return p.workers
    if device(p).type == "cuda":
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


def _init_worker() -> None:
    torch.set_num_threads(1)


def parallel_map(fn: Callable, items: list, workers: int) -> Iterator:
    """``fn(item)`` for every item, in order; in ``workers`` forked processes when > 1.

    Each run seeds itself from its own spec, so results do not depend on the worker
    that ran it or on the number of workers.
    """
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    import multiprocessing as mp

    with mp.get_context("fork").Pool(workers, initializer=_init_worker) as pool:
        yield from pool.imap(fn, items)


def config_hash(obj) -> str:
    return hashlib.sha256(json.dumps(to_dict(obj), sort_keys=True, default=str).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- data
def task_path(name: str) -> Path:
    return RUNS / "data" / f"{name}.npz"


def load_task(name: str) -> ArrayTask:
    path = task_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"dataset file {str(path)!r} is missing; run the data stage first (dvc repro data)")
    return ArrayTask.load(path)


# --------------------------------------------------------------------------- models
def pretrained_path(kind: str) -> Path:
    return RUNS / "pretrain" / kind / "model.pt"


def load_state(path: Path) -> dict:
    sd = load_torch(path)
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{str(path)!r} is not a state_dict (a dict of tensors)")
    return sd


def load_into(model: torch.nn.Module, sd: dict, path: Path, skip_head: bool = False) -> None:
    own = model.state_dict()
    keys = [k for k in own if not (skip_head and k.startswith("fc."))]
    missing = [k for k in keys if k not in sd]
    if missing:
        raise CheckpointError(f"{str(path)!r} lacks {len(missing)} weights of the model, e.g. {missing[0]!r} "
                              "(a checkpoint of another architecture?)")
    for k in keys:
        if tuple(sd[k].shape) != tuple(own[k].shape):
            raise CheckpointError(f"{str(path)!r}: {k!r} has shape {tuple(sd[k].shape)}, "
                                  f"the model needs {tuple(own[k].shape)}")
    model.load_state_dict({k: sd[k] for k in keys}, strict=not skip_head)


def source_model(p: Params, num_classes: int, mean, std) -> torch.nn.Module:
    return p.model.build(num_classes, mean=mean, std=std)


def pretrained_source_model(p: Params, kind: str) -> tuple[ArrayTask, torch.nn.Module]:
    """The source task and the pretrained network of ``kind`` on it."""
    task = load_task(p.data.source)
    model = source_model(p, task.num_classes, task.mean, task.std)
    load_into(model, load_state(pretrained_path(kind)), pretrained_path(kind))
    return task, model


def ticket_base(p: Params, kind: str, task_name: str | None) -> tuple[ArrayTask, torch.nn.Module]:
    """Where a ticket is drawn: the pretrained source network, or (downstream A-IMP) its transfer to a task."""
    if task_name is None:
        return pretrained_source_model(p, kind)
    task = load_task(task_name)
    return task, downstream_model(p, kind, task)


def downstream_model(p: Params, kind: str, task: ArrayTask) -> torch.nn.Module:
    """Pretrained backbone of ``kind``, a fresh head for ``task``, the task's normalization."""
    path = pretrained_path(kind)
    sd = load_state(path)
    src_classes = sd["fc.weight"].shape[0] if "fc.weight" in sd else task.num_classes
    model = p.model.build(src_classes)
    load_into(model, sd, path)
    replace_head(model, task.num_classes)
    set_normalization(model, task.mean, task.std)
    return model


# ---------------------------------------------------------------------- run folders
@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Write a run into a temporary sibling folder; rename it onto ``path`` when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: Path, obj) -> None:
    save_json(obj, path)


def read_json(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} is missing; run the stage that makes it first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{str(path)!r} is not valid JSON: {e}") from None
