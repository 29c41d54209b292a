"""The data stage's tasks (``runs/data/<name>.npz``): the synthetic tasks generated from ``data.synthetic``, the
public datasets read from ``data.root``; a downstream task must keep training images beside the held-out ones."""
from __future__ import annotations

from ..config import Params
from ..data import DATASETS, PUBLIC_DATASETS, check_held_out, load_public
from ..data.public import keep_fraction
from ..plan import selection_keys


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
    """A downstream task must keep training images beside ``transfer.validation.n`` held-out ones (or, while that is
    off, beside the ``pretrain.eps_select.n`` that decide RT's ε), and the source beside
    ``pretrain.early_stopping.n``: refused here, before any output is written, not in the stages that split after
    pretraining and IMP have run."""
    v = p.transfer.validation
    if v.how != "none" and name in p.data.downstream:
        check_held_out(v.n, n_train, name)
    if v.how == "none" and name in {t for t, _ in selection_keys(p)}:  # the images that decide RT's eps
        check_held_out(p.pretrain.eps_select.n, n_train, name, key="pretrain.eps_select.n")
    es = p.pretrain.early_stopping  # early-stopped pretraining holds out source images
    if name == p.data.source and any(es.applies(k) for k in p.pretrain.kinds if k not in p.pretrain.published):
        check_held_out(es.n, n_train, name, key="pretrain.early_stopping.n")
