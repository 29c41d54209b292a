"""The domain gap between two tasks (RT Table II's ordering without Inception weights): a Fréchet distance
between Gaussian fits of fixed image features (``default_features``) or of a model's (``model_feature_fn``)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..base.errors import DataError
from .arrays import ArrayTask
from .files import ImageFiles
from .synthetic import seed_seq

_PROJ_DIM, _POOL = 32, 8


def _proj_matrix() -> np.ndarray:
    r = np.random.default_rng(20230101)  # fixed: the feature map never changes
    return r.standard_normal((_POOL * _POOL * 3, _PROJ_DIM)) / np.sqrt(_POOL * _POOL * 3)


def default_features(x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Cheap fixed image features ``[N, 58]`` for uint8 images ``[N,H,W,3]``.

    Colour moments (per-channel mean, std, skewness: 9), a fixed random
    projection of the 8x8 area-downsampled image (32), a magnitude-weighted
    gradient-orientation histogram (8 bins) plus mean gradient magnitude (1),
    and the fraction of spectral power in 4 radial frequency bands plus the log
    total power (5), plus the 3 channel correlations.
    """
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise DataError(f"default_features needs uint8 images [N,H,W,3], got {x.dtype} {list(x.shape)}")
    proj = _proj_matrix().astype(np.float32)
    out = []
    for s in range(0, x.shape[0], chunk):
        f = x[s:s + chunk].astype(np.float32) * np.float32(1 / 255)
        n, h, w, _ = f.shape
        m = f.mean((1, 2))
        d = f - m[:, None, None]
        d2 = d * d
        sd = np.sqrt(d2.mean((1, 2)))
        skew = (d2 * d).mean((1, 2)) / (sd**3 + 1e-6)
        pairs = ((0, 1), (0, 2), (1, 2))
        corr = np.stack([(d[..., i] * d[..., j]).mean((1, 2)) / (sd[:, i] * sd[:, j] + 1e-6) for i, j in pairs], 1)
        t = torch.from_numpy(np.ascontiguousarray(f.transpose(0, 3, 1, 2)))
        small = F.adaptive_avg_pool2d(t, _POOL).reshape(n, -1).numpy()
        rp = (small - 0.5) @ proj
        g = f.mean(-1)
        gx = (g[:, :-1, 1:] - g[:, :-1, :-1]).reshape(n, -1)
        gy = (g[:, 1:, :-1] - g[:, :-1, :-1]).reshape(n, -1)
        mag = np.sqrt(gx * gx + gy * gy)
        bins = np.minimum((np.mod(np.arctan2(gy, gx), np.pi) * (8 / np.pi)).astype(np.int64), 7)
        rows = np.arange(n)[:, None] * 8
        hist = np.bincount((rows + bins).ravel(), weights=mag.ravel(), minlength=n * 8).reshape(n, 8)
        hist /= hist.sum(1, keepdims=True) + 1e-9
        gmean = mag.mean(1)[:, None]
        spec = np.abs(np.fft.fft2(g - g.mean((1, 2), keepdims=True))) ** 2
        rad = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.fftfreq(w)[None, :] ** 2) / 0.5  # 0 .. ~1.41
        band = np.minimum((rad * 4).astype(np.int64), 3).ravel()
        bands = np.stack([spec.reshape(n, -1)[:, band == b].sum(1) for b in range(4)], 1)
        tot = bands.sum(1, keepdims=True) + 1e-9
        logp = np.log(tot / (h * w) + 1e-9)
        out.append(np.concatenate([m, sd, skew, corr, rp, hist, gmean, bands / tot, logp], 1).astype(np.float64))
    return np.concatenate(out, 0)


