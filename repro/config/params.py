"""The typed schema of params.yaml. Every stage validates the whole file at start.

``load_params()`` reads params.yaml and returns a frozen ``Params``; any
invalid key or value raises ``ConfigError`` naming the key and what is allowed,
before any work starts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Union

import yaml

from ..base.errors import ConfigError
from .names import Names, current, using
from .typed import check, from_dict

PRETRAIN_KINDS = ("standard", "fast_adversarial", "pgd_adversarial", "random_smoothing")
# ticket methods of the experiments: registry method + granularity + where it is drawn
METHODS = ("omp", "random", "imp", "a_imp", "a_imp_ds", "lmp", "omp_row", "omp_kernel", "omp_channel")
REGIMES = ("standard", "adversarial", "linear", "mask")
LMP_BN = ("train", "frozen")  # tickets.lmp.bn: BatchNorm statistics while LMP scores train
LINEAR_BN = ("recalibrate", "frozen")  # transfer.linear_bn: the frozen backbone's BatchNorm statistics
CHECKPOINTS = ("last", "best_sa", "best_ra")  # the weights a transfer run keeps (best_*: transfer.validation)
SELECT_REGIMES = TRAIN_REGIMES = ("standard", "adversarial", "linear")  # regimes with checkpoint selection (LMP keeps its last mask)
RECIPE_NAME = r"[a-z][a-z0-9_]*"  # transfer.recipes names: part of run folder names (repro.plan.RunSpec.name)
SCHEDULES = ("step", "cosine", "constant")  # TrainParams.schedule (repro.training.schedules)
PAPERS = ("dw", "rt")  # an experiment belongs to the paper its name starts with (dw_*, rt_*): claims, figures


@dataclass(frozen=True)
class AttackParams:
    """L-inf attack; eps/alpha accept fractions like '8/255'."""

    name: Literal["pgd", "fgsm_rs", "fgsm"] = "pgd"
    eps: float = 8 / 255
    alpha: float = 2 / 255
    steps: int = 10
    restarts: int = 1
    random_start: bool = True

    def __post_init__(self):
        check(0 <= self.eps <= 1, "eps", f"{self.eps} is outside [0, 1] (pixel scale)")
        check(self.alpha > 0, "alpha", f"{self.alpha} must be > 0")
        check(self.steps >= 0, "steps", f"{self.steps} must be >= 0")
        check(self.restarts >= 1, "restarts", f"{self.restarts} must be >= 1")

    def kwargs(self) -> dict:
        if self.name == "pgd":
            return dict(eps=self.eps, alpha=self.alpha, steps=self.steps, restarts=self.restarts,
                        random_start=self.random_start)
        if self.name == "fgsm_rs":
            return dict(eps=self.eps, alpha=self.alpha)
        return dict(eps=self.eps)


@dataclass(frozen=True)
class TrainParams:
    """Optimizer and schedule of one training run: ``torch.optim.SGD`` with momentum and coupled L2 weight
    decay (the official code's), the lr ``schedule`` (``step``: x ``gamma`` at each epoch of ``milestones``;
    ``cosine`` to 0; ``constant``) over ``epochs``; ``repro.training.train`` fits a fastai Learner with it."""

    epochs: int = 1
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: Literal["step", "cosine", "constant"] = "step"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    batch_size: int = 128

    def __post_init__(self):
        check(self.epochs >= 1, "epochs", f"{self.epochs} must be >= 1")
        check(self.lr > 0, "lr", f"{self.lr} must be > 0")
        check(0 <= self.momentum < 1, "momentum", f"{self.momentum} is outside [0, 1)")
        check(self.weight_decay >= 0, "weight_decay", f"{self.weight_decay} must be >= 0")
        check(self.schedule in SCHEDULES, "schedule", f"{self.schedule!r} is not allowed; allowed: {', '.join(SCHEDULES)}")
        check(self.batch_size >= 1, "batch_size", f"{self.batch_size} must be >= 1")
        check(self.gamma > 0, "gamma", f"{self.gamma} must be > 0 (lr step-decay factor)")
        bad = [m for m in self.milestones if not 0 < m <= self.epochs]
        check(self.schedule != "step" or not bad, "milestones",
              f"{bad} are outside (0, {self.epochs}] epochs (lr step decay)")


@dataclass(frozen=True)
class TextureParams:
    """A second class signal of the synthetic tasks, *non-robust* by construction (issue 19).

    The literature's account of why robust features transfer (Ilyas et al. 2019; Salman et al.
    2020) needs two predictive signals of different robustness in the source task. The class
    prototypes are the robust one (amplitudes 0.15-0.28 of the pixel range, far above any
    attack budget); this is the other: every class also carries a faint periodic texture, a
    ``tile`` x ``tile`` x 3 pattern of +-``amplitude`` (pixel units, [0, 1]) repeated over the
    image at a fixed phase. With ``amplitude`` below the pretraining attack's eps an L-inf
    adversary can erase it, so standard training may lean on it and adversarial training cannot.
    A class's tile is the sign of a random combination of ``basis`` shared tiles; the basis is
    the source family's at gap 0 and an unrelated one at gap 1 (linear in between), so the
    domain gap decides whether the texture detectors learned on the source still help
    downstream. ``amplitude: 0`` is off (the generator without this ingredient).
    """

    amplitude: float = 0.0
    tile: int = 3
    basis: int = 8

    def __post_init__(self):
        check(0 <= self.amplitude <= 0.5, "amplitude", f"{self.amplitude} is outside [0, 0.5] (pixel units)")
        check(isinstance(self.tile, int) and self.tile >= 2, "tile", f"{self.tile!r} must be an int >= 2 (pixels)")
        check(isinstance(self.basis, int) and self.basis >= 1, "basis", f"{self.basis!r} must be an int >= 1")


@dataclass(frozen=True)
class SyntheticParams:
    """Sizes of the generated offline tasks (embedded default)."""

    source_classes: int = 20
    downstream_classes: int = 10
    n_train_source: int = 4000
    n_test_source: int = 1000
    n_train_downstream: int = 1000
    n_test_downstream: int = 500
    n_ood: int = 500
    gaps: dict[str, float] = field(default_factory=lambda: {"synth_near": 0.15, "synth_mid": 0.5, "synth_far": 0.9})
    texture: TextureParams = field(default_factory=TextureParams)

    def __post_init__(self):
        for k in ("source_classes", "downstream_classes"):
            check(getattr(self, k) >= 2, k, f"{getattr(self, k)} must be >= 2")
        for k in ("n_train_source", "n_test_source", "n_train_downstream", "n_test_downstream", "n_ood"):
            check(getattr(self, k) >= 1, k, f"{getattr(self, k)} must be >= 1")
        for k, g in self.gaps.items():
            check(0 <= g <= 1, f"gaps.{k}", f"{g} is outside [0, 1]")


@dataclass(frozen=True)
class DataParams:
    root: str = "data"
    source: str = "synth_source"
    downstream: tuple[str, ...] = ("synth_near", "synth_mid", "synth_far")
    ood: str = "synth_ood"
    # task -> its OoD set instead of `ood` (a downstream task or `ood`; never the task itself)
    ood_per_task: dict[str, str] = field(default_factory=dict)
    image_size: int = 16
    recipe: Literal["cifar", "pad_crop", "none", "imagenet224"] = "cifar"
    fraction_how: Literal["stratified", "first"] = "stratified"
    num_workers: int = 0  # loader worker processes (streamed ImageNet decodes JPEGs in them)
    synthetic: SyntheticParams = field(default_factory=SyntheticParams)
    # public datasets (repro/data/public/), read from `root`:
    download: bool = False  # fetch missing files with torchvision (needs internet)
    max_train: Optional[int] = None  # keep the first N training images per class (file order); None = all
    max_test: Optional[int] = None  # the same for the test split
    max_train_per_task: dict[str, int] = field(default_factory=dict)  # overrides of max_train, e.g. {tiny_imagenet: 100}
    max_test_per_task: dict[str, int] = field(default_factory=dict)  # overrides of max_test
    fraction: float = 1.0  # keep this fraction of every class of a public set, both splits (first in file order)

    def __post_init__(self):
        check(len(self.downstream) >= 1, "downstream", "needs at least one task")
        check(len(set(self.downstream)) == len(self.downstream), "downstream", "tasks must be unique")
        check(self.image_size >= 8, "image_size", f"{self.image_size} must be >= 8")
        check(self.num_workers >= 0, "num_workers", f"{self.num_workers} must be >= 0")
        check(0 < self.fraction <= 1, "fraction", f"{self.fraction} is outside (0, 1]")
        for k in ("max_train", "max_test"):
            v = getattr(self, k)
            check(v is None or v >= 1, k, f"{v} must be >= 1 (images per class) or null (no cap)")
        tasks = (self.source, *self.downstream, self.ood)
        for t, o in self.ood_per_task.items():
            if t not in self.downstream:  # a tier's mapping for a task this run leaves out (names checked in Params)
                continue
            check(o in (self.ood, *self.downstream), f"ood_per_task.{t}",
                  f"{o!r} is not built by the data stage; allowed: {', '.join(dict.fromkeys((self.ood, *self.downstream)))}")
        for t in self.downstream:
            check(self.ood_for(t) != t, "ood" if t not in self.ood_per_task else f"ood_per_task.{t}",
                  f"{self.ood_for(t)!r} is also the evaluated task {t!r}: its OoD AUROC would compare the task with "
                  f"itself; allowed: any other set (map one per task with data.ood_per_task, e.g. {{{t}: ...}})")
        for k in ("max_train_per_task", "max_test_per_task"):
            for t, v in getattr(self, k).items():
                check(t in tasks, f"{k}.{t}",
                      f"{t!r} is not a task of this config; allowed: {', '.join(dict.fromkeys(tasks))}")
                check(v >= 1, f"{k}.{t}", f"{v} must be >= 1 (images per class)")

    def ood_for(self, task: str) -> str:
        """The OoD set of a downstream task's OoD AUROC: its ``ood_per_task`` entry, else ``ood``."""
        return self.ood_per_task.get(task, self.ood)

    def caps(self, task: str) -> tuple[Optional[int], Optional[int]]:
        """Per-class (max_train, max_test) caps of a public task: its override, else the global cap."""
        return self.max_train_per_task.get(task, self.max_train), self.max_test_per_task.get(task, self.max_test)


