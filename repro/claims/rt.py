"""The claims of Robust Tickets (Fu et al., DAC 2023), each with its quote, test, premises and decision rule."""
from __future__ import annotations

import math

from .evidence import AT, RS, STD, Evidence, cell, high, mild, ticket_levels, versus, without_field
from .premises import comparable_backbones, large_model
from .registry import claim, compared
from .stats import ALPHA, MARGINS, Cell, Result, binom_tail, contrast, decide, spearman, spearman_perm_p

ROBUST_OMP, NATURAL_OMP = (AT, "omp"), (STD, "omp")
ROBUST_VS_NATURAL = comparable_backbones((AT, STD))


compared("rt-finetune", "RT", "Sec. III-B", "Fig. 1",
         "aligning with our hypothesis, robust tickets can consistently outperform the nature tickets under the "
         "whole-model finetuning paradigm",
         "OMP tickets of θ_AT (robust) against θ_STD (natural), whole-model (standard) fine-tuning, full data, SA, "
         "every level > 0 and task; difference of means per cell; mode greater.",
         items=("rt-fig1",), premises=(ROBUST_VS_NATURAL,),
         pairs=[(ROBUST_OMP, NATURAL_OMP)],
         on=[('standard', 'sa')], mode="greater", what="fine-tuned OMP tickets")


compared("rt-linear", "RT", "Sec. III-B", "Fig. 2",
         "As shown in Fig. 2, we can observe that robust tickets aggressively win the transferred accuracy, e.g., a "
         "≥ 11.75% higher accuracy on ResNet50/CIFAR-100 till the sparsity ratio of 0.92.",
         "OMP tickets of θ_AT against θ_STD under linear evaluation (frozen backbone), full data, SA, every level > 0 "
         "and task; difference of means per cell; mode greater.",
         items=("rt-fig2", "rt-fig9"), premises=(ROBUST_VS_NATURAL,),
         pairs=[(ROBUST_OMP, NATURAL_OMP)],
         on=[('linear', 'sa')], mode="greater", what="linearly evaluated OMP tickets")


@claim("rt-linear-margin", "RT", "Sec. III-B", "Fig. 1, Fig. 2",
       "This indicates the superiority of robust tickets as a fixed feature extractor with notably better tolerance "
       "to potential domain shifts, thanks to the robustness priors.",
       "Derived (the paper implies it by its examples, ≥ 11.75 pp under linear evaluation against 1.95–2.38 pp under "
       "fine-tuning, but does not state it): the robust-minus-natural OMP gap (SA) under linear evaluation minus the "
       "same gap under whole-model fine-tuning, per (task, level > 0); mode greater.",
       items=("rt-fig1", "rt-fig2"), kind="derived", premises=(ROBUST_VS_NATURAL,))
def _rt_linear_margin(ev: Evidence) -> Result:
    fine = {without_field(c, "regime"): c for c in versus(ev, ROBUST_OMP, NATURAL_OMP, ["sa"], ["standard"])
            if isinstance(c, Cell)}
    cells = []
    for c in versus(ev, ROBUST_OMP, NATURAL_OMP, ["sa"], ["linear"]):
        ref = fine.get(without_field(c, "regime")) if isinstance(c, Cell) else None
        if ref is not None:
            cells.append(contrast(c, ref, f"{c.label} minus fine-tuning"))
        elif not isinstance(c, Cell):
            cells.append(c)
    return decide(cells, "greater", "OMP tickets under both linear evaluation and fine-tuning")


@claim("rt-advantage-shrinks", "RT", "Sec. III-B (key insight 2)", "Fig. 1, Fig. 2",
       "their advantages over natural ones are smaller than the ones under relatively low sparsity since fewer neurons "
       "during pretraining are inherited in the former case.",
       "The robust-minus-natural OMP gap (SA, full data) at the lowest sweep level minus the gap at the highest, per "
       "(regime: whole-model fine-tuning, linear evaluation; task); standard error of the contrast from both gaps; "
       "mode greater.",
       items=("rt-fig1", "rt-fig2"), premises=(ROBUST_VS_NATURAL,))
