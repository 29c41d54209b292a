"""Offline synthetic source/downstream tasks with a controlled domain gap.

The embedded default of the package cannot download ImageNet or CIFAR, so it
generates its own data, deterministically, with numpy.

Image model
-----------
Each class is a random *prototype*: the sum of ``K = 3`` Gabor-like
components on a background colour. Component k has an envelope centre and
width, an orientation, a spatial frequency (cycles per image), a phase, an
amplitude and an RGB colour (the direction in colour space it modulates).
A sample of the class renders that prototype with nuisances:
random translation of the whole pattern, per-component amplitude and phase
jitter, contrast and brightness jitter, and Gaussian pixel noise; it is then
clipped to [0, 1] and quantised to uint8. Parameters are in image units, so
the same task can be rendered at 16 or 32 px.

Domain gap
----------
Prototypes are drawn from a *family* of distributions: the source family
(low frequencies, compact blobs, warm palette, sine waveform, grey
background) and a far family (high frequencies, wide texture-like envelopes,
cool palette, square waveform, tinted background). A downstream task with
``gap`` in [0, 1] draws NEW classes (its own random stream) from the family
linearly interpolated between the two: ``gap = 0`` is a new set of classes
from the source distribution, ``gap = 1`` the unrelated far family. The
nuisances are the same for every family, so difficulty stays comparable.

Non-robust texture (``TextureParams``, off unless ``amplitude > 0``)
-------------------------------------------------------------------
A second class signal of different robustness: a faint periodic tile per class
(+-amplitude pixel units, below an attack's eps), whose code space is shared with
the source at gap 0 and unrelated at gap 1. See ``repro.config.params.TextureParams``.

``synth_ood`` renders images of families unrelated to every class (pixel
noise, checkerboards, concentric rings, smooth colour fields) for the OoD
detection metric.

``domain_gap_score`` is an FID-style Fréchet distance between feature
statistics of two tasks (the Robust Tickets paper relates transfer gains to
the FID between ImageNet and each downstream set), with cheap fixed features
by default and a model's penultimate features on request.

Determinism: the bytes depend only on ``(name, seed, params)``; every random
stream is a ``numpy.random.SeedSequence`` of them (never the global RNG, never
Python's salted ``hash``).
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, fields
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..config.params import TextureParams
from ..base.registry import Registry
from .arrays import ArrayTask

__all__ = [
    "Family", "SOURCE_FAMILY", "FAR_FAMILY", "family_at", "Nuisance", "make_task", "make_ood_task",
    "DATASETS", "load_dataset", "default_features", "model_feature_fn", "frechet_distance",
    "domain_gap_score", "DOWNSTREAM_GAPS", "OOD_KINDS",
]

NUM_COMPONENTS = 3


# ---------------------------------------------------------------------- families


@dataclass(frozen=True)
class Family:
    """Distribution of class prototypes (image units: the image spans [-0.5, 0.5])."""

    freq: tuple[float, float]          # spatial frequency range, cycles per image
    width: tuple[float, float]         # envelope sigma range, image widths
    palette: tuple[float, float, float]  # mean colour direction of the components
    palette_spread: float              # std of the colour around the palette mean
    square: float                      # waveform: 0 = sine, 1 = (soft) square wave
    background: tuple[float, float, float]
    amplitude: tuple[float, float] = (0.15, 0.28)


SOURCE_FAMILY = Family(freq=(0.8, 2.6), width=(0.10, 0.22), palette=(0.85, 0.55, 0.15),
                       palette_spread=0.40, square=0.0, background=(0.50, 0.50, 0.50))
# the far family differs in frequency band, palette, waveform and background, while
# its narrow frequency band and palette keep classes about as hard to tell apart
FAR_FAMILY = Family(freq=(4.0, 4.8), width=(0.15, 0.30), palette=(0.15, 0.45, 0.90),
                    palette_spread=0.15, square=1.0, background=(0.40, 0.48, 0.60))


def _lerp(a, b, t):
    if isinstance(a, tuple):
        return tuple(_lerp(x, y, t) for x, y in zip(a, b))
    return (1.0 - t) * a + t * b


def family_at(gap: float, source: Family | None = None, far: Family | None = None) -> Family:
    """The prototype family at domain gap ``gap`` (0 = source, 1 = far), linear in every field."""
    gap = _check_gap(gap)
    source = SOURCE_FAMILY if source is None else source
    far = FAR_FAMILY if far is None else far
    return Family(**{f.name: _lerp(getattr(source, f.name), getattr(far, f.name), gap) for f in fields(Family)})


@dataclass(frozen=True)
class Nuisance:
    """Within-class variation (shared by all families); it sets the task's difficulty."""

    shift: float = 0.14          # max translation, image widths (uniform in [-shift, shift]^2)
    amp_jitter: float = 0.45     # component amplitude x U(1 - a, 1 + a)
    phase_jitter: float = 0.75   # component phase + N(0, phase_jitter) radians
    contrast: tuple[float, float] = (0.6, 1.4)
    brightness: float = 0.04     # per-channel offset N(0, brightness)
    noise: float = 0.07          # pixel noise N(0, noise)


