"""The ticket: one ``Mask`` type.

A mask maps parameter names (torchvision names) to binary tensors of the
parameter's shape. Entries are validated to be exactly 0/1 on assignment and
stored as ``torch.bool``. Saved as a small weights-only tensor file plus a
``sparsity_report.json`` beside it (open_lth's convention).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Mapping

import torch
from torch import nn

from ..base.errors import CheckpointError, MaskError
from ..base.io import load_torch, save_json, save_torch
from ..models import prunable_names

REPORT_NAME = "sparsity_report.json"


def _as_bool(name: str, value: torch.Tensor) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise MaskError(f"mask entry {name!r} must be a tensor, got {type(value).__name__}")
    if value.dtype == torch.bool:
        return value.detach().cpu().clone()
    v = value.detach().cpu()
    if v.is_floating_point() and not torch.isfinite(v).all():
        raise MaskError(f"mask entry {name!r} contains NaN/inf; a mask must be 0/1")
    if not ((v == 0) | (v == 1)).all():
        bad = v[(v != 0) & (v != 1)].flatten()[:3].tolist()
        raise MaskError(f"mask entry {name!r} must be 0/1, found values such as {bad}")
    return v.bool()


class Mask:
    """Binary tensors keyed by parameter name (``True`` = weight kept)."""

    def __init__(self, tensors: Mapping[str, torch.Tensor] | None = None):
        self._m: dict[str, torch.Tensor] = {}
        for k, v in (tensors or {}).items():
            self[k] = v

    # -- mapping interface -------------------------------------------------
    def __setitem__(self, name: str, value: torch.Tensor) -> None:
        if not isinstance(name, str) or not name:
            raise MaskError(f"mask keys must be parameter names, got {name!r}")
        self._m[name] = _as_bool(name, value)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._m[name]

    def __contains__(self, name: object) -> bool:
        return name in self._m

    def __iter__(self) -> Iterator[str]:
        return iter(self._m)

    def __len__(self) -> int:
        return len(self._m)

    def keys(self):
        return self._m.keys()

    def items(self):
        return self._m.items()

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Mask) and self.keys() == other.keys()
                and all(torch.equal(self[k], other[k]) for k in self))

    def __repr__(self) -> str:
        return f"Mask({len(self)} tensors, sparsity={self.sparsity:.4f})"

    # -- construction --------------------------------------------------------
    @classmethod
    def ones_like(cls, model: nn.Module, names: list[str] | None = None) -> "Mask":
        """A dense mask over ``names`` (default: every conv weight)."""
        params = dict(model.named_parameters())
        names = prunable_names(model) if names is None else names
        missing = [n for n in names if n not in params]
        if missing:
            raise MaskError(f"parameters {missing[:3]} are not in {type(model).__name__}")
        return cls({n: torch.ones_like(params[n], dtype=torch.bool, device="cpu") for n in names})

    # -- statistics -------------------------------------------------------------
    @property
    def num_total(self) -> int:
        return sum(v.numel() for v in self._m.values())

    @property
    def num_kept(self) -> int:
        return sum(int(v.sum()) for v in self._m.values())

    @property
    def sparsity(self) -> float:
        """Fraction of masked-scope weights that are pruned (zero)."""
        total = self.num_total
        return 0.0 if total == 0 else 1.0 - self.num_kept / total

    @property
    def density(self) -> float:
        return 1.0 - self.sparsity

    def layer_sparsity(self) -> dict[str, float]:
        return {k: 1.0 - float(v.float().mean()) for k, v in self._m.items()}

    def report(self) -> dict:
        return {
            "total": self.num_total,
            "unpruned": self.num_kept,
            "sparsity": self.sparsity,
            "layers": {k: {"total": v.numel(), "unpruned": int(v.sum())} for k, v in self._m.items()},
        }

    # -- use on a model -----------------------------------------------------------
    def check_compatible(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        missing = [k for k in self._m if k not in params]
        if missing:
            raise MaskError(
                f"mask names {missing[:3]} are not parameters of {type(model).__name__} "
                "(a mask for another architecture?)")
        for k, v in self._m.items():
            if tuple(params[k].shape) != tuple(v.shape):
                raise MaskError(
                    f"mask {k!r} has shape {tuple(v.shape)} but the parameter has {tuple(params[k].shape)}")

    @torch.no_grad()
    def apply(self, model: nn.Module) -> nn.Module:
        """Zero the pruned weights in place."""
        self.check_compatible(model)
        params = dict(model.named_parameters())
        for k, v in self._m.items():
            p = params[k]
            p.mul_(v.to(device=p.device, dtype=p.dtype))
        return model

    def to_device(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        """Float copies on ``device`` (for fast multiplication in training callbacks)."""
        return {k: v.to(device=device, dtype=dtype) for k, v in self._m.items()}

    # -- algebra --------------------------------------------------------------
    def iou(self, other: "Mask") -> float:
        return mask_iou(self, other)

    # -- persistence ----------------------------------------------------------
    def save(self, path: str | os.PathLike, report: bool = True) -> None:
        """Atomically write the mask (and ``sparsity_report.json`` beside it)."""
        path = Path(path)
        save_torch({k: v for k, v in self._m.items()}, path)
        if report:
            save_json(self.report(), path.parent / REPORT_NAME)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Mask":
        obj = load_torch(path)
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise CheckpointError(f"{str(path)!r} is not a mask file (expected a dict of tensors)")
        try:
            return cls(obj)
        except MaskError as e:
            raise MaskError(f"{str(path)!r}: {e}") from None


def mask_iou(a: Mask, b: Mask) -> float:
    """|a ∩ b| / |a ∪ b| over the kept weights of the common scope (Double-Win Fig. A8)."""
    if set(a.keys()) != set(b.keys()):
        raise MaskError("masks cover different parameters; IoU needs the same scope")
    inter = union = 0
    for k in a:
        if a[k].shape != b[k].shape:
            raise MaskError(f"mask {k!r} shapes differ: {tuple(a[k].shape)} vs {tuple(b[k].shape)}")
        inter += int((a[k] & b[k]).sum())
        union += int((a[k] | b[k]).sum())
    return 1.0 if union == 0 else inter / union


def zero_kernels(mask: Mask) -> dict[str, int]:
    """Per conv layer, how many [out, in] kernels are entirely pruned (Double-Win Fig. 7/A8)."""
    out = {}
    for k, v in mask.items():
        if v.dim() == 4:
            out[k] = int((~v.flatten(2).any(dim=2)).sum())
    return out


def kernel_zero_map(mask: Mask, name: str) -> torch.Tensor:
    """[out, in] boolean map of fully pruned kernels of one conv layer (heatmap of Fig. 7)."""
    v = mask[name]
    if v.dim() != 4:
        raise MaskError(f"{name!r} is not a conv weight")
    return ~v.flatten(2).any(dim=2)
