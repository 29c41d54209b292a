"""The statistics of a claim: comparison cells and the decision over them.

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

Z = 2.0
MIN_CELLS = 3
EQUIVALENCE = 3.0  # mode "equal": a cell is equivalent when its whole interval lies within this many margins
#: metric -> (smallest difference that counts, higher is better)
MARGINS = {"sa": (0.01, True), "ra": (0.01, True), "transfer_attack_acc": (0.01, True),
           "ood_auroc": (0.02, True), "nll": (0.05, False), "ece": (0.01, False), "miou": (0.01, True)}

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


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (scipy; average ranks for ties); 0 when either side is constant."""
    import warnings

    from scipy.stats import spearmanr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant input: scipy warns and returns nan
        rho = float(spearmanr(x, y).statistic)
    return 0.0 if math.isnan(rho) else rho
