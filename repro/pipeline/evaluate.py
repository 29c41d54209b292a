"""The metrics of one transfer run (stage ``evaluate@<level>``, ``study``): SA, NLL, ECE, OoD AUROC, RA under
PGD-20 and the AutoAttack-grade ensemble, the Adv-Acc sweep, the transfer attack, the attack sanity checks, the
plausibility guard and the mask check (the evaluate stage's docstring lists them); and the record the claims'
statistics need (``per_image_record``, ``bootstrap_se``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import metrics, plausibility
from ..base import devices, runtime
from ..base.io import pack_bits, read_json
from ..config import Params
from ..data import ArrayTask, array_loader, test_loader
from ..models import model_from_params
from ..plan import RUNS, EpsChoice, RunSpec, aa_graded, adv_acc_run
from ..tickets.mask import Mask
from .inputs import load_into, load_state, load_task

#: the weight file of each checkpoint a transfer run keeps (best_*: repro.stages.transfer, transfer.validation)
CHECKPOINT_FILES = {"last": "model.pt", "best_sa": "best_sa.pt", "best_ra": "best_ra.pt"}


def reference_path(task: str) -> Path:
    return RUNS / "reference" / task / "model.pt"


def robust_subset(task: ArrayTask, n: int) -> tuple[np.ndarray, np.ndarray]:
    if n <= 0 or n >= task.x_test.shape[0]:
        return task.x_test, task.y_test
    return task.x_test[:n], task.y_test[:n]


def robust_loader(p: Params, task: ArrayTask):
    """The test images every RA of a run attacks (the first ``evaluation.n_robust``), in evaluation batches for the
    stage's resolved device (pinned memory on CUDA)."""
    xr, yr = robust_subset(task, p.evaluation.n_robust)
    return array_loader(xr, yr, p.evaluation.batch_size, p.data.image_size, recipe=p.data.recipe,
                        device=runtime.device(p.device))


def load_run_model(p: Params, run_dir: Path, task: ArrayTask, checkpoint: str = "last") -> torch.nn.Module:
    """A run's network with the weights of ``checkpoint``, on the stage's resolved device (``devices.place``)."""
    model = model_from_params(p.model, task.num_classes, mean=task.mean, std=task.std)
    f = run_dir / CHECKPOINT_FILES[checkpoint]
    load_into(model, load_state(f), f)
    return devices.place(model, runtime.device(p.device))


def load_reference(p: Params, tasks: dict) -> dict:
    """{task: robust reference model} for the transfer attack (empty when the stage has not run)."""
    t = p.transfer_attack_task
    if not reference_path(t).is_file():
        return {}
    if t not in tasks:
        tasks[t] = load_task(t)
    model = runtime.inference_model(load_run_model(p, reference_path(t).parent, tasks[t]))
    reference_examples(p, tasks[t], model)  # crafted here, before the stage forks its workers, which inherit them
    return {t: model}


# --------------------------------------------------------------------------- the claims' per-run record

#: bootstrap resamples of the test images behind each run's ``se`` (NLL, ECE, OoD AUROC)
BOOTSTRAP_DRAWS = 200


def per_image_record(clean_ok, pgd_ok, aa_ok=None, ta_ok=None) -> dict:
    """Which test images the run got right (``correct`` of its metrics): clean (``sa``, every test image), under
    PGD-20 (``ra``), under the AutoAttack-grade ensemble (``ra_aa``) and the transfer attack
    (``transfer_attack_acc``) on the attacked images. Two runs on the same task score the same images, so the
    claims compare their accuracies image by image (paired), not as independent samples. Bit-packed
    (``base.io.pack_bits``: 300 images are 52 characters)."""
    out = {"sa": pack_bits(clean_ok), "ra": pack_bits(pgd_ok)}
    if aa_ok is not None:
        out["ra_aa"] = pack_bits(aa_ok)
    if ta_ok is not None:
        out["transfer_attack_acc"] = pack_bits(ta_ok)
    return out


def bootstrap_se(logits, labels, ood_logits, n_bins: int, seed: int, draws: int = BOOTSTRAP_DRAWS) -> dict:
    """Bootstrap standard errors over the test images of NLL, ECE (``n_bins`` bins) and OoD AUROC (in- and
    out-of-distribution images resampled separately), each computed by its own ``metrics`` function on every
    resample: the sampling error of one run's metric, which a single seed cannot show (``se`` of the run's
    metrics)."""
    rng = np.random.default_rng(seed)
    logits, labels, ood_logits = (torch.as_tensor(t) for t in (logits, labels, ood_logits))
    n, m = len(labels), len(ood_logits)
    stats: dict[str, list[float]] = {"nll": [], "ece": [], "ood_auroc": []}
    for _ in range(draws):
        i, j = torch.from_numpy(rng.integers(0, n, n)), torch.from_numpy(rng.integers(0, m, m))
        lg, y = logits[i], labels[i]
        stats["nll"].append(metrics.nll(lg, y))
        stats["ece"].append(metrics.ece(lg, y, n_bins=n_bins, from_logits=True))
        stats["ood_auroc"].append(metrics.ood_auroc(lg, ood_logits[j]))
    return {k: round(float(np.std(v, ddof=1)), 6) for k, v in stats.items()}


