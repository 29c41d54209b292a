"""The claims registry: every headline claim of both papers, tested on the pipeline's own metrics.

A :class:`Claim` names the paper, section and figure/table, quotes the paper, says in words which runs
it reads and how it decides (``test``), and carries a ``decide`` function that returns a
:class:`Result`: ``reproduced``, ``inconclusive`` (too few seeds or cells, or a gap inside the noise),
``contradicted``, or ``not run`` (its runs are absent at this tier), with the numbers behind it.
Claims are registered in :data:`CLAIMS` (:func:`claim` decorates a decision function,
:func:`compared` registers an A-against-B comparison); ``python -m repro.stages.claims`` writes them
all to ``metrics/claims_detail.json`` and the counts and outcomes to ``metrics/claims.json``.

**Inputs.** The per-run metrics the evaluate stages write (``runs/eval/<level>/<run>/metrics.json``),
averaged over seeds by :func:`repro.verdicts.aggregate` (the double-win claims use
:func:`repro.verdicts.double_win`, the matching rule of DW Sec. 4.1), and the domain-gap scores of
the analysis stage (RT Table II). A run with ``learned: false`` (it did not learn its task) never
counts as evidence: it is dropped before aggregation; a claim whose every run was dropped is
``inconclusive``.

**Robust accuracy.** A claim that reads RA is decided once per RA variant (:data:`RA_VARIANTS`):
``pgd20`` reads ``ra`` (the papers' PGD-20), ``aa`` reads ``ra_aa`` (AutoAttack-grade); a run without
the key is absent for that variant, so a claim with none is ``not run`` under it.

**One comparison cell** is claim side A against side B at one (task, sparsity, data fraction, ...):
``diff`` = mean_A - mean_B over seeds (sign-flipped for lower-is-better metrics, so that a positive
diff always supports the claim), and its standard error combines two independent sources:

* seeds: ``sqrt(sd_A^2/n_A + sd_B^2/n_B)`` (sample std over seeds; 0 when a side has one seed);
* the finite test set, for accuracies: ``sqrt(p_A(1-p_A)/(N_A n_A) + p_B(1-p_B)/(N_B n_B))`` with
  N the images scored (``n_test`` for SA, ``n_robust`` for RA and transfer-attack accuracy); both
  sides see the same images, so treating them as independent is conservative.

The cell is a *win* when ``diff > max(margin, Z * se)``, a *loss* when ``diff < -max(margin, Z * se)``,
a *tie* otherwise (``Z`` = 2; the margin is per metric, :data:`MARGINS`, and can be raised per claim).

**A claim over cells** (n cells, W wins, L losses) is decided by its mode:

* ``greater`` ("consistently"): reproduced if W >= n/2 and L = 0; contradicted if L >= n/2 and W = 0;
* ``mostly`` ("generally", "most sparsity ratios"): as ``greater`` but tolerating up to n/4 cells of
  the other sign;
* ``not_less`` (A >= B, e.g. transfer-attack accuracy >= RA): reproduced if L = 0; contradicted if
  L >= n/2;
* ``equal`` ("no significant difference"), an equivalence test: a cell is *equivalent* when
  ``|diff| + Z * se <= EQUIVALENCE * margin`` (the whole interval inside 3 margins, 3 pp for
  accuracies); reproduced if at least 3/4 of the cells are equivalent, contradicted if W >= n/2 and
  L = 0 or the reverse (a gap that is merely inside the noise does not show equality);

inconclusive otherwise. Sign consistency across cells stands in for replication where a grid has
one seed: with one seed on some side and fewer than :data:`MIN_CELLS` cells the claim is
inconclusive (too few seeds).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .base.registry import Registry
from .verdicts import GROUP, VERDICT_RA, aggregate, double_win, paper_view

OUTCOMES = ("reproduced", "inconclusive", "contradicted", "not run")
#: RA variant -> the per-run metrics key it reads (the variants of ``evaluation.verdict_ra``)
RA_VARIANTS = VERDICT_RA
Z = 2.0
MIN_CELLS = 3
EQUIVALENCE = 3.0  # mode "equal": a cell is equivalent when its whole interval lies within this many margins
#: metric -> (smallest difference that counts, higher is better)
MARGINS = {"sa": (0.01, True), "ra": (0.01, True), "transfer_attack_acc": (0.01, True),
           "ood_auroc": (0.02, True), "nll": (0.05, False), "ece": (0.01, False), "miou": (0.01, True)}
#: metric -> the per-run count of scored images behind it (test-set sampling noise of an accuracy)
SAMPLE_SIZE = {"sa": "n_test", "ra": "n_robust", "transfer_attack_acc": "n_robust"}
HIGH_SPARSITY = 0.7  # "at high sparsity": the sweep levels at or above this
STD, FAT, AT, RS = "standard", "fast_adversarial", "pgd_adversarial", "random_smoothing"


# --------------------------------------------------------------------------- evidence

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


# --------------------------------------------------------------------------- cells and results

@dataclass
class Cell:
    label: str
    diff: float          # positive = supports the claim
    se: float
    margin: float
    seeds: int           # fewest seeds on either side
    a: float | None = None
    b: float | None = None
    coords: dict = field(default_factory=dict)  # metric, regime, fraction, task, level, side (set by versus)

    @property
    def threshold(self) -> float:
        return max(self.margin, Z * self.se)

    @property
    def equivalent(self) -> bool:
        return abs(self.diff) + Z * self.se <= EQUIVALENCE * self.margin

    @property
    def result(self) -> str:
        return "win" if self.diff > self.threshold else ("loss" if self.diff < -self.threshold else "tie")

    def as_dict(self) -> dict:
        d = {"cell": self.label, "diff": round(self.diff, 4), "threshold": round(self.threshold, 4),
             "result": self.result, "seeds": self.seeds}
        if self.a is not None:
            d.update(a=round(self.a, 4), b=round(self.b, 4))
        return d


@dataclass
class Result:
    outcome: str
    reason: str
    numbers: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"outcome": self.outcome, "reason": self.reason, "numbers": self.numbers}


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


def contrast(c1: Cell, c2: Cell, label: str) -> Cell:
    """Difference of two cells' differences (e.g. the robust-minus-natural gap at 10 % data minus at 100 %)."""
    return Cell(label, c1.diff - c2.diff, math.sqrt(c1.se ** 2 + c2.se ** 2), max(c1.margin, c2.margin),
                min(c1.seeds, c2.seeds))


