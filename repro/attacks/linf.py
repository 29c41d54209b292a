"""L-inf attacks in [0, 1] pixel space: PGD, FGSM with random start, plain FGSM.

Conventions (the official code's, as recorded in the project's reference notes on it):

* Models carry their input normalization, so every attack works on images in
  [0, 1] and clamps to that range after each step.
* PGD (Madry et al.): uniform random start in the eps-ball (clamped to
  [0, 1]), ``steps`` signed-gradient ascent steps of size ``alpha`` on the
  *mean* cross-entropy, projection to the eps-ball and clamp to [0, 1] after
  every step. Adversarial fine-tuning uses PGD-10 (eps 8/255, alpha 2/255),
  evaluation PGD-20 with the same eps/alpha; A-IMP uses PGD-3 with alpha
  16/(3*255).
* FGSM-RS (Wong et al., "Fast is better than free"): uniform start, one
  signed step of ``1.25 * eps``, projection, clamp.
* Attacks never change the model's train/eval mode; callers wrap them in
  :func:`bn_mode`. Evaluation attacks run in eval mode. A training-time
  attack runs in ``'train'`` mode in the official Double-Win code (batch
  statistics, and the attack's forward passes move the BN running stats) and
  in ``'eval'`` mode in torchattacks / ART / MadryLab robustness.
* Gradients are taken w.r.t. the input only (``torch.autograd.grad``), with
  parameters temporarily set to ``requires_grad=False`` (:func:`no_param_grad`),
  so an attack never leaves anything in ``param.grad`` and never builds the
  parameter part of the graph.

All attacks share one implementation (:func:`linf_attack`), whose logic is
identical on CPU and CUDA; only ``amp`` (autocast; the loss is computed in
float32) differs.
"""
from __future__ import annotations

import functools
import inspect
import numbers
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..base.registry import Registry

from .modes import no_param_grad

AttackFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]

LOSSES = ("ce", "cw")


