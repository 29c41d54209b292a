"""Attack sanity checks, run beside every robust-accuracy (RA) number.

A robust accuracy is only meaningful if the attack behind it worked. On a small fixed
subset of the attacked images (the first ``evaluation.sanity_images`` of them) every
evaluation also records the checks below, in the spirit of Athalye et al. (ICML 2018) and
Carlini et al. ("On evaluating adversarial robustness", 2019); a failure is the usual
signature of gradient masking (or of a broken evaluation pipeline):

* ``eps_monotone``: accuracy under PGD does not rise as the budget grows
  (clean = eps 0, eps/4, eps/2, eps), within the tolerance;
* ``pgd_le_fgsm``: the multi-step PGD is at least as strong as one-step FGSM
  (PGD accuracy <= FGSM accuracy + tolerance);
* ``eps0_equals_sa``: PGD with eps = 0 through the robust-evaluation path gives exactly
  the clean predictions, hence the clean accuracy, of the same images (no randomness or mode
  change in the pipeline);
* ``noise_weaker_than_pgd``: uniform random noise in the same eps-ball leaves strictly
  more images correctly classified than PGD does, unless noise already leaves none
  (an attack no better than random noise has no useful gradient);
* ``strong_attack_agrees``: a stronger attack, APGD-CE then APGD-DLR (Croce & Hein 2020,
  the first two attacks of AutoAttack, ``sanity_strong_steps`` iterations each) run on
  the images PGD left correct, lowers the accuracy by at most the tolerance. APGD-DLR's
  loss is invariant to the scale of the logits, so it also sees through saturated softmax
  outputs.

Accuracies are fractions of the subset; an image counts as correct under an attack only if
it is also classified correctly clean (clean-misclassified images are not attacked, as in
AutoAttack). The PGD accuracy is that of the reported RA attack itself: its adversarial
logits on the subset are reused, not recomputed. The eps/4 and eps/2 attacks are PGD-5
with step 2.5 eps'/5 (Madry et al.'s rule), random start. Cost (embedded default, 2 CPU
cores): about 0.1 s per evaluated run; see docs/RELIABILITY.md.
"""
from __future__ import annotations

import torch
from torch import nn

from . import runtime
from .attacks import _linf_attack, apgd, bn_mode, fgsm, no_param_grad, pgd

CHECKS = {
    "eps_monotone": "accuracy under PGD does not rise as eps grows (0, eps/4, eps/2, eps), within the tolerance",
    "pgd_le_fgsm": "PGD accuracy <= FGSM accuracy + tolerance",
    "eps0_equals_sa": "PGD with eps = 0 gives exactly the clean predictions (so the SA) of the same images",
    "noise_weaker_than_pgd": "uniform noise in the eps-ball leaves more images correct than PGD (unless none)",
    "strong_attack_agrees": "APGD-CE + APGD-DLR on PGD's survivors lower the accuracy by at most the tolerance",
}

#: seed offsets of the sanity attacks' random streams (independent of the RA attack's)
_SEED_NOISE, _SEED_PGD, _SEED_STRONG = 101, 202, 303


def _generator(seed: int, offset: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) + offset)


@torch.no_grad()
def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if len(x) == 0:
        return torch.zeros(0, dtype=torch.bool)
    return (model(x).argmax(1) == y).cpu()


def _pgd_budgets(model: nn.Module, x: torch.Tensor, y: torch.Tensor, budgets: list[float], steps: int,
                 generator: torch.Generator) -> torch.Tensor:
    """L-inf PGD (uniform random start, signed steps of 2.5 eps / steps, projection, clamp to [0, 1]) at
    several budgets in one batch: the images repeated once per budget, each copy with its own eps
    (``attacks._linf_attack`` with per-image eps and alpha). One batch because a step on these small
    subsets costs the same for 16 or 32 images."""
    k = len(budgets)
    xs, ys = x.repeat(k, *([1] * (x.dim() - 1))), y.repeat(k)
    e = torch.tensor(budgets, dtype=x.dtype, device=x.device).repeat_interleave(len(x)).view(-1, *([1] * (x.dim() - 1)))
    with no_param_grad(model), torch.enable_grad():
        return _linf_attack(model, xs, ys, e, 2.5 * e / steps, steps, random_start=True, loss="ce", amp=False,
                            generator=generator)