def decide(cells: list, mode: str = "greater", what: str = "") -> Result:
    """The claim's outcome from its cells (see the module docstring for the modes)."""
    excluded = sum(1 for c in cells if c == "excluded")
    cells = [c for c in cells if isinstance(c, Cell)]
    if not cells:
        if excluded:
            return Result("inconclusive", f"all {excluded} comparisons involve runs that did not learn",
                          {"cells": 0, "excluded_not_learned": excluded})
        return Result("not run", f"no runs of {what} at this tier" if what else "its runs are absent at this tier",
                      {"cells": 0})
    n = len(cells)
    w = sum(c.result == "win" for c in cells)
    lo = sum(c.result == "loss" for c in cells)
    t = n - w - lo
    half, quarter = math.ceil(n / 2), n // 4
    nums = {"cells": n, "wins": w, "losses": lo, "ties": t,
            "mean_diff": round(sum(c.diff for c in cells) / n, 4), "min_seeds": min(c.seeds for c in cells),
            "excluded_not_learned": excluded, "detail": [c.as_dict() for c in cells]}
    if nums["min_seeds"] < 2 and n < MIN_CELLS:
        return Result("inconclusive", f"too few seeds: one seed and only {n} cell(s)", nums)
    tally = f"{w} win, {lo} loss, {t} tie of {n} cells"
    if mode == "greater" or mode == "mostly":
        tol = 0 if mode == "greater" else quarter
        if w >= half and lo <= tol:
            return Result("reproduced", tally, nums)
        if lo >= half and w <= tol:
            return Result("contradicted", tally, nums)
    elif mode == "not_less":
        if lo == 0:
            return Result("reproduced", tally, nums)
        if lo >= half:
            return Result("contradicted", tally, nums)
    elif mode == "equal":
        eq = sum(c.equivalent for c in cells)
        nums["equivalent"] = eq
        if eq >= n - quarter:
            return Result("reproduced", f"{eq} of {n} cells equivalent within {EQUIVALENCE:g} margins", nums)
        if (w >= half and lo == 0) or (lo >= half and w == 0):
            return Result("contradicted", tally, nums)
    else:
        raise ValueError(f"unknown decision mode {mode!r}; allowed: greater, mostly, not_less, equal")
    return Result("inconclusive", tally + (" (signs disagree)" if w and lo else " (gaps inside the noise)"), nums)


# --------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class Claim:
    id: str
    paper: str                 # DW | RT
    section: str
    figure: str                # figure / table label
    quote: str                 # the claim, quoted from the paper
    test: str                  # which runs, which statistic, which decision rule
    decide: Callable[[Evidence], Result]
    items: tuple[str, ...] = ()  # report items (paper_figures/render.py ITEMS ids) it supports
    uses_ra: bool = False      # decided once per RA variant
    compares: dict | None = None  # a :func:`compared` claim's definition (pairs, on, mode, fractions, levels)


CLAIMS: Registry[Claim] = Registry("claim")


def claim(id: str, paper: str, section: str, figure: str, quote: str, test: str, items=(), uses_ra=False):
    def deco(fn: Callable[[Evidence], Result]) -> Callable[[Evidence], Result]:
        CLAIMS.register(id)(Claim(id, paper, section, figure, quote, test, fn, tuple(items), uses_ra))
        return fn
    return deco


def compared(id: str, paper: str, section: str, figure: str, quote: str, test: str, pairs, on, mode="greater",
             fractions=(1.0,), levels: Callable[[float], bool] = lambda lv: lv > 0, margin=None, items=(),
             uses_ra=False, what: str = "") -> None:
    """Register a claim decided on the cells of :func:`versus`: every ticket pair (A, B) in ``pairs`` on every
    (regime, metric) in ``on``, at ``fractions`` and the sweep levels ``levels`` accepts; ``mode`` as in :func:`decide`."""
    def decide_pairs(ev: Evidence) -> Result:
        cells = []
        for a, b in pairs:
            for regime, metric in on:
                cells += versus(ev, a, b, [metric], [regime], fractions, levels=levels, margin=margin,
                                prefix=f"{a[0]}-{a[1]} vs {b[0]}-{b[1]}: " if len(pairs) > 1 else "")
        return decide(cells, mode, what)
    spec = dict(pairs=list(pairs), on=list(on), mode=mode, fractions=tuple(fractions), levels=levels)
    CLAIMS.register(id)(Claim(id, paper, section, figure, quote, test, decide_pairs, tuple(items), uses_ra, spec))


