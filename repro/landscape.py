"""Loss landscapes and training trajectories (Li et al., 2018), for Double-Win Fig. 6 / A9.

The plane is spanned by the first two principal directions of the training
trajectory (the per-epoch weights minus the final weights), as Li et al. do
for trajectory plots; both directions are zero on pruned weights, so every
point of the plane is the same subnetwork. The loss is the mean cross-entropy
of the model (eval mode, BN statistics of the final model) on fixed inputs:
clean test images, or PGD-20 images crafted once against the final model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .attacks import bn_mode


def _flat(state: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    return torch.cat([state[n].detach().reshape(-1).double() for n in names])


@dataclass
class Plane:
    names: list[str]
    final: torch.Tensor           # flat final weights
    d1: torch.Tensor              # unit directions
    d2: torch.Tensor
    coords: np.ndarray            # [epochs+1, 2] trajectory in the plane
    explained: tuple[float, float]  # fraction of trajectory variance per direction


def trajectory_plane(snapshots: list[dict[str, torch.Tensor]], mask_flat: torch.Tensor | None = None) -> Plane:
    if len(snapshots) < 3:
        raise ValueError(f"a trajectory plane needs at least 3 snapshots, got {len(snapshots)}")
    names = sorted(snapshots[-1])
    final = _flat(snapshots[-1], names)
    diffs = torch.stack([_flat(s, names) - final for s in snapshots[:-1]])
    if mask_flat is not None:
        diffs = diffs * mask_flat
    u, s, vh = torch.linalg.svd(diffs, full_matrices=False)
    d1, d2 = vh[0], vh[1]
    var = (s ** 2) / (s ** 2).sum().clamp_min(1e-30)
    all_snaps = torch.stack([_flat(sn, names) - final for sn in snapshots])
    coords = torch.stack([all_snaps @ d1, all_snaps @ d2], dim=1).numpy()
    return Plane(names, final, d1, d2, coords, (float(var[0]), float(var[1]) if len(var) > 1 else 0.0))


@torch.no_grad()
def _set_flat(model: nn.Module, names: list[str], flat: torch.Tensor) -> None:
    params = dict(model.named_parameters())
    i = 0
    for n in names:
        p = params[n]
        k = p.numel()
        p.copy_(flat[i:i + k].view_as(p).to(p.dtype))
        i += k


@torch.no_grad()
def loss_grid(model: nn.Module, plane: Plane, alphas: np.ndarray, betas: np.ndarray,
              x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> np.ndarray:
    """Mean cross-entropy at final + a*d1 + b*d2 for every (b, a) of the grid (rows: betas)."""
    grid = np.zeros((len(betas), len(alphas)))
    with bn_mode(model, "eval"):
        for i, b in enumerate(betas):
            for j, a in enumerate(alphas):
                _set_flat(model, plane.names, plane.final + float(a) * plane.d1 + float(b) * plane.d2)
                tot = 0.0
                for s in range(0, x.shape[0], batch):
                    tot += F.cross_entropy(model(x[s:s + batch]), y[s:s + batch], reduction="sum").item()
                grid[i, j] = tot / x.shape[0]
        _set_flat(model, plane.names, plane.final)
    return grid


def grid_axes(coords: np.ndarray, points: int, margin: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Evenly spaced axes covering the trajectory with a margin, with the final point (0, 0) exactly on
    the grid, so the grid's value there is the final model's loss."""
    if points < 2:
        raise ValueError(f"points must be >= 2, got {points}")
    axes = []
    for c in (coords[:, 0], coords[:, 1]):
        lo, hi = min(c.min(), 0.0), max(c.max(), 0.0)
        span = max(hi - lo, 1e-3)
        lo, hi = lo - margin * span, hi + margin * span
        i = int(np.clip(round(-lo / (hi - lo) * (points - 1)), 1 if lo < 0 else 0,
                        points - 2 if hi > 0 else points - 1))  # index of 0 on the axis
        step = max(-lo / i if i > 0 else 0.0, hi / (points - 1 - i) if i < points - 1 else 0.0)
        axes.append((np.arange(points) - i) * step)
    return axes[0], axes[1]