def attack_sanity(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    clean_logits: torch.Tensor,
    pgd_logits: torch.Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool = True,
    restarts: int = 1,
    tolerance: float = 0.1,
    strong_steps: int = 10,
    seed: int = 0,
) -> dict:
    """The sanity checks of one robust evaluation on the images ``x`` (in [0, 1]) with labels ``y``.

    ``clean_logits`` / ``pgd_logits``: the clean and the reported PGD attack's logits of the
    same images (rows in the same order); ``alpha``/``steps``/``restarts`` describe that
    attack. The model is attacked in eval mode, Conv-BN folded as for the RA
    (:func:`repro.runtime.inference_model`; ``model`` itself is not changed). Returns
    ``{"n", "eps", "tolerance", "strong_steps", "accuracy": {...}, "checks": {name: bool},
    "ok": bool, "failed": [names]}``.
    """
    n = len(x)
    if n == 0 or len(y) != n or len(clean_logits) != n or len(pgd_logits) != n:
        raise ValueError(f"attack_sanity needs the same non-zero number of images, labels and logits, got "
                         f"{n}, {len(y)}, {len(clean_logits)}, {len(pgd_logits)}")
    model = runtime.inference_model(model)  # the model the reported RA attacked (metrics.collect_logits)
    dev = next(iter(model.parameters())).device
    x, y = x.to(dev), y.to(dev).long()
    yc = y.cpu()
    clean_ok = clean_logits.argmax(1).cpu() == yc
    pgd_ok = (pgd_logits.argmax(1).cpu() == yc) & clean_ok
    acc = {"clean": clean_ok.float().mean().item(), "pgd": pgd_ok.float().mean().item()}

    def under(attack, subset: torch.Tensor) -> float:
        """Accuracy when the images of ``subset`` (bool mask) are attacked; the others count as wrong."""
        idx = subset.nonzero().flatten()
        if len(idx) == 0:
            return 0.0
        xi, yi = x[idx.to(dev)], y[idx.to(dev)]
        return _correct(model, attack(xi, yi), yi).float().sum().item() / n

    with bn_mode(model, "eval"):
        # the robust-evaluation path with a zero budget, on every image
        with torch.no_grad():
            eps0_pred = model(pgd(model, x, y, eps=0.0, alpha=alpha, steps=steps)).argmax(1).cpu()
        acc["eps0"] = (eps0_pred == yc).float().mean().item()
        eps0_same = bool((eps0_pred == clean_logits.argmax(1).cpu()).all())
        # PGD-5 at eps/4 and eps/2 in one batch (per-image budgets), on the clean-correct images
        idx = clean_ok.nonzero().flatten()
        fracs = (0.25, 0.5)
        if len(idx) and eps > 0:
            xi, yi = x[idx.to(dev)], y[idx.to(dev)]
            ok = _correct(model, _pgd_budgets(model, xi, yi, [eps * f for f in fracs], steps=5,
                                              generator=_generator(seed, _SEED_PGD)), yi.repeat(len(fracs)))
            for j, f in enumerate(fracs):
                acc[f"pgd_eps/{int(1 / f)}"] = ok[j * len(idx):(j + 1) * len(idx)].float().sum().item() / n
        else:
            acc["pgd_eps/4"] = acc["pgd_eps/2"] = acc["clean"]
        acc["fgsm"] = under(lambda xi, yi: fgsm(model, xi, yi, eps=eps), clean_ok)
        g = _generator(seed, _SEED_NOISE)
        acc["noise"] = under(lambda xi, yi: (xi + torch.rand(xi.shape, generator=g, dtype=xi.dtype).mul_(2.0).sub_(1.0)
                                             .mul_(eps).to(dev)).clamp(0.0, 1.0), clean_ok)
        # the stronger attack, on the images the reported PGD left correct (worst case over all three)
        still = pgd_ok.clone()
        objectives = ("ce", "dlr") if clean_logits.shape[1] >= 3 else ("ce",)
        for objective in objectives if eps > 0 else ():
            idx = still.nonzero().flatten()
            if len(idx) == 0:
                break
            xi, yi = x[idx.to(dev)], y[idx.to(dev)]
            x_adv = apgd(model, xi, yi, eps=eps, steps=strong_steps, objective=objective,
                         generator=_generator(seed, _SEED_STRONG))
            still[idx] = _correct(model, x_adv, yi)
        acc["strong"] = still.float().mean().item()
    tol = float(tolerance)
    seq = [acc["clean"], acc["pgd_eps/4"], acc["pgd_eps/2"], acc["pgd"]]
    checks = {
        "eps_monotone": all(b <= a + tol + 1e-9 for a, b in zip(seq, seq[1:])),
        "pgd_le_fgsm": acc["pgd"] <= acc["fgsm"] + tol + 1e-9,
        "eps0_equals_sa": eps0_same and acc["eps0"] == acc["clean"],
        "noise_weaker_than_pgd": acc["noise"] > acc["pgd"] or acc["noise"] == 0.0,
        "strong_attack_agrees": acc["pgd"] - acc["strong"] <= tol + 1e-9,
    }
    failed = [k for k, ok in checks.items() if not ok]
    return {"n": n, "eps": float(eps), "tolerance": tol, "strong_steps": int(strong_steps),
            "accuracy": {k: round(v, 6) for k, v in acc.items()}, "checks": checks,
            "ok": not failed, "failed": failed}


def summarize(rows: list[dict], run_id=None) -> dict:
    """Aggregate the sanity results of evaluated runs: counts per check and the flagged runs.

    ``rows``: metrics.json contents; rows without a ``sanity`` entry (checks off) are counted
    as ``not_checked``. ``run_id(row)`` names a run in the list of flagged ones.
    """
    run_id = run_id or (lambda r: "{kind}-{method}/{task}/{regime}-f{fraction:g}-seed{seed}@{level}".format(**r))
    checked = [r for r in rows if isinstance(r.get("sanity"), dict)]
    flagged = [r for r in checked if not r["sanity"]["ok"]]
    return {
        "robust_evaluations": len(rows),
        "checked": len(checked),
        "not_checked": len(rows) - len(checked),
        "ok": len(checked) - len(flagged),
        "flagged": len(flagged),
        "failures_per_check": {c: sum(c in r["sanity"]["failed"] for r in checked) for c in CHECKS},
        "flagged_runs": sorted(({"run": run_id(r), "failed": r["sanity"]["failed"]} for r in flagged),
                               key=lambda d: d["run"]),
    }


__all__ = ["CHECKS", "attack_sanity", "summarize"]
