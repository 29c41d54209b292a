"""ResNets for the two papers.

* ``cifar_resnet``: 3x3 stem, stride 1, no max-pool; blocks per stage and base
  width are parameters (``depths=(2,2,2,2), width=64`` is CIFAR ResNet-18,
  ``block='bottleneck', depths=(3,4,6,3)`` is CIFAR ResNet-50; tiny ones serve
  tests and the offline default).
* ``resnet18`` / ``resnet50``: torchvision's ImageNet networks (7x7 stem,
  max-pool), used with published checkpoints at 224 px.

The CIFAR networks use residual blocks with torchvision's structure and
parameter names (``conv1``, ``bn1``, ``layerK.i.conv1``, ``layerK.i.downsample.0``,
``fc``; Bottleneck stride on the 3x3 conv, as torchvision), so published masks
and weights apply directly; the ImageNet ones are torchvision's own classes,
imported only when built (importing torchvision costs ~2 s per stage).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from ..base.registry import Registry
from ..config.params import ModelParams

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """(x - mean) / std per channel; buffers are not saved in the state_dict."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def set(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != self.mean.shape[1] or len(std) != self.std.shape[1]:
            raise ValueError(f"normalization needs {self.mean.shape[1]} channels, got mean={mean} std={std}")
        if min(std) <= 0:
            raise ValueError(f"normalization std must be > 0, got {std}")
        self.mean.copy_(torch.tensor(mean).view_as(self.mean))
        self.std.copy_(torch.tensor(std).view_as(self.std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class BasicBlock(nn.Module):
    """3x3 -> 3x3 residual block (torchvision's BasicBlock structure and names)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 residual block, expansion 4 (torchvision's Bottleneck, ResNet v1.5)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


_BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class CifarResNet(nn.Module):
    """ResNet with a 3x3 stride-1 stem and no max-pool (32-px inputs)."""

    def __init__(
        self,
        num_classes: int,
        depths: Sequence[int] = (2, 2, 2, 2),
        width: int = 64,
        block: str = "basic",
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
    ):
        super().__init__()
        if block not in _BLOCKS:
            raise ValueError(f"unknown block {block!r}; allowed: {', '.join(_BLOCKS)}")
        if not depths or any(d < 1 for d in depths):
            raise ValueError(f"depths must be a non-empty list of positive ints, got {list(depths)}")
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        blk = _BLOCKS[block]
        self.normalize = Normalize(mean, std)
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        for i, d in enumerate(depths):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", self._make_layer(blk, width * 2**i, d, stride))
        self.num_stages = len(depths)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.inplanes, num_classes)
        _init_like_torchvision(self)

    def _make_layer(self, blk, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * blk.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * blk.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * blk.expansion),
            )
        layers = [blk(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * blk.expansion
        layers += [blk(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(self.normalize(x))))
        x = self.maxpool(x)
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def ImageNetResNet(block: str, layers: Sequence[int], num_classes: int = 1000,
                   mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                   width_divisor: int = 1) -> nn.Module:
    """torchvision's ImageNet ResNet (7x7 stem, max-pool) with the normalization inside. ``width_divisor`` > 1:
    the same network (layers, blocks, strides, parameter names) with every channel count divided by it, built
    stage by stage with torchvision's own ``_make_layer`` and blocks (``make rehearse``'s stand-in)."""
    from torchvision.models import resnet as tvr

    blk = {"basic": tvr.BasicBlock, "bottleneck": tvr.Bottleneck}[block]

    class _ImageNetResNet(tvr.ResNet):
        def __init__(self):
            if width_divisor == 1:
                super().__init__(blk, list(layers), num_classes=num_classes)
            else:
                self._narrow(64 // width_divisor)
            self.normalize = Normalize(mean, std)

        def _narrow(self, w: int) -> None:
            nn.Module.__init__(self)
            self._norm_layer, self.inplanes, self.dilation, self.groups, self.base_width = nn.BatchNorm2d, w, 1, 1, 64
            self.conv1 = nn.Conv2d(3, w, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(w)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            for i, n in enumerate(layers):
                setattr(self, f"layer{i + 1}", self._make_layer(blk, w * 2**i, n, stride=1 if i == 0 else 2))
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(w * 2 ** (len(layers) - 1) * blk.expansion, num_classes)
            _init_like_torchvision(self)

        def features(self, x: torch.Tensor) -> torch.Tensor:
            x = self.maxpool(self.relu(self.bn1(self.conv1(self.normalize(x)))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return torch.flatten(self.avgpool(x), 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.features(x))

    _ImageNetResNet.__name__ = _ImageNetResNet.__qualname__ = "ImageNetResNet"
    return _ImageNetResNet()


def _init_like_torchvision(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


ARCHS: Registry[Callable[..., nn.Module]] = Registry("architecture")


@ARCHS.register("cifar_resnet")
def _cifar_resnet(num_classes: int, depths=(2, 2, 2, 2), width: int = 64, block: str = "basic", width_divisor: int = 1,
                  **kw) -> nn.Module:
    return CifarResNet(num_classes, depths=depths, width=max(1, width // width_divisor), block=block, **kw)


@ARCHS.register("cifar_resnet18")
def _cifar_resnet18(num_classes: int, width_divisor: int = 1, **kw) -> nn.Module:
    return CifarResNet(num_classes, depths=(2, 2, 2, 2), width=64 // width_divisor, block="basic", **kw)


@ARCHS.register("cifar_resnet50")
def _cifar_resnet50(num_classes: int, width_divisor: int = 1, **kw) -> nn.Module:
    return CifarResNet(num_classes, depths=(3, 4, 6, 3), width=64 // width_divisor, block="bottleneck", **kw)


@ARCHS.register("resnet18")
def _resnet18(num_classes: int = 1000, **kw) -> nn.Module:
    return ImageNetResNet("basic", (2, 2, 2, 2), num_classes, **kw)


@ARCHS.register("resnet50")
def _resnet50(num_classes: int = 1000, **kw) -> nn.Module:
    return ImageNetResNet("bottleneck", (3, 4, 6, 3), num_classes, **kw)


def build_model(arch: str, num_classes: int, **kwargs) -> nn.Module:
    """Build a registered architecture: ``build_model('cifar_resnet', 10, depths=(1,1), width=8)``."""
    return ARCHS.get(arch)(num_classes=num_classes, **kwargs)


def model_from_params(mp: ModelParams, num_classes: int, mean: Sequence[float] = (0.5, 0.5, 0.5),
                      std: Sequence[float] = (0.5, 0.5, 0.5)) -> nn.Module:
    """The network params.yaml's ``model`` section names (depth, width and block apply to ``cifar_resnet``;
    ``width_divisor`` to every architecture)."""
    extra = {"width_divisor": mp.width_divisor} if mp.width_divisor != 1 else {}
    if mp.arch == "cifar_resnet":
        return build_model(mp.arch, num_classes, depths=mp.depths, width=mp.width, block=mp.block, mean=mean, std=std,
                           **extra)
    return build_model(mp.arch, num_classes, mean=mean, std=std, **extra)


def classifier(model: nn.Module) -> nn.Linear:
    fc = getattr(model, "fc", None)
    if not isinstance(fc, nn.Linear):
        raise TypeError(f"{type(model).__name__} has no linear classifier 'fc'")
    return fc


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Swap the classifier for a freshly initialised one with ``num_classes`` outputs."""
    old = classifier(model)
    model.fc = nn.Linear(old.in_features, num_classes).to(old.weight.device)
    return model


def freeze_backbone(model: nn.Module) -> list[nn.Parameter]:
    """Linear evaluation: only the classifier trains. Returns the trainable parameters.

    BatchNorm layers of a frozen backbone are kept in eval mode by the training
    factory (fastai's ``BnFreeze``), so their running statistics do not move.
    """
    head = {id(p) for p in classifier(model).parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in head)
    return [p for p in model.parameters() if p.requires_grad]


def set_normalization(model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> nn.Module:
    """Use the (downstream) dataset's statistics, as the official code does."""
    norm = getattr(model, "normalize", None)
    if not isinstance(norm, Normalize):
        raise TypeError(f"{type(model).__name__} has no Normalize module")
    norm.set(mean, std)
    return model


def prunable_names(model: nn.Module) -> list[str]:
    """Default ticket scope: every Conv2d weight (stem and downsample included), never the classifier."""
    return [f"{name}.weight" if name else "weight"
            for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
