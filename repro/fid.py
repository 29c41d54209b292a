"""FID as Robust Tickets Sec. III-F defines it: Inception-v3 pool-3 features, 8,000 source images vs a task.

RT measures the domain gap between ImageNet and each VTAB task with the FID (Heusel et al. 2017):
"sampling the same 8000 images from ImageNet and using all the images in each downstream dataset".
Here:

* features: the 2048-d output of Inception-v3's last average pool ("pool-3"), by default of the FID
  literature's network (``evaluation.fid_weights: fid_inception_v3_2015_12_05``: TensorFlow's 2015-12-05
  Inception graph and weights as pytorch-fid serves them, ``repro.models.inception``), so the values are on the
  scale of published FIDs such as RT Table II's; ``torchvision_inception_v3_imagenet1k_v1`` (torchvision's
  Inception-v3 classification weights, a different graph and training) is one parameter away. Both are
  registered in ``repro.weights`` and sha256-checked by ``fetch``;
* input: uint8 RGB images scaled to [0, 1], bilinearly resized to Inception's 299 x 299 input
  (whatever their stored size: 32-px CIFAR and 224-px ImageNet meet at 299; ``align_corners=False``, as
  pytorch-fid), then mapped to [-1, 1], the normalization both weights were trained with;
* sampling: :func:`repro.data.domain_gap_score` (a fixed seeded draw of ``n_source`` = 8,000
  source images, all train + test images of the target) and its Fréchet distance
  ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)``.

RT does not say which implementation it used; pytorch-fid's network is the common one and is the default.
tests/test_fid.py checks, on synthetic weights, that the graph and preprocessing give pytorch-fid's features.

The offline default measures the gap with hand-made image statistics instead
(``evaluation.domain_gap: stats``, ``repro.data.domain_gap_score`` without a feature function);
``evaluation.domain_gap: fid`` (the ``small`` and ``paper`` tiers) uses this module.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import devices
from .data import ArrayTask, domain_gap_score

__all__ = ["FID_WEIGHTS", "INCEPTION_WEIGHTS", "INCEPTION_SIZE", "FID_SOURCE_IMAGES", "build_inception",
           "PoolFeatures", "inception_feature_fn", "fid", "load_inception"]

#: the feature networks evaluation.fid_weights may name: registered checkpoint -> its graph (repro.models.inception)
FID_WEIGHTS = {"fid_inception_v3_2015_12_05": "fid_inception_v3",
               "torchvision_inception_v3_imagenet1k_v1": "inception_v3"}
INCEPTION_WEIGHTS = "fid_inception_v3_2015_12_05"  # the default: the FID literature's network
INCEPTION_SIZE = 299
FID_SOURCE_IMAGES = 8000  # RT Sec. III-F


def build_inception(state_dict: Optional[dict] = None, seed: int = 0, arch: str = "fid_inception_v3") -> nn.Module:
    """The Inception-v3 graph ``arch`` (``fid_inception_v3`` or torchvision's ``inception_v3``) in eval mode.

    ``state_dict=None``: randomly initialised (PyTorch's default layer initialisation, seeded), for tests.
    """
    from .models.inception import build_inception_graph

    if state_dict is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_inception_graph(arch)
    model = build_inception_graph(arch)
    model.load_state_dict(state_dict)
    return model.eval()


class PoolFeatures(nn.Module):
    """[0, 1] images (any size) -> the 2048-d pool-3 features of an Inception-v3 (eval mode)."""

    def __init__(self, inception: nn.Module, size: int = INCEPTION_SIZE):
        super().__init__()
        if size < 75:
            raise ValueError(f"Inception-v3 needs inputs of at least 75 px, got size={size}")
        self.net, self.size = inception, int(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = x * 2 - 1
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                     "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
                     "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool"):
            x = getattr(n, name)(x)
        return torch.flatten(x, 1)


def inception_feature_fn(inception: nn.Module, batch_size: int = 50, size: int = INCEPTION_SIZE,
                         device=None) -> Callable[[np.ndarray], np.ndarray]:
    """A ``feature_fn`` for :func:`repro.data.domain_gap_score`: uint8 NHWC -> float64 [N, 2048]."""
    feats = PoolFeatures(inception, size)
    feats.eval()
    dev = torch.device(device) if device is not None else next(inception.parameters()).device
    if devices.placed(inception) is not None:  # the wrapper runs where the seam put the network
        devices.mark(feats, devices.placed(inception))

    def fn(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"FID features need uint8 images [N,H,W,3], got {x.dtype} {list(x.shape)}")
        out = []
        with torch.no_grad():
            for s in range(0, x.shape[0], batch_size):
                t = torch.from_numpy(np.ascontiguousarray(x[s:s + batch_size])).permute(0, 3, 1, 2)
                out.append(feats(t.to(dev).float().div_(255)).double().cpu().numpy())
        return np.concatenate(out, 0) if out else np.zeros((0, 2048))

    return fn


def fid(source: ArrayTask | np.ndarray, target: ArrayTask | np.ndarray, inception: nn.Module,
        n_source: int = FID_SOURCE_IMAGES, n_target: Optional[int] = None, seed: int = 0,
        size: int = INCEPTION_SIZE, batch_size: int = 50) -> float:
    """FID between ``n_source`` sampled source images and all images of ``target`` (RT Table II)."""
    return domain_gap_score(source, target, feature_fn=inception_feature_fn(inception, batch_size, size),
                            n_source=n_source, n_target=n_target, seed=seed)


def load_inception(data_root: str | Path = "data", dest: str | Path | None = None, device=None,
                   name: str = INCEPTION_WEIGHTS) -> nn.Module:
    """The FID feature network ``name`` (a key of ``FID_WEIGHTS``), fetched and sha256-checked by ``repro.weights``
    into ``dest`` (default ``.cache/repro/<name>.pt``)."""
    from .base.io import load_torch
    from .weights import fetch, weights_dir

    if name not in FID_WEIGHTS:
        raise ValueError(f"unknown FID feature network {name!r}; allowed: {', '.join(FID_WEIGHTS)}")
    dest = Path(dest) if dest is not None else Path(".cache/repro") / f"{name}.pt"
    if not dest.is_file():
        fetch(name, dest, cache_dir=weights_dir(data_root))
    model = build_inception(load_torch(dest), arch=FID_WEIGHTS[name])
    return devices.place(model, device) if device is not None else model
