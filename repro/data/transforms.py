"""Augmentation recipes (albumentations; the registry ``RECIPES``): ``"cifar"`` = pad 4 (zeros) + random crop
back + horizontal flip for training, identity (or a resize) for testing; ``"pad_crop"`` the same translation
scaled to the image, no flip; ``"none"``; ``"imagenet224"`` = RandomResizedCrop + flip for training, Resize 256 +
CenterCrop 224 for testing (the official code's 224-px transfer setting)."""
from __future__ import annotations

from typing import Callable, NamedTuple

import albumentations as A
import cv2
import numpy as np

from ..base.registry import Registry

RECIPES: Registry[Recipe] = Registry("augmentation recipe")


class Recipe(NamedTuple):
    """Builders of the training (augmenting) and test albumentations pipelines."""

    train: Callable[[int], list]
    test: Callable[[int], list]


class _MaybeResize(A.ImageOnlyTransform):
    """Resize to ``size`` x ``size`` only if needed (identity for native-size images)."""

    def __init__(self, size: int, p: float = 1.0):
        super().__init__(p=p)
        self.size = size

    def apply(self, img, **params):
        if img.shape[0] == self.size and img.shape[1] == self.size:
            return img
        return cv2.resize(img, (self.size, self.size), interpolation=cv2.INTER_LINEAR)

    def get_transform_init_args_names(self):
        return ("size",)


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"image size must be a positive int, got {size!r}")
    return int(size)


def train_transform(size: int, seed: int | None = 0, recipe: str = "cifar") -> A.Compose:
    """Augmenting pipeline of ``recipe`` producing ``size`` x ``size`` uint8 HWC images.

    The random stream belongs to the ``Compose`` (``seed``), independent of global RNGs.
    """
    return A.Compose(RECIPES.get(recipe).train(_check_size(size)), seed=seed)


def test_transform(size: int, recipe: str = "cifar") -> A.Compose:
    """Deterministic evaluation pipeline of ``recipe`` (identity for native-size CIFAR images)."""
    return A.Compose(RECIPES.get(recipe).test(_check_size(size)), seed=0)


RECIPES.register("cifar")(Recipe(
    # the CIFAR recipe: zero-pad 4, random crop back to size, horizontal flip
    train=lambda size: [_MaybeResize(size), A.Pad(padding=4, fill=0, border_mode=cv2.BORDER_CONSTANT),
                        A.RandomCrop(size, size), A.HorizontalFlip(p=0.5)],
    test=lambda size: [_MaybeResize(size)],
))

RECIPES.register("pad_crop")(Recipe(
    # the CIFAR translation scaled to the image (pad size/8: 4 px at 32, 2 px at 16), no flip:
    # for the synthetic tasks, whose classes are oriented patterns a mirror image would change
    train=lambda size: [_MaybeResize(size), A.Pad(padding=max(1, size // 8), fill=0, border_mode=cv2.BORDER_CONSTANT),
                        A.RandomCrop(size, size)],
    test=lambda size: [_MaybeResize(size)],
))

RECIPES.register("none")(Recipe(
    # no augmentation: the synthetic tasks draw a fresh translation, contrast, phase and noise
    # for every image, so their training set already carries these nuisances
    train=lambda size: [_MaybeResize(size)],
    test=lambda size: [_MaybeResize(size)],
))

RECIPES.register("imagenet224")(Recipe(
    # the official 224-px transfer: RandomResizedCrop + flip; Resize 256 + CenterCrop 224
    train=lambda size: [A.RandomResizedCrop(size=(size, size)), A.HorizontalFlip(p=0.5)],
    test=lambda size: [A.SmallestMaxSize(max_size=int(round(size * 256 / 224))), A.CenterCrop(size, size)],
))


# pytest must not collect these public helpers as tests when a test module imports them
train_transform.__test__ = test_transform.__test__ = False  # type: ignore[attr-defined]
