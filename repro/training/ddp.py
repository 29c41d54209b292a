"""One run on many GPUs (or CPU processes): data-parallel training under ``torchrun``.

Launched by ``torchrun``, every process joins one process group (NCCL when CUDA is present, gloo
on the CPU; ``REPRO_DDP_BACKEND`` overrides), and ``repro.training.train`` then trains each run
data-parallel with ``torch.nn.parallel.DistributedDataParallel``:

* the **global batch is the configured ``batch_size``**: rank ``r`` of ``N`` takes the ``r``-th
  contiguous slice of every global batch (``batch_size / N`` samples; the batch size must be
  divisible by ``N``). All ranks draw the same shuffled order (rank 0's is broadcast each epoch).
  A last partial batch is split as evenly as possible and each rank's loss is reweighted so the
  averaged gradient is the mean over the whole batch, as in one process; a last batch with fewer
  samples than ranks is dropped.
* only the training forward/backward goes through the DDP wrapper (gradients all-reduced during
  the backward); ``learn.model`` stays the plain network, so the attack of adversarial training,
  masks, checkpoints and state_dicts see the usual parameter names. Every rank validates on the
  whole validation set.
* BatchNorm: on CUDA the BatchNorm layers become ``SyncBatchNorm`` during the fit (statistics
  over the global batch, as in one process) and are switched back afterwards; SyncBatchNorm does
  not run on the CPU, so there each rank normalizes with its own slice's statistics (the usual
  DDP behaviour). Running statistics are broadcast from rank 0 before validation and at the end.
* augmentation streams are per rank, so with augmentation the run is a valid data-parallel run
  but not bit-identical to one process.

A whole training stage runs data-parallel through the launcher ``repro.launch.torchrun``.
"""
from __future__ import annotations

import contextlib
import os

import numpy as np
import torch
import torch.distributed as dist
from fastai.callback.core import Callback
from torch import nn


ENV_BACKEND = "REPRO_DDP_BACKEND"
ENV_SYNC_BN = "REPRO_SYNC_BN"  # "0" keeps per-rank BatchNorm statistics on CUDA too


# ----------------------------------------------------------------------- process group
def launched() -> bool:
    """True in a process started by torchrun with more than one process in all."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """A process group with more than one process is initialized."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def backend() -> str:
    """``REPRO_DDP_BACKEND``, else NCCL with CUDA, gloo without (chosen at run time)."""
    return os.environ.get(ENV_BACKEND) or ("nccl" if torch.cuda.is_available() else "gloo")


def init() -> bool:
    """Join the process group torchrun describes (``env://``); False, doing nothing, outside torchrun."""
    if not launched():
        return False
    if not dist.is_initialized():
        b = backend()
        if b == "nccl":
            torch.cuda.set_device(local_rank())  # "cuda" then means this rank's GPU
        dist.init_process_group(backend=b)
    return True


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def process_group():
    """``init()`` … ``shutdown()``; a no-op outside torchrun."""
    started = init()
    try:
        yield
    finally:
        if started:
            shutdown()


