"""Attacks in [0, 1] pixel space, one function each: L-inf PGD, FGSM-RS and FGSM (``linf``), APGD and the
AutoAttack ensemble (``ensemble``; its members FAB-T in ``fab``, Square in ``square``), and the modes they run in (``modes``). ``ATTACKS`` is the registry
``attack_from_config`` builds from; ``AA_MEMBERS`` the ensemble's members."""
from .ensemble import AA_MEMBERS, APGD_OBJECTIVES, STANDARD_MEMBERS, apgd, apgd_ce, apgd_t, autoattack
from .fab import fab_t, linf_box_projection
from .square import square, square_linf
from .linf import ATTACKS, LOSSES, AttackFn, attack_from_config, fgsm, fgsm_rs, linf_attack, pgd
from .modes import bn_mode, full_precision, no_param_grad

__all__ = ["AA_MEMBERS", "APGD_OBJECTIVES", "ATTACKS", "LOSSES", "STANDARD_MEMBERS", "AttackFn", "apgd", "apgd_ce",
           "apgd_t", "attack_from_config", "autoattack", "bn_mode", "fab_t", "fgsm", "fgsm_rs", "full_precision",
           "linf_attack", "linf_box_projection", "no_param_grad", "pgd", "square", "square_linf"]
