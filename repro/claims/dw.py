"""The claims of Double-Win (Chen et al., ICML 2022), each with its quote, test, premises and decision rule."""
from __future__ import annotations

from ..verdicts import matching
from .evidence import (AT, DW_METRICS, FAT, HIGH_SPARSITY, STD, Evidence, best_of, cell, dense_seeds_ok, high,
                       ticket_levels, versus, without_field)
from .premises import comparable_backbones, matches_at_lowest_level, sweep_reaches
from .registry import claim, compared
from .stats import Cell, Result, binom_tail, contrast, decide, exact_decision

KINDS = (STD, FAT, AT)
ROBUST_VS_STD = comparable_backbones((AT, STD), (FAT, STD))
AT_VS_OTHERS = comparable_backbones((AT, FAT), (AT, STD))


# --------------------------------------------------------------------------- Sec. 4.1: existence and order

def _criterion_cells(ev: Evidence, kind: str, task: str, lv: float, method: str = "imp") -> list:
    """Ticket minus dense on the three double-win criteria at one level (cells with the noise of both sides)."""
    out = []
    for regime, metric in DW_METRICS:
        out.append(cell(ev, (kind, method, task, regime, 1.0, lv), (kind, "dense", task, regime, 1.0, 0.0), metric,
                        f"{kind} {task} s{lv:g} {regime} {metric}"))
    return out


def exist_status(ev: Evidence, kind: str, task: str, verdict: dict) -> str:
    """``exists`` (some level double-win by the papers' rule: mean >= dense mean - 1 dense std on all three
    criteria), ``absent`` (at every level some criterion lies below that bound by more than the noise of the
    ticket and dense seeds and of the test set), else ``undetermined``."""
    if verdict.get("extreme_sparsity", 0) > 0:
        return "exists"
    for lv_row in verdict["levels"]:
        lv = lv_row["level"]
        sds = [ev.groups[(kind, "dense", task, regime, 1.0, 0.0)].get(f"{metric}_std", 0.0)
               for regime, metric in DW_METRICS]
        cells = _criterion_cells(ev, kind, task, lv)
        if not any(isinstance(c, Cell) and c.diff + sd < -c.crit * c.se for c, sd in zip(cells, sds)):
            return "undetermined"
    return "absent"


def exist_decision(status: dict[str, dict[str, str]]) -> Result:
    """Per pretraining: ✓ if a double-win ticket exists on most of its tasks, ✗ if it is absent beyond the
    noise on most; reproduced if every pretraining has ✓, contradicted if most have ✗."""
    per_kind = {}
    for k, tasks in status.items():
        n = len(tasks)
        ex = sum(s == "exists" for s in tasks.values())
        ab = sum(s == "absent" for s in tasks.values())
        per_kind[k] = "yes" if ex > n / 2 else ("no" if ab > n / 2 else "undetermined")
    nums = {"status": status, "per_pretraining": per_kind}
    if len(per_kind) == len(KINDS) and all(v == "yes" for v in per_kind.values()):
        return Result("reproduced", "every pretraining has a double-win ticket on most tasks", nums)
    if sum(v == "no" for v in per_kind.values()) > len(KINDS) / 2:
        return Result("contradicted", "most pretrainings have no double-win ticket on most tasks, beyond the noise",
                      nums)
    return Result("inconclusive", "; ".join(f"{k}: {v}" for k, v in per_kind.items()), nums)


@claim("dw-exist", "DW", "Sec. 4.1, observation 1", "Fig. 3",
       "Double-win lottery tickets generally exist from various pre-training, showing unimpaired performance on "
       "diverse downstream tasks for both standard and adversarial transfer.",
       "IMP tickets (m^ST) of θ_STD, θ_FAT, θ_AT, full data, per task: a double-win ticket exists if some level is "
       "matching (mean ≥ dense mean − 1 dense std over seeds, the paper's rule) on standard SA, adversarial SA and "
       "adversarial RA; it is absent if at every level some criterion is below that bound by more than t·se (the "
       "ticket's and the dense model's seed noise and the test set). Reproduced if every pretraining has one on most "
       "of its tasks (the paper: θ_STD on 2 of 3); contradicted if most pretrainings lack one on most tasks beyond "
       "the noise; inconclusive otherwise or when a dense baseline has < 2 seeds.",
       items=("dw-fig3", "dw-extreme-sparsity"), uses_ra=True)
