"""The simulated worlds of each claim (``repro.claims.simulate``): which runs a rule reads and, per world, where
the effect is (``true``: the claim holds, ``null``: no effect, ``reverse``: the effect the other way), in units of
``simulate.DELTA``; and the analysis stage's numbers (mask IoU, zero kernels, loss landscapes) drawn for the claims
that read them."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .evidence import AT, FAT, STD
from .registry import CLAIMS
from .stats import MARGINS

KINDS = (STD, FAT, AT)
Shift = Callable[[dict, str], float]   # (group, metric) -> effect in units of DELTA (+ = better for the metric)


@dataclass
class Spec:
    """A claim's worlds: group filter (the runs it reads) and the shift of each world."""
    reads: Callable[[dict], bool]
    worlds: dict[str, Shift]
    levels: tuple[float, ...] | None = None
    metrics: tuple[str, ...] | None = None  # the metrics the rule reads (None: all)


# --------------------------------------------------------------------------- worlds of each claim

def _is(g, kind=None, method=None, regime=None, fraction=None, level=None):
    def ok(v, want):
        return want is None or (v in want if isinstance(want, (tuple, list, set)) else v == want)
    return ok(g["kind"], kind) and ok(g["method"], method) and ok(g["regime"], regime) and ok(
        g["fraction"], fraction) and (level is None or level(g["level"]))


def compared_spec(cid: str) -> Spec:
    """Worlds of a :func:`repro.claims.registry.compared` claim: side A better by DELTA (true), no difference
    (null), side A worse (reverse); for mode equal: no difference (true), side A 5 margins away (null)."""
    spec = CLAIMS.get(cid).compares
    sides = [(a, b) for a, b in spec["pairs"]]
    regimes = {r for r, _ in spec["on"]}
    metrics = {m for _, m in spec["on"]}
    # a claim with a raised margin (DW's "significant margin", 5 pp) gets an effect of 5 of its own margins
    k = max(1.0, max((spec.get("margin") or 0) / MARGINS[m][0] for m in metrics))

    def in_a(g, m):
        return any(_is(g, a[0], a[1], level=spec["levels"]) for a, _ in sides) and g["regime"] in regimes and \
            m in metrics and g["fraction"] in spec["fractions"]

    def reads(g):
        return any(_is(g, x[0], x[1]) for pr in sides for x in pr) and g["regime"] in regimes

    if spec["mode"] == "equal":
        return Spec(reads, {"true": lambda g, m: 0.0, "null": lambda g, m: 1.0 if in_a(g, m) else 0.0},
                    metrics=tuple(metrics))
    return Spec(reads, {"true": lambda g, m: k if in_a(g, m) else 0.0, "null": lambda g, m: 0.0,
                        "reverse": lambda g, m: -k if in_a(g, m) else 0.0}, metrics=tuple(metrics))


DW_REG = ("standard", "adversarial")


def _lvl_index(levels):
    return {lv: i for i, lv in enumerate(sorted(levels))}


