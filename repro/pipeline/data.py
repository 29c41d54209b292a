"""The data stage's tasks (``runs/data/<name>.npz``): the synthetic tasks generated from ``data.synthetic``, the
public datasets read from ``data.root``; every training split keeps every class, beside the held-out images too."""
from __future__ import annotations

from ..base.errors import DataError
from ..config import Params
from ..data import DATASETS, PUBLIC_DATASETS, load_public
from ..data.public import keep_fraction
from ..data.splits import check_classes, check_held_out, held_out, subset_indices
from ..plan import grid_models, selection_keys
from ..plan.eps import published_at


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


def required_weights(p: Params) -> list[str]:
    """Every published checkpoint the configuration reads: ``pretrain.published``, the ε-grid's published radii
    (stage pretrain_eps), and ``evaluation.fid_weights`` when the domain gap is FID (stage analysis)."""
    names = set(p.pretrain.published.values())
    names |= {n for _, e in grid_models(p) if (n := published_at(p, e)) is not None}
    if p.evaluation.domain_gap == "fid":
        names.add(p.evaluation.fid_weights)
    return sorted(names)


def check_weights_pinned(p: Params) -> None:
    """Refuse (one line, before the data stage writes anything) a configuration that names a published checkpoint
    without a pinned sha256: ``fetch`` would refuse it anyway, but only when pretraining or the analysis stage
    reaches it, hours of compute later."""
    from ..weights import LOCK_FILE, WeightsError, expected_sha256

    unpinned = [n for n in required_weights(p) if expected_sha256(n) is None]
    if unpinned:
        raise WeightsError(f"published checkpoint(s) {', '.join(unpinned)} have no pinned sha256 in {LOCK_FILE}; "
                           "allowed: pinned checkpoints only (check each file against its publisher, then "
                           "`python -m repro.weights pin NAME FILE`; docs/PARAMETERS.md)")


def check_validation(p: Params, name: str, task) -> str:
    """Every class in a task's training split, and with held-out validation (``transfer.validation``) in both the
    held-out images of a downstream task and the training images left beside them: refused here in one line
    (``repro.data.splits.check_classes``), before any output is written, not in the transfer stages after
    pretraining and IMP have run; likewise the held-out images that decide RT's eps (``pretrain.eps_select.n``,
    while ``transfer.validation`` is off) and those of early-stopped pretraining on the source
    (``pretrain.early_stopping.n``). The OoD set's labels are never used: not checked. Returns the held-out rule
    the task takes (``last``/``stratified``; ``none`` without held-out images)."""
    n_train = len(task.y_train)
    es = p.pretrain.early_stopping  # early-stopped pretraining holds out source images
    if name == p.data.source and any(es.applies(k) for k in p.pretrain.kinds if k not in p.pretrain.published):
        check_held_out(es.n, n_train, name, key="pretrain.early_stopping.n")
    if name == p.data.ood and name != p.data.source and name not in p.data.downstream:
        return "none"
    v = p.transfer.validation
    if v.how == "none" and name in {t for t, _ in selection_keys(p)}:  # the images that decide RT's eps
        check_held_out(p.pretrain.eps_select.n, n_train, name, key="pretrain.eps_select.n")
    held = v.how != "none" and name in p.data.downstream
    n = v.count(name, n_train) if held else 0
    rule = check_classes(name, task.y_train, task.num_classes, v.how if held else "none", n)
    check_fractions(p, name, task.y_train[held_out(task.y_train, rule, n)[0]] if rule != "none" else task.y_train)
    return rule


def check_fractions(p: Params, name: str, y_pool) -> None:
    """Every data fraction an experiment fine-tunes task ``name`` on (``experiments.*.fractions``, DW Fig. 5) must
    leave at least 2 training images (``data.fraction_how``'s count on the images left after held-out validation):
    refused here in one line, not in the transfer stage after pretraining and IMP."""
    for ename, e in p.experiments.items():
        if name not in (e.tasks or p.data.downstream):
            continue
        for f in e.fractions:
            k = len(subset_indices(y_pool, f, p.data.fraction_how))
            if k < 2:
                raise DataError(f"experiments.{ename}.fractions: {f} of task {name!r}'s {len(y_pool)} training images "
                                f"is {k} image ({p.data.fraction_how}); allowed: fractions that leave at least 2 "
                                "(batch norm trains on batches of 2 or more)")
