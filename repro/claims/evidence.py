"""The runs a claim reads (``Evidence``) and the queries the claims build their cells with."""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from ..base.io import unpack_bits
from ..verdicts import GROUP, aggregate, double_win
from .stats import INF, MARGINS, Cell, combine

#: metric -> the per-run count of scored images behind it (test-set sampling noise of an accuracy)
SAMPLE_SIZE = {"sa": "n_test", "ra": "n_robust", "transfer_attack_acc": "n_robust"}
HIGH_SPARSITY = 0.7  # "at high sparsity": the sweep levels at or above this
STD, FAT, AT, RS = "standard", "fast_adversarial", "pgd_adversarial", "random_smoothing"
#: the per-run record of per-image correctness (repro.pipeline.evaluate.per_image_record)
CORRECT = "correct"
#: the per-run bootstrap standard errors over test images (NLL, ECE, OoD AUROC; mIoU of the segment stage)
SE = "se"


class Evidence:
    """The runs a claim may read: per-run metrics minus the runs that did not learn, averaged over seeds.

    ``ra_key`` chooses the RA variant: every row's ``ra`` (and its per-image record) is replaced by
    ``row[ra_key]`` (absent -> None, which :func:`repro.verdicts.aggregate` skips), so the aggregation and
    the double-win rule are the same code under either variant. ``context``: what the runs alone do not say
    (the pretrained models' source accuracy, the model, the analysis stage's mask statistics and loss
    landscapes; :mod:`repro.claims.premises` reads it)."""

    def __init__(self, rows: Iterable[dict], domain_gap: dict | None = None, ra_key: str = "ra",
                 context: dict | None = None):
        rows = list(rows)
        learned = [r for r in rows if r.get("learned", True) is not False]
        self.n_runs, self.n_excluded = len(rows), len(rows) - len(learned)
        self.ra_key = ra_key
        if ra_key != "ra":
            learned = [{**r, "ra": r.get(ra_key),
                        CORRECT: {**(r.get(CORRECT) or {}), "ra": (r.get(CORRECT) or {}).get(ra_key)}}
                       for r in learned]
        self.groups = {tuple(g[k] for k in GROUP): g for g in aggregate(learned)}
        self.excluded_keys = {tuple(r[k] for k in GROUP) for r in rows if r.get("learned", True) is False}
        self.runs: dict[tuple, list[dict]] = {}
        for r in learned:
            self.runs.setdefault(tuple(r[k] for k in GROUP), []).append(r)
        self.sizes: dict[tuple, dict[str, int]] = {}
        for key, rs in self.runs.items():
            for r in rs:
                for m, n in SAMPLE_SIZE.items():
                    if isinstance(r.get(n), int):
                        cur = self.sizes.setdefault(key, {}).get(m)
                        self.sizes[key][m] = r[n] if cur is None else min(cur, r[n])
        self.domain_gap = domain_gap
        self.context = context or {}
        self._dw: dict[float, list[dict]] = {}
        self._img: dict[tuple, np.ndarray | None] = {}

    def keys(self, **where) -> list[tuple]:
        """Group keys (learned and not) matching ``where`` (field -> value or tuple of values)."""
        out = set()
        for key in list(self.groups) + list(self.excluded_keys):
            row = dict(zip(GROUP, key))
            if all(row[k] in (v if isinstance(v, tuple) else (v,)) for k, v in where.items()):
                out.add(key)
        return sorted(out, key=lambda k: tuple(str(x) for x in k))

    def double_win(self, fraction: float = 1.0) -> list[dict]:
        """:func:`repro.verdicts.double_win` on the learned runs (adversarial groups without RA left out)."""
        if fraction not in self._dw:
            agg = [g for g in self.groups.values() if g["regime"] != "adversarial" or "ra_mean" in g]
            self._dw[fraction] = double_win(agg, fraction)
        return self._dw[fraction]

    def per_image(self, key: tuple, metric: str) -> np.ndarray | None:
        """Per test image, the fraction of the group's seeds that got it right (None unless every seed
        stored its per-image record of ``metric`` over the same number of images)."""
        if (key, metric) not in self._img:
            recs = [(r.get(CORRECT) or {}).get(metric) for r in self.runs.get(key, [])]
            out = None
            if recs and all(recs) and len({rec["n"] for rec in recs}) == 1:
                out = np.mean([unpack_bits(rec) for rec in recs], axis=0)
            self._img[(key, metric)] = out
        return self._img[(key, metric)]

    def boot_se(self, key: tuple, metric: str) -> float | None:
        """The mean over the group's seeds of the runs' bootstrap standard error of ``metric`` (None if absent).
        Every seed scores the same test images, so their sampling errors are not averaged down."""
        ses = [(r.get(SE) or {}).get(metric) for r in self.runs.get(key, [])]
        ses = [s for s in ses if isinstance(s, (int, float))]
        return sum(ses) / len(ses) if ses else None

    def sampling_var(self, key: tuple, metric: str, mean: float) -> float:
        """Test-set sampling variance of the group mean of ``metric`` (0 when nothing says what it is)."""
        img = self.per_image(key, metric)
        if img is not None and img.size > 1:
            return float(img.var(ddof=1) / img.size)
        size = self.sizes.get(key, {}).get(metric)
        if size:
            p = min(max(mean, 0.0), 1.0)
            return p * (1 - p) / size
        se = self.boot_se(key, metric)
        return se * se if se else 0.0

    def seed_values(self, key: tuple, metric: str) -> dict[int, float]:
        """seed -> the run's ``metric`` (learned runs of the group)."""
        return {r["seed"]: r[metric] for r in self.runs.get(key, []) if r.get(metric) is not None}