@dataclass(frozen=True)
class ModelParams:
    arch: str = "cifar_resnet"
    depths: tuple[int, ...] = (1, 1, 1)
    width: int = 8
    block: Literal["basic", "bottleneck"] = "basic"

    def __post_init__(self):
        names = current()
        if names is not None:
            check(self.arch in names.archs, "arch", f"{self.arch!r} is not allowed; allowed: {', '.join(names.archs)}")
        check(len(self.depths) >= 1 and all(d >= 1 for d in self.depths), "depths",
              f"{list(self.depths)} must be positive block counts")
        check(self.width >= 1, "width", f"{self.width} must be >= 1")


@dataclass(frozen=True)
class PretrainParams:
    kinds: tuple[str, ...] = PRETRAIN_KINDS
    train: TrainParams = field(default_factory=lambda: TrainParams(epochs=6, lr=0.1, schedule="cosine"))
    pgd: AttackParams = field(default_factory=lambda: AttackParams("pgd", 8 / 255, 2 / 255, 3))
    fgsm_rs: AttackParams = field(default_factory=lambda: AttackParams("fgsm_rs", 8 / 255, 10 / 255, 1))
    smoothing_sigma: float = 0.25
    bn_mode: Literal["train", "eval"] = "train"
    # kind -> published checkpoint (repro.weights.WEIGHTS) used instead of in-house pretraining
    published: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        bad = [k for k in self.kinds if k not in PRETRAIN_KINDS]
        check(not bad, "kinds", f"{bad[0] if bad else ''!r} is not allowed; allowed: {', '.join(PRETRAIN_KINDS)}")
        check(self.smoothing_sigma > 0, "smoothing_sigma", f"{self.smoothing_sigma} must be > 0")
        weights = getattr(current(), "weights", None)
        for kind, name in self.published.items():
            check(kind in PRETRAIN_KINDS, "published",
                  f"kind {kind!r} is not allowed; allowed: {', '.join(PRETRAIN_KINDS)}")
            if weights is None:
                continue
            check(name in weights, f"published.{kind}",
                  f"{name!r} is not a published checkpoint; allowed: {', '.join(weights)}")
            check(weights[name] == kind, f"published.{kind}",
                  f"{name!r} is {weights[name]} pretraining, not {kind}; allowed: "
                  f"{', '.join(n for n, k in weights.items() if k == kind)}")


