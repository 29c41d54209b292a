"""Each rule's power and false-positive rate, on simulated runs whose truth is known.

A *world* is the run grid of a design with every metric drawn from a stated noise model, shifted where the
world says the claim's effect is:

* the design: the embedded default's own grid (``params.yaml``: its pretrainings, tickets, regimes, fractions,
  tasks, levels and seeds, 300 test and 100 attacked images; with the noise below, a run's SA varies by about
  2 pp from seed to seed, as the default's do: median 1.9 pp), or ``paper``: the same grid with 3 seeds,
  10,000 test and attacked images (the papers' CIFAR evaluation) and a third of the seed noise (0.3 pp, a
  CIFAR fine-tuning's); claims that need more tasks than the default has (RT Table II, Fig. 9) get RT's 12;
* accuracies (SA 0.6, RA and transfer-attack accuracy 0.3 at no effect): each run's accuracy is its group's
  value plus seed noise (sd 1 pp), and each test image is right or wrong through a latent per image shared by
  every run on the task (correlation 0.6: runs agree on easy and hard images), so paired comparisons have the
  correlation real runs have; NLL (1.0), ECE (0.05), OoD AUROC (0.7), mIoU (0.5): group value plus seed noise
  (0.03, 0.005, 0.01, 0.01) plus a sampling error (0.05, 0.01, 0.02, 0.02 at 300 test images, shrinking as
  1/sqrt(N)) shared by the group's seeds (they score the same images), which each run records as its bootstrap
  ``se``;
* the effect: ``DELTA`` = 5 margins of the metric (5 pp for accuracies) in the direction the claim says; for
  "no difference" claims (mode ``equal``) the claim is true at no difference and false at 5 margins.

Worlds: ``true`` (the claim holds with that effect), ``null`` (no effect, or for "no difference" claims the
5-margin difference), ``reverse`` (the effect the other way, where that is the opposite claim). A rule's
*power* is P(reproduced | true), its *false-positive rate* P(reproduced | null), and its false contradictions
P(contradicted | true). Premises are not simulated (each is a fixed rule with its own tests): the worlds
satisfy them. ``python -m repro.claims.simulate`` writes the table of docs/CLAIMS.md.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass

from statistics import NormalDist

import numpy as np

from ..base.io import pack_bits
from .evidence import AT, FAT, RS, STD, Evidence
from .registry import CLAIMS
from .stats import MARGINS
from .worlds import (Shift, compared_spec, custom_specs, landscape_context, mask_iou_context, vtab_shift, vtab_world,
                     zero_kernel_context)

BASE = {"sa": 0.6, "ra": 0.3, "transfer_attack_acc": 0.3, "nll": 1.0, "ece": 0.05, "ood_auroc": 0.7, "miou": 0.5}
SEED_SD = {"sa": 0.01, "ra": 0.01, "transfer_attack_acc": 0.01, "nll": 0.03, "ece": 0.005, "ood_auroc": 0.01,
           "miou": 0.01}
BOOT_SE = {"nll": 0.05, "ece": 0.01, "ood_auroc": 0.02, "miou": 0.02}
ACCURACIES = ("sa", "ra", "transfer_attack_acc")
RHO = 0.6
#: the effect of a "true" world: 5 margins of the metric, signed so that + is "better"
DELTA = {m: 5 * MARGINS[m][0] for m in BASE}
KINDS = (STD, FAT, AT)

_PPF = NormalDist().inv_cdf


@dataclass(frozen=True)
class Design:
    name: str
    seeds: int | None = None        # None: the grid's own
    n_test: int = 300
    n_robust: int = 100
    levels: tuple[float, ...] | None = None  # None: the grid's sweep
    seed_scale: float = 1.0         # times SEED_SD


DESIGNS = {"default": Design("default"),
           "paper": Design("paper", seeds=3, n_test=10000, n_robust=10000, seed_scale=0.3)}


# --------------------------------------------------------------------------- the grid and the noise

def grid(design: Design, levels=None) -> list[dict]:
    """The embedded default's transfer runs (params.yaml) and segment runs, as groups x seeds."""
    from ..config import load_params
    from ..plan import selection_keys
    from ..plan.grid import EpsChoice, runs_for_level, seg_runs

    p = load_params("params.yaml")
    lvs = tuple(levels or design.levels or p.sweep.sparsities)
    # the simulated world has one model per kind: RT's runs keep the kind's own eps (so they are DW's runs), and a
    # run that two experiments share (other source or recipe, same comparison) is one run, never an extra seed
    own = EpsChoice(tuple((k, "") for k in selection_keys(p)))
    out, seen = [], set()
    for lv in (0.0,) + lvs:
        for r in runs_for_level(p, lv, own):
            row = {"kind": r.kind, "method": r.method, "task": r.task, "regime": r.regime,
                   "fraction": r.fraction, "level": lv, "seed": r.seed}
            if tuple(row.values()) not in seen:
                seen.add(tuple(row.values()))
                out.append(row)
    for kind, method, lv in seg_runs(p):
        out.append({"kind": kind, "method": method, "task": p.segment.task, "regime": "segmentation",
                    "fraction": 1.0, "level": lv, "seed": 0})
    if design.seeds:
        groups = {tuple((k, v) for k, v in r.items() if k != "seed") for r in out}
        out = [{**dict(g), "seed": s} for g in sorted(groups, key=str) for s in range(design.seeds)]
    return out


