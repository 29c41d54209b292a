"""The Inception-v3 graphs whose pool-3 features FID is computed from (repro/fid.py).

* ``inception_v3``: torchvision's Inception-v3 (``IMAGENET1K_V1`` weights; aux head kept so the published
  state_dict loads as is).
* ``fid_inception_v3``: the graph of TensorFlow's 2015-12-05 Inception-v3 release, the network of the FID
  literature (Heusel et al. 2017's TensorFlow code; pytorch-fid's ``pt_inception-2015-12-05`` weights are its
  parameters under torchvision's module names). It is torchvision's Inception-v3 with three differences in the
  graph: the average pools of the Mixed blocks' pool branches leave the padding out of the average (TensorFlow's
  SAME pooling), the pool branch of the last block (Mixed_7c) takes a max pool instead, and the classifier has
  1,008 outputs (no auxiliary head). The pool-3 features (2048-d) come before the classifier, so only the first
  two differences change them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: the two graphs, by the ``arch`` name the weights registry uses
INCEPTION_ARCHS = ("inception_v3", "fid_inception_v3")
FID_CLASSES = 1008


def _pool(x: torch.Tensor, kind: str) -> torch.Tensor:
    """The 3x3, stride 1 pool of a pool branch: ``avg`` without the padding in the average, or ``max``."""
    if kind == "max":
        return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _fid_classes():
    """The three Mixed block classes of the FID graph: torchvision's, with the TensorFlow pool branch (subclasses,
    so a model copies and pickles as any module does)."""
    from torchvision.models.inception import InceptionA, InceptionC, InceptionE

    class FIDInceptionA(InceptionA):  # Mixed_5b-d
        def forward(self, x):
            b5 = self.branch5x5_2(self.branch5x5_1(x))
            b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_pool(x, "avg"))], 1)

    class FIDInceptionC(InceptionC):  # Mixed_6b-e
        def forward(self, x):
            b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
            d = x
            for name in ("branch7x7dbl_1", "branch7x7dbl_2", "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5"):
                d = getattr(self, name)(d)
            return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_pool(x, "avg"))], 1)

    class FIDInceptionE(InceptionE):  # Mixed_7b (avg pool) and, as FIDInceptionEMax, Mixed_7c
        pool = "avg"

        def forward(self, x):
            s = self.branch3x3_1(x)
            b3 = torch.cat([self.branch3x3_2a(s), self.branch3x3_2b(s)], 1)
            d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            bd = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
            return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(_pool(x, self.pool))], 1)

    class FIDInceptionEMax(FIDInceptionE):
        pool = "max"

    return FIDInceptionA, FIDInceptionC, FIDInceptionE, FIDInceptionEMax


def build_inception_graph(arch: str) -> nn.Module:
    """An untrained (PyTorch's default layer initialisation) ``inception_v3`` or ``fid_inception_v3`` in eval
    mode, under torchvision's module and parameter names."""
    from torchvision.models import inception_v3

    if arch not in INCEPTION_ARCHS:
        raise ValueError(f"unknown Inception graph {arch!r}; allowed: {', '.join(INCEPTION_ARCHS)}")
    if arch == "inception_v3":
        return inception_v3(weights=None, aux_logits=True, transform_input=False, init_weights=False).eval()
    model = inception_v3(weights=None, aux_logits=False, transform_input=False, init_weights=False,
                         num_classes=FID_CLASSES)
    a, c, e, e_max = _FID_CLASSES
    for names, cls in ((("Mixed_5b", "Mixed_5c", "Mixed_5d"), a), (("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"), c),
                       (("Mixed_7b",), e), (("Mixed_7c",), e_max)):
        for name in names:
            getattr(model, name).__class__ = cls  # same modules and parameters, the TensorFlow pool branch
    return model.eval()


_FID_CLASSES = _fid_classes()
