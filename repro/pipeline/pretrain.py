"""Pretraining one kind on the source task (stage ``pretrain@<kind>``; an ε-grid model of RT's per-task ε: stage
``pretrain_eps``), or fetching its published checkpoint. Early stopping (``pretrain.early_stopping``, DW Sec. 3
after Rice et al. 2020): the kinds it names hold out source training images and keep the weights of the epoch with
the best held-out PGD accuracy."""
from __future__ import annotations

import sys

from .. import metrics
from ..base import runtime
from ..base.io import atomic_dir, save_json, save_torch
from ..base.runctx import log
from ..config import Params
from ..config.constants import eps_label
from ..config.typed import config_hash
from ..data import make_dataloaders, test_loader
from ..data.splits import with_held_out
from ..models import model_from_params
from ..pretraining import at_eps, learner_kwargs, training_eps
from ..training import HeldOutValidation, train
from ..training.resume import epoch_checkpoint
from ..plan import model_name
from .inputs import load_into, load_state, load_task, source_model, task_path


def pretrain(p: Params, kind: str, out_dir, progress: bool | None = None, eps: float | None = None,
             extra_cbs=(), name: str | None = None):
    """Train ``kind`` on the source task; ``eps``: a PGD model at that radius (``pretrain.eps_grid``; ``name``: its
    model name, e.g. ``pgd_adversarial-eps1``). Returns (model, test SA, early-stopping record or None)."""
    # every pretraining from the same random state (the network's initialisation): stage pretrain_eps trains
    # several models in one worker, whose later ones must not depend on the earlier ones
    runtime.seed_everything(p.seed)
    task = load_task(p.data.source)
    progress = sys.stdout.isatty() if progress is None else progress  # bars on a terminal, not in logs
    dev = runtime.device(p.device)
    model = source_model(p, task.num_classes, task.mean, task.std)
    pp = p.pretrain if eps is None else at_eps(p.pretrain, eps)
    tp = pp.train
    es = pp.early_stopping
    n_val = es.n if es.applies(kind) else 0
    cbs = list(extra_cbs)
    stop = None
    if n_val:  # Rice et al.: PGD accuracy on held-out source images after every epoch, the best epoch's weights kept
        task = with_held_out(task, es.how, n_val, key="pretrain.early_stopping.n")
        r = training_eps(kind, pp)
        stop = HeldOutValidation(dict(eps=r, alpha=r / 4, steps=es.steps, random_start=True),
                                 n_robust=es.robust_images, seed=p.seed)
        cbs.append(stop)
    dls = make_dataloaders(task, bs=tp.batch_size, size=p.data.image_size, seed=p.seed, device=dev,
                           num_workers=p.data.num_workers, recipe=p.data.recipe, val_from_train=n_val)
    # per-epoch checkpoint outside the outputs (a killed stage resumes; run_stage deletes it on success)
    name = name or kind
    ckpt = epoch_checkpoint(f"pretrain@{name}", name, p, carry_dir=out_dir, inputs=[task_path(p.data.source)],
                            extra="" if eps is None else repr(eps))
    learn = train(dls, model, tp, live_dir=out_dir / "live", progress=progress, extra_cbs=[*cbs, ckpt],
                  compile=p.runtime.compile, **learner_kwargs(kind, pp))
    model = learn.model
    record = None
    if stop is not None:
        best = stop.best["best_ra"]
        model.load_state_dict(best["state"])
        record = {"how": es.how, "n": n_val, "robust_images": es.robust_images,
                  "attack": f"PGD-{es.steps}, eps {eps_label(r)}, step eps/4, random start",
                  "epoch_kept": best["epoch"], "epochs": len(stop.history), "held_out_ra": best["value"],
                  "history": stop.history}
        log(f"pretrain@{name}", f"early stopping: kept epoch {best['epoch'] + 1} of {len(stop.history)} "
                                f"(held-out PGD accuracy {best['value']:.3f})")
    loader = test_loader(task, bs=p.evaluation.batch_size, size=p.data.image_size, device=dev,
                         recipe=p.data.recipe)
    sa = metrics.evaluate(model, loader, progress=False)["accuracy"]  # on the training device
    return model.cpu(), sa, record


def trained(p: Params, kind: str, final, eps: float | None = None, source: str = "") -> float:
    """Pretrain ``kind`` in-house into the run folder ``final`` (atomically): ``model.pt`` and ``metrics.json`` (kind,
    source accuracy, ε, the early-stopping record when the kind stops early, the configuration's hash); ``eps``,
    ``source``: an ε-grid model (stage pretrain_eps). Returns the source test SA."""
    name = model_name(kind, source)
    with atomic_dir(final) as out:
        model, sa, stop = pretrain(p, kind, out, progress=None if eps is None else False, eps=eps,
                                   name=None if eps is None else name)
        save_torch(model.state_dict(), out / "model.pt")
        meta = {"kind": kind, **({"source": source} if source else {}),
                "eps": training_eps(kind, p.pretrain) if eps is None else eps, "source_sa": sa,
                **({"early_stopping": stop} if stop else {}),
                "config": config_hash([p.pretrain, p.model, p.data.source, p.seed, *([] if eps is None else [eps])])}
        save_json(meta, out / "metrics.json")
    return sa


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
