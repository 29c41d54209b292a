"""Tests of repro.metrics: SA / RA / transfer-attack accuracy, ECE, NLL, (OoD) AUROC.

Model-based tests use tiny CIFAR ResNets trained for a second or two on a
deterministic synthetic 16x16 task (class-dependent colour + spatial frequency
plus noise); the helpers are repeated here so the module stands alone.
"""
from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset

from repro.attacks import bn_mode, pgd
from repro.metrics import (
    accuracy,
    auroc,
    collect_logits,
    ece,
    evaluate,
    nll,
    ood_auroc,
    robust_accuracy,
    transfer_attack_accuracy,
)

from helpers import _one_thread, make_synthetic, one_thread, train_tiny  # noqa: F401 (autouse fixture)

EPS, ALPHA = 8 / 255, 2 / 255


# --------------------------------------------------------------------------- #
# fixtures
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="session")
def models():
    """(target model, independently trained source model, test loader of 256 examples, x, y)."""
    with one_thread():
        target, source = train_tiny(seed=0), train_tiny(seed=1)
    x, y = make_synthetic(256, seed=7)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=False)
    return target, source, loader, x, y


def bn_state(model):
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}


# --------------------------------------------------------------------------- #
# accuracy / NLL
# --------------------------------------------------------------------------- #
def test_accuracy_is_top1_fraction():
    """SA/RA are top-1 accuracies of the logits (fraction here; the papers print percent)."""
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0], [0.0, 5.0, 1.0], [1.0, 0.0, 0.0]])
    y = torch.tensor([0, 2, 0, 1])
    assert accuracy(logits, y) == 0.5
    assert accuracy(logits.numpy(), y.numpy()) == 0.5
    with pytest.raises(ValueError):
        accuracy(logits, y[:3])


def test_nll_equals_cross_entropy():
    """NLL is the mean cross-entropy of the labels, i.e. F.cross_entropy."""
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(200, 10, generator=g)
    y = torch.randint(0, 10, (200,), generator=g)
    assert nll(logits, y) == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)


# --------------------------------------------------------------------------- #
# ECE
# --------------------------------------------------------------------------- #
def _probs_with_confidence(conf: list[float], k: int = 2) -> torch.Tensor:
    """Rows predicting class 0 with probability conf, the rest spread evenly."""
    c = torch.tensor(conf, dtype=torch.float64)[:, None]
    rest = (1 - c) / (k - 1)
    return torch.cat([c, rest.expand(-1, k - 1)], 1)


def test_ece_of_perfectly_calibrated_toy_is_zero():
    """ECE (15 equal-width bins, sum |acc - conf| * fraction) is 0 when accuracy equals confidence
    in every bin: 10 predictions at 0.8 with 8 right, 10 at 0.6 with 6 right, 4 at 1.0 all right."""
    probs = _probs_with_confidence([0.8] * 10 + [0.6] * 10 + [1.0] * 4)
    y = torch.tensor([0] * 8 + [1] * 2 + [0] * 6 + [1] * 4 + [0] * 4)
    assert ece(probs, y) == pytest.approx(0.0, abs=1e-12)


def test_ece_of_overconfident_toy_equals_hand_computed():
    """Over-confident toy: 10 predictions at 0.9 with 6 right (gap 0.3), 10 at 0.55 with 5 right
    (gap 0.05): ECE = 0.5*0.3 + 0.5*0.05 = 0.175. A single bin (n_bins=1) pools them:
    |11/20 - 0.725| = 0.175 as well; and all-at-0.95-with-half-right gives 0.45."""
    probs = _probs_with_confidence([0.9] * 10 + [0.55] * 10)
    y = torch.tensor([0] * 6 + [1] * 4 + [0] * 5 + [1] * 5)
    assert ece(probs, y) == pytest.approx(0.175, abs=1e-9)
    assert ece(probs, y, n_bins=1) == pytest.approx(0.175, abs=1e-9)
    probs2 = _probs_with_confidence([0.95] * 8, k=4)
    y2 = torch.tensor([0, 1, 0, 2, 0, 3, 0, 1])
    assert ece(probs2, y2) == pytest.approx(0.45, abs=1e-9)


