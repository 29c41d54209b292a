"""Datasets: uint8 array tasks, albumentations recipes, fastai loaders, synthetic tasks.

``DATASETS`` (a registry) builds tasks by name: the offline synthetic source
(``synth_source``), downstream tasks at growing domain gap (``synth_near``,
``synth_mid``, ``synth_far``) and an out-of-distribution set (``synth_ood``).
``domain_gap_score`` is the FID-style gap between two tasks.
``PUBLIC_DATASETS`` / ``load_public`` read the real datasets (CIFAR-10/100, SVHN,
Tiny-ImageNet, capped ImageNet, the Robust Tickets Fig. 9 sets with Birdsnap, CUB-200-2011 and
VisDA-2017 of Double-Win Fig. A10) from their
published on-disk formats under ``data.root`` (``repro/data/public/``).
"""
from ..base.errors import DataError
from .arrays import ArrayTask, channel_stats
from .loaders import ArrayDataset, array_loader, make_dataloaders, test_loader
from .splits import SUBSET_METHODS, check_held_out, held_out, subset_indices, validation_split, with_held_out
from .transforms import RECIPES, Recipe, test_transform, train_transform
from .public import PUBLIC_DATASETS, TORCHVISION_SETS, first_per_class, fit_square, load_public, safe_unpickle
from .gap import default_features, domain_gap_score, frechet_distance, model_feature_fn
from .synthetic import (DATASETS, DOWNSTREAM_GAPS, FAR_FAMILY, OOD_KINDS, SOURCE_FAMILY, Family, Nuisance, family_at,
                        load_dataset, make_ood_task, make_task)

__all__ = [
    "RECIPES", "SUBSET_METHODS", "ArrayDataset", "ArrayTask", "DataError", "Recipe", "array_loader",
    "channel_stats", "check_held_out", "make_dataloaders", "subset_indices", "test_loader", "test_transform",
    "train_transform", "validation_split", "held_out", "with_held_out",
    "DATASETS", "DOWNSTREAM_GAPS", "FAR_FAMILY", "OOD_KINDS", "SOURCE_FAMILY", "Family", "Nuisance",
    "default_features", "domain_gap_score", "family_at", "frechet_distance", "load_dataset",
    "make_ood_task", "make_task", "model_feature_fn",
    "PUBLIC_DATASETS", "TORCHVISION_SETS", "first_per_class", "fit_square", "load_public", "safe_unpickle",
]