def evaluate_all(rows: list[dict], domain_gap: dict | None = None, verdict_ra: str = "pgd20",
                 recipes: dict[str, dict[str, str]] | None = None) -> dict:
    """Every registered claim on ``rows``; the document written to ``metrics/claims.json``.

    Top-level counts are those under ``verdict_ra``; ``by_variant`` holds the counts under each RA
    variant and ``differ`` the claims whose outcome depends on the variant. ``recipes``: per paper (``DW``,
    ``RT``) its {regime: recipe tag} (``Params.recipe_tags``); a claim reads its paper's view of the runs
    (:func:`repro.verdicts.paper_view`, e.g. RT's claims the runs of RT's fine-tuning recipe); None: every
    claim reads the runs of the regimes' own recipes."""
    if verdict_ra not in RA_VARIANTS:
        raise ValueError(f"verdict_ra {verdict_ra!r}; allowed: {', '.join(RA_VARIANTS)}")
    recipes = recipes or {}
    views = {paper: {v: Evidence(paper_view(rows, recipes.get(paper, {})), domain_gap, key)
                     for v, key in RA_VARIANTS.items()} for paper in {CLAIMS.get(cid).paper for cid in CLAIMS}}
    present = {v: any(r.get(key) is not None for r in rows) for v, key in RA_VARIANTS.items()}
    claims, differ = {}, []
    for cid in CLAIMS:
        c = CLAIMS.get(cid)
        evs = views[c.paper]
        entry = {"paper": c.paper, "section": c.section, "figure": c.figure, "quote": c.quote, "test": c.test,
                 "items": list(c.items), "uses_ra": c.uses_ra}
        if c.uses_ra:
            by = {v: c.decide(evs[v]).as_dict() for v in RA_VARIANTS}
            head = by[verdict_ra]
            entry.update(outcome=head["outcome"], reason=head["reason"], numbers=head["numbers"],
                         by_variant={v: {"outcome": r["outcome"], "reason": r["reason"]} for v, r in by.items()})
            if all(present.values()) and len({r["outcome"] for r in by.values()}) > 1:
                differ.append(cid)
        else:
            entry.update(c.decide(evs["pgd20"]).as_dict())
        claims[cid] = entry
    doc = {**counts(claims), "verdict_ra": verdict_ra,
           "by_variant": {v: counts(claims, v) for v in RA_VARIANTS},
           "ra_variants_present": [v for v, ok in present.items() if ok], "differ": differ,
           "runs": len(rows), "excluded_not_learned": sum(r.get("learned", True) is False for r in rows),
           "claims": claims}
    return doc


def metric_view(doc: dict) -> dict:
    """The DVC metric (``metrics/claims.json``): the counts at the top level and, per claim, its outcome (and
    its outcome per RA variant) and the scalar numbers behind it; the quotes, tests, reasons and per-cell
    details stay in the full document (``metrics/claims_detail.json``), so ``dvc exp show`` stays readable."""
    out = {k: v for k, v in doc.items() if k != "claims"}
    out["claims"] = {}
    for cid, c in doc["claims"].items():
        e = {"outcome": c["outcome"]}
        e.update({v: r["outcome"] for v, r in c.get("by_variant", {}).items()})
        e.update({k: v for k, v in c["numbers"].items() if k != "detail"})
        out["claims"][cid] = e
    return out


def counts(claims: dict, variant: str | None = None) -> dict:
    """reproduced / inconclusive / contradicted / not_run / total over ``claims`` (a variant's outcome if given)."""
    out = {o.replace(" ", "_"): 0 for o in OUTCOMES}
    for e in claims.values():
        o = e["by_variant"][variant]["outcome"] if variant and e.get("by_variant") else e["outcome"]
        out[o.replace(" ", "_")] += 1
    out["total"] = len(claims)
    return out


def scorecard_line(doc: dict, tier: str) -> str:
    """"at tier <tier>: N reproduced, M inconclusive, K contradicted, J not run" (the report's first line)."""
    return (f"at tier {tier}: {doc['reproduced']} reproduced, {doc['inconclusive']} inconclusive, "
            f"{doc['contradicted']} contradicted, {doc['not_run']} not run")


# --------------------------------------------------------------------------- helpers for the claims

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


def _without(c: Cell, field_: str) -> tuple:
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


def spearman(x: list[float], y: list[float]) -> float:
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r
    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    num = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    den = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return num / den if den else 0.0


DW_METRICS = (("standard", "sa"), ("adversarial", "sa"), ("adversarial", "ra"))


def dw_cells(ev: Evidence, a, b, levels=lambda lv: lv > 0, fraction=1.0, margin=None) -> list:
    """A against B on the three double-win criteria (standard SA, adversarial SA, adversarial RA)."""
    out = []
    for regime, metric in DW_METRICS:
        out += versus(ev, a, b, [metric], [regime], (fraction,), levels=levels, margin=margin)
    return out


# --------------------------------------------------------------------------- Double-Win claims

@claim("dw-exist", "DW", "Sec. 4.1, observation 1", "Fig. 3",
       "Double-win lottery tickets generally exist from various pre-training, showing unimpaired performance on "
       "diverse downstream tasks for both standard and adversarial transfer.",
       "IMP tickets (m^ST) of θ_STD, θ_FAT, θ_AT, full data: the extreme double-win sparsity per task from "
       "repro.verdicts.double_win (matching = mean ≥ dense mean − 1 std over seeds on standard SA, adversarial SA "
       "and adversarial RA). Reproduced if every pretraining has a double-win ticket (extreme sparsity > 0) on at "
       "least one task; contradicted if none has; inconclusive otherwise or when a dense baseline has < 2 seeds "
       "(no std for the matching rule).",
       items=("dw-fig3", "dw-extreme-sparsity"), uses_ra=True)
