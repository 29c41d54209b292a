"""Stage `data`: materialise every task the experiments use as ``runs/data/<name>.npz``.

Embedded default: the synthetic source task, the downstream tasks (domain gap
from ``data.synthetic.gaps``) and the OoD set, generated deterministically.
Public datasets (``repro.data.PUBLIC_DATASETS``: cifar10, cifar100, svhn,
tiny_imagenet, imagenet, the Fig. 9 sets) are read from ``data.root`` in their
published formats at ``data.image_size`` (fixed-size sets smaller than that stay
at their native size: every recipe resizes at load time), capped per class by
``data.max_train`` / ``data.max_test`` (or the ``*_per_task`` overrides), reduced to
``data.fraction`` of every class (a tier's reduced-data option), and
fetched first when ``data.download`` is true.
"""
from __future__ import annotations

import sys

from ..config import Params
from ..data import DATASETS, PUBLIC_DATASETS, check_held_out, load_public
from ..data.public import keep_fraction
from ..data.segmentation import load_seg_task
from .common import log, run_stage, task_path


def build_task(p: Params, name: str):
    if name in PUBLIC_DATASETS:
        max_train, max_test = p.data.caps(name)
        task = load_public(name, root=p.data.root, size=p.data.image_size, max_train=max_train, max_test=max_test,
                           download=p.data.download, upscale=False)
        return keep_fraction(task, p.data.fraction)
    s = p.data.synthetic
    size = p.data.image_size
    factory = DATASETS.get(name)
    if name == p.data.source:
        return factory(num_classes=s.source_classes, n_train=s.n_train_source, n_test=s.n_test_source,
                       size=size, seed=p.seed, texture=s.texture)
    if name == p.data.ood:
        return factory(n_train=s.n_ood, n_test=s.n_ood, size=size, seed=p.seed)
    kw = dict(num_classes=s.downstream_classes, n_train=s.n_train_downstream, n_test=s.n_test_downstream,
              size=size, seed=p.seed, texture=s.texture)
    if name in s.gaps:
        kw["gap"] = s.gaps[name]
    return factory(**kw)


def check_validation(p: Params, name: str, n_train: int) -> None:
    """A downstream task must keep training images beside ``transfer.validation.n`` held-out ones: refused here,
    before any output is written, not in the transfer stages after pretraining and IMP have run."""
    v = p.transfer.validation
    if v.how != "none" and name in p.data.downstream:
        check_held_out(v.n, n_train, name)


def body(p: Params) -> None:
    tasks: dict = {}
    for name in (p.data.source, *p.data.downstream, p.data.ood):
        if name not in tasks:  # a public set in two roles (e.g. svhn downstream and OoD) is one file
            tasks[name] = build_task(p, name)
            check_validation(p, name, len(tasks[name].y_train))
    for name, task in tasks.items():
        task.save(task_path(name))
        log("data", f"{name}: {task.x_train.shape[0]} train / {task.x_test.shape[0]} test, "
                    f"{task.num_classes} classes, {task.x_train.shape[1]} px")
    seg = p.segment  # the segmentation task of stage `segment` (repro/data/segmentation.py)
    task = load_seg_task(seg.task, p.data.root, p.data.image_size, seg.max_train, seg.max_test, p.data.download,
                         p.seed, seg.n_train, seg.n_test)
    task.save(task_path(seg.task))
    log("data", f"{seg.task}: {task.x_train.shape[0]} train / {task.x_test.shape[0]} test segmentation images, "
                f"{task.num_classes} classes, {task.x_train.shape[1]} px")


def main(argv=None) -> int:
    return run_stage("data", body)


if __name__ == "__main__":
    sys.exit(main())
