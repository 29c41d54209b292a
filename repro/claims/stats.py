"""The statistics of a claim: comparison cells, their noise, and the decision over them.

**One comparison cell** is claim side A against side B at one (task, sparsity, data fraction, ...):
``diff`` = mean_A - mean_B over seeds (sign-flipped for lower-is-better metrics, so that a positive
diff always supports the claim). Its standard error adds independent variance components, each with
its degrees of freedom (``repro.claims.evidence`` builds them):

* seeds: ``sd_A^2/n_A`` and ``sd_B^2/n_B`` (sample std over seeds, ``n - 1`` degrees of freedom; none
  when a side has one seed). A comparison of two metrics of the *same* runs (transfer attack against
  white-box RA) uses the std of the per-seed differences instead;
* the finite test set (infinite degrees of freedom). Accuracies: where both sides store per-image
  correctness (``correct`` in the run's metrics) on the same test images, the paired variance
  ``var_i(a_i - b_i) / N`` of the per-image differences (a McNemar-type comparison; ``a_i`` = the
  fraction of A's seeds that classify image ``i`` correctly); otherwise ``p(1-p)/N`` per side (an
  upper bound: every seed scores the same N images, so averaging seeds does not shrink it). NLL, ECE,
  OoD AUROC and mIoU: the bootstrap standard error over test images each run stores (``se``), per side.

The degrees of freedom of the sum are Welch-Satterthwaite's, and the cell's critical value is the t
quantile ``t_{0.975, df}`` (1.96 with no seed component; 12.7 with one degree of freedom). The cell is a
*win* when ``diff > max(margin, t * se)``, a *loss* when ``diff < -max(margin, t * se)``, a *tie*
otherwise (the margin is per metric, :data:`MARGINS`, and can be raised per claim).

**A claim over cells** (n cells, W wins, L losses) is decided by its mode:

* ``greater`` ("consistently"): reproduced if W >= n/2 and L = 0; contradicted if L >= n/2 and W = 0;
* ``mostly`` ("generally", "most sparsity ratios"): as ``greater`` but tolerating up to n/4 cells of
  the other sign;
* ``not_less`` (A >= B, e.g. transfer-attack accuracy >= white-box RA): reproduced if L = 0 and
  W >= n/2 (all ties: the data cannot tell A >= B from A < B, inconclusive); contradicted if L >= n/2;
* ``equal`` ("no significant difference"), an equivalence test with the bound ``EQUIVALENCE`` margins
  (3 pp for accuracies): a cell is *equivalent* when ``|diff| + t_{0.95} * se <= bound`` (two one-sided
  tests at 5 %, TOST: its 90 % interval inside the bound) and *beyond* the bound when
  ``|diff| - t_{0.95} * se > bound`` (the one-sided test puts it outside); reproduced if at least 3/4 of
  the cells are equivalent, contradicted if at least half are beyond the bound; a gap merely inside the
  noise shows neither.

inconclusive otherwise. Sign consistency across cells stands in for replication where a grid has
one seed: with one seed on some side and fewer than :data:`MIN_CELLS` cells the claim is
inconclusive (too few seeds).

Tests across units (tasks, seeds, panels) use exact distributions: :func:`binom_tail` (sign tests),
:func:`spearman_perm_p` (a permutation p-value of a rank correlation). ``ALPHA`` = 0.05 throughout.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

ALPHA = 0.05
QUANTILE = 0.975     # two-sided 95 % intervals: diff ± t_{0.975, df} · se
TOST_QUANTILE = 0.95  # equivalence (two one-sided tests at 5 %): the 90 % interval inside the bound
MIN_CELLS = 3
EQUIVALENCE = 3.0    # mode "equal": the equivalence bound, in margins (3 pp for accuracies)
INF = math.inf
#: metric -> (smallest difference that counts, higher is better)
MARGINS = {"sa": (0.01, True), "ra": (0.01, True), "ra_aa": (0.01, True), "transfer_attack_acc": (0.01, True),
           "ood_auroc": (0.02, True), "nll": (0.05, False), "ece": (0.01, False), "miou": (0.01, True)}


def tcrit(df: float, q: float = QUANTILE) -> float:
    """The t quantile ``q`` at ``df`` degrees of freedom (the normal one at df = inf)."""
    from scipy.stats import norm, t

    if df is None or math.isinf(df) or df > 1e6:
        return float(norm.ppf(q))
    return float(t.ppf(q, max(df, 1.0)))


def combine(components: list[tuple[float, float]]) -> tuple[float, float]:
    """(se, Welch-Satterthwaite degrees of freedom) of a sum of independent variances [(var, df), ...]."""
    var = sum(v for v, _ in components)
    if var <= 0:
        return 0.0, INF
    denom = sum(v * v / d for v, d in components if v > 0 and not math.isinf(d))
    return math.sqrt(var), (INF if denom == 0 else var * var / denom)


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
    df: float = INF      # degrees of freedom of se (Welch-Satterthwaite)
    paired: bool = False  # test-set noise from per-image differences on shared images
    q: float = QUANTILE  # the quantile of the critical value (raised for a best-of-k cell)
    fixed: str | None = None  # a result set by the rule that built the cell (evidence.best_of)

    @property
    def crit(self) -> float:
        return tcrit(self.df, self.q)

    @property
    def threshold(self) -> float:
        return max(self.margin, self.crit * self.se)

    @property
    def equivalent(self) -> bool:
        """TOST: both one-sided tests at 5 % put the difference inside the bound (its 90 % interval within it)."""
        return abs(self.diff) + tcrit(self.df, TOST_QUANTILE) * self.se <= EQUIVALENCE * self.margin

    @property
    def beyond_bound(self) -> bool:
        """The one-sided test at 5 % puts the difference outside the bound."""
        return abs(self.diff) - tcrit(self.df, TOST_QUANTILE) * self.se > EQUIVALENCE * self.margin

    @property
    def result(self) -> str:
        if self.fixed:
            return self.fixed
        thr = self.threshold + 1e-9  # a difference exactly at the margin (up to float rounding) is a tie
        return "win" if self.diff > thr else ("loss" if self.diff < -thr else "tie")

    def as_dict(self) -> dict:
        d = {"cell": self.label, "diff": round(self.diff, 4), "se": round(self.se, 4),
             "df": None if math.isinf(self.df) else round(self.df, 2), "threshold": round(self.threshold, 4),
             "result": self.result, "seeds": self.seeds}
        if self.paired:
            d["paired"] = True
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
    se, df = combine([(c1.se ** 2, c1.df), (c2.se ** 2, c2.df)])
    return Cell(label, c1.diff - c2.diff, se, max(c1.margin, c2.margin), min(c1.seeds, c2.seeds), df=df,
                paired=c1.paired and c2.paired)


def fixed(label: str, diff: float, margin: float, seeds: int = 1) -> Cell:
    """A cell without a noise estimate (se = 0): decided on its margin alone (e.g. a paper's printed outcome)."""
    return Cell(label, diff, 0.0, margin, seeds)


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
            "paired_cells": sum(c.paired for c in cells),
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
        if lo == 0 and w >= half:
            return Result("reproduced", tally, nums)
        if lo >= half:
            return Result("contradicted", tally, nums)
    elif mode == "equal":
        eq = sum(c.equivalent for c in cells)
        beyond = sum(c.beyond_bound for c in cells)
        nums.update(equivalent=eq, beyond_bound=beyond)
        bound = f"{EQUIVALENCE:g} margins"
        if eq >= n - quarter:
            return Result("reproduced", f"{eq} of {n} cells equivalent within {bound}", nums)
        if beyond >= half:
            return Result("contradicted", f"{beyond} of {n} cells differ by more than {bound} beyond the noise", nums)
        return Result("inconclusive", f"{eq} of {n} cells equivalent, {beyond} beyond {bound} ({tally})", nums)
    else:
        raise ValueError(f"unknown decision mode {mode!r}; allowed: greater, mostly, not_less, equal")
    return Result("inconclusive", tally + (" (signs disagree)" if w and lo else " (gaps inside the noise)"), nums)


# --------------------------------------------------------------------------- exact tests across units

def binom_tail(k: int, n: int, p: float = 0.5) -> float:
    """P(X >= k) for X ~ Binomial(n, p): the one-sided p-value of k successes in n (a sign test at p = 1/2)."""
    if n <= 0 or k <= 0:
        return 1.0
    return float(sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1)))


