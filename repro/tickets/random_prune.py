"""Random pruning: OMP's scope and exact global count with random scores.

Scores are ``torch.rand`` from a ``torch.Generator`` seeded with ``seed``,
drawn per layer in scope order (one per group for structured granularities),
so the same seed gives the same mask on any device.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .base import (PRUNERS, PruneContext, check_granularity, check_sparsity, global_select,
                   group_shape, group_size, masks_from_pruned, scope_names)
from .mask import Mask


def random_mask(model: nn.Module, sparsity: float, granularity: str = "unstructured",
                seed: int = 0, scope: list[str] | None = None) -> Mask:
    """Random global mask with the same pruned count as ``omp_mask``; the model is not modified."""
    s = check_sparsity(sparsity)
    check_granularity(granularity)
    names = scope_names(model, scope)
    params = dict(model.named_parameters())
    shapes = [params[n].shape for n in names]
    gen = torch.Generator().manual_seed(int(seed))
    scores = [torch.rand(math.prod(group_shape(sh, granularity)), generator=gen, dtype=torch.float64)
              for sh in shapes]
    total = sum(math.prod(sh) for sh in shapes)
    pruned = global_select(scores, [group_size(sh, granularity) for sh in shapes], round(s * total))
    return masks_from_pruned(names, shapes, pruned, granularity)


@PRUNERS.register("random")
def _random(model: nn.Module, sparsity: float, ctx: PruneContext) -> Mask:
    return random_mask(model, sparsity, ctx.granularity, ctx.seed, ctx.scope)