def _ece_reference(probs: np.ndarray, y: np.ndarray, n_bins: int) -> float:
    conf, pred = probs.max(1), probs.argmax(1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inb = (conf > lo) & (conf <= hi)
        if inb.any():
            total += abs((pred[inb] == y[inb]).mean() - conf[inb].mean()) * inb.mean()
    return total


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 300), k=st.integers(2, 10), n_bins=st.integers(1, 20))
def test_ece_matches_reference_loop_and_accepts_logits(seed, n, k, n_bins):
    """ECE equals a plain per-bin loop with bins (b/n, (b+1)/n]; logits and their softmax give the same value."""
    rng = np.random.default_rng(seed)
    logits = torch.from_numpy(rng.normal(size=(n, k)) * rng.uniform(0.1, 5))
    y = torch.from_numpy(rng.integers(0, k, size=n))
    probs = logits.softmax(1)
    # tolerance: float round-off may move a confidence lying exactly on a bin edge
    ref = _ece_reference(probs.numpy(), y.numpy(), n_bins)
    assert ece(probs, y, n_bins=n_bins) == pytest.approx(ref, abs=1e-9)
    assert ece(logits, y, n_bins=n_bins) == pytest.approx(ref, abs=1e-9)
    assert ece(probs, y, n_bins=n_bins, from_logits=False) == pytest.approx(ref, abs=1e-9)


# --------------------------------------------------------------------------- #
# AUROC
# --------------------------------------------------------------------------- #
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n_in=st.integers(1, 200), n_out=st.integers(1, 200), discrete=st.booleans())
def test_auroc_matches_sklearn(seed, n_in, n_out, discrete):
    """AUROC = P(in-score > out-score) with ties counting 1/2, identical to
    sklearn.metrics.roc_auc_score with in-distribution as the positive class (ties included)."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    if discrete:  # many ties
        s_in, s_out = rng.integers(0, 5, n_in).astype(float), rng.integers(0, 5, n_out).astype(float)
    else:
        s_in, s_out = rng.normal(0.5, 1, n_in), rng.normal(0, 1, n_out)
    labels = np.r_[np.ones(n_in), np.zeros(n_out)]
    scores = np.r_[s_in, s_out]
    if len(np.unique(labels)) == 2:
        assert auroc(s_in, s_out) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auroc_separable_identical_and_reversed():
    """Perfectly separated scores give 1.0 (0.0 when reversed); identical score sets give 0.5."""
    a = torch.linspace(0.6, 1.0, 50)
    b = torch.linspace(0.0, 0.5, 70)
    assert auroc(a, b) == 1.0
    assert auroc(b, a) == 0.0
    assert auroc(a, a.clone()) == 0.5
    assert auroc(torch.ones(5), torch.ones(9)) == 0.5
    with pytest.raises(ValueError):
        auroc(torch.ones(0), b)


def test_ood_auroc_uses_max_softmax_probability():
    """OoD detection score is the maximum softmax probability (MSP); confident in-distribution
    logits vs flat OoD logits separate perfectly, and the value equals auroc of the MSPs."""
    g = torch.Generator().manual_seed(0)
    logits_in = torch.randn(100, 10, generator=g)
    logits_in[torch.arange(100), torch.randint(0, 10, (100,), generator=g)] += 8.0
    logits_out = 0.1 * torch.randn(80, 10, generator=g)
    assert ood_auroc(logits_in, logits_out) == 1.0
    mixed_out = torch.randn(80, 10, generator=g) * 3
    expected = auroc(logits_in.softmax(1).amax(1), mixed_out.softmax(1).amax(1))
    assert ood_auroc(logits_in, mixed_out) == pytest.approx(expected)
    # shifting logits by a constant per row does not change the softmax, hence the score
    assert ood_auroc(logits_in + 5.0, mixed_out - 2.0) == pytest.approx(expected)


# --------------------------------------------------------------------------- #
# model-based evaluation
# --------------------------------------------------------------------------- #
def test_evaluate_clean_runs_in_eval_mode_without_side_effects(models):
    """Clean evaluation (SA) runs the model in eval mode under no_grad: results equal a manual
    eval-mode forward, BN running stats do not move, no .grad appears, and the caller's
    (here mixed) train/eval flags are restored."""
    target, _, loader, x, y = models
    model = copy.deepcopy(target)
    model.train()
    model.bn1.eval()
    flags = {n: m.training for n, m in model.named_modules()}
    s0 = bn_state(model)
    res = evaluate(model, loader, progress=False, return_logits=True)
    with bn_mode(model, "eval"), torch.no_grad():
        manual = model(x)
    assert torch.allclose(res["logits"], manual, atol=1e-5)
    assert torch.equal(res["labels"], y)
    assert res["n"] == len(y)
    assert res["accuracy"] == accuracy(manual, y) and res["accuracy"] > 0.8
    assert res["nll"] == pytest.approx(nll(manual, y), rel=1e-5)
    assert res["ece"] == pytest.approx(ece(manual, y), abs=1e-6)
    assert {n: m.training for n, m in model.named_modules()} == flags
    assert all(torch.equal(v, s0[k]) for k, v in bn_state(model).items())
    assert all(p.grad is None for p in model.parameters())


def test_evaluate_under_eps_zero_attack_equals_clean(models):
    """An eps=0 attack returns x unchanged, so its 'robust' accuracy is the clean SA exactly."""
    target, _, loader, _, _ = models
    clean = evaluate(target, loader, progress=False)
    attacked = evaluate(target, loader, attack=functools.partial(pgd, eps=0.0, steps=20), progress=False)
    assert attacked == clean


def test_robust_accuracy_is_pgd20_in_eval_mode(models):
    """RA = accuracy under PGD-20, eps 8/255, alpha 2/255, random start, crafted and evaluated in
    eval mode even if the model is handed over in train mode (BN stats untouched); RA < SA."""
    target, _, loader, x, y = models
    model = copy.deepcopy(target).train()
    s0 = bn_state(model)
    ra = robust_accuracy(model, loader, seed=11, progress=False)
    assert model.training
    assert all(torch.equal(v, s0[k]) for k, v in bn_state(model).items())
    # same thing by hand: batches of 64, one generator across batches
    g = torch.Generator().manual_seed(11)
    correct = 0
    with bn_mode(model, "eval"):
        for xb, yb in loader:
            xa = pgd(model, xb, yb, eps=EPS, alpha=ALPHA, steps=20, generator=g)
            with torch.no_grad():
                correct += (model(xa).argmax(1) == yb).sum().item()
    assert ra == pytest.approx(correct / len(y))
    sa = evaluate(model, loader, progress=False)["accuracy"]
    assert ra < sa - 0.2


def test_transfer_attack_from_model_to_itself_equals_white_box(models):
    """Transfer attack (Double-Win Table A2): PGD-20 crafted on the source, evaluated on the target.
    With source == target and the same seed/settings it is exactly the white-box RA."""
    target, _, loader, _, _ = models
    ra = robust_accuracy(target, loader, eps=EPS, alpha=ALPHA, steps=20, seed=5, progress=False)
    tr = transfer_attack_accuracy(target, target, loader, seed=5, progress=False)
    assert tr == ra
    # also with the global RNG seeded identically instead of a dedicated generator
    torch.manual_seed(3)
    ra_g = robust_accuracy(target, loader, progress=False)
    torch.manual_seed(3)
    tr_g = transfer_attack_accuracy(target, target, loader, progress=False)
    assert tr_g == ra_g


def test_transfer_attack_from_independent_source_is_weaker_than_white_box(models):
    """Examples crafted on an independently trained source model transfer only partly: the target's
    accuracy on them lies between its white-box RA and its SA; both models' modes are restored."""
    target, source, loader, _, _ = models
    source = copy.deepcopy(source).train()
    s0 = bn_state(source)
    tr = transfer_attack_accuracy(target, source, loader, seed=5, progress=False)
    ra = robust_accuracy(target, loader, seed=5, progress=False)
    sa = evaluate(target, loader, progress=False)["accuracy"]
    assert ra < tr <= sa
    assert source.training and not target.training
    assert all(torch.equal(v, s0[k]) for k, v in bn_state(source).items())