def _dw_exist(ev: Evidence) -> Result:
    verdicts = [v for v in ev.double_win(1.0) if v["method"] == "imp" and v["kind"] in KINDS]
    if not verdicts:
        return Result("not run", "no double-win verdicts of IMP tickets at this tier", {})
    ok, n = dense_seeds_ok(ev, KINDS, {v["task"] for v in verdicts})
    if not ok:
        return Result("inconclusive", f"too few seeds: dense baselines have {n} seed(s)",
                      {"extreme_sparsity": {v["kind"]: {v["task"]: v["extreme_sparsity"]} for v in verdicts}})
    status: dict[str, dict[str, str]] = {}
    for v in verdicts:
        status.setdefault(v["kind"], {})[v["task"]] = exist_status(ev, v["kind"], v["task"], v)
    r = exist_decision(status)
    r.numbers["extreme_sparsity"] = {k: {v["task"]: v["extreme_sparsity"] for v in verdicts if v["kind"] == k}
                                     for k in status}
    return r


def per_seed_extremes(ev: Evidence, kind: str, task: str, method: str = "imp") -> dict[int, float]:
    """seed -> the largest level at which that seed's ticket is double-win (the papers' rule against the dense
    model's mean and std over its seeds); 0 when none is."""
    dense = {regime: ev.groups.get((kind, "dense", task, regime, 1.0, 0.0)) for regime in ("standard", "adversarial")}
    if not all(dense.values()):
        return {}
    out: dict[int, float] = {}
    lvs = ticket_levels(ev, kind=kind, method=method, task=task, fraction=1.0)
    seeds = set()
    for lv in lvs:
        for regime in ("standard", "adversarial"):
            seeds |= set(ev.seed_values((kind, method, task, regime, 1.0, lv), "sa"))
    for s in sorted(seeds):
        best = 0.0
        for lv in lvs:
            ok = True
            for regime, metric in DW_METRICS:
                vals = ev.seed_values((kind, method, task, regime, 1.0, lv), metric)
                d = dense[regime]
                if s not in vals or f"{metric}_mean" not in d or not matching(vals[s], d[f"{metric}_mean"],
                                                                             d.get(f"{metric}_std", 0.0)):
                    ok = False
            if ok:
                best = max(best, lv)
        out[s] = best
    return out


def order_decision(pairs: list[tuple[str, object, str, float, float]]) -> Result:
    """Exact one-sided sign test over (task, seed, other pretraining) units of θ_AT's extreme sparsity against
    the other's (ties dropped): reproduced if AT's is higher in significantly many (p <= 0.05), contradicted if
    lower in significantly many, else inconclusive."""
    pos = sum(a > b for *_, a, b in pairs)
    neg = sum(a < b for *_, a, b in pairs)
    n = pos + neg
    p_pos, p_neg = binom_tail(pos, n), binom_tail(neg, n)
    nums = {"units": len(pairs), "at_higher": pos, "at_lower": neg, "ties": len(pairs) - n,
            "p_at_higher": round(p_pos, 4), "p_at_lower": round(p_neg, 4),
            "detail": [{"task": t, "seed": s, "other": o, "at": a, "other_value": b} for t, s, o, a, b in pairs]}
    tally = f"θ_AT higher in {pos}, lower in {neg}, tied in {len(pairs) - n} of {len(pairs)} (task, seed, other)"
    return exact_decision(p_pos, p_neg, tally, "sign test", nums)


@claim("dw-extreme-order", "DW", "Sec. 4.1, observation 2", "Fig. 3",
       "Taking the extreme sparsity as an indicator, the adversarial pre-training finds double-win lottery tickets "
       "to the extreme sparsity of 83.22% ∼ 96.48% while fast adversarial, standard pre-training reach the extreme "
       "sparsity level of 20.00% ∼ 89.26% and 0.00% ∼ 89.26%.",
       "Per-seed extreme double-win sparsity of IMP tickets, full data: for each task and seed, the largest level at "
       "which that seed's ticket is matching on all three criteria (against the dense model's mean − 1 std over "
       "seeds). Units: (task, seed, other ∈ {θ_FAT, θ_STD}), θ_AT's seed against the other's same-numbered seed. "
       "Exact one-sided sign test, ties dropped: reproduced if θ_AT is higher in significantly many units "
       "(p ≤ 0.05), contradicted if lower in significantly many; inconclusive otherwise or when a dense baseline has "
       "< 2 seeds.",
       items=("dw-fig3", "dw-extreme-sparsity"), uses_ra=True,
       premises=(matches_at_lowest_level(KINDS), AT_VS_OTHERS))
