"""The claims of Double-Win (Chen et al., ICML 2022) read from the analysis stage's numbers: the loss landscapes of
Sec. 5 (Fig. 6, A9) and the masks of Sec. 6 (Fig. 7, A8)."""
from __future__ import annotations

import math

import numpy as np

from .evidence import AT, FAT, STD, Evidence
from .premises import comparable_backbones, independent_pretrainings
from .registry import claim
from .stats import Cell, Result, binom_tail, combine, decide, exact_decision

KINDS = (STD, FAT, AT)


# --------------------------------------------------------------------------- Sec. 5: loss landscapes

def sharpness(panel: dict, view: str, radius: float) -> float:
    """Mean loss rise above the converged point over the grid points within ``radius`` (parameter units) of it."""
    a, b = np.asarray(panel["alphas"]), np.asarray(panel["betas"])
    loss = np.asarray(panel[f"loss_{view}"])
    bb, aa = np.meshgrid(b, a, indexing="ij")
    inside = np.hypot(aa, bb) <= radius + 1e-12
    centre = loss[int(np.argmin(np.abs(b))), int(np.argmin(np.abs(a)))]
    return float((loss[inside] - centre).mean())


def flatness_decision(units: list[dict]) -> Result:
    """Exact binomial tests over (fraction, clean/PGD) panels against chance 1/3 (three exchangeable
    pretrainings): reproduced if θ_FAT's basin is the flattest in significantly many panels (p <= 0.05),
    contradicted if it is the sharpest in significantly many."""
    n = len(units)
    flat = sum(u["fat_flattest"] for u in units)
    sharp = sum(u["fat_sharpest"] for u in units)
    p_flat, p_sharp = binom_tail(flat, n, 1 / 3), binom_tail(sharp, n, 1 / 3)
    nums = {"panels": n, "fat_flattest": flat, "fat_sharpest": sharp, "p_flattest": round(p_flat, 4),
            "p_sharpest": round(p_sharp, 4), "detail": units}
    tally = f"θ_FAT flattest in {flat}, sharpest in {sharp} of {n} panels"
    return exact_decision(p_flat, p_sharp, tally, "binomial", nums)


@claim("dw-flatter-landscape", "DW", "Sec. 5; Sec. A2", "Fig. 6, Fig. A9",
       "the loss contour of θ_{FAT} … is smoother/flatter than θ_{AT} and θ_{STD} , i.e., the basin with converged "
       "minimum has larger area in terms of the same level of loss",
       "The analysis stage's loss contours (analysis/landscape) of IMP tickets at the trajectory level, adversarial "
       "transfer with 100 %, 10 % and 1 % data, clean and PGD-20 test loss: per panel (fraction, view), the mean loss "
       "rise within a common radius of the converged point (the smallest grid half-width of the three runs); θ_FAT "
       "flattest when its rise is the lowest of θ_FAT, θ_AT, θ_STD. Exact binomial test against chance 1/3 over the "
       "panels whose three runs learned (p ≤ 0.05).",
       items=("dw-fig6", "dw-figA9"), premises=(comparable_backbones((FAT, AT), (FAT, STD)),))
def _dw_flatter(ev: Evidence) -> Result:
    panels = (ev.context.get("analysis") or {}).get("landscape") or []
    if not panels:
        return Result("not run", "no loss landscapes (analysis/landscape) at this tier", {})
    by = {}
    for p in panels:
        if p.get("method") == "imp" and p.get("regime") == "adversarial":
            by.setdefault((p["task"], p["fraction"]), {})[p["kind"]] = p
    units, skipped = [], 0
    for (task, f), kinds in sorted(by.items()):
        if not all(k in kinds for k in KINDS):
            continue
        if any(kinds[k].get("learned") is False for k in KINDS):
            skipped += 1
            continue
        radius = min(min(np.abs(kinds[k]["alphas"]).max(), np.abs(kinds[k]["betas"]).max()) for k in KINDS)
        for view in ("clean", "adv"):
            s = {k: sharpness(kinds[k], view, radius) for k in KINDS}
            units.append({"task": task, "fraction": f, "view": view, **{k: round(v, 4) for k, v in s.items()},
                          "fat_flattest": s[FAT] < min(s[AT], s[STD]), "fat_sharpest": s[FAT] > max(s[AT], s[STD])})
    if not units:
        return Result("inconclusive", f"every panel involves runs that did not learn ({skipped})", {})
    r = flatness_decision(units)
    r.numbers["panels_not_learned"] = skipped
    return r


# --------------------------------------------------------------------------- Sec. 6: mask properties

IOU_BOUND = 0.20
IOU_FROM = 0.7379


