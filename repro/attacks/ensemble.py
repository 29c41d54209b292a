"""APGD (Croce & Hein 2020) and the AutoAttack ensemble (members: the ``AA_MEMBERS`` registry: APGD-CE, APGD-T,
FAB-T (``fab.py``) and Square (``square.py``), AutoAttack's standard order); each member attacks the points still
robust after the previous ones."""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..base.registry import Registry
from .fab import fab_t
from .linf import ATTACKS
from .modes import full_precision, no_param_grad
from .square import square
APGD_OBJECTIVES = ("ce", "dlr", "dlr_targeted")


def _apgd_objective(logits: torch.Tensor, y: torch.Tensor, objective: str,
                    target: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-example loss to maximise: cross-entropy; the difference-of-logits ratio
    ``-(z_y - max_{j!=y} z_j) / (z_pi1 - z_pi3)`` (scale invariant, >= 3 classes); or its targeted form
    ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` (Croce & Hein 2020, Sec. 4; >= 4 classes), where
    ``pi`` sorts the logits in decreasing order."""
    logits = logits.float()
    if objective == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    z_sorted, idx_sorted = logits.sort(dim=1)
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    if objective == "dlr_targeted":
        z_t = logits.gather(1, target[:, None]).squeeze(1)
        return -(z_y - z_t) / (z_sorted[:, -1] - 0.5 * (z_sorted[:, -3] + z_sorted[:, -4]) + 1e-12)
    top_is_y = (idx_sorted[:, -1] == y).float()
    z_other = z_sorted[:, -2] * top_is_y + z_sorted[:, -1] * (1.0 - top_is_y)  # best wrong class
    return -(z_y - z_other) / (z_sorted[:, -1] - z_sorted[:, -3] + 1e-12)


def _uniform_start(x: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """``t / max|t|`` per example with ``t`` uniform in [-1, 1] (APGD's and FAB's random start direction)."""
    if generator is None:
        t = torch.rand(x.shape, device=x.device, dtype=x.dtype)
    else:
        t = torch.rand(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
    t = t.mul_(2.0).sub_(1.0)
    return t / t.abs().flatten(1).amax(1).clamp_min(1e-12).view((len(x),) + (1,) * (x.dim() - 1))


def apgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float = 8 / 255,
    steps: int = 100,
    objective: str = "ce",
    rho: float = 0.75,
    amp: bool = False,
    generator: Optional[torch.Generator] = None,
    target: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """L-inf APGD (Croce & Hein, ICML 2020; AutoAttack's ``apgd-ce`` / ``apgd-dlr`` / ``apgd-t``), one restart.

    Step size starts at ``2 eps`` and is halved per example at the checkpoints
    ``w_j = ceil(p_j steps)`` (``p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``)
    when fewer than ``rho`` of the steps since the last checkpoint raised the loss, or when
    neither the step size nor the best loss changed since then; the iterate then restarts
    from the best point. Momentum 0.75 after the first step. The random start is
    ``eps * t / max|t|`` with ``t`` uniform in [-1, 1] (``generator`` makes it reproducible).
    ``objective``: ``'ce'`` (APGD-CE), ``'dlr'`` (APGD-DLR, invariant to the scale of the
    logits; needs >= 3 classes) or ``'dlr_targeted'`` (APGD-T's loss towards the class ``target``
    of each example; needs >= 4 classes). Returns detached images in [0, 1] within the eps-ball: the
    first misclassified iterate of each example, else its highest-loss iterate. The model's
    train/eval mode is left untouched; wrap calls in :func:`bn_mode`.
    """
    if eps < 0:
        raise ValueError(f"attack eps must be >= 0, got {eps}")
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ValueError(f"attack steps must be an integer >= 1, got {steps!r}")
    if objective not in APGD_OBJECTIVES:
        raise ValueError(f"apgd objective must be one of {APGD_OBJECTIVES}, got {objective!r}")
    if (objective == "dlr_targeted") != (target is not None):
        raise ValueError("apgd: a target class per example is needed by, and only by, objective 'dlr_targeted'")
    if not 0 < rho <= 1:
        raise ValueError(f"apgd rho must be in (0, 1], got {rho}")
    x = x.detach()
    if eps == 0 or len(x) == 0:
        return x.clone()
    steps = int(steps)
    n = len(x)
    view = (n,) + (1,) * (x.dim() - 1)
    # checkpoints (as in the reference implementation: first after 22 %, shrinking by 3 % down to 6 %)
    period, min_period, decr = max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)

    def project(z: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return torch.min(torch.max(z, x0 - eps), x0 + eps).clamp_(0.0, 1.0)

    def loss_and_grad(z: torch.Tensor, ya: torch.Tensor, ta: Optional[torch.Tensor]):
        z = z.detach().requires_grad_(True)
        with torch.autocast(device_type=x.device.type, enabled=amp):
            logits = model(z)
        per = _apgd_objective(logits, ya, objective, ta)
        (g,) = torch.autograd.grad(per.sum() * (len(z) if amp else 1), z)
        return per.detach(), g.detach(), logits.detach()

    t = _uniform_start(x, generator)
    with no_param_grad(model), torch.enable_grad():
        x_adv = project(x + eps * t, x)
        loss, grad, logits = loss_and_grad(x_adv, y, target)
        out = x_adv.clone()  # per example: its first misclassified iterate, else (at the end) its best one
        # Early exit: an example is dropped from the batch the moment it is misclassified (its result is then
        # fixed). Every per-example quantity (step size, checkpoints, best point) is independent of the others
        # in eval mode, so the survivors' iterates are those of the full batch; only the cost shrinks.
        act = (logits.argmax(1) == y).nonzero().flatten()  # indices (into x) of the examples still attacked
        xa, ya, ta = x[act], y[act], None if target is None else target[act]
        x_adv, grad, loss = x_adv[act], grad[act], loss[act]
        x_best, loss_best, grad_best = x_adv.clone(), loss.clone(), grad.clone()
        step = torch.full((len(act),) + view[1:], 2.0 * eps, device=x.device, dtype=x.dtype)
        x_prev = x_adv.clone()
        losses = torch.zeros(steps + 1, len(act), device=x.device)  # losses[0]: the start, [i + 1]: iterate i
        losses[0] = loss
        loss_best_last = loss_best.clone()
        reduced_last = torch.ones(len(act), dtype=torch.bool, device=x.device)
        since, k = 0, period
        for i in range(steps):
            if len(act) == 0:
                break
            with torch.no_grad():
                momentum = x_adv - x_prev
                x_prev = x_adv
                a = 0.75 if i > 0 else 1.0
                z = project(x_adv + step * grad.sign(), xa)
                x_adv = project(x_adv + a * (z - x_adv) + (1 - a) * momentum, xa)
            loss, grad, logits = loss_and_grad(x_adv, ya, ta)
            with torch.no_grad():
                losses[i + 1] = loss
                better = loss > loss_best
                x_best[better], grad_best[better], loss_best[better] = x_adv[better], grad[better], loss[better]
                since += 1
                if since == k:  # checkpoint: halve the step where progress stalled
                    rises = (losses[i + 2 - k:i + 2] > losses[i + 1 - k:i + 1]).float().sum(0)
                    stall = rises <= k * rho  # condition 1: too few of the last k steps raised the loss
                    stall |= ~reduced_last & (loss_best_last >= loss_best)  # condition 2: nothing changed
                    reduced_last, loss_best_last = stall.clone(), loss_best.clone()
                    if bool(stall.any()):
                        step[stall] /= 2.0
                        x_adv_next = x_adv.clone()
                        x_adv_next[stall], grad[stall] = x_best[stall], grad_best[stall]
                    else:
                        x_adv_next = x_adv
                    k, since = max(k - decr, min_period), 0
                else:
                    x_adv_next = x_adv
                fooled = logits.argmax(1) != ya
                if bool(fooled.any()):
                    out[act[fooled]] = x_adv[fooled]
                    keep = ~fooled
                    act, xa, ya = act[keep], xa[keep], ya[keep]
                    ta = None if ta is None else ta[keep]
                    x_adv, x_prev, grad, step = x_adv_next[keep], x_prev[keep], grad[keep], step[keep]
                    x_best, loss_best, grad_best = x_best[keep], loss_best[keep], grad_best[keep]
                    losses, loss_best_last, reduced_last = losses[:, keep], loss_best_last[keep], reduced_last[keep]
                else:
                    x_adv = x_adv_next
        out[act] = x_best
        return out.detach()


ATTACKS.register("apgd")(apgd)


@torch.no_grad()
def _still_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return model(x).argmax(1) == y


def apgd_ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
            n_target_classes: int, generator: Optional[torch.Generator], *, queries: int = 5000) -> torch.Tensor:
    """AutoAttack's first member: APGD on the cross-entropy, one run of ``steps`` iterations."""
    return apgd(model, x, y, eps=eps, steps=steps, objective="ce", generator=generator)


def apgd_t(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
           n_target_classes: int, generator: Optional[torch.Generator], *, queries: int = 5000) -> torch.Tensor:
    """AutoAttack's APGD-T: targeted APGD-DLR towards each of the ``n_target_classes`` classes ranked
    2nd, 3rd, ... by the clean logits (capped at classes - 1; the DLR-T loss needs >= 4 classes, fewer
    fall back to untargeted APGD-DLR, or to APGD-CE with 2 classes), ``steps`` iterations each, each run
    only on the examples no earlier target class has broken."""
    with torch.no_grad():
        logits = model(x)
    c = logits.shape[1]
    if c < 4:
        return apgd(model, x, y, eps=eps, steps=steps, objective="dlr" if c == 3 else "ce", generator=generator)
    order = logits.argsort(dim=1, descending=True)
    x_adv = x.detach().clone()
    alive = torch.ones(len(x), dtype=torch.bool, device=x.device)
    for rank in range(1, min(int(n_target_classes), c - 1) + 1):
        idx = alive.nonzero().flatten()
        if len(idx) == 0:
            break
        xa = apgd(model, x[idx], y[idx], eps=eps, steps=steps, objective="dlr_targeted",
                  target=order[idx, rank], generator=generator)
        x_adv[idx] = xa
        alive[idx] = _still_correct(model, xa, y[idx])
    return x_adv


#: AutoAttack's members, in its order; each ``(model, x, y, eps, steps, n_target_classes, generator, *, queries)
#: -> x_adv`` (``steps``: iterations of the gradient members per run; ``queries``: Square's budget)
AA_MEMBERS: Registry[Callable[..., torch.Tensor]] = Registry("AutoAttack member")
AA_MEMBERS.register("apgd-ce")(apgd_ce)
AA_MEMBERS.register("apgd-t")(apgd_t)
AA_MEMBERS.register("fab-t")(fab_t)
AA_MEMBERS.register("square")(square)
#: the standard L-inf AutoAttack (Croce & Hein 2020; RobustBench's evaluation): its four members in its order
STANDARD_MEMBERS = ("apgd-ce", "apgd-t", "fab-t", "square")


def autoattack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float = 8 / 255,
    steps: int = 100,
    members: tuple[str, ...] = STANDARD_MEMBERS,
    n_target_classes: int = 9,
    generator: Optional[torch.Generator] = None,
    robust: Optional[torch.Tensor] = None,
    trace: Optional[dict] = None,
    queries: int = 5000,
) -> torch.Tensor:
    """AutoAttack-style ensemble (Croce & Hein 2020): the ``members`` in order, each run only on the
    examples every earlier member (and, when given, the earlier attack behind ``robust``) left correctly
    classified; an example is robust only if every member fails on it.

    The standard L-inf AutoAttack (the default ``members``): APGD-CE (one run of ``steps`` = 100 iterations),
    APGD-T (targeted APGD-DLR over the top ``n_target_classes`` = 9 classes, 100 iterations each), both with
    APGD's step-size schedule and checkpoints (:func:`apgd`), FAB-T (targeted FAB over the same classes, 100
    iterations each, :func:`repro.attacks.fab.fab_t`) and Square (``queries`` = 5,000,
    :func:`repro.attacks.square.square_linf`). Fewer members make a cut version. Clean-misclassified examples
    are not attacked. ``robust``: a boolean mask of the examples still to attack (e.g. those a PGD-20
    left correct); the others are returned unchanged and are the caller's to count as broken.
    ``trace``: a dict to which the number of examples still robust after each stage (``clean``, then
    each member) is added. Computes in float32 (autocast off) and leaves train/eval mode untouched.
    Returns the adversarial images (an example's first successful member's, else the last member's).
    """
    for m in members:
        AA_MEMBERS.get(m)  # unknown member: one-line error naming the allowed ones
    if not members:
        raise ValueError(f"autoattack needs at least one member; allowed: {', '.join(AA_MEMBERS.names())}")
    if eps < 0:
        raise ValueError(f"attack eps must be >= 0, got {eps}")
    if isinstance(queries, bool) or int(queries) != queries or queries < 1:
        raise ValueError(f"autoattack queries must be an integer >= 1, got {queries!r}")
    x, x_adv = x.detach(), x.detach().clone()
    with full_precision(x.device), no_param_grad(model):
        alive = _still_correct(model, x, y)
        if robust is not None:
            alive &= robust.to(alive.device).bool()
        if trace is not None:
            trace["clean"] = trace.get("clean", 0) + int(alive.sum())
        for name in members:
            idx = alive.nonzero().flatten()
            if len(idx) and eps > 0:
                xa = AA_MEMBERS.get(name)(model, x[idx], y[idx], eps, steps, n_target_classes, generator,
                                          queries=queries)
                x_adv[idx] = xa
                alive[idx] = _still_correct(model, xa, y[idx])
            if trace is not None:
                trace[name] = trace.get(name, 0) + int(alive.sum())
    return x_adv


ATTACKS.register("autoattack")(autoattack)