def evaluate_run(p: Params, run_dir: Path, tasks: dict, ood: ArrayTask | dict, reference: dict,
                 choice: EpsChoice | None = None) -> dict:
    """Metrics of one run; ``ood``: the OoD task, or a cache {name: task} filled with ``data.ood_for(task)``;
    ``choice``: RT's chosen ε (which runs RT's claims read, ``repro.plan.in_experiment``)."""
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
    dev = runtime.device(p.device)  # the model's, and the loaders pin memory for it
    fast = runtime.inference_model(model)  # Conv-BN folded once for every evaluation below
    e = p.evaluation
    size, bs = p.data.image_size, e.batch_size
    clean = metrics.evaluate(fast, test_loader(task, bs, size, device=dev, recipe=p.data.recipe),
                             progress=False, n_bins=e.ece_bins, return_logits=True)
    if not bool(torch.isfinite(clean["logits"]).all()):  # a diverged run: no metric of it means anything
        return diverged(spec, run_dir, chosen, clean["n"])
    ood_logits, _ = metrics.collect_logits(fast, array_loader(ood.x_test, None, bs, size, recipe=p.data.recipe,
                                                               device=dev), progress=False)
    xr, yr = robust_subset(task, e.n_robust)
    rloader = robust_loader(p, task)
    a = e.attack
    ra, adv_logits, labels = metrics.robust_accuracy(fast, rloader, eps=a.eps, alpha=a.alpha, steps=a.steps,
                                                     random_start=a.random_start, restarts=a.restarts, progress=False,
                                                     seed=p.seed, return_logits=True)
    pgd_ok = adv_logits.argmax(1) == labels
    clean_ok = clean["logits"].argmax(1) == clean["labels"]
    out = {
        "sa": clean["accuracy"], "nll": clean["nll"], "ece": clean["ece"], "ra": ra,
        "ood_auroc": metrics.ood_auroc(clean["logits"], ood_logits),
        "n_test": clean["n"], "n_robust": int(yr.shape[0]), **identity(spec, chosen),
        f"sa@{chosen}": clean["accuracy"], f"ra@{chosen}": ra,
        "se": bootstrap_se(clean["logits"], clean["labels"], ood_logits, e.ece_bins, p.seed),
    }
    # plausibility guard: did the run learn at all (loss fell, SA above chance)?
    out.update(plausibility.check_learned(plausibility.read_train_losses(run_dir / "history.csv"), out["sa"],
                                          task.y_test, task.num_classes))
    strong, aa_ok, ta_ok = None, None, None
    run = RunSpec.of(spec)
    if aa_graded(p, run, choice):
        ra_aa, aa_ok, trace = metrics.robust_accuracy_aa(
            fast, rloader, eps=a.eps, steps=e.aa_steps, members=e.aa_members, n_target_classes=e.aa_target_classes,
            queries=e.aa_queries, robust=pgd_ok, progress=False, seed=p.seed, return_details=True)
        attacked_clean_ok = clean_ok[:len(labels)]  # the attacked images are the first test images
        out["ra_aa"] = ra_aa
        out["aa"] = {"name": e.aa_name(), "members": list(e.aa_members),
                     "attack": " -> ".join(("pgd20",) + tuple(e.aa_members)), "steps": e.aa_steps,
                     "target_classes": e.aa_target_classes, "queries": e.aa_queries, "n": int(len(labels)),
                     "robust_after": {"clean": int(attacked_clean_ok.sum()), "pgd20": int(pgd_ok.sum()),
                                      **{m: trace.get(m, 0) for m in e.aa_members}}}
        strong = (pgd_ok, aa_ok)
    if e.adv_acc_eps and adv_acc_run(p, run, choice):
        todo = e.adv_acc_attacked()  # the RA attack itself is not run twice: its budget reuses `ra`
        accs = dict(zip(todo, metrics.adv_acc_sweep(fast, rloader, todo, steps=a.steps, progress=False, seed=p.seed)))
        out["adv_acc"] = {f"{eps * 255:g}/255": accs.get(eps, ra) for eps in e.adv_acc_eps}
        out["adv_acc_attack"] = f"PGD-{a.steps}, step eps/4, random start (RT 'Adv-Acc'; the paper states no attack)"
    for other in (c for c in kept if c != chosen):  # test SA/RA of the other kept checkpoints
        m = runtime.inference_model(load_run_model(p, run_dir, task, other))
        out[f"sa@{other}"] = metrics.accuracy(*metrics.collect_logits(
            m, test_loader(task, bs, size, device=dev, recipe=p.data.recipe), progress=False))
        out[f"ra@{other}"] = metrics.robust_accuracy(m, rloader, eps=a.eps, alpha=a.alpha, steps=a.steps,
                                                     random_start=a.random_start, restarts=a.restarts,
                                                     progress=False, seed=p.seed)
    if e.sanity_images > 0:  # attack sanity on the first images attacked for RA, recorded next to it
        from .. import sanity

        k = min(e.sanity_images, int(yr.shape[0]))
        xs, ys = next(iter(array_loader(xr[:k], yr[:k], k, size, recipe=p.data.recipe, device=dev)))
        out["sanity"] = sanity.attack_sanity(
            fast, xs, ys, clean["logits"][:k], adv_logits[:k], eps=a.eps, alpha=a.alpha, steps=a.steps,
            random_start=a.random_start, restarts=a.restarts, sanity_alpha=e.sanity_alpha,
            strong_steps=e.sanity_strong_steps, seed=p.seed, strong=strong)
        out["sanity_ok"] = out["sanity"]["ok"]
    mask_file = run_dir / "mask.pt"
    if mask_file.is_file():
        mask = Mask.load(mask_file)
        params = dict(model.named_parameters())
        out["mask_violations"] = int(sum(int(torch.count_nonzero(params[k].detach()[~m.to(params[k].device)])) for k, m in mask.items()))
    if spec["regime"] == "adversarial" and spec["task"] in reference:
        ta, ta_logits, ta_labels = metrics.transfer_attack_accuracy(
            fast, reference[spec["task"]], rloader, progress=False, seed=p.seed,
            eps=a.eps, alpha=a.alpha, steps=a.steps, random_start=a.random_start,
            examples=reference_examples(p, task, reference[spec["task"]]), return_logits=True)
        ta_ok = ta_logits.argmax(1) == ta_labels
        out["transfer_attack_acc"] = ta
    out["correct"] = per_image_record(clean_ok, pgd_ok, aa_ok, ta_ok)
    return out


