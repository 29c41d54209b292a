"""Aggregation over seeds and the Double-Win "matching" rule.

A ticket is *matching* on a metric when its mean over seeds is at least the
dense model's mean minus one standard deviation (Double-Win Sec. 4.1: "within
one standard deviation of the unpruned dense network", or above). A
*double-win* ticket is matching under all three criteria: standard-transfer
SA, adversarial-transfer SA and adversarial-transfer RA. The *extreme
sparsity* is the largest sparsity level at which the ticket is double-win.

The RA criterion can use either robust accuracy (``evaluation.verdict_ra``): ``pgd20``, the
papers' RA under PGD-20 (metric ``ra``, the default), or ``aa``, the AutoAttack-grade ``ra_aa``.
Both verdicts are always computed and reported; ``double_win`` is the chosen one's.

**Recipes.** A run fine-tuned with a named recipe (``transfer.recipes``, e.g. Robust Tickets' fine-tuning)
carries ``recipe`` in its metrics; runs without it have the regime's own recipe (``""``). Groups never mix
recipes (:func:`aggregate`); one paper's claims and figures read its view (:func:`paper_view`): in each
regime, the runs of the recipe its experiments name there (``Params.recipe_tags``).

**Sources.** A run transferred from an ε-grid model (Robust Tickets' per-task ε, ``pretrain.eps_grid``) carries
``source`` (``eps<e>``) and ``eps``; groups never mix sources either, and a paper's view takes, per (kind, task,
regime), the source its experiments use (DW: always the kind's own, ""; RT: the ε ``select_eps`` chose).
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable

METRICS = ("sa", "ra", "ra_aa", "ece", "nll", "ood_auroc", "transfer_attack_acc", "measured_sparsity", "miou")
GROUP = ("kind", "method", "task", "regime", "fraction", "level")
#: the metrics key of a run's named recipe ("" or absent: the regime's own); aggregated groups are GROUP + recipe
RECIPE = "recipe"
#: the metrics key of a run's pretrained model ("" or absent: the kind's own; "eps<e>": an ε-grid model)
SOURCE = "source"
#: ``evaluation.verdict_ra`` -> the per-run metric of the RA criterion
VERDICT_RA = {"pgd20": "ra", "aa": "ra_aa"}


def mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    m = sum(values) / n
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return m, sd


def adv_acc_metrics(agg: Iterable[dict]) -> list[str]:
    """The RT Adv-Acc metrics of aggregated rows (``adv_acc@<eps>``), by increasing budget."""
    names = {k[:-len("_mean")] for r in agg for k in r if k.startswith("adv_acc@") and k.endswith("_mean")}
    return sorted(names, key=lambda n: float(n.split("@")[1].split("/")[0]))


def recipe_of(row: dict) -> str:
    """The named recipe a run (or group) was fine-tuned with; "" = its regime's own."""
    return row.get(RECIPE) or ""


def source_of(row: dict) -> str:
    """The pretrained model a run (or group) was transferred from: "" = its kind's own, else an ε-grid model."""
    return row.get(SOURCE) or ""


def group_key(row: dict) -> tuple:
    """(kind, method, task, regime, fraction, level, recipe, source): the runs one aggregated row averages."""
    return (*(row[k] for k in GROUP), recipe_of(row), source_of(row))


def paper_view(rows: Iterable[dict], tags: dict[str, str], sources: dict | None = None) -> list[dict]:
    """The rows (runs or groups) one paper reads: per regime, those of the recipe ``tags`` gives it ('' if absent),
    and per (kind, task, regime) those of the source ``sources`` gives it ('' if absent: the kind's own model), so
    its groups are unique per GROUP key (``tags``: ``Params.recipe_tags(paper)``; ``sources``: RT's chosen ε,
    ``repro.pipeline.results.paper_sources``)."""
    sources = sources or {}
    return [r for r in rows if recipe_of(r) == tags.get(r["regime"], "")
            and source_of(r) == sources.get((r["kind"], r["task"], r["regime"]), "")]