def _dw_extreme_order(ev: Evidence) -> Result:
    tasks = sorted({v["task"] for v in ev.double_win(1.0) if v["method"] == "imp"})
    ex = {(k, t): per_seed_extremes(ev, k, t) for k in KINDS for t in tasks}
    tasks = [t for t in tasks if all(ex[(k, t)] for k in KINDS)]
    if not tasks:
        return Result("not run", "no task with double-win verdicts for all of θ_STD, θ_FAT, θ_AT", {})
    ok, n = dense_seeds_ok(ev, KINDS, tasks)
    if not ok:
        return Result("inconclusive", f"too few seeds: dense baselines have {n} seed(s)", {})
    pairs = []
    for t in tasks:
        for other in (FAT, STD):
            for s, a in ex[(AT, t)].items():
                if s in ex[(other, t)]:
                    pairs.append((t, s, other, a, ex[(other, t)][s]))
    return order_decision(pairs)


compared("dw-at-outperforms", "DW", "Sec. 4.1, observation 2", "Fig. 3",
         "Subnetworks identified from adversarial pre-training consistently outperform the ones from fast adversarial "
         "and standard pre-training across all three downstream classification tasks",
         "θ_AT IMP tickets against θ_FAT and θ_STD IMP tickets, full data, every sweep level > 0 and task, on standard "
         "SA, adversarial SA and adversarial RA: difference of means over seeds per cell; mode greater.",
         items=("dw-fig3",), uses_ra=True, premises=(AT_VS_OTHERS,),
         pairs=[((AT, 'imp'), (FAT, 'imp')), ((AT, 'imp'), (STD, 'imp'))],
         on=DW_METRICS, mode="greater", what="θ_AT/θ_FAT/θ_STD IMP tickets")


@claim("dw-fat-over-std-adversarial", "DW", "Sec. 4.1, observation 4", "Fig. 3",
       "Take the result on CIFAR-100 as an example, the subnetworks drawn from fast adversarial pre-training shows "
       "superior performance than the ones from "
       "standard training in the range of sparsity level from 0.00% ∼ 98.56% under adversarial training.",
       "Derived (the paper gives it as its CIFAR-100 example; read here on every task; formerly dw-robust-ra, which "
       "also compared θ_AT): θ_FAT against θ_STD IMP tickets and dense models (sparsity 0.00 %), adversarial "
       "transfer, full data, SA and RA, every level; difference of means per cell; mode greater.",
       items=("dw-fig3",), uses_ra=True, kind="derived", premises=(comparable_backbones((FAT, STD)),))
def _dw_fat_over_std(ev: Evidence) -> Result:
    cells = versus(ev, (FAT, "imp"), (STD, "imp"), ["sa", "ra"], ["adversarial"])
    for task in sorted({k[2] for k in ev.keys(kind=FAT, method="dense", regime="adversarial", fraction=1.0)}):
        for metric in ("sa", "ra"):
            c = cell(ev, (FAT, "dense", task, "adversarial", 1.0, 0.0), (STD, "dense", task, "adversarial", 1.0, 0.0),
                     metric, f"{metric} adversarial {task} dense")
            if c is not None:
                cells.append(c)
    return decide(cells, "greater", "adversarially transferred θ_FAT/θ_STD tickets")


# --------------------------------------------------------------------------- Sec. 4.1 observation 3 and 4