def _rt_advantage_shrinks(ev: Evidence) -> Result:
    cells = []
    for regime in ("standard", "linear"):
        by: dict[str, dict[float, Cell]] = {}
        for c in versus(ev, ROBUST_OMP, NATURAL_OMP, ["sa"], [regime]):
            if isinstance(c, Cell):
                by.setdefault(c.coords["task"], {})[c.coords["level"]] = c
            elif c == "excluded":
                cells.append(c)
        for task, gaps in sorted(by.items()):
            if len(gaps) >= 2:
                lo, hi = min(gaps), max(gaps)
                cells.append(contrast(gaps[lo], gaps[hi], f"{regime} {task}: s{lo:g} minus s{hi:g}"))
    return decide(cells, "greater", "OMP tickets at two or more levels")


compared("rt-structured", "RT", "Sec. III-B", "Fig. 3",
         "robust tickets consistently win across different sparsity patterns and evaluation paradigms",
         "Row-, kernel- and channel-wise OMP tickets of θ_AT against θ_STD, whole-model fine-tuning and linear "
         "evaluation, full data, SA, every level > 0 and task; difference of means per cell; mode greater.",
         items=("rt-fig3",), premises=(ROBUST_VS_NATURAL,),
         pairs=[((AT, g), (STD, g)) for g in ('omp_row', 'omp_kernel', 'omp_channel')],
         on=[('standard', 'sa'), ('linear', 'sa')], mode="greater", what="structured OMP tickets")

GRANULARITY = ("omp", "omp_row", "omp_kernel", "omp_channel")  # finest to coarsest


@claim("rt-structured-coarser", "RT", "Sec. III-B", "Fig. 3",
       "it is harder for more structured tickets to inherit robustness priors according to the smaller gains over "
       "natural ones with more coarse-grained sparsity patterns.",
       "The robust-minus-natural OMP gap (SA, full data) of each granularity minus that of the next coarser one "
       "(unstructured → row → kernel → channel), per (regime: fine-tuning, linear evaluation; task; level > 0); "
       "standard error of the contrast; mode mostly.",
       items=("rt-fig3",), premises=(ROBUST_VS_NATURAL,))
def _rt_structured_coarser(ev: Evidence) -> Result:
    gaps = {}
    for g in GRANULARITY:
        for c in versus(ev, (AT, g), (STD, g), ["sa"], ["standard", "linear"]):
            if isinstance(c, Cell):
                gaps[(g, without_field(c, "side"))] = c
    cells = []
    for fine, coarse in zip(GRANULARITY, GRANULARITY[1:]):
        for (g, where), c in gaps.items():
            if g == fine and (coarse, where) in gaps:
                x = dict(where)
                cells.append(contrast(c, gaps[(coarse, where)],
                                      f"{fine} minus {coarse} {x['regime']} {x['task']} s{x['level']:g}"))
    return decide(cells, "mostly", "OMP tickets of two granularities")


compared("rt-aimp", "RT", "Sec. III-B", "Fig. 4",
         "generally the two robust tickets outperform the natural ones across most sparsity ratios",
         "A-IMP tickets of θ_AT against IMP tickets of θ_STD drawn where they were, upstream (a_imp vs imp) and "
         "downstream (a_imp_ds vs imp_ds), whole-model fine-tuning, full data, SA, every level > 0 and task; "
         "difference of means per cell; mode mostly (a quarter of the cells may go the other way).",
         items=("rt-fig4",), premises=(ROBUST_VS_NATURAL,),
         pairs=[((AT, 'a_imp'), (STD, 'imp')), ((AT, 'a_imp_ds'), (STD, 'imp_ds'))],
         on=[('standard', 'sa')], mode="mostly", what="A-IMP and IMP tickets")


compared("rt-aimp-us-mild", "RT", "Sec. III-B", "Fig. 4",
         "the US robust tickets achieves the most competitive transferability under mild sparsity",
         "A-IMP tickets of θ_AT drawn upstream (US, a_imp) against those drawn downstream (DS, a_imp_ds), whole-model "
         "fine-tuning, full data, SA, every level below 70 % (mild) and task; mode greater (against the natural "
         "tickets: rt-aimp).",
         items=("rt-fig4",),
         pairs=[((AT, 'a_imp'), (AT, 'a_imp_ds'))],
         on=[('standard', 'sa')], mode="greater", levels=mild, what="US and DS A-IMP tickets at mild sparsity")


