"""Iterative magnitude pruning with rewinding to the pretrained weights (Double-Win).

Round 1 prunes the pretrained weights directly (OMP at ``rate``). Every later
round starts from the rewound ticket (pretrained * mask), calls
``ctx.retrain(model, mask)``, prunes by global magnitude of the retrained
weights until the round's cumulative sparsity is reached (already pruned
weights stay pruned), then rewinds the whole model (all parameters and
buffers) to the pretrained state and re-applies the cumulative mask.

Cumulative sparsities follow ``1 - (1 - rate)^k``; the last round is partial
and stops exactly at the target (``round(target * N)`` pruned weights). Each
round prunes ``round(s_k * N)`` weights in total; PyTorch's prune container
used by the official code rounds the per-round increment instead, which can
differ by at most one weight per round.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import PRUNERS, PruneContext, check_finite, check_sparsity, global_select
from .mask import Mask

_EPS = 1e-9


def imp_schedule(target: float, rate: float = 0.2) -> list[float]:
    """Cumulative sparsity after each IMP round, ending exactly at ``target``.

    ``imp_schedule(0.5)`` = ``[0.2, 0.36, 0.488, 0.5]``; ``imp_schedule(0.36)`` =
    ``[0.2, 0.36]``; ``imp_schedule(0)`` = ``[]``.
    """
    target = check_sparsity(target)
    if not 0 < rate < 1:
        raise ValueError(f"IMP rate {rate!r} is outside (0, 1)")
    out: list[float] = []
    k = 0
    while target > 0:
        k += 1
        s = round(1.0 - (1.0 - rate) ** k, 12)
        if s >= target - _EPS:
            out.append(target)
            break
        out.append(s)
    return out


def prune_remaining(model: nn.Module, mask: Mask, num_pruned: int) -> Mask:
    """Global magnitude pruning of the model's current weights until ``num_pruned`` scope weights
    are pruned in total; weights already pruned by ``mask`` stay pruned."""
    params = dict(model.named_parameters())
    names = list(mask.keys())
    scores = []
    with torch.no_grad():
        for n in names:
            w = params[n].detach()
            check_finite(n, w)
            sc = w.abs().to("cpu", torch.float64).reshape(-1)
            sc[~mask[n].reshape(-1)] = -float("inf")  # already pruned: stays pruned
            scores.append(sc)
    pruned = global_select(scores, [1] * len(names), num_pruned)
    return Mask({n: ~pr.reshape(params[n].shape) for n, pr in zip(names, pruned)})


def run_imp(model: nn.Module, sparsity: float, ctx: PruneContext) -> list[Mask]:
    """Run IMP; returns the cumulative mask of every round (last = the ticket).

    On return ``model`` holds its original state with the final mask applied
    (surviving weights bit-identical to the values it had on entry).
    """
    target = check_sparsity(sparsity)
    if ctx.granularity != "unstructured":
        raise ValueError(f"imp supports only unstructured pruning, got granularity {ctx.granularity!r}")
    schedule = imp_schedule(target, ctx.rate)
    if len(schedule) > 1 and ctx.retrain is None:
        raise ValueError(f"imp to sparsity {target} needs {len(schedule)} rounds and ctx.retrain is None")
    names = ctx.names(model)
    pretrained = {k: v.detach().clone() for k, v in model.state_dict().items()}
    mask = Mask.ones_like(model, names)
    total = mask.num_total
    history: list[Mask] = []
    for k, s in enumerate(schedule, start=1):
        if k > 1:
            ctx.retrain(model, mask)
        mask = prune_remaining(model, mask, round(s * total))
        model.load_state_dict(pretrained)
        mask.apply(model)
        history.append(mask)
        if ctx.on_round is not None:
            ctx.on_round(k, mask)
    return history or [mask]


@PRUNERS.register("imp")
def _imp(model: nn.Module, sparsity: float, ctx: PruneContext) -> Mask:
    """IMP (A-IMP when ``ctx.retrain`` trains adversarially); rewinds ``model`` to the ticket."""
    return run_imp(model, sparsity, ctx)[-1]


def continue_imp(model: nn.Module, start: Mask | None, sparsity: float, ctx: PruneContext) -> Mask:
    """IMP from a saved round: one more (partial) round that lands exactly on ``sparsity``.

    ``model`` holds the pretrained weights; ``start`` is the cumulative mask of
    an earlier round (``None``: run IMP from scratch). The rewound ticket
    (pretrained * start) is retrained, the remaining weights are pruned by
    magnitude down to ``round(sparsity * N)`` kept-out weights, and the model is
    rewound to the pretrained values with the final mask applied.
    """
    target = check_sparsity(sparsity)
    if start is None:
        return run_imp(model, target, ctx)[-1]
    if start.sparsity >= target:
        raise ValueError(f"IMP cannot continue from sparsity {start.sparsity:.4f} to the lower {target}")
    if ctx.retrain is None:
        raise ValueError("continue_imp needs ctx.retrain")
    pretrained = {k: v.detach().clone() for k, v in model.state_dict().items()}
    start.apply(model)
    ctx.retrain(model, start)
    mask = prune_remaining(model, start, round(target * start.num_total))
    model.load_state_dict(pretrained)
    mask.apply(model)
    return mask