@dataclass(frozen=True)
class ImpParams:
    rate: float = 0.2
    max_rounds: int = 10
    retrain: TrainParams = field(default_factory=lambda: TrainParams(epochs=1, lr=0.01, schedule="constant"))
    # A-IMP: PGD-3 with DW Sec. A1's alpha 2/255 (the official code's step is 16/(3*255): set alpha 16/765)
    attack: AttackParams = field(default_factory=lambda: AttackParams("pgd", 8 / 255, 2 / 255, 3))

    def __post_init__(self):
        check(0 < self.rate < 1, "rate", f"{self.rate} is outside (0, 1)")
        check(self.max_rounds >= 1, "max_rounds", f"{self.max_rounds} must be >= 1")


@dataclass(frozen=True)
class LmpParams:
    train: TrainParams = field(default_factory=lambda: TrainParams(epochs=3, lr=0.1, schedule="cosine"))
    train_head: bool = True
    # BatchNorm statistics while the scores train: train = batch statistics, running statistics
    # re-estimated for the masked network (edge-popup / hidden-networks); frozen = the dense
    # network's statistics (a random initial mask then collapses the features: see LearnableMask)
    bn: str = "train"

    def __post_init__(self):
        check(self.bn in LMP_BN, "bn", f"{self.bn!r} is not allowed; allowed: {', '.join(LMP_BN)}")