def _gap_cells(ev: Evidence, other: str, regime: str, metric: str, task: str) -> dict[float, Cell]:
    """level -> θ_AT minus ``other`` (IMP tickets; the dense models at level 0)."""
    out = {}
    d = cell(ev, (AT, "dense", task, regime, 1.0, 0.0), (other, "dense", task, regime, 1.0, 0.0), metric, "dense")
    if isinstance(d, Cell):
        out[0.0] = d
    for lv in ticket_levels(ev, kind=AT, method="imp", task=task, regime=regime, fraction=1.0):
        c = cell(ev, (AT, "imp", task, regime, 1.0, lv), (other, "imp", task, regime, 1.0, lv), metric, f"s{lv:g}")
        if isinstance(c, Cell):
            out[lv] = c
    return out


@claim("dw-at-gain-stable-standard", "DW", "Sec. 4.1, observation 3", "Fig. 3",
       "training θ_{AT} (i) remain stable in the standard transfer (the first row in Figure 3) even at extreme "
       "sparsity like 98.56%",
       "The gain of θ_AT over θ_STD and over θ_FAT (standard transfer SA, full data) at each IMP level minus the same "
       "gain of the dense models, per task; mode equal (reproduced if at least 3/4 of the changes lie within ±3 pp "
       "with their whole interval).",
       items=("dw-fig3",), premises=(AT_VS_OTHERS,))
def _dw_at_gain_stable(ev: Evidence) -> Result:
    cells = []
    for task in sorted({k[2] for k in ev.keys(kind=AT, method="imp", regime="standard", fraction=1.0)}):
        for other in (STD, FAT):
            gaps = _gap_cells(ev, other, "standard", "sa", task)
            if 0.0 in gaps:
                cells += [contrast(c, gaps[0.0], f"θ_AT−{other} {task} s{lv:g} minus dense")
                          for lv, c in gaps.items() if lv > 0]
    return decide(cells, "equal", "θ_AT/θ_STD/θ_FAT IMP tickets and dense models in standard transfer")


@claim("dw-at-gain-shrinks-adversarial", "DW", "Sec. 4.1, observation 3", "Fig. 3",
       "(ii) first increase then diminish in adversarial transfer after 95.60% sparsity.",
       "The gain of θ_AT over θ_STD and θ_FAT IMP tickets (adversarial transfer SA and RA, full data) at the highest "
       "level ≤ 95.60 % minus the dense models' gain (it increased), and that gain minus the gain at each level above "
       "95.60 % (it diminishes), per task; mode greater. Needs sweep levels on both sides of 95.60 %.",
       items=("dw-fig3",), uses_ra=True, premises=(sweep_reaches(0.956), AT_VS_OTHERS))
def _dw_at_gain_shrinks(ev: Evidence) -> Result:
    cells = []
    for task in sorted({k[2] for k in ev.keys(kind=AT, method="imp", regime="adversarial", fraction=1.0)}):
        for other in (STD, FAT):
            for metric in ("sa", "ra"):
                gaps = _gap_cells(ev, other, "adversarial", metric, task)
                below = [lv for lv in gaps if 0 < lv <= 0.956]
                if not below or 0.0 not in gaps:
                    continue
                ref = max(below)
                cells.append(contrast(gaps[ref], gaps[0.0], f"{other} {metric} {task}: s{ref:g} minus dense"))
                cells += [contrast(gaps[ref], gaps[lv], f"{other} {metric} {task}: s{ref:g} minus s{lv:g}")
                          for lv in gaps if lv > 0.956]
    return decide(cells, "greater", "θ_AT/θ_STD/θ_FAT IMP tickets in adversarial transfer")


@claim("dw-fat-std-similar-standard", "DW", "Sec. 4.1, observation 4", "Fig. 3",
       "While for the standard training regime, fast adversarial and standard pre-training locate subnetworks with "
       "similar performance across the sparsity level from 0.00% to 95.60%",
       "θ_FAT against θ_STD IMP tickets and dense models, standard transfer SA, full data, every level ≤ 95.60 %, "
       "every task; mode equal (reproduced if at least 3/4 of the cells lie within ±3 pp with their whole interval; "
       "contradicted if half are beyond it with theirs).",
       items=("dw-fig3",), premises=(comparable_backbones((FAT, STD)),))
