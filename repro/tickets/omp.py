"""One-shot global magnitude pruning (OMP), Double-Win / Robust Tickets.

Unstructured: the ``round(s * N)`` smallest ``|w|`` over all scope weights are
pruned (N = number of scope weights; ties: earlier layer, then lower index).

Structured (row / kernel / channel): a group's score is its L1 norm divided by
its size, i.e. its mean ``|w|``. Within a layer all groups have one size, so
this ranks exactly like the L1 norm; across layers it keeps the scale of the
unstructured criterion (a group of size 1 scores ``|w|``) and does not bias
the global ranking toward layers with small groups (a raw L1 norm of a 1x1
downsample kernel has 1 term, of a 3x3 kernel 9). Groups are pruned in
ascending order until the pruned weight count is closest to ``round(s * N)``.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import (PRUNERS, PruneContext, check_finite, check_granularity, check_sparsity,
                   global_select, group_size, masks_from_pruned, scope_names, to_groups)
from .mask import Mask


def magnitude_scores(w: torch.Tensor, granularity: str) -> torch.Tensor:
    """Mean ``|w|`` per group (``|w|`` itself when unstructured)."""
    a = w.detach().abs().to(torch.float64)
    return a.reshape(-1) if granularity == "unstructured" else to_groups(a, granularity).mean(dim=1)


@torch.no_grad()
def omp_mask(model: nn.Module, sparsity: float, granularity: str = "unstructured",
             scope: list[str] | None = None) -> Mask:
    """Global magnitude mask; the model is not modified."""
    s = check_sparsity(sparsity)
    check_granularity(granularity)
    names = scope_names(model, scope)
    params = dict(model.named_parameters())
    shapes = [params[n].shape for n in names]
    scores = []
    for n in names:
        check_finite(n, params[n])
        scores.append(magnitude_scores(params[n], granularity))
    total = sum(p.numel() for p in (params[n] for n in names))
    pruned = global_select(scores, [group_size(sh, granularity) for sh in shapes], round(s * total))
    return masks_from_pruned(names, shapes, pruned, granularity)


@PRUNERS.register("omp")
def _omp(model: nn.Module, sparsity: float, ctx: PruneContext) -> Mask:
    return omp_mask(model, sparsity, ctx.granularity, ctx.scope)
