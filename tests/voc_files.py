"""A minimal PASCAL VOC 2012 segmentation folder in the published layout (tests only; issue 26 point 5).

``write_voc(root, {"train": n, "val": m})`` writes ``root/VOCdevkit/VOC2012/`` as the VOC devkit ships it:
``JPEGImages/<id>.jpg`` (RGB JPEG), ``SegmentationClass/<id>.png`` (8-bit palette PNG whose indices are the class
ids 0..20, 255 = the void band VOC draws around every object, carrying VOC's own colour map), and
``ImageSets/Segmentation/{train,val}.txt`` (one ``YYYY_NNNNNN`` id a line). Each image is a background with one or
two filled objects (ellipses or boxes) of random VOC classes, each object's colour tied to its class so a model can
learn something; sizes vary per image (VOC's are up to 500 px on the long side, here 60-120 px) and are
landscape or portrait. Returns ``{id: (image array, mask array)}`` as written (the JPEG as decoded).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

VOID = 255


def voc_colormap() -> list[int]:
    """VOC's 256-entry palette: the bits of the index spread over R, G, B from the high bit down."""
    out = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out += [r, g, b]
    return out


def _one(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = (int(v) for v in rng.integers(60, 121, 2))
    yy, xx = np.mgrid[0:h, 0:w]
    img = (rng.normal(110, 25, (h, w, 3))).clip(0, 255)
    mask = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 3))):
        cls = int(rng.integers(1, 21))
        cy, cx = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w
        ry, rx = rng.uniform(0.12, 0.3) * h, rng.uniform(0.12, 0.3) * w
        if rng.random() < 0.5:
            inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            ring = (((yy - cy) / (ry + 2)) ** 2 + ((xx - cx) / (rx + 2)) ** 2 <= 1) & ~inside
        else:
            inside = (abs(yy - cy) <= ry) & (abs(xx - cx) <= rx)
            ring = (abs(yy - cy) <= ry + 2) & (abs(xx - cx) <= rx + 2) & ~inside
        colour = np.array([(cls * 47) % 256, (cls * 101) % 256, (cls * 173) % 256], float)
        img[inside] = colour + rng.normal(0, 12, (int(inside.sum()), 3))
        mask[ring & (mask == 0)] = VOID
        mask[inside] = cls
    return img.clip(0, 255).astype(np.uint8), mask


def write_voc(root: str | Path, counts: dict[str, int], seed: int = 0, first_year: int = 2007) -> dict:
    base = Path(root) / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / d).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    palette = voc_colormap()
    out, k = {}, 0
    for split, n in counts.items():
        ids = []
        for _ in range(n):
            k += 1
            name = f"{first_year + k % 6}_{k:06d}"
            img, mask = _one(rng)
            Image.fromarray(img).save(base / "JPEGImages" / f"{name}.jpg", quality=90)
            pm = Image.fromarray(mask, "P")
            pm.putpalette(palette)
            pm.save(base / "SegmentationClass" / f"{name}.png")
            with Image.open(base / "JPEGImages" / f"{name}.jpg") as im:
                out[name] = (np.asarray(im.convert("RGB")), mask)
            ids.append(name)
        (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return out
