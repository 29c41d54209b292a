"""Did a transfer run learn? The plausibility guard applied to every evaluated run.

A run is marked ``learned: false`` when

* its training loss did not fall: the last epoch's training loss is not below the first
  epoch's (runs of one epoch have no such comparison), or
* its test SA is within the binomial margin of chance: not significantly above the better of
  ``1 / num_classes`` and always predicting the test set's majority class, in a one-sided exact
  binomial test at level ``ALPHA`` over the ``n`` test images.

Such a run is counted in ``metrics/summary.json`` (``not_learned``), marked in the report, and
never counts as matching in a double-win verdict (``repro.verdicts``). Runs on deliberately tiny
data fractions may legitimately fail the test: the summary names them.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

ALPHA = 0.01  # one-sided level of the "above chance" test


def chance_accuracy(y_test: np.ndarray, num_classes: int) -> float:
    """The better of uniform guessing and always predicting the majority test class."""
    y = np.asarray(y_test)
    if y.size == 0:
        raise ValueError("chance accuracy of an empty test set is undefined")
    majority = np.bincount(y.astype(np.int64), minlength=num_classes).max() / y.size
    return float(max(1.0 / num_classes, majority))


def binomial_threshold(n: int, p0: float, alpha: float = ALPHA) -> int:
    """Smallest ``k`` with ``P(X >= k) <= alpha`` for ``X ~ Binomial(n, p0)`` (scipy's exact inverse survival
    function: ``isf`` is the smallest ``x`` with ``P(X > x) <= alpha``)."""
    from scipy.stats import binom

    if n < 1 or not 0 < p0 < 1:
        raise ValueError(f"need n >= 1 and 0 < p0 < 1, got n={n}, p0={p0}")
    return int(binom.isf(alpha, n, p0)) + 1


def read_train_losses(history_csv: Path) -> list[float]:
    """Per-epoch training losses of a run's ``history.csv`` (fastai's CSVLogger)."""
    with Path(history_csv).open(newline="") as f:
        return [float(r["train_loss"]) for r in csv.DictReader(f) if r.get("train_loss") not in (None, "")]


def run_label(r: dict) -> str:
    """``<kind>[-<source>]-<method>/<task>/<regime>[-<recipe>]-f<fraction>-seed<s>@<level>``: one evaluated run in
    lists and logs, named like its run folder (a named recipe, ``transfer.recipes``, and an ε-grid model of RT's
    per-task ε, ``source``, are part of it)."""
    recipe = f"-{r['recipe']}" if r.get("recipe") else ""
    source = f"-{r['source']}" if r.get("source") else ""
    return "{kind}".format(**r) + source + "-{method}/{task}/{regime}".format(**r) + recipe + \
        "-f{fraction:g}-seed{seed}@{level}".format(**r)


def check_learned(train_losses: Sequence[float], sa: float, y_test: np.ndarray, num_classes: int,
                  alpha: float = ALPHA) -> dict:
    """``{"learned": bool, "learned_why": str}``; ``learned_why`` names every failed criterion."""
    why = []
    if len(train_losses) >= 2 and not train_losses[-1] < train_losses[0]:
        why.append(f"training loss did not fall ({train_losses[0]:.4g} in the first epoch, "
                   f"{train_losses[-1]:.4g} in the last)")
    n = int(np.asarray(y_test).size)
    p0 = chance_accuracy(y_test, num_classes)
    k = binomial_threshold(n, p0, alpha) if p0 < 1 else n + 1
    if round(sa * n) < k:
        why.append(f"test SA {sa:.3f} is not above chance {p0:.3f} (needs >= {k}/{n} = {k / n:.3f}, "
                   f"one-sided binomial p <= {alpha})")
    return {"learned": not why, "learned_why": "; ".join(why)}