def identity(spec: dict, chosen: str) -> dict:
    """What a run's metrics record says the run is: its spec's fields, a named recipe (transfer.recipes), the
    pretrained model's eps-grid source and eps, its measured sparsity and the checkpoint evaluated."""
    return {"measured_sparsity": spec["measured_sparsity"],
            **{k: spec[k] for k in ("kind", "method", "task", "regime", "fraction", "seed", "level")},
            **({"recipe": spec["recipe"]} if spec.get("recipe") else {}),
            **{k: spec[k] for k in ("source", "eps") if spec.get(k)}, "checkpoint": chosen}


def diverged(spec: dict, run_dir: Path, chosen: str, n_test: int) -> dict:
    """The record of a run whose model outputs non-finite logits on the test images (its training diverged): no
    metric (None: ``aggregate`` and the claims skip it), ``learned: false`` with the reason, so the stage goes on
    with the other runs and the summary names this one; never a number computed from NaN."""
    losses = plausibility.read_train_losses(run_dir / "history.csv")
    return {"sa": None, "nll": None, "ece": None, "ra": None, "ood_auroc": None, "n_test": n_test, "n_robust": 0,
            **identity(spec, chosen), "diverged": True,
            "learned": False, "learned_why": "its outputs on the test images are not finite (training diverged; "
                                             f"training losses {', '.join(f'{x:.4g}' for x in losses) or 'none'})"}


#: (task, settings) -> the transfer attack's examples crafted on the reference model, in this process
_CRAFTED: dict = {}
#: at most this many bytes of crafted examples are kept (a 224-px test set at full size is crafted per run)
CRAFTED_MAX_BYTES = 1 << 30


def reference_examples(p: Params, task: ArrayTask, reference: torch.nn.Module) -> list | None:
    """The transfer attack's examples on ``task`` (PGD with ``evaluation.attack`` on the reference model, seeded
    with ``seed``): crafted once per process and reused by every adversarially fine-tuned run on the task, whose
    examples they are (they do not depend on the run). None (craft per run) when they would not fit
    ``CRAFTED_MAX_BYTES``."""
    a = p.evaluation.attack
    key = (task.name, p.seed, a, p.evaluation.n_robust, p.evaluation.batch_size, p.data.image_size, p.data.recipe)
    if key not in _CRAFTED:
        n = len(robust_subset(task, p.evaluation.n_robust)[1])
        size = n * 3 * p.data.image_size ** 2 * 4
        _CRAFTED[key] = None if size > CRAFTED_MAX_BYTES else metrics.transfer_examples(
            reference, robust_loader(p, task), progress=False, seed=p.seed, eps=a.eps, alpha=a.alpha, steps=a.steps,
            random_start=a.random_start)
    return _CRAFTED[key]
