"""FID (Robust Tickets Table II): the Fréchet distance, Inception-v3 pool-3 features, the published weights."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from repro import weights as W
from repro.data import frechet_distance
from repro.fid import INCEPTION_WEIGHTS, PoolFeatures, build_inception, fid, inception_feature_fn, load_inception
from repro.registries import params_from


def _exact_samples(mu: np.ndarray, cov: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n samples whose sample mean is exactly ``mu`` and sample covariance (ddof 1) exactly ``cov``."""
    z = np.random.default_rng(seed).standard_normal((n, len(mu)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.atleast_2d(np.cov(z, rowvar=False)))).T  # sample cov = I
    return z @ np.linalg.cholesky(cov).T + mu


def test_frechet_distance_matches_the_closed_form_of_two_gaussians():
    # 1-d: (m1 - m2)^2 + (s1 - s2)^2
    a, b = _exact_samples(np.array([1.0]), np.array([[4.0]]), 50, 0), _exact_samples(np.array([-2.0]), np.array([[0.25]]), 70, 1)
    assert frechet_distance(a, b) == pytest.approx(9 + (2 - 0.5) ** 2, rel=1e-9)
    # 2-d, non-commuting covariances: Tr sqrt(S1 S2) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)) for 2x2
    s1, s2 = np.array([[2.0, 0.9], [0.9, 1.0]]), np.array([[0.5, -0.3], [-0.3, 3.0]])
    m1, m2 = np.array([0.0, 1.0]), np.array([2.0, -1.0])
    tr_sqrt = np.sqrt(np.trace(s1 @ s2) + 2 * np.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    expected = ((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    got = frechet_distance(_exact_samples(m1, s1, 40, 2), _exact_samples(m2, s2, 60, 3))
    assert got == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(_exact_samples(m1, s1, 40, 4), _exact_samples(m1, s1, 30, 5)) == pytest.approx(0, abs=1e-9)


@pytest.fixture(scope="module")
def inception():
    return build_inception(seed=0)  # randomly initialised: the published weights are not available offline


def test_pool3_features_are_2048_d_from_any_input_size(inception):
    x = np.random.default_rng(0).integers(0, 256, (3, 20, 20, 3), dtype=np.uint8)
    f = inception_feature_fn(inception, size=75)(x)
    assert f.shape == (3, 2048) and f.dtype == np.float64 and np.isfinite(f).all()
    with pytest.raises(ValueError, match="at least 75 px"):
        PoolFeatures(inception, size=64)


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_a_known_shift(inception):
    rng = np.random.default_rng(1)
    base = rng.integers(40, 180, (24, 16, 16, 3)).astype(np.int64)
    shifted = {d: np.clip(base + d, 0, 255).astype(np.uint8) for d in (0, 20, 60)}
    scores = {d: fid(shifted[0], x, inception, n_source=None, size=75) for d, x in shifted.items()}
    assert scores[0] == pytest.approx(0, abs=1e-6 * scores[60])
    assert 0 < scores[20] < scores[60]


def test_torchvisions_inception_weights_are_its_file_pinned_by_its_prefix():
    from torchvision.models import Inception_V3_Weights

    e = W.WEIGHTS.get("torchvision_inception_v3_imagenet1k_v1")
    assert e.url == Inception_V3_Weights.IMAGENET1K_V1.url and e.filename == e.url.rsplit("/", 1)[1]
    assert e.sha256 == "0cc3c7bd" and e.filename.endswith(f"-{e.sha256}.pth") and W.expected_sha256(e.name) == e.sha256
    from torchvision.models import inception_v3

    ref = {k: tuple(v.shape) for k, v in inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict().items()}
    assert W.reference_shapes("inception_v3") == ref


def test_load_inception_fetches_checks_and_loads_the_file(tmp_path, monkeypatch, inception):
    cache = tmp_path / "weights"
    cache.mkdir()
    e = W.WEIGHTS.get(INCEPTION_WEIGHTS)
    # pinned by the sha256 prefix its file name carries (torch.hub's convention), as torchvision's files are
    assert e.name == "fid_inception_v3_2015_12_05" and W.expected_sha256(e.name) == "6726825d"
    assert e.filename.endswith("-6726825d.pth")
    torch.save(inception.state_dict(), cache / e.filename)
    monkeypatch.setenv(W.WEIGHTS_ENV, str(cache))
    with pytest.raises(W.WeightsError, match="expected 6726825d"):   # a file of that name, not the publisher's bytes
        load_inception(tmp_path, dest=tmp_path / "a.pt")
    assert not (tmp_path / "a.pt").exists()
    tv = W.WEIGHTS.get("torchvision_inception_v3_imagenet1k_v1")
    torch.save(build_inception(seed=1, arch="inception_v3").state_dict(), cache / tv.filename)
    with pytest.raises(W.WeightsError, match="expected 0cc3c7bd"):  # not torchvision's file: refused
        load_inception(tmp_path, dest=tmp_path / "a.pt", name=tv.name)
    assert not (tmp_path / "a.pt").exists()
    full = W.sha256_file(cache / e.filename)  # pin this file's own hash (in code and in a test lock)
    monkeypatch.setitem(W.WEIGHTS._items, e.name, dataclasses.replace(e, sha256=full))
    (tmp_path / "lock.yaml").write_text(f'sha256:\n  {e.name}: "{full}"\n')
    monkeypatch.setattr(W.lock, "LOCK_FILE", tmp_path / "lock.yaml")
    model = load_inception(tmp_path, dest=tmp_path / "b.pt")
    x = np.random.default_rng(2).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    assert np.array_equal(inception_feature_fn(model, size=75)(x), inception_feature_fn(inception, size=75)(x))


def test_fewer_samples_than_dimensions_give_the_covariance_formula_exactly():
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((7, 12)) * 2 + 1, rng.standard_normal((9, 12))
    # n < d: frechet_distance takes the sample (Gram) path; here the d x d covariance formula
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    mid = np.linalg.eigvalsh(r1 @ s2 @ r1)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(mid, 0, None)).sum()
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)


def test_domain_gap_measure_is_a_validated_param_and_fid_in_the_paper_tier():
    from pathlib import Path

    import yaml

    from repro.config import ConfigError

    assert params_from({}).evaluation.domain_gap == "stats"
    assert params_from({"evaluation": {"domain_gap": "fid"}}).evaluation.domain_gap == "fid"
    with pytest.raises(ConfigError, match=r"evaluation\.domain_gap"):
        params_from({"evaluation": {"domain_gap": "inception"}})
    root = Path(__file__).resolve().parents[1]
    assert yaml.safe_load((root / "tiers" / "paper.yaml").read_text())["evaluation"]["domain_gap"] == "fid"
    assert yaml.safe_load((root / "params.yaml").read_text())["evaluation"]["domain_gap"] == "stats"