def custom_specs(levels) -> dict[str, Spec]:
    idx = _lvl_index(levels)
    top = max(levels)
    low = min(levels)

    def imp_dw(g):
        return g["method"] in ("imp", "dense") and g["kind"] in KINDS and g["regime"] in DW_REG

    def decay(k_fast):  # tickets lose DELTA per level above the lowest, except the kinds in k_fast
        return lambda g, m: 0.0 if (g["method"] == "dense" or g["kind"] in k_fast) else -float(idx[g["level"]])

    specs = {
        "dw-exist": Spec(lambda g: imp_dw(g) and g["fraction"] == 1.0,
                         {"true": lambda g, m: 0.0,
                          "null": lambda g, m: -1.0 if g["method"] == "imp" else 0.0}),
        "dw-extreme-order": Spec(lambda g: imp_dw(g) and g["fraction"] == 1.0,
                                 {"true": decay((AT,)), "null": decay(()),
                                  "reverse": lambda g, m: decay((STD, FAT))(g, m) if g["kind"] != AT else
                                  (0.0 if g["method"] == "dense" else -float(idx[g["level"]]))}),
        "dw-fat-over-std-adversarial": Spec(
            lambda g: g["method"] in ("imp", "dense") and g["kind"] in (FAT, STD) and g["regime"] == "adversarial",
            {"true": lambda g, m: 1.0 if g["kind"] == FAT and m in ("sa", "ra") else 0.0, "null": lambda g, m: 0.0,
             "reverse": lambda g, m: -1.0 if g["kind"] == FAT and m in ("sa", "ra") else 0.0}),
        "dw-at-gain-stable-standard": Spec(
            lambda g: imp_dw(g) and g["regime"] == "standard" and g["fraction"] == 1.0,
            {"true": lambda g, m: 1.0 if g["kind"] == AT else 0.0,
             "null": lambda g, m: 1.0 if g["kind"] == AT and g["method"] == "imp" else 0.0}),
        "dw-at-gain-shrinks-adversarial": Spec(
            lambda g: imp_dw(g) and g["regime"] == "adversarial" and g["fraction"] == 1.0,
            {"true": lambda g, m: 1.0 if g["kind"] == AT and g["method"] == "imp" and g["level"] <= 0.956 else 0.0,
             "null": lambda g, m: 0.0},
            levels=(0.488, 0.8926, 0.9719)),
        "dw-fat-std-similar-standard": Spec(
            lambda g: g["method"] in ("imp", "dense") and g["kind"] in (FAT, STD) and g["regime"] == "standard",
            {"true": lambda g, m: 0.0, "null": lambda g, m: 1.0 if g["kind"] == FAT else 0.0}),
        "dw-data-amplified": Spec(
            lambda g: g["method"] == "imp" and g["kind"] in KINDS and g["regime"] == "adversarial",
            {"true": lambda g, m: 1.0 if g["kind"] != STD and g["fraction"] < 1 else 0.0, "null": lambda g, m: 0.0,
             "reverse": lambda g, m: 1.0 if g["kind"] != STD and g["fraction"] == 1 else 0.0}),
        "dw-tickets-amplify": Spec(
            lambda g: g["method"] in ("imp", "dense") and g["kind"] in (FAT, AT) and g["regime"] == "adversarial"
            and g["fraction"] < 1,
            {"true": lambda g, m: 1.0 if g["method"] == "imp" else 0.0, "null": lambda g, m: 0.0,
             "reverse": lambda g, m: -1.0 if g["method"] == "imp" else 0.0}),
        "dw-fat-middle-at-high": Spec(
            lambda g: g["method"] == "imp" and g["kind"] in (FAT, AT) and g["regime"] == "adversarial"
            and g["fraction"] < 1,
            {"true": lambda g, m: 1.0 if (g["kind"] == FAT and g["level"] != top) or
             (g["kind"] == AT and g["level"] == top) else 0.0,
             "null": lambda g, m: 0.0,
             "reverse": lambda g, m: 1.0 if (g["kind"] == AT and g["level"] != top) or
             (g["kind"] == FAT and g["level"] == top) else 0.0}),
        "dw-no-gradient-masking": Spec(
            lambda g: g["kind"] == AT and g["method"] in ("imp", "dense") and g["regime"] == "adversarial"
            and g["fraction"] == 1.0,
            {"true": lambda g, m: 1.0 if m == "transfer_attack_acc" else 0.0, "null": lambda g, m: 0.0,
             "reverse": lambda g, m: -1.0 if m == "transfer_attack_acc" else 0.0},
            metrics=("ra", "transfer_attack_acc")),
        "dw-transfer-attack-sparse-beats-dense": Spec(
            lambda g: g["kind"] == AT and g["method"] in ("imp", "dense") and g["regime"] == "adversarial"
            and g["fraction"] == 1.0,
            {"true": lambda g, m: 1.0 if m == "transfer_attack_acc" and g["method"] == "imp" else 0.0,
             "null": lambda g, m: 0.0,
             "reverse": lambda g, m: -1.0 if m == "transfer_attack_acc" and g["method"] == "imp" else 0.0},
            metrics=("transfer_attack_acc",)),
        "rt-linear-margin": Spec(
            lambda g: g["method"] == "omp" and g["kind"] in (AT, STD) and g["regime"] in ("standard", "linear"),
            {"true": lambda g, m: 1.0 if g["kind"] == AT and g["regime"] == "linear" else 0.0,
             "null": lambda g, m: 0.0,
             "reverse": lambda g, m: 1.0 if g["kind"] == AT and g["regime"] == "standard" else 0.0}),
        "rt-advantage-shrinks": Spec(
            lambda g: g["method"] == "omp" and g["kind"] in (AT, STD) and g["regime"] in ("standard", "linear"),
            {"true": lambda g, m: 1.0 if g["kind"] == AT and g["level"] == low else 0.0, "null": lambda g, m: 0.0,
             "reverse": lambda g, m: 1.0 if g["kind"] == AT and g["level"] == top else 0.0}),
        "rt-structured-coarser": Spec(
            lambda g: g["method"].startswith("omp") and g["kind"] in (AT, STD) and g["regime"] in ("standard", "linear"),
            {"true": lambda g, m: (3 - ("omp", "omp_row", "omp_kernel", "omp_channel").index(g["method"]))
             if g["kind"] == AT else 0.0,
             "null": lambda g, m: 0.0,
             "reverse": lambda g, m: ("omp", "omp_row", "omp_kernel", "omp_channel").index(g["method"])
             if g["kind"] == AT else 0.0}),
        "rt-imp-best-scheme": Spec(
            lambda g: g["kind"] == AT and g["method"] in ("a_imp", "a_imp_ds", "omp", "lmp")
            and g["regime"] in ("standard", "mask"),
            {"true": lambda g, m: 1.0 if g["method"].startswith("a_imp") else 0.0, "null": lambda g, m: 0.0,
             "reverse": lambda g, m: -1.0 if g["method"].startswith("a_imp") else 0.0}),
    }
    sa_only = ("dw-at-gain-stable-standard", "dw-fat-std-similar-standard", "rt-linear-margin", "rt-advantage-shrinks",
               "rt-structured-coarser", "rt-imp-best-scheme")
    for cid, sp in specs.items():
        if sp.metrics is None:
            sp.metrics = ("sa",) if cid in sa_only else ("sa", "ra")
    return specs


