"""Pruning-method registry, the context a method runs in, and group helpers.

A pruning method is a function ``fn(model, sparsity, ctx) -> Mask`` registered
in ``PRUNERS``. Sparsity is the fraction of scope weights removed.

Granularity (Robust Tickets, structured tickets): a weight ``[out, in, kh, kw]``
is split into groups that are kept or pruned together:

* ``unstructured``: every weight is its own group;
* ``row``: ``[out, in, kh]``, one kernel row across its width;
* ``kernel``: ``[out, in]``, one kh x kw kernel;
* ``channel``: ``[out]``, one output filter.

A tensor with fewer dimensions than the granularity needs (e.g. a Linear
weight put in scope by hand) falls back to one group per element of its leading
dimensions, so ``row``/``kernel`` on ``[out, in]`` means per element.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from ..models import prunable_names
from ..base.registry import Registry
from .mask import Mask, MaskError

PRUNERS: Registry[Callable[[nn.Module, float, "PruneContext"], Mask]] = Registry("pruning method")

# number of leading dimensions that index a group
_LEAD_DIMS = {"unstructured": None, "row": 3, "kernel": 2, "channel": 1}
GRANULARITIES = tuple(_LEAD_DIMS)


@dataclass
class PruneContext:
    """Everything a pruning method needs besides the model and the sparsity.

    ``retrain(model, mask)`` (IMP) trains ``model`` in place with ``mask``
    enforced; standard or adversarial retraining is the caller's choice.
    ``train_scores(model)`` (LMP) optimises the score parameters that
    ``attach_scores`` added (``[p for p in model.parameters() if p.requires_grad]``
    includes them). ``on_round(k, mask)`` (IMP) is called after round ``k`` with
    the cumulative mask, when the model holds the rewound ticket of that level.
    """

    seed: int = 0
    scope: Optional[list[str]] = None  # parameter names; None = every Conv2d weight
    granularity: str = "unstructured"
    rate: float = 0.2  # IMP: fraction of the remaining weights pruned per round
    retrain: Optional[Callable[[nn.Module, Mask], None]] = None
    train_scores: Optional[Callable[[nn.Module], None]] = None
    on_round: Optional[Callable[[int, Mask], None]] = None

    def __post_init__(self) -> None:
        if self.granularity not in _LEAD_DIMS:
            raise ValueError(
                f"unknown granularity {self.granularity!r}; allowed: {', '.join(GRANULARITIES)}")
        if not isinstance(self.rate, numbers.Real) or not 0 < float(self.rate) < 1:
            raise ValueError(f"IMP rate {self.rate!r} is outside (0, 1)")
        if self.scope is not None:
            if isinstance(self.scope, str) or not all(isinstance(n, str) for n in self.scope):
                raise ValueError(f"scope must be a list of parameter names, got {self.scope!r}")
            self.scope = list(self.scope)

    def names(self, model: nn.Module) -> list[str]:
        """The scope resolved against ``model`` (default: every Conv2d weight)."""
        return scope_names(model, self.scope)


def scope_names(model: nn.Module, scope: Optional[list[str]] = None) -> list[str]:
    names = prunable_names(model) if scope is None else list(scope)
    params = dict(model.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        raise MaskError(f"scope names {missing[:3]} are not parameters of {type(model).__name__}")
    if len(set(names)) != len(names):
        raise MaskError("scope lists a parameter twice")
    return names


def check_sparsity(sparsity: object) -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real):
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
    s = float(sparsity)
    if not (math.isfinite(s) and 0.0 <= s < 1.0):
        raise ValueError(f"sparsity {sparsity} is outside [0, 1)")
    return s


def check_granularity(granularity: str) -> str:
    if granularity not in _LEAD_DIMS:
        raise ValueError(f"unknown granularity {granularity!r}; allowed: {', '.join(GRANULARITIES)}")
    return granularity


def draw_ticket(method: str, model: nn.Module, sparsity: float, ctx: Optional[PruneContext] = None) -> Mask:
    """Draw a ticket with a registered method; returns a Mask over ``ctx``'s scope."""
    s = check_sparsity(sparsity)
    if method not in PRUNERS:
        raise ValueError(f"unknown pruning method {method!r}; allowed: {', '.join(PRUNERS.names())}")
    ctx = PruneContext() if ctx is None else ctx
    ctx.names(model)  # validate the scope before any work
    return PRUNERS.get(method)(model, s, ctx)


