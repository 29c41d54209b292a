"""Stage `segment`: segmentation transfer of tickets (Robust Tickets Fig. 7, Double-Win Fig. A10's VOC panel).

For every ``segment.pairs`` entry (pretraining kind, ticket method) and every level of
``sweep.sparsities`` at which an experiment draws that ticket (``segment.levels`` restricts them) the ticket ``runs/tickets/<level>/<kind>-<method>/mask.pt`` is put, as is, on
the pretrained backbone of ``kind`` inside a segmentation head (``repro.segmentation``), and fine-tuned
on ``segment.task`` (``runs/data/<task>.npz``, written by the `data` stage) with the mask enforced by
``MaskEnforcer``; each kind's dense backbone runs too. Each run writes
``runs/segment/<level>/<kind>-<method>/metrics.json`` (mIoU, pixel accuracy, the confusion matrix,
the ticket's sparsity and a check that every pruned weight is still exactly zero);
``metrics/segment.json`` lists them all for the figures. ``segment.pairs: []`` turns the stage off: no run, an
empty ``runs/segment`` and ``"runs": []`` (the figures then draw no segmentation panel, the claims have no rows).
"""
from __future__ import annotations

import sys
from functools import partial

from ..base.cpus import parallel_map
from ..base.io import save_json
from ..config import Params
from ..pipeline.segment import METRICS, OUT, check_inputs, run_one
from ..plan import seg_runs
from .common import log, n_workers, run_stage


def body(p: Params) -> None:
    items = seg_runs(p)
    check_inputs(p, items)
    if not items:  # segment.pairs: [] turns segmentation off; the stage's output folder exists, empty
        OUT.mkdir(parents=True, exist_ok=True)
        log("segment", "no segmentation run (segment.pairs is empty)")
    rows = list(parallel_map(partial(run_one, p), items, n_workers(p)))
    save_json({"task": p.segment.task, "head": p.segment.head, "runs": rows}, METRICS)
    for r in rows:
        log("segment", f"{r['kind']}-{r['method']} @ {r['sparsity']}: mIoU {r['miou']:.4f}, "
                       f"pixel acc {r['pixel_acc']:.4f}")


def main(argv=None) -> int:
    return run_stage("segment", body)


if __name__ == "__main__":
    sys.exit(main())
