"""The registry of published checkpoints (``WEIGHTS``): one ``PublishedWeights`` entry per file."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..base.registry import Registry
from ..models.resnet import IMAGENET_MEAN, IMAGENET_STD

HEX = re.compile(r"^[0-9a-f]{8,64}$")  # a sha256 or its prefix (>= 8 hex digits)


@dataclass(frozen=True)
class PublishedWeights:
    """One published checkpoint file and how to turn it into a torchvision state_dict."""

    name: str
    arch: str                       # 'resnet18' | 'resnet50' (repro.models / torchvision)
    kind: str                       # pretraining kind, as repro.pretraining.PRETRAIN
    url: str                        # direct file URL, or the publisher's page when direct=False
    filename: str                   # name in the weights cache
    converter: Callable[[Any], dict]
    sha256: Optional[str] = None    # pinned in code (hex, >= 8 digits; shorter than 64 = prefix)
    eps: Optional[float] = None     # L-inf radius, pixel scale [0, 1]
    sigma: Optional[float] = None   # Gaussian noise std, pixel scale [0, 1]
    mean: tuple[float, ...] = IMAGENET_MEAN   # input normalization, applied outside the network
    std: tuple[float, ...] = IMAGENET_STD
    direct: bool = True             # url serves the file itself (urllib can download it)
    archive_member: Optional[str] = None  # path of the file inside the publisher's archive
    legacy_pickle: bool = False     # dill-pickled: load through the restricted allowlist
    publisher: str = ""
    notes: str = ""

    def local_candidates(self, cache_dir: Path) -> list[Path]:
        """Where a local copy may sit: ``<cache>/<filename>``, or the archive extracted into the cache."""
        out = [cache_dir / self.filename]
        if self.archive_member:
            out.append(cache_dir / self.archive_member)
        return out


WEIGHTS: Registry[PublishedWeights] = Registry("published checkpoint")


def register(entry: PublishedWeights) -> PublishedWeights:
    if entry.sha256 is not None and not HEX.match(entry.sha256):
        raise ValueError(f"{entry.name}: sha256 must be 8-64 lowercase hex digits, got {entry.sha256!r}")
    return WEIGHTS.register(entry.name)(entry)
