"""Stage `transfer@<level>` (and `transfer_dense`): fine-tune every run of a sparsity level.

Regimes: ``standard`` (whole-model fine-tuning, SA), ``adversarial`` (PGD-10
fine-tuning), ``linear`` (frozen backbone, new classifier), ``mask`` (LMP:
learn the mask over frozen pretrained weights). Data fractions take the
stratified sample (default) or the official "first N". Each run writes
``runs/transfer/<level>/<kind>-<method>/<task>/<regime>-f<frac>-seed<s>/``
with ``model.pt``, ``mask.pt`` (the ticket used), ``spec.json`` and ``history.csv`` (per-epoch log).
"""
from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

from fastai.callback.core import Callback

from .. import runtime
from ..attacks import attack_from_config
from ..config import Params
from ..data import make_dataloaders
from ..io import save_torch
from ..plan import DENSE, RUNS, RunSpec, level_name, runs_for_level, ticket_path
from ..tickets.mask import Mask
from ..training import LearnableMask, train
from .common import (atomic_dir, config_hash, device, downstream_model, drop_checkpoint, epoch_checkpoint, level_main,
                     load_task, log, n_workers, parallel_map, pretrained_path, task_path, tensor_digest, write_json)


class WeightSnapshots(Callback):
    """Per-epoch copies of the weights (training trajectories, Double-Win Fig. 6)."""

    order = 90

    def __init__(self):
        self.snaps: list[dict] = []

    def before_fit(self):
        self.snaps = [self._copy()]

    def after_epoch(self):
        self.snaps.append(self._copy())

    def _copy(self):
        return {k: v.detach().cpu().clone() for k, v in self.learn.model.named_parameters()}

    def ckpt_state(self):  # EpochCheckpoint: the snapshots so far
        return self.snaps

    def ckpt_load(self, state):
        self.snaps = list(state)


def wants_trajectory(p: Params, spec: RunSpec, sparsity: float) -> bool:
    lv = p.evaluation.trajectory_level
    return (spec.regime == "adversarial" and spec.seed == p.transfer.seeds[0]
            and spec.task == p.data.downstream[0] and abs(sparsity - lv) < 1e-6)


def run_one(p: Params, spec: RunSpec, sparsity: float, tasks: dict, mask: Mask | None = None,
            out_final: Path | None = None, stage: str | None = None) -> Path:
    """Fine-tune one run; the ticket comes from the tickets stage unless ``mask`` is given.

    Runs of more than one epoch keep a per-epoch checkpoint under ``.cache/repro/ckpt/<stage>/``
    (deleted once the run folder is in place): a killed stage resumes them bit-identically."""
    out_final = out_final or RUNS / "transfer" / level_name(sparsity) / spec.name
    if spec.task not in tasks:
        tasks[spec.task] = load_task(spec.task)
    task = tasks[spec.task]
    dev = device(p)
    runtime.seed_everything(spec.seed)
    model = downstream_model(p, spec.kind, task)
    if mask is None and spec.method not in (DENSE, "lmp"):
        mask = Mask.load(ticket_path(sparsity, spec.kind, spec.method,
                                     spec.task if spec.method == "a_imp_ds" else None))
    regime_cfg = {"standard": p.transfer.standard, "adversarial": p.transfer.adversarial,
                  "linear": p.transfer.linear, "mask": p.tickets.lmp.train}[spec.regime]
    dls = make_dataloaders(task, bs=regime_cfg.batch_size, size=p.data.image_size, fraction=spec.fraction,
                           how=p.data.fraction_how, seed=spec.seed, device=dev, num_workers=p.data.num_workers,
                           recipe=p.data.recipe)
    kwargs: dict = {"mask": mask}
    extra = []
    if spec.regime == "adversarial":
        kwargs.update(attack=attack_from_config("pgd", **p.transfer.attack.kwargs()),
                      attack_bn_mode=p.transfer.bn_mode)
    elif spec.regime == "linear":
        kwargs["linear_eval"] = True
    elif spec.regime == "mask":
        lm = LearnableMask(density=1 - sparsity, train_head=p.tickets.lmp.train_head, seed=spec.seed)
        extra.append(lm)
        kwargs["linear_eval"] = True  # weights and BN statistics frozen; scores (+ head) train
    snaps = WeightSnapshots() if wants_trajectory(p, spec, sparsity) else None
    if snaps is not None:
        extra.append(snaps)
    with atomic_dir(out_final) as out:
        ckpt = epoch_checkpoint(stage or f"transfer@{level_name(sparsity)}", spec.name, p, carry_dir=out,
                                inputs=[task_path(spec.task), pretrained_path(spec.kind)],
                                extra=f"{sparsity}|{out_final}|"
                                + ("" if mask is None else tensor_digest(dict(mask.items()))))
        learn = train(dls, model, regime_cfg.config(), csv_log=out / "history.csv", progress=False,
                      extra_cbs=[*extra, ckpt], **kwargs)
        model = learn.model.cpu()
        if spec.regime == "mask":
            mask = lm.mask
            mask.apply(model)  # the LMP ticket is the frozen pretrained weights times the learned mask
        save_torch(model.state_dict(), out / "model.pt")
        if mask is not None:
            mask.save(out / "mask.pt", report=False)
        if snaps is not None:
            save_torch(snaps.snaps, out / "trajectory.pt")
        write_json(out / "spec.json", {
            "kind": spec.kind, "method": spec.method, "task": spec.task, "regime": spec.regime,
            "fraction": spec.fraction, "seed": spec.seed, "level": sparsity,
            "measured_sparsity": 0.0 if mask is None else mask.sparsity,
            "n_train": len(dls.train_ds), "config": config_hash([regime_cfg, p.transfer.attack, p.model])})
    drop_checkpoint(ckpt)
    return out_final


_TASKS: dict = {}  # per-process cache of loaded tasks


def _run(p: Params, sparsity: float, spec: RunSpec) -> str:
    run_one(p, spec, sparsity, _TASKS)
    return spec.name


def body_for(sparsity: float):
    def body(p: Params) -> None:
        runs = runs_for_level(p, sparsity)
        stage = f"transfer@{level_name(sparsity)}"
        (RUNS / "transfer" / level_name(sparsity)).mkdir(parents=True, exist_ok=True)
        log(stage, f"{len(runs)} runs")
        work = partial(_run, p, sparsity)
        for i, name in enumerate(parallel_map(work, runs, n_workers(p)), 1):
            log(stage, f"[{i}/{len(runs)}] {name}")
    return body


def main(argv=None) -> int:
    return level_main("transfer", body_for, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
