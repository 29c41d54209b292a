"""Per-epoch checkpoints of unfinished training runs (``CKPT_ROOT``, outside every DVC output): the
``EpochCheckpoint`` callback that resumes a killed run bit-identically, every random stream it saves, and the
identity of a run (stage, run, every param, the code, its inputs). A launcher may turn them off
(``repro.base.runctx``: torchrun)."""
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


CHECKPOINT_FORMAT = 1
CHECKPOINT_NAME = "last.pt"


def _aug_generators(loader) -> list:
    """Every albumentations transform (the Compose and each child) of a loader's dataset, in a fixed
    order: each holds its own numpy and python random streams."""
    out, todo = [], [getattr(getattr(loader, "dataset", None), "transform", None)]
    while todo:
        t = todo.pop(0)
        if t is None:
            continue
        if hasattr(t, "random_generator") and hasattr(t, "py_random"):
            out.append(t)
        todo.extend(getattr(t, "transforms", []) or [])
    return out


def rng_state(learn) -> dict:
    """Every random stream a fastai training loop draws from (CPU and CUDA)."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "loaders": [dl.rng.getstate() for dl in learn.dls.loaders],
        "augment": [[(t.random_generator.bit_generator.state, t.py_random.getstate()) for t in _aug_generators(dl)]
                    for dl in learn.dls.loaders],
    }
    return state


def set_rng_state(learn, state: dict) -> None:
    import random

    import numpy as np

    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for dl, s in zip(learn.dls.loaders, state["loaders"]):
        dl.rng.setstate(s)
    for dl, states in zip(learn.dls.loaders, state["augment"]):
        for t, (np_state, py_state) in zip(_aug_generators(dl), states):
            t.random_generator.bit_generator.state = np_state
            t.py_random.setstate(py_state)


def _do_fit_from_start_epoch(learn) -> None:
    """fastai's ``Learner._do_fit``, starting at ``learn.start_epoch``: the epochs a checkpoint already
    holds are not run at all. fastai's public path, ``fit(start_epoch=k)``, adds ``SkipToEpoch``, which
    cancels each skipped epoch in ``before_epoch``; fastai then still runs ``after_cancel_epoch`` and
    ``after_epoch`` for it, so the Recorder and CSVLogger would log the finished epochs again and the
    resumed run would not end byte-identical. Hence this one override of the loop."""
    from fastai.callback.core import CancelEpochException

    for epoch in range(getattr(learn, "start_epoch", 0), learn.n_epoch):
        learn.epoch = epoch
        learn._with_events(learn._do_epoch, "epoch", CancelEpochException)


class EpochCheckpoint(Callback):
    """Per-epoch checkpoints: a killed run resumes where it stopped and ends bit-identical to an
    uninterrupted one.

    After every epoch but the last, ``<directory>/last.pt`` is written atomically (weights-only
    tensor file) with: the model and optimizer state, the number of finished epochs, every RNG
    state (python, numpy, torch CPU/CUDA, each fastai DataLoader's shuffle RNG, the albumentations
    streams of the datasets), the Recorder's smoothed loss (the logged ``train_loss``), the state
    of any callback with ``ckpt_state()``/``ckpt_load(state)`` (e.g. weight snapshots), the mixed
    precision scaler, and a copy of every file the run has written so far under ``carry_dir``
    (per-epoch CSV and DVCLive logs). The LR schedule needs nothing: fastai derives its position
    from the epoch.

    Before fit, a checkpoint whose ``key`` matches (the stage passes a hash of the run's name,
    params and inputs) is loaded, its files restored under ``carry_dir``, and training continues
    with the next epoch; a checkpoint that cannot be read or belongs to another key is ignored
    (it is a cache; the run starts over). Deleting the folder once the run's outputs are written
    is the caller's job (``drop_checkpoint`` below).
    """

    order = 99  # after every callback that sets state up in before_fit or records in after_epoch

    def __init__(self, directory, key: str, carry_dir=None):
        from pathlib import Path

        self.directory, self.key = Path(directory), str(key)
        self.carry_dir = None if carry_dir is None else Path(carry_dir)
        self.resumed_from: int | None = None

    @property
    def path(self):
        return self.directory / CHECKPOINT_NAME

    def after_create(self):
        import types

        self.learn._do_fit = types.MethodType(_do_fit_from_start_epoch, self.learn)

    # -- saving -------------------------------------------------------------------------
    def after_epoch(self):
        if self.epoch + 1 >= self.n_epoch:  # the run is about to finish: nothing left to resume
            return
        from ..base.io import save_torch

        learn = self.learn
        rec = learn.recorder
        state = {
            "format": CHECKPOINT_FORMAT, "key": self.key, "epochs_done": self.epoch + 1,
            "model": learn.model.state_dict(),
            "opt": learn.opt.state_dict(),
            "rng": rng_state(learn),
            "recorder": {"count": rec.smooth_loss.count, "val": rec.smooth_loss.val,
                         "values": [[float(v) for v in row] for row in rec.values]},
            "callbacks": {cb.name: cb.ckpt_state() for cb in learn.cbs if hasattr(cb, "ckpt_state")},
            "scaler": learn.scaler.state_dict() if getattr(learn, "scaler", None) is not None else None,
            "live": self._live_state(),
            "files": self._snapshot_files(),
        }
        save_torch(state, self.path)

    def _snapshot_files(self) -> dict:
        if self.carry_dir is None or not self.carry_dir.is_dir():
            return {}
        return {str(f.relative_to(self.carry_dir)): f.read_bytes()
                for f in sorted(self.carry_dir.rglob("*")) if f.is_file()}

    def _live_cb(self):
        return next((cb for cb in self.learn.cbs if any(c.__name__ == "DVCLiveCallback" for c in type(cb).__mro__)),
                    None)

    def _live_state(self):
        cb = self._live_cb()
        return None if cb is None else {"step": cb.live.step, "summary": dict(cb.live.summary)}

    # -- loading ------------------------------------------------------------------------
    def before_fit(self):
        self.learn.start_epoch = 0
        self.resumed_from = None
        state = self._read()
        if state is None:
            return
        learn = self.learn
        learn.model.load_state_dict(state["model"])
        learn.opt.load_state_dict(state["opt"])
        rec = learn.recorder
        rec.smooth_loss.count, rec.smooth_loss.val = state["recorder"]["count"], state["recorder"]["val"]
        rec.values = [list(row) for row in state["recorder"]["values"]]
        for cb in learn.cbs:
            if hasattr(cb, "ckpt_load") and cb.name in state["callbacks"]:
                cb.ckpt_load(state["callbacks"][cb.name])
        if state["scaler"] is not None and getattr(learn, "scaler", None) is not None:
            learn.scaler.load_state_dict(state["scaler"])
        self._restore_files(state["files"], state["live"])
        set_rng_state(learn, state["rng"])
        learn.start_epoch = self.resumed_from = int(state["epochs_done"])
        print(f"resuming after epoch {self.resumed_from} of {self.n_epoch} from {str(self.path)!r}", flush=True)

    def _read(self):
        import sys

        from ..base.io import CheckpointError, load_torch

        if not self.path.is_file():
            return None
        try:
            state = load_torch(self.path)
            if not (isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT):
                raise CheckpointError(f"{str(self.path)!r} is not a run checkpoint of format {CHECKPOINT_FORMAT}")
        except CheckpointError as e:
            print(f"warning: ignoring the unreadable run checkpoint ({e}); the run starts over",
                  file=sys.stderr, flush=True)
            return None
        if state.get("key") != self.key or not 0 < int(state["epochs_done"]) < self.n_epoch:
            return None  # another configuration's checkpoint (hash collision or a changed epoch count)
        return state

    def _restore_files(self, files: dict, live: dict | None) -> None:
        csv_loggers = [cb for cb in self.learn.cbs
                       if type(cb).__name__ == "CSVLogger" and getattr(cb, "file", None) is not None]
        for cb in csv_loggers:  # it opened its file (header only) in before_fit: close, restore, append
            cb.file.close()
        if self.carry_dir is not None:
            for rel, data in files.items():
                f = self.carry_dir / rel
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_bytes(data)
        for cb in csv_loggers:
            cb.file = open(cb.file.name, "a")
        cb = self._live_cb()
        if cb is not None and live is not None:
            cb.live.step = live["step"]  # DVCLive's public step setter
            cb.live.summary = dict(live["summary"])


__all__ = ["AdversarialTraining", "GaussianNoise", "MaskEnforcer", "LearnableMask", "RaiseOnNaN",
           "NonFiniteLossError", "CancelFitException", "BN_MODES", "EpochCheckpoint"]




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
