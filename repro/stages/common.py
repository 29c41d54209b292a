"""What every stage shares: validated params, task/model loading, run folders, errors.

A stage module has ``main(argv)``; ``run_stage`` validates params.yaml
*before* any work, turns every expected failure (bad params, missing or corrupt
input, bad mask) into one line on stderr and exit code 2, and leaves no
half-written output (runs are written to a temporary folder and renamed).
"""
from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import torch

from ..base import cpus, runtime
from ..base.errors import EXPECTED_ERRORS, CheckpointError, ConfigError
from ..base.io import load_torch, save_json
from ..config import Params, to_dict
from ..data import ArrayTask
from ..models import replace_head, set_normalization, model_from_params
from ..plan import RUNS
from .. import registries



def log(stage: str, msg: str) -> None:
    print(f"[{stage}] {msg}", flush=True)


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
        torch.set_num_threads(split.threads_alone)
        log(name, split.line())
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
    """Processes for the independent runs of a stage: ``workers`` (capped at the CPU budget), or
    (0 = auto) one per CPU the job may use on the CPU (tiny networks do not scale over threads),
    1 on CUDA (``repro.base.cpus.split``)."""
    return cpus.split(p.workers, device(p).type).workers


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def parallel_map(fn: Callable, items: list, workers: int) -> Iterator:
    """``fn(item)`` for every item, in order; in ``workers`` forked processes when > 1.

    Each run seeds itself from its own spec, so results do not depend on the worker
    that ran it or on the number of workers.
    """
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    import multiprocessing as mp

    threads = cpus.split(workers).threads  # workers x threads within the CPU budget
    with mp.get_context("fork").Pool(workers, initializer=_init_worker, initargs=(threads,)) as pool:
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
    return model_from_params(p.model, num_classes, mean=mean, std=std)


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
    model = model_from_params(p.model, src_classes)
    load_into(model, sd, path)
    replace_head(model, task.num_classes)
    set_normalization(model, task.mean, task.std)
    return model


# ------------------------------------------------------------- per-epoch checkpoints
#: per-epoch checkpoints of unfinished runs, outside every DVC output (gitignored, dvcignored)
CKPT_ROOT = Path(".cache") / "repro" / "ckpt"


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """sha256 of the package's source: a checkpoint written by other code is never resumed."""
    h = hashlib.sha256()
    pkg = Path(__file__).resolve().parents[1]
    for f in sorted(pkg.rglob("*.py")):
        h.update(str(f.relative_to(pkg)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def checkpoint_key(stage: str, run: str, p: Params, inputs=(), extra: str = "") -> str:
    """Identity of one training run: stage, run name, every param, the code, and the inputs
    (path, size, mtime: an input rewritten since the checkpoint makes it stale)."""
    stats = []
    for f in inputs:
        f = Path(f)
        st = f.stat() if f.exists() else None
        stats.append([str(f), st.st_size if st else None, st.st_mtime_ns if st else None])
    blob = json.dumps({"stage": stage, "run": run, "params": to_dict(p), "inputs": stats, "extra": extra,
                       "code": _code_digest(), "torch": torch.__version__}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def tensor_digest(tensors: dict) -> str:
    """sha256 over a dict of tensors (an in-memory input of a run, e.g. its mask)."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def epoch_checkpoint(stage: str, run: str, p: Params, carry_dir: Path, inputs=(), extra: str = ""):
    """The ``EpochCheckpoint`` callback of one run: ``.cache/repro/ckpt/<stage>/<run-hash>/last.pt``."""
    from ..training import EpochCheckpoint

    key = checkpoint_key(stage, run, p, inputs, extra)
    return EpochCheckpoint(CKPT_ROOT / stage / key[:20], key, carry_dir=carry_dir)


def drop_checkpoint(cb) -> None:
    """The run's outputs are in place: its checkpoint is no longer needed."""
    if cb is not None:
        shutil.rmtree(cb.directory, ignore_errors=True)


# ---------------------------------------------------------------------- run folders
@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Write a run into a temporary sibling folder; rename it onto ``path`` when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # temporary folders left by a killed earlier attempt of this run
    for stale in path.parent.glob(glob.escape(f".{path.name}.") + "*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
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
