"""Bench sections `adv` (PGD-10 adversarial fine-tuning, ours vs the official code's way) and `mask`
(mask enforcement overhead: masked / dense standard step)."""
from __future__ import annotations

import statistics

from bench.common import MODELS, baseline_rate, log, median_ratio, ours_rate, ratio_range


def bench_adv(repeats: int, models: list[str]) -> dict:
    out = {}
    for key in models:
        ours, base = [], []
        for r in range(repeats):
            ours.append(ours_rate(key, 10))
            base.append(baseline_rate(key, 10))
            log(f"adv {key} repeat {r + 1}/{repeats}: ours {ours[-1]:.1f} img/s, baseline {base[-1]:.1f} img/s")
        out[key] = {"model": MODELS[key][0], "batch": MODELS[key][3], "ours_img_s": statistics.median(ours),
                    "baseline_img_s": statistics.median(base), "ratio": median_ratio(ours, base),
                    "ratio_range": ratio_range(ours, base), "ours_runs": ours, "baseline_runs": base}
    return out


#: (timed batches, minimum repeats) of the mask section per model
MASK_WINDOW = {"tiny": (48, 4), "r18": (8, 3)}


def bench_mask(models: list[str], repeats: int) -> dict:
    out = {}
    for key in models:
        masked, dense = [], []
        # standard steps are cheap: a longer window than the adversarial runs (a few seconds), and for
        # the tiny ResNet, whose whole run lasts ~4 s, more repeats against the machine's noise
        nb, reps = MASK_WINDOW[key]
        for _ in range(max(repeats, reps)):
            dense.append(ours_rate(key, 0, masked=False, batches=nb))
            masked.append(ours_rate(key, 0, masked=True, batches=nb))
        # time per step is 1 / rate: masked time / dense time = dense rate / masked rate
        out[key] = {"masked_img_s": statistics.median(masked), "dense_img_s": statistics.median(dense),
                    "dense_runs": dense, "masked_runs": masked,
                    "overhead": median_ratio(dense, masked) - 1.0,
                    "overhead_range": [r - 1.0 for r in ratio_range(dense, masked)]}
        log(f"mask {key}: dense {out[key]['dense_img_s']:.1f} img/s, masked {out[key]['masked_img_s']:.1f} img/s")
    return out