def draw_rows(runs: list[dict], shift: Shift, design: Design, rng: np.random.Generator,
              only: tuple[str, ...] | None = None) -> list[dict]:
    """Per-run metrics (and per-image records) of the runs, their group values shifted by ``shift`` (``only``: just
    these metrics)."""
    latent: dict[tuple, np.ndarray] = {}
    seed_dev: dict[tuple, float] = {}
    rows = []
    for r in runs:
        g = {k: v for k, v in r.items() if k != "seed"}
        row = dict(r, n_test=design.n_test, n_robust=design.n_robust, measured_sparsity=r["level"], learned=True)
        metrics = ("miou",) if r["regime"] == "segmentation" else ("sa", "ra", "transfer_attack_acc", "nll", "ece",
                                                                    "ood_auroc")
        correct, se = {}, {}
        run_noise = None
        for m in (x for x in metrics if only is None or x in only):
            higher = MARGINS[m][1]
            mu = BASE[m] + (1 if higher else -1) * DELTA[m] * shift(g, m)
            key = (tuple(sorted(g.items())), r["seed"], m)
            dev = seed_dev.setdefault(key, rng.normal(0, SEED_SD[m] * design.seed_scale))
            if m in ACCURACIES:
                n = design.n_test if m == "sa" else design.n_robust
                lat_key = (r["task"], "sa" if m == "sa" else "attacked")
                lat = latent.setdefault(lat_key, RHO * rng.standard_normal(n, dtype=np.float32))
                if run_noise is None or run_noise.size != n:
                    run_noise = rng.standard_normal(n, dtype=np.float32)
                own = 0.7 * run_noise + math.sqrt(1 - 0.49) * rng.standard_normal(n, dtype=np.float32) \
                    if m == "transfer_attack_acc" else run_noise if m == "ra" else rng.standard_normal(n, dtype=np.float32)
                p = min(max(mu + dev, 0.01), 0.99)
                ok = lat + math.sqrt(1 - RHO ** 2) * own < _PPF(p)
                row[m] = float(ok.mean())
                correct[m] = pack_bits(ok)
            else:  # the sampling error of a group's test images, shared by its seeds (they score the same images)
                s = BOOT_SE[m] * math.sqrt(300 / design.n_test)
                samp = seed_dev.setdefault((tuple(sorted(g.items())), "sampling", m), rng.normal(0, s))
                row[m] = mu + dev + samp
                se[m] = s
        if correct:
            row["correct"] = correct
        row["se"] = se
        rows.append(row)
    return rows


ANALYSIS = {"dw-mask-iou": mask_iou_context, "dw-zero-kernels": zero_kernel_context,
            "dw-flatter-landscape": landscape_context}
VTAB = ("rt-domain-gap", "rt-vtab-count")
#: claims not simulated: descriptive rows decide nothing
SKIP = ("rt-properties-calibration",)
#: every premise holds in the worlds
CONTEXT = {"source_sa": {k: 0.8 for k in (STD, FAT, AT, RS)}, "published": [STD, FAT, AT, RS],
           "model": {"arch": "resnet50"}}


