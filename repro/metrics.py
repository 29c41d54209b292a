"""Evaluation metrics on logits / probabilities.

* SA / RA: top-1 accuracy on clean / PGD-20 (eps 8/255, alpha 2/255, random
  start) examples, attacks always crafted with the model in eval mode.
* RA under AutoAttack, ``ra_aa``: accuracy under the AutoAttack ensemble
  (:func:`repro.attacks.autoattack`; standard: APGD-CE, APGD-T, FAB-T, Square; the
  members that ran are named with the result), optionally only on the examples an
  earlier attack (the PGD-20 of RA) left correct.
* Adv-Acc sweep: RA under PGD-20 at several budgets (Robust Tickets' "Adv-Acc").
* Every attack, and the classification of its examples, runs in float32 on every
  device (autocast off, :func:`repro.attacks.full_precision`); AMP may speed up
  only the clean forward passes (SA, NLL, ECE, AUROC).
* ECE: equal-width confidence bins (15 by default), sum over bins of
  ``|acc - conf| * fraction of examples`` (Guo et al. 2017).
* NLL: mean cross-entropy.
* OoD AUROC with the maximum softmax probability as the score (Hendrycks &
  Gimpel); in-distribution is the positive class. Computed via ranks
  (Mann-Whitney U), ties count 1/2; no scikit-learn at run time.
* Transfer-attack accuracy: PGD-20 examples crafted on an independently
  trained source model, evaluated on the target (Double-Win Table A2).

Accuracies, ECE and AUROC are fractions in [0, 1] (multiply by 100 for the
papers' percentages). Logits are collected on the CPU in float32.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Callable, Iterable, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import runtime, timing
from .attacks import STANDARD_MEMBERS, autoattack, bn_mode, full_precision, pgd

__all__ = [
    "accuracy",
    "adv_acc_sweep",
    "auroc",
    "collect_logits",
    "ece",
    "evaluate",
    "nll",
    "ood_auroc",
    "robust_accuracy",
    "robust_accuracy_aa",
    "transfer_attack_accuracy",
    "transfer_examples",
]

AttackFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
ArrayLike = Union[torch.Tensor, np.ndarray, list]

# loaders with more batches than this get a progress bar (when progress=True)
PROGRESS_MIN_BATCHES = 4


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def _model_device(model: nn.Module, device=None) -> torch.device:
    if device is not None:
        return torch.device(device)
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return runtime.device()


def _batches(loader: Iterable, progress: bool, desc: str) -> Iterable:
    if not progress:
        return loader
    try:
        n = len(loader)  # type: ignore[arg-type]
    except TypeError:
        n = None
    if n is not None and n < PROGRESS_MIN_BATCHES:
        return loader
    from tqdm.auto import tqdm

    return tqdm(loader, total=n, desc=desc, leave=False)


def _xy(batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = batch[0], batch[1]
    if isinstance(x, torch.Tensor) and type(x) is not torch.Tensor:
        x = x.as_subclass(torch.Tensor)  # e.g. fastai TensorImage: plain tensors are faster in the attack
    if isinstance(y, torch.Tensor) and type(y) is not torch.Tensor:
        y = y.as_subclass(torch.Tensor)
    x = torch.as_tensor(x).to(device, non_blocking=True)
    y = torch.as_tensor(y).to(device, non_blocking=True).long()
    return x, y


def _to_tensor(a: ArrayLike, dtype=None) -> torch.Tensor:
    t = a.detach().cpu() if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a))
    return t.to(dtype) if dtype is not None else t


# --------------------------------------------------------------------------- #
# collecting predictions
# --------------------------------------------------------------------------- #
def collect_logits(
    model: nn.Module,
    loader: Iterable,
    attack: Optional[AttackFn] = None,
    device=None,
    progress: bool = True,
    amp: Optional[bool] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``[N, C]`` (float32, CPU) and labels ``[N]`` over a loader of ``(x in [0,1], y)``.

    The model runs in eval mode, as :func:`repro.base.runtime.inference_model` (its Conv-BN pairs
    folded; ``model`` itself is not changed). Clean forward passes run under
    ``torch.no_grad()``; with ``attack`` each batch is first replaced by
    ``attack(model, x, y)`` (crafted on that eval-mode model, with input gradients) and then
    classified under ``no_grad``. ``amp`` (clean passes only) defaults to
    :func:`repro.base.runtime.use_amp` of the device; with ``attack`` the attack and the classification
    of its examples always run in float32 (autocast off, also inside an enclosing autocast), and
    ``amp=True`` is an error.
    """
    dev = _model_device(model, device)
    if attack is not None and amp:
        raise ValueError("collect_logits: amp=True with an attack; attacks and the logits they classify run in float32")
    amp = (runtime.use_amp(dev) if amp is None else amp) and attack is None
    model = runtime.inference_model(model)
    all_logits, all_labels = [], []
    precision = full_precision(dev) if attack is not None else contextlib.nullcontext()
    with bn_mode(model, "eval"), precision:
        for batch in _batches(loader, progress, "attack+eval" if attack else "eval"):
            x, y = _xy(batch, dev)
            if attack is not None:
                x = attack(model, x, y)
            with torch.no_grad(), torch.autocast(device_type=dev.type, enabled=amp):
                logits = model(x)
            all_logits.append(logits.float().cpu())
            all_labels.append(y.cpu())
            timing.count_images(len(y))
    if not all_logits:
        raise ValueError("collect_logits: the loader yielded no batches")
    return torch.cat(all_logits), torch.cat(all_labels)


