"""Stage `select_eps`: Robust Tickets' per-task ε (RT Sec. III-A, "we follow [19] to pick the optimal perturbation
strength for each task"; the rule: ``repro.plan.eps``).

For every (task, regime) an RT experiment (``rt_*``) transfers ``pgd_adversarial`` in, the dense model of every
candidate ε (the kind's own, ``runs/pretrain/pgd_adversarial``, and ``runs/pretrain_eps/*``) is fine-tuned with RT's
recipe for that regime, holding out training images (``transfer.validation``'s, else ``pretrain.eps_select``'s);
the ε with the best held-out SA is chosen. Writes the runs under ``runs/select_eps/runs/``, one record per task
``runs/select_eps/<task>.json`` and the whole choice ``metrics/eps.json`` (DVC metrics), which every later stage
reads (``repro.plan.load_choice``). DW's experiments keep the kind's own ε. With ``pretrain.eps_grid`` empty the
choice is empty and nothing trains.
"""
from __future__ import annotations

import shutil
import sys
from functools import partial

from ..base.cpus import parallel_map
from ..base.io import save_json
from ..config import Params
from ..pipeline.select_eps import choose, train_selection_run
from ..plan import CHOICE_FILE, SELECT_DIR, selection_runs
from ..plan.cost import run_flops
from .common import log, n_workers, run_stage

_TASKS: dict = {}  # per-process cache of loaded tasks


def _run(p: Params, spec) -> str:
    return train_selection_run(p, spec, _TASKS)


def body(p: Params) -> None:
    runs = selection_runs(p)
    if SELECT_DIR.exists():
        shutil.rmtree(SELECT_DIR)
    (SELECT_DIR / "runs").mkdir(parents=True)
    log("select_eps", f"{len(runs)} selection runs")
    work = partial(_run, p)   # module-level, so each worker keeps its loaded tasks; the longest runs start first
    for i, name in enumerate(parallel_map(work, runs, n_workers(p), cost=run_flops(p, "transfer")), 1):
        log("select_eps", f"[{i}/{len(runs)}] {name}")
    doc = choose(p, runs)
    for task, by_regime in doc["tasks"].items():
        save_json({"task": task, **{k: doc[k] for k in ("kind", "own", "candidates", "rule")}, "regimes": by_regime},
                  SELECT_DIR / f"{task}.json")
        log("select_eps", f"{task}: " + ", ".join(
            f"{r} {v['eps']} (held-out SA " + ", ".join(f"{e} {a:.3f}" for e, a in v["held_out_sa"].items()) + ")"
            for r, v in by_regime.items()))
    save_json(doc, CHOICE_FILE)


def main(argv=None) -> int:
    return run_stage("select_eps", body)


if __name__ == "__main__":
    sys.exit(main())