def _check_gap(gap) -> float:
    try:
        g = float(gap)
    except (TypeError, ValueError):
        raise ValueError(f"gap must be a number in [0, 1], got {gap!r}") from None
    if not math.isfinite(g) or not 0.0 <= g <= 1.0:
        raise ValueError(f"gap must be in [0, 1], got {gap!r}")
    return g


def seed_seq(name: str, seed: int, *key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed) % 2**32, zlib.crc32(name.encode("utf-8")), *key])


# ---------------------------------------------------------------------- rendering


def _prototypes(name: str, seed: int, num_classes: int, fam: Family) -> dict[str, np.ndarray]:
    """Per-class component parameters, each class from its own stream (stable in num_classes)."""
    keys = ("cx", "cy", "sigma", "theta", "freq", "phase", "amp")
    out = {k: np.empty((num_classes, NUM_COMPONENTS)) for k in keys}
    out["colour"] = np.empty((num_classes, NUM_COMPONENTS, 3))
    pal = np.asarray(fam.palette)
    for c in range(num_classes):
        r = np.random.default_rng(seed_seq(name, seed, 1, c))
        k = NUM_COMPONENTS
        out["cx"][c], out["cy"][c] = r.uniform(-0.22, 0.22, k), r.uniform(-0.22, 0.22, k)
        out["sigma"][c] = r.uniform(*fam.width, k)
        out["theta"][c] = r.uniform(0, np.pi, k)
        out["freq"][c] = r.uniform(*fam.freq, k)
        out["phase"][c] = r.uniform(0, 2 * np.pi, k)
        out["amp"][c] = r.uniform(*fam.amplitude, k)
        col = pal + fam.palette_spread * r.standard_normal((k, 3))
        out["colour"][c] = col / np.maximum(np.linalg.norm(col, axis=1, keepdims=True), 1e-6) * np.sqrt(3) * 0.6
    return out


def _waveform(t: np.ndarray, square: float) -> np.ndarray:
    s = np.sin(t)
    if square <= 0:
        return s
    return (1.0 - square) * s + square * (np.tanh(4.0 * s) / np.tanh(4.0))


def _texture_basis(which: str, seed: int, tx: TextureParams) -> np.ndarray:
    """``tx.basis`` random +-1 tiles [basis, tile, tile, 3] of one family ('source' or 'far'), shared by all tasks."""
    r = np.random.default_rng(seed_seq(f"texture_{which}", seed))
    return r.choice(np.array([-1.0, 1.0]), size=(tx.basis, tx.tile, tx.tile, 3))


