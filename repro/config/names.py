"""Names a params.yaml value may use, checked against registries the caller passes in.

The config layer imports none of the layers it configures: the architectures, datasets and published
checkpoints are registries of the models, data and weights layers. ``Names`` carries what they hold
(``repro.registries.names()`` builds it from them). ``load_params(path, names)`` validates with them: the
schema's ``__post_init__`` checks read the names in effect (``current()``, set by ``using``) at the place each
check always had, so the first error reported and its message do not depend on who passed the names. Without
names (a ``Params`` built in a library call or a test) only the schema is checked.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Collection, Iterator, Mapping, Optional


@dataclass(frozen=True)
class Names:
    archs: Collection[str] = ()  # model.arch: repro.models.ARCHS
    datasets: Collection[str] = ()  # data.*, transfer.per_task: repro.data.DATASETS and PUBLIC_DATASETS
    seg_datasets: Collection[str] = ()  # segment.task: repro.data.segmentation.SEG_DATASETS
    weights: Mapping[str, str] = field(default_factory=dict)  # pretrain.published: checkpoint -> its pretraining kind
    # pretrain.eps_grid of a published kind: checkpoint -> (kind, architecture, eps) of those with an eps
    weights_eps: Mapping[str, tuple] = field(default_factory=dict)


_CURRENT: ContextVar[Optional[Names]] = ContextVar("repro_config_names", default=None)


def current() -> Optional[Names]:
    """The names the schema checks against now (None: no registry names are checked)."""
    return _CURRENT.get()


@contextlib.contextmanager
def using(names: Optional[Names]) -> Iterator[None]:
    token = _CURRENT.set(names)
    try:
        yield
    finally:
        _CURRENT.reset(token)
