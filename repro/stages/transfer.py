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

import dataclasses
import sys
from functools import partial
from pathlib import Path

import numpy as np

from fastai.callback.core import Callback

from ..base import runtime
from ..attacks import attack_from_config
from ..config import Params
from ..config.params import SELECT_REGIMES
from ..data import ArrayTask, DataError, check_held_out, make_dataloaders, validation_split
from ..base.io import save_torch
from ..plan import DENSE, RUNS, RunSpec, level_name, runs_for_level, ticket_path
from ..tickets.mask import Mask
from ..training import HeldOutValidation, LearnableMask, train
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


def held_out(y: np.ndarray, how: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, held-out validation indices) of a training split with labels ``y``.

    ``last``: the official code's last ``n`` images. ``stratified``: ``n`` images in the classes'
    proportions (largest remainders), drawn with a fixed seed, so every run and seed of a task holds
    out the same images. Both index arrays are sorted and disjoint, and together cover the split.
    """
    y = np.asarray(y)
    total = int(y.shape[0])
    check_held_out(n, total)
    if how == "last":
        return validation_split(total, n)
    if how != "stratified":
        raise DataError(f"transfer.validation.how {how!r} is not allowed; allowed: last, stratified")
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * n / total
    take = np.floor(quota).astype(np.int64)
    take[np.argsort(-(quota - take), kind="stable")[: n - int(take.sum())]] += 1
    rng = np.random.default_rng(np.random.SeedSequence([0x5EA1, n]))
    val = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take)]))
    return np.setdiff1d(np.arange(total, dtype=np.int64), val), val.astype(np.int64)


def with_held_out(task: ArrayTask, how: str, n: int) -> ArrayTask:
    """``task`` with its held-out images moved to the end of the training split (the rest keep their
    file order, so the official "first N" fractions still take the first images): ``make_dataloaders(...,
    val_from_train=n)`` then trains on the rest and validates on them. The test split is the same object."""
    train_idx, val_idx = held_out(task.y_train, how, n)
    if how == "last":
        return task
    if task.streamed:
        raise DataError(f"task {task.name!r} is streamed from files; transfer.validation.how 'stratified' needs "
                        "an in-memory task (use 'last')")
    order = np.concatenate([train_idx, val_idx])
    return dataclasses.replace(task, x_train=task.x_train[order], y_train=task.y_train[order], stats=task.stats)


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
    # the experiment's named recipe (transfer.recipes, e.g. RT's fine-tuning), else the task's own
    # (transfer.per_task, e.g. DW's SVHN adversarial recipe), else the regime's
    regime_cfg = (p.tickets.lmp.train if spec.regime == "mask"
                  else p.transfer.recipe(spec.regime, spec.task, spec.recipe))
    v = p.transfer.validation
    n_val = v.n if v.how != "none" and spec.regime in SELECT_REGIMES else 0
    if n_val:
        key = (spec.task, v.how, n_val)
        if key not in tasks:
            tasks[key] = with_held_out(task, v.how, n_val)
        task = tasks[key]
    dls = make_dataloaders(task, bs=regime_cfg.batch_size, size=p.data.image_size, fraction=spec.fraction,
                           how=p.data.fraction_how, seed=spec.seed, device=dev, num_workers=p.data.num_workers,
                           recipe=p.data.recipe, val_from_train=n_val)
    kwargs: dict = {"mask": mask}
    extra = []
    val_cb = None
    if n_val:
        a = p.evaluation.attack
        val_cb = HeldOutValidation(dict(eps=a.eps, alpha=a.alpha, steps=v.steps, random_start=a.random_start),
                                   n_robust=v.robust_images, seed=spec.seed)
        extra.append(val_cb)
    if spec.regime == "adversarial":
        kwargs.update(attack=attack_from_config("pgd", **p.transfer.attack.kwargs()),
                      attack_bn_mode=p.transfer.bn_mode)
    elif spec.regime == "linear":
        kwargs.update(linear_eval=True, linear_bn=p.transfer.linear_bn)
    elif spec.regime == "mask":
        # weights and BN affine parameters frozen; scores (+ head) train; BN statistics per tickets.lmp.bn
        lm = LearnableMask(density=1 - sparsity, train_head=p.tickets.lmp.train_head, seed=spec.seed,
                           bn=p.tickets.lmp.bn)
        extra.append(lm)
    snaps = WeightSnapshots() if wants_trajectory(p, spec, sparsity) else None
    if snaps is not None:
        extra.append(snaps)
    with atomic_dir(out_final) as out:
        ckpt = epoch_checkpoint(stage or f"transfer@{level_name(sparsity)}", spec.name, p, carry_dir=out,
                                inputs=[task_path(spec.task), pretrained_path(spec.kind)],
                                extra=f"{sparsity}|{out_final}|"
                                + ("" if mask is None else tensor_digest(dict(mask.items()))))
        learn = train(dls, model, regime_cfg, csv_log=out / "history.csv", progress=False,
                      extra_cbs=[*extra, ckpt], compile=p.runtime.compile, **kwargs)
        model = learn.model.cpu()
        if spec.regime == "mask":
            mask = lm.mask
            mask.apply(model)  # the LMP ticket is the frozen pretrained weights times the learned mask
        save_torch(model.state_dict(), out / "model.pt")
        if mask is not None:
            mask.save(out / "mask.pt", report=False)
        if snaps is not None:
            save_torch(snaps.snaps, out / "trajectory.pt")
        if val_cb is not None:
            for name, best in val_cb.best.items():
                save_torch(best["state"], out / f"{name}.pt")
            write_json(out / "validation.json", {
                "how": v.how, "n": n_val, "robust_images": v.robust_images, "steps": v.steps,
                "epochs": val_cb.history, **{f"{k}_epoch": b["epoch"] for k, b in val_cb.best.items()}})
        write_json(out / "spec.json", {
            "kind": spec.kind, "method": spec.method, "task": spec.task, "regime": spec.regime,
            **({"recipe": spec.recipe} if spec.recipe else {}),
            "fraction": spec.fraction, "seed": spec.seed, "level": sparsity,
            "measured_sparsity": 0.0 if mask is None else mask.sparsity,
            "n_train": len(dls.train_ds), "config": config_hash([regime_cfg, p.transfer.attack, p.model, *([v, p.evaluation.attack] if n_val else [])]),
            "checkpoints": ["last", *(sorted(val_cb.best) if val_cb is not None else [])]})
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
