"""Stage `summary`: aggregate every evaluated run into DVC metrics and plots.

* ``metrics/summary.json`` (DVC metrics): dense baselines, run counts and the attack-sanity counts;
* ``metrics/sanity.json`` (DVC metrics): attack sanity over every robust evaluation (``repro.sanity``):
  counts per check and every flagged run with the checks it failed;
* ``metrics/double_win.json`` (DVC metrics): extreme double-win sparsity per
  (pretraining, method, task), with the per-level verdicts;
* ``plots/curves.csv``: mean and std over seeds of SA, RA (``ra``: PGD-20; ``ra_aa``: AutoAttack-grade),
  ECE, NLL, AUROC and the RT Adv-Acc sweep (``adv_acc@<eps>``) per (kind, method, task, regime, fraction,
  level), long format;
* ``plots/<regime>_<metric>/<kind>.csv``: one series per pretraining kind for
  ``dvc plots`` (SA/RA vs sparsity per pretraining kind and regime; the RA files also carry
  ``ra_aa``, RA under the AutoAttack-grade ensemble, next to ``ra``, RA under PGD-20).
* double-win verdicts under ``evaluation.verdict_ra`` (PGD-20 by default) and under both RAs.

Runs of a named recipe (``transfer.recipes``, e.g. RT's fine-tuning) form their own groups: curves.csv's
``recipe`` column ("" = the regime's own) and ``papers`` (the papers whose figures read the group, ``dw rt``:
``repro.verdicts.paper_view``); the double-win verdicts and DW's plot series read DW's view, the linear
series RT's; summary.json's dense baselines of a named recipe sit under ``<regime>-<recipe>``.
Runs from an ε-grid model (Robust Tickets' per-task ε) form their own groups too (columns ``source`` and ``eps``);
RT's view takes, per task and regime, the ε ``select_eps`` chose (``metrics/eps.json``), which summary.json
repeats under ``rt_eps`` (task -> regime -> ε; ``dw_eps``: DW's one ε); their dense baselines sit under
``<regime>[-<recipe>]@<eps>``.
"""
from __future__ import annotations

import json
import sys

from ..base.io import save_json
from ..config import Params
from ..config.params import PAPERS
from ..pipeline.results import (
    METRICS_DIR,
    PLOT_EXTRA,
    PLOTS_DIR,
    nest_verdicts,
    collect,
    paper_sources,
    plot_series,
    write_csv,
)
from ..plan import CHOICE_FILE, load_choice
from ..plausibility import run_label
from ..sanity import summarize as summarize_sanity
from ..verdicts import (
    METRICS,
    RECIPE,
    adv_acc_metrics,
    aggregate,
    double_win,
    group_key,
    paper_view,
    recipe_of,
    source_of,
)
from .common import log, rounded, run_stage