def evaluate(
    model: nn.Module,
    loader: Iterable,
    attack: Optional[AttackFn] = None,
    device=None,
    progress: bool = True,
    n_bins: int = 15,
    return_logits: bool = False,
) -> dict:
    """Accuracy, NLL and ECE of ``model`` on ``loader`` (clean, or under ``attack``), in eval mode.

    Returns ``{'accuracy', 'nll', 'ece', 'n'}`` (fractions / floats); with
    ``return_logits=True`` also ``'logits'`` and ``'labels'``.
    """
    logits, labels = collect_logits(model, loader, attack=attack, device=device, progress=progress)
    out = {
        "accuracy": accuracy(logits, labels),
        "nll": nll(logits, labels),
        "ece": ece(logits, labels, n_bins=n_bins, from_logits=True),
        "n": int(labels.numel()),
    }
    if return_logits:
        out["logits"], out["labels"] = logits, labels
    return out


# --------------------------------------------------------------------------- #
# metrics on logits / probabilities
# --------------------------------------------------------------------------- #
def accuracy(logits: ArrayLike, y: ArrayLike) -> float:
    """Top-1 accuracy as a fraction (SA on clean logits, RA on adversarial ones)."""
    logits, y = _to_tensor(logits), _to_tensor(y).long()
    if logits.ndim != 2 or logits.shape[0] != y.shape[0]:
        raise ValueError(f"accuracy needs logits [N, C] and labels [N], got {tuple(logits.shape)} and {tuple(y.shape)}")
    if y.numel() == 0:
        raise ValueError("accuracy of zero examples is undefined")
    return (logits.argmax(1) == y).float().mean().item()


def _looks_like_probs(t: torch.Tensor) -> bool:
    return bool((t >= 0).all() and (t <= 1).all() and torch.allclose(t.sum(1), torch.ones(t.shape[0], dtype=t.dtype), atol=1e-4))


def ece(
    probs_or_logits: ArrayLike,
    y: ArrayLike,
    n_bins: int = 15,
    from_logits: Optional[bool] = None,
) -> float:
    """Expected calibration error with ``n_bins`` equal-width confidence bins.

    Confidence is the max probability; bin b covers ``(b/n, (b+1)/n]``.
    ``ECE = sum_b |acc_b - conf_b| * n_b / N``. Input is ``[N, C]``
    probabilities or logits: ``from_logits=None`` treats rows that are
    non-negative and sum to 1 as probabilities, anything else as logits.
    """
    if n_bins < 1:
        raise ValueError(f"ece n_bins must be >= 1, got {n_bins}")
    p, y = _to_tensor(probs_or_logits).double(), _to_tensor(y).long()
    if p.ndim != 2 or p.shape[0] != y.shape[0] or y.numel() == 0:
        raise ValueError(f"ece needs [N, C] scores and [N] labels (N > 0), got {tuple(p.shape)} and {tuple(y.shape)}")
    if from_logits is None:
        from_logits = not _looks_like_probs(p)
    if from_logits:
        p = p.softmax(1)
    conf, pred = p.max(1)
    correct = (pred == y).double()
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)
    # right-closed bins (lo, hi]; a confidence of exactly 0 (impossible for a max-prob) goes to bin 0
    idx = (torch.bucketize(conf, edges[1:-1], right=False)).clamp_(0, n_bins - 1)
    n = torch.bincount(idx, minlength=n_bins).double()
    conf_sum = torch.bincount(idx, weights=conf, minlength=n_bins)
    acc_sum = torch.bincount(idx, weights=correct, minlength=n_bins)
    nonempty = n > 0
    gap = (acc_sum[nonempty] - conf_sum[nonempty]).abs()  # = |acc_b - conf_b| * n_b
    return (gap.sum() / y.numel()).item()


