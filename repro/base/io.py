"""Atomic file output and safe checkpoint loading.

Every output of the package is written to a temporary file in the target's
folder and renamed into place, so a killed process never leaves a file that
looks complete.
"""
from __future__ import annotations

import base64
import contextlib
import glob
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch

from . import runctx
from .errors import CheckpointError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through a file object: the zip archive's inner folder is then always
    ``archive/`` (given a path, torch names it after the temporary file), so the same tensors
    give the same bytes (and the same DVC hash) on every run."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(obj, f)


def save_json(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def load_torch(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """Load a tensor file with ``weights_only=True``; any failure is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, bad pickle, foreign objects
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be loaded as a weights-only tensor file: {first}"
        ) from None


# ---------------------------------------------------------------------- run folders
@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Write a run into a temporary sibling folder; rename it onto ``path`` when complete. Where a launcher
    set ``runctx.scratch`` (a non-main rank of a data-parallel stage), into a private folder there, deleted."""
    scratch = runctx.current().scratch
    if scratch is not None:
        tmp = Path(tempfile.mkdtemp(prefix=f"{Path(path).name}.", dir=scratch))
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
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


def read_json(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} is missing; run the stage that makes it first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{str(path)!r} is not valid JSON: {e}") from None


def pack_bits(ok) -> dict:
    """Per-item booleans (e.g. which test images a run got right) as JSON: {"n": N, "bits": base64 of
    numpy.packbits} (N/8 bytes: 300 items are 52 characters). :func:`unpack_bits` is its inverse."""
    import numpy as np

    ok = np.asarray(ok.cpu() if isinstance(ok, torch.Tensor) else ok, dtype=bool).reshape(-1)
    return {"n": int(ok.size), "bits": base64.b64encode(np.packbits(ok).tobytes()).decode("ascii")}


def unpack_bits(rec: dict):
    """{"n": N, "bits": ...} (:func:`pack_bits`) -> a boolean numpy array of the N items."""
    import numpy as np

    raw = np.frombuffer(base64.b64decode(rec["bits"]), dtype=np.uint8)
    return np.unpackbits(raw, count=int(rec["n"])).astype(bool)


# ------------------------------------------------------------- per-epoch checkpoints
#: per-epoch checkpoints of unfinished runs, outside every DVC output (gitignored, dvcignored)
CKPT_ROOT = Path(".cache") / "repro" / "ckpt"
