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

import numpy as np
import torch

from .. import metrics, plausibility
from ..base import runtime
from ..config import Params
from ..data import ArrayTask, array_loader, test_loader
from ..plan import RUNS, RunSpec, aa_graded, adv_acc_run, level_name
from ..tickets.mask import Mask
from .common import level_main, load_into, load_state, load_task, log, n_workers, parallel_map, read_json, write_json
from ..models import model_from_params


def reference_path(task: str) -> Path:
    return RUNS / "reference" / task / "model.pt"


def robust_subset(task: ArrayTask, n: int) -> tuple[np.ndarray, np.ndarray]:
    if n <= 0 or n >= task.x_test.shape[0]:
        return task.x_test, task.y_test
    return task.x_test[:n], task.y_test[:n]


#: the weight file of each checkpoint a transfer run keeps (best_*: repro.stages.transfer, transfer.validation)
CHECKPOINT_FILES = {"last": "model.pt", "best_sa": "best_sa.pt", "best_ra": "best_ra.pt"}


def load_run_model(p: Params, run_dir: Path, task: ArrayTask, checkpoint: str = "last") -> torch.nn.Module:
    model = model_from_params(p.model, task.num_classes, mean=task.mean, std=task.std)
    f = run_dir / CHECKPOINT_FILES[checkpoint]
    load_into(model, load_state(f), f)
    return model


def load_reference(p: Params, tasks: dict) -> dict:
    """{task: robust reference model} for the transfer attack (empty when the stage has not run)."""
    t = p.transfer_attack_task
    if not reference_path(t).is_file():
        return {}
    if t not in tasks:
        tasks[t] = load_task(t)
    return {t: runtime.inference_model(load_run_model(p, reference_path(t).parent, tasks[t]))}


