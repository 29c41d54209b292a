"""Pretraining one kind on the source task (stage ``pretrain@<kind>``), or fetching its published checkpoint."""
from __future__ import annotations

import sys

from .. import metrics
from ..base import runtime
from ..base.io import atomic_dir, save_json
from ..base.runctx import log
from ..config import Params
from ..data import make_dataloaders, test_loader
from ..models import model_from_params
from ..pretraining import learner_kwargs
from ..training import train
from ..training.resume import epoch_checkpoint
from .inputs import load_into, load_state, load_task, source_model, task_path


def pretrain(p: Params, kind: str, out_dir, progress: bool | None = None):
    task = load_task(p.data.source)
    progress = sys.stdout.isatty() if progress is None else progress  # bars on a terminal, not in logs
    dev = runtime.device(p.device)
    model = source_model(p, task.num_classes, task.mean, task.std)
    tp = p.pretrain.train
    dls = make_dataloaders(task, bs=tp.batch_size, size=p.data.image_size, seed=p.seed, device=dev,
                           num_workers=p.data.num_workers, recipe=p.data.recipe)
    # per-epoch checkpoint outside the outputs (a killed stage resumes; run_stage deletes it on success)
    ckpt = epoch_checkpoint(f"pretrain@{kind}", kind, p, carry_dir=out_dir, inputs=[task_path(p.data.source)])
    learn = train(dls, model, tp, live_dir=out_dir / "live", progress=progress, extra_cbs=[ckpt],
                  compile=p.runtime.compile, **learner_kwargs(kind, p.pretrain))
    loader = test_loader(task, bs=p.evaluation.batch_size, size=p.data.image_size, device=dev,
                         recipe=p.data.recipe)
    sa = metrics.evaluate(learn.model, loader, progress=False)["accuracy"]  # on the training device
    return learn.model.cpu(), sa


def published(p: Params, kind: str, name: str, final) -> None:
    """Fetch + verify + convert the published checkpoint ``name`` into the run folder of ``kind``."""
    from ..weights import WEIGHTS, fetch, weights_dir

    entry = WEIGHTS.get(name)
    if entry.arch != p.model.arch:
        raise ValueError(f"pretrain.published.{kind}: {name!r} is a {entry.arch}, but model.arch is {p.model.arch!r}")
    with atomic_dir(final) as out:
        got = fetch(name, out / "model.pt", cache_dir=weights_dir(p.data.root))
        model = model_from_params(p.model, 1000, mean=entry.mean, std=entry.std)  # the published 1000-class network
        load_into(model, load_state(out / "model.pt"), out / "model.pt")
        save_json({
            "kind": kind, "source": "published", "name": name, "sha256": got.sha256, "url": entry.url,
            "arch": entry.arch, "eps": entry.eps, "sigma": entry.sigma,
            "mean": list(entry.mean), "std": list(entry.std)}, out / "metrics.json")
    log(f"pretrain@{kind}", f"published {name} (sha256 {got.sha256[:16]}…)")
