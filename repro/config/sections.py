"""The schema of params.yaml's training sections: attacks, training recipes, data (with the synthetic generator),
model, pretraining, tickets (IMP, LMP) and transfer (with checkpoint selection and named recipes)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Optional, Union

from .constants import (ADVERSARIAL_KINDS, LMP_BN, PRETRAIN_KINDS, RECIPE_NAME, SCHEDULES, TRAIN_REGIMES,
                        eps_label)
from .names import current
from .typed import check


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


def check_sgd(r) -> None:
    """The SGD fields every training recipe has (``lr``, ``momentum``, ``weight_decay``, ``batch_size``)."""
    check(r.lr > 0, "lr", f"{r.lr} must be > 0")
    check(0 <= r.momentum < 1, "momentum", f"{r.momentum} is outside [0, 1)")
    check(r.weight_decay >= 0, "weight_decay", f"{r.weight_decay} must be >= 0")
    check(r.batch_size >= 1, "batch_size", f"{r.batch_size} must be >= 1")


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
        check_sgd(self)
        check(self.schedule in SCHEDULES, "schedule", f"{self.schedule!r} is not allowed; allowed: {', '.join(SCHEDULES)}")
        check(self.gamma > 0, "gamma", f"{self.gamma} must be > 0 (lr step-decay factor)")
        bad = [m for m in self.milestones if not 0 < m <= self.epochs]
        check(self.schedule != "step" or not bad, "milestones",
              f"{bad} are outside (0, {self.epochs}] epochs (lr step decay)")


@dataclass(frozen=True)
class TextureParams:
    """A second class signal of the synthetic tasks, *non-robust* by construction.

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
    # every channel count divided by this, layers and names kept: 1 = the architecture itself; make rehearse
    # runs the real tiers' networks at 16 (a CPU check of the path, never a result)
    width_divisor: Literal[1, 2, 4, 8, 16, 32] = 1

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
    # Robust Tickets' per-task eps (RT Sec. III-A, after Salman et al.): further PGD pretraining radii of
    # EPS_KIND besides its own (pgd.eps, or its published checkpoint's); () = off (RT uses the one eps as DW)
    eps_grid: tuple[float, ...] = ()
    # held-out training images of each downstream task that decide the eps when transfer.validation is off
    eps_select: "HeldOutParams" = field(default_factory=lambda: HeldOutParams())
    # early stopping of adversarial pretraining on held-out PGD accuracy (DW Sec. 3, Rice et al. 2020)
    early_stopping: "EarlyStopParams" = field(default_factory=lambda: EarlyStopParams())

    def __post_init__(self):
        bad = [k for k in self.kinds if k not in PRETRAIN_KINDS]
        check(not bad, "kinds", f"{bad[0] if bad else ''!r} is not allowed; allowed: {', '.join(PRETRAIN_KINDS)}")
        check(self.smoothing_sigma > 0, "smoothing_sigma", f"{self.smoothing_sigma} must be > 0")
        for e in self.eps_grid:
            check(0 < e <= 1, "eps_grid", f"{e} is outside (0, 1] (pixel scale; write radii as e.g. 2/255)")
        labels = [eps_label(e) for e in self.eps_grid]
        check(len(set(labels)) == len(labels), "eps_grid", f"{labels}: radii must be unique")
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
    # the downstream (DS) IMP / A-IMP recipe (imp_ds, a_imp_ds): the retraining of every round on the downstream
    # task, with a fresh head, on its training images minus transfer.validation's held-out ones (RT states none)
    retrain_ds: TrainParams = field(default_factory=lambda: TrainParams(epochs=2, lr=0.01, schedule="constant",
                                                                        batch_size=64))
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
    code: the last ``n`` training images, in file order), ``stratified`` (``n`` images drawn per class in
    proportion) or ``auto`` (the official last ``n`` where the file order makes them a fair draw of the
    classes, else stratified: ``repro.data.splits.last_keeps_balance``; CUB-200's files are sorted by class).
    ``n``: held-out images, a count (``5000``) or a fraction of each task's training images (``0.1``);
    ``per_task`` overrides it for named tasks (``{cub200: 0.1}``). Per epoch: validation SA on the held-out
    images, RA under PGD-``steps`` (eps/alpha of ``evaluation.attack``, fp32) on the first ``robust_images``
    of them (at most all of them; 0 = no RA and no best-RA weights).
    """

    how: Literal["none", "last", "stratified", "auto"] = "none"
    n: Union[int, float] = 0
    per_task: dict[str, Union[int, float]] = field(default_factory=dict)
    robust_images: int = 0
    steps: int = 10

    def __post_init__(self):
        for key, v in (("n", self.n), *((f"per_task.{t}", v) for t, v in self.per_task.items())):
            check(v >= 0 and (isinstance(v, int) or 0 < v < 1), key,
                  f"{v} is not allowed; allowed: a count of held-out images (an integer >= 1) or a fraction of "
                  "each task's training images in (0, 1)" + ("; 0 = off" if key == "n" else ""))
        check((self.how == "none") == (self.n == 0), "n",
              f"{self.n} with how={self.how!r}: held-out images need how 'last', 'stratified' or 'auto' and "
              "n > 0; how 'none' needs n 0")
        check(self.robust_images >= 0 and (not isinstance(self.n, int) or self.robust_images <= self.n),
              "robust_images", f"{self.robust_images} is outside [0, n={self.n}] (held-out images attacked per epoch)")
        check(self.steps >= 1, "steps", f"{self.steps} must be >= 1 (PGD steps of the validation RA)")

    def count(self, task: str, n_train: int) -> int:
        """Held-out images of ``task`` with ``n_train`` training images (0 when off): its ``per_task`` entry, else
        ``n``; a fraction is rounded, at least 1."""
        if self.how == "none":
            return 0
        n = self.per_task.get(task, self.n)
        return n if isinstance(n, int) else max(1, round(n * n_train))


@dataclass(frozen=True)
class HeldOutParams:
    """Held-out training images that decide a choice made inside the pipeline (never the test set): ``how``
    ``last`` (the last ``n`` training images) or ``stratified`` (``n`` drawn in the classes' proportions)."""

    how: Literal["last", "stratified"] = "stratified"
    n: int = 100

    def __post_init__(self):
        check(self.n >= 1, "n", f"{self.n} must be >= 1 (held-out training images)")


@dataclass(frozen=True)
class EarlyStopParams:
    """Early stopping of in-house adversarial pretraining (DW Sec. 3: "an early-stopping policy (Rice et al.,
    2020) ... is adopted" against FAT's catastrophic overfitting). For each kind of ``kinds``: ``n`` source
    training images are held out (``how``: last | stratified; ``none`` = off), and after every epoch PGD-``steps``
    (the kind's own training eps, step eps/4, random start) attacks the first ``robust_images`` of them; the
    weights of the epoch with the best held-out PGD accuracy are kept (ties: the earlier epoch)."""

    kinds: tuple[str, ...] = ("fast_adversarial",)
    how: Literal["none", "last", "stratified"] = "stratified"
    n: int = 300
    robust_images: int = 200
    steps: int = 10

    def __post_init__(self):
        bad = [k for k in self.kinds if k not in ADVERSARIAL_KINDS]
        check(not bad, "kinds", f"{bad[0] if bad else ''!r} is not allowed; allowed: {', '.join(ADVERSARIAL_KINDS)}")
        if self.how != "none":
            check(self.n >= 1, "n", f"{self.n} must be >= 1 (held-out source images), or how: none")
            check(1 <= self.robust_images <= self.n, "robust_images",
                  f"{self.robust_images} is outside [1, n={self.n}] (held-out images attacked per epoch)")
        check(self.steps >= 1, "steps", f"{self.steps} must be >= 1 (PGD steps of the held-out accuracy)")

    def applies(self, kind: str) -> bool:
        return self.how != "none" and kind in self.kinds


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
