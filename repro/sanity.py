"""Attack sanity checks, run beside every robust-accuracy (RA) number.

A robust accuracy is only meaningful if the attack behind it worked. On a small fixed
subset of the attacked images (the first ``evaluation.sanity_images`` of them) every
evaluation also records the checks below, in the spirit of Athalye et al. (ICML 2018) and
Carlini et al. ("On evaluating adversarial robustness", 2019); a failure is the usual
signature of gradient masking (or of a broken evaluation pipeline):

* ``eps_monotone``: accuracy under PGD does not rise as the budget grows
  (clean = eps 0, eps/4, eps/2, eps);
* ``pgd_le_fgsm``: the multi-step PGD is at least as strong as one-step FGSM;
* ``eps0_equals_sa``: PGD with eps = 0 through the robust-evaluation path gives exactly
  the clean predictions, hence the clean accuracy, of the same images (no randomness or mode
  change in the pipeline);
* ``noise_weaker_than_pgd``: uniform random noise in the same eps-ball leaves strictly
  more images correctly classified than PGD does, unless noise already leaves none
  (an attack no better than random noise has no useful gradient);
* ``strong_attack_agrees``: a stronger attack run on the images PGD left correct does not
  lower the accuracy by more than chance allows. The stronger attack is the AutoAttack
  ensemble behind ``ra_aa`` (APGD-CE, then APGD-T; :func:`repro.attacks.autoattack`) on every
  attacked image when the evaluation computes ``ra_aa``, else the same ensemble with
  ``sanity_strong_steps`` iterations and one target class (the top wrong one) on the subset. APGD's DLR losses are invariant to the
  scale of the logits, so they also see through saturated softmax outputs.

Tolerance. The three "attack A is not weaker than attack B" checks (``eps_monotone``,
``pgd_le_fgsm``, ``strong_attack_agrees``) are paired comparisons on the same images: with
``b`` images that B breaks and A leaves correct and ``c`` the reverse, a check fails when the
one-sided exact sign test (McNemar's exact test) rejects "A and B are equally strong" at level
``alpha``: ``P(Bin(b + c, 1/2) >= b) < alpha``. The tolerance therefore shrinks as 1/n with the
number of attacked images: at ``alpha`` = 0.05 and ``c`` = 0 (the strong attack runs only on
PGD's survivors) 5 images are flagged, i.e. 5 points on 100 attacked images, 0.05 points on
the 10 000 of CIFAR's test set, where a fixed 10 points would hide the whole PGD/AutoAttack gap.

Accuracies are fractions of the images; an image counts as correct under an attack only if
it is also classified correctly clean (clean-misclassified images are not attacked, as in
AutoAttack). The PGD accuracy is that of the reported RA attack itself: its adversarial
logits are reused, not recomputed. The eps/4 and eps/2 attacks are PGD-5
with step 2.5 eps'/5 (Madry et al.'s rule), random start. Every attack and classification
runs in float32 (autocast off). Cost: see docs/RELIABILITY.md.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .base import runtime
from .attacks import autoattack, bn_mode, fgsm, full_precision, no_param_grad, pgd
from .attacks.linf import linf_attack
from .plausibility import run_label

CHECKS = {
    "eps_monotone": "accuracy under PGD does not rise significantly as eps grows (0, eps/4, eps/2, eps)",
    "pgd_le_fgsm": "PGD is not significantly weaker than FGSM",
    "eps0_equals_sa": "PGD with eps = 0 gives exactly the clean predictions (so the SA) of the same images",
    "noise_weaker_than_pgd": "uniform noise in the eps-ball leaves more images correct than PGD (unless none)",
    "strong_attack_agrees": "APGD-CE + APGD-T on PGD's survivors do not lower the accuracy significantly",
}

#: seed offsets of the sanity attacks' random streams (independent of the RA attack's)
_SEED_NOISE, _SEED_PGD, _SEED_STRONG = 101, 202, 303


def sign_test_p(b: int, c: int) -> float:
    """One-sided exact sign test (McNemar's exact test): ``P(Bin(b + c, 1/2) >= b)``, the chance of at least
    ``b`` of the ``b + c`` discordant images going one way if both attacks were equally strong."""
    from scipy.stats import binomtest

    b, c = int(b), int(c)
    return 1.0 if b == 0 else float(binomtest(b, b + c, 0.5, alternative="greater").pvalue)


def min_flagged(alpha: float, c: int = 0) -> int:
    """The smallest excess ``b`` (with ``c`` discordant images the other way) that a check flags at ``alpha``."""
    b = 1
    while sign_test_p(b, c) >= alpha:
        b += 1
    return b


def weaker(a_ok: torch.Tensor, b_ok: torch.Tensor, alpha: float) -> dict:
    """Is attack A significantly weaker than attack B on the same images? ``a_ok``/``b_ok``: correct per image."""
    b = int((a_ok & ~b_ok).sum())  # B broke, A did not
    c = int((b_ok & ~a_ok).sum())  # A broke, B did not
    p = sign_test_p(b, c)
    return {"b": b, "c": c, "p": round(p, 6), "flag": p < alpha}


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
    (``attacks.linf_attack`` with per-image eps and alpha). One batch because a step on these small
    subsets costs the same for 16 or 32 images."""
    k = len(budgets)
    xs, ys = x.repeat(k, *([1] * (x.dim() - 1))), y.repeat(k)
    e = torch.tensor(budgets, dtype=x.dtype, device=x.device).repeat_interleave(len(x)).view(-1, *([1] * (x.dim() - 1)))
    with no_param_grad(model), torch.enable_grad():
        return linf_attack(model, xs, ys, e, 2.5 * e / steps, steps, random_start=True, loss="ce", amp=False,
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
    sanity_alpha: float = 0.05,
    strong_steps: int = 10,
    seed: int = 0,
    strong: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
) -> dict:
    """The sanity checks of one robust evaluation on the images ``x`` (in [0, 1]) with labels ``y``.

    ``clean_logits`` / ``pgd_logits``: the clean and the reported PGD attack's logits of the
    same images (rows in the same order); ``alpha``/``steps``/``restarts`` describe that
    attack. ``sanity_alpha``: the level of the paired sign tests (module docstring).
    ``strong``: ``(pgd_correct, strong_correct)`` per image of *every* attacked image, when the
    evaluation ran the stronger attack itself (``ra_aa``); otherwise it runs here on ``x``
    (APGD-CE + APGD-T towards the top wrong class, ``strong_steps`` iterations). The model is attacked in eval mode, Conv-BN
    folded as for the RA (:func:`repro.base.runtime.inference_model`; ``model`` itself is not changed),
    in float32. Returns ``{"n", "eps", "alpha", "strong_steps", "strong_n", "accuracy": {...},
    "tests": {check: {b, c, p, flag}}, "checks": {name: bool}, "ok": bool, "failed": [names]}``.
    """
    n = len(x)
    if n == 0 or len(y) != n or len(clean_logits) != n or len(pgd_logits) != n:
        raise ValueError(f"attack_sanity needs the same non-zero number of images, labels and logits, got "
                         f"{n}, {len(y)}, {len(clean_logits)}, {len(pgd_logits)}")
    if not 0 < sanity_alpha < 1:
        raise ValueError(f"attack_sanity: sanity_alpha must be in (0, 1), got {sanity_alpha}")
    model = runtime.inference_model(model)  # the model the reported RA attacked (metrics.collect_logits)
    dev = next(iter(model.parameters())).device
    x, y = x.to(dev), y.to(dev).long()
    yc = y.cpu()
    clean_ok = clean_logits.argmax(1).cpu() == yc
    pgd_ok = (pgd_logits.argmax(1).cpu() == yc) & clean_ok
    ok = {"clean": clean_ok, "pgd": pgd_ok}

    def under(attack, subset: torch.Tensor) -> torch.Tensor:
        """Correct per image when the images of ``subset`` (bool mask) are attacked; the others count as wrong."""
        out = torch.zeros(n, dtype=torch.bool)
        idx = subset.nonzero().flatten()
        if len(idx):
            xi, yi = x[idx.to(dev)], y[idx.to(dev)]
            out[idx] = _correct(model, attack(xi, yi), yi)
        return out

    with bn_mode(model, "eval"), full_precision(dev):
        # the robust-evaluation path with a zero budget, on every image
        with torch.no_grad():
            eps0_pred = model(pgd(model, x, y, eps=0.0, alpha=alpha, steps=steps)).argmax(1).cpu()
        ok["eps0"] = eps0_pred == yc
        eps0_same = bool((eps0_pred == clean_logits.argmax(1).cpu()).all())
        # PGD-5 at eps/4 and eps/2 in one batch (per-image budgets), on the clean-correct images
        idx = clean_ok.nonzero().flatten()
        fracs = (0.25, 0.5)
        for f in fracs:
            ok[f"pgd_eps/{int(1 / f)}"] = torch.zeros(n, dtype=torch.bool) if eps > 0 else clean_ok.clone()
        if len(idx) and eps > 0:
            xi, yi = x[idx.to(dev)], y[idx.to(dev)]
            got = _correct(model, _pgd_budgets(model, xi, yi, [eps * f for f in fracs], steps=5,
                                               generator=_generator(seed, _SEED_PGD)), yi.repeat(len(fracs)))
            for j, f in enumerate(fracs):
                ok[f"pgd_eps/{int(1 / f)}"][idx] = got[j * len(idx):(j + 1) * len(idx)]
        ok["fgsm"] = under(lambda xi, yi: fgsm(model, xi, yi, eps=eps), clean_ok)
        g = _generator(seed, _SEED_NOISE)
        ok["noise"] = under(lambda xi, yi: (xi + torch.rand(xi.shape, generator=g, dtype=xi.dtype).mul_(2.0).sub_(1.0)
                                            .mul_(eps).to(dev)).clamp(0.0, 1.0), clean_ok)
        if strong is None:  # the stronger attack here, on the images the reported PGD left correct
            strong_pgd = pgd_ok
            # APGD-T towards the top wrong class only: the cost of the former APGD-CE + APGD-DLR pair
            strong_ok = under(lambda xi, yi: autoattack(model, xi, yi, eps=eps, steps=strong_steps, n_target_classes=1,
                                                        members=("apgd-ce", "apgd-t"),
                                                        generator=_generator(seed, _SEED_STRONG)), pgd_ok) & pgd_ok
        else:
            strong_pgd, strong_ok = (t.cpu().bool() for t in strong)
            if len(strong_pgd) != len(strong_ok) or len(strong_ok) == 0:
                raise ValueError(f"attack_sanity: strong needs two equal non-empty per-image vectors, got "
                                 f"{len(strong_pgd)} and {len(strong_ok)}")
    acc = {k: v.float().mean().item() for k, v in ok.items()}
    acc["strong"] = strong_ok.float().mean().item()
    acc["strong_pgd"] = strong_pgd.float().mean().item()  # PGD's accuracy on the images of `strong`
    a = float(sanity_alpha)
    seq = ["clean", "pgd_eps/4", "pgd_eps/2", "pgd"]
    # a larger budget weaker than a smaller one: the later attack A vs the earlier B
    mono = [weaker(ok[hi], ok[lo], a) for lo, hi in zip(seq, seq[1:])]
    tests = {
        "eps_monotone": max(mono, key=lambda t: (t["flag"], -t["p"])),
        "pgd_le_fgsm": weaker(ok["pgd"], ok["fgsm"], a),
        "strong_attack_agrees": weaker(strong_pgd, strong_ok, a),
    }
    checks = {
        "eps_monotone": not any(t["flag"] for t in mono),
        "pgd_le_fgsm": not tests["pgd_le_fgsm"]["flag"],
        "eps0_equals_sa": eps0_same and acc["eps0"] == acc["clean"],
        "noise_weaker_than_pgd": acc["noise"] > acc["pgd"] or acc["noise"] == 0.0,
        "strong_attack_agrees": not tests["strong_attack_agrees"]["flag"],
    }
    failed = [k for k, good in checks.items() if not good]
    return {"n": n, "eps": float(eps), "alpha": a, "strong_steps": int(strong_steps), "strong_n": len(strong_ok),
            "accuracy": {k: round(v, 6) for k, v in acc.items()}, "tests": tests, "checks": checks,
            "ok": not failed, "failed": failed}


def summarize(rows: list[dict], run_id=None) -> dict:
    """Aggregate the sanity results of evaluated runs: counts per check and the flagged runs.

    ``rows``: metrics.json contents; rows without a ``sanity`` entry (checks off) are counted
    as ``not_checked``. ``run_id(row)`` names a run in the list of flagged ones.
    """
    run_id = run_id or run_label
    checked = [r for r in rows if isinstance(r.get("sanity"), dict)]
    flagged = [r for r in checked if not r["sanity"]["ok"]]
    return {
        "robust_evaluations": len(rows),
        "checked": len(checked),
        "not_checked": len(rows) - len(checked),
        "ok": len(checked) - len(flagged),
        "flagged": len(flagged),
        "failures_per_check": {c: sum(c in r["sanity"]["failed"] for r in checked) for c in CHECKS},
        # both numbers of a flagged run: RA (PGD-20) and the stronger attack's accuracy on the same images
        "flagged_runs": sorted(({"run": run_id(r), "failed": r["sanity"]["failed"], "ra": r.get("ra"),
                                 "ra_aa": r.get("ra_aa"),
                                 "strong": r["sanity"]["accuracy"].get("strong"),
                                 "strong_pgd": r["sanity"]["accuracy"].get("strong_pgd"),
                                 "strong_n": r["sanity"].get("strong_n")} for r in flagged),
                               key=lambda d: d["run"]),
    }


__all__ = ["CHECKS", "attack_sanity", "min_flagged", "sign_test_p", "summarize", "weaker"]
