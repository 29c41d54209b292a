"""One segmentation transfer run (stage ``segment``; RT Fig. 7, DW Fig. A10): a ticket's backbone, a new head, trained
and evaluated on the segmentation task (``repro.segmentation``)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..base import runtime
from ..base.io import save_json
from ..config import Params
from ..data.segmentation import SegTask
from ..models import model_from_params, set_normalization
from ..plan import DENSE, RUNS, level_name, ticket_path
from ..tickets.mask import Mask
from .inputs import load_into, load_state, pretrained_path, task_path

OUT = RUNS / "segment"
METRICS = Path("metrics") / "segment.json"


def check_inputs(p: Params, runs: list[tuple[str, str, float]]) -> None:
    """Every input the stage's ``runs`` (``repro.plan.seg_runs``) need, before any work starts (one line naming the
    first missing file); with no run (``segment.pairs: []``) none, not even the task the `data` stage then does not
    build."""
    if runs and not task_path(p.segment.task).is_file():
        raise FileNotFoundError(f"segmentation task {str(task_path(p.segment.task))!r} is missing; run the data "
                                f"stage first (dvc repro data)")
    for kind, method, lv in runs:
        if not pretrained_path(kind).is_file():
            raise FileNotFoundError(f"segment.pairs needs kind {kind!r}: {str(pretrained_path(kind))!r} is missing "
                                    f"(pretrain.kinds must include it)")
        if method != DENSE and not ticket_path(lv, kind, method, None).is_file():
            raise FileNotFoundError(f"segment.pairs names [{kind}, {method}] but its ticket "
                                    f"{str(ticket_path(lv, kind, method, None))!r} is missing: the pair must be one "
                                    f"some experiment draws (experiments.*.pairs)")


def backbone(p: Params, kind: str, task: SegTask) -> torch.nn.Module:
    """The pretrained network of ``kind`` with the segmentation task's input normalization."""
    path = pretrained_path(kind)
    sd = load_state(path)
    model = model_from_params(p.model, sd["fc.weight"].shape[0] if "fc.weight" in sd else 2)
    load_into(model, sd, path)
    return set_normalization(model, task.mean, task.std)


def run_one(p: Params, item: tuple[str, str, float]) -> dict:
    from ..segmentation import evaluate_segmentation, train_segmentation

    kind, method, lv = item
    s = p.segment
    task = SegTask.load(task_path(s.task))
    runtime.seed_everything(p.seed)
    mask = None if method == DENSE else Mask.load(ticket_path(lv, kind, method, None))
    learn = train_segmentation(task, backbone(p, kind, task), s, mask=mask, head=s.head, seed=p.seed,
                               device=runtime.device(p.device))
    res = evaluate_segmentation(learn.model, task, seed=p.seed)
    params = dict(learn.model.named_parameters())
    pruned_zero = mask is None or all(bool((params[k].detach()[mask[k].to(params[k].device) == 0] == 0).all())
                                      for k in mask)
    row = {"kind": kind, "method": method, "sparsity": lv, "task": s.task, "head": s.head,
           "miou": round(res["miou"], 6), "miou_se": res["miou_se"], "pixel_acc": round(res["pixel_acc"], 6),
           "ticket_sparsity": round(mask.sparsity, 6) if mask is not None else 0.0,
           "pruned_weights_zero": pruned_zero, "iterations": s.iterations}
    save_json({**row, "confusion": res["confusion"]}, OUT / level_name(lv) / f"{kind}-{method}" / "metrics.json")
    if not pruned_zero:
        raise RuntimeError(f"segment {kind}-{method} at {lv}: a pruned weight became non-zero during fine-tuning")
    return row