def test_collect_logits_with_progress_bar_and_attack(models, capsys):
    """collect_logits returns (logits, labels) in loader order; a progress bar is shown for loaders with
    more than a few batches (progress=True) and the attack is applied batch by batch."""
    target, _, _, x, y = models
    loader = DataLoader(TensorDataset(x[:64], y[:64]), batch_size=8)
    attack = functools.partial(pgd, steps=2, generator=torch.Generator().manual_seed(1))
    logits, labels = collect_logits(target, loader, attack=attack, progress=True)
    assert logits.shape == (64, 4) and logits.dtype == torch.float32
    assert torch.equal(labels, y[:64])
    g = torch.Generator().manual_seed(1)
    with bn_mode(target, "eval"), torch.no_grad():
        manual = torch.cat([target(pgd(target, xb, yb, steps=2, generator=g)) for xb, yb in loader])
    assert torch.allclose(logits, manual, atol=1e-5)
    with pytest.raises(ValueError, match="no batches"):
        collect_logits(target, [], progress=False)


def test_transfer_examples_crafted_once_serve_every_target_exactly(models):
    """The evaluate stage crafts the transfer attack's examples on the reference model once and classifies them
    with every adversarially fine-tuned run: the accuracy equals crafting them again for each target, to the bit."""
    from repro.metrics import transfer_examples

    target, source, loader, _, _ = models
    crafted = transfer_examples(source, loader, seed=5, progress=False)
    other = copy.deepcopy(target)
    with torch.no_grad():
        for prm in other.parameters():
            prm.mul_(0.9)
    for t in (target, other):
        fresh = transfer_attack_accuracy(t, source, loader, seed=5, progress=False)
        assert transfer_attack_accuracy(t, source, loader, progress=False, examples=crafted) == fresh
    assert sum(len(y) for _, y in crafted) == sum(len(b[1]) for b in loader)
