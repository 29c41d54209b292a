"""Square Attack (Andriushchenko et al., ECCV 2020, "Square Attack: a query-efficient black-box adversarial attack
via random search"), L-inf: AutoAttack's fourth member, the one that needs no gradient (so gradient masking cannot
hide a model's weakness from it).

Random search on the margin loss ``f_y(x) - max_{k != y} f_k(x)`` (an example is broken when its prediction
changes): the perturbation starts as vertical stripes (every column of every channel at ``+eps`` or ``-eps`` at
random); each query redraws one square window of side ``s``, at a uniform position, to ``+eps`` or ``-eps`` per
channel (drawn again, up to a few times, while the window would not change), and keeps the result only if it
lowers the margin. The window covers a fraction ``p`` of the image, ``s = round(sqrt(p h w))`` (at least 1, at most
``h - 1``), with ``p`` starting at ``p_init`` = 0.8 (AutoAttack's L-inf value) and halved after the iterations 10,
50, 200, 500, 1000, 2000, 4000, 6000 and 8000, counted as they are whatever the budget (standard AutoAttack runs
5,000 queries on this schedule without rescaling it to the budget; ``rescale=True`` stretches it to ``queries``
as the Square Attack code offers). The first evaluation counts as one query; an example stops being queried once broken. Window
position and signs are drawn per example (the paper's algorithm; AutoAttack's own code shares one window
position across a batch). ``generator`` makes the run reproducible.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

#: iterations (of a 10,000-query run) after which the window fraction p is halved
P_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def window_fraction(i: int, queries: int, p_init: float = 0.8, rescale: bool = False) -> float:
    """``p`` at iteration ``i`` of a run of ``queries`` queries (``rescale``: the schedule stretched to 10,000)."""
    it = int(i / max(queries, 1) * 10_000) if rescale else i
    return p_init / 2 ** sum(it > h for h in P_HALVINGS)


def _margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = logits.float()
    own = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return own - other


def _rand(shape, generator: Optional[torch.Generator], device) -> torch.Tensor:
    if generator is None:
        return torch.rand(shape, device=device)
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def _signs(shape, generator, device) -> torch.Tensor:
    return torch.where(_rand(shape, generator, device) < 0.5, -1.0, 1.0)


def square_linf(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, queries: int = 5000,
                p_init: float = 0.8, generator: Optional[torch.Generator] = None,
                max_redraws: int = 10, rescale: bool = False) -> torch.Tensor:
    """L-inf Square Attack with at most ``queries`` model evaluations per example; returns the images (broken
    examples: their first adversarial point; the others: their lowest-margin point)."""
    x = x.detach()
    n, c, h, w = x.shape
    dev = x.device
    with torch.no_grad():
        best = (x + eps * _signs((n, c, 1, w), generator, dev)).clamp(0.0, 1.0)  # vertical stripes
        logits = model(best)
        margin = _margin(logits, y)
        act = (logits.argmax(1) == y).nonzero().flatten()
        rows, cols = torch.arange(h, device=dev), torch.arange(w, device=dev)
        for i in range(1, int(queries)):
            if len(act) == 0:
                break
            m = len(act)
            s = min(max(int(round(math.sqrt(window_fraction(i, queries, p_init, rescale) * h * w))), 1), h - 1)
            top = (_rand(m, generator, dev) * (h - s + 1)).long().clamp_max(h - s)
            left = (_rand(m, generator, dev) * (w - s + 1)).long().clamp_max(w - s)
            inside = (((rows[None, :] >= top[:, None]) & (rows[None, :] < top[:, None] + s))[:, :, None]
                      & ((cols[None, :] >= left[:, None]) & (cols[None, :] < left[:, None] + s))[:, None, :])
            inside = inside[:, None].expand(m, c, h, w)
            xa, cur = x[act], best[act]
            signs = _signs((m, c, 1, 1), generator, dev)
            for _ in range(max_redraws):  # redraw the signs of windows that would stay as they are
                cand = torch.where(inside, (xa + eps * signs).clamp(0.0, 1.0), cur)
                same = ((cand - cur).abs() < 1e-7).flatten(1).all(1)
                if not bool(same.any()):
                    break
                signs = torch.where(same[:, None, None, None], _signs((m, c, 1, 1), generator, dev), signs)
            logits = model(cand)
            new = _margin(logits, y[act])
            better = new < margin[act]
            best[act[better]], margin[act[better]] = cand[better], new[better]
            broken = better & (logits.argmax(1) != y[act])
            act = act[~broken]
    return best


def square(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, n_target_classes: int,
           generator: Optional[torch.Generator] = None, *, queries: int = 5000) -> torch.Tensor:
    """AutoAttack's Square member: :func:`square_linf` with ``queries`` queries (``steps`` and
    ``n_target_classes`` are the gradient members' and unused here)."""
    return square_linf(model, x, y, eps, queries=queries, generator=generator)
