"""Stage `pretrain_eps`: the ε-grid models of Robust Tickets' per-task ε (``pretrain.eps_grid``, RT Sec. III-A).

One model of ``pgd_adversarial`` per radius of ``pretrain.eps_grid`` other than the kind's own (which
``pretrain@pgd_adversarial`` provides): trained here on the source task as ``pretrain@pgd_adversarial`` trains
(same recipe and steps, the step size scaled with the radius), or, when the kind comes published
(``pretrain.published``), the published checkpoint of the same kind and architecture at that radius, fetched and
checked like any other. Writes ``runs/pretrain_eps/pgd_adversarial-eps<e>/`` (``model.pt``, ``metrics.json``,
DVCLive logs); an empty folder when the grid is off. Stage ``select_eps`` then picks one ε per task.
"""
from __future__ import annotations

import sys
from functools import partial

from ..base.cpus import parallel_map
from ..config import Params
from ..config.constants import EPS_KIND, eps_label
from ..pipeline.pretrain import published, trained
from ..plan import grid_models, model_name, pretrained_dir
from ..plan.eps import PRETRAIN_EPS_DIR, published_at
from .common import log, n_workers, run_stage


def _one(p: Params, item: tuple[str, float]) -> str:
    source, eps = item
    name, final = model_name(EPS_KIND, source), pretrained_dir(EPS_KIND, source)
    pub = published_at(p, eps)
    if pub is not None:
        published(p, EPS_KIND, pub, final)
        return f"{name}: published {pub}"
    sa = trained(p, EPS_KIND, final, eps=eps, source=source)
    return f"{name}: source SA {sa:.3f}"


def body(p: Params) -> None:
    todo = grid_models(p)
    for source, eps in todo:  # before any work: every radius of a published kind has its checkpoint
        published_at(p, eps)
    PRETRAIN_EPS_DIR.mkdir(parents=True, exist_ok=True)
    log("pretrain_eps", f"{len(todo)} model(s): " + ", ".join(eps_label(e) for _, e in todo) if todo else
        "no eps-grid model (pretrain.eps_grid empty, or pgd_adversarial not pretrained)")
    for line in parallel_map(partial(_one, p), todo, n_workers(p)):
        log("pretrain_eps", line)


def main(argv=None) -> int:
    return run_stage("pretrain_eps", body)


if __name__ == "__main__":
    sys.exit(main())