@dataclass(frozen=True)
class TicketParams:
    imp: ImpParams = field(default_factory=ImpParams)
    lmp: LmpParams = field(default_factory=LmpParams)


@dataclass(frozen=True)
class ValidationParams:
    """Checkpoint selection on held-out training images (never the test set).

    ``how``: ``none`` (off: the last epoch is the only checkpoint), ``last`` (the official Double-Win
    code: the last ``n`` training images) or ``stratified`` (``n`` images drawn per class in proportion,
    for small sets). Per epoch: validation SA on the ``n`` images, RA under PGD-``steps`` (eps/alpha of
    ``evaluation.attack``, fp32) on the first ``robust_images`` of them (0 = no RA and no best-RA weights).
    """

    how: Literal["none", "last", "stratified"] = "none"
    n: int = 0
    robust_images: int = 0
    steps: int = 10

    def __post_init__(self):
        check(self.n >= 0, "n", f"{self.n} must be >= 0 (held-out training images)")
        check((self.how == "none") == (self.n == 0), "n",
              f"{self.n} with how={self.how!r}: held-out images need how 'last' or 'stratified' and n >= 1; "
              "how 'none' needs n 0")
        check(0 <= self.robust_images <= self.n, "robust_images",
              f"{self.robust_images} is outside [0, n={self.n}] (held-out images attacked per epoch)")
        check(self.steps >= 1, "steps", f"{self.steps} must be >= 1 (PGD steps of the validation RA)")


@dataclass(frozen=True)
class TransferParams:
    standard: TrainParams = field(default_factory=lambda: TrainParams(epochs=3, lr=0.01, schedule="step", milestones=(2,)))
    adversarial: TrainParams = field(default_factory=lambda: TrainParams(epochs=3, lr=0.05, schedule="step", milestones=(2,)))
    linear: TrainParams = field(default_factory=lambda: TrainParams(epochs=3, lr=0.1, schedule="cosine"))
    attack: AttackParams = field(default_factory=lambda: AttackParams("pgd", 8 / 255, 2 / 255, 10))
    bn_mode: Literal["train", "eval"] = "train"
    # linear evaluation's BatchNorm statistics (both papers: "backbone frozen", silent on BN statistics):
    # recalibrate = re-estimated once on the downstream training images for the masked backbone, no
    # gradients, then frozen (no weight or affine parameter changes); frozen = the dense pretrained
    # network's statistics, which a pruned or domain-shifted backbone no longer matches
    linear_bn: Literal["recalibrate", "frozen"] = "recalibrate"
    seeds: tuple[int, ...] = (0, 1)
    validation: ValidationParams = field(default_factory=ValidationParams)
    # per-task recipes replacing a regime's, e.g. DW's SVHN adversarial transfer {svhn: {adversarial: {...}}}
    per_task: dict[str, dict[str, TrainParams]] = field(default_factory=dict)
    # named recipes an experiment selects (experiments.<name>.recipe), e.g. RT's fine-tuning
    # {rt: {standard: {...}, linear: {...}}}; their runs carry the name in their folder (repro.plan.RunSpec)
    recipes: dict[str, dict[str, TrainParams]] = field(default_factory=dict)

    def __post_init__(self):
        check(len(self.seeds) >= 1, "seeds", "needs at least one seed")
        check(len(set(self.seeds)) == len(self.seeds), "seeds", "seeds must be unique")
        for key, table in (("per_task", self.per_task), ("recipes", self.recipes)):
            for t, recipes in table.items():
                for r in recipes:
                    check(r in TRAIN_REGIMES, f"{key}.{t}.{r}",
                          f"regime {r!r} is not allowed; allowed: {', '.join(TRAIN_REGIMES)}")
        for name, recipes in self.recipes.items():
            check(re.fullmatch(RECIPE_NAME, name) is not None, f"recipes.{name}",
                  f"{name!r} is not allowed as a recipe name (it becomes part of run folders); allowed: "
                  f"lowercase letters, digits and '_', starting with a letter (e.g. rt)")
            check(len(recipes) >= 1, f"recipes.{name}",
                  f"needs at least one regime entry; allowed regimes: {', '.join(TRAIN_REGIMES)}")

    def recipe(self, regime: str, task: str, name: str = "") -> TrainParams:
        """The training recipe of a ``regime`` run on ``task``: the named recipe's entry (``recipes``, an
        experiment's ``recipe``), else its ``per_task`` entry, else the regime's."""
        return (self.recipes.get(name, {}).get(regime) or self.per_task.get(task, {}).get(regime)
                or getattr(self, regime))

    def recipe_tag(self, name: Optional[str], regime: str) -> str:
        """The recipe a ``regime`` run of an experiment with recipe ``name`` is tagged with: ``name`` when that
        recipe has an entry for the regime, else '' (the regime's own recipe, run folders named as without it)."""
        return name if name and regime in self.recipes.get(name, {}) else ""