def cell(ev: Evidence, a: tuple, b: tuple, metric: str, label: str, metric_b: str | None = None,
         margin: float | None = None) -> Cell | str | None:
    """A against B (group keys) on ``metric`` (B on ``metric_b``, default the same). Returns the cell,
    ``"excluded"`` when a side exists only as runs that did not learn, or None when a side is absent.

    Noise (``repro.claims.stats``): the seed variance of each side (of the per-seed differences when A and B
    are two metrics of the same runs), plus the test-set sampling variance: paired per image when both sides
    stored per-image correctness on the same task's images, else per side."""
    metric_b = metric_b or metric
    ga, gb = ev.groups.get(a), ev.groups.get(b)
    if ga is None or gb is None or f"{metric}_mean" not in ga or f"{metric_b}_mean" not in gb:
        return "excluded" if (a in ev.excluded_keys or b in ev.excluded_keys) else None
    ma, mb = ga[f"{metric}_mean"], gb[f"{metric_b}_mean"]
    na, nb = ga["n_seeds"], gb["n_seeds"]
    comps: list[tuple[float, float]] = []
    if a == b:  # two metrics of the same runs: the seed noise of their per-seed difference
        va, vb = ev.seed_values(a, metric), ev.seed_values(a, metric_b)
        d = [va[s] - vb[s] for s in va if s in vb]
        if len(d) > 1:
            comps.append((float(np.var(d, ddof=1)) / len(d), len(d) - 1))
    else:
        for g, m, n in ((ga, metric, na), (gb, metric_b, nb)):
            if n > 1:
                comps.append((g.get(f"{m}_std", 0.0) ** 2 / n, n - 1))
    ia, ib = ev.per_image(a, metric), ev.per_image(b, metric_b)
    paired = ia is not None and ib is not None and ia.size == ib.size and ia.size > 1 and a[2] == b[2]
    if paired:
        comps.append((float(np.var(ia - ib, ddof=1)) / ia.size, INF))
    else:
        comps += [(ev.sampling_var(a, metric, ma), INF), (ev.sampling_var(b, metric_b, mb), INF)]
    se, df = combine(comps)
    base, higher = MARGINS.get(metric, (0.01, True))
    sign = 1.0 if higher else -1.0
    return Cell(label, sign * (ma - mb), se, base if margin is None else margin, min(na, nb), ma, mb, df=df,
                paired=paired)


def ticket_levels(ev: Evidence, **where) -> list[float]:
    return sorted({k[5] for k in ev.keys(**where) if k[5] > 0})


def versus(ev: Evidence, a: tuple[str, str], b: tuple[str, str], metrics, regimes, fractions=(1.0,),
           tasks=None, levels: Callable[[float], bool] = lambda lv: lv > 0, margin=None, prefix="") -> list:
    """Cells of ticket A = (kind, method) against ticket B at every (regime, fraction, task, level) both ran."""
    out = []
    for regime in regimes:
        for fraction in fractions:
            keys = ev.keys(kind=a[0], method=a[1], regime=regime, fraction=fraction)
            for key in keys:
                task, lv = key[2], key[5]
                if (tasks and task not in tasks) or not levels(lv):
                    continue
                for metric in metrics:
                    c = cell(ev, key, (b[0], b[1], task, regime, fraction, lv), metric,
                             f"{prefix}{metric} {regime} f{fraction:g} {task} s{lv:g}", margin=margin)
                    if isinstance(c, Cell):
                        c.coords = dict(side=prefix, metric=metric, regime=regime, fraction=fraction, task=task, level=lv)
                    if c is not None:
                        out.append(c)
    return out


def without_field(c: Cell, field_: str) -> tuple:
    """A cell's coordinates without one of them: pairs the same cell across fractions or regimes."""
    return tuple(sorted((k, v) for k, v in c.coords.items() if k != field_))


def high(lv: float) -> bool:
    return lv >= HIGH_SPARSITY


def mild(lv: float) -> bool:
    return 0 < lv < HIGH_SPARSITY


def dense_seeds_ok(ev: Evidence, kinds, tasks, fraction=1.0) -> tuple[bool, int]:
    """The matching rule needs the dense model's std over seeds: the fewest seeds of the baselines the
    double-win verdicts of ``tasks`` use (another experiment's single-seed baselines on other tasks do not count)."""
    ns = [g["n_seeds"] for g in ev.groups.values() if g["method"] == "dense" and g["kind"] in kinds
          and g["task"] in tasks and g["fraction"] == fraction and g["regime"] in ("standard", "adversarial")]
    return (bool(ns) and min(ns) >= 2), (min(ns) if ns else 0)


DW_METRICS = (("standard", "sa"), ("adversarial", "sa"), ("adversarial", "ra"))


def best_of(cells: list, label: str) -> Cell | None:
    """The best of k cells of one comparison (e.g. every sparsity level, "up to"), each judged at its critical
    value Bonferroni-raised to the quantile 1 - 0.025/k, so that picking the best does not inflate the
    false-positive rate: a win if some cell wins at the raised threshold, a loss if every cell loses at it,
    else a tie."""
    cells = [c for c in cells if isinstance(c, Cell)]
    if not cells:
        return None
    k = len(cells)
    q = 1 - (1 - cells[0].q) / k
    raised = [Cell(c.label, c.diff, c.se, c.margin, c.seeds, c.a, c.b, dict(c.coords), c.df, c.paired, q=q)
              for c in cells]
    wins = [c for c in raised if c.result == "win"]
    pick = max(wins or raised, key=lambda c: c.diff)
    out = Cell(f"{label} (best of {k}: {pick.label})", pick.diff, pick.se, pick.margin, pick.seeds, pick.a, pick.b,
               dict(pick.coords), pick.df, pick.paired, q=q)
    if not wins and not all(c.result == "loss" for c in raised):
        out.fixed = "tie"
    return out
