"""Drawing the tickets of a sparsity level (stage ``tickets@<level>``, ``study``) and IMP's retraining (stage
``imp``): one-shot masks from the pretrained weights, IMP rounds from the ``imp`` stage, and a partial IMP round
for a level off the 1 - 0.8^k grid."""
from __future__ import annotations

from ..config import Params
from ..plan import IMP_METHODS, imp_dir, imp_round_of
from ..tickets import PruneContext, draw_ticket
from ..tickets.imp import continue_imp
from ..tickets.mask import Mask
from .inputs import pretrained_source_model, ticket_base

ONE_SHOT = {"omp": ("omp", "unstructured"), "random": ("random", "unstructured"),
            "omp_row": ("omp", "row"), "omp_kernel": ("omp", "kernel"), "omp_channel": ("omp", "channel")}


IMP_RUN = {m: retrain for m, (retrain, _) in IMP_METHODS.items()}


def imp_ticket(p: Params, kind: str, method: str, task_name: str | None, sparsity: float, source: str = "") -> Mask:
    run = imp_dir(kind, IMP_RUN[method], task_name, source)
    ip = p.tickets.imp
    k = imp_round_of(sparsity, ip.rate)
    if k is not None and k <= ip.max_rounds:
        return Mask.load(run / f"level_{k}" / "mask.pt")
    # off the 1-0.8^k grid: continue from the nearest lower round with one partial round
    lower = [j for j in range(1, ip.max_rounds + 1) if 1 - (1 - ip.rate) ** j < sparsity]
    from .imp import (
        imp_retrainer,  # imports the training stack; only needed off the grid
    )

    task, model = ticket_base(p, kind, task_name, source)
    start = Mask.load(run / f"level_{lower[-1]}" / "mask.pt") if lower else None
    ctx = PruneContext(seed=p.seed, rate=ip.rate,
                       retrain=imp_retrainer(p, task, IMP_RUN[method] == "adversarial", p.seed + 1000,
                                             task_name is not None))
    return continue_imp(model, start, sparsity, ctx)


def draw(p: Params, kind: str, method: str, task_name: str | None, sparsity: float, source: str = "") -> Mask:
    """The ticket of (kind, method) at ``sparsity``, drawn from the kind's own model or its ε-grid model
    ``source``; ``task_name``: the downstream task of a DS method (``imp_ds``, ``a_imp_ds``)."""
    if method in ONE_SHOT:
        name, granularity = ONE_SHOT[method]
        _, model = pretrained_source_model(p, kind, source)
        return draw_ticket(name, model, sparsity, PruneContext(seed=p.seed, granularity=granularity))
    if method in IMP_RUN:
        return imp_ticket(p, kind, method, task_name, sparsity, source)
    raise ValueError(f"method {method!r} has no ticket stage; allowed: {', '.join([*ONE_SHOT, *IMP_RUN])}")


