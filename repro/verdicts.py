"""Aggregation over seeds and the Double-Win "matching" rule.

A ticket is *matching* on a metric when its mean over seeds is at least the
dense model's mean minus one standard deviation (Double-Win Sec. 4.1: "within
one standard deviation of the unpruned dense network", or above). A
*double-win* ticket is matching under all three criteria: standard-transfer
SA, adversarial-transfer SA and adversarial-transfer RA. The *extreme
sparsity* is the largest sparsity level at which the ticket is double-win.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable

METRICS = ("sa", "ra", "ece", "nll", "ood_auroc", "transfer_attack_acc", "measured_sparsity")
GROUP = ("kind", "method", "task", "regime", "fraction", "level")


def mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    m = sum(values) / n
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return m, sd


def aggregate(rows: Iterable[dict]) -> list[dict]:
    """Mean and sample std over seeds of every metric, per (kind, method, task, regime, fraction, level)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[tuple(r[k] for k in GROUP)].append(r)
    out = []
    for key, rs in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        row = dict(zip(GROUP, key))
        row["n_seeds"] = len(rs)
        for m in METRICS:
            vals = [r[m] for r in rs if r.get(m) is not None]
            if vals:
                row[f"{m}_mean"], row[f"{m}_std"] = mean_std(vals)
        out.append(row)
    return out


def matching(ticket_mean: float, dense_mean: float, dense_std: float) -> bool:
    return ticket_mean >= dense_mean - dense_std - 1e-12


def double_win(agg: list[dict], fraction: float = 1.0) -> list[dict]:
    """Per (kind, method, task): the verdict at every level and the extreme sparsity."""
    idx = {(r["kind"], r["method"], r["task"], r["regime"], r["fraction"], r["level"]): r for r in agg}
    combos = sorted({(r["kind"], r["method"], r["task"]) for r in agg
                     if r["method"] != "dense" and r["fraction"] == fraction})
    out = []
    for kind, method, task in combos:
        d_std = idx.get((kind, "dense", task, "standard", fraction, 0.0))
        d_adv = idx.get((kind, "dense", task, "adversarial", fraction, 0.0))
        levels = sorted({r["level"] for r in agg if (r["kind"], r["method"], r["task"]) == (kind, method, task)})
        per_level = []
        for lv in levels:
            t_std = idx.get((kind, method, task, "standard", fraction, lv))
            t_adv = idx.get((kind, method, task, "adversarial", fraction, lv))
            if not (d_std and d_adv and t_std and t_adv):
                continue
            crit = {
                "standard_sa": matching(t_std["sa_mean"], d_std["sa_mean"], d_std["sa_std"]),
                "adversarial_sa": matching(t_adv["sa_mean"], d_adv["sa_mean"], d_adv["sa_std"]),
                "adversarial_ra": matching(t_adv["ra_mean"], d_adv["ra_mean"], d_adv["ra_std"]),
            }
            per_level.append({"level": lv, "measured_sparsity": t_std.get("measured_sparsity_mean", lv),
                              **crit, "double_win": all(crit.values())})
        if not per_level:
            continue
        wins = [r["level"] for r in per_level if r["double_win"]]
        out.append({"kind": kind, "method": method, "task": task, "fraction": fraction,
                    "extreme_sparsity": max(wins) if wins else 0.0, "levels": per_level})
    return out
