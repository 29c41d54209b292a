"""Stage `imp`: every IMP run the experiments need (Double-Win Sec. 3; Robust Tickets A-IMP).

* ``<kind>-standard-us``: IMP with standard retraining on the source task (m^ST);
* ``<kind>-adversarial-us``: A-IMP, PGD-3 retraining on the source task (m^AT, US);
* ``<kind>-adversarial-ds-<task>``: A-IMP on a downstream task (DS).

Each round k is saved as ``runs/imp/<run>/level_<k>/mask.pt`` with its
``sparsity_report.json``; the rounds run up to ``tickets.imp.max_rounds``
(sparsity 1 - 0.8^max_rounds), so adding a sweep level never re-runs IMP.
On the source task a published checkpoint (``pretrain.published``) keeps its publisher's input
normalization (ImageNet mean/std, what it was trained with), not statistics estimated here.
"""
from __future__ import annotations

import sys
from functools import partial

from ..attacks import attack_from_config
from ..config import Params
from ..data import make_dataloaders
from ..models import set_normalization
from ..plan import RUNS, imp_dir, imp_runs
from ..tickets import PruneContext, run_imp
from ..tickets.mask import Mask
from ..training import train
from .common import atomic_dir, device, log, n_workers, parallel_map, run_stage, ticket_base, write_json


def imp_retrainer(p: Params, task, adversarial: bool, seed: int):
    """The ``retrain(model, mask)`` of IMP: fastai training with the mask enforced."""
    ip = p.tickets.imp
    dev = device(p)
    attack = attack_from_config("pgd", **ip.attack.kwargs()) if adversarial else None
    state = {"round": 0}

    def retrain(model, mask: Mask) -> None:
        state["round"] += 1
        dls = make_dataloaders(task, bs=ip.retrain.batch_size, size=p.data.image_size, seed=seed + state["round"],
                               device=dev, num_workers=p.data.num_workers, recipe=p.data.recipe)
        train(dls, model, ip.retrain, mask=mask, attack=attack, attack_bn_mode=p.transfer.bn_mode,
              progress=False, compile=p.runtime.compile)
        model.cpu()

    return retrain


def source_normalization(p: Params, kind: str, task) -> tuple[tuple, tuple]:
    """Input (mean, std) of the source network of ``kind``: a published checkpoint's publisher's, else the
    source task's (the statistics in-house pretraining used)."""
    name = p.pretrain.published.get(kind)
    if name is None:
        return task.mean, task.std
    from ..weights import WEIGHTS

    entry = WEIGHTS.get(name)
    return entry.mean, entry.std


def run_one(p: Params, kind: str, retrain: str, task_name: str | None) -> None:
    ip = p.tickets.imp
    stage = f"imp {kind}-{retrain}" + (f"-ds-{task_name}" if task_name else "-us")
    task, model = ticket_base(p, kind, task_name)
    if task_name is None:  # IMP / A-IMP on the source task
        set_normalization(model, *source_normalization(p, kind, task))
    target = 1 - (1 - ip.rate) ** ip.max_rounds
    final = imp_dir(kind, retrain, task_name)
    with atomic_dir(final) as out:
        def on_round(k: int, mask: Mask) -> None:
            mask.save(out / f"level_{k}" / "mask.pt")
            log(stage, f"round {k}: sparsity {mask.sparsity:.4f}")

        ctx = PruneContext(seed=p.seed, rate=ip.rate, on_round=on_round,
                           retrain=imp_retrainer(p, task, retrain == "adversarial", p.seed))
        masks = run_imp(model, target, ctx)
        write_json(out / "levels.json", {str(k): m.sparsity for k, m in enumerate(masks, start=1)})


def body(p: Params) -> None:
    todo = imp_runs(p)
    if not todo:
        (RUNS / "imp").mkdir(parents=True, exist_ok=True)
    for _ in parallel_map(partial(_run, p), todo, n_workers(p)):
        pass


def _run(p: Params, item: tuple) -> None:
    run_one(p, *item)


def main(argv=None) -> int:
    return run_stage("imp", body)


if __name__ == "__main__":
    sys.exit(main())
