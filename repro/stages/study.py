"""Stage `study`: the ticket under study, ``sparsity`` (``dvc exp run -S sparsity=0.9``).

For every pretraining kind: draw the ticket of ``study.method`` (default IMP
with standard retraining, the Double-Win m^ST) at exactly ``sparsity``
(continuing IMP from the `imp` stage's nearest lower round), transfer it with
standard and adversarial fine-tuning on the study tasks, evaluate, and compare
with the dense baselines of the `evaluate@dense` stage (which this stage only
reads, so pretraining and dense baselines are never re-run). Writes
``metrics/study.json`` (DVC metrics: dense/ticket SA, adversarial SA/RA,
measured sparsity, double-win verdict, attack sanity of the ticket runs) and ``runs/study/``.
Adversarial RA is given under PGD-20 (``*_ra_adv``, the papers') and the AutoAttack-grade ensemble
(``*_ra_aa_adv``); ``double_win`` uses ``evaluation.verdict_ra``, ``double_win_pgd20`` /
``double_win_aa`` give both.
"""
from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

from ..base.cpus import parallel_map
from ..base.io import atomic_dir, read_json, save_json
from ..config import Params
from ..pipeline.evaluate import evaluate_run, load_reference
from ..pipeline.tickets import draw
from ..pipeline.transfer import run_one
from ..plan import RUNS, RunSpec
from ..plan.cost import run_flops
from ..sanity import summarize as summarize_sanity
from ..verdicts import aggregate, criteria
from .common import fmt, log, n_workers, rounded, run_stage

STUDY_DIR = RUNS / "study"


_STATE: dict = {}  # tasks, OoD set, reference model and masks, shared with forked workers


def _transfer_and_evaluate(p: Params, root: Path, spec: RunSpec) -> dict:
    run_dir = run_one(p, spec, p.sparsity, _STATE["tasks"], mask=_STATE["masks"][spec.kind],
                      out_final=root / "runs" / spec.name, stage="study")
    return evaluate_run(p, run_dir, _STATE["tasks"], _STATE["ood"], _STATE["reference"])


def _study(p: Params, s: float, root: Path) -> dict:
    tasks_used = p.study_tasks
    if not tasks_used:  # study.tasks: [] (a tier that names no study): nothing drawn, fine-tuned or compared
        log("study", "off (study.tasks is empty)")
        return {"sparsity": s, "method": p.study.method, "study": "off: study.tasks is empty"}
    masks = {}
    for kind in p.pretrain.kinds:  # IMP partial rounds; tickets at exactly `sparsity`
        masks[kind] = draw(p, kind, p.study.method, None, s)
        masks[kind].save(root / "tickets" / f"{kind}-{p.study.method}" / "mask.pt")
        log("study", f"{kind}-{p.study.method}: measured sparsity {masks[kind].sparsity:.4f}")
    _STATE.clear()
    _STATE.update(tasks={}, ood={}, masks=masks)
    _STATE["reference"] = load_reference(p, _STATE["tasks"])
    specs = [RunSpec(kind, p.study.method, task, regime, 1.0, seed) for kind in p.pretrain.kinds
             for task in tasks_used for regime in ("standard", "adversarial") for seed in p.transfer.seeds]
    rows = []
    tf, ef = run_flops(p, "transfer"), run_flops(p, "evaluate")
    runs = parallel_map(partial(_transfer_and_evaluate, p, root), specs, n_workers(p), cost=lambda s: tf(s) + ef(s))
    for i, row in enumerate(runs, 1):
        rows.append(row)
        flag = "" if row.get("sanity_ok", True) else f" attack sanity FAILED: {', '.join(row['sanity']['failed'])}"
        aa = f" RA(AA) {row['ra_aa']:.3f}" if "ra_aa" in row else ""
        log("study", f"[{i}/{len(specs)}] {specs[i - 1].name}: SA {fmt(row['sa'])} RA(PGD-20) {fmt(row['ra'])}{aa}{flag}")
    # dense baselines from evaluate@dense (read, never re-run)
    dense_rows = []
    for kind in p.pretrain.kinds:
        for task in tasks_used:
            for regime in ("standard", "adversarial"):
                for seed in p.transfer.seeds:
                    spec = RunSpec(kind, "dense", task, regime, 1.0, seed)
                    dense_rows.append(read_json(RUNS / "eval" / "dense" / spec.name / "metrics.json"))
    agg = {(r["kind"], r["method"], r["task"], r["regime"]): r for r in aggregate(rows + dense_rows)}
    out: dict = {"sparsity": s, "method": p.study.method}
    for kind in p.pretrain.kinds:
        for task in tasks_used:
            d_std, d_adv = agg[(kind, "dense", task, "standard")], agg[(kind, "dense", task, "adversarial")]
            t_std, t_adv = agg[(kind, p.study.method, task, "standard")], agg[(kind, p.study.method, task, "adversarial")]
            crit = criteria(t_std, t_adv, d_std, d_adv, p.evaluation.verdict_ra)
            aa = {f"{w}_ra_aa_adv": round(r["ra_aa_mean"], 4) for w, r in (("dense", d_adv), ("ticket", t_adv))
                  if "ra_aa_mean" in r}
            out.setdefault(kind, {})[task] = {
                "measured_sparsity": round(t_std["measured_sparsity_mean"], 6),
                **{f"{w}_{m}_{r}": rounded(g.get(f"{m}_mean")) for w, m, r, g in (
                    ("dense", "sa", "std", d_std), ("ticket", "sa", "std", t_std), ("dense", "sa", "adv", d_adv),
                    ("ticket", "sa", "adv", t_adv), ("dense", "ra", "adv", d_adv), ("ticket", "ra", "adv", t_adv))},
                **aa, "verdict_ra": p.evaluation.verdict_ra, "double_win": crit["double_win"],
                "double_win_pgd20": crit["double_win_pgd20"], "double_win_aa": crit["double_win_aa"],
                # attack sanity (repro.sanity) of every ticket run behind these numbers
                "attack_sanity_ok": all(r.get("sanity_ok", True) for r in rows
                                        if r["kind"] == kind and r["task"] == task),
            }
    san = summarize_sanity(rows, run_id=lambda r: f"{r['kind']}-{r['method']}/{r['task']}/{r['regime']}"
                                                  f"-seed{r['seed']}")
    out["attack_sanity"] = {k: san[k] for k in ("checked", "ok", "flagged")}
    if san["flagged"]:
        log("study", f"attack sanity FAILED for {san['flagged']} of {san['checked']} runs: "
                     + "; ".join(f"{f['run']}: {', '.join(f['failed'])}" for f in san["flagged_runs"]))
    return out


def body(p: Params) -> None:
    s = p.sparsity
    if s == 0:
        raise ValueError("sparsity 0 is the dense model; the study needs a ticket (0 < sparsity < 1)")
    # built in a temporary sibling folder and renamed onto runs/study when complete: a crash never
    # leaves a half-written study (the previous one stays until the new one is whole)
    with atomic_dir(STUDY_DIR) as root:
        out = _study(p, s, root)
    save_json(out, "metrics/study.json")
    log("study", "wrote metrics/study.json")


def main(argv=None) -> int:
    return run_stage("study", body)


if __name__ == "__main__":
    sys.exit(main())
