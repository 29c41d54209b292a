"""Stage `tickets@<level>`: every mask a sparsity level needs, as ``runs/tickets/<level>/<kind>-<method>/mask.pt``.

* ``omp``, ``random``, ``omp_row|kernel|channel``: drawn from the pretrained weights;
* ``imp``, ``a_imp``, ``a_imp_ds``: the IMP round at this sparsity (1 - 0.8^k) from
  the `imp` stage; a level off that grid continues IMP from the nearest lower
  round with one partial round (retrain, prune to exactly the level, rewind).
LMP masks are task-specific and learned in the transfer stage.
"""
from __future__ import annotations

import shutil
import sys

from ..config import Params
from ..plan import ticket_path, tickets_for_level, imp_dir, imp_round_of, level_name, RUNS
from ..tickets import PruneContext, draw_ticket
from ..tickets.imp import continue_imp
from ..tickets.mask import Mask
from .common import level_main, log, pretrained_source_model, ticket_base

ONE_SHOT = {"omp": ("omp", "unstructured"), "random": ("random", "unstructured"),
            "omp_row": ("omp", "row"), "omp_kernel": ("omp", "kernel"), "omp_channel": ("omp", "channel")}
IMP_RUN = {"imp": "standard", "a_imp": "adversarial", "a_imp_ds": "adversarial"}


def imp_ticket(p: Params, kind: str, method: str, task_name: str | None, sparsity: float) -> Mask:
    run = imp_dir(kind, IMP_RUN[method], task_name)
    ip = p.tickets.imp
    k = imp_round_of(sparsity, ip.rate)
    if k is not None and k <= ip.max_rounds:
        return Mask.load(run / f"level_{k}" / "mask.pt")
    # off the 1-0.8^k grid: continue from the nearest lower round with one partial round
    lower = [j for j in range(1, ip.max_rounds + 1) if 1 - (1 - ip.rate) ** j < sparsity]
    from .imp import imp_retrainer  # imports the training stack; only needed off the grid

    task, model = ticket_base(p, kind, task_name)
    start = Mask.load(run / f"level_{lower[-1]}" / "mask.pt") if lower else None
    ctx = PruneContext(seed=p.seed, rate=ip.rate,
                       retrain=imp_retrainer(p, task, IMP_RUN[method] == "adversarial", p.seed + 1000))
    return continue_imp(model, start, sparsity, ctx)


def draw(p: Params, kind: str, method: str, task_name: str | None, sparsity: float) -> Mask:
    if method in ONE_SHOT:
        name, granularity = ONE_SHOT[method]
        _, model = pretrained_source_model(p, kind)
        return draw_ticket(name, model, sparsity, PruneContext(seed=p.seed, granularity=granularity))
    if method in IMP_RUN:
        return imp_ticket(p, kind, method, task_name, sparsity)
    raise ValueError(f"method {method!r} has no ticket stage; allowed: {', '.join([*ONE_SHOT, *IMP_RUN])}")


def body_for(sparsity: float):
    def body(p: Params) -> None:
        out = RUNS / "tickets" / level_name(sparsity)
        if out.exists():
            shutil.rmtree(out)
        for kind, method, task in tickets_for_level(p, sparsity):
            mask = draw(p, kind, method, task, sparsity)
            mask.save(ticket_path(sparsity, kind, method, task))
            log(f"tickets@{sparsity}", f"{kind}-{method}{'-' + task if task else ''}: sparsity {mask.sparsity:.4f}")
        out.mkdir(parents=True, exist_ok=True)
    return body


def main(argv=None) -> int:
    return level_main("tickets", body_for, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