def _dw_exist(ev: Evidence) -> Result:
    kinds = (STD, FAT, AT)
    es = {k: extreme(ev, k, "imp") for k in kinds}
    nums = {"extreme_sparsity": es}
    if not any(es.values()):
        return Result("not run", "no double-win verdicts of IMP tickets at this tier", nums)
    ok, n = dense_seeds_ok(ev, kinds, {t for k in kinds for t in es[k]})
    if not ok:
        return Result("inconclusive", f"too few seeds: dense baselines have {n} seed(s)", nums)
    exist = {k: any(v > 0 for v in es[k].values()) for k in kinds if es[k]}
    nums["exists"] = exist
    if len(exist) == len(kinds) and all(exist.values()):
        return Result("reproduced", "every pretraining has a double-win ticket", nums)
    if not any(exist.values()):
        return Result("contradicted", "no pretraining has a double-win ticket at any level", nums)
    return Result("inconclusive", "double-win tickets for " + ", ".join(k for k, v in exist.items() if v)
                  + " only", nums)


@claim("dw-extreme-order", "DW", "Sec. 4.1, observation 2", "Fig. 3",
       "Taking the extreme sparsity as an indicator, the adversarial pre-training finds double-win lottery tickets "
       "to the extreme sparsity of 83.22% ∼ 96.48% while fast adversarial, standard pre-training reach the extreme "
       "sparsity level of 20.00% ∼ 89.26% and 0.00% ∼ 89.26%.",
       "Extreme double-win sparsity of IMP tickets per task, full data (repro.verdicts.double_win). Reproduced if "
       "AT ≥ FAT ≥ STD on every task and AT > STD on at least one; contradicted if AT < STD on at least half the "
       "tasks; inconclusive otherwise (e.g. all equal) or when a dense baseline has < 2 seeds.",
       items=("dw-fig3", "dw-extreme-sparsity"), uses_ra=True)
def _dw_extreme_order(ev: Evidence) -> Result:
    es = {k: extreme(ev, k, "imp") for k in (STD, FAT, AT)}
    tasks = sorted(set(es[STD]) & set(es[FAT]) & set(es[AT]))
    nums = {"extreme_sparsity": {t: {k: es[k][t] for k in es} for t in tasks}}
    if not tasks:
        return Result("not run", "no task with double-win verdicts for all of θ_STD, θ_FAT, θ_AT", nums)
    ok, n = dense_seeds_ok(ev, (STD, FAT, AT), tasks)
    if not ok:
        return Result("inconclusive", f"too few seeds: dense baselines have {n} seed(s)", nums)
    order = all(es[AT][t] >= es[FAT][t] >= es[STD][t] for t in tasks)
    strict = any(es[AT][t] > es[STD][t] for t in tasks)
    worse = sum(es[AT][t] < es[STD][t] for t in tasks)
    if order and strict:
        return Result("reproduced", f"AT ≥ FAT ≥ STD on all {len(tasks)} task(s)", nums)
    if worse >= math.ceil(len(tasks) / 2):
        return Result("contradicted", f"AT below STD on {worse} of {len(tasks)} task(s)", nums)
    return Result("inconclusive", "order not strict" if order else "order partly violated", nums)


compared("dw-at-outperforms", "DW", "Sec. 4.1, observation 2", "Fig. 3",
         "Subnetworks identified from adversarial pre-training consistently outperform the ones from fast adversarial "
         "and standard pre-training across all three downstream classification tasks",
         "θ_AT IMP tickets against θ_FAT and θ_STD IMP tickets, full data, every sweep level > 0 and task, on standard "
         "SA, adversarial SA and adversarial RA: difference of means over seeds per cell; mode greater.",
         items=("dw-fig3",), uses_ra=True,
         pairs=[((AT, 'imp'), (FAT, 'imp')), ((AT, 'imp'), (STD, 'imp'))],
         on=DW_METRICS, mode="greater", what="θ_AT/θ_FAT/θ_STD IMP tickets")


compared("dw-robust-ra", "DW", "Sec. 1; Sec. 4.1, observation 4", "Fig. 3",
         "Take the result on CIFAR-100 as an example, the subnetworks drawn from fast adversarial pre-training shows "
         "superior performance than the ones from "
         "standard training in the range of sparsity level from 0.00% ∼ 98.56% under adversarial training.",
         "RA after adversarial transfer of IMP tickets from θ_AT and θ_FAT against θ_STD, full data, every level > 0 "
         "and task; difference of means over seeds per cell; mode greater.",
         items=("dw-fig3",), uses_ra=True,
         pairs=[((AT, 'imp'), (STD, 'imp')), ((FAT, 'imp'), (STD, 'imp'))],
         on=[('adversarial', 'ra')], mode="greater", what="adversarially transferred IMP tickets")