def iou_decision(rows: list[dict]) -> Result:
    """Mask IoU per (level, pair): reproduced if every pair's IoU is below 20 % at every level >= 73.79 % and
    falls from each level to the next; contradicted if it is >= 20 % for every pair at those levels or rises for
    most pairs. Masks are fixed and IoU is counted over every prunable weight: no sampling noise."""
    pairs = sorted({(r["kind_a"], r["kind_b"]) for r in rows})
    at = [r for r in rows if r["level"] >= IOU_FROM - 1e-9]
    below = sum(r["iou"] < IOU_BOUND for r in at)
    falling, rising = 0, 0
    for pr in pairs:
        seq = [r["iou"] for r in sorted(rows, key=lambda r: r["level"]) if (r["kind_a"], r["kind_b"]) == pr]
        steps = list(zip(seq, seq[1:]))
        falling += bool(steps) and all(b < a for a, b in steps)
        rising += bool(steps) and all(b > a for a, b in steps)
    nums = {"cells_at_or_above_73.79": len(at), "below_20pct": below, "pairs": len(pairs), "pairs_falling": falling,
            "pairs_rising": rising, "detail": rows}
    tally = (f"IoU < 20 % in {below} of {len(at)} (level ≥ 73.79 %, pair) cells; falling with sparsity for {falling} "
             f"of {len(pairs)} pairs")
    if not at:
        return Result("inconclusive", "no level at or above 73.79 %", nums)
    if below == len(at) and falling == len(pairs):
        return Result("reproduced", tally, nums)
    if below == 0 or rising > len(pairs) / 2:
        return Result("contradicted", tally, nums)
    return Result("inconclusive", tally, nums)


@claim("dw-mask-iou", "DW", "Sec. 6; Sec. A2", "Fig. A8",
       "the relative similarity is less than 20.00% when the sparsity of subnetworks reaches 73.79% and the more "
       "sparsified, the larger differences arise.",
       "IoU |m_i ∩ m_j| / |m_i ∪ m_j| of the IMP masks (m^ST) of every pair of θ_STD, θ_FAT, θ_AT at each sweep level "
       "(analysis/mask_similarity.csv). Reproduced if every pair is below 20 % at every level ≥ 73.79 % and falls "
       "from level to level; contradicted if every pair is at or above 20 % there, or IoU rises with sparsity for "
       "most pairs; inconclusive otherwise. Masks are fixed and counted over every prunable weight: no noise model.",
       items=("dw-figA8",), premises=(independent_pretrainings(KINDS),))
def _dw_mask_iou(ev: Evidence) -> Result:
    rows = [r for r in (ev.context.get("analysis") or {}).get("mask_similarity") or []
            if r["kind_a"] in KINDS and r["kind_b"] in KINDS]
    if not rows:
        return Result("not run", "no mask similarities (analysis/mask_similarity.csv) at this tier", {})
    return iou_decision(rows)


def zero_kernel_cells(rows: list[dict]) -> list[Cell]:
    """θ_STD's zero-kernel fraction minus each robust mask's, per level: binomial standard error over the
    kernels (each kernel zero or not), a margin of one kernel."""
    by = {(r["level"], r["kind"]): r for r in rows}
    cells = []
    for (lv, kind), r in sorted(by.items()):
        if kind == STD:
            continue
        s = by.get((lv, STD))
        if s is None:
            continue
        n1, n2 = s["total_kernels"], r["total_kernels"]
        p1, p2 = s["zero_kernels"] / n1, r["zero_kernels"] / n2
        se, df = combine([(p1 * (1 - p1) / n1, math.inf), (p2 * (1 - p2) / n2, math.inf)])
        cells.append(Cell(f"θ_STD−{kind} s{lv:g}", p1 - p2, se, 1.0 / min(n1, n2), 1, p1, p2, df=df))
    return cells


@claim("dw-zero-kernels", "DW", "Sec. 6", "Fig. 7, Fig. A8",
       "the subnetworks from the standard pre-trained model have the largest number of zero kernels",
       "Fully pruned (zero) conv kernels of the IMP masks (analysis/zero_kernels.csv): θ_STD's fraction minus θ_FAT's "
       "and θ_AT's at each sweep level, binomial standard error over the kernels, margin one kernel; mode greater.",
       items=("dw-fig7", "dw-figA8"))
def _dw_zero_kernels(ev: Evidence) -> Result:
    rows = [r for r in (ev.context.get("analysis") or {}).get("zero_kernels") or [] if r["kind"] in KINDS]
    if not rows:
        return Result("not run", "no zero-kernel counts (analysis/zero_kernels.csv) at this tier", {})
    return decide(zero_kernel_cells(rows), "greater", "IMP masks")
