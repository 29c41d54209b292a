"""Stage `tickets@<level>`: every mask a sparsity level needs, as ``runs/tickets/<level>/<kind>-<method>/mask.pt``.

* ``omp``, ``random``, ``omp_row|kernel|channel``: drawn from the pretrained weights;
* ``imp``, ``a_imp``, ``a_imp_ds``: the IMP round at this sparsity (1 - 0.8^k) from
  the `imp` stage; a level off that grid continues IMP from the nearest lower
  round with one partial round (retrain, prune to exactly the level, rewind).
LMP masks are task-specific and learned in the transfer stage.
"""
from __future__ import annotations

import argparse
import shutil
import sys

from ..config import Params
from ..plan import ticket_path, tickets_for_level, imp_dir, imp_round_of, level_name, RUNS
from ..tickets import PruneContext, draw_ticket
from ..tickets.imp import continue_imp
from ..tickets.mask import Mask
from .common import load_into, load_state, load_task, log, pretrained_path, run_stage, source_model, downstream_model
from .imp import imp_retrainer

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
    if task_name is None:
        task = load_task(p.data.source)
        model = source_model(p, task.num_classes, task.mean, task.std)
        load_into(model, load_state(pretrained_path(kind)), pretrained_path(kind))
    else:
        task = load_task(task_name)
        model = downstream_model(p, kind, task)
    start = Mask.load(run / f"level_{lower[-1]}" / "mask.pt") if lower else None
    ctx = PruneContext(seed=p.seed, rate=ip.rate,
                       retrain=imp_retrainer(p, task, IMP_RUN[method] == "adversarial", p.seed + 1000))
    return continue_imp(model, start, sparsity, ctx)


def draw(p: Params, kind: str, method: str, task_name: str | None, sparsity: float) -> Mask:
    if method in ONE_SHOT:
        name, granularity = ONE_SHOT[method]
        task = load_task(p.data.source)
        model = source_model(p, task.num_classes, task.mean, task.std)
        load_into(model, load_state(pretrained_path(kind)), pretrained_path(kind))
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


def parse_level(s: str) -> float:
    v = float(s)
    if not 0 <= v < 1:
        raise SystemExit(f"sparsity level {v} is outside [0, 1)")
    return v


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("level", type=parse_level)
    a = ap.parse_args(argv)
    return run_stage(f"tickets@{a.level}", body_for(a.level))


if __name__ == "__main__":
    sys.exit(main())
