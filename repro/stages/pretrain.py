"""Stage `pretrain@<kind>`: pretrain on the source task (θ_STD, θ_FAT, θ_AT, random smoothing).

Writes ``runs/pretrain/<kind>/model.pt`` (a plain state_dict with torchvision
names), ``metrics.json`` (source SA) and DVCLive logs in ``live/``.

When ``pretrain.published`` names a published checkpoint for the kind (``repro.weights``),
the stage trains nothing: it fetches the file from the weights cache (or its URL), checks
its pinned sha256 before loading, converts it to a plain torchvision state_dict (the
1000-class fc stays; downstream stages replace it) and writes ``model.pt`` and
``metrics.json`` (kind, source "published", registry name, sha256).
"""
from __future__ import annotations

import argparse
import sys

from .. import metrics
from ..config import Params
from ..data import make_dataloaders, test_loader
from ..base.io import save_torch
from ..pretraining import PRETRAIN, learner_kwargs
from ..training import train
from .common import (atomic_dir, config_hash, device, epoch_checkpoint, load_into, load_state, load_task, log,
                     run_stage, source_model, stage_item, task_path, write_json)
from ..plan import RUNS
from ..models import model_from_params


def pretrain(p: Params, kind: str, out_dir, progress: bool | None = None):
    task = load_task(p.data.source)
    progress = sys.stdout.isatty() if progress is None else progress  # bars on a terminal, not in logs
    dev = device(p)
    model = source_model(p, task.num_classes, task.mean, task.std)
    tp = p.pretrain.train
    dls = make_dataloaders(task, bs=tp.batch_size, size=p.data.image_size, seed=p.seed, device=dev,
                           num_workers=p.data.num_workers, recipe=p.data.recipe)
    # per-epoch checkpoint outside the outputs (a killed stage resumes; run_stage deletes it on success)
    ckpt = epoch_checkpoint(f"pretrain@{kind}", kind, p, carry_dir=out_dir, inputs=[task_path(p.data.source)])
    learn = train(dls, model, tp, live_dir=out_dir / "live", progress=progress, extra_cbs=[ckpt],
                  compile=p.runtime.compile, **learner_kwargs(kind, p.pretrain))
    model = learn.model.cpu()
    loader = test_loader(task, bs=p.evaluation.batch_size, size=p.data.image_size, device="cpu",
                         recipe=p.data.recipe)
    sa = metrics.evaluate(model, loader, progress=False)["accuracy"]
    return model, sa


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
        write_json(out / "metrics.json", {
            "kind": kind, "source": "published", "name": name, "sha256": got.sha256, "url": entry.url,
            "arch": entry.arch, "eps": entry.eps, "sigma": entry.sigma,
            "mean": list(entry.mean), "std": list(entry.std)})
    log(f"pretrain@{kind}", f"published {name} (sha256 {got.sha256[:16]}…)")


def body_for(kind: str):
    def body(p: Params) -> None:
        PRETRAIN.get(kind)
        if kind not in p.pretrain.kinds:
            raise ValueError(f"pretraining kind {kind!r} is not in pretrain.kinds {list(p.pretrain.kinds)}")
        final = RUNS / "pretrain" / kind
        if kind in p.pretrain.published:
            return published(p, kind, p.pretrain.published[kind], final)
        with atomic_dir(final) as out:
            model, sa = pretrain(p, kind, out)
            save_torch(model.state_dict(), out / "model.pt")
            write_json(out / "metrics.json", {"kind": kind, "source_sa": sa,
                                             "config": config_hash([p.pretrain, p.model, p.data.source, p.seed])})
        log(f"pretrain@{kind}", f"source SA {sa:.3f}")
    return body


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("kind", nargs="?", help=f"one of {', '.join(PRETRAIN.names())} (default: from DVC_STAGE, "
                                            "pretrain@<kind>: dvc.yaml never puts a params value on a command line)")
    a = ap.parse_args(argv)
    kind = stage_item("pretrain", a.kind)
    return run_stage(f"pretrain@{kind}", body_for(kind))


if __name__ == "__main__":
    sys.exit(main())