def nll(logits: ArrayLike, y: ArrayLike) -> float:
    """Mean cross-entropy (negative log-likelihood) of the labels."""
    logits, y = _to_tensor(logits).float(), _to_tensor(y).long()
    return F.cross_entropy(logits, y).item()


def auroc(scores_in: ArrayLike, scores_out: ArrayLike) -> float:
    """P(score_in > score_out) for a random in/out pair, ties counting 1/2: scipy's Mann-Whitney U over
    ``n_in * n_out``. In-distribution examples are the positive class, as in
    ``sklearn.metrics.roc_auc_score(labels=in, scores)``.
    """
    a = _to_tensor(scores_in).double().numpy().ravel()
    b = _to_tensor(scores_out).double().numpy().ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError(f"auroc needs non-empty score sets, got {a.size} in and {b.size} out")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("auroc scores contain NaN")
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(a, b, alternative="greater").statistic / (a.size * b.size))


def ood_auroc(logits_in: ArrayLike, logits_out: ArrayLike) -> float:
    """AUROC of in- vs out-of-distribution detection by maximum softmax probability."""
    msp_in = _to_tensor(logits_in).double().softmax(1).amax(1)
    msp_out = _to_tensor(logits_out).double().softmax(1).amax(1)
    return auroc(msp_in, msp_out)


# --------------------------------------------------------------------------- #
# robustness
# --------------------------------------------------------------------------- #
def _pgd_attack(seed: Optional[int], **pgd_kw) -> AttackFn:
    """PGD with a dedicated seeded CPU generator for the random starts (when seed is given)."""
    if seed is not None and pgd_kw.get("generator") is None:
        pgd_kw["generator"] = torch.Generator().manual_seed(int(seed))
    return functools.partial(pgd, **pgd_kw)


def robust_accuracy(
    model: nn.Module,
    loader: Iterable,
    eps: float = 8 / 255,
    alpha: float = 2 / 255,
    steps: int = 20,
    random_start: bool = True,
    restarts: int = 1,
    device=None,
    progress: bool = True,
    seed: Optional[int] = None,
    return_logits: bool = False,
):
    """RA: accuracy under PGD (default PGD-20, eps 8/255, alpha 2/255, random start), eval mode, float32.

    ``seed`` makes the random starts reproducible (a dedicated generator);
    otherwise the global RNG is used. ``return_logits=True`` returns
    ``(ra, adversarial logits, labels)`` (the attack sanity checks reuse them).
    """
    dev = _model_device(model, device)
    attack = _pgd_attack(seed, eps=eps, alpha=alpha, steps=steps, random_start=random_start,
                         restarts=restarts, amp=False)
    logits, labels = collect_logits(model, loader, attack=attack, device=dev, progress=progress)
    if return_logits:
        return accuracy(logits, labels), logits, labels
    return accuracy(logits, labels)


def transfer_attack_accuracy(
    target_model: nn.Module,
    source_model: nn.Module,
    loader: Iterable,
    device=None,
    progress: bool = True,
    seed: Optional[int] = None,
    examples: Optional[list] = None,
    return_logits: bool = False,
    **pgd_kw,
):
    """Accuracy of ``target_model`` on PGD examples crafted on ``source_model`` (transfer attack).

    Defaults to PGD-20, eps 8/255, alpha 2/255, random start; ``pgd_kw``
    overrides them (any :func:`repro.attacks.pgd` option). Both models run in
    eval mode. With the source equal to the target and the same seed this is
    exactly the white-box :func:`robust_accuracy`. ``examples``: the ones :func:`transfer_examples` crafted
    (with these settings) for an earlier target; then nothing is crafted again. ``return_logits=True`` returns
    ``(accuracy, the target's logits, labels)`` (per-image outcomes for the claims' paired comparisons).
    """
    dev = _model_device(target_model, device)
    if examples is None:
        examples = transfer_examples(source_model, loader, device=dev, progress=progress, seed=seed, **pgd_kw)
    logits, labels = collect_logits(target_model, examples, device=dev, progress=progress, amp=False)
    if return_logits:
        return accuracy(logits, labels), logits, labels
    return accuracy(logits, labels)