# --------------------------------------------------------------------------- #
# core
# --------------------------------------------------------------------------- #
def _uniform_noise(x: torch.Tensor, eps, generator: Optional[torch.Generator]) -> torch.Tensor:
    """U(-eps, eps) noise shaped like ``x`` (``eps`` a number or a tensor broadcastable to ``x``);
    global RNG of x's device unless a generator is given."""
    if generator is None:
        if torch.is_tensor(eps):
            return torch.empty_like(x).uniform_(-1.0, 1.0).mul_(eps)
        return torch.empty_like(x).uniform_(-eps, eps)
    u = torch.rand(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
    return u.mul_(2.0).sub_(1.0).to(x.device).mul_(eps)


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Project onto the L-inf eps-ball around x, then clamp to [0, 1]."""
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)


def _attack_loss(logits: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    logits = logits.float()  # the loss is always computed in float32 (AMP safe)
    if loss == "ce":
        return F.cross_entropy(logits, y)
    if loss == "cw":  # mean margin: max_{j != y} z_j - z_y
        z_y = logits.gather(1, y[:, None]).squeeze(1)
        other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
        return (other - z_y).mean()
    raise ValueError(f"attack loss must be one of {LOSSES}, got {loss!r}")


def linf_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool,
    loss: str,
    amp: bool,
    generator: Optional[torch.Generator],
) -> torch.Tensor:
    """One run of L-inf PGD (FGSM and FGSM-RS are the one-step special cases). ``eps`` and ``alpha`` may
    also be tensors broadcastable to ``x`` (per-image budgets, used by ``repro.sanity``)."""
    x = x.detach()
    x_adv = x.clone()
    if random_start:
        x_adv = (x_adv + _uniform_noise(x, eps, generator)).clamp_(0.0, 1.0)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.autocast(device_type=x.device.type, enabled=amp):
            logits = model(x_adv)
        obj = _attack_loss(logits, y, loss)
        if amp:
            # Only the gradient's sign is used, so scaling by the batch size (mean -> sum) changes
            # nothing mathematically but keeps fp16 input gradients from underflowing to 0.
            obj = obj * len(x)
        (grad,) = torch.autograd.grad(obj, x_adv)
        x_adv = _project(x_adv.detach() + alpha * grad.sign(), x, eps)
    return x_adv.detach()


def _check_args(eps: float, alpha: Optional[float], steps: int, restarts: int, loss: str) -> None:
    if eps < 0:
        raise ValueError(f"attack eps must be >= 0, got {eps}")
    if alpha is not None and not alpha > 0:
        raise ValueError(f"attack alpha must be > 0, got {alpha}")
    if steps < 0 or int(steps) != steps:
        raise ValueError(f"attack steps must be an integer >= 0, got {steps}")
    if restarts < 1 or int(restarts) != restarts:
        raise ValueError(f"attack restarts must be an integer >= 1, got {restarts}")
    if loss not in LOSSES:
        raise ValueError(f"attack loss must be one of {LOSSES}, got {loss!r}")


# --------------------------------------------------------------------------- #
# public attacks
# --------------------------------------------------------------------------- #
def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float = 8 / 255,
    alpha: float = 2 / 255,
    steps: int = 10,
    random_start: bool = True,
    restarts: int = 1,
    loss: str = "ce",
    amp: bool = False,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """L-inf PGD on images in [0, 1]; returns detached adversarial images.

    ``eps == 0`` or ``steps == 0`` returns a copy of ``x`` (no random start).
    With ``restarts > 1`` each example keeps the perturbation of the *first*
    restart that makes the model misclassify it, else that of the last
    restart; the check is one extra forward pass per restart (in ``'train'``
    mode it, like every attack forward, updates BN running statistics).
    ``loss``: ``'ce'`` (mean cross-entropy, the papers') or ``'cw'`` (mean
    margin). ``generator`` makes the random start reproducible (default: the
    global RNG of x's device, like torchattacks). ``amp=True`` runs the forward
    passes under autocast on x's device (the loss in float32, scaled by the
    batch size, which leaves its gradient's sign unchanged but avoids fp16
    underflow). The model's train/eval mode
    is left untouched; wrap calls in :func:`bn_mode`.
    """
    _check_args(eps, alpha, steps, restarts, loss)
    if eps == 0 or steps == 0:
        return x.detach().clone()
    with no_param_grad(model), torch.enable_grad():
        if restarts == 1:
            return linf_attack(model, x, y, eps, alpha, steps, random_start, loss, amp, generator)
        best: Optional[torch.Tensor] = None
        fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for _ in range(restarts):
            x_adv = linf_attack(model, x, y, eps, alpha, steps, random_start, loss, amp, generator)
            with torch.no_grad(), torch.autocast(device_type=x.device.type, enabled=amp):
                fool = model(x_adv).argmax(1) != y
            if best is None:
                best = x_adv
            else:
                take = ~fooled  # not fooled yet: take this restart's result (first fool, or latest)
                best[take] = x_adv[take]
            fooled |= fool
            if bool(fooled.all()):
                break
        return best


def fgsm_rs(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float = 8 / 255,
    alpha: Optional[float] = None,
    amp: bool = False,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """FGSM with random start (fast adversarial training): uniform start, one step of ``alpha``.

    ``alpha`` defaults to ``1.25 * eps`` (Wong et al. 2020); the result is
    projected to the eps-ball and clamped to [0, 1]. ``eps == 0`` returns a copy.
    """
    if alpha is None:
        alpha = 1.25 * eps if eps > 0 else 1.0
    return pgd(model, x, y, eps=eps, alpha=alpha, steps=1, random_start=True, amp=amp, generator=generator)


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float = 8 / 255,
    amp: bool = False,
) -> torch.Tensor:
    """Plain FGSM (Goodfellow et al.): ``clamp(x + eps * sign(grad), 0, 1)``, no random start."""
    return pgd(model, x, y, eps=eps, alpha=eps if eps > 0 else 1.0, steps=1, random_start=False, amp=amp)


# --------------------------------------------------------------------------- #
# registry
# --------------------------------------------------------------------------- #
ATTACKS: Registry[Callable[..., torch.Tensor]] = Registry("attack")
ATTACKS.register("pgd")(pgd)
ATTACKS.register("fgsm_rs")(fgsm_rs)
ATTACKS.register("fgsm")(fgsm)


def _as_number(name: str, value) -> float:
    """Numbers pass; strings like ``'8/255'`` (as written in configs) are parsed."""
    if isinstance(value, bool):
        raise TypeError(f"attack {name} must be a number, got {value!r}")
    if isinstance(value, numbers.Real):
        return value
    if isinstance(value, str):
        try:
            if "/" in value:
                num, den = value.split("/")
                return float(num) / float(den)
            return float(value)
        except (ValueError, ZeroDivisionError):
            pass
    raise TypeError(f"attack {name} must be a number (or 'a/b'), got {value!r}")


def attack_from_config(name: str, **kw) -> AttackFn:
    """A configured attack ``(model, x, y) -> x_adv``, e.g. ``attack_from_config('pgd', steps=20)``.

    Validates eps >= 0, alpha > 0, steps >= 0 (integer), restarts >= 1 and
    rejects options the attack does not take, each with a one-line error.
    eps / alpha may be given as strings like ``'8/255'``.
    """
    fn = ATTACKS.get(name)
    allowed = [p for p in inspect.signature(fn).parameters if p not in ("model", "x", "y")]
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise TypeError(f"attack {name!r} got unknown option(s) {unknown}; allowed: {', '.join(allowed)}")
    for key in ("eps", "alpha"):
        if key in kw and kw[key] is not None:
            kw[key] = _as_number(key, kw[key])
    if "eps" in kw and kw["eps"] < 0:
        raise ValueError(f"attack eps must be >= 0, got {kw['eps']}")
    if kw.get("alpha") is not None and not kw["alpha"] > 0:
        raise ValueError(f"attack alpha must be > 0, got {kw['alpha']}")
    for key, low in (("steps", 0), ("restarts", 1)):
        if key in kw:
            v = kw[key]
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
                raise ValueError(f"attack {key} must be an integer >= {low}, got {v!r}")
    if "loss" in kw and kw["loss"] not in LOSSES:
        raise ValueError(f"attack loss must be one of {LOSSES}, got {kw['loss']!r}")
    return functools.partial(fn, **kw)


