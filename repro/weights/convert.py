"""Converters of each publisher's file layout to a plain torchvision state_dict, checked against the
architecture's shapes."""
from __future__ import annotations

import os
from collections import OrderedDict
from functools import lru_cache
from typing import Any, Mapping

import torch

from ..base.errors import CheckpointError, WeightsError
from ..models.resnet import IMAGENET_MEAN, IMAGENET_STD
from .registry import PublishedWeights


def _tensor_dict(obj: Any, what: str) -> Mapping[str, torch.Tensor]:
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{what} is not a non-empty state_dict (got {type(obj).__name__})")
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise CheckpointError(f"{what} is not a state_dict: entry {k!r} is a {type(v).__name__}")
    return obj


def _field(obj: Any, key: str, layout: str) -> Any:
    if not isinstance(obj, Mapping) or key not in obj:
        keys = sorted(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f"not a {layout} checkpoint: no {key!r} entry (found {keys})")
    return obj[key]


def _check_arch(obj: Mapping, layout: str, arch: str | None) -> None:
    found = obj.get("arch") if isinstance(obj, Mapping) else None
    if arch is not None and found is not None and found != arch:
        raise CheckpointError(f"{layout} checkpoint is a {found!r}, the registry entry says {arch!r}")


def convert_torchvision(obj: Any, arch: str | None = None) -> dict:
    """torchvision ``IMAGENET1K_V1``: already a plain state_dict."""
    return dict(_tensor_dict(obj, "torchvision checkpoint"))


def convert_madrylab(obj: Any, arch: str | None = None) -> dict:
    """MadryLab robustness (robust-models-transfer): ``ckpt['model']`` of an AttackerModel.

    Keeps ``module.model.*`` (prefix stripped); drops the attacker's duplicate
    ``module.attacker.model.*`` and both normalizers (which must hold ImageNet mean/std).
    """
    sd = _tensor_dict(_field(obj, "model", "MadryLab"), "MadryLab ckpt['model']")
    out, drop = {}, ("module.attacker.model.", "module.attacker.normalize.", "module.normalizer.")
    for k, v in sd.items():
        if k.startswith("module.model."):
            out[k[len("module.model."):]] = v
        elif not k.startswith(drop):
            raise CheckpointError(f"unexpected key {k!r} in a MadryLab checkpoint (expected module.model.*, "
                                  "module.attacker.*, module.normalizer.*)")
    for prefix in ("module.normalizer.", "module.attacker.normalize."):
        for field_, ref in (("new_mean", IMAGENET_MEAN), ("new_std", IMAGENET_STD)):
            t = sd.get(prefix + field_)
            ok = t is None or (t.numel() == 3 and torch.allclose(t.flatten().float(), torch.tensor(ref), atol=1e-4))
            if not ok:
                raise CheckpointError(f"{prefix}{field_} is {t.flatten().tolist()}, not ImageNet's {list(ref)}")
    return out


def convert_fast_adversarial(obj: Any, arch: str | None = None) -> dict:
    """Wong et al. ImageNet: ``{'epoch', 'arch', 'state_dict', 'best_prec1', 'optimizer'}``, ``module.`` prefix."""
    _check_arch(obj, "fast-adversarial", arch)
    sd = _tensor_dict(_field(obj, "state_dict", "fast-adversarial"), "fast-adversarial ckpt['state_dict']")
    bad = [k for k in sd if not k.startswith("module.")]
    if bad:
        raise CheckpointError(f"unexpected key {bad[0]!r} in a fast-adversarial checkpoint (expected module.*)")
    return {k[len("module."):]: v for k, v in sd.items()}


def convert_smoothing(obj: Any, arch: str | None = None) -> dict:
    """Cohen et al.: ``{'epoch', 'arch', 'state_dict', 'optimizer'}`` of
    ``Sequential(NormalizeLayer, DataParallel(resnet50))``.

    Weights sit under ``1.module.``; ``0.*`` (the normalize layer) is dropped. The published
    NormalizeLayer keeps mean/std as plain attributes, so its file has no ``0.*`` keys at all.
    """
    _check_arch(obj, "random-smoothing", arch)
    sd = _tensor_dict(_field(obj, "state_dict", "random-smoothing"), "random-smoothing ckpt['state_dict']")
    out = {}
    for k, v in sd.items():
        if k.startswith("1.module."):
            out[k[len("1.module."):]] = v
        elif not k.startswith("0."):
            raise CheckpointError(f"unexpected key {k!r} in a random-smoothing checkpoint (expected 1.module.*, 0.*)")
    return out


@lru_cache(maxsize=None)
def reference_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of ``build_model(arch, 1000).state_dict()`` (= torchvision's), built on the meta device."""
    from ..models import build_model

    from ..models.inception import INCEPTION_ARCHS, build_inception_graph

    with torch.device("meta"):
        if arch in INCEPTION_ARCHS:  # the FID feature networks (repro/fid.py, repro/models/inception.py)
            model = build_inception_graph(arch)
        else:
            model = build_model(arch, 1000)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def validate_state_dict(sd: Mapping[str, torch.Tensor], arch: str) -> None:
    ref = reference_shapes(arch)
    missing = [k for k in ref if k not in sd]
    if missing:
        raise CheckpointError(f"lacks {len(missing)} weights of torchvision {arch}, e.g. {missing[0]!r}")
    for k, shape in ref.items():
        if tuple(sd[k].shape) != shape:
            raise CheckpointError(f"{k!r} has shape {tuple(sd[k].shape)}, torchvision {arch} needs {shape}")
    extra = [k for k in sd if k not in ref]
    if extra:
        raise CheckpointError(f"has {len(extra)} keys torchvision {arch} does not, e.g. {extra[0]!r}")


def convert(entry: PublishedWeights, obj: Any, path: str | os.PathLike = "<memory>") -> OrderedDict:
    """Loaded checkpoint -> plain torchvision state_dict (keys and order of ``torchvision.models.<arch>()``).

    BatchNorm counters missing from files older than torch 0.4.1 are filled with 0, as
    ``BatchNorm._load_from_state_dict`` does for such files.
    """
    try:
        sd = dict(entry.converter(obj, entry.arch))
        ref = reference_shapes(entry.arch)
        for k in ref:
            bn = k[: -len("num_batches_tracked")]
            if k.endswith(".num_batches_tracked") and k not in sd and bn + "running_mean" in sd:
                sd[k] = torch.tensor(0, dtype=torch.long)
        validate_state_dict(sd, entry.arch)
    except CheckpointError as e:
        raise WeightsError(f"{str(path)!r} ({entry.name}): {e}") from None
    return OrderedDict((k, sd[k].detach().to("cpu").contiguous().clone()) for k in ref)