def transfer_examples(source_model: nn.Module, loader: Iterable, device=None, progress: bool = True,
                      seed: Optional[int] = None, **pgd_kw) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The transfer attack's examples: PGD crafted on ``source_model`` (eval mode, float32) batch by batch, with a
    generator seeded once (``seed``), as ``(x_adv on the CPU, y)`` batches. They depend on the source, the images,
    the seed and the attack only, so one crafting serves every target model attacked with them
    (:func:`transfer_attack_accuracy`'s ``examples``)."""
    dev = _model_device(source_model, device)
    kw = dict(eps=8 / 255, alpha=2 / 255, steps=20, random_start=True)
    kw.update(pgd_kw)
    if kw.get("amp"):
        raise ValueError("transfer_attack_accuracy: amp=True; evaluation attacks run in float32")
    kw["amp"] = False
    craft = _pgd_attack(seed, **kw)
    source = runtime.inference_model(source_model)
    out = []
    with bn_mode(source, "eval"), full_precision(dev):
        for batch in _batches(loader, progress, "craft"):
            x, y = _xy(batch, dev)
            out.append((craft(source, x, y).detach().cpu(), y.cpu()))
            timing.count_images(len(y))
    return out


def robust_accuracy_aa(
    model: nn.Module,
    loader: Iterable,
    eps: float = 8 / 255,
    steps: int = 100,
    members: tuple[str, ...] = STANDARD_MEMBERS,
    n_target_classes: int = 9,
    queries: int = 5000,
    robust: Optional[torch.Tensor] = None,
    device=None,
    progress: bool = True,
    seed: Optional[int] = None,
    return_details: bool = False,
):
    """``ra_aa``: accuracy under the AutoAttack ensemble (:func:`repro.attacks.autoattack`), eval mode, float32.

    Defaults are the standard L-inf AutoAttack: APGD-CE, APGD-T and FAB-T (over the top 9 classes), 100
    iterations each, then Square with 5,000 ``queries``. ``robust``: a boolean per example of the loader (in loader order), the
    examples an earlier attack left correct (e.g. the PGD-20 of RA); only those are attacked and the
    others count as broken, so the result is the accuracy under the worst case of that attack and the
    ensemble (hence never above it). ``seed`` makes the random starts reproducible. With
    ``return_details=True`` returns ``(ra_aa, correct per example, {stage: examples still robust})``,
    the stages being ``clean`` (and the earlier attack) then each member.
    """
    dev = _model_device(model, device)
    if robust is not None:
        try:
            n = sum(len(batch[1]) for batch in loader)
        except TypeError:  # a loader without len-able batches: checked below
            n = len(robust)
        if len(robust) != n:
            raise ValueError(f"robust_accuracy_aa: {len(robust)} robust flags for {n} examples")
    g = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    trace: dict = {}
    seen = [0]

    def attack(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        i = seen[0]
        seen[0] += len(x)
        r = None if robust is None else robust[i:i + len(x)]
        return autoattack(m, x, y, eps=eps, steps=steps, members=tuple(members), n_target_classes=n_target_classes,
                          generator=g, robust=r, trace=trace, queries=queries)

    logits, labels = collect_logits(model, loader, attack=attack, device=dev, progress=progress)
    correct = logits.argmax(1) == labels
    if robust is not None:
        if len(robust) != len(labels):
            raise ValueError(f"robust_accuracy_aa: {len(robust)} robust flags for {len(labels)} examples")
        correct &= robust.cpu().bool()
    ra = correct.float().mean().item()
    if return_details:
        return ra, correct, trace
    return ra


def adv_acc_sweep(
    model: nn.Module,
    loader: Iterable,
    budgets: Iterable[float],
    steps: int = 20,
    alpha_ratio: float = 0.25,
    device=None,
    progress: bool = True,
    seed: Optional[int] = None,
) -> list[float]:
    """Accuracy under PGD-``steps`` (step ``alpha_ratio * eps``, random start; 2/255 at 8/255 as RA's PGD-20)
    at every budget of ``budgets``, each with the same seed (Robust Tickets' "Adv-Acc", whose attack the
    paper does not state)."""
    return [robust_accuracy(model, loader, eps=float(e), alpha=alpha_ratio * float(e) if e > 0 else 1.0, steps=steps,
                            device=device, progress=progress, seed=seed) for e in budgets]