def grid_levels() -> tuple[float, ...]:
    from ..config import load_params

    return tuple(load_params("params.yaml").sweep.sparsities)


def simulate(cid: str, design: Design, draws: int, seed: int = 0, worlds=None) -> dict[str, dict[str, float]]:
    """world -> {outcome: fraction of ``draws``} of the claim's rule (``Claim.decide``) on simulated runs
    (``worlds``: only these)."""
    c = CLAIMS.get(cid)
    rng = np.random.default_rng(seed)
    levels = grid_levels()
    out: dict[str, dict[str, float]] = {}
    if cid in ANALYSIS:
        for world in (w for w in ("true", "null", "reverse") if worlds is None or w in worlds):
            tally: dict[str, int] = {}
            for _ in range(draws):
                ctx = dict(CONTEXT, analysis=ANALYSIS[cid](world, design, rng, levels))
                o = c.decide(Evidence([], None, "ra", ctx)).outcome
                tally[o] = tally.get(o, 0) + 1
            out[world] = {k: v / draws for k, v in tally.items()}
        return out
    if cid in VTAB:
        runs, gaps = vtab_world("true", design, rng)
        rank = {t: i for i, t in enumerate(sorted(gaps, key=gaps.get))}
        for world in (w for w in ("true", "null", "reverse") if worlds is None or w in worlds):
            tally = {}
            shift = vtab_shift(cid, world, rank)
            for _ in range(draws):
                rows = draw_rows(runs, shift, design, rng, ("sa",))
                o = c.decide(Evidence(rows, gaps, "ra", CONTEXT)).outcome
                tally[o] = tally.get(o, 0) + 1
            out[world] = {k: v / draws for k, v in tally.items()}
        return out
    spec = compared_spec(cid) if c.compares else custom_specs(levels)[cid]
    runs = [r for r in grid(design, spec.levels) if spec.reads(r)]
    for world, shift in spec.worlds.items():
        if worlds is not None and world not in worlds:
            continue
        tally = {}
        for _ in range(draws):
            rows = draw_rows(runs, shift, design, rng, spec.metrics)
            o = c.decide(Evidence(rows, None, "ra", CONTEXT)).outcome
            tally[o] = tally.get(o, 0) + 1
        out[world] = {k: v / draws for k, v in tally.items()}
    return out


def summary(cid: str, sims: dict[str, dict[str, float]]) -> dict[str, float | None]:
    """power, false-positive rate, false contradictions and contradiction power of one claim's worlds."""
    def p(world, outcome):
        return sims.get(world, {}).get(outcome, 0.0) if world in sims else None
    return {"power": p("true", "reproduced"), "false_positive": p("null", "reproduced"),
            "false_contradiction": p("true", "contradicted"),
            "contradicts_reverse": p("reverse", "contradicted") if "reverse" in sims else p("null", "contradicted")}


def simulated_claims() -> list[str]:
    return [cid for cid in CLAIMS if cid not in SKIP]


def table(draws: int = 400, seed: int = 0, claims=None) -> str:
    """The markdown table of docs/CLAIMS.md: each rule's rates under both designs (``claims``: only these rows)."""
    lines = ["| claim | mode / test | default: power | default: false positive | default: false contradiction | "
             "paper: power | paper: false positive | paper: false contradiction | paper: contradicts the reverse |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]

    def fmt(x):
        return "–" if x is None else f"{100 * x:.0f} %"
    for cid in (c for c in simulated_claims() if claims is None or c in claims):
        c = CLAIMS.get(cid)
        mode = c.compares["mode"] if c.compares else "own rule"
        d = summary(cid, simulate(cid, DESIGNS["default"], draws, seed))
        pp = summary(cid, simulate(cid, DESIGNS["paper"], draws, seed))
        lines.append(f"| `{cid}` | {mode} | {fmt(d['power'])} | {fmt(d['false_positive'])} | "
                     f"{fmt(d['false_contradiction'])} | {fmt(pp['power'])} | "
                     f"{fmt(pp['false_positive'])} | {fmt(pp['false_contradiction'])} | "
                     f"{fmt(pp['contradicts_reverse'])} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    draws = int(argv[0]) if argv else 400
    print(table(draws, claims=argv[1:] or None))
    return 0


if __name__ == "__main__":
    sys.exit(main())

