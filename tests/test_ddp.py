"""Data-parallel training (repro/training/ddp.py) with torchrun on the CPU (gloo).

Two processes with half the global batch each must end with the weights of one process that
trains on the whole global batch: same shuffled order, each rank takes its half of every global
batch, DDP averages the two halves' gradients, and the last (partial, uneven) batch is reweighted.
The network has no BatchNorm: DDP on the CPU normalizes with per-rank statistics (SyncBatchNorm
needs CUDA), which would make the two runs differ by design, not by a bug.

Tolerance: the two runs add the same numbers in a different order (one mean over 16 samples vs
two means over 8 averaged by the all-reduce; convolution reductions with different batch shapes),
float32 round-off of ~1e-7 relative per step, compounded over 21 SGD steps with momentum. The
observed difference is ~1e-7 to 1e-6; rtol 1e-4 / atol 1e-5 leaves margin while a wrong split (one
process with the per-rank batch of 8) differs by ~1e-2, three orders of magnitude more.

This file is also the worker script: torchrun runs it with ``python tests/test_ddp.py OUT``.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
TORCHRUN = Path(sys.executable).with_name("torchrun")
GLOBAL_BS, N_TRAIN, EPOCHS = 16, 99, 3  # 6 full global batches + one of 3 (split 2 / 1)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def _dls(bs: int):
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from torch.utils.data import TensorDataset

    sys.path.insert(0, str(HERE))
    from conftest import toy_images

    xt, yt = toy_images(N_TRAIN, seed=0)
    xv, yv = toy_images(32, seed=1)
    random.seed(0)  # fastai draws the shuffle rng from `random` at construction
    train = DataLoader(TensorDataset(xt, yt), bs=bs, shuffle=True, drop_last=False, device="cpu")
    valid = DataLoader(TensorDataset(xv, yv), bs=32, device="cpu")
    return DataLoaders(train, valid, device="cpu")


def _mask(model):
    from repro.tickets.mask import Mask

    g = torch.Generator().manual_seed(1)
    return Mask({"2.weight": torch.rand(model[2].weight.shape, generator=g) > 0.5})


def _train(bs: int, seen: list | None = None) -> dict:
    """Train with repro.training.train; ``seen`` collects the size of every training batch."""
    from fastai.callback.core import Callback

    from repro.training import train
    from repro.config import TrainParams

    class Seen(Callback):
        def after_loss(self):
            if self.training and seen is not None:
                seen.append(len(self.yb[0]))

    cfg = TrainParams(epochs=EPOCHS, lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="cosine", batch_size=bs)
    model = _net()
    learn = train(_dls(bs), model, cfg, mask=_mask(model), progress=False, extra_cbs=[Seen()])
    return {k: v.detach().clone() for k, v in learn.model.state_dict().items()}


def _worker(out: str) -> None:
    from repro.training import ddp as distributed

    torch.set_num_threads(1)
    with distributed.process_group():
        assert distributed.active() and distributed.backend() == "gloo"
        seen: list[int] = []
        sd = _train(GLOBAL_BS, seen)  # the global batch: each of the 2 ranks takes 8
        torch.save({"rank": distributed.rank(), "world": distributed.world_size(), "state": sd, "seen": seen},
                   Path(out) / f"rank{distributed.rank()}.pt")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_batch_shard_splits_every_global_batch():
    """Rank slices of each global batch put together are that batch; uneven tail reweighted."""
    from repro.training.ddp import BatchShard

    single = [b[1].tolist() for b in _dls(GLOBAL_BS).train]
    per_rank = []
    for r in range(2):
        dl = _dls(GLOBAL_BS).train
        shard = BatchShard(dl, r, 2)
        assert len(dl) == 7
        per_rank.append([b[1].tolist() for b in dl])
        assert shard.weights == [1.0] * 6 + ([2 * 2 / 3] if r == 0 else [1 * 2 / 3])
        shard.restore()
        assert dl.bs == GLOBAL_BS and len(dl) == 7 and "get_idxs" not in dl.__dict__
    assert [a + b for a, b in zip(*per_rank)] == single
    with pytest.raises(ValueError, match="not divisible"):
        BatchShard(_dls(15).train, 0, 2)


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed")
def test_torchrun_two_cpu_processes_match_one_process(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env.pop("REPRO_DDP_BACKEND", None)
    t0 = time.time()
    r = subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node", "2", str(Path(__file__)), str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=300, cwd=HERE.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    t_ddp = time.time() - t0
    ranks = [torch.load(tmp_path / f"rank{i}.pt") for i in range(2)]
    assert [x["rank"] for x in ranks] == [0, 1] and all(x["world"] == 2 for x in ranks)
    assert "[ddp] 2 processes (gloo), global batch 16 = 2 x 8" in r.stdout
    # Each rank saw its half of every global batch (the tail of 3 split 2 / 1), not the whole batch.
    assert ranks[0]["seen"] == ([8] * 6 + [2]) * EPOCHS and ranks[1]["seen"] == ([8] * 6 + [1]) * EPOCHS
    ddp = ranks[0]["state"]
    assert list(ddp) == list(_net().state_dict())  # plain parameter names, no "module." prefix
    for k in ddp:  # the all-reduce leaves every rank with the same weights, bit for bit
        assert torch.equal(ddp[k], ranks[1]["state"][k]), k

    single = _train(GLOBAL_BS)
    init = _net().state_dict()
    diff = max((ddp[k] - single[k]).abs().max().item() for k in single)
    for k in single:
        assert not torch.allclose(single[k], init[k]), f"{k} did not train"
        torch.testing.assert_close(ddp[k], single[k], rtol=1e-4, atol=1e-5)
    assert (ddp["2.weight"] == 0).sum() == (~_mask(_net())["2.weight"]).sum()  # the ticket stayed pruned
    # Discriminating: the per-rank batch in one process is far outside the tolerance.
    half = _train(GLOBAL_BS // 2)
    assert max((half[k] - single[k]).abs().max().item() for k in single) > 100 * max(diff, 1e-6)
    print(f"torchrun 2 x gloo: {t_ddp:.1f} s; max |DDP - single| = {diff:.2e}")


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed")
def test_torchrun_runs_a_pipeline_stage(tmp_path):
    """`torchrun -m repro.launch.torchrun pretrain standard`: rank 0 writes the stage output, once."""
    from workspace import copy_project, env, run

    ws = copy_project(tmp_path / "ws")
    run(ws, sys.executable, "-m", "repro.tiers", "use", "smoke")
    run(ws, sys.executable, "-m", "repro.stages.data", environ=env(OMP_NUM_THREADS="1"))
    r = run(ws, TORCHRUN, "--standalone", "--nproc_per_node", "2", "-m", "repro.launch.torchrun", "pretrain", "standard",
            environ=env(OMP_NUM_THREADS="1"), timeout=300)
    out = ws / "runs" / "pretrain"
    assert sorted(p.name for p in out.iterdir()) == ["standard"], r.stdout  # no leftover temporary folders
    assert (out / "standard" / "model.pt").is_file() and (out / "standard" / "metrics.json").is_file()
    assert r.stdout.count("[pretrain@standard] done") == 1, r.stdout  # only rank 0 logs
    assert "[ddp] 2 processes (gloo)" in r.stdout, r.stdout
    from repro.base.io import load_torch

    sd = load_torch(out / "standard" / "model.pt")
    assert not any(k.startswith("module.") for k in sd)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    _worker(sys.argv[1])