def exact_decision(p_for: float, p_against: float, tally: str, test: str, nums: dict) -> Result:
    """Reproduced if the one-sided exact test for the claim has p <= ALPHA, contradicted if the one against it
    has, else inconclusive (``test`` names the test in the reason)."""
    if p_for <= ALPHA:
        return Result("reproduced", f"{tally}; {test} p = {p_for:.3f}", nums)
    if p_against <= ALPHA:
        return Result("contradicted", f"{tally}; {test} p = {p_against:.3f}", nums)
    return Result("inconclusive", f"{tally}; {test} p = {min(p_for, p_against):.3f} > {ALPHA}", nums)


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (scipy; average ranks for ties); 0 when either side is constant."""
    import warnings

    from scipy.stats import spearmanr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant input: scipy warns and returns nan
        rho = float(spearmanr(x, y).statistic)
    return 0.0 if math.isnan(rho) else rho


def spearman_perm_p(x: list[float], y: list[float], draws: int = 20000, seed: int = 0) -> float:
    """One-sided permutation p-value of Spearman's rho (P(rho_perm >= rho_obs) over permutations of y):
    exact up to 8 units, else ``draws`` random permutations (fixed seed) plus the observed one."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x), rankdata(y)
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return 1.0
    rx, ry = rx - rx.mean(), ry - ry.mean()
    obs = float(rx @ ry) - 1e-9  # rho is this dot product over a constant: permutations keep the constant
    n = len(x)
    if n <= 8:
        perms = np.array(list(itertools.permutations(range(n))))
        return float(np.mean(ry[perms] @ rx >= obs))
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((draws, n)), axis=1)
    return float((np.sum(ry[perms] @ rx >= obs) + 1) / (draws + 1))
