"""The robust reference model of the transfer attack (stage ``reference``; DW Table A2)."""
from __future__ import annotations

from ..attacks import attack_from_config
from ..base import runtime
from ..base.io import atomic_dir, save_json, save_torch
from ..config import Params
from ..data import make_dataloaders
from ..models import model_from_params
from ..plan import RUNS
from ..training import train
from ..training.resume import drop_checkpoint, epoch_checkpoint
from .inputs import load_task, task_path

REFERENCE_SEED_OFFSET = 7919  # a seed no transfer run uses


def train_reference(p: Params) -> str | None:
    """Train the robust reference model of the transfer-attack task (DW Table A2: PGD adversarial training from a
    random initialisation) into ``runs/reference/<task>/``; returns the task. With ``evaluation.transfer_attack``
    false, writes ``runs/reference/off.json`` only and returns None."""
    if not p.evaluation.transfer_attack:  # no Table A2 in this tier: the stage's output says so, nothing is trained
        with atomic_dir(RUNS / "reference") as out:
            save_json({"transfer_attack": False, "why": "evaluation.transfer_attack is false"}, out / "off.json")
        return None
    name = p.transfer_attack_task
    task = load_task(name)
    runtime.seed_everything(p.seed + REFERENCE_SEED_OFFSET)
    model = model_from_params(p.model, task.num_classes, mean=task.mean, std=task.std)
    cfg = p.evaluation.reference
    dls = make_dataloaders(task, bs=cfg.batch_size, size=p.data.image_size, seed=p.seed + REFERENCE_SEED_OFFSET,
                           device=runtime.device(p.device), num_workers=p.data.num_workers, recipe=p.data.recipe)
    with atomic_dir(RUNS / "reference" / name) as out:
        ckpt = epoch_checkpoint("reference", name, p, carry_dir=out, inputs=[task_path(name)])
        learn = train(dls, model, cfg, attack=attack_from_config("pgd", **p.transfer.attack.kwargs()),
                      attack_bn_mode=p.transfer.bn_mode, live_dir=out / "live", progress=False, extra_cbs=[ckpt],
                      compile=p.runtime.compile)
        save_torch(learn.model.cpu().state_dict(), out / "model.pt")
        save_json({"task": name, "seed": p.seed + REFERENCE_SEED_OFFSET,
                                       "training": "pgd adversarial from random init"}, out / "spec.json")
    drop_checkpoint(ckpt)
    return name
