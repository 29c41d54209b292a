"""Issue 26 point 6: FID comparable with RT Table II. The FID literature's Inception (TensorFlow's 2015-12-05 graph,
pytorch-fid's ``pt_inception-2015-12-05`` weights) is registered, unpinned until ``python -m repro.weights pin``,
and the default of the tiers that report FID; its graph and preprocessing give pytorch-fid's features.

The real weights cannot be downloaded here, so the check is on synthetic weights: one seeded random state_dict
loaded into both our ``fid_inception_v3`` and pytorch-fid's own ``InceptionV3`` (its weight download replaced by
that state_dict), then pool-3 features of the same images, uint8 at several sizes, through each side's own
preprocessing (ours: ``inception_feature_fn``; pytorch-fid: [0, 1] tensors as its ``ToTensor`` makes them, its
resize and normalisation), and the Fréchet distance of two such feature sets by both sides' formulas.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from repro import weights as W
from repro.data import frechet_distance
from repro.fid import FID_WEIGHTS, INCEPTION_WEIGHTS, build_inception, inception_feature_fn
from repro.registries import params_from


@pytest.fixture(scope="module")
def pair(monkeypatch_module):
    """(our FID Inception, pytorch-fid's InceptionV3) holding the same synthetic weights."""
    pf = pytest.importorskip("pytorch_fid.inception")
    ours = build_inception(seed=7)  # the default graph: fid_inception_v3
    with torch.no_grad():  # BatchNorm statistics off their defaults, so every layer's arithmetic is exercised
        g = torch.Generator().manual_seed(8)
        for name, b in ours.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    sd = {k: v.clone() for k, v in ours.state_dict().items()}
    monkeypatch_module.setattr(pf, "load_state_dict_from_url", lambda *a, **k: sd)  # no download: our weights
    theirs = pf.InceptionV3([pf.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    return ours.eval(), theirs


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_the_fid_graph_loads_pytorch_fids_state_dict_keys():
    pf = pytest.importorskip("pytorch_fid.inception")
    ours = build_inception(seed=0)
    # pytorch-fid's graph, as its weight file fills it (num_classes 1008, no aux head)
    from torchvision.models import inception_v3

    ref = inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert W.reference_shapes("fid_inception_v3") == {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert "pt_inception-2015-12-05" in pf.FID_WEIGHTS_URL and W.WEIGHTS.get(INCEPTION_WEIGHTS).url == pf.FID_WEIGHTS_URL


@pytest.mark.parametrize("size", [32, 64, 299])
def test_pool3_features_match_pytorch_fid_on_the_same_weights(pair, size):
    ours, theirs = pair
    x = np.random.default_rng(size).integers(0, 256, (4, size, size, 3), dtype=np.uint8)
    mine = inception_feature_fn(ours, batch_size=2)(x)
    with torch.no_grad():
        ref = theirs(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255)[0].squeeze(-1).squeeze(-1).double().numpy()
    assert mine.shape == ref.shape == (4, 2048)
    assert np.abs(mine - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), np.abs(mine - ref).max()


def test_the_graph_differs_from_torchvisions_where_tensorflows_does(pair):
    """The pool branches matter: the same weights in torchvision's own Inception graph give other features."""
    ours, _ = pair
    tv = build_inception(arch="inception_v3")
    tv.load_state_dict({k: v for k, v in ours.state_dict().items() if not k.startswith("fc.")}, strict=False)
    x = np.random.default_rng(3).integers(0, 256, (2, 80, 80, 3), dtype=np.uint8)
    assert np.abs(inception_feature_fn(ours)(x) - inception_feature_fn(tv)(x)).max() > 1e-3


def test_frechet_distance_matches_pytorch_fids():
    fs = pytest.importorskip("pytorch_fid.fid_score")
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((300, 20)), rng.standard_normal((250, 20)) * 1.3 + 0.2
    ref = fs.calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)


def test_fid_weights_are_the_default_of_the_tiers_that_report_fid_and_a_validated_param():
    from pathlib import Path

    import yaml

    from repro.config import ConfigError
    from repro.tiers import merge

    root = Path(__file__).resolve().parents[1]
    assert set(FID_WEIGHTS) == {n for n in W.WEIGHTS.names() if W.WEIGHTS.get(n).kind == "fid_features"}
    for tier in ("small", "paper"):
        cfg = merge(yaml.safe_load((root / "params.yaml").read_text()),
                    yaml.safe_load((root / "tiers" / f"{tier}.yaml").read_text()))
        e = params_from(cfg).evaluation
        assert (e.domain_gap, e.fid_weights) == ("fid", "fid_inception_v3_2015_12_05"), tier
    assert params_from({"evaluation": {"fid_weights": "torchvision_inception_v3_imagenet1k_v1"}}).evaluation.fid_weights \
        == "torchvision_inception_v3_imagenet1k_v1"
    with pytest.raises(ConfigError, match=r"evaluation\.fid_weights.*'madrylab_resnet50_linf_eps8\.0'.*allowed: "
                                          r"fid_inception_v3_2015_12_05, torchvision_inception_v3_imagenet1k_v1"):
        params_from({"evaluation": {"fid_weights": "madrylab_resnet50_linf_eps8.0"}})


def test_the_fid_weights_are_unpinned_until_pinned_with_the_file(tmp_path, monkeypatch):
    """`pin` with a file that loads into the FID graph records its hash; a file of another graph is refused. The
    committed state pins the prefix of the file name (6726825d, torch.hub's convention); the mechanics of pinning
    the full hash are checked here on a synthetic file, with that prefix lifted."""
    import dataclasses

    e = W.WEIGHTS.get(INCEPTION_WEIGHTS)
    assert e.sha256 == "6726825d" == W.read_lock()[e.name] and e.filename.endswith("-6726825d.pth")
    monkeypatch.setitem(W.WEIGHTS._items, e.name, dataclasses.replace(e, sha256=None))
    lock = tmp_path / "lock.yaml"
    lock.write_text(f"sha256:\n  {e.name}: null\n")
    good, bad = tmp_path / e.filename, tmp_path / "other.pth"
    torch.save(build_inception(seed=2).state_dict(), good)
    torch.save(build_inception(seed=2, arch="inception_v3").state_dict(), bad)
    with pytest.raises(W.WeightsError, match="fid_inception_v3"):
        W.pin(e.name, bad, lock=lock)
    h = W.pin(e.name, good, lock=lock)
    assert W.read_lock(lock)[e.name] == h == W.sha256_file(good)
