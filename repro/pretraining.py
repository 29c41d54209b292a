"""Pretraining kinds (the θ of both papers), one registry entry each.

A kind turns the pretraining params into the extra arguments of
``repro.training.make_learner``: standard (θ_STD, natural), fast adversarial
(θ_FAT, FGSM-RS), PGD adversarial (θ_AT), random smoothing (Gaussian noise).
Published ImageNet checkpoints of the same kinds are loaded by the weights
registry of the real tiers; this module covers in-house pretraining.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from .attacks import attack_from_config
from .config import PretrainParams
from .base.registry import Registry

PRETRAIN: Registry[Callable[[PretrainParams], dict]] = Registry("pretraining kind")


@PRETRAIN.register("standard")
def _standard(p: PretrainParams) -> dict:
    return {}


@PRETRAIN.register("fast_adversarial")
def _fast_adversarial(p: PretrainParams) -> dict:
    """Wong et al.: FGSM with uniform random start, step 1.25 eps (alpha from params)."""
    a = p.fgsm_rs
    return {"attack": attack_from_config("fgsm_rs", **a.kwargs()), "attack_bn_mode": p.bn_mode}


@PRETRAIN.register("pgd_adversarial")
def _pgd_adversarial(p: PretrainParams) -> dict:
    """Madry et al.: PGD-k adversarial training."""
    return {"attack": attack_from_config("pgd", **p.pgd.kwargs()), "attack_bn_mode": p.bn_mode}


@PRETRAIN.register("random_smoothing")
def _random_smoothing(p: PretrainParams) -> dict:
    """Cohen et al.: Gaussian noise augmentation with std sigma."""
    return {"noise_sigma": p.smoothing_sigma}


def learner_kwargs(kind: str, p: PretrainParams) -> dict:
    return PRETRAIN.get(kind)(p)


def at_eps(p: PretrainParams, eps: float) -> PretrainParams:
    """The pretraining params of a PGD model at radius ``eps`` (``pretrain.eps_grid``): same steps, the step size
    scaled with the radius (alpha/eps kept, a choice: Salman et al.'s models keep their step-to-radius ratio too)."""
    return replace(p, pgd=replace(p.pgd, eps=eps, alpha=p.pgd.alpha * eps / p.pgd.eps if p.pgd.eps else p.pgd.alpha))


def training_eps(kind: str, p: PretrainParams) -> float | None:
    """The L-inf radius ``kind`` trains against (None: not adversarial)."""
    return {"fast_adversarial": p.fgsm_rs.eps, "pgd_adversarial": p.pgd.eps}.get(kind)