compared("dw-imp-beats-omp", "DW", "Sec. 4.2", "Fig. 4",
         "IMP with standard and adversarial training shows similar performance, and both of them are better than OMP "
         "and random pruning.",
         f"θ_AT: IMP (m^ST) and A-IMP (m^AT) tickets against OMP at high sparsity (levels ≥ {HIGH_SPARSITY:.0%}), "
         "full data, on the three double-win criteria; difference of means per cell; mode greater.",
         items=("dw-fig4",), uses_ra=True,
         pairs=[((AT, 'imp'), (AT, 'omp')), ((AT, 'a_imp'), (AT, 'omp'))],
         on=DW_METRICS, mode="greater", levels=high, what="θ_AT IMP/OMP tickets at high sparsity")


compared("dw-imp-beats-random", "DW", "Sec. 4.1, observation 1; Sec. 4.2", "Fig. 3, Fig. 4",
         "All these double-win tickets surpass randomly pruned subnetwork by a significant performance margin.",
         f"θ_AT IMP tickets against θ_AT random pruning at high sparsity (levels ≥ {HIGH_SPARSITY:.0%}), full data, "
         "on the three double-win criteria; a cell counts only beyond a 5 pp margin ('significant'); mode greater.",
         items=("dw-fig3", "dw-fig4"), uses_ra=True,
         pairs=[((AT, 'imp'), (AT, 'random'))],
         on=DW_METRICS, mode="greater", levels=high, margin=0.05, what="θ_AT IMP/random tickets at high sparsity")


compared("dw-retraining-no-difference", "DW", "Sec. 1 (contribution 4), Sec. 4.2", "Fig. 4",
         "We show that adopting standard or adversarial training in the process of IMP makes no significant "
         "difference for the transferability of identified subnetworks on downstream tasks.",
         "θ_AT: IMP with standard re-training (m^ST) against IMP with adversarial re-training (A-IMP, m^AT), every "
         "level > 0, full data, on the three double-win criteria; mode equal (an equivalence test: reproduced if "
         "at least 3/4 of the cells have their whole interval, |diff| + 2 se, within 3 pp).",
         items=("dw-fig4",), uses_ra=True,
         pairs=[((AT, 'imp'), (AT, 'a_imp'))],
         on=DW_METRICS, mode="equal", what="θ_AT IMP and A-IMP tickets")


def _data_cells(ev: Evidence, fractions) -> list:
    cells = []
    for k in (AT, FAT):
        cells += versus(ev, (k, "imp"), (STD, "imp"), ["sa", "ra"], ["adversarial"], fractions, prefix=f"{k} ")
    return cells


compared("dw-data-robust-wins", "DW", "Sec. 5, observation 1", "Fig. 5",
         "θ_FAT and θ_AT significantly outperform θ_STD on both data-rich and data-scarce transfer for all three "
         "datasets. It evidences that the robust pre-training improves data-efficient transfer.",
         "Adversarial transfer of IMP tickets with 10 % and 1 % of the training data: θ_AT and θ_FAT against θ_STD on "
         "SA and RA, every level > 0 and task; difference of means per cell; mode greater.",
         items=("dw-fig5",), uses_ra=True,
         pairs=[((AT, 'imp'), (STD, 'imp')), ((FAT, 'imp'), (STD, 'imp'))],
         on=[('adversarial', 'sa'), ('adversarial', 'ra')], mode="greater", fractions=(0.1, 0.01),
         what="data-limited adversarial transfer")


@claim("dw-data-amplified", "DW", "Abstract; Sec. 5", "Fig. 5",
       "Our results show that the benefits from robust pre-training are amplified by the lottery ticket scheme, as "
       "well as the data-limited transfer setting.",
       "The robust-minus-standard gap (θ_AT and θ_FAT against θ_STD IMP tickets, adversarial transfer, SA and RA) "
       "with 10 % / 1 % data minus the same gap with 100 % data, per (kind, metric, task, level); standard error "
       "of the contrast from both gaps; mode greater.",
       items=("dw-fig5",), uses_ra=True)
def _dw_data_amplified(ev: Evidence) -> Result:
    full = {_without(c, "fraction"): c for c in _data_cells(ev, (1.0,)) if isinstance(c, Cell)}
    cells = []
    for c in _data_cells(ev, (0.1, 0.01)):
        if not isinstance(c, Cell):
            cells.append(c)
            continue
        ref = full.get(_without(c, "fraction"))
        if ref is not None:
            cells.append(contrast(c, ref, f"{c.label} minus f1"))
    return decide(cells, "greater", "adversarial transfer at 100 % and 10 % / 1 % data")


@claim("dw-tickets-amplify", "DW", "Abstract; Sec. 4.1", "Fig. 3",
       "Our results show that the benefits from robust pre-training are amplified by the lottery ticket scheme",
       "The θ_AT-minus-θ_STD gap of IMP tickets at each level > 0 minus the same gap of the dense models, full data, "
       "on the three double-win criteria, per task; mode greater.",
       items=("dw-fig3",), uses_ra=True)
def _dw_tickets_amplify(ev: Evidence) -> Result:
    cells = []
    for c in dw_cells(ev, (AT, "imp"), (STD, "imp")):
        if not isinstance(c, Cell):
            cells.append(c)
            continue
        x = c.coords
        d = cell(ev, (AT, "dense", x["task"], x["regime"], 1.0, 0.0), (STD, "dense", x["task"], x["regime"], 1.0, 0.0),
                 x["metric"], "dense")
        if isinstance(d, Cell):
            cells.append(contrast(c, d, f"{c.label} minus dense"))
    return decide(cells, "greater", "θ_AT/θ_STD IMP tickets with their dense baselines")


