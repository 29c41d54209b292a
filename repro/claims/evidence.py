"""The runs a claim reads (``Evidence``) and the queries the claims build their cells with."""
from __future__ import annotations

import math
from typing import Callable, Iterable

from ..verdicts import GROUP, aggregate, double_win
from .stats import MARGINS, Cell

#: metric -> the per-run count of scored images behind it (test-set sampling noise of an accuracy)
SAMPLE_SIZE = {"sa": "n_test", "ra": "n_robust", "transfer_attack_acc": "n_robust"}
HIGH_SPARSITY = 0.7  # "at high sparsity": the sweep levels at or above this
STD, FAT, AT, RS = "standard", "fast_adversarial", "pgd_adversarial", "random_smoothing"


class Evidence:
    """The runs a claim may read: per-run metrics minus the runs that did not learn, averaged over seeds.

    ``ra_key`` chooses the RA variant: every row's ``ra`` is replaced by ``row[ra_key]`` (absent -> None,
    which :func:`repro.verdicts.aggregate` skips), so the aggregation and the double-win rule are the
    same code under either variant."""

    def __init__(self, rows: Iterable[dict], domain_gap: dict | None = None, ra_key: str = "ra"):
        rows = list(rows)
        learned = [r for r in rows if r.get("learned", True) is not False]
        self.n_runs, self.n_excluded = len(rows), len(rows) - len(learned)
        self.ra_key = ra_key
        if ra_key != "ra":
            learned = [{**r, "ra": r.get(ra_key)} for r in learned]
        self.groups = {tuple(g[k] for k in GROUP): g for g in aggregate(learned)}
        self.excluded_keys = {tuple(r[k] for k in GROUP) for r in rows if r.get("learned", True) is False}
        self.sizes: dict[tuple, dict[str, int]] = {}
        for r in learned:
            key = tuple(r[k] for k in GROUP)
            for m, n in SAMPLE_SIZE.items():
                if isinstance(r.get(n), int):
                    cur = self.sizes.setdefault(key, {}).get(m)
                    self.sizes[key][m] = r[n] if cur is None else min(cur, r[n])
        self.domain_gap = domain_gap
        self._dw: dict[float, list[dict]] = {}

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


def _noise(g: dict, key: tuple, ev: Evidence, metric: str) -> tuple[float, float, int]:
    """(mean, squared standard error, seeds) of one group's metric."""
    m, sd, n = g[f"{metric}_mean"], g.get(f"{metric}_std", 0.0), g["n_seeds"]
    var = sd ** 2 / n if n > 1 else 0.0
    size = ev.sizes.get(key, {}).get(metric)
    if size:
        p = min(max(m, 0.0), 1.0)
        var += p * (1 - p) / (size * n)
    return m, var, n


def cell(ev: Evidence, a: tuple, b: tuple, metric: str, label: str, metric_b: str | None = None,
         margin: float | None = None) -> Cell | str | None:
    """A against B (group keys) on ``metric`` (B on ``metric_b``, default the same). Returns the cell,
    ``"excluded"`` when a side exists only as runs that did not learn, or None when a side is absent."""
    metric_b = metric_b or metric
    ga, gb = ev.groups.get(a), ev.groups.get(b)
    if ga is None or gb is None or f"{metric}_mean" not in ga or f"{metric_b}_mean" not in gb:
        return "excluded" if (a in ev.excluded_keys or b in ev.excluded_keys) else None
    ma, va, na = _noise(ga, a, ev, metric)
    mb, vb, nb = _noise(gb, b, ev, metric_b)
    base, higher = MARGINS.get(metric, (0.01, True))
    sign = 1.0 if higher else -1.0
    return Cell(label, sign * (ma - mb), math.sqrt(va + vb), base if margin is None else margin, min(na, nb), ma, mb)


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


def dense_seeds_ok(ev: Evidence, kinds, tasks, fraction=1.0) -> tuple[bool, int]:
    """The matching rule needs the dense model's std over seeds: the fewest seeds of the baselines the
    double-win verdicts of ``tasks`` use (another experiment's single-seed baselines on other tasks do not count)."""
    ns = [g["n_seeds"] for g in ev.groups.values() if g["method"] == "dense" and g["kind"] in kinds
          and g["task"] in tasks and g["fraction"] == fraction and g["regime"] in ("standard", "adversarial")]
    return (bool(ns) and min(ns) >= 2), (min(ns) if ns else 0)


def extreme(ev: Evidence, kind: str, method: str, fraction: float = 1.0) -> dict[str, float]:
    """task -> extreme double-win sparsity of (kind, method), from :func:`repro.verdicts.double_win`."""
    return {v["task"]: v["extreme_sparsity"] for v in ev.double_win(fraction)
            if v["kind"] == kind and v["method"] == method}


DW_METRICS = (("standard", "sa"), ("adversarial", "sa"), ("adversarial", "ra"))


def dw_cells(ev: Evidence, a, b, levels=lambda lv: lv > 0, fraction=1.0, margin=None) -> list:
    """A against B on the three double-win criteria (standard SA, adversarial SA, adversarial RA)."""
    out = []
    for regime, metric in DW_METRICS:
        out += versus(ev, a, b, [metric], [regime], (fraction,), levels=levels, margin=margin)
    return out
