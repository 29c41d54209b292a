"""Stage `transfer@<level>` (and `transfer_dense`): fine-tune every run of a sparsity level.

Regimes: ``standard`` (whole-model fine-tuning, SA), ``adversarial`` (PGD-10
fine-tuning), ``linear`` (frozen backbone, new classifier), ``mask`` (LMP:
learn the mask over frozen pretrained weights). Data fractions take the
stratified sample (default) or the official "first N". Each run writes
``runs/transfer/<level>/<kind>-<method>/<task>/<regime>-f<frac>-seed<s>/`` (``<regime>-<recipe>-f...``
for an experiment's named recipe, ``transfer.recipes``) with ``model.pt``, ``mask.pt`` (the ticket used), ``spec.json`` and ``history.csv`` (per-epoch log).

Checkpoint selection (``transfer.validation``, the official Double-Win code): the standard,
adversarial and linear runs hold out ``n`` training images (the last ``n``, or a stratified draw),
train on the rest, and after every epoch measure validation SA and RA on them
(``HeldOutValidation``); the best-SA and best-RA weights are written as ``best_sa.pt`` and
``best_ra.pt`` beside ``model.pt`` (the last epoch), the per-epoch values to ``validation.json``.
The test split is never seen here; ``evaluate@`` reports test metrics for every checkpoint.
"""
from __future__ import annotations

import sys
from functools import partial

from ..base.cpus import parallel_map
from ..config import Params
from ..pipeline.transfer import run_one
from ..plan import RUNS, RunSpec, level_name, load_choice, runs_for_level
from ..plan.cost import run_flops
from .common import level_main, log, n_workers

_TASKS: dict = {}  # per-process cache of loaded tasks


def _run(p: Params, sparsity: float, spec: RunSpec) -> str:
    run_one(p, spec, sparsity, _TASKS)
    return spec.name


def body_for(sparsity: float):
    def body(p: Params) -> None:
        runs = runs_for_level(p, sparsity, load_choice(p))  # RT's runs at the eps select_eps chose per task
        stage = f"transfer@{level_name(sparsity)}"
        (RUNS / "transfer" / level_name(sparsity)).mkdir(parents=True, exist_ok=True)
        log(stage, f"{len(runs)} runs")
        work = partial(_run, p, sparsity)
        for i, name in enumerate(parallel_map(work, runs, n_workers(p), cost=run_flops(p, "transfer")), 1):
            log(stage, f"[{i}/{len(runs)}] {name}")
    return body


def main(argv=None) -> int:
    return level_main("transfer", body_for, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