def broadcast_object(obj, src: int = 0):
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def sync_buffers(model: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (BatchNorm running statistics) to every rank."""
    if active():
        for b in model.buffers():
            dist.broadcast(b.data, src=src)


# ------------------------------------------------------------------------- the data
_MISSING = object()


class BatchShard:
    """Rank ``r``'s slice of every global batch of a fastai ``DataLoader``, applied in place.

    ``dl.bs`` becomes the per-rank batch, ``dl.n`` the rank's number of samples and
    ``dl.get_idxs`` the rank's indices; ``restore()`` undoes it. ``weights[i]`` is the loss
    factor of local batch ``i`` that makes the all-reduced (averaged) gradient equal the
    gradient of the mean loss over the global batch (1 for every full batch).
    """

    def __init__(self, dl, rank_: int, world: int):
        if not getattr(dl, "indexed", True):
            raise ValueError("data-parallel training needs an indexed dataset")
        gbs = dl.bs
        if gbs % world:
            raise ValueError(f"the global batch size {gbs} is not divisible by the {world} processes; "
                             "change batch_size or --nproc_per_node")
        self.dl, self.rank, self.world, self.gbs, self.bs = dl, rank_, world, gbs, gbs // world
        self.full_n = dl.n
        self.n_full, last = divmod(self.full_n, gbs)
        self.last = 0 if (dl.drop_last or last < world) else last
        self.last_share = len(np.array_split(np.arange(self.last), world)[rank_]) if self.last else 0
        self.weights = [1.0] * self.n_full + ([self.last_share * world / self.last] if self.last else [])
        self._saved = {k: dl.__dict__.get(k, _MISSING) for k in ("bs", "n", "get_idxs")}
        self._orig_get_idxs = dl.get_idxs
        dl.bs, dl.n = self.bs, self.n_full * self.bs + self.last_share
        dl.get_idxs = self.get_idxs

    def get_idxs(self) -> list:
        dl = self.dl
        local_n = dl.n
        dl.n = self.full_n
        try:
            idxs = list(self._orig_get_idxs())  # the global (shuffled) order, with the dl's own rng
        finally:
            dl.n = local_n
        idxs = broadcast_object(idxs)  # the same order on every rank, whatever their rng states
        g, b, r = self.gbs, self.bs, self.rank
        out = [i for k in range(self.n_full) for i in idxs[k * g + r * b: k * g + (r + 1) * b]]
        if self.last:
            tail = idxs[self.n_full * g: self.n_full * g + self.last]
            out += [tail[j] for j in np.array_split(np.arange(self.last), self.world)[r]]
        return out

    def restore(self) -> None:
        for k, v in self._saved.items():
            if v is _MISSING:
                self.dl.__dict__.pop(k, None)
            else:
                setattr(self.dl, k, v)


# ------------------------------------------------------------------------ BatchNorm
def convert_sync_bn(model: nn.Module) -> list:
    """Replace every BatchNorm by a SyncBatchNorm sharing its parameters and buffers; returns the undo list."""
    undo = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, nn.SyncBatchNorm):
                setattr(parent, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
                undo.append((parent, name, child))
    return undo


def revert_sync_bn(undo: list) -> None:
    for parent, name, child in reversed(undo):
        sync = getattr(parent, name)
        child.train(sync.training)
        setattr(parent, name, child)  # same Parameter and buffer tensors: the trained state is kept


# ------------------------------------------------------------------------- callback
class DistributedTrainer(Callback):
    """DDP for a fastai Learner: shards the training batches, all-reduces gradients (see module doc)."""

    order = 90  # before_batch after the callbacks that build the batch (attack, noise)

    def __init__(self, sync_bn: bool | None = None, find_unused_parameters: bool = False):
        self.sync_bn, self.find_unused = sync_bn, find_unused_parameters

    def before_fit(self):
        if not active():
            raise RuntimeError("DistributedTrainer needs an initialized process group (run under torchrun)")
        self.raw = self.learn.model
        dev = next(self.raw.parameters()).device
        sync = self.sync_bn if self.sync_bn is not None else (dev.type == "cuda"
                                                              and os.environ.get(ENV_SYNC_BN, "1") != "0")
        self.undo_bn = convert_sync_bn(self.raw) if sync else []
        from torch.nn.parallel import DistributedDataParallel

        self.ddp = DistributedDataParallel(self.raw, device_ids=[dev.index or 0] if dev.type == "cuda" else None,
                                           find_unused_parameters=self.find_unused)
        self.shard = BatchShard(self.learn.dls.train, rank(), world_size())
        if is_main():
            print(f"[ddp] {world_size()} processes ({dist.get_backend()}), global batch {self.shard.gbs} = "
                  f"{world_size()} x {self.shard.bs}{', SyncBatchNorm' if self.undo_bn else ''}", flush=True)
        else:
            self.learn.logger = lambda *a, **k: None

    def before_batch(self):
        if self.training:
            self.learn.model = self.ddp

    def after_loss(self):
        if self.training:
            self.learn.model = self.raw
            w = self.shard.weights[self.iter]
            if w != 1.0:
                self.learn.loss_grad = self.learn.loss_grad * w

    def after_batch(self):
        self.learn.model = self.raw

    def before_validate(self):
        sync_buffers(self.raw)

    def after_fit(self):
        self.learn.model = self.raw
        self.shard.restore()
        sync_buffers(self.raw)
        revert_sync_bn(self.undo_bn)
        del self.ddp