@claim("dw-fat-middle-at-high", "DW", "Sec. 1 (contribution 3), Sec. 5, observation 3", "Fig. 5",
       "In this specific situation, FAT can surprisingly find higher-quality subnetworks with small sparsity while "
       "AT overtakes in a larger sparsity range.",
       "Adversarial transfer with 10 % and 1 % data, SA and RA, per task: θ_FAT against θ_AT IMP tickets at the "
       "middle level (the sweep level nearest 73.79 %, below the highest) and θ_AT against θ_FAT at the highest "
       "level; difference of means per cell; mode greater. Needs two sweep levels.",
       items=("dw-fig5",), uses_ra=True)
def _dw_fat_middle(ev: Evidence) -> Result:
    cells = []
    for f in (0.1, 0.01):
        for task in sorted({k[2] for k in ev.keys(kind=AT, method="imp", regime="adversarial", fraction=f)}):
            lvs = ticket_levels(ev, kind=AT, method="imp", task=task, regime="adversarial", fraction=f)
            if len(lvs) < 2:
                continue
            mid, top = min(lvs[:-1], key=lambda lv: abs(lv - 0.7379)), lvs[-1]
            for metric in ("sa", "ra"):
                cells.append(cell(ev, (FAT, "imp", task, "adversarial", f, mid), (AT, "imp", task, "adversarial", f, mid),
                                  metric, f"FAT−AT {metric} f{f:g} {task} s{mid:g}"))
                cells.append(cell(ev, (AT, "imp", task, "adversarial", f, top), (FAT, "imp", task, "adversarial", f, top),
                                  metric, f"AT−FAT {metric} f{f:g} {task} s{top:g}"))
    return decide([c for c in cells if c is not None], "greater", "data-limited transfer at two or more levels")


def _ta_keys(ev: Evidence):
    return ev.keys(kind=AT, method=("dense", "imp"), regime="adversarial", fraction=1.0)


@claim("dw-no-gradient-masking", "DW", "Sec. A2", "Table A2",
       "Table A2 demonstrates that the sparse subnetworks consistently outperform the dense counterpart under transfer "
       "attack from an unseen robust model, which is aligned with the vanilla robust accuracy. This piece of evidence "
       "excludes the possibility of gradient masking for our obtain RA improvements.",
       "θ_AT dense and IMP tickets, adversarial transfer, full data: transfer-attack accuracy (adversarial examples "
       "from the independently trained reference model) against white-box RA of the same runs, per level; mode "
       "not_less (a transfer attack weaker than the white-box one: no sign of gradient masking).",
       items=("dw-tableA2",), uses_ra=True)
def _dw_no_masking(ev: Evidence) -> Result:
    cells = []
    for k in _ta_keys(ev):
        c = cell(ev, k, k, "transfer_attack_acc", f"{k[1]} {k[2]} s{k[5]:g}", metric_b="ra")
        if c is not None:
            cells.append(c)
    return decide(cells, "not_less", "adversarially transferred θ_AT runs with a transfer attack")


@claim("dw-transfer-attack-sparse-beats-dense", "DW", "Sec. A2", "Table A2",
       "Table A2 demonstrates that the sparse subnetworks consistently outperform the dense counterpart under "
       "transfer attack from an unseen robust model",
       "θ_AT IMP tickets against the θ_AT dense model, adversarial transfer, full data, transfer-attack accuracy, "
       "every level > 0 and task; difference of means per cell; mode greater.",
       items=("dw-tableA2",))
def _dw_ta_sparse(ev: Evidence) -> Result:
    cells = []
    for k in _ta_keys(ev):
        if k[1] == "imp":
            c = cell(ev, k, (AT, "dense", k[2], "adversarial", 1.0, 0.0), "transfer_attack_acc", f"{k[2]} s{k[5]:g}")
            if c is not None:
                cells.append(c)
    return decide(cells, "greater", "θ_AT IMP and dense runs with a transfer attack")


# --------------------------------------------------------------------------- Robust Tickets claims

ROBUST_OMP, NATURAL_OMP = (AT, "omp"), (STD, "omp")


compared("rt-finetune", "RT", "Sec. III-B", "Fig. 1",
         "aligning with our hypothesis, robust tickets can consistently outperform the nature tickets under the "
         "whole-model finetuning paradigm",
         "OMP tickets of θ_AT (robust) against θ_STD (natural), whole-model (standard) fine-tuning, full data, SA, "
         "every level > 0 and task; difference of means per cell; mode greater.",
         items=("rt-fig1",),
         pairs=[(ROBUST_OMP, NATURAL_OMP)],
         on=[('standard', 'sa')], mode="greater", what="fine-tuned OMP tickets")


compared("rt-linear", "RT", "Sec. III-B", "Fig. 2",
         "As shown in Fig. 2, we can observe that robust tickets aggressively win the transferred accuracy, e.g., a "
         "≥ 11.75% higher accuracy on ResNet50/CIFAR-100 till the sparsity ratio of 0.92.",
         "OMP tickets of θ_AT against θ_STD under linear evaluation (frozen backbone), full data, SA, every level > 0 "
         "and task; difference of means per cell; mode greater.",
         items=("rt-fig2", "rt-fig9"),
         pairs=[(ROBUST_OMP, NATURAL_OMP)],
         on=[('linear', 'sa')], mode="greater", what="linearly evaluated OMP tickets")


