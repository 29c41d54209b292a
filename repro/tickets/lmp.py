"""Learnable mask pruning (LMP), Robust Tickets eq. (3), edge-popup style.

Each scope weight gets a real-valued score tensor (one score per group for
structured granularities). The forward pass uses
``weight * topk_mask(|scores|)`` with the top-k taken per layer
(``k = round(density * num_groups)``, ties broken by index); the backward pass
treats the top-k as identity (straight-through estimator), so the gradient
reaching the scores is ``dL/dmask * sign(scores)`` as in hidden-networks'
``GetSubnet.apply(scores.abs(), k)``. Masked weights are frozen.

The mask is attached with ``torch.nn.utils.parametrize`` on each weight, so the
model's ``forward`` is unchanged; while attached a conv's weight lives at
``<module>.parametrizations.weight.original``. ``detach_scores`` restores the
original parameter objects and names.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from .base import (PRUNERS, PruneContext, check_granularity, check_sparsity, expand_groups,
                   group_shape, scope_names)
from .mask import Mask


class _TopKSTE(torch.autograd.Function):
    """Binary top-k of ``scores`` (1 for the k largest); gradient passed straight through."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, k: int) -> torch.Tensor:
        return topk_binary(scores, k).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def topk_binary(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool tensor with ``True`` at the ``k`` largest entries (ties: lower index first)."""
    flat = scores.detach().reshape(-1)
    n = flat.numel()
    k = max(0, min(int(k), n))
    if k == 0:
        return torch.zeros(scores.shape, dtype=torch.bool, device=flat.device)
    thr = torch.kthvalue(flat, n - k + 1).values  # k-th largest; O(n) unlike a sort
    out = flat > thr
    ties = torch.nonzero(flat == thr).reshape(-1)
    out[ties[: k - int(out.sum())]] = True
    return out.reshape(scores.shape)


class ScoreMask(nn.Module):
    """Parametrization ``w -> w * topk_mask(|scores|)`` broadcast over groups."""

    def __init__(self, scores: torch.Tensor, k: int, granularity: str, weight_shape: torch.Size,
                 weight_requires_grad: bool, param_order: list[str]):
        super().__init__()
        self.scores = nn.Parameter(scores)
        self.k = int(k)
        self.granularity = granularity
        self.weight_shape = tuple(weight_shape)
        self.weight_requires_grad = weight_requires_grad  # restored by detach_scores
        self.param_order = list(param_order)  # the module's parameter order, restored too

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        m = _TopKSTE.apply(self.scores.abs(), self.k)
        return w * expand_groups(m, w.shape, self.granularity)

    def binary_mask(self) -> torch.Tensor:
        g = topk_binary(self.scores.detach().abs(), self.k)
        return expand_groups(g, self.weight_shape, self.granularity).cpu().clone()

    def extra_repr(self) -> str:
        return f"k={self.k}/{self.scores.numel()}, granularity={self.granularity}"


def _split(name: str) -> tuple[str, str]:
    mod, _, attr = name.rpartition(".")
    return mod, attr


def _attached(model: nn.Module) -> list[tuple[str, nn.Module, str, ScoreMask]]:
    out = []
    for mname, m in model.named_modules():
        if parametrize.is_parametrized(m):
            for attr, plist in m.parametrizations.items():
                for p in plist:
                    if isinstance(p, ScoreMask):
                        out.append((f"{mname}.{attr}" if mname else attr, m, attr, p))
    return out


def attach_scores(model: nn.Module, density: float, granularity: str = "unstructured", seed: int = 0,
                  scope: list[str] | None = None) -> list[nn.Parameter]:
    """Add learnable scores to every scope weight; returns them.

    Scores are initialised kaiming-uniform (``a = sqrt(5)``, bound from the
    weight's fan-in, generator seeded with ``seed``). The masked weights get
    ``requires_grad = False``; other parameters are left as they are.
    """
    density = float(density)
    if not 0 < density <= 1:
        raise ValueError(f"density {density} is outside (0, 1]")
    check_granularity(granularity)
    if _attached(model):
        raise ValueError("model already has LMP scores attached; call detach_scores first")
    names = scope_names(model, scope)
    gen = torch.Generator().manual_seed(int(seed))
    scores_out = []
    for n in names:
        mname, attr = _split(n)
        module = model.get_submodule(mname)
        w = getattr(module, attr)
        gs = group_shape(w.shape, granularity)
        scores = torch.empty(gs, dtype=w.dtype)
        if granularity == "unstructured" and w.dim() >= 2:
            nn.init.kaiming_uniform_(scores, a=math.sqrt(5), generator=gen)
        else:  # same distribution as kaiming_uniform_ on the weight itself
            fan_in = math.prod(w.shape[1:]) if w.dim() > 1 else w.numel()
            bound = math.sqrt(2.0 / (1 + 5.0)) * math.sqrt(3.0 / fan_in)
            scores.uniform_(-bound, bound, generator=gen)
        k = round(density * scores.numel())
        pm = ScoreMask(scores.to(w.device), k, granularity, w.shape, w.requires_grad,
                       list(module._parameters))
        w.requires_grad_(False)
        parametrize.register_parametrization(module, attr, pm)
        scores_out.append(pm.scores)
    return scores_out


@torch.no_grad()
def current_mask(model: nn.Module) -> Mask:
    """The binary mask the attached scores currently select."""
    att = _attached(model)
    if not att:
        raise ValueError("model has no LMP scores attached")
    return Mask({name: pm.binary_mask() for name, _, _, pm in att})


@torch.no_grad()
def detach_scores(model: nn.Module) -> Mask:
    """Remove the scores, restore the original weight parameters; returns the final mask."""
    mask = current_mask(model)
    for _, module, attr, pm in _attached(model):
        parametrize.remove_parametrizations(module, attr, leave_parametrized=False)
        getattr(module, attr).requires_grad_(pm.weight_requires_grad)
        params = dict(module._parameters)
        module._parameters.clear()
        for key in pm.param_order + [k for k in params if k not in pm.param_order]:
            if key in params:
                module._parameters[key] = params[key]
    return mask


@PRUNERS.register("lmp")
def _lmp(model: nn.Module, sparsity: float, ctx: PruneContext) -> Mask:
    """Attach scores, ``ctx.train_scores(model)``, detach; masked weights stay untouched."""
    s = check_sparsity(sparsity)
    if ctx.train_scores is None:
        raise ValueError("lmp needs ctx.train_scores")
    attach_scores(model, 1.0 - s, ctx.granularity, ctx.seed, ctx.scope)
    try:
        ctx.train_scores(model)
    finally:
        mask = detach_scores(model)
    return mask
