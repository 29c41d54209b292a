"""Stage `imp`: every IMP run the experiments need (Double-Win Sec. 3; Robust Tickets A-IMP).

* ``<kind>-standard-us``: IMP with standard retraining on the source task (m^ST);
* ``<kind>-adversarial-us``: A-IMP, PGD-3 retraining on the source task (m^AT, US);
* ``<kind>-standard-ds-<task>``: IMP on a downstream task (DS, ``imp_ds``: RT Fig. 4's natural DS tickets);
* ``<kind>-adversarial-ds-<task>``: A-IMP on a downstream task (DS).

DS runs retrain with the downstream recipe ``tickets.imp.retrain_ds`` on the task's training images minus
``transfer.validation``'s held-out ones. RT's runs of ``pgd_adversarial`` start from the ε ``select_eps`` chose
for their task (``<kind>-eps<e>-...``, ``repro.plan.rt_source``).

Each round k is saved as ``runs/imp/<run>/level_<k>/mask.pt`` with its
``sparsity_report.json``; the rounds run up to ``tickets.imp.max_rounds``
(sparsity 1 - 0.8^max_rounds), so adding a sweep level never re-runs IMP.
On the source task a published checkpoint (``pretrain.published``) keeps its publisher's input
normalization (ImageNet mean/std, what it was trained with), not statistics estimated here.
"""
from __future__ import annotations

import sys
from functools import partial

from ..base.cpus import parallel_map
from ..config import Params
from ..pipeline.imp import run_one
from ..plan import RUNS, imp_runs, load_choice
from ..plan.cost import run_flops
from .common import n_workers, run_stage


def body(p: Params) -> None:
    todo = imp_runs(p, load_choice(p))
    if not todo:
        (RUNS / "imp").mkdir(parents=True, exist_ok=True)
    for _ in parallel_map(partial(_run, p), todo, n_workers(p), cost=run_flops(p, "imp")):
        pass


def _run(p: Params, item: tuple) -> None:
    run_one(p, *item)


def main(argv=None) -> int:
    return run_stage("imp", body)


if __name__ == "__main__":
    sys.exit(main())