@claim("rt-linear-margin", "RT", "Sec. III-B", "Fig. 1, Fig. 2",
       "This indicates the superiority of robust tickets as a fixed feature extractor with notably better tolerance "
       "to potential domain shifts, thanks to the robustness priors.",
       "The robust-minus-natural OMP gap (SA) under linear evaluation minus the same gap under whole-model "
       "fine-tuning, per (task, level > 0); the paper's margins are larger under linear evaluation (≥ 11.75 pp vs "
       "1.95–2.38 pp); mode greater.",
       items=("rt-fig1", "rt-fig2"))
def _rt_linear_margin(ev: Evidence) -> Result:
    fine = {_without(c, "regime"): c for c in versus(ev, ROBUST_OMP, NATURAL_OMP, ["sa"], ["standard"])
            if isinstance(c, Cell)}
    cells = []
    for c in versus(ev, ROBUST_OMP, NATURAL_OMP, ["sa"], ["linear"]):
        ref = fine.get(_without(c, "regime")) if isinstance(c, Cell) else None
        if ref is not None:
            cells.append(contrast(c, ref, f"{c.label} minus fine-tuning"))
        elif not isinstance(c, Cell):
            cells.append(c)
    return decide(cells, "greater", "OMP tickets under both linear evaluation and fine-tuning")


compared("rt-structured", "RT", "Sec. III-B", "Fig. 3",
         "robust tickets consistently win across different sparsity patterns and evaluation paradigms",
         "Row-, kernel- and channel-wise OMP tickets of θ_AT against θ_STD, whole-model fine-tuning and linear "
         "evaluation, full data, SA, every level > 0 and task; difference of means per cell; mode greater.",
         items=("rt-fig3",),
         pairs=[((AT, g), (STD, g)) for g in ('omp_row', 'omp_kernel', 'omp_channel')],
         on=[('standard', 'sa'), ('linear', 'sa')], mode="greater", what="structured OMP tickets")


compared("rt-aimp", "RT", "Sec. III-B", "Fig. 4",
         "generally the two robust tickets outperform the natural ones across most sparsity ratios",
         "A-IMP tickets of θ_AT, upstream (a_imp) and downstream (a_imp_ds), against IMP tickets of θ_STD, whole-model "
         "fine-tuning, full data, SA, every level > 0 and task; difference of means per cell; mode mostly (a quarter "
         "of the cells may go the other way).",
         items=("rt-fig4",),
         pairs=[((AT, 'a_imp'), (STD, 'imp')), ((AT, 'a_imp_ds'), (STD, 'imp'))],
         on=[('standard', 'sa')], mode="mostly", what="A-IMP and IMP tickets")


compared("rt-lmp", "RT", "Sec. III-B", "Fig. 5",
         "As shown in Fig. 5, robust tickets drawn by LMP consistently outperform natural ones",
         "LMP masks learned on frozen θ_AT against θ_STD (regime mask), full data, SA, every level > 0 and task; "
         "difference of means per cell; mode greater.",
         items=("rt-fig5",),
         pairs=[((AT, 'lmp'), (STD, 'lmp'))],
         on=[('mask', 'sa')], mode="greater", what="LMP tickets")


compared("rt-smoothing-beats-natural", "RT", "Sec. III-C", "Fig. 6",
         "although the tickets from RS pretrained models are inferior to the robust tickets from adversarially trained "
         "models, they can still outperform the natural tickets.",
         "OMP tickets of the random-smoothing model against θ_STD, fine-tuning and linear evaluation, full data, SA, "
         "every level > 0 and task; difference of means per cell; mode greater.",
         items=("rt-fig6",),
         pairs=[((RS, 'omp'), NATURAL_OMP)],
         on=[('standard', 'sa'), ('linear', 'sa')], mode="greater", what="OMP tickets of random smoothing")


compared("rt-adversarial-beats-smoothing", "RT", "Sec. III-C", "Fig. 6",
         "although the tickets from RS pretrained models are inferior to the robust tickets from adversarially trained "
         "models, they can still outperform the natural tickets.",
         "OMP tickets of θ_AT against the random-smoothing model, fine-tuning and linear evaluation, full data, SA, "
         "every level > 0 and task; difference of means per cell; mode greater.",
         items=("rt-fig6",),
         pairs=[(ROBUST_OMP, (RS, 'omp'))],
         on=[('standard', 'sa'), ('linear', 'sa')], mode="greater", what="OMP tickets of random smoothing")


compared("rt-segmentation", "RT", "Sec. III-D", "Fig. 7",
         "generally our hypothesis still holds that robust tickets achieve consistently higher mIOU, especially under "
         "mild sparsity ratios",
         "OMP tickets of θ_AT against θ_STD, segmentation fine-tuning (the segment stage's runs, metrics/segment.json, "
         "as regime segmentation), mIoU, every level > 0; difference of means per cell; mode greater. Needs `miou` "
         "among the metrics repro.verdicts.aggregate averages; not run otherwise.",
         items=("rt-fig7",),
         pairs=[(ROBUST_OMP, NATURAL_OMP)],
         on=[('segmentation', 'miou')], mode="greater", what="segmentation transfer (mIoU) among the evaluated runs")


_FIG8_QUOTE = ("From Fig. 8, we can see that (1) robust tickets outperform the vanilla counterparts consistently in terms "
               "of natural accuracy, adversarial accuracy, and OoD performance.")
_FIG8_TEST = ("A-IMP tickets of θ_AT (robust) against IMP tickets of θ_STD (natural), whole-model fine-tuning, full "
              "data, {what}, every level > 0 and task; difference of means per cell; mode greater.")


