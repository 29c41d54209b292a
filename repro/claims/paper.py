"""The papers' own printed numbers through the same rules (``paper_figures/paper_values.yaml``).

A rule that calls the paper's own evidence "contradicted" is wrong, so every rule that reads numbers a paper
prints is run on them, and the outcome is shown beside ours (``paper_numbers`` of each claim). The papers print
means only: one "seed", no per-image records; where an accuracy's test set is known its binomial error is used
(CIFAR-10: 10,000 test images, also for RT Table I, whose dataset the paper does not name), otherwise a cell is
decided on its margin alone. The papers' backbones are their published models: every premise holds.

* DW extreme sparsities (Sec. 4.1, 4.2; ``dw_extreme_sparsity``): ``dw-exist`` (a ticket exists on a task when its
  printed extreme sparsity is above 0, is absent when it is 0) and ``dw-extreme-order`` (the units are the tasks);
* DW Table A2 (``dw_table_a2``): ``dw-no-gradient-masking``, ``dw-transfer-attack-sparse-beats-dense``;
* RT Table I (``rt_table_1``): ``rt-properties-accuracy``, ``-adversarial``, ``-ood`` (ResNet-50 rows: the claim's
  large-model premise), ``-calibration`` (descriptive);
* RT Table II (``rt_table_2``): ``rt-domain-gap`` and ``rt-vtab-count``, with each task's winner coded as a
  win / tie / loss (Robust / Match / Natural) and its FID as the domain gap.

DW Table 1 prints no numbers (``NO_NUMBERS``); DW's other results are figures without printed values.
"""
from __future__ import annotations

from typing import Callable

from .evidence import AT, FAT, RS, STD, Evidence
from .registry import CLAIMS, judge
from .stats import Result, fixed

N_CIFAR = 10000
#: the papers' models are the published checkpoints: every comparable-backbones premise holds
PAPER_CONTEXT = {"published": [STD, FAT, AT, RS], "model": {"arch": "resnet50"}}
KINDS = {"standard": STD, "fast_adversarial": FAT, "pgd_adversarial": AT}


def _dw_status(values: dict) -> dict[str, dict[str, float]]:
    es = values["dw_extreme_sparsity"]["values"]
    out = {}
    for key, kind in KINDS.items():
        row = es.get(f"{key}-imp") or {}
        out[kind] = {t: float(v) for t, v in row.items() if t != "cite"}
    return out


def dw_exist(values: dict) -> Result:
    from .dw import exist_decision

    es = _dw_status(values)
    return exist_decision({k: {t: "exists" if v > 0 else "absent" for t, v in tasks.items()} for k, tasks in es.items()})


def dw_extreme_order(values: dict) -> Result:
    from .dw import order_decision

    es = _dw_status(values)
    pairs = [(t, "paper", other, es[AT][t], es[other][t]) for other in (FAT, STD) for t in es[AT] if t in es[other]]
    return order_decision(pairs)


def _a2_rows(values: dict) -> list[dict]:
    tab = values["dw_table_a2"]
    rows = []
    for sp, ta, ra in tab["rows"]:
        lv = round(sp / 100, 4)
        rows.append({"kind": AT, "method": "dense" if lv == 0 else "imp", "task": tab["task"], "regime": "adversarial",
                     "fraction": 1.0, "level": lv, "seed": 0, "ra": ra / 100, "transfer_attack_acc": ta / 100,
                     "n_robust": N_CIFAR, "n_test": N_CIFAR})
    return rows


def _table1_rows(values: dict, models=("R-18", "R-50")) -> list[dict]:
    tab = values["rt_table_1"]
    rows = []
    for model in models:
        for side, kind, method in (("robust", AT, "a_imp"), ("natural", STD, "imp")):
            v = tab["values"][model][side]
            for i, sp in enumerate(tab["sparsity_pct"]):
                rows.append({"kind": kind, "method": method, "task": f"{model} (Table I)", "regime": "standard",
                             "fraction": 1.0, "level": round(sp / 100, 4), "seed": 0, "sa": v["accuracy"][i] / 100,
                             "ra": v["adv_acc"][i] / 100, "nll": v["nll"][i], "ece": v["ece"][i],
                             "ood_auroc": v["roc_auc"][i], "n_test": N_CIFAR, "n_robust": N_CIFAR})
    return rows


def _on_rows(cid: str, rows: list[dict]) -> Result:
    return judge(CLAIMS.get(cid), Evidence(rows, None, "ra", PAPER_CONTEXT))


def _table2(values: dict):
    rows = values["rt_table_2"]["rows"]
    code = {"Robust": 1.0, "Match": 0.0, "Natural": -1.0}
    cells = {name: fixed(f"{name} ({winner})", code[winner], 0.5) for name, _, winner in rows}
    gaps = {name: float(fid) for name, fid, _ in rows}
    return cells, gaps


def rt_domain_gap(values: dict) -> Result:
    from .rt import domain_gap_decision

    return domain_gap_decision(*_table2(values))


def rt_vtab_count(values: dict) -> Result:
    from .rt import count_decision

    cells, _ = _table2(values)
    return count_decision({t: c.result for t, c in cells.items()})


#: the papers' tables that print no numbers, so no rule can be run on them (every other table is read by SOURCES)
NO_NUMBERS = {"DW Table 1": "the setup summary: defines a double-win ticket (matching under standard training on SA "
                            "and adversarial training on SA and RA), the definition dw-exist applies"}

#: claim id -> (the paper's numbers it reads, the rule on them)
SOURCES: dict[str, tuple[str, Callable[[dict], Result]]] = {
    "dw-exist": ("DW Sec. 4.1/4.2 extreme sparsities", dw_exist),
    "dw-extreme-order": ("DW Sec. 4.1/4.2 extreme sparsities", dw_extreme_order),
    "dw-no-gradient-masking": ("DW Table A2", lambda v: _on_rows("dw-no-gradient-masking", _a2_rows(v))),
    "dw-transfer-attack-sparse-beats-dense": (
        "DW Table A2", lambda v: _on_rows("dw-transfer-attack-sparse-beats-dense", _a2_rows(v))),
    "rt-properties-accuracy": ("RT Table I", lambda v: _on_rows("rt-properties-accuracy", _table1_rows(v))),
    "rt-properties-adversarial": ("RT Table I", lambda v: _on_rows("rt-properties-adversarial", _table1_rows(v))),
    "rt-properties-ood": ("RT Table I (ResNet-50 rows)",
                          lambda v: _on_rows("rt-properties-ood", _table1_rows(v, ("R-50",)))),
    "rt-properties-calibration": ("RT Table I", lambda v: _on_rows("rt-properties-calibration", _table1_rows(v))),
    "rt-domain-gap": ("RT Table II", rt_domain_gap),
    "rt-vtab-count": ("RT Table II (winner row)", rt_vtab_count),
}


def evaluate_paper(values: dict) -> dict[str, dict]:
    """claim id -> {outcome, reason, source} of its rule on the papers' printed numbers (the claims they bear on)."""
    out = {}
    for cid, (source, fn) in SOURCES.items():
        r = fn(values)
        out[cid] = {"outcome": r.outcome, "reason": r.reason, "source": source}
    return out
