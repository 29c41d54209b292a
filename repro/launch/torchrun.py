"""Run one training stage data-parallel under ``torchrun`` (the training side: ``repro.training.ddp``)::

    torchrun --nproc_per_node 8 -m repro.launch.torchrun pretrain pgd_adversarial
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        -m repro.launch.torchrun reference

Every rank runs the stage (one run at a time: ``workers`` is 1); rank 0 writes the outputs, the other
ranks write into a scratch folder that is deleted. Supported stages: those whose outputs are all written
through ``atomic_dir`` (``STAGES``). Per-epoch checkpoints (resume after an interruption) are off under
torchrun for now. What changes about the stage is set through ``repro.base.runctx``, never by patching it.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..base import cpus, runctx
from ..training import ddp

STAGES = ("pretrain", "reference", "imp", "transfer")


def main(argv=None) -> int:
    import argparse
    import importlib

    import torch.distributed as dist

    ap = argparse.ArgumentParser(prog="torchrun [...] -m repro.launch.torchrun",
                                 description="Run one training stage data-parallel (see the module doc).")
    ap.add_argument("stage", choices=STAGES)
    ap.add_argument("args", nargs=argparse.REMAINDER, help="the stage's own arguments (e.g. the pretraining kind)")
    a = ap.parse_args(argv)
    if not ddp.launched():
        print("repro.launch.torchrun: not started by torchrun with more than one process; training in this process",
              file=sys.stderr, flush=True)
    with ddp.process_group():
        # Threads per process: the CPUs this job may use (affinity, cgroup quota) shared by the
        # processes of this node.
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        os.environ.setdefault("REPRO_THREADS", str(max(1, cpus.budget()[0] // per_node)))
        # Per-epoch checkpoints (resume after an interruption) are single-process only for now: every
        # rank would write the same file, and a resume must happen on all ranks or none.
        scratch = None if ddp.is_main() else Path(tempfile.mkdtemp(prefix=f"repro-rank{ddp.rank()}-"))
        try:
            with runctx.configured(workers=1, checkpoints=False, scratch=scratch, quiet=scratch is not None):
                rc = importlib.import_module(f"repro.stages.{a.stage}").main(a.args)
            if ddp.active():  # every rank reports; rank 0 exits with the worst
                rcs = [None] * ddp.world_size()
                dist.all_gather_object(rcs, rc)
                rc = max(int(r or 0) for r in rcs)
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