def body(p: Params) -> None:
    rows = collect()
    agg = aggregate(rows)
    chosen: dict = {}  # the checkpoint (evaluation.select) every number of a group comes from
    for r in rows:
        chosen.setdefault(group_key(r), set()).add(r.get("checkpoint", "last"))
    tags = {paper: p.recipe_tags(paper) for paper in PAPERS}
    choice = load_choice(p)
    srcs = paper_sources(p, choice)  # RT's runs of pgd_adversarial: the eps select_eps chose per task and regime
    for r in agg:
        r["checkpoint"] = "+".join(sorted(chosen[group_key(r)]))
        # the papers whose figures read this group: its recipe is the one their experiments give its regime, its
        # pretrained model the one they transfer on its task (RT: the chosen eps)
        r["papers"] = " ".join(x for x in PAPERS if recipe_of(r) == tags[x].get(r["regime"], "")
                               and source_of(r) == srcs[x].get((r["kind"], r["task"], r["regime"]), ""))
    fields = ["kind", "method", "task", "regime", "fraction", "level", "n_seeds", "checkpoint", RECIPE, "source",
              "eps", "papers"] + [f"{m}_{s}" for m in METRICS + tuple(adv_acc_metrics(agg)) for s in ("mean", "std")]
    write_csv(PLOTS_DIR / "curves.csv", agg, fields)
    for name, series in plot_series(agg, p.pretrain.kinds, p.data.downstream[0], tags, srcs).items():
        metric = name.split("/")[0].rsplit("_", 1)[1]
        write_csv(PLOTS_DIR / f"{name}.csv", series, ["sparsity", metric, f"{metric}_std"]
                  + [f"{x}{s}" for x in PLOT_EXTRA.get(metric, ()) for s in ("", "_std")])
    verdicts = double_win(paper_view(agg, tags["dw"]), verdict_ra=p.evaluation.verdict_ra)  # DW's rule on DW's runs
    save_json(nest_verdicts(verdicts), METRICS_DIR / "double_win.json")
    save_json({f"verdicts_{v['kind']}-{v['method']}-{v['task']}": v for v in verdicts},
              PLOTS_DIR / "double_win_levels.json")
    dense = {}
    for r in agg:
        if r["method"] == "dense" and r["fraction"] == 1.0:
            reg = r["regime"] + (f"-{recipe_of(r)}" if recipe_of(r) else "")  # as in the run's folder name
            reg += f"@{r['eps']}" if source_of(r) else ""  # an eps-grid model's baseline
            dense.setdefault(r["kind"], {}).setdefault(r["task"], {})[reg] = {
                "sa": rounded(r.get("sa_mean")), "ra": rounded(r.get("ra_mean", float("nan"))),
                **({"ra_aa": round(r["ra_aa_mean"], 4)} if "ra_aa_mean" in r else {})}
    violations = sum(r.get("mask_violations", 0) for r in rows)
    not_learned = [f"{run_label(r)}: {r.get('learned_why', '')}" for r in rows if r.get("learned") is False]
    san = summarize_sanity(rows)
    save_json(san, METRICS_DIR / "sanity.json")
    save_json({"runs": len(rows), "groups": len(agg), "mask_violations": violations, "dense": dense,
               "checkpoint": {reg: "+".join(sorted({r["checkpoint"] for r in agg if r["regime"] == reg}))
                              for reg in sorted({r["regime"] for r in agg})},
               "attack_sanity": {k: san[k] for k in ("checked", "ok", "flagged", "not_checked", "flagged_runs")}
               | {f"failed_{c}": v for c, v in san["failures_per_check"].items()},
               "not_learned": len(not_learned), "not_learned_runs": not_learned, **eps_summary()},
              METRICS_DIR / "summary.json")
    log("summary", f"{len(rows)} runs in {len(agg)} groups; {len(verdicts)} double-win verdicts")
    if not_learned:  # repro.plausibility: loss never fell or SA within the binomial margin of chance
        log("summary", f"{len(not_learned)} of {len(rows)} runs DID NOT LEARN (never matching in a verdict): "
                       + " | ".join(not_learned))
    if san["flagged"]:
        log("summary", f"attack sanity: {san['flagged']} of {san['checked']} robust evaluations FAILED a check "
                       f"(gradient masking?), see metrics/sanity.json: "
                       + ", ".join(f"{c} x{v}" for c, v in san["failures_per_check"].items() if v))


def eps_summary() -> dict:
    """Robust Tickets' per-task ε as summary.json shows it: ``rt_eps`` task -> regime -> chosen ε (with every
    candidate's held-out SA under ``rt_eps_held_out``), ``dw_eps`` DW's one ε; {} when the grid is off."""
    if not CHOICE_FILE.is_file():
        return {}
    doc = json.loads(CHOICE_FILE.read_text())
    if not doc.get("tasks"):
        return {}
    return {"dw_eps": doc["own"], "rt_eps": {t: {r: v["eps"] for r, v in by.items()} for t, by in doc["tasks"].items()},
            "rt_eps_held_out": {t: {r: v["held_out_sa"] for r, v in by.items()} for t, by in doc["tasks"].items()}}


def main(argv=None) -> int:
    return run_stage("summary", body)


if __name__ == "__main__":
    sys.exit(main())
