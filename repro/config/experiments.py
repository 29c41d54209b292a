"""The schema of params.yaml's experiment grids (``experiments``, ``sweep``, ``study``), the segmentation transfer
(``segment``) and how training runs (``runtime``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Union

from .constants import (PRETRAIN_KINDS)
from .names import current
from .sections import check_sgd
from .typed import check


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
    # None: the first downstream task; [] = no study (the stage writes metrics/study.json saying so, and draws,
    # fine-tunes and baselines nothing: a tier whose figures need no standard-vs-adversarial comparison)
    tasks: Optional[tuple[str, ...]] = None


#: the tier names ``tiers/<name>.yaml`` (and the committed default) that ``tier`` may record
#: (tests/test_pipeline.py checks it against the files in tiers/)
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
        check_sgd(self)
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
    synthetic default task. ``pairs: []`` turns segmentation off: no run, the `data` stage builds no
    segmentation task (no VOC files needed) and the `segment` stage records ``"runs": []``.
    """

    task: str = "synth_seg"  # repro.data.segmentation.SEG_DATASETS: synth_seg (generated) | voc2012 (data.root)
    # (pretraining kind, ticket method): RT Fig. 7 = OMP standard vs pgd_adversarial; DW A10 = the three
    # pretrainings' IMP tickets. Every level of sweep.sparsities, plus each kind's dense backbone. [] = off.
    pairs: tuple[tuple[str, str], ...] = (("standard", "omp"), ("pgd_adversarial", "omp"))
    head: Literal["fcn", "deeplabv3"] = "fcn"  # torchvision's FCNHead / DeepLabHead on the ticket's backbone
    n_train: int = 600  # synth_seg: generated training / test images
    n_test: int = 200
    max_train: Optional[int] = None  # voc2012: the first N images of each split (None = all)
    max_test: Optional[int] = None
    image_size: Optional[int] = None  # side of the segmentation images (None = data.image_size)
    levels: Optional[tuple[float, ...]] = None  # None: every level an experiment draws the pair's ticket at

    def __post_init__(self):
        super().__post_init__()
        names = current()
        if names is not None:
            check(self.task in names.seg_datasets, "task",
                  f"{self.task!r} is not allowed; allowed: {', '.join(names.seg_datasets)}")
        check(self.n_train >= 1 and self.n_test >= 1, "n_train", "n_train and n_test must be >= 1")
        check(self.image_size is None or self.image_size >= 8, "image_size",
              f"{self.image_size} must be >= 8 px (or null: data.image_size)")
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