# -- groups -------------------------------------------------------------------

def group_shape(shape: torch.Size | tuple, granularity: str) -> tuple[int, ...]:
    """Shape of the per-group score tensor for a parameter of ``shape``."""
    lead = _LEAD_DIMS[check_granularity(granularity)]
    shape = tuple(shape)
    return shape if lead is None else shape[:min(lead, len(shape))]


def to_groups(t: torch.Tensor, granularity: str) -> torch.Tensor:
    """View ``t`` as ``[num_groups, group_size]``."""
    gs = group_shape(t.shape, granularity)
    return t.reshape(math.prod(gs), -1)


def expand_groups(g: torch.Tensor, shape: torch.Size | tuple, granularity: str) -> torch.Tensor:
    """Broadcast per-group values (any shape with ``prod(group_shape)`` elements) to ``shape``."""
    gs = group_shape(shape, granularity)
    g = g.reshape(gs + (1,) * (len(shape) - len(gs)))
    return g.expand(tuple(shape))


def group_size(shape: torch.Size | tuple, granularity: str) -> int:
    return math.prod(tuple(shape)) // max(1, math.prod(group_shape(shape, granularity)))


def global_select(scores: list[torch.Tensor], sizes: list[int], num_prune: int) -> list[torch.Tensor]:
    """Prune the lowest-scoring groups across all layers.

    ``scores[i]`` holds one score per group of layer ``i`` (groups of ``sizes[i]``
    weights). Groups are ranked by score ascending; ties go to the earlier layer,
    then the lower group index (stable sort), so the result is deterministic. The
    pruned set is the prefix of that ranking whose weight count is closest to
    ``num_prune`` (exact when all groups have size 1; off by at most half a group
    otherwise; on a tie the smaller prefix). Returns per-layer bool tensors,
    ``True`` = pruned.
    """
    counts = [s.numel() for s in scores]
    if sum(counts) == 0:
        return [torch.zeros(0, dtype=torch.bool) for _ in scores]
    flat = torch.cat([s.detach().reshape(-1).to("cpu", torch.float64) for s in scores])
    if all(int(z) == 1 for z in sizes):  # unstructured: O(N) selection, same result as the stable sort
        k = max(0, min(int(num_prune), flat.numel()))
        pruned = torch.zeros(flat.numel(), dtype=torch.bool)
        if k > 0:
            thr = torch.kthvalue(flat, k).values
            pruned = flat < thr
            ties = torch.nonzero(flat == thr).reshape(-1)
            pruned[ties[: k - int(pruned.sum())]] = True
        return list(torch.split(pruned, counts))
    size = torch.cat([torch.full((c,), int(z), dtype=torch.int64) for c, z in zip(counts, sizes)])
    order = torch.argsort(flat, stable=True)
    cum = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(size[order], 0)])
    hi = int(torch.searchsorted(cum, torch.tensor([num_prune], dtype=torch.int64))[0])
    hi = min(hi, cum.numel() - 1)
    p = hi
    if hi > 0 and abs(int(cum[hi - 1]) - num_prune) <= abs(int(cum[hi]) - num_prune):
        p = hi - 1
    pruned = torch.zeros(flat.numel(), dtype=torch.bool)
    pruned[order[:p]] = True
    return list(torch.split(pruned, counts))


def masks_from_pruned(names: list[str], shapes: list[torch.Size], pruned: list[torch.Tensor],
                      granularity: str) -> Mask:
    return Mask({n: ~expand_groups(pr, sh, granularity).clone()
                 for n, sh, pr in zip(names, shapes, pruned)})


def check_finite(name: str, w: torch.Tensor) -> None:
    if not bool(torch.isfinite(w.detach().abs().sum(dtype=torch.float64))):  # NaN/inf propagate
        raise ValueError(f"parameter {name!r} contains NaN/inf; cannot rank it by magnitude")
