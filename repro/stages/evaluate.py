"""Stage `evaluate@<level>`: metrics of every transfer run of a level.

SA, NLL and ECE (15 bins) on the clean test set; RA under PGD-20 (eps 8/255,
alpha 2/255, eval mode); OoD AUROC from max-softmax scores against the OoD
set; for adversarially fine-tuned runs on the transfer-attack task, accuracy
under PGD-20 examples crafted on the independently trained robust reference
model (Double-Win Table A2). Also checks that pruned weights are still zero, and
runs the attack sanity checks (``repro.sanity``) on the first
``evaluation.sanity_images`` attacked images: ``sanity`` (accuracies and checks)
and ``sanity_ok`` sit next to ``ra``.

Adversarially fine-tuned runs, and the standard-fine-tuned runs of the tickets of
``evaluation.adv_acc_experiments`` on every task (whose RA RT's Adv-Acc claim reads), also get
``ra_aa`` (``repro.plan.aa_graded``): RA under the AutoAttack-grade ensemble
(``evaluation.aa_members``, default APGD-CE then APGD-T over ``aa_target_classes`` classes,
``aa_steps`` iterations each) run on the images PGD-20 left correct, so ``ra_aa`` is the accuracy
under the worst case of PGD-20 and the ensemble (``ra_aa <= ra``); ``aa`` records how many images
each attack left robust. The standard-fine-tuned runs of the experiments ``evaluation.adv_acc_experiments``
(default ``rt_omp`` and ``rt_aimp``: Robust Tickets Table I / Fig. 8) get ``adv_acc``: RA under PGD-20 (step eps/4) at each budget of
``evaluation.adv_acc_eps`` ("Adv-Acc", whose attack RT does not state). Every attack runs in float32.
Checkpoint selection: every metric is measured on the checkpoint ``evaluation.select`` names for the
run's regime (``last``, or the best-validation ``best_sa``/``best_ra`` weights that
``transfer.validation`` kept), recorded as ``checkpoint``; every kept checkpoint also gets its test
``sa@<checkpoint>`` and ``ra@<checkpoint>``.
Writes ``runs/eval/<level>/<run>/metrics.json``.
"""
from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

from ..base.cpus import parallel_map
from ..base.io import read_json, save_json
from ..config import Params
from ..pipeline.evaluate import evaluate_run, load_reference
from ..plan import RUNS, RunSpec, level_name, load_choice
from ..plan.cost import run_flops
from .common import fmt, level_main, log, n_workers

_STATE: dict = {}  # tasks, OoD set and reference model, loaded once and shared with forked workers


def _evaluate_one(p: Params, src: Path, dst: Path, run_dir: Path) -> tuple[str, dict]:
    rel = run_dir.relative_to(src)
    m = evaluate_run(p, run_dir, _STATE["tasks"], _STATE["ood"], _STATE["reference"], _STATE["choice"])
    save_json(m, dst / rel / "metrics.json")
    return str(rel), m


def body_for(sparsity: float):
    def body(p: Params) -> None:
        lv = level_name(sparsity)
        src = RUNS / "transfer" / lv
        if not src.is_dir():
            raise FileNotFoundError(f"{str(src)!r} is missing; run transfer@{lv} first")
        run_dirs = sorted(d.parent for d in src.rglob("spec.json"))
        _STATE.clear()
        _STATE.update(tasks={}, ood={})
        _STATE["reference"] = load_reference(p, _STATE["tasks"])
        _STATE["choice"] = load_choice(p)  # RT's eps per task: which runs get RT's extra metrics
        work = partial(_evaluate_one, p, src, RUNS / "eval" / lv)
        flops = run_flops(p, "evaluate")
        cost = lambda d: flops(RunSpec.of(read_json(d / "spec.json")))  # noqa: E731
        for i, (rel, m) in enumerate(parallel_map(work, run_dirs, n_workers(p), cost=cost), 1):
            flag = "" if m.get("sanity_ok", True) else f" attack sanity FAILED: {', '.join(m['sanity']['failed'])}"
            aa = f" RA(AA) {m['ra_aa']:.3f}" if "ra_aa" in m else ""
            flag += "" if m["learned"] else f" DID NOT LEARN: {m['learned_why']}"
            log(f"evaluate@{lv}", f"[{i}/{len(run_dirs)}] {rel}: SA {fmt(m['sa'])} RA(PGD-20) {fmt(m['ra'])}{aa}{flag}")
        (RUNS / "eval" / lv).mkdir(parents=True, exist_ok=True)
    return body


def main(argv=None) -> int:
    return level_main("evaluate", body_for, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