compared("rt-aimp-ds-high", "RT", "Sec. III-B", "Fig. 4",
         "the DS robust tickets achieve a better accuracy over the US ones under relatively large sparsity",
         "A-IMP tickets of θ_AT drawn downstream (DS) against upstream (US), whole-model fine-tuning, full data, SA, "
         "every level ≥ 70 % and task; mode greater.",
         items=("rt-fig4",),
         pairs=[((AT, 'a_imp_ds'), (AT, 'a_imp'))],
         on=[('standard', 'sa')], mode="greater", levels=high, what="US and DS A-IMP tickets at high sparsity")


@claim("rt-imp-best-scheme", "RT", "Sec. III-B (summary)", "Fig. 1, Fig. 4, Fig. 5",
       "IMP-based US/DS robust tickets generally win the best transferability, especially under extremely high "
       "sparsity ratios",
       "Robust tickets of θ_AT: A-IMP upstream and downstream (whole-model fine-tuning) against OMP (whole-model "
       "fine-tuning) and LMP (masks learned on the frozen weights), full data, SA, every level > 0 and task where "
       "both ran (paired per image); mode mostly.",
       items=("rt-fig1", "rt-fig4", "rt-fig5"))
def _rt_imp_best(ev: Evidence) -> Result:
    cells = []
    for imp in ("a_imp", "a_imp_ds"):
        for key in ev.keys(kind=AT, method=imp, regime="standard", fraction=1.0):
            task, lv = key[2], key[5]
            if lv <= 0:
                continue
            for other, regime in (("omp", "standard"), ("lmp", "mask")):
                c = cell(ev, key, (AT, other, task, regime, 1.0, lv), "sa", f"{imp} vs {other} {task} s{lv:g}")
                if c is not None:
                    cells.append(c)
    return decide(cells, "mostly", "A-IMP tickets with OMP or LMP tickets of θ_AT")


compared("rt-lmp", "RT", "Sec. III-B", "Fig. 5",
         "As shown in Fig. 5, robust tickets drawn by LMP consistently outperform natural ones",
         "LMP masks learned on frozen θ_AT against θ_STD (regime mask), full data, SA, every level > 0 and task; "
         "difference of means per cell; mode greater.",
         items=("rt-fig5",), premises=(ROBUST_VS_NATURAL,),
         pairs=[((AT, 'lmp'), (STD, 'lmp'))],
         on=[('mask', 'sa')], mode="greater", what="LMP tickets")


compared("rt-smoothing-beats-natural", "RT", "Sec. III-C", "Fig. 6",
         "although the tickets from RS pretrained models are inferior to the robust tickets from adversarially trained "
         "models, they can still outperform the natural tickets.",
         "OMP tickets of the random-smoothing model against θ_STD, fine-tuning and linear evaluation, full data, SA, "
         "every level > 0 and task; difference of means per cell; mode greater.",
         items=("rt-fig6",), premises=(comparable_backbones((RS, STD)),),
         pairs=[((RS, 'omp'), NATURAL_OMP)],
         on=[('standard', 'sa'), ('linear', 'sa')], mode="greater", what="OMP tickets of random smoothing")


compared("rt-adversarial-beats-smoothing", "RT", "Sec. III-C", "Fig. 6",
         "although the tickets from RS pretrained models are inferior to the robust tickets from adversarially trained "
         "models, they can still outperform the natural tickets.",
         "OMP tickets of θ_AT against the random-smoothing model, fine-tuning and linear evaluation, full data, SA, "
         "every level > 0 and task; difference of means per cell; mode greater.",
         items=("rt-fig6",), premises=(comparable_backbones((AT, RS)),),
         pairs=[(ROBUST_OMP, (RS, 'omp'))],
         on=[('standard', 'sa'), ('linear', 'sa')], mode="greater", what="OMP tickets of random smoothing")