@dataclass(frozen=True)
class EvalParams:
    attack: AttackParams = field(default_factory=lambda: AttackParams("pgd", 8 / 255, 2 / 255, 20))
    ece_bins: int = 15
    batch_size: int = 256
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
    # ra_aa: AutoAttack-grade RA (repro.attacks.autoattack) on the PGD-20 survivors of every adversarially fine-tuned
    # run; defaults = standard AutoAttack's gradient members (APGD-CE, APGD-T over 9 target classes, 100 iterations)
    aa_members: tuple[str, ...] = ("apgd-ce", "apgd-t")  # () = off
    aa_steps: int = 100
    aa_target_classes: int = 9
    verdict_ra: Literal["pgd20", "aa"] = "pgd20"  # the RA of the double-win verdicts (both are reported)
    # domain gap of analysis/domain_gap.json (RT Table II): `stats` = hand-made image statistics (offline
    # default), `fid` = Inception-v3 pool-3 FID with torchvision's ImageNet weights (repro/fid.py)
    domain_gap: Literal["stats", "fid"] = "stats"
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
        allowed = ("apgd-ce", "apgd-t")
        bad = [m for m in self.aa_members if m not in allowed]
        check(not bad and len(set(self.aa_members)) == len(self.aa_members), "aa_members",
              f"{list(self.aa_members)}: members must be distinct, from {list(allowed)}")
        check(self.aa_steps >= 1, "aa_steps", f"{self.aa_steps} must be >= 1")
        check(self.aa_target_classes >= 1, "aa_target_classes", f"{self.aa_target_classes} must be >= 1")
        check(all(0 < e <= 1 for e in self.adv_acc_eps), "adv_acc_eps",
              f"{list(self.adv_acc_eps)}: every budget must be in (0, 1] (pixel scale)")
        for r, c in self.select.items():
            check(r in SELECT_REGIMES, f"select.{r}", f"regime {r!r} is not allowed; allowed: {', '.join(SELECT_REGIMES)}")
            check(c in CHECKPOINTS, f"select.{r}", f"{c!r} is not allowed; allowed: {', '.join(CHECKPOINTS)}")

    def selected(self, regime: str) -> str:
        """The checkpoint reported for a run of ``regime`` (``last`` when not listed)."""
        return self.select.get(regime, "last")

    def adv_acc_attacked(self) -> list[float]:
        """The Adv-Acc budgets the sweep attacks: RA's own attack (same eps, step eps/4, random start, one
        restart) is not run twice, its budget reuses ``ra``."""
        a = self.attack
        same = a.name == "pgd" and a.random_start and a.restarts == 1 and abs(a.alpha - a.eps / 4) < 1e-12
        return [eps for eps in self.adv_acc_eps if not (same and abs(eps - a.eps) < 1e-12)]


@dataclass(frozen=True)
class Experiment:
    """One figure's grid: (pretraining kind, ticket method) pairs x regimes x fractions x tasks."""

    pairs: tuple[tuple[str, str], ...] = ()
    regimes: tuple[str, ...] = ("standard",)
    fractions: tuple[float, ...] = (1.0,)
    tasks: Optional[tuple[str, ...]] = None  # None: every downstream task
    seeds: Optional[tuple[int, ...]] = None  # None: transfer.seeds
    dense: bool = True  # also run each kind's dense (unpruned) baseline
    levels: Optional[tuple[float, ...]] = None  # its sparsities (each in sweep.sparsities); None: every sweep level
    # a name of transfer.recipes (e.g. RT's fine-tuning) for its runs and dense baselines in the regimes that recipe
    # lists; None: the regimes' own (transfer.<regime>, transfer.per_task)
    recipe: Optional[str] = None

    def runs_at(self, sparsity: float) -> bool:
        """Does this grid run at ``sparsity`` (0 = the dense baselines, always)?"""
        return sparsity == 0 or self.levels is None or any(abs(sparsity - lv) < 1e-6 for lv in self.levels)


@dataclass(frozen=True)
class SweepParams:
    sparsities: tuple[float, ...] = (0.488, 0.7379, 0.8926)


