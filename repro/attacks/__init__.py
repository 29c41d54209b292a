"""Attacks in [0, 1] pixel space, one function each: L-inf PGD, FGSM-RS and FGSM (``linf``), APGD and the
AutoAttack-grade ensemble (``ensemble``), and the modes they run in (``modes``). ``ATTACKS`` is the registry
``attack_from_config`` builds from; ``AA_MEMBERS`` the ensemble's members."""
from .ensemble import AA_MEMBERS, APGD_OBJECTIVES, apgd, apgd_ce, apgd_t, autoattack
from .linf import ATTACKS, LOSSES, AttackFn, attack_from_config, fgsm, fgsm_rs, linf_attack, pgd
from .modes import bn_mode, full_precision, no_param_grad

__all__ = ["AA_MEMBERS", "APGD_OBJECTIVES", "ATTACKS", "LOSSES", "AttackFn", "apgd", "apgd_ce", "apgd_t",
           "attack_from_config", "autoattack", "bn_mode", "fgsm", "fgsm_rs", "full_precision", "linf_attack", "no_param_grad",
           "pgd"]