def _textures(name: str, seed: int, num_classes: int, gap: float, size: int,
              tx: TextureParams | None) -> np.ndarray | None:
    """Per-class texture images [num_classes, size, size, 3] (amplitude included), or None when off.

    Class c's tile is the sign of ``(1 - gap) * (source basis . z_s) + gap * (far basis . z_f)``,
    z from the task's own stream: at gap 0 every tile lies in the source's code space."""
    if tx is None or tx.amplitude == 0:
        return None
    src, far = _texture_basis("source", seed, tx), _texture_basis("far", seed, tx)
    reps = -(-size // tx.tile)
    out = np.empty((num_classes, size, size, 3), np.float32)
    for c in range(num_classes):
        r = np.random.default_rng(seed_seq(name, seed, 4, c))
        zs, zf = r.standard_normal(tx.basis), r.standard_normal(tx.basis)
        mix = (1.0 - gap) * np.tensordot(zs, src, 1) + gap * np.tensordot(zf, far, 1)
        tile = np.where(mix >= 0, 1.0, -1.0)
        out[c] = np.tile(tile, (reps, reps, 1))[:size, :size] * tx.amplitude
    return out


def _render(labels: np.ndarray, proto: dict, fam: Family, nz: Nuisance, size: int,
            rng: np.random.Generator, chunk: int = 2048, texture: np.ndarray | None = None) -> np.ndarray:
    """Render one sample per label; float32 maths, uint8 output [N, size, size, 3].

    ``texture`` [num_classes, size, size, 3]: each sample's class texture is added after the
    contrast jitter (its amplitude is exact), before brightness and pixel noise."""
    n, k = labels.shape[0], NUM_COMPONENTS
    # per-sample nuisances, drawn up front (independent of the chunking)
    shift = rng.uniform(-nz.shift, nz.shift, (n, 2))
    ampj = rng.uniform(1 - nz.amp_jitter, 1 + nz.amp_jitter, (n, k))
    phj = rng.normal(0.0, nz.phase_jitter, (n, k))
    contrast = rng.uniform(*nz.contrast, n)
    bright = rng.normal(0.0, nz.brightness, (n, 3))
    noise_seed = rng.integers(0, 2**63 - 1)
    coords = ((np.arange(size) + 0.5) / size - 0.5).astype(np.float32)
    Y, X = coords[:, None], coords[None, :]
    bg = np.asarray(fam.background, np.float32)
    out = np.empty((n, size, size, 3), np.uint8)
    noise_rng = np.random.default_rng(noise_seed)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        lab = labels[s:e]
        img = np.zeros((e - s, size, size, 3), np.float32)
        for j in range(k):
            cx = (proto["cx"][lab, j] + shift[s:e, 0]).astype(np.float32)[:, None, None]
            cy = (proto["cy"][lab, j] + shift[s:e, 1]).astype(np.float32)[:, None, None]
            u, v = X[None] - cx, Y[None] - cy
            sig = proto["sigma"][lab, j].astype(np.float32)[:, None, None]
            env = np.exp(-(u * u + v * v) / (2 * sig * sig))
            th = proto["theta"][lab, j]
            f = (2 * np.pi * proto["freq"][lab, j]).astype(np.float32)
            a = (f * np.cos(th)).astype(np.float32)[:, None, None]
            b = (f * np.sin(th)).astype(np.float32)[:, None, None]
            ph = (proto["phase"][lab, j] + phj[s:e, j]).astype(np.float32)[:, None, None]
            w = _waveform(a * u + b * v + ph, fam.square)
            amp = (proto["amp"][lab, j] * ampj[s:e, j]).astype(np.float32)[:, None, None]
            img += (amp * env * w)[..., None] * proto["colour"][lab, j].astype(np.float32)[:, None, None, :]
        img *= contrast[s:e].astype(np.float32)[:, None, None, None]
        if texture is not None:
            img += texture[lab]
        img += bg + bright[s:e].astype(np.float32)[:, None, None, :]
        img += noise_rng.standard_normal(img.shape, dtype=np.float32) * np.float32(nz.noise)
        np.clip(img, 0.0, 1.0, out=img)
        out[s:e] = np.rint(img * 255.0).astype(np.uint8)
    return out


def _balanced_labels(n: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n, dtype=np.int64) % num_classes)


