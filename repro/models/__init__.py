"""Networks: CIFAR-style and ImageNet ResNets with torchvision parameter names.

Every model carries its input normalization as a ``normalize`` submodule
(non-persistent buffers), so attacks work in [0, 1] pixel space and the
state_dict has exactly torchvision's keys.
"""
from .resnet import (
    ARCHS,
    CifarResNet,
    ImageNetResNet,
    Normalize,
    build_model,
    classifier,
    model_from_params,
    freeze_backbone,
    prunable_names,
    replace_head,
    set_normalization,
)

__all__ = [
    "ARCHS",
    "CifarResNet",
    "ImageNetResNet",
    "Normalize",
    "build_model",
    "classifier",
    "model_from_params",
    "freeze_backbone",
    "prunable_names",
    "replace_head",
    "set_normalization",
]
