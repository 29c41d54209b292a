"""The schema of params.yaml's ``evaluation`` section: the attack and metrics of every evaluated run, the
AutoAttack-grade RA, attack sanity checks, checkpoint selection, the analysis and the Adv-Acc sweep."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from .constants import (AA_MEMBER_NAMES, CHECKPOINTS, SELECT_REGIMES)
from .names import current
from .typed import check
from .sections import AttackParams, TrainParams


#: how the report names each AutoAttack member
AA_MEMBER_LABELS = {"apgd-ce": "APGD-CE", "apgd-t": "APGD-T", "fab-t": "FAB-T", "square": "Square"}
#: the standard L-inf AutoAttack (Croce & Hein 2020): members, iterations, target classes, Square's queries
AA_STANDARD = (AA_MEMBER_NAMES, 100, 9, 5000)


def aa_name(members, steps: int, target_classes: int, queries: int) -> str:
    """The name of ``ra_aa``'s attack as metrics and the report show it: "AutoAttack (standard: ...)" only for
    the standard four members at the standard settings, else "AutoAttack, cut (...)" naming what ran."""
    members = tuple(members)
    names = [AA_MEMBER_LABELS.get(m, m) for m in members]
    if (members, steps, target_classes, queries) == AA_STANDARD:
        return f"AutoAttack (standard: {', '.join(names)})"
    settings = []
    if {"apgd-ce", "apgd-t", "fab-t"} & set(members):
        settings.append(f"{steps} it.")
    if {"apgd-t", "fab-t"} & set(members):
        settings.append(f"{target_classes} targets")
    if "square" in members:
        settings.append(f"{queries:,} queries")
    return f"AutoAttack, cut ({' + '.join(names)}; {', '.join(settings)})"


@dataclass(frozen=True)
class EvalParams:
    attack: AttackParams = field(default_factory=lambda: AttackParams("pgd", 8 / 255, 2 / 255, 20))
    ece_bins: int = 15
    batch_size: int = 256
    # DW Table A2: the transfer attack from an independently trained robust model (stage `reference`) on the
    # adversarially fine-tuned runs of `transfer_attack_task`; false = no reference model, no transfer attack
    transfer_attack: bool = True
    transfer_attack_task: Optional[str] = None  # None: the first downstream task
    reference: TrainParams = field(default_factory=lambda: TrainParams(epochs=4, lr=0.05, schedule="cosine"))
    landscape_points: int = 11
    landscape_images: int = 256  # test images of the loss contours
    trajectory_level: float = 0.7379  # runs at this sparsity keep per-epoch weights (Fig. 6/A9)
    kernel_map_level: Optional[float] = None  # level of the zero-kernel maps (DW Fig. 7: 97.19 %); None = the highest
    n_robust: int = 0  # test images attacked for RA / transfer attack; 0 = the whole test set
    # attack sanity checks (repro/sanity.py) on the first `sanity_images` attacked images of every RA; 0 = off
    sanity_images: int = 32
    # one-sided exact sign test (McNemar) level of the paired checks: a check fails when the images one attack
    # leaves correct and the other not are too many to be chance at this level (the tolerance so scales as 1/n)
    sanity_alpha: float = 0.05
    sanity_strong_steps: int = 10  # APGD iterations of the stronger attack when ra_aa is off (aa_members empty)
    # ra_aa: RA under AutoAttack (repro.attacks.autoattack) on the PGD-20 survivors of every adversarially fine-tuned
    # run; defaults = the standard L-inf AutoAttack (APGD-CE, APGD-T and FAB-T over 9 target classes, 100 iterations,
    # Square with 5,000 queries); fewer members or iterations make a cut version, named so (aa_name)
    aa_members: tuple[str, ...] = AA_MEMBER_NAMES  # () = off
    aa_steps: int = 100
    aa_target_classes: int = 9
    aa_queries: int = 5000  # Square's queries per image
    verdict_ra: Literal["pgd20", "aa"] = "pgd20"  # the RA of the double-win verdicts (both are reported)
    # domain gap of analysis/domain_gap.json (RT Table II): `stats` = hand-made image statistics (offline
    # default), `fid` = Inception-v3 pool-3 FID (repro/fid.py) with the feature network `fid_weights`: the FID
    # literature's (pytorch-fid's TF Inception 2015-12-05, the default) or torchvision's classification weights
    domain_gap: Literal["stats", "fid"] = "stats"
    fid_weights: str = "fid_inception_v3_2015_12_05"  # a published checkpoint of kind fid_features
    # Robust Tickets' "Adv-Acc": RA under PGD-20 (step eps/4) at these budgets, standard-fine-tuned rt_omp runs
    adv_acc_eps: tuple[float, ...] = (0.5 / 255, 1 / 255, 2 / 255, 4 / 255, 8 / 255)  # () = off
    # RT Fig. 1/2/8 and Table I (A-IMP vs IMP tickets); a name this grid does not have selects nothing (custom grids)
    adv_acc_experiments: tuple[str, ...] = ("rt_omp", "rt_aimp")
    # checkpoint whose test metrics are `sa`, `ra`, ... (figures, verdicts), per transfer regime:
    # last | best_sa | best_ra (best validation SA/RA, transfer.validation); LMP (`mask`) keeps the last
    select: dict[str, str] = field(default_factory=lambda: {r: "last" for r in SELECT_REGIMES})

    def __post_init__(self):
        check(self.ece_bins >= 1, "ece_bins", f"{self.ece_bins} must be >= 1")
        check(self.batch_size >= 1, "batch_size", f"{self.batch_size} must be >= 1")
        check(self.landscape_points >= 3, "landscape_points", f"{self.landscape_points} must be >= 3")
        check(self.landscape_images >= 1, "landscape_images", f"{self.landscape_images} must be >= 1")
        check(0 < self.trajectory_level < 1, "trajectory_level", f"{self.trajectory_level} is outside (0, 1)")
        check(self.n_robust >= 0, "n_robust", f"{self.n_robust} must be >= 0 (0 = the whole test set)")
        check(self.sanity_images >= 0, "sanity_images", f"{self.sanity_images} must be >= 0 (0 = no sanity checks)")
        check(0 < self.sanity_alpha < 1, "sanity_alpha", f"{self.sanity_alpha} is outside (0, 1)")
        check(self.sanity_strong_steps >= 1, "sanity_strong_steps", f"{self.sanity_strong_steps} must be >= 1")
        bad = [m for m in self.aa_members if m not in AA_MEMBER_NAMES]
        check(not bad and len(set(self.aa_members)) == len(self.aa_members), "aa_members",
              f"{list(self.aa_members)}: members must be distinct, from {list(AA_MEMBER_NAMES)}")
        check(self.aa_steps >= 1, "aa_steps", f"{self.aa_steps} must be >= 1")
        check(self.aa_target_classes >= 1, "aa_target_classes", f"{self.aa_target_classes} must be >= 1")
        check(self.aa_queries >= 1, "aa_queries", f"{self.aa_queries} must be >= 1")
        weights = getattr(current(), "weights", None)
        if weights is not None:
            allowed = [n for n, k in weights.items() if k == "fid_features"]
            check(self.fid_weights in allowed, "fid_weights",
                  f"{self.fid_weights!r} is not an FID feature network; allowed: {', '.join(allowed)}")
        check(all(0 < e <= 1 for e in self.adv_acc_eps), "adv_acc_eps",
              f"{list(self.adv_acc_eps)}: every budget must be in (0, 1] (pixel scale)")
        for r, c in self.select.items():
            check(r in SELECT_REGIMES, f"select.{r}", f"regime {r!r} is not allowed; allowed: {', '.join(SELECT_REGIMES)}")
            check(c in CHECKPOINTS, f"select.{r}", f"{c!r} is not allowed; allowed: {', '.join(CHECKPOINTS)}")

    def aa_name(self) -> str:
        """The name of ``ra_aa``'s attack (:func:`aa_name`): standard, or cut and what ran."""
        return aa_name(self.aa_members, self.aa_steps, self.aa_target_classes, self.aa_queries)

    def selected(self, regime: str) -> str:
        """The checkpoint reported for a run of ``regime`` (``last`` when not listed)."""
        return self.select.get(regime, "last")

    def adv_acc_attacked(self) -> list[float]:
        """The Adv-Acc budgets the sweep attacks: RA's own attack (same eps, step eps/4, random start, one
        restart) is not run twice, its budget reuses ``ra``."""
        a = self.attack
        same = a.name == "pgd" and a.random_start and a.restarts == 1 and abs(a.alpha - a.eps / 4) < 1e-12
        return [eps for eps in self.adv_acc_eps if not (same and abs(eps - a.eps) < 1e-12)]
