"""FAB, the fast adaptive boundary attack (Croce & Hein, ICML 2020, "Minimally distorted adversarial examples with
a fast adaptive boundary attack"), L-inf, in its targeted form (AutoAttack's third member, FAB-T).

One iteration at the current point ``x_i`` (starting at the clean image ``x_0``):

1. linearise the decision boundary between the true class ``y`` and the target ``t`` at ``x_i``: with
   ``g = f_t - f_y`` (adversarial for ``t`` when ``g > 0``) the boundary is the hyperplane
   ``<w, z - x_i> + g(x_i) = 0``, ``w = grad g(x_i)``;
2. project both ``x_i`` and ``x_0`` onto that hyperplane intersected with the image box ``[0, 1]^d``
   in the L-inf norm (:func:`linf_box_projection`), giving the steps ``d_i`` and ``d_0``;
3. take the biased step ``x_{i+1} = clip((1 - a)(x_i + eta d_i) + a (x_0 + eta d_0))`` with
   ``a = min(|d_i| / (|d_i| + |d_0|), alpha_max)`` (overshoot ``eta`` = 1.05, ``alpha_max`` = 0.1);
4. if ``x_{i+1}`` is misclassified, keep it when it is the closest to ``x_0`` so far, then step back
   towards the original image: ``x_{i+1} = (1 - beta) x_0 + beta x_{i+1}`` (``beta`` = 0.9).

For AutoAttack only whether a misclassified point within ``eps`` exists matters, so an example is done (and
dropped from the batch) as soon as one is found; the others run all ``steps`` iterations. Targets: the classes
ranked 2nd, 3rd, ... by the clean logits (up to ``n_target_classes``), each run only on the examples every earlier
target left robust. One restart from the clean image (AutoAttack's standard FAB-T: no random start). Returns the
first adversarial point within ``eps`` of each example, else the clean image.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn


def linf_box_projection(x: torch.Tensor, w: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Per row, the smallest-L-inf step ``d`` with ``<w, d> = c`` and ``x + d`` in ``[0, 1]``.

    ``x``, ``w``: ``[n, D]``; ``c``: ``[n]``. With ``t = |d|_inf`` the largest reachable ``<w, d>`` is
    ``h(t) = sum_j |w_j| min(t, r_j)``, where ``r_j`` is the room coordinate ``j`` has in the direction
    ``sign(c w_j)`` (``1 - x_j`` upwards, ``x_j`` downwards); ``h`` is piecewise linear and non-decreasing, so
    the minimal ``t`` with ``h(t) = |c|`` is found between two sorted ``r_j`` and ``d_j = sign(c w_j)
    min(t, r_j)``. A row whose hyperplane lies beyond the box (``h(inf) < |c|``) gets the box corner that comes
    closest, ``d_j = sign(c w_j) r_j``; ``c = 0`` gives ``d = 0``.
    """
    s = torch.sign(w) * torch.sign(c)[:, None]  # direction of each coordinate's move
    room = torch.where(s > 0, 1.0 - x, x).clamp_min(0.0)
    a = w.abs() * (s != 0)
    r_sorted, order = room.sort(dim=1)
    a_sorted = a.gather(1, order)
    # h at each breakpoint r_(k): sum_{j<k} a_j r_j + r_(k) sum_{j>=k} a_j
    below = torch.cumsum(a_sorted * r_sorted, dim=1) - a_sorted * r_sorted
    above = torch.flip(torch.cumsum(torch.flip(a_sorted, [1]), 1), [1])
    h = below + r_sorted * above
    target = c.abs()[:, None]
    k = (h < target).sum(1, keepdim=True).clamp_max(h.shape[1] - 1)  # first breakpoint reaching |c|
    t = (target - below.gather(1, k)) / above.gather(1, k).clamp_min(1e-12)
    feasible = h[:, -1:] >= target
    t = torch.where(feasible, t.clamp_min(0.0), r_sorted[:, -1:])
    return s * torch.minimum(room, t)


def fab_targeted(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    target: torch.Tensor,
    eps: float,
    steps: int = 100,
    eta: float = 1.05,
    beta: float = 0.9,
    alpha_max: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One targeted FAB run (L-inf, from the clean image): ``(x_adv, found)``, ``found`` marking the examples
    for which a misclassified point within ``eps`` was found (``x_adv`` is that point; else the clean image)."""
    x = x.detach()
    n = len(x)
    shape = x.shape
    flat = x.flatten(1)
    out, found = x.clone(), torch.zeros(n, dtype=torch.bool, device=x.device)
    act = torch.arange(n, device=x.device)
    cur = flat.clone()

    def boundary(z: torch.Tensor, ya: torch.Tensor, ta: torch.Tensor):
        z = z.detach().view((len(z),) + shape[1:]).requires_grad_(True)
        logits = model(z).float()
        g = logits.gather(1, ta[:, None]).squeeze(1) - logits.gather(1, ya[:, None]).squeeze(1)
        (grad,) = torch.autograd.grad(g.sum(), z)
        return g.detach(), grad.detach().flatten(1)

    with torch.enable_grad():
        for _ in range(int(steps)):
            if len(act) == 0:
                break
            x0, ya, ta = flat[act], y[act], target[act]
            g, w = boundary(cur, ya, ta)
            # steps onto the linearised boundary from the current point and from the original image
            d_cur = linf_box_projection(cur, w, -g)
            d_orig = linf_box_projection(x0, w, -(g + (w * (x0 - cur)).sum(1)))
            n_cur, n_orig = d_cur.abs().amax(1), d_orig.abs().amax(1)
            a = (n_cur / (n_cur + n_orig).clamp_min(1e-12)).clamp(0.0, alpha_max)[:, None]
            nxt = ((1 - a) * (cur + eta * d_cur) + a * (x0 + eta * d_orig)).clamp(0.0, 1.0)
            with torch.no_grad():
                adv = model(nxt.view((len(nxt),) + shape[1:])).argmax(1) != ya
            close = adv & ((nxt - x0).abs().amax(1) <= eps)
            if bool(close.any()):
                done = act[close]
                out[done], found[done] = nxt[close].view((len(done),) + shape[1:]), True
            # misclassified but too far: step back towards the original image (the norm-minimising part)
            nxt = torch.where(adv[:, None], (1 - beta) * x0 + beta * nxt, nxt)
            keep = ~close
            act, cur = act[keep], nxt[keep]
    return out.detach(), found


def fab_t(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, n_target_classes: int,
          generator: Optional[torch.Generator] = None, *, queries: int = 5000) -> torch.Tensor:
    """AutoAttack's FAB-T: targeted FAB (:func:`fab_targeted`, ``steps`` iterations each) towards the classes
    ranked 2nd, 3rd, ... by the clean logits (at most ``n_target_classes``, capped at classes - 1), each run only
    on the examples no earlier target broke. Deterministic (no random start); ``generator`` and ``queries`` are
    the other members' and unused here."""
    with torch.no_grad():
        logits = model(x)
    order = logits.argsort(dim=1, descending=True)
    x_adv = x.detach().clone()
    alive = torch.ones(len(x), dtype=torch.bool, device=x.device)
    for rank in range(1, min(int(n_target_classes), logits.shape[1] - 1) + 1):
        idx = alive.nonzero().flatten()
        if len(idx) == 0:
            break
        xa, hit = fab_targeted(model, x[idx], y[idx], order[idx, rank], eps, steps)
        x_adv[idx[hit]] = xa[hit]
        alive[idx[hit]] = False
    return x_adv
