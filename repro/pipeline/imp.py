"""IMP and A-IMP runs (stage ``imp``; DW Sec. 3, RT's A-IMP): every round of one (kind, retraining, task, source)
run, and the retraining between rounds (fastai training with the mask enforced).

Upstream (US, on the source task) the rounds retrain with ``tickets.imp.retrain`` (DW's ImageNet IMP recipe).
Downstream (DS: ``imp_ds``, ``a_imp_ds``; RT Fig. 4) the network is the pretrained backbone with a fresh head for
the task, and the rounds retrain with the named downstream recipe ``tickets.imp.retrain_ds`` on the task's training
images minus those ``transfer.validation`` holds out (never trained on before they validate a transfer run)."""
from __future__ import annotations

from ..attacks import attack_from_config
from ..base import runtime
from ..base.io import atomic_dir, save_json
from ..base.runctx import log
from ..config import Params
from ..data import make_dataloaders
from ..data.splits import with_held_out
from ..models import set_normalization
from ..plan import imp_dir, model_name
from ..tickets import PruneContext, run_imp
from ..tickets.mask import Mask
from ..training import train
from .inputs import ticket_base


def held_out_ds(p: Params, task):
    """(task, held-out count): a downstream task with ``transfer.validation``'s held-out images moved to the end of
    its training split, and how many they are (0: none held out), so DS IMP never trains on them."""
    v = p.transfer.validation
    n = v.count(task.name, len(task.y_train))
    if not n:
        return task, 0
    return with_held_out(task, v.how, n), n


def imp_retrainer(p: Params, task, adversarial: bool, seed: int, downstream: bool = False):
    """The ``retrain(model, mask)`` of IMP: fastai training with the mask enforced; ``downstream``: the DS recipe
    (``tickets.imp.retrain_ds``) on the task's training images minus the held-out ones."""
    ip = p.tickets.imp
    cfg = ip.retrain_ds if downstream else ip.retrain
    dev = runtime.device(p.device)
    attack = attack_from_config("pgd", **ip.attack.kwargs()) if adversarial else None
    n_val = 0
    if downstream:
        task, n_val = held_out_ds(p, task)
    state = {"round": 0}

    def retrain(model, mask: Mask) -> None:
        state["round"] += 1
        dls = make_dataloaders(task, bs=cfg.batch_size, size=p.data.image_size, seed=seed + state["round"],
                               device=dev, num_workers=p.data.num_workers, recipe=p.data.recipe, val_from_train=n_val)
        train(dls, model, cfg, mask=mask, attack=attack, attack_bn_mode=p.transfer.bn_mode,
              progress=False, compile=p.runtime.compile)
        model.cpu()

    return retrain


def source_normalization(p: Params, kind: str, task, source: str = "") -> tuple[tuple, tuple]:
    """Input (mean, std) of the source network of ``kind``: a published checkpoint's publisher's, else the
    source task's (the statistics in-house pretraining used)."""
    name = p.pretrain.published.get(kind)
    if name is None:
        return task.mean, task.std
    from ..weights import WEIGHTS

    entry = WEIGHTS.get(name)  # an eps-grid model of a published kind comes from the same publisher
    return entry.mean, entry.std


def run_one(p: Params, kind: str, retrain: str, task_name: str | None, source: str = "") -> None:
    # every run from the same random state (a downstream run's new head, A-IMP's PGD random starts), so
    # its masks do not depend on which runs its worker did before it, nor on the order runs start in
    runtime.seed_everything(p.seed)
    ip = p.tickets.imp
    stage = f"imp {model_name(kind, source)}-{retrain}" + (f"-ds-{task_name}" if task_name else "-us")
    task, model = ticket_base(p, kind, task_name, source)
    if task_name is None:  # IMP / A-IMP on the source task
        set_normalization(model, *source_normalization(p, kind, task, source))
    target = 1 - (1 - ip.rate) ** ip.max_rounds
    final = imp_dir(kind, retrain, task_name, source)
    with atomic_dir(final) as out:
        def on_round(k: int, mask: Mask) -> None:
            mask.save(out / f"level_{k}" / "mask.pt")
            log(stage, f"round {k}: sparsity {mask.sparsity:.4f}")

        ctx = PruneContext(seed=p.seed, rate=ip.rate, on_round=on_round,
                           retrain=imp_retrainer(p, task, retrain == "adversarial", p.seed, task_name is not None))
        masks = run_imp(model, target, ctx)
        save_json({str(k): m.sparsity for k, m in enumerate(masks, start=1)}, out / "levels.json")