@dataclass(frozen=True)
class StudyParams:
    """The ticket under study (top-level ``sparsity``): method and downstream tasks."""

    method: Literal["imp", "a_imp", "omp", "random"] = "imp"
    tasks: Optional[tuple[str, ...]] = None  # None: the first downstream task


#: the tier names ``tiers/<name>.yaml`` (and the committed default) that ``tier`` may record
#: (tests/test_pipeline.py checks it against the files in tiers/)
TIERS = ("default", "smoke", "small", "paper", "trial", "vtab", "r18", "a10")


@dataclass(frozen=True)
class SegRecipe:
    """An iteration-based SGD recipe (segmentation transfer): RT Sec. III's VOC recipe by default
    (30k iterations, momentum 0.9, wd 1e-4, batch 4, lr x``gamma`` at 18k and 22k; RT names no base lr:
    0.01 is a choice). ``repro.segmentation`` trains with it; ``SegmentParams`` extends it."""

    iterations: int = 30000
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1.0e-4
    batch_size: int = 4
    milestones: tuple[int, ...] = (18000, 22000)
    gamma: float = 0.1

    def __post_init__(self):
        check(self.iterations >= 1, "iterations", f"{self.iterations} must be >= 1")
        check(self.lr > 0, "lr", f"{self.lr} must be > 0")
        check(0 <= self.momentum < 1, "momentum", f"{self.momentum} is outside [0, 1)")
        check(self.weight_decay >= 0, "weight_decay", f"{self.weight_decay} must be >= 0")
        check(self.batch_size >= 1, "batch_size", f"{self.batch_size} must be >= 1")
        check(0 < self.gamma <= 1, "gamma", f"{self.gamma} is outside (0, 1]")
        bad = [m for m in self.milestones if not 0 < m <= self.iterations]
        check(not bad, "milestones", f"{bad} are outside (0, {self.iterations}] iterations")

    def lr_at(self, it: int) -> float:
        """lr of optimizer step ``it`` (0-based): x gamma after each milestone step count reached."""
        return self.lr * self.gamma ** sum(it >= m for m in self.milestones)


@dataclass(frozen=True)
class SegmentParams(SegRecipe):
    """Segmentation transfer (stage `segment`; RT Fig. 7, DW Fig. A10's VOC panel): repro/segmentation.py.

    Its recipe fields are ``SegRecipe``'s (RT's VOC recipe by default); params.yaml shrinks it for the
    synthetic default task.
    """

    task: str = "synth_seg"  # repro.data.segmentation.SEG_DATASETS: synth_seg (generated) | voc2012 (data.root)
    # (pretraining kind, ticket method): RT Fig. 7 = OMP standard vs pgd_adversarial; DW A10 = the three
    # pretrainings' IMP tickets. Every level of sweep.sparsities, plus each kind's dense backbone.
    pairs: tuple[tuple[str, str], ...] = (("standard", "omp"), ("pgd_adversarial", "omp"))
    head: Literal["fcn", "deeplabv3"] = "fcn"  # torchvision's FCNHead / DeepLabHead on the ticket's backbone
    n_train: int = 600  # synth_seg: generated training / test images
    n_test: int = 200
    max_train: Optional[int] = None  # voc2012: the first N images of each split (None = all)
    max_test: Optional[int] = None
    levels: Optional[tuple[float, ...]] = None  # None: every level an experiment draws the pair's ticket at

    def __post_init__(self):
        super().__post_init__()
        names = current()
        if names is not None:
            check(self.task in names.seg_datasets, "task",
                  f"{self.task!r} is not allowed; allowed: {', '.join(names.seg_datasets)}")
        check(self.n_train >= 1 and self.n_test >= 1, "n_train", "n_train and n_test must be >= 1")
        for kind, method in self.pairs:
            check(kind in PRETRAIN_KINDS, "pairs", f"kind {kind!r} is not allowed; allowed: {', '.join(PRETRAIN_KINDS)}")
            check(method in ("omp", "imp", "a_imp", "random"), "pairs",
                  f"method {method!r} is not allowed; allowed: omp, imp, a_imp, random")


@dataclass(frozen=True)
class RuntimeParams:
    """How training runs, never what it computes. ``compile``: auto | on | off (``repro.base.runtime.should_compile``);
    YAML's bare ``on``/``off`` (booleans in YAML 1.1) mean the same as the strings."""

    compile: Union[str, bool] = "auto"

    def __post_init__(self):
        from ..base.runtime import COMPILE_MODES  # lazily: torch loads with it

        if isinstance(self.compile, bool):
            object.__setattr__(self, "compile", "on" if self.compile else "off")
        check(self.compile in COMPILE_MODES, "compile",
              f"{self.compile!r} is not allowed; allowed: {', '.join(COMPILE_MODES)}")


