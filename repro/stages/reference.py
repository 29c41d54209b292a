"""Stage `reference`: the independently trained robust model of Double-Win Table A2.

A dense network trained from random initialisation with PGD adversarial
training on the transfer-attack task; its PGD-20 examples are the "transfer
attack from an unseen robust model". Writes ``runs/reference/<task>/model.pt``.
"""
from __future__ import annotations

import sys

from ..base import runtime
from ..attacks import attack_from_config
from ..config import Params
from ..data import make_dataloaders
from ..base.io import save_torch
from ..plan import RUNS
from ..training import train
from ..models import model_from_params
from .common import (atomic_dir, device, drop_checkpoint, epoch_checkpoint, load_task, log, run_stage, task_path,
                     write_json)

REFERENCE_SEED_OFFSET = 7919  # a seed no transfer run uses


def body(p: Params) -> None:
    name = p.transfer_attack_task
    task = load_task(name)
    runtime.seed_everything(p.seed + REFERENCE_SEED_OFFSET)
    model = model_from_params(p.model, task.num_classes, mean=task.mean, std=task.std)
    cfg = p.evaluation.reference
    dls = make_dataloaders(task, bs=cfg.batch_size, size=p.data.image_size, seed=p.seed + REFERENCE_SEED_OFFSET,
                           device=device(p), num_workers=p.data.num_workers, recipe=p.data.recipe)
    with atomic_dir(RUNS / "reference" / name) as out:
        ckpt = epoch_checkpoint("reference", name, p, carry_dir=out, inputs=[task_path(name)])
        learn = train(dls, model, cfg, attack=attack_from_config("pgd", **p.transfer.attack.kwargs()),
                      attack_bn_mode=p.transfer.bn_mode, live_dir=out / "live", progress=False, extra_cbs=[ckpt],
                      compile=p.runtime.compile)
        save_torch(learn.model.cpu().state_dict(), out / "model.pt")
        write_json(out / "spec.json", {"task": name, "seed": p.seed + REFERENCE_SEED_OFFSET,
                                       "training": "pgd adversarial from random init"})
    drop_checkpoint(ckpt)
    log("reference", f"robust reference model for {name} trained")


def main(argv=None) -> int:
    return run_stage("reference", body)


if __name__ == "__main__":
    sys.exit(main())
