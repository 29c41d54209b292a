"""Per-epoch checkpoints of unfinished training runs (``CKPT_ROOT``, outside every DVC output): the identity of
a run (stage, run, every param, the code, its inputs) and the ``EpochCheckpoint`` callback that resumes it
bit-identically after an interruption. A launcher may turn them off (``repro.base.runctx``: torchrun)."""
from __future__ import annotations

import functools
import hashlib
import json
import shutil
from pathlib import Path

import torch
from fastai.callback.core import Callback

from ..base import runctx
from ..base.io import CKPT_ROOT
from ..config import Params, to_dict
from .callbacks import EpochCheckpoint


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


class NoCheckpoint(Callback):
    """Stands in for ``EpochCheckpoint`` where checkpoints are off (``runctx.checkpoints``; ``drop_checkpoint``
    removes nothing)."""

    directory = Path("/nonexistent/repro-no-checkpoint")


def epoch_checkpoint(stage: str, run: str, p: Params, carry_dir: Path, inputs=(), extra: str = ""):
    """The ``EpochCheckpoint`` callback of one run: ``.cache/repro/ckpt/<stage>/<run-hash>/last.pt``."""
    if not runctx.current().checkpoints:
        return NoCheckpoint()
    key = checkpoint_key(stage, run, p, inputs, extra)
    return EpochCheckpoint(CKPT_ROOT / stage / key[:20], key, carry_dir=carry_dir)


def drop_checkpoint(cb) -> None:
    """The run's outputs are in place: its checkpoint is no longer needed."""
    if cb is not None:
        shutil.rmtree(cb.directory, ignore_errors=True)