compared("rt-properties-accuracy", "RT", "Sec. III-E", "Fig. 8, Table I", _FIG8_QUOTE,
         _FIG8_TEST.format(what="SA"), items=("rt-fig8", "rt-table1"),
         pairs=[((AT, 'a_imp'), (STD, 'imp'))],
         on=[('standard', 'sa')], mode="greater", what="A-IMP/IMP tickets")


compared("rt-properties-adversarial", "RT", "Sec. III-E", "Fig. 8, Table I", _FIG8_QUOTE,
         _FIG8_TEST.format(what="RA (Adv-Acc)"), items=("rt-fig8", "rt-table1"), uses_ra=True,
         pairs=[((AT, 'a_imp'), (STD, 'imp'))],
         on=[('standard', 'ra')], mode="greater", what="A-IMP/IMP tickets")


compared("rt-properties-ood", "RT", "Sec. III-E", "Fig. 8, Table I", _FIG8_QUOTE,
         _FIG8_TEST.format(what=f"OoD ROC-AUC of max-softmax detection (margin {MARGINS['ood_auroc'][0]})"),
         items=("rt-fig8", "rt-table1"),
         pairs=[((AT, 'a_imp'), (STD, 'imp'))],
         on=[('standard', 'ood_auroc')], mode="greater", what="A-IMP/IMP tickets")


compared("rt-properties-calibration", "RT", "Sec. III-E", "Table I",
         "Raw data of all the mentioned properties of robust tickets and natural tickets drawn from ResNet18/50 via "
         "A-IMP.",
         _FIG8_TEST.format(what=f"NLL, lower is better (margin {MARGINS['nll'][0]} nats)")
         + " The text makes no calibration claim; in the paper's Table I robust tickets have the lower NLL in all 8 "
         "cells but the lower ECE in only 3 of 8, so NLL is tested and ECE is not.",
         items=("rt-fig8", "rt-table1"),
         pairs=[((AT, 'a_imp'), (STD, 'imp'))],
         on=[('standard', 'nll')], mode="greater", what="A-IMP/IMP tickets")


@claim("rt-domain-gap", "RT", "Sec. III-F", "Fig. 9, Table II",
       "we can observe that robust tickets consistently outperform natural ones on datasets with a larger FID, where "
       "the domain gap between downstream datasets and ImageNet is larger, and only match/underperform their natural "
       "counterparts on datasets with a lower FID.",
       "Per task: the robust-minus-natural OMP gap under linear evaluation (SA) at the highest common level > 0, "
       "against the task's domain gap (analysis/domain_gap.json, a Fréchet distance as FID). Statistic: Spearman "
       "rank correlation over ≥ 3 tasks. Reproduced if ρ ≥ 0.8 and the gap at the largest-domain-gap task exceeds "
       "the gap at the smallest by more than max(1 pp, 2 se); contradicted if ρ ≤ −0.8 with the reverse beyond the "
       "noise; inconclusive otherwise (with 3 tasks, ρ = 1 has a permutation p of 1/6).",
       items=("rt-fig9", "rt-table2"))
def _rt_domain_gap(ev: Evidence) -> Result:
    cells: dict[str, Cell] = {}
    excluded = False
    for task in sorted({k[2] for k in ev.keys(kind=AT, method="omp", regime="linear")}):
        common = sorted(set(ticket_levels(ev, kind=AT, method="omp", task=task, regime="linear", fraction=1.0))
                        & set(ticket_levels(ev, kind=STD, method="omp", task=task, regime="linear", fraction=1.0)))
        if common:
            c = cell(ev, (AT, "omp", task, "linear", 1.0, common[-1]), (STD, "omp", task, "linear", 1.0, common[-1]),
                     "sa", f"{task} s{common[-1]:g}")
            if isinstance(c, Cell):
                cells[task] = c
            excluded |= c == "excluded"
    if not cells:
        return (Result("inconclusive", "the linear-evaluation OMP runs did not learn") if excluded else
                Result("not run", "no linearly evaluated OMP tickets of θ_AT and θ_STD at this tier"))
    if not ev.domain_gap:
        return Result("not run", "no domain-gap scores (analysis/domain_gap.json)")
    tasks = [t for t in cells if t in ev.domain_gap]
    nums = {"tasks": {t: {"domain_gap": round(float(ev.domain_gap[t]), 4), **cells[t].as_dict()} for t in tasks}}
    if len(tasks) < 3:
        return Result("inconclusive", f"only {len(tasks)} task(s) with a domain gap; a rank correlation needs 3", nums)
    rho = spearman([float(ev.domain_gap[t]) for t in tasks], [cells[t].diff for t in tasks])
    far = max(tasks, key=lambda t: ev.domain_gap[t])
    near = min(tasks, key=lambda t: ev.domain_gap[t])
    spread = contrast(cells[far], cells[near], f"{far} minus {near}")
    nums.update(spearman=round(rho, 4), far_minus_near=spread.as_dict())
    if rho >= 0.8 and spread.result == "win":
        return Result("reproduced", f"ρ = {rho:.2f}; the robust advantage grows with the domain gap", nums)
    if rho <= -0.8 and spread.result == "loss":
        return Result("contradicted", f"ρ = {rho:.2f}; the robust advantage shrinks as the domain gap grows", nums)
    return Result("inconclusive", f"ρ = {rho:.2f}, far−near {spread.diff:+.3f} (threshold {spread.threshold:.3f})",
                  nums)
