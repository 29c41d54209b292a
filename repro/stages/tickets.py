"""Stage `tickets@<level>`: every mask a sparsity level needs, as ``runs/tickets/<level>/<kind>-<method>/mask.pt``.

* ``omp``, ``random``, ``omp_row|kernel|channel``: drawn from the pretrained weights;
* ``imp``, ``a_imp``, ``imp_ds``, ``a_imp_ds``: the IMP round at this sparsity (1 - 0.8^k) from
  the `imp` stage; a level off that grid continues IMP from the nearest lower
  round with one partial round (retrain, prune to exactly the level, rewind).
LMP masks are task-specific and learned in the transfer stage. RT's tickets of ``pgd_adversarial`` come
from the model at the ε ``select_eps`` chose for their task (``<kind>-eps<e>-<method>/``).
"""
from __future__ import annotations

import shutil
import sys

from ..config import Params
from ..pipeline.tickets import draw
from ..plan import RUNS, level_name, load_choice, model_name, ticket_path, tickets_for_level
from .common import level_main, log


def body_for(sparsity: float):
    def body(p: Params) -> None:
        out = RUNS / "tickets" / level_name(sparsity)
        if out.exists():
            shutil.rmtree(out)
        for kind, method, task, source in tickets_for_level(p, sparsity, load_choice(p)):
            mask = draw(p, kind, method, task, sparsity, source)
            mask.save(ticket_path(sparsity, kind, method, task, source))
            log(f"tickets@{sparsity}", f"{model_name(kind, source)}-{method}{'-' + task if task else ''}: "
                                       f"sparsity {mask.sparsity:.4f}")
        out.mkdir(parents=True, exist_ok=True)
    return body


def main(argv=None) -> int:
    return level_main("tickets", body_for, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
