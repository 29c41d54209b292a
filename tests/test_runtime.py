"""Run-time model preparation: Conv-BN folding for evaluation (``runtime.inference_model``).

In eval mode BatchNorm is a fixed affine map, so folding it into the preceding convolution must
compute the same function; evaluation (SA, RA, transfer attacks, sanity checks) runs on the
folded copy because it removes the BN forward and backward from each PGD-20 iteration.
"""
from __future__ import annotations


import pytest
import torch
from torch import nn

from repro.base import runtime
from repro.attacks import pgd
from repro.metrics import robust_accuracy
from repro.models import build_model

from helpers import _one_thread, make_synthetic, train_tiny  # noqa: F401 (autouse fixture)


def _randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics and affine parameters, so folding is not the identity."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
            m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(n, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(n, generator=g))
    return model


@pytest.mark.parametrize("arch,kw", [("cifar_resnet", dict(depths=(1, 1), width=8)),
                                     ("resnet18", {}), ("resnet50", {})])
def test_folded_model_computes_the_same_function_without_batchnorm(arch, kw):
    """Every BatchNorm is folded away and the logits agree to float rounding; the original is untouched."""
    torch.manual_seed(0)
    model = runtime.prepare_model(_randomize_bn(build_model(arch, 5, **kw)), torch.device("cpu")).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    fused = runtime.inference_model(model)

    assert fused is not model
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fused.modules())
    assert not fused.training and not any(p.requires_grad for p in fused.parameters())
    convs = [m for m in fused.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    # the original: same weights and statistics, same flags, still trainable
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert [m.training for m in model.modules()] == flags
    assert all(p.requires_grad for p in model.parameters())

    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        ref = model.eval()(x)
        out = fused(x)
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


def test_folding_is_done_once():
    """A folded model is returned as is (evaluate_run folds once and hands it to every metric)."""
    fused = runtime.inference_model(build_model("cifar_resnet", 3, depths=(1,), width=8))
    assert runtime.inference_model(fused) is fused


class _DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

    def forward(self, x):
        if x.sum() > 0:  # control flow torch.fx cannot trace
            x = x * 2
        return self.bn(self.conv(x)).mean((2, 3))


def test_untraceable_model_is_evaluated_unfolded_with_a_warning():
    model = _DataDependent()
    with pytest.warns(UserWarning, match="could not be traced"):
        assert runtime.inference_model(model) is model


def test_pgd_on_the_folded_model_finds_the_same_adversarial_examples():
    """Same seed, same attack: on a trained model, PGD-20 on the folded copy classifies (nearly) every
    image as PGD-20 on the unfolded model does; only float rounding of near-zero gradients may differ."""
    model = train_tiny(seed=0).eval()
    x, y = make_synthetic(256, seed=7)
    fused = runtime.inference_model(model)
    adv = pgd(model, x, y, eps=8 / 255, alpha=2 / 255, steps=20, generator=torch.Generator().manual_seed(3))
    adv_f = pgd(fused, x, y, eps=8 / 255, alpha=2 / 255, steps=20, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        pred, pred_f = model(adv).argmax(1), fused(adv_f).argmax(1)
    agree = (pred == pred_f).float().mean().item()
    assert agree >= 0.99  # measured: 1.0, and every adversarial pixel identical
    ra, ra_f = (pred == y).float().mean().item(), (pred_f == y).float().mean().item()
    assert abs(ra - ra_f) <= 2 / 256
    # robust_accuracy is that folded attack
    loader = [(x[i:i + 64], y[i:i + 64]) for i in range(0, 256, 64)]
    assert robust_accuracy(model, loader, seed=3, progress=False) == pytest.approx(ra_f)