compared("rt-segmentation", "RT", "Sec. III-D", "Fig. 7",
         "generally our hypothesis still holds that robust tickets achieve consistently higher mIOU, especially under "
         "mild sparsity ratios",
         "OMP tickets of θ_AT against θ_STD, segmentation fine-tuning (the segment stage's runs, metrics/segment.json, "
         "as regime segmentation), mIoU with its bootstrap standard error over test images, every level > 0; "
         "difference of means per cell; mode greater.",
         items=("rt-fig7",), premises=(ROBUST_VS_NATURAL,),
         pairs=[(ROBUST_OMP, NATURAL_OMP)],
         on=[('segmentation', 'miou')], mode="greater", what="segmentation transfer (mIoU) among the evaluated runs")


_FIG8_QUOTE = ("From Fig. 8, we can see that (1) robust tickets outperform the vanilla counterparts consistently in terms "
               "of natural accuracy, adversarial accuracy, and OoD performance.")
_FIG8_TEST = ("A-IMP tickets of θ_AT (robust) against IMP tickets of θ_STD (natural), whole-model fine-tuning, full "
              "data, {what}, every level > 0 and task; difference of means per cell; mode greater.")


compared("rt-properties-accuracy", "RT", "Sec. III-E", "Fig. 8, Table I", _FIG8_QUOTE,
         _FIG8_TEST.format(what="SA"), items=("rt-fig8", "rt-table1"), premises=(ROBUST_VS_NATURAL,),
         pairs=[((AT, 'a_imp'), (STD, 'imp'))],
         on=[('standard', 'sa')], mode="greater", what="A-IMP/IMP tickets")


compared("rt-properties-adversarial", "RT", "Sec. III-E", "Fig. 8, Table I", _FIG8_QUOTE,
         _FIG8_TEST.format(what="RA (Adv-Acc)"), items=("rt-fig8", "rt-table1"), uses_ra=True,
         premises=(ROBUST_VS_NATURAL,),
         pairs=[((AT, 'a_imp'), (STD, 'imp'))],
         on=[('standard', 'ra')], mode="greater", what="A-IMP/IMP tickets")


compared("rt-properties-ood", "RT", "Sec. III-E", "Fig. 8, Table I", _FIG8_QUOTE,
         _FIG8_TEST.format(what=f"OoD ROC-AUC of max-softmax detection (margin {MARGINS['ood_auroc'][0]}, bootstrap "
                                "standard error)")
         + " RT limits the OoD benefit to \"large models (e.g., ResNet50)\" (insight 2 of Sec. III-E): a premise.",
         items=("rt-fig8", "rt-table1"), premises=(ROBUST_VS_NATURAL, large_model()),
         pairs=[((AT, 'a_imp'), (STD, 'imp'))],
         on=[('standard', 'ood_auroc')], mode="greater", what="A-IMP/IMP tickets")


@claim("rt-properties-calibration", "RT", "Sec. III-E", "Table I",
       "Raw data of all the mentioned properties of robust tickets and natural tickets drawn from ResNet18/50 via "
       "A-IMP.",
       "Descriptive, not counted: RT's text makes no calibration claim; Table I only prints ECE and NLL (robust tickets "
       "have the lower NLL in 6 of its 8 cells and the lower ECE in 2 of 8). Reported: A-IMP tickets of θ_AT against "
       "IMP tickets of θ_STD, whole-model fine-tuning, full data, NLL and ECE (lower is better; bootstrap standard "
       "errors), every level > 0 and task: cells lower and cells lower beyond the noise.",
       items=("rt-fig8", "rt-table1"), kind="descriptive")
def _rt_calibration(ev: Evidence) -> Result:
    out, nums = [], {}
    for metric in ("nll", "ece"):
        cells = versus(ev, (AT, "a_imp"), (STD, "imp"), [metric], ["standard"])
        cells = [c for c in cells if isinstance(c, Cell)]
        lower = sum(c.diff > 0 for c in cells)
        wins = sum(c.result == "win" for c in cells)
        losses = sum(c.result == "loss" for c in cells)
        nums[metric] = {"cells": len(cells), "robust_lower": lower, "wins": wins, "losses": losses,
                        "detail": [c.as_dict() for c in cells]}
        out.append(f"robust {metric.upper()} lower in {lower} of {len(cells)} cells ({wins} beyond the noise, "
                   f"{losses} higher beyond it)")
    if not any(nums[m]["cells"] for m in nums):
        return Result("not run", "no A-IMP/IMP tickets at this tier", nums)
    return Result("descriptive", "; ".join(out), nums)


