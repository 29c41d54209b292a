"""Tickets: the Mask type and the pruning methods that draw it.

``draw_ticket(method, model, sparsity, ctx)`` with ``method`` one of
``omp``, ``random``, ``imp``, ``lmp`` (see ``PRUNERS.names()``).
"""
from .mask import Mask, MaskError, kernel_zero_map, mask_iou, zero_kernels
from .base import (GRANULARITIES, PRUNERS, PruneContext, draw_ticket, expand_groups, global_select,
                   group_shape, to_groups)
from .omp import omp_mask
from .random_prune import random_mask
from .imp import continue_imp, imp_schedule, run_imp
from .lmp import ScoreMask, attach_scores, current_mask, detach_scores

__all__ = [
    "GRANULARITIES",
    "Mask",
    "MaskError",
    "PRUNERS",
    "PruneContext",
    "ScoreMask",
    "attach_scores",
    "current_mask",
    "detach_scores",
    "draw_ticket",
    "expand_groups",
    "global_select",
    "group_shape",
    "continue_imp",
    "imp_schedule",
    "kernel_zero_map",
    "mask_iou",
    "omp_mask",
    "random_mask",
    "run_imp",
    "to_groups",
    "zero_kernels",
]
