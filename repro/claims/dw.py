"""The claims of Double-Win (Chen et al., ICML 2022), each with its quote, test and decision rule."""
from __future__ import annotations

import math

from .evidence import (AT, DW_METRICS, FAT, HIGH_SPARSITY, STD, Evidence, cell, dense_seeds_ok, dw_cells, extreme, high,
                       ticket_levels, versus, without_field)
from .registry import claim, compared
from .stats import Cell, Result, contrast, decide


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
    full = {without_field(c, "fraction"): c for c in _data_cells(ev, (1.0,)) if isinstance(c, Cell)}
    cells = []
    for c in _data_cells(ev, (0.1, 0.01)):
        if not isinstance(c, Cell):
            cells.append(c)
            continue
        ref = full.get(without_field(c, "fraction"))
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
