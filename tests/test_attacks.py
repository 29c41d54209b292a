"""Tests of repro.attacks: PGD / FGSM-RS / FGSM in [0, 1] pixel space and bn_mode.

A tiny CIFAR ResNet is trained for a couple of seconds on a deterministic
synthetic 16x16 task (class-dependent colour + spatial-frequency pattern plus
Gaussian noise) so that its clean accuracy is near 100 % and its PGD-20
accuracy is intermediate -- which makes attack-strength comparisons meaningful.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from repro.attacks import (
    ATTACKS,
    attack_from_config,
    bn_mode,
    fgsm,
    fgsm_rs,
    no_param_grad,
    pgd,
)
from repro.models import freeze_backbone

from helpers import _one_thread, make_synthetic, one_thread, train_tiny  # noqa: F401 (autouse fixture)

EPS, ALPHA = 8 / 255, 2 / 255
N_TEST = 512


# --------------------------------------------------------------------------- #
# fixtures
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="session")
def trained():
    """(model in eval mode, x_test [512,3,16,16] in [0,1], y_test, clean accuracy)."""
    with one_thread():
        model = train_tiny(seed=0)
        x, y = make_synthetic(N_TEST, seed=7)
        with torch.no_grad():
            sa = (model(x).argmax(1) == y).float().mean().item()
    assert sa > 0.8, f"fixture model did not learn the synthetic task (SA={sa:.3f})"
    return model, x, y, sa


def acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with bn_mode(model, "eval"), torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


@pytest.fixture(scope="session")
def pgd20_acc(trained):
    model, x, y, _ = trained
    with bn_mode(model, "eval"):
        x_adv = pgd(model, x, y, eps=EPS, alpha=ALPHA, steps=20, generator=torch.Generator().manual_seed(1))
    return acc(model, x_adv, y)


# --------------------------------------------------------------------------- #
# attack strength
# --------------------------------------------------------------------------- #
def test_pgd20_matches_torchattacks(trained, pgd20_acc):
    """Evaluation RA is PGD-20, eps 8/255, alpha 2/255, random start, mean CE, clamp to [0,1]
    (official Double-Win code, 'Downstream transfer'); an independent implementation
    (torchattacks.PGD, eval mode) must give the same robust accuracy within 1 pp."""
    import torchattacks

    model, x, y, sa = trained
    with bn_mode(model, "eval"):
        torch.manual_seed(123)
        ours = pgd(model, x, y, eps=EPS, alpha=ALPHA, steps=20, random_start=True)
        torch.manual_seed(123)
        theirs = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=20, random_start=True)(x, y)
        assert not model.training
    ra_ours, ra_theirs = acc(model, ours, y), acc(model, theirs, y)
    assert abs(ra_ours - ra_theirs) <= 0.01, (ra_ours, ra_theirs)
    assert abs(ra_ours - pgd20_acc) <= 0.03  # a different random start changes RA only a little
    assert 0.05 < ra_ours < sa - 0.2, "test model should be attackable but not trivially"


def test_pgd20_not_weaker_than_fgsm(trained, pgd20_acc):
    """Sanity check of attack strength (gradient masking check): PGD-20 accuracy <= FGSM accuracy."""
    model, x, y, sa = trained
    with bn_mode(model, "eval"):
        acc_fgsm = acc(model, fgsm(model, x, y, eps=EPS), y)
    assert pgd20_acc <= acc_fgsm
    assert acc_fgsm < sa


def test_random_noise_hurts_less_than_pgd(trained, pgd20_acc):
    """Random sign noise of the same L-inf size (a corner of the eps-ball) is much weaker than PGD-20;
    otherwise the attack would not be using the gradient."""
    model, x, y, _ = trained
    g = torch.Generator().manual_seed(3)
    sign = torch.randint(0, 2, x.shape, generator=g).float() * 2 - 1
    acc_noise = acc(model, (x + EPS * sign).clamp(0, 1), y)
    assert acc_noise > pgd20_acc + 0.1, (acc_noise, pgd20_acc)


def test_eps_zero_gives_clean_accuracy(trained):
    """eps=0 (or steps=0) must return x unchanged (a copy), so 'RA' at eps 0 equals SA exactly."""
    model, x, y, sa = trained
    with bn_mode(model, "eval"):
        for x_adv in (pgd(model, x, y, eps=0.0, steps=20), pgd(model, x, y, steps=0),
                      fgsm_rs(model, x, y, eps=0.0), fgsm(model, x, y, eps=0.0)):
            assert x_adv is not x
            assert torch.equal(x_adv, x)
            assert acc(model, x_adv, y) == sa


# --------------------------------------------------------------------------- #
# geometry of the perturbation
# --------------------------------------------------------------------------- #
def test_adversarial_examples_in_eps_ball_and_unit_range(trained):
    """Attacks project to the L-inf eps-ball and clamp to [0, 1] after every step; x is not modified."""
    model, x, y, _ = trained
    x, y = x[:128], y[:128]
    x_before = x.clone()
    with bn_mode(model, "eval"):
        advs = {
            "pgd": pgd(model, x, y, eps=EPS, alpha=ALPHA, steps=5),
            "pgd_big_step": pgd(model, x, y, eps=EPS, alpha=3 * EPS, steps=3),
            "pgd_restarts": pgd(model, x, y, eps=EPS, alpha=ALPHA, steps=3, restarts=2),
            "pgd_cw": pgd(model, x, y, eps=EPS, alpha=ALPHA, steps=3, loss="cw"),
            "fgsm_rs": fgsm_rs(model, x, y, eps=EPS),
            "fgsm": fgsm(model, x, y, eps=EPS),
            "pgd_eps16": pgd(model, x, y, eps=16 / 255, alpha=4 / 255, steps=3),
        }
    assert torch.equal(x, x_before)
    for name, x_adv in advs.items():
        eps = 16 / 255 if name == "pgd_eps16" else EPS
        assert x_adv.shape == x.shape and x_adv.dtype == x.dtype, name
        assert not x_adv.requires_grad, name
        assert (x_adv - x).abs().max().item() <= eps + 1e-6, name
        assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0, name
        assert (x_adv != x).any(), name


def _linear_two_class():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    x = 0.3 + 0.4 * torch.rand(64, 3, 8, 8)  # interior: no clamping to [0, 1] at eps 8/255
    y = torch.randint(0, 2, (64,))
    w = model[1].weight.detach()
    # d CE / d x has the sign of (w_other - w_y) for every input of a 2-class linear model
    direction = torch.sign(w[1 - y] - w[y]).view_as(x)
    return model, x, y, direction


def test_fgsm_rs_uniform_start_and_step_of_1_25_eps():
    """FGSM-RS (Robust Tickets' fast adversarial training, Wong et al.): uniform start in the
    eps-ball, ONE signed step of 1.25*eps, projection. On a 2-class linear model the gradient sign
    is known, so s*delta lies in [0.25 eps, eps] and is clipped at eps for P(u > -0.25 eps) = 62.5 %."""
    model, x, y, s = _linear_two_class()
    delta = (fgsm_rs(model, x, y, eps=EPS, generator=torch.Generator().manual_seed(0)) - x) * s / EPS
    assert delta.min().item() >= 0.25 - 1e-4
    assert delta.min().item() < 0.26  # the uniform start reaches the far side of the ball
    assert delta.max().item() <= 1 + 1e-4
    at_edge = (delta > 1 - 1e-4).float().mean().item()
    assert abs(at_edge - 0.625) < 0.03, at_edge
    # an explicit alpha >= 2 eps always ends on the ball's face in the gradient direction
    delta2 = (fgsm_rs(model, x, y, eps=EPS, alpha=2 * EPS) - x) * s / EPS
    assert torch.allclose(delta2, torch.ones_like(delta2), atol=1e-4)


def test_fgsm_and_pgd_steps_follow_gradient_sign():
    """Plain FGSM is x + eps*sign(grad) with no random start; PGD without random start takes
    steps of alpha and is projected back to the ball once k*alpha exceeds eps."""
    model, x, y, s = _linear_two_class()
    assert torch.allclose(fgsm(model, x, y, eps=EPS), x + EPS * s, atol=1e-6)
    assert torch.allclose(pgd(model, x, y, eps=EPS, alpha=ALPHA, steps=1, random_start=False), x + ALPHA * s, atol=1e-6)
    assert torch.allclose(pgd(model, x, y, eps=EPS, alpha=ALPHA, steps=7, random_start=False), x + EPS * s, atol=1e-6)


def test_restarts_keep_first_fooling_perturbation(trained):
    """With restarts>1 an example keeps the first perturbation that fools the model (else the last),
    so every example fooled by the first restart stays fooled with the same perturbation."""
    model, x, y, _ = trained
    x, y = x[:256], y[:256]
    with bn_mode(model, "eval"):
        one = pgd(model, x, y, steps=3, restarts=1, generator=torch.Generator().manual_seed(5))
        three = pgd(model, x, y, steps=3, restarts=3, generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            fooled_one = model(one).argmax(1) != y
            fooled_three = model(three).argmax(1) != y
    assert fooled_one.any()
    assert bool((fooled_three | ~fooled_one).all()), "an example fooled in restart 1 was lost"
    assert torch.equal(three[fooled_one], one[fooled_one])
    assert fooled_three.sum() >= fooled_one.sum()


def test_seeded_generator_is_deterministic(trained):
    """A seeded generator makes the random start (hence the whole attack) reproducible."""
    model, x, y, _ = trained
    x, y = x[:64], y[:64]
    with bn_mode(model, "eval"):
        a = pgd(model, x, y, steps=2, generator=torch.Generator().manual_seed(9))
        b = pgd(model, x, y, steps=2, generator=torch.Generator().manual_seed(9))
        c = pgd(model, x, y, steps=2, generator=torch.Generator().manual_seed(10))
    assert torch.equal(a, b) and not torch.equal(a, c)


# --------------------------------------------------------------------------- #
# gradients and modes
# --------------------------------------------------------------------------- #
def test_attack_leaves_no_param_grad_and_restores_requires_grad(trained):
    """Attacks take gradients w.r.t. the input only (torch.autograd.grad, never .backward()), so no
    .grad lands on any parameter, and the requires_grad flags (here mixed: frozen backbone as in
    linear evaluation) are restored exactly -- also when called under torch.no_grad()."""
    model, x, y, _ = trained
    model = copy.deepcopy(model)
    freeze_backbone(model)
    flags = [p.requires_grad for p in model.parameters()]
    assert any(flags) and not all(flags)
    x, y = x[:32], y[:32]
    with bn_mode(model, "eval"):
        pgd(model, x, y, steps=2)
        pgd(model, x, y, steps=2, restarts=2)
        fgsm_rs(model, x, y)
        fgsm(model, x, y)
        with torch.no_grad():
            x_adv = pgd(model, x, y, steps=2)
        assert (x_adv != x).any()
    assert all(p.grad is None for p in model.parameters())
    assert [p.requires_grad for p in model.parameters()] == flags

    with pytest.raises(RuntimeError):
        with no_param_grad(model):
            assert not any(p.requires_grad for p in model.parameters())
            raise RuntimeError("boom")
    assert [p.requires_grad for p in model.parameters()] == flags


def test_bn_mode_restores_mixed_modes(trained):
    """bn_mode sets model.train()/model.eval() and restores EXACTLY the per-module flags it found,
    e.g. frozen BatchNorm kept in eval inside a training model (fastai BnFreeze), even on error."""
    model = copy.deepcopy(trained[0])
    model.train()
    model.bn1.eval()
    model.layer1[0].bn2.eval()
    before = {n: m.training for n, m in model.named_modules()}
    assert len(set(before.values())) == 2
    with bn_mode(model, "eval"):
        assert not any(m.training for m in model.modules())
    assert {n: m.training for n, m in model.named_modules()} == before
    with bn_mode(model, "train"):
        assert all(m.training for m in model.modules())
    assert {n: m.training for n, m in model.named_modules()} == before
    with bn_mode(model, None):
        assert {n: m.training for n, m in model.named_modules()} == before
    with pytest.raises(KeyError):
        with bn_mode(model, "eval"):
            raise KeyError("boom")
    assert {n: m.training for n, m in model.named_modules()} == before
    with pytest.raises(ValueError, match="bn_mode"):
        with bn_mode(model, "training"):
            pass


def test_train_mode_attack_moves_bn_stats_eval_does_not(trained):
    """Official Double-Win code attacks in train mode: batch statistics, and each of the attack's
    forward passes moves the BN running stats; torchattacks/MadryLab attack in eval mode (no change)."""
    model, x, y, _ = trained
    model = copy.deepcopy(model)
    x, y = x[:64], y[:64]

    def bn_state():
        return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}

    s0 = bn_state()
    with bn_mode(model, "eval"):
        pgd(model, x, y, steps=3)
    assert all(torch.equal(s0[k], v) for k, v in bn_state().items())

    with bn_mode(model, "train"):
        pgd(model, x, y, steps=3)
    s1 = bn_state()
    assert not model.training
    assert not torch.equal(s0["bn1.running_mean"], s1["bn1.running_mean"])
    assert int(s1["bn1.num_batches_tracked"] - s0["bn1.num_batches_tracked"]) == 3  # one forward per step


def test_amp_flag_runs_and_stays_in_ball(trained):
    """With amp=True the forward pass runs under autocast (bf16 on CPU, fp16 on CUDA) and the loss in
    float32; the result is still a valid float32 perturbation inside the ball."""
    model, x, y, _ = trained
    x, y = x[:64], y[:64]
    with bn_mode(model, "eval"):
        x_adv = pgd(model, x, y, steps=3, amp=True)
    assert x_adv.dtype == torch.float32
    assert (x_adv - x).abs().max().item() <= EPS + 1e-6
    assert 0.0 <= x_adv.min().item() and x_adv.max().item() <= 1.0


# --------------------------------------------------------------------------- #
# registry / config
# --------------------------------------------------------------------------- #
def test_registry_and_attack_from_config(trained):
    """ATTACKS holds pgd, fgsm_rs, fgsm, apgd and autoattack (ra_aa, the sanity checks' stronger attack); attack_from_config
    returns (model, x, y) -> x_adv with the
    configured settings (eps may be written '8/255' as in configs)."""
    model, x, y, _ = trained
    x, y = x[:32], y[:32]
    assert ATTACKS.names() == ["apgd", "autoattack", "fgsm", "fgsm_rs", "pgd"]
    attack = attack_from_config("pgd", eps="8/255", alpha=2 / 255, steps=3, generator=torch.Generator().manual_seed(4))
    with bn_mode(model, "eval"):
        a = attack(model, x, y)
        b = pgd(model, x, y, eps=EPS, alpha=ALPHA, steps=3, generator=torch.Generator().manual_seed(4))
        c = attack_from_config("fgsm", eps=EPS)(model, x, y)
    assert torch.equal(a, b)
    assert torch.equal(c, fgsm(model, x, y, eps=EPS))
    assert callable(attack_from_config("fgsm_rs"))


@pytest.mark.parametrize(
    "name, kw, exc, match",
    [
        ("pgd", {"eps": -0.1}, ValueError, r"eps must be >= 0, got -0.1"),
        ("pgd", {"alpha": 0}, ValueError, r"alpha must be > 0, got 0"),
        ("fgsm_rs", {"alpha": -1.0}, ValueError, r"alpha must be > 0, got -1.0"),
        ("pgd", {"steps": -1}, ValueError, r"steps must be an integer >= 0, got -1"),
        ("pgd", {"steps": 2.5}, ValueError, r"steps must be an integer >= 0, got 2.5"),
        ("pgd", {"restarts": 0}, ValueError, r"restarts must be an integer >= 1, got 0"),
        ("pgd", {"loss": "mse"}, ValueError, r"loss must be one of"),
        ("pgd", {"eps": "big"}, TypeError, r"eps must be a number"),
        ("fgsm", {"steps": 3}, TypeError, r"unknown option\(s\) \['steps'\]"),
        ("cw", {}, KeyError, r"unknown attack 'cw'"),
    ],
)
def test_attack_from_config_rejects_bad_values(name, kw, exc, match):
    """Config errors are one line and name the offending value (eps >= 0, alpha > 0, steps >= 0)."""
    with pytest.raises(exc, match=match) as info:
        attack_from_config(name, **kw)
    assert "\n" not in str(info.value)


def test_direct_calls_validate_too(trained):
    """The attack functions themselves reject negative eps / non-positive alpha / negative steps."""
    model, x, y, _ = trained
    for kw in ({"eps": -1.0}, {"alpha": 0.0}, {"steps": -2}):
        with pytest.raises(ValueError):
            pgd(model, x[:2], y[:2], **kw)