def evaluate_run(p: Params, run_dir: Path, tasks: dict, ood: ArrayTask | dict, reference: dict) -> dict:
    """Metrics of one run; ``ood``: the OoD task, or a cache {name: task} filled with ``data.ood_for(task)``."""
    spec = read_json(run_dir / "spec.json")
    if spec["task"] not in tasks:
        tasks[spec["task"]] = load_task(spec["task"])
    if isinstance(ood, dict):  # the run's own OoD set (data.ood_per_task), loaded once per process
        name = p.data.ood_for(spec["task"])
        ood = ood[name] if name in ood else ood.setdefault(name, load_task(name))
    task = tasks[spec["task"]]
    chosen, kept = p.evaluation.selected(spec["regime"]), spec.get("checkpoints", ["last"])
    if chosen not in kept:
        raise FileNotFoundError(f"{str(run_dir)!r} kept checkpoints {kept}, not {chosen!r} (evaluation.select."
                                f"{spec['regime']}); re-run its transfer stage with transfer.validation on")
    model = load_run_model(p, run_dir, task, chosen)
    fast = runtime.inference_model(model)  # Conv-BN folded once for every evaluation below
    e = p.evaluation
    size, bs = p.data.image_size, e.batch_size
    clean = metrics.evaluate(fast, test_loader(task, bs, size, device="cpu", recipe=p.data.recipe),
                             progress=False, n_bins=e.ece_bins, return_logits=True)
    ood_logits, _ = metrics.collect_logits(fast, array_loader(ood.x_test, None, bs, size, recipe=p.data.recipe,
                                                               device="cpu"), progress=False)
    xr, yr = robust_subset(task, e.n_robust)
    rloader = array_loader(xr, yr, bs, size, recipe=p.data.recipe, device="cpu")
    a = e.attack
    ra, adv_logits, labels = metrics.robust_accuracy(fast, rloader, eps=a.eps, alpha=a.alpha, steps=a.steps,
                                                     random_start=a.random_start, restarts=a.restarts, progress=False,
                                                     seed=p.seed, return_logits=True)
    pgd_ok = adv_logits.argmax(1) == labels
    out = {
        "sa": clean["accuracy"], "nll": clean["nll"], "ece": clean["ece"], "ra": ra,
        "ood_auroc": metrics.ood_auroc(clean["logits"], ood_logits),
        "n_test": clean["n"], "n_robust": int(yr.shape[0]),
        "measured_sparsity": spec["measured_sparsity"],
        **{k: spec[k] for k in ("kind", "method", "task", "regime", "fraction", "seed", "level")},
        **({"recipe": spec["recipe"]} if spec.get("recipe") else {}),  # a named recipe (transfer.recipes)
        "checkpoint": chosen, f"sa@{chosen}": clean["accuracy"], f"ra@{chosen}": ra,
    }
    # plausibility guard: did the run learn at all (loss fell, SA above chance)?
    out.update(plausibility.check_learned(plausibility.read_train_losses(run_dir / "history.csv"), out["sa"],
                                          task.y_test, task.num_classes))
    strong = None
    run = RunSpec.of(spec)
    if aa_graded(p, run):
        ra_aa, aa_ok, trace = metrics.robust_accuracy_aa(
            fast, rloader, eps=a.eps, steps=e.aa_steps, members=e.aa_members, n_target_classes=e.aa_target_classes,
            robust=pgd_ok, progress=False, seed=p.seed, return_details=True)
        clean_ok = clean["logits"][:len(labels)].argmax(1) == labels
        out["ra_aa"] = ra_aa
        out["aa"] = {"attack": " -> ".join(("pgd20",) + tuple(e.aa_members)), "steps": e.aa_steps,
                     "target_classes": e.aa_target_classes, "n": int(len(labels)),
                     "robust_after": {"clean": int(clean_ok.sum()), "pgd20": int(pgd_ok.sum()),
                                      **{m: trace.get(m, 0) for m in e.aa_members}}}
        strong = (pgd_ok, aa_ok)
    if e.adv_acc_eps and adv_acc_run(p, run):
        todo = e.adv_acc_attacked()  # the RA attack itself is not run twice: its budget reuses `ra`
        accs = dict(zip(todo, metrics.adv_acc_sweep(fast, rloader, todo, steps=a.steps, progress=False, seed=p.seed)))
        out["adv_acc"] = {f"{eps * 255:g}/255": accs.get(eps, ra) for eps in e.adv_acc_eps}
        out["adv_acc_attack"] = f"PGD-{a.steps}, step eps/4, random start (RT 'Adv-Acc'; the paper states no attack)"
    for other in (c for c in kept if c != chosen):  # test SA/RA of the other kept checkpoints
        m = runtime.inference_model(load_run_model(p, run_dir, task, other))
        out[f"sa@{other}"] = metrics.accuracy(*metrics.collect_logits(
            m, test_loader(task, bs, size, device="cpu", recipe=p.data.recipe), progress=False))
        out[f"ra@{other}"] = metrics.robust_accuracy(m, rloader, eps=a.eps, alpha=a.alpha, steps=a.steps,
                                                     random_start=a.random_start, restarts=a.restarts,
                                                     progress=False, seed=p.seed)
    if e.sanity_images > 0:  # attack sanity on the first images attacked for RA, recorded next to it
        from .. import sanity

        k = min(e.sanity_images, int(yr.shape[0]))
        xs, ys = next(iter(array_loader(xr[:k], yr[:k], k, size, recipe=p.data.recipe, device="cpu")))
        out["sanity"] = sanity.attack_sanity(
            fast, xs, ys, clean["logits"][:k], adv_logits[:k], eps=a.eps, alpha=a.alpha, steps=a.steps,
            random_start=a.random_start, restarts=a.restarts, sanity_alpha=e.sanity_alpha,
            strong_steps=e.sanity_strong_steps, seed=p.seed, strong=strong)
        out["sanity_ok"] = out["sanity"]["ok"]
    mask_file = run_dir / "mask.pt"
    if mask_file.is_file():
        mask = Mask.load(mask_file)
        params = dict(model.named_parameters())
        out["mask_violations"] = int(sum(int(torch.count_nonzero(params[k].detach()[~m])) for k, m in mask.items()))
    if spec["regime"] == "adversarial" and spec["task"] in reference:
        out["transfer_attack_acc"] = metrics.transfer_attack_accuracy(
            fast, reference[spec["task"]], rloader, progress=False, seed=p.seed,
            eps=a.eps, alpha=a.alpha, steps=a.steps, random_start=a.random_start)
    return out


_STATE: dict = {}  # tasks, OoD set and reference model, loaded once and shared with forked workers


def _evaluate_one(p: Params, src: Path, dst: Path, run_dir: Path) -> tuple[str, dict]:
    rel = run_dir.relative_to(src)
    m = evaluate_run(p, run_dir, _STATE["tasks"], _STATE["ood"], _STATE["reference"])
    write_json(dst / rel / "metrics.json", m)
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
        work = partial(_evaluate_one, p, src, RUNS / "eval" / lv)
        for i, (rel, m) in enumerate(parallel_map(work, run_dirs, n_workers(p)), 1):
            flag = "" if m.get("sanity_ok", True) else f" attack sanity FAILED: {', '.join(m['sanity']['failed'])}"
            aa = f" RA(AA) {m['ra_aa']:.3f}" if "ra_aa" in m else ""
            flag += "" if m["learned"] else f" DID NOT LEARN: {m['learned_why']}"
            log(f"evaluate@{lv}", f"[{i}/{len(run_dirs)}] {rel}: SA {m['sa']:.3f} RA(PGD-20) {m['ra']:.3f}{aa}{flag}")
        (RUNS / "eval" / lv).mkdir(parents=True, exist_ok=True)
    return body


def main(argv=None) -> int:
    return level_main("evaluate", body_for, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
