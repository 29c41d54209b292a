"""Models: torchvision parameter names, normalization inside, head replacement and frozen backbones."""
from __future__ import annotations

import pytest
import torch
import torchvision

from repro.models import build_model, freeze_backbone, prunable_names, replace_head, set_normalization


def test_imagenet_resnets_take_torchvision_state_dicts_exactly():
    """Published ImageNet weights (torchvision format) load with strict=True; same keys, same order."""
    for arch, tv in (("resnet18", torchvision.models.resnet18), ("resnet50", torchvision.models.resnet50)):
        ours, ref = build_model(arch, 1000), tv()
        assert list(ours.state_dict()) == list(ref.state_dict())
        ours.load_state_dict(ref.state_dict(), strict=True)


@pytest.mark.parametrize("arch, tv", [("cifar_resnet18", torchvision.models.resnet18),
                                      ("cifar_resnet50", torchvision.models.resnet50)])
def test_cifar_resnets_follow_torchvision_names(arch, tv):
    """CIFAR variant: same names and shapes as torchvision except the 3x3 stem (and the classifier size)."""
    ours, ref = build_model(arch, 10).state_dict(), tv().state_dict()
    assert list(ours) == list(ref)
    diff = [k for k in ours if ours[k].shape != ref[k].shape]
    assert diff == ["conv1.weight", "fc.weight", "fc.bias"]
    assert ours["conv1.weight"].shape[-1] == 3


@pytest.mark.parametrize("arch", ["resnet50", "resnet18", "cifar_resnet18", "cifar_resnet50"])
def test_width_divisor_keeps_layers_and_names_and_divides_every_channel_count(arch):
    """model.width_divisor (make rehearse's stand-in): same parameter names in the same order, every convolution's
    channels divided by the divisor (the RGB input excepted), the classifier's input too; it runs."""
    from repro.config import ModelParams
    from repro.models import model_from_params

    full, narrow = build_model(arch, 10), model_from_params(ModelParams(arch=arch, width_divisor=16), 10)
    fs, ns = full.state_dict(), narrow.state_dict()
    assert list(fs) == list(ns)
    convs = [n for n, m in full.named_modules() if isinstance(m, torch.nn.Conv2d)]
    for n in convs:
        f, w = fs[f"{n}.weight"].shape, ns[f"{n}.weight"].shape
        assert w[0] == f[0] // 16 and w[1] == (3 if f[1] == 3 else f[1] // 16) and w[2:] == f[2:], n
    assert ns["fc.weight"].shape == (10, fs["fc.weight"].shape[1] // 16)
    size = 32 if arch.startswith("cifar") else 64
    assert narrow(torch.rand(2, 3, size, size)).shape == (2, 10)


def test_normalization_inside_model_and_not_in_state_dict():
    """Attacks work in [0, 1]: the model normalizes its input; the buffers are not saved."""
    m = build_model("cifar_resnet", 4, depths=(1, 1), width=8, mean=(0.2, 0.3, 0.4), std=(0.5, 0.5, 0.5))
    assert not any(k.startswith("normalize") for k in m.state_dict())
    x = torch.rand(2, 3, 16, 16)
    set_normalization(m, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert torch.allclose(m.normalize(x), (x - 0.5) / 0.25)
    with pytest.raises(ValueError, match="std must be > 0"):
        set_normalization(m, (0, 0, 0), (1, 0, 1))


def test_cifar_stem_keeps_resolution_and_depth_width_are_parameters():
    m = build_model("cifar_resnet", 7, depths=(1, 2, 1), width=4, block="bottleneck")
    assert m(torch.rand(3, 3, 32, 32)).shape == (3, 7)
    assert isinstance(m.maxpool, torch.nn.Identity) and m.conv1.stride == (1, 1)
    assert m.layer3[0].conv3.out_channels == 4 * 4 * 4
    with pytest.raises(ValueError, match="depths"):
        build_model("cifar_resnet", 7, depths=(0,))


def test_replace_head_and_freeze_backbone():
    """Transfer: a fresh classifier for the task; linear evaluation trains only that classifier."""
    m = build_model("cifar_resnet", 20, depths=(1, 1), width=8)
    replace_head(m, 5)
    assert m.fc.out_features == 5 and m(torch.rand(1, 3, 16, 16)).shape == (1, 5)
    trainable = freeze_backbone(m)
    assert {id(p) for p in trainable} == {id(m.fc.weight), id(m.fc.bias)}


def test_prunable_scope_is_every_conv_never_the_classifier():
    """Official code: stem and downsample convs are pruned, the fc layer never."""
    m = build_model("cifar_resnet", 10, depths=(1, 1), width=8)
    names = prunable_names(m)
    assert "conv1.weight" in names and "layer2.0.downsample.0.weight" in names
    assert not any(n.startswith("fc") for n in names)
    assert len(names) == sum(isinstance(x, torch.nn.Conv2d) for x in m.modules())
