"""Stage `data`: materialise every task the experiments use as ``runs/data/<name>.npz``.

Embedded default: the synthetic source task, the downstream tasks (domain gap
from ``data.synthetic.gaps``) and the OoD set, generated deterministically.
Public datasets (``repro.data.PUBLIC_DATASETS``: cifar10, cifar100, svhn,
tiny_imagenet, imagenet, the Fig. 9 sets) are read from ``data.root`` in their
published formats at ``data.image_size`` (fixed-size sets smaller than that stay
at their native size: every recipe resizes at load time), capped per class by
``data.max_train`` / ``data.max_test`` (or the ``*_per_task`` overrides), reduced to
``data.fraction`` of every class (a tier's reduced-data option), and
fetched first when ``data.download`` is true. The segmentation task (``segment.task``) is built only when
``segment.pairs`` names a run.
"""
from __future__ import annotations

import sys

from ..config import Params
from ..data.segmentation import load_seg_task
from ..pipeline.data import build_task, check_validation, check_weights_pinned
from ..pipeline.inputs import task_path
from .common import log, run_stage


def body(p: Params) -> None:
    check_weights_pinned(p)  # every published checkpoint the run will read, before any work
    tasks: dict = {}
    held: dict = {}
    for name in (p.data.source, *p.data.downstream, p.data.ood):
        if name not in tasks:  # a public set in two roles (e.g. svhn downstream and OoD) is one file
            tasks[name] = build_task(p, name)
            held[name] = check_validation(p, name, tasks[name])  # every class kept, or one line and no output
    v = p.transfer.validation
    for name, task in tasks.items():
        task.save(task_path(name))
        hold = (f"; held out {v.count(name, len(task.y_train))} ({held[name]})" if held[name] != "none" else "")
        log("data", f"{name}: {task.x_train.shape[0]} train / {task.x_test.shape[0]} test, "
                    f"{task.num_classes} classes, {task.x_train.shape[1]} px{hold}")
    seg = p.segment  # the segmentation task of stage `segment` (repro/data/segmentation.py)
    if not seg.pairs:  # segmentation off (segment.pairs: []): no task to build, no VOC files read
        log("data", f"{seg.task}: not built (segment.pairs is empty: no segmentation runs)")
        return
    task = load_seg_task(seg.task, p.data.root, seg.image_size or p.data.image_size, seg.max_train, seg.max_test, p.data.download,
                         p.seed, seg.n_train, seg.n_test)
    task.save(task_path(seg.task))
    log("data", f"{seg.task}: {task.x_train.shape[0]} train / {task.x_test.shape[0]} test segmentation images, "
                f"{task.num_classes} classes, {task.x_train.shape[1]} px")


def main(argv=None) -> int:
    return run_stage("data", body)


if __name__ == "__main__":
    sys.exit(main())
