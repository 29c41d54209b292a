"""One transfer run (stage ``transfer@<level>``, ``transfer_dense``, ``study``): fine-tune a ticket or a dense
network on a downstream task in one regime, and write its run folder (``model.pt``, ``mask.pt``, ``spec.json``,
``history.csv``; with checkpoint selection ``best_sa.pt``/``best_ra.pt`` and ``validation.json``; at the
trajectory level ``trajectory.pt``)."""
from __future__ import annotations

import shutil
from pathlib import Path

from fastai.callback.core import Callback

from ..attacks import attack_from_config
from ..base import runtime
from ..base.io import atomic_dir, save_json, save_torch
from ..config import Params
from ..config.constants import DS_METHODS, eps_label
from ..config.params import SELECT_REGIMES, ValidationParams
from ..config.typed import config_hash
from ..data import make_dataloaders
from ..data.splits import resolve_how, with_held_out
from ..plan import DENSE, RUNS, RunSpec, level_name, reusable_run, source_eps, ticket_path
from ..tickets.mask import Mask
from ..training import HeldOutValidation, LearnableMask, train
from ..training.resume import drop_checkpoint, epoch_checkpoint, tensor_digest
from .inputs import downstream_model, load_task, pretrained_path, task_path


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
            out_final: Path | None = None, stage: str | None = None,
            validation: ValidationParams | None = None) -> Path:
    """Fine-tune one run; the ticket comes from the tickets stage unless ``mask`` is given; ``validation``: the
    held-out images instead of ``transfer.validation``'s (the ε selection's, ``repro.plan.selection_validation``).

    Held-out images are never trained on: the standard, adversarial and linear runs select checkpoints on them,
    LMP (``mask``) runs validate on them (fastai's per-epoch validation, ``history.csv``) and keep their last mask.
    Runs of more than one epoch keep a per-epoch checkpoint under ``.cache/repro/ckpt/<stage>/``
    (deleted once the run folder is in place): a killed stage resumes them bit-identically."""
    out_final = out_final or RUNS / "transfer" / level_name(sparsity) / spec.name
    src = reusable_run(p, spec) if sparsity == 0 and validation is None else None
    if src is not None:  # this dense run already ran as an ε-selection run (same recipe, seed, held-out images)
        with atomic_dir(out_final) as out:
            shutil.copytree(src, out, dirs_exist_ok=True)
        return out_final
    if spec.task not in tasks:
        tasks[spec.task] = load_task(spec.task)
    task = tasks[spec.task]
    dev = runtime.device(p.device)
    runtime.seed_everything(spec.seed)
    model = downstream_model(p, spec.kind, task, spec.source)
    if mask is None and spec.method not in (DENSE, "lmp"):
        mask = Mask.load(ticket_path(sparsity, spec.kind, spec.method,
                                     spec.task if spec.method in DS_METHODS else None, spec.source))
    # the experiment's named recipe (transfer.recipes, e.g. RT's fine-tuning), else the task's own
    # (transfer.per_task, e.g. DW's SVHN adversarial recipe), else the regime's
    regime_cfg = (p.tickets.lmp.train if spec.regime == "mask"
                  else p.transfer.recipe(spec.regime, spec.task, spec.recipe))
    v = validation or p.transfer.validation
    n_val = v.count(spec.task, len(task.y_train)) if spec.regime in (*SELECT_REGIMES, "mask") else 0
    rule = "none"
    if n_val:
        rule = resolve_how(task.y_train, v.how, n_val)  # `auto`: last, unless that changes the class balance
        key = (spec.task, v.how, n_val)
        if key not in tasks:
            tasks[key] = with_held_out(task, v.how, n_val, "transfer.validation.n" if v is p.transfer.validation
                                       else "pretrain.eps_select.n")
        task = tasks[key]
    dls = make_dataloaders(task, bs=regime_cfg.batch_size, size=p.data.image_size, fraction=spec.fraction,
                           how=p.data.fraction_how, seed=spec.seed, device=dev, num_workers=p.data.num_workers,
                           recipe=p.data.recipe, val_from_train=n_val)
    kwargs: dict = {"mask": mask}
    extra = []
    val_cb = None
    if n_val and spec.regime in SELECT_REGIMES:
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
                                inputs=[task_path(spec.task), pretrained_path(spec.kind, spec.source)],
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
            save_json({
                "how": rule, "n": n_val, "robust_images": min(v.robust_images, n_val), "steps": v.steps,
                "epochs": val_cb.history, **{f"{k}_epoch": b["epoch"] for k, b in val_cb.best.items()}}, out / "validation.json")
        save_json({
            "kind": spec.kind, "method": spec.method, "task": spec.task, "regime": spec.regime,
            **({"recipe": spec.recipe} if spec.recipe else {}),
            **({"source": spec.source} if spec.source else {}),
            **({"eps": eps_label(e)} if (e := source_eps(p, spec.kind, spec.source)) is not None else {}),
            "fraction": spec.fraction, "seed": spec.seed, "level": sparsity, "held_out": n_val,
            "measured_sparsity": 0.0 if mask is None else mask.sparsity,
            "n_train": len(dls.train_ds), "config": config_hash([regime_cfg, p.transfer.attack, p.model, *([v, p.evaluation.attack] if n_val else [])]),
            "checkpoints": ["last", *(sorted(val_cb.best) if val_cb is not None else [])]}, out / "spec.json")
    drop_checkpoint(ckpt)
    return out_final