# --------------------------------------------------------------------------- claims on the analysis stage's numbers

def vtab_world(world: str, design, rng, n_tasks: int = 12):
    """RT Table II / Fig. 9: linear-evaluation OMP tickets on 12 tasks, domain gaps 1..12; true: the robust
    advantage rises with the gap (0 on the lower half, DELTA to 2 DELTA on the upper half) for rt-domain-gap, and
    RT's 7 / 3 / 2 (DELTA, 0, -DELTA) for rt-vtab-count; null: no difference anywhere."""
    tasks = [f"t{i:02d}" for i in range(n_tasks)]
    gaps = {t: float(i + 1) for i, t in enumerate(tasks)}
    seeds = design.seeds or 1
    runs = [{"kind": k, "method": "omp", "task": t, "regime": "linear", "fraction": 1.0, "level": lv, "seed": s}
            for k in (AT, STD) for t in tasks for lv in (0.5, 0.9) for s in range(seeds)]
    return runs, gaps


def vtab_shift(cid: str, world: str, tasks_rank: dict) -> Shift:
    n = len(tasks_rank)
    if world == "null":
        return lambda g, m: 0.0
    if cid == "rt-domain-gap":
        def f(g, m):
            r = tasks_rank[g["task"]]
            up = 1.0 + r / n if r >= n / 2 else 0.0
            return (up if world == "true" else -up) if g["kind"] == AT else 0.0
        return f
    pattern = [1.0] * 7 + [0.0] * 3 + [-1.0] * 2
    return lambda g, m: ((pattern[tasks_rank[g["task"]] % 12]) * (1 if world == "true" else -1)
                         if g["kind"] == AT else 0.0)


def mask_iou_context(world: str, design, rng, levels):
    """Mask IoU of three pairs at the levels: true: 0.2 - DELTA at 73.79 % falling by 2 pp a level; null: 0.2 and
    flat; reverse: 0.2 + DELTA and rising. Noise: binomial over a union of 20,000 weights."""
    rows = []
    lv_idx = _lvl_index(levels)
    for a, b in ((FAT, AT), (FAT, STD), (AT, STD)):
        for lv in sorted(levels):
            step = lv_idx[lv] - lv_idx[min((x for x in levels if x >= 0.7379), default=max(levels))]
            base = {"true": 0.15 - 0.02 * step, "null": 0.20, "reverse": 0.25 + 0.02 * step}[world]
            iou = rng.binomial(20000, min(max(base, 0.001), 0.999)) / 20000
            rows.append({"level": lv, "kind_a": a, "kind_b": b, "iou": iou})
    return {"mask_similarity": rows}


def zero_kernel_context(world: str, design, rng, levels):
    """Zero kernels of 2,712 kernels per mask (the default network): the fraction q(level) = level^3 for every
    kind, θ_STD's q + DELTA (true), - DELTA (reverse) or the same (null); counts binomial."""
    rows = []
    for lv in sorted(levels):
        for k in KINDS:
            q = lv ** 3 + (0.05 if (k == STD and world == "true") else -0.05 if (k == STD and world == "reverse") else 0)
            rows.append({"level": lv, "kind": k, "zero_kernels": int(rng.binomial(2712, min(max(q, 0.0), 1.0))),
                         "total_kernels": 2712, "sparsity": lv})
    return {"zero_kernels": rows}


def landscape_context(world: str, design, rng, levels):
    """Loss bowls loss = c + k (a^2 + b^2) on 9 x 9 grids, per (fraction, kind): k = 1 with seed noise (log-sd
    0.3); true: θ_FAT's k halved; reverse: doubled; null: the same."""
    panels = []
    axis = np.linspace(-1, 1, 9)
    for f in (1.0, 0.1, 0.01):
        for k in KINDS:
            factor = {"true": 0.5, "reverse": 2.0, "null": 1.0}[world] if k == FAT else 1.0
            curv = factor * math.exp(rng.normal(0, 0.3))
            bb, aa = np.meshgrid(axis, axis, indexing="ij")
            loss = 1.0 + curv * (aa ** 2 + bb ** 2)
            adv = 2.0 + 1.5 * curv * (aa ** 2 + bb ** 2)
            panels.append({"kind": k, "method": "imp", "task": "t", "regime": "adversarial", "fraction": f,
                           "level": 0.7379, "learned": True, "alphas": axis.tolist(), "betas": axis.tolist(),
                           "loss_clean": loss.tolist(), "loss_adv": adv.tolist()})
    return {"landscape": panels}