def _dw_fat_std_similar(ev: Evidence) -> Result:
    cells = versus(ev, (FAT, "imp"), (STD, "imp"), ["sa"], ["standard"], levels=lambda lv: 0 < lv <= 0.956)
    for task in sorted({k[2] for k in ev.keys(kind=FAT, method="dense", regime="standard", fraction=1.0)}):
        c = cell(ev, (FAT, "dense", task, "standard", 1.0, 0.0), (STD, "dense", task, "standard", 1.0, 0.0), "sa",
                 f"sa standard {task} dense")
        if c is not None:
            cells.append(c)
    return decide(cells, "equal", "θ_FAT/θ_STD tickets in standard transfer")


# --------------------------------------------------------------------------- Sec. 4.2: pruning methods

compared("dw-imp-beats-omp", "DW", "Sec. 4.2", "Fig. 4",
         "IMP with standard and adversarial training shows similar performance, and both of them are better than OMP "
         "and random pruning.",
         f"θ_AT: IMP (m^ST) and A-IMP (m^AT) tickets against OMP at high sparsity (levels ≥ {HIGH_SPARSITY:.0%}), "
         "full data, on the three double-win criteria; difference of means per cell; mode greater.",
         items=("dw-fig4",), uses_ra=True,
         pairs=[((AT, 'imp'), (AT, 'omp')), ((AT, 'a_imp'), (AT, 'omp'))],
         on=DW_METRICS, mode="greater", levels=high, what="θ_AT IMP/OMP tickets at high sparsity")


compared("dw-aimp-beats-random", "DW", "Sec. 4.2", "Fig. 4",
         "IMP with standard and adversarial training shows similar performance, and both of them are better than OMP "
         "and random pruning.",
         f"θ_AT: A-IMP (m^AT) tickets against random pruning at high sparsity (levels ≥ {HIGH_SPARSITY:.0%}), full "
         "data, on the three double-win criteria; difference of means per cell; mode greater (IMP m^ST against random: "
         "dw-imp-beats-random).",
         items=("dw-fig4",), uses_ra=True,
         pairs=[((AT, 'a_imp'), (AT, 'random'))],
         on=DW_METRICS, mode="greater", levels=high, what="θ_AT A-IMP/random tickets at high sparsity")


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
         "level > 0, full data, on the three double-win criteria; mode equal (an equivalence test with a 3 pp bound: "
         "reproduced if at least 3/4 of the cells have their whole interval, |diff| + t·se, within it; contradicted "
         "only if half have theirs outside it, |diff| − t·se > 3 pp).",
         items=("dw-fig4",), uses_ra=True,
         pairs=[((AT, 'imp'), (AT, 'a_imp'))],
         on=DW_METRICS, mode="equal", what="θ_AT IMP and A-IMP tickets")


# --------------------------------------------------------------------------- Sec. 5: data-limited transfer

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
         items=("dw-fig5",), uses_ra=True, premises=(ROBUST_VS_STD,),
         pairs=[((AT, 'imp'), (STD, 'imp')), ((FAT, 'imp'), (STD, 'imp'))],
         on=[('adversarial', 'sa'), ('adversarial', 'ra')], mode="greater", fractions=(0.1, 0.01),
         what="data-limited adversarial transfer")


@claim("dw-data-amplified", "DW", "Abstract; Sec. 5", "Fig. 5",
       "Our results show that the benefits from robust pre-training are amplified by the lottery ticket scheme, as "
       "well as the data-limited transfer setting.",
       "The robust-minus-standard gap (θ_AT and θ_FAT against θ_STD IMP tickets, adversarial transfer, SA and RA) "
       "with 10 % / 1 % data minus the same gap with 100 % data, per (kind, metric, task, level); standard error "
       "of the contrast from both gaps; mode greater.",
       items=("dw-fig5",), uses_ra=True, premises=(ROBUST_VS_STD,))
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


@claim("dw-tickets-amplify", "DW", "Abstract; Sec. 5, observation 2", "Fig. 5",
       "For data-limited transferring, sparse tickets derived from robust pre-training … surpass their dense "
       "counterpart by up to … SA and … RA, which indicates the enhanced data-efficiency also comes from appropriate "
       "sparse structures.",
       "The paper's evidence for the abstract's 'amplified by the lottery ticket scheme': θ_FAT and θ_AT IMP tickets "
       "against their own dense model, adversarial transfer with 10 % and 1 % data, SA and RA, per (pretraining, "
       "fraction, task, metric): the best level ('up to'), its critical value Bonferroni-raised over the levels "
       "(a win if some level wins at t_{1−0.025/k}·se, a loss if every level loses at it); mode mostly.",
       items=("dw-fig5",), uses_ra=True)