def _check_counts(num_classes, n_train, n_test, size) -> None:
    for nm, v, lo in (("num_classes", num_classes, 1), ("n_train", n_train, 1), ("n_test", n_test, 0),
                      ("size", size, 4)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{nm} must be an int >= {lo}, got {v!r}")
    if n_train < num_classes:
        raise ValueError(f"n_train ({n_train}) must be >= num_classes ({num_classes}) so every class is present")


def make_task(name: str, num_classes: int, n_train: int, n_test: int, size: int = 16, gap: float = 0.0,
              seed: int = 0, nuisance: Nuisance | None = None, texture: TextureParams | None = None) -> ArrayTask:
    """A synthetic task of ``num_classes`` new classes from ``family_at(gap)``.

    ``texture``: the non-robust class texture (``TextureParams``; None or amplitude 0: off).

    Balanced classes in random order (so "first N" is close to stratified).
    Identical bytes for identical ``(name, seed, params)``.
    """
    _check_counts(num_classes, n_train, n_test, size)
    fam = family_at(gap)
    nz = nuisance or Nuisance()
    proto = _prototypes(name, seed, num_classes, fam)
    r_train = np.random.default_rng(seed_seq(name, seed, 2))
    r_test = np.random.default_rng(seed_seq(name, seed, 3))
    y_train = _balanced_labels(n_train, num_classes, r_train)
    y_test = _balanced_labels(n_test, num_classes, r_test)
    tex = _textures(name, seed, num_classes, float(gap), size, texture)
    x_train = _render(y_train, proto, fam, nz, size, r_train, texture=tex)
    x_test = _render(y_test, proto, fam, nz, size, r_test, texture=tex)
    return ArrayTask(name, x_train, y_train, x_test, y_test, num_classes)


# ---------------------------------------------------------------------------- OoD

OOD_KINDS = ("pixel_noise", "checkerboard", "rings", "smooth_field")


def _render_ood(kinds: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    n = kinds.shape[0]
    img = np.empty((n, size, size, 3), np.float32)
    coords = ((np.arange(size) + 0.5) / size - 0.5).astype(np.float32)
    Y, X = np.meshgrid(coords, coords, indexing="ij")
    col_a = rng.uniform(0, 1, (n, 3)).astype(np.float32)
    col_b = rng.uniform(0, 1, (n, 3)).astype(np.float32)
    for kind in range(len(OOD_KINDS)):
        idx = np.flatnonzero(kinds == kind)
        m = idx.size
        if m == 0:
            continue
        if kind == 0:  # i.i.d. uniform pixels, half of them in 2x2 blocks
            base = rng.uniform(0, 1, (m, size, size, 3)).astype(np.float32)
            sel = rng.integers(0, 2, m) == 1
            small = base[sel][:, ::2, ::2]
            base[sel] = np.repeat(np.repeat(small, 2, 1), 2, 2)[:, :size, :size]
            img[idx] = base
        elif kind == 1:  # checkerboard, random cell size and offset, two colours
            cell = rng.uniform(1.5, 5.0, m).astype(np.float32)[:, None, None]
            off = rng.uniform(0, 10, (m, 2)).astype(np.float32)
            pix = np.arange(size, dtype=np.float32)
            cy = np.floor((pix[None, :, None] + off[:, 0, None, None]) / cell)
            cx = np.floor((pix[None, None, :] + off[:, 1, None, None]) / cell)
            chk = ((cy + cx) % 2)[..., None]
            img[idx] = chk * col_a[idx, None, None] + (1 - chk) * col_b[idx, None, None]
        elif kind == 2:  # concentric rings around a random centre
            c = rng.uniform(-0.4, 0.4, (m, 2)).astype(np.float32)
            fr = rng.uniform(3.0, 7.0, m).astype(np.float32)[:, None, None]
            r = np.sqrt((X[None] - c[:, 1, None, None]) ** 2 + (Y[None] - c[:, 0, None, None]) ** 2)
            t = (0.5 + 0.5 * np.cos(2 * np.pi * fr * r))[..., None]
            img[idx] = t * col_a[idx, None, None] + (1 - t) * col_b[idx, None, None]
        else:  # smooth saturated colour field: bilinear upsampling of a 3x3 random grid
            grid = torch.from_numpy(rng.uniform(0, 1, (m, 3, 3, 3)).astype(np.float32))
            up = F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=True)
            img[idx] = up.permute(0, 2, 3, 1).numpy()
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(0.03)
    np.clip(img, 0, 1, out=img)
    return np.rint(img * 255).astype(np.uint8)


def make_ood_task(name: str = "synth_ood", n_train: int = 1000, n_test: int = 1000, size: int = 16,
                  seed: int = 0) -> ArrayTask:
    """Images from families unrelated to every synthetic class; labels = family id (``OOD_KINDS``)."""
    nk = len(OOD_KINDS)
    _check_counts(nk, n_train, n_test, size)
    r_train = np.random.default_rng(seed_seq(name, seed, 2))
    r_test = np.random.default_rng(seed_seq(name, seed, 3))
    y_train = _balanced_labels(n_train, nk, r_train)
    y_test = _balanced_labels(n_test, nk, r_test)
    return ArrayTask(name, _render_ood(y_train, size, r_train), y_train,
                     _render_ood(y_test, size, r_test), y_test, nk)


# ------------------------------------------------------------------------ registry

DATASETS: Registry[Callable[..., ArrayTask]] = Registry("dataset")

#: default domain gap of the registered downstream tasks
DOWNSTREAM_GAPS = {"synth_near": 0.1, "synth_mid": 0.5, "synth_far": 0.9}


@DATASETS.register("synth_source")
def synth_source(num_classes: int = 64, n_train: int = 19200, n_test: int = 3200, size: int = 16,
                 seed: int = 0, texture: TextureParams | None = None) -> ArrayTask:
    """The source ("ImageNet") task: many classes from the source family (gap 0)."""
    return make_task("synth_source", num_classes, n_train, n_test, size, 0.0, seed, texture=texture)


def _downstream(name: str):
    def factory(num_classes: int = 10, n_train: int = 5000, n_test: int = 1000, size: int = 16,
                seed: int = 0, gap: float | None = None, texture: TextureParams | None = None) -> ArrayTask:
        g = DOWNSTREAM_GAPS[name] if gap is None else gap
        return make_task(name, num_classes, n_train, n_test, size, g, seed, texture=texture)

    factory.__name__ = name
    factory.__doc__ = (f"Downstream task {name!r}: new classes at domain gap "
                       f"{DOWNSTREAM_GAPS[name]} (override with gap=...).")
    return factory


for _name in DOWNSTREAM_GAPS:
    DATASETS.register(_name)(_downstream(_name))


@DATASETS.register("synth_ood")
def synth_ood(n_train: int = 1000, n_test: int = 1000, size: int = 16, seed: int = 0) -> ArrayTask:
    """Out-of-distribution images (noise, checkerboards, rings, smooth fields) for OoD AUROC."""
    return make_ood_task("synth_ood", n_train, n_test, size, seed)


def load_dataset(name: str, **params) -> ArrayTask:
    """Build a registered dataset: ``load_dataset('synth_mid', seed=1, size=32)``."""
    return DATASETS.get(name)(**params)