@dataclass(frozen=True)
class Params:
    sparsity: float = 0.9
    tier: str = "default"  # a tier name, or overlays stacked by repro.tiers with '+' (e.g. 'small+trial')
    seed: int = 0
    device: str = "auto"
    workers: int = 0  # processes for independent runs; 0 = auto (CPU cores on CPU, 1 on CUDA)
    data: DataParams = field(default_factory=DataParams)
    model: ModelParams = field(default_factory=ModelParams)
    pretrain: PretrainParams = field(default_factory=PretrainParams)
    tickets: TicketParams = field(default_factory=TicketParams)
    transfer: TransferParams = field(default_factory=TransferParams)
    evaluation: EvalParams = field(default_factory=EvalParams)
    sweep: SweepParams = field(default_factory=SweepParams)
    study: StudyParams = field(default_factory=StudyParams)
    segment: SegmentParams = field(default_factory=SegmentParams)
    runtime: RuntimeParams = field(default_factory=RuntimeParams)
    experiments: dict[str, Experiment] = field(default_factory=dict)

    def __post_init__(self):
        check(0 <= self.sparsity < 1, "sparsity", f"{self.sparsity} is outside [0, 1)")
        bad = [t for t in self.tier.split("+") if t not in TIERS]
        check(not bad, "tier", f"{self.tier!r} names unknown tier(s) {bad}; allowed: {', '.join(TIERS)}, "
                               f"joined with '+'")
        check(self.workers >= 0, "workers", f"{self.workers} must be >= 0 (0 = auto)")
        check(re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None, "device",
              f"{self.device!r} is not allowed; allowed: auto, cpu, cuda, cuda:N")
        check(len(set(self.pretrain.kinds)) == len(self.pretrain.kinds), "pretrain.kinds",
              f"{list(self.pretrain.kinds)}: kinds must be unique (one pretrain@<kind> stage each)")
        levels = self.sweep.sparsities
        for s in levels:
            check(0 < s < 1, "sweep.sparsities", f"{s} is outside (0, 1)")
        check(len(set(levels)) == len(levels), "sweep.sparsities", "levels must be unique")
        names = current()
        known = names.datasets if names is not None else None
        allowed = ", ".join(sorted(known or ()))
        for key, used in (("data.source", [self.data.source]), ("data.downstream", self.data.downstream),
                          ("data.ood", [self.data.ood]), ("data.ood_per_task", list(self.data.ood_per_task))):
            for name in used:
                check(known is None or name in known, key, f"dataset {name!r} is unknown; allowed: {allowed}")
        if self.evaluation.transfer_attack_task is not None:
            check(self.evaluation.transfer_attack_task in self.data.downstream, "evaluation.transfer_attack_task",
                  f"{self.evaluation.transfer_attack_task!r} is not a downstream task; allowed: {', '.join(self.data.downstream)}")
        for t in self.study.tasks or ():
            check(t in self.data.downstream, "study.tasks",
                  f"{t!r} is not a downstream task; allowed: {', '.join(self.data.downstream)}")
        for ename, e in self.experiments.items():
            key = f"experiments.{ename}"
            for lv in e.levels or ():
                check(any(abs(lv - s) < 1e-6 for s in levels), f"{key}.levels",
                      f"{lv} is not a level of sweep.sparsities {list(levels)}")
            check(e.levels is None or len(set(e.levels)) == len(e.levels), f"{key}.levels", "levels must be unique")
            for kind, method in e.pairs:
                check(kind in self.pretrain.kinds, f"{key}.pairs",
                      f"pretraining kind {kind!r} is not in pretrain.kinds; allowed: {', '.join(self.pretrain.kinds)}")
                check(method in METHODS, f"{key}.pairs", f"method {method!r} is not allowed; allowed: {', '.join(METHODS)}")
            for r in e.regimes:
                check(r in REGIMES, f"{key}.regimes", f"{r!r} is not allowed; allowed: {', '.join(REGIMES)}")
            for f in e.fractions:
                check(0 < f <= 1, f"{key}.fractions", f"{f} is outside (0, 1]")
            for t in e.tasks or ():
                check(t in self.data.downstream, f"{key}.tasks",
                      f"{t!r} is not a downstream task; allowed: {', '.join(self.data.downstream)}")
            if e.seeds is not None:
                check(len(e.seeds) >= 1 and len(set(e.seeds)) == len(e.seeds), f"{key}.seeds",
                      f"{list(e.seeds)}: seeds must be unique and at least one (or null = transfer.seeds)")
            # LMP learns its mask in the transfer stage (regime `mask`); other methods never run there
            has_lmp = any(m == "lmp" for _, m in e.pairs)
            if has_lmp:
                check("mask" in e.regimes, f"{key}.regimes",
                      f"{list(e.regimes)}: method 'lmp' runs only in regime 'mask', which is missing")
            if "mask" in e.regimes and e.pairs:
                check(has_lmp, f"{key}.regimes", "regime 'mask' (LMP mask learning) needs an (kind, 'lmp') pair")
            check(e.recipe is None or e.recipe in self.transfer.recipes, f"{key}.recipe",
                  f"{e.recipe!r} is not a recipe of transfer.recipes; allowed: "
                  f"{', '.join(self.transfer.recipes) or 'none defined'}, or null (the regimes' own)")
        for paper in PAPERS:
            self.recipe_tags(paper)  # one recipe per regime within a paper's experiments
        v = self.transfer.validation
        for r in SELECT_REGIMES:
            c = self.evaluation.selected(r)
            check(c == "last" or v.how != "none", f"evaluation.select.{r}",
                  f"{c!r} needs held-out validation images (transfer.validation.how 'last' or 'stratified'); "
                  "allowed without them: last")
            check(c != "best_ra" or v.robust_images > 0, f"evaluation.select.{r}",
                  "'best_ra' needs transfer.validation.robust_images >= 1 (the validation RA)")
        for t in self.transfer.per_task:  # a tier's recipe for a task this run leaves out is unused, not an error
            check(known is None or t in known, f"transfer.per_task.{t}", f"dataset {t!r} is unknown; allowed: {allowed}")
        lv = self.evaluation.trajectory_level
        check(any(abs(lv - s) < 1e-6 for s in levels), "evaluation.trajectory_level",
              f"{lv} is not a level of sweep.sparsities {list(levels)} (the level whose runs keep trajectories)")
        km = self.evaluation.kernel_map_level
        check(km is None or any(abs(km - s) < 1e-6 for s in levels), "evaluation.kernel_map_level",
              f"{km} is not a level of sweep.sparsities {list(levels)} (or null: the highest)")
        if any("adversarial" in e.regimes for e in self.experiments.values()):
            tr = self.transfer
            adv = {"transfer.adversarial": tr.adversarial,
                   **{f"transfer.{key}.{name}.adversarial": r["adversarial"]
                      for key, table in (("per_task", tr.per_task), ("recipes", tr.recipes))
                      for name, r in table.items() if "adversarial" in r}}
            for key, recipe in adv.items():
                check(recipe.epochs >= 2, f"{key}.epochs", f"{recipe.epochs} must be >= 2: the Fig. 6 trajectory "
                      "plane of the adversarial runs needs at least 3 weight snapshots (epochs + 1)")

    def recipe_tags(self, paper: str) -> dict[str, str]:
        """{regime: recipe tag} of one paper's experiments (named ``<paper>_*``, with pairs): the runs its claims and
        figures read ('' = the regime's own recipe; a regime absent here reads ''). Validation refuses two of its
        experiments giving one regime different recipes (its figures could not tell which runs to show)."""
        tags: dict[str, str] = {}
        seen: dict[str, str] = {}
        for ename, e in self.experiments.items():
            if not ename.startswith(f"{paper}_") or not e.pairs:
                continue
            for r in e.regimes:
                tag = self.transfer.recipe_tag(e.recipe, r)
                if tags.setdefault(r, tag) != tag:
                    shown = {t: repr(t) if t else "the regime's own" for t in (tag, tags[r])}
                    check(False, f"experiments.{ename}.recipe",
                          f"{e.recipe!r} gives regime {r!r} recipe {shown[tag]}, experiments.{seen[r]} gives it "
                          f"{shown[tags[r]]}; allowed: one recipe per regime among the {paper}_* experiments")
                seen.setdefault(r, ename)
        return tags

    @property
    def study_tasks(self) -> tuple[str, ...]:
        return self.study.tasks or (self.data.downstream[0],)

    @property
    def transfer_attack_task(self) -> str:
        return self.evaluation.transfer_attack_task or self.data.downstream[0]


def load_params(path: str | Path = "params.yaml", names: "Names | None" = None) -> Params:
    """params.yaml as a validated ``Params``. ``names``: the registries' names (``repro.registries.names()``, passed in
    by the caller: config imports none of the layers it configures); with them every name a value uses (architecture,
    datasets, published checkpoints) is checked too, else only the schema."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"params file {str(path)!r} is not valid YAML: {str(e).splitlines()[0]}") from None
    with using(names):
        return from_dict(Params, raw or {})
