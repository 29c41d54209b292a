"""Stage `pretrain@<kind>`: pretrain on the source task (θ_STD, θ_FAT, θ_AT, random smoothing).

Writes ``runs/pretrain/<kind>/model.pt`` (a plain state_dict with torchvision
names), ``metrics.json`` (source SA; the kinds of ``pretrain.early_stopping``: the epoch kept and the
per-epoch held-out PGD accuracy) and DVCLive logs in ``live/``.

When ``pretrain.published`` names a published checkpoint for the kind (``repro.weights``),
the stage trains nothing: it fetches the file from the weights cache (or its URL), checks
its pinned sha256 before loading, converts it to a plain torchvision state_dict (the
1000-class fc stays; downstream stages replace it) and writes ``model.pt`` and
``metrics.json`` (kind, source "published", registry name, sha256).
"""
from __future__ import annotations

import argparse
import sys

from ..config import Params
from ..pipeline.pretrain import published, trained
from ..plan import pretrained_dir
from ..pretraining import PRETRAIN
from .common import log, run_stage, stage_item


def body_for(kind: str):
    def body(p: Params) -> None:
        PRETRAIN.get(kind)
        if kind not in p.pretrain.kinds:
            raise ValueError(f"pretraining kind {kind!r} is not in pretrain.kinds {list(p.pretrain.kinds)}")
        final = pretrained_dir(kind, "")
        if kind in p.pretrain.published:
            return published(p, kind, p.pretrain.published[kind], final)
        sa = trained(p, kind, final)
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