# --------------------------------------------------------------------------- Sec. III-F: VTAB and the domain gap

MIN_TASKS = 4


def linear_high_cells(ev: Evidence) -> tuple[dict[str, Cell], bool]:
    """task -> robust-minus-natural OMP cell under linear evaluation at the highest common level > 0."""
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
    return cells, excluded


def domain_gap_decision(cells: dict[str, Cell], gaps: dict[str, float]) -> Result:
    """RT Table II's reading: on the tasks with the larger domain gaps (the upper half by gap) robust tickets win
    beyond the noise (at least half of them, none lost), and the robust advantage rises with the gap (one-sided
    permutation p of Spearman's rho <= 0.05, over at least 4 tasks). Contradicted if robust tickets lose on most
    large-gap tasks and win on none, or the advantage falls with the gap (p <= 0.05)."""
    tasks = sorted((t for t in cells if t in gaps), key=lambda t: gaps[t])
    nums = {"tasks": {t: {"domain_gap": round(float(gaps[t]), 4), **cells[t].as_dict()} for t in tasks}}
    if len(tasks) < MIN_TASKS:
        return Result("inconclusive", f"only {len(tasks)} task(s) with a domain gap; the permutation test needs "
                                      f"{MIN_TASKS} (with 3, the smallest p is 1/6)", nums)
    x = [float(gaps[t]) for t in tasks]
    y = [cells[t].diff for t in tasks]
    rho = spearman(x, y)
    p_up = spearman_perm_p(x, y)
    p_down = spearman_perm_p(x, [-v for v in y])
    large = tasks[len(tasks) - len(tasks) // 2:]
    w = sum(cells[t].result == "win" for t in large)
    lo = sum(cells[t].result == "loss" for t in large)
    nums.update(spearman=round(rho, 4), p_rises=round(p_up, 4), p_falls=round(p_down, 4), large_gap_tasks=large,
                large_wins=w, large_losses=lo)
    tally = (f"on the {len(large)} larger-gap tasks robust wins {w}, loses {lo}; ρ = {rho:.2f} over {len(tasks)} "
             f"tasks (permutation p {p_up:.3f})")
    if w >= math.ceil(len(large) / 2) and lo == 0 and p_up <= ALPHA:
        return Result("reproduced", tally, nums)
    if (lo >= math.ceil(len(large) / 2) and w == 0) or p_down <= ALPHA:
        return Result("contradicted", tally + f"; falls with the gap: p {p_down:.3f}", nums)
    return Result("inconclusive", tally, nums)


@claim("rt-domain-gap", "RT", "Sec. III-F", "Fig. 9, Table II",
       "we can observe that robust tickets consistently outperform natural ones on datasets with a larger FID, where "
       "the domain gap between downstream datasets and ImageNet is larger, and only match/underperform their natural "
       "counterparts on datasets with a lower FID.",
       "Per task: the robust-minus-natural OMP gap under linear evaluation (SA) at the highest common level > 0, and "
       "the task's domain gap (analysis/domain_gap.json, a Fréchet distance as FID). Reproduced if robust tickets win "
       "beyond the noise on at least half of the larger-gap tasks (upper half by gap) and lose on none, and the gap "
       "and the robust advantage rise together (one-sided permutation p of Spearman's ρ ≤ 0.05, at least 4 tasks); "
       "contradicted if they lose on most larger-gap tasks and win on none, or the advantage falls with the gap "
       "(p ≤ 0.05); inconclusive otherwise. RT's Table II, coded Robust/Match/Natural = win/tie/loss, is reproduced "
       "by this rule.",
       items=("rt-fig9", "rt-table2"), premises=(ROBUST_VS_NATURAL,))
def _rt_domain_gap(ev: Evidence) -> Result:
    cells, excluded = linear_high_cells(ev)
    if not cells:
        return (Result("inconclusive", "the linear-evaluation OMP runs did not learn") if excluded else
                Result("not run", "no linearly evaluated OMP tickets of θ_AT and θ_STD at this tier"))
    if not ev.domain_gap:
        return Result("not run", "no domain-gap scores (analysis/domain_gap.json)")
    return domain_gap_decision(cells, ev.domain_gap)


#: RT Fig. 9: robust tickets outperform / match / underperform natural ones on 7 / 3 / 2 of 12 tasks
PAPER_COUNT = (7, 3, 2)


def count_decision(results: dict[str, str]) -> Result:
    """The run's (win, tie, loss) count over its tasks against RT's 7/3/2 of 12. Contradicted if robust tickets lose
    beyond the noise on improbably many tasks for RT's loss rate 2/12 (exact binomial P(L >= observed) <= 0.05):
    noise turns RT's wins into ties, never into losses, so a shortfall of wins that ties explain is low power, not
    a contradiction (a rule reading the score W - L contradicted RT's own pattern in 18 % of simulated default
    runs). Reproduced if not, and the score W - L is improbably high without a robust advantage (wins as rare as
    RT's losses: proportions 2/8/2 of 12; P(score >= observed) <= 0.05); inconclusive otherwise."""
    from itertools import product

    w = sum(r == "win" for r in results.values())
    t = sum(r == "tie" for r in results.values())
    lo = sum(r == "loss" for r in results.values())
    n = w + t + lo
    nums = {"wins": w, "ties": t, "losses": lo, "tasks": n, "paper": list(PAPER_COUNT), "per_task": results}
    if n == 0:
        return Result("not run", "no tasks", nums)
    loss_rate = PAPER_COUNT[2] / sum(PAPER_COUNT)
    p_losses = binom_tail(lo, n, loss_rate)
    none = (loss_rate, 1 - 2 * loss_rate, loss_rate)
    p_none = 0.0
    for a, c in product(range(n + 1), repeat=2):   # a wins, c losses, n - a - c ties: score a - c
        if a + c <= n and a - c >= w - lo:
            b = n - a - c
            p_none += math.comb(n, a) * math.comb(n - a, c) * none[0] ** a * none[1] ** b * none[2] ** c
    p_none = min(1.0, p_none)
    nums.update(p_losses_under_paper=round(p_losses, 4), p_without_advantage=round(p_none, 4))
    tally = f"robust wins {w}, ties {t}, loses {lo} of {n} tasks (RT: 7/3/2 of 12)"
    if p_losses <= ALPHA:
        return Result("contradicted", f"{tally}; this many losses at RT's loss rate 2/12: p {p_losses:.3f}", nums)
    if p_none <= ALPHA:
        return Result("reproduced", f"{tally}; losses compatible with RT's (p {p_losses:.3f}), the score not with no "
                                    f"advantage (p {p_none:.3f})", nums)
    return Result("inconclusive", f"{tally}; losses p {p_losses:.3f} at RT's rate, score p {p_none:.3f} without an "
                                  "advantage", nums)


@claim("rt-vtab-count", "RT", "Sec. III-F", "Fig. 9",
       "robust tickets outperform/match/underperform natural tickets in 7/3/2 out of the total 12 cases under high "
       "sparsity ratios.",
       "Per task, the robust-minus-natural OMP cell under linear evaluation at the highest common level (win, tie or "
       "loss beyond the noise); the count (W, T, L) over the run's tasks against RT's 7/3/2: contradicted if the losses "
       "are improbably many at RT's loss rate 2/12 (exact binomial P(L ≥ observed) ≤ 0.05; noise turns wins into "
       "ties, not losses); reproduced if not and the score W − L is improbably high without a robust advantage (wins "
       "as rare as RT's losses, 2/8/2; P(score ≥ observed) ≤ 0.05); inconclusive otherwise.",
       items=("rt-fig9",), premises=(ROBUST_VS_NATURAL,))
def _rt_vtab_count(ev: Evidence) -> Result:
    cells, excluded = linear_high_cells(ev)
    if not cells:
        return (Result("inconclusive", "the linear-evaluation OMP runs did not learn") if excluded else
                Result("not run", "no linearly evaluated OMP tickets of θ_AT and θ_STD at this tier"))
    r = count_decision({t: c.result for t, c in cells.items()})
    r.numbers["detail"] = [c.as_dict() for c in cells.values()]
    return r
