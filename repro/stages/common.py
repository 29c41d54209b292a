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