def aggregate(rows: Iterable[dict]) -> list[dict]:
    """Mean and sample std over seeds of every metric, per (kind, method, task, regime, fraction, level) and
    recipe (``recipe`` in the row only when named); also of every budget of the RT Adv-Acc sweep
    (``adv_acc@<eps>_mean/_std``, where runs have it)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[group_key(r)].append(r)
    out = []
    for key, rs in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        row = dict(zip(GROUP, key))
        if key[-2]:
            row[RECIPE] = key[-2]
        if key[-1]:
            row[SOURCE] = key[-1]
        eps = {r["eps"] for r in rs if r.get("eps")}
        if eps:  # the pretraining radius of the runs' model (one per source)
            row["eps"] = "+".join(sorted(eps))
        row["n_seeds"] = len(rs)
        row["learned"] = all(r.get("learned", True) for r in rs)  # every seed learned (repro.plausibility)
        for m in METRICS:
            vals = [r[m] for r in rs if r.get(m) is not None]
            if vals:
                row[f"{m}_mean"], row[f"{m}_std"] = mean_std(vals)
        for b in sorted({b for r in rs for b in r.get("adv_acc") or {}}):  # RT Adv-Acc per budget: adv_acc@2/255
            vals = [r["adv_acc"][b] for r in rs if b in (r.get("adv_acc") or {})]
            row[f"adv_acc@{b}_mean"], row[f"adv_acc@{b}_std"] = mean_std(vals)
        out.append(row)
    return out


def matching(ticket_mean: float, dense_mean: float, dense_std: float) -> bool:
    return ticket_mean >= dense_mean - dense_std - 1e-12


def criteria(t_std: dict, t_adv: dict, d_std: dict, d_adv: dict, verdict_ra: str = "pgd20") -> dict:
    """The three matching criteria and the double-win verdict under both RAs (aggregated rows).

    ``adversarial_ra`` / ``double_win`` use ``verdict_ra``; ``adversarial_ra_<pgd20|aa>`` and
    ``double_win_<pgd20|aa>`` are always given (``None`` where ``ra_aa`` was not computed).
    """
    if verdict_ra not in VERDICT_RA:
        raise ValueError(f"verdict_ra must be one of {list(VERDICT_RA)}, got {verdict_ra!r}")
    # a ticket run that did not learn (learned: false, repro.plausibility) never counts as matching, nor one whose
    # runs or dense baseline have no numbers (every seed diverged: repro.pipeline.evaluate.diverged)
    if not all("sa_mean" in g for g in (t_std, t_adv, d_std, d_adv)) or not ("ra_mean" in t_adv and "ra_mean" in d_adv):
        out = {"standard_sa": False, "adversarial_sa": False, "learned": False}
        for name in VERDICT_RA:
            out[f"adversarial_ra_{name}"] = out[f"double_win_{name}"] = False if name == verdict_ra else None
        out["adversarial_ra"], out["double_win"] = False, False
        return out
    learned = t_std.get("learned", True) and t_adv.get("learned", True)
    sa = {"standard_sa": learned and matching(t_std["sa_mean"], d_std["sa_mean"], d_std["sa_std"]),
          "adversarial_sa": learned and matching(t_adv["sa_mean"], d_adv["sa_mean"], d_adv["sa_std"])}
    out: dict = dict(sa, learned=learned)
    for name, m in VERDICT_RA.items():
        have = f"{m}_mean" in t_adv and f"{m}_mean" in d_adv
        ra = learned and matching(t_adv[f"{m}_mean"], d_adv[f"{m}_mean"], d_adv[f"{m}_std"]) if have else None
        out[f"adversarial_ra_{name}"] = ra
        out[f"double_win_{name}"] = None if ra is None else all(sa.values()) and ra
    if out[f"adversarial_ra_{verdict_ra}"] is None:
        raise ValueError(f"verdict_ra {verdict_ra!r} needs {VERDICT_RA[verdict_ra]!r} of the adversarial runs, "
                         f"which were not evaluated with it (evaluation.aa_members empty?)")
    out["adversarial_ra"] = out[f"adversarial_ra_{verdict_ra}"]
    out["double_win"] = out[f"double_win_{verdict_ra}"]
    return out


def double_win(agg: list[dict], fraction: float = 1.0, verdict_ra: str = "pgd20") -> list[dict]:
    """Per (kind, method, task): the verdict at every level (under both RAs, ``double_win`` under
    ``verdict_ra``) and the extreme sparsity (under ``verdict_ra``, and ``extreme_sparsity_<ra>`` under each).
    ``agg`` holds one recipe per GROUP key (a paper's view, :func:`paper_view`)."""
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
            per_level.append({"level": lv, "measured_sparsity": t_std.get("measured_sparsity_mean", lv),
                              **criteria(t_std, t_adv, d_std, d_adv, verdict_ra)})
        if not per_level:
            continue
        row = {"kind": kind, "method": method, "task": task, "fraction": fraction, "verdict_ra": verdict_ra}
        for key in ("double_win",) + tuple(f"double_win_{n}" for n in VERDICT_RA):
            if any(r[key] is None for r in per_level):
                continue
            wins = [r["level"] for r in per_level if r[key]]
            row["extreme_sparsity" + key[len("double_win"):]] = max(wins) if wins else 0.0
        out.append({**row, "levels": per_level})
    return out
