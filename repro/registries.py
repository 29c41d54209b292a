"""Every registry's names for the config layer (``repro.config.names``), and params.yaml loaded with them.

Entry points (the stages, ``python -m repro.plan``, ``bench/``) load params through ``load``: the schema and
every name a value uses are checked before any work starts.
"""
from __future__ import annotations

from pathlib import Path

from .config import Params, from_dict, load_params
from .config.names import Names, using
from .data import DATASETS, PUBLIC_DATASETS
from .data.segmentation import SEG_DATASETS
from .models import ARCHS
from .weights import WEIGHTS


def names() -> Names:
    return Names(archs=tuple(ARCHS.names()), datasets=(*DATASETS.names(), *PUBLIC_DATASETS.names()),
                 seg_datasets=tuple(SEG_DATASETS.names()),
                 weights={n: WEIGHTS.get(n).kind for n in WEIGHTS.names()},
                 weights_eps={n: (w.kind, w.arch, w.eps) for n in WEIGHTS.names() if (w := WEIGHTS.get(n)).eps})


def params_from(raw: dict) -> Params:
    """A params dict (e.g. a tier merged in memory) validated like params.yaml."""
    with using(names()):
        return from_dict(Params, raw)


def load(path: str | Path = "params.yaml") -> Params:
    """params.yaml validated: schema, ranges and every registered name."""
    return load_params(path, names())