def model_feature_fn(model: torch.nn.Module, bs: int = 256, size: int | None = None,
                     device=None) -> Callable[[np.ndarray], np.ndarray]:
    """Penultimate features of ``model`` (its ``features`` method) as a ``feature_fn``.

    Images are scaled to [0, 1] (the model normalizes inside) and, when ``size``
    is given, bilinearly resized to it.
    """
    feat = getattr(model, "features", None)
    if not callable(feat):
        raise TypeError(f"{type(model).__name__} has no features() method")
    dev = torch.device(device) if device is not None else next(model.parameters()).device

    def fn(x: np.ndarray) -> np.ndarray:
        was_training = model.training
        model.eval()
        outs = []
        try:
            with torch.no_grad():
                for s in range(0, x.shape[0], bs):
                    t = torch.from_numpy(x[s:s + bs]).permute(0, 3, 1, 2).float().div_(255).to(dev)
                    if size is not None and t.shape[-1] != size:
                        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
                    outs.append(feat(t).flatten(1).double().cpu().numpy())
        finally:
            model.train(was_training)
        return np.concatenate(outs, 0)

    return fn


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)`` between two feature sets.

    ``S`` are the sample covariances (ddof 1). With fewer samples than feature dimensions
    (e.g. a small task's 2048-d Inception features) the same value comes exactly from the
    centred samples ``A``: ``Tr S = |A|_F^2 / (n - 1)`` and the eigenvalues of ``S1 S2`` are those
    of ``(A1 A2^T)(A2 A1^T) / ((n1 - 1)(n2 - 1))``, so ``Tr (S1^1/2 S2 S1^1/2)^1/2`` is the nuclear
    norm of ``A1 A2^T / sqrt((n1 - 1)(n2 - 1))`` (an n1 x n2 SVD instead of d x d eigendecompositions).
    """
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    mu1, mu2 = f1.mean(0), f2.mean(0)
    if f1.ndim == 2 and min(f1.shape[0], f2.shape[0]) < f1.shape[1]:
        a1, a2 = f1 - mu1, f2 - mu2
        d1, d2 = f1.shape[0] - 1, f2.shape[0] - 1
        tr_sqrt = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum() / np.sqrt(d1 * d2)
        total = ((mu1 - mu2) ** 2).sum() + (a1 * a1).sum() / d1 + (a2 * a2).sum() / d2 - 2 * tr_sqrt
        return float(max(total, 0.0))
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    s1, s2 = np.atleast_2d(s1), np.atleast_2d(s2)
    r1 = _sqrt_psd(s1)
    mid = np.linalg.eigvalsh((r1 @ s2 @ r1 + (r1 @ s2 @ r1).T) / 2)
    tr_sqrt = np.sqrt(np.clip(mid, 0, None)).sum()
    return float(max(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt, 0.0))


def _parts(t) -> list:
    """A task's images (train then test) as a list of arrays or ``ImageFiles``; nothing is decoded."""
    if isinstance(t, ArrayTask):
        return [t.x_train, t.x_test] if t.x_test.shape[0] else [t.x_train]
    return [t if isinstance(t, ImageFiles) else np.asarray(t)]


def _draw(parts: list, n: int | None, r: np.random.Generator) -> np.ndarray:
    """``n`` images drawn without replacement (sorted order) from the concatenated parts, or all of
    them when ``n`` is None or not smaller; only the drawn images are decoded (streamed tasks)."""
    sizes = [p.shape[0] for p in parts]
    total = sum(sizes)
    idx = np.sort(r.choice(total, n, replace=False)) if n is not None and total > n else np.arange(total)
    out, start = [], 0
    for part, size in zip(parts, sizes):
        mine = idx[(idx >= start) & (idx < start + size)] - start
        if mine.size:
            out.append(np.asarray(part[mine]))
        start += size
    if not out:
        return np.asarray(parts[0][:0])
    return np.concatenate(out, 0) if len(out) > 1 else out[0]


def domain_gap_score(source: ArrayTask | np.ndarray, target: ArrayTask | np.ndarray,
                     feature_fn: Callable[[np.ndarray], np.ndarray] | None = None,
                     n_source: int = 8000, n_target: int | None = None, seed: int = 0) -> float:
    """FID-style domain gap between ``source`` and ``target`` (lower = closer).

    As the Robust Tickets paper: a fixed sample of ``n_source`` source images
    (8000) against all target images (train + test, or ``n_target`` of them).
    Default features (``default_features``) are standardised by the source
    sample's per-dimension std so no block dominates; a ``feature_fn`` (e.g.
    ``model_feature_fn(model)``) is used as is, like Inception features in FID.
    """
    r = np.random.default_rng(seed_seq("domain_gap", seed))
    xs = _draw(_parts(source), n_source, r)
    xt = _draw(_parts(target), n_target, r)
    if min(xs.shape[0], xt.shape[0]) < 2:
        raise ValueError("domain_gap_score needs at least 2 images on each side")
    if feature_fn is None:
        fs, ft = default_features(xs), default_features(xt)
        scale = fs.std(0) + 1e-6
        fs, ft = fs / scale, ft / scale
    else:
        fs = np.asarray(feature_fn(xs), np.float64).reshape(xs.shape[0], -1)
        ft = np.asarray(feature_fn(xt), np.float64).reshape(xt.shape[0], -1)
    return frechet_distance(fs, ft)