def _dw_tickets_amplify(ev: Evidence) -> Result:
    cells = []
    for kind in (FAT, AT):
        for f in (0.1, 0.01):
            for task in sorted({k[2] for k in ev.keys(kind=kind, method="imp", regime="adversarial", fraction=f)}):
                dense = (kind, "dense", task, "adversarial", f, 0.0)
                for metric in ("sa", "ra"):
                    per_level = [cell(ev, (kind, "imp", task, "adversarial", f, lv), dense, metric, f"s{lv:g}")
                                 for lv in ticket_levels(ev, kind=kind, method="imp", task=task, regime="adversarial",
                                                         fraction=f)]
                    if any(isinstance(c, Cell) for c in per_level):
                        cells.append(best_of(per_level, f"{kind} f{f:g} {task} {metric} ticket−dense"))
                    elif "excluded" in per_level:
                        cells.append("excluded")
    return decide(cells, "mostly", "data-limited adversarial transfer of robust IMP tickets and their dense models")


@claim("dw-fat-middle-at-high", "DW", "Sec. 1 (contribution 3), Sec. 5, observation 3", "Fig. 5",
       "In this specific situation, FAT can surprisingly find higher-quality subnetworks with small sparsity while "
       "AT overtakes in a larger sparsity range.",
       "Adversarial transfer with 10 % and 1 % data, SA and RA, per task: θ_FAT against θ_AT IMP tickets at the "
       "middle level (the sweep level nearest 73.79 %, below the highest) and θ_AT against θ_FAT at the highest "
       "level; difference of means per cell; mode greater. Needs two sweep levels.",
       items=("dw-fig5",), uses_ra=True, premises=(comparable_backbones((FAT, AT)),))
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


compared("dw-a10-robust-helps", "DW", "Sec. A2", "Fig. A10",
         "Results of 60 sparse models are collected in Figure A10, showing consistent conclusion that robust "
         "pre-training helps.",
         "The segmentation panel (the segment stage's runs, metrics/segment.json): IMP tickets of θ_AT and θ_FAT "
         "against θ_STD's, mIoU (bootstrap standard error over test images), every level; mode greater.",
         items=("dw-figA10",), premises=(ROBUST_VS_STD,),
         pairs=[((AT, 'imp'), (STD, 'imp')), ((FAT, 'imp'), (STD, 'imp'))],
         on=[('segmentation', 'miou')], mode="greater", what="segmentation transfer of IMP tickets")


# --------------------------------------------------------------------------- Sec. A2: transfer attack

def _ta_keys(ev: Evidence):
    return ev.keys(kind=AT, method=("dense", "imp"), regime="adversarial", fraction=1.0)


@claim("dw-no-gradient-masking", "DW", "Sec. A2", "Table A2",
       "Table A2 demonstrates that the sparse subnetworks consistently outperform the dense counterpart under transfer "
       "attack from an unseen robust model, which is aligned with the vanilla robust accuracy. This piece of evidence "
       "excludes the possibility of gradient masking for our obtain RA improvements.",
       "θ_AT dense and IMP tickets, adversarial transfer, full data: transfer-attack accuracy (adversarial examples "
       "from the independently trained reference model) against white-box RA of the same runs, per level, paired per "
       "image (the same attacked images of the same runs; per-seed differences for the seed noise); mode not_less "
       "(reproduced if no cell is below and at least half are above beyond the noise; all ties are inconclusive).",
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
       "every level > 0 and task; difference of means per cell (paired per image where both runs stored it); mode "
       "greater.",
       items=("dw-tableA2",))
def _dw_ta_sparse(ev: Evidence) -> Result:
    cells = []
    for k in _ta_keys(ev):
        if k[1] == "imp":
            c = cell(ev, k, (AT, "dense", k[2], "adversarial", 1.0, 0.0), "transfer_attack_acc", f"{k[2]} s{k[5]:g}")
            if c is not None:
                cells.append(c)
    return decide(cells, "greater", "θ_AT IMP and dense runs with a transfer attack")
