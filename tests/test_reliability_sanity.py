"""Reliability 5: attack sanity beside every robust accuracy.

The checks pass on a soundly trained model and flag deliberately gradient-masked ones: huge
logit temperature (saturated softmax, zero cross-entropy gradients), input binarisation (a
non-differentiable quantisation), a randomised forward pass. APGD is cross-checked against
torchattacks. The evaluate stage records the checks next to RA; summary aggregates them.
"""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import reliability_ws as W
from conftest import toy_images
from helpers import _one_thread, make_synthetic, train_tiny  # noqa: F401  (module-wide one thread)
from repro import metrics
from repro.attacks import ATTACKS, apgd, attack_from_config, pgd
from repro.sanity import CHECKS, attack_sanity, summarize

EPS, ALPHA, STEPS = 8 / 255, 2 / 255, 20


@pytest.fixture(scope="module")
def sound():
    return train_tiny(0)


@pytest.fixture(scope="module")
def images():
    return make_synthetic(32, seed=5)


def _sanity(model, x, y, **kw):
    model.eval()
    with torch.no_grad():
        clean = model(x)
    ra, adv, _ = metrics.robust_accuracy(model, [(x, y)], eps=EPS, alpha=ALPHA, steps=STEPS, progress=False, seed=0,
                                         return_logits=True)
    return attack_sanity(model, x, y, clean, adv, eps=EPS, alpha=ALPHA, steps=STEPS, seed=0, **kw), ra


def test_sound_model_passes_every_check(sound, images):
    x, y = images
    s, _ = _sanity(sound, x, y)
    assert s["ok"] and s["failed"] == [] and set(s["checks"]) == set(CHECKS), s
    acc = s["accuracy"]
    # PGD: recomputed independently (attacks.pgd, the RA's seeded generator, a plain forward pass)
    with torch.no_grad():
        ok_clean = sound(x).argmax(1) == y
        x_pgd = pgd(sound, x, y, eps=EPS, alpha=ALPHA, steps=STEPS, generator=torch.Generator().manual_seed(0))
        ok_pgd = (sound(x_pgd).argmax(1) == y) & ok_clean
    assert abs(acc["pgd"] - ok_pgd.float().mean().item()) <= 1 / 32  # conv-BN folding may flip one borderline image
    assert acc["clean"] == ok_clean.float().mean().item()
    assert acc["clean"] > acc["pgd_eps/4"] >= acc["pgd_eps/2"] >= acc["pgd"] and acc["noise"] > acc["pgd"]
    # the strong attack vs torchattacks' independent APGD-CE then APGD-T, on the images PGD left correct
    ta = pytest.importorskip("torchattacks")
    idx = ok_pgd.nonzero().flatten()
    attack = ta.MultiAttack([ta.APGD(sound, norm="Linf", eps=EPS, steps=10, n_restarts=1, loss="ce", seed=0),
                             ta.APGDT(sound, norm="Linf", eps=EPS, steps=10, n_restarts=1, n_classes=4, seed=0)])
    with torch.no_grad():
        strong_ta = (sound(attack(x[idx], y[idx])).argmax(1) == y[idx]).float().sum().item() / len(y)
    assert abs(acc["strong"] - strong_ta) <= 2 / 32, (acc["strong"], strong_ta)


class Temperature(nn.Module):
    """logits x 1e4: the softmax saturates, so cross-entropy gradients vanish (gradient masking)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x) * 1e4


def test_sign_test_tolerance_by_value():
    """P(Bin(b + c, 1/2) >= b): with c = 0 it is 2^-b, so 5 images beyond the weaker attack flag at 0.05."""
    from repro.sanity import min_flagged, sign_test_p

    assert sign_test_p(4, 0) == 1 / 16 and sign_test_p(5, 0) == 1 / 32 and sign_test_p(0, 3) == 1.0
    assert sign_test_p(3, 1) == pytest.approx(5 / 16)  # (C(4,3) + C(4,4)) / 2^4
    assert min_flagged(0.05) == 5 and min_flagged(0.01) == 7 and min_flagged(0.05, c=2) == 9


class Lattice(nn.Module):
    """A constructed model of the offset of each pixel from the lattice {k/4} on which the test images lie.

    ``mode='abs'``: correct (class 0) iff the mean |offset| is below 0.5/255 or above 1.5/255; the logits are
    piecewise constant (zero input gradient), so PGD stays at its random start, whose mean |offset| is about
    eps'/2: clean correct, PGD at eps/4 wrong, at eps/2 and eps correct: accuracy RISES with eps.
    ``mode='signed'``: margin ``1 + 50 |r - 1/255|`` in the mean signed offset r, and -1 from r >= 6/255: the
    gradient at r = 0 points up, so FGSM's single eps step lands at r = 8/255 (wrong), while PGD's 2/255 steps
    oscillate around the local loss maximum r = 1/255 (still correct): PGD WEAKER than FGSM.
    """

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode
        self.w = nn.Parameter(torch.ones(()))  # a parameter, so the model has a device

    def forward(self, x):
        off = x - torch.round(x * 4) / 4
        if self.mode == "abs":
            d = off.abs().flatten(1).mean(1)
            good = (d < 0.5 / 255) | (d > 1.5 / 255)
            margin = torch.where(good, torch.ones_like(d), -torch.ones_like(d)) * self.w + 0 * d  # zero gradient
        else:
            r = off.flatten(1).mean(1)
            margin = torch.where(r >= 6 / 255, -torch.ones_like(r), 1 + 50 * (r - 1 / 255).abs()) * self.w
        z = torch.zeros(len(x), 4, device=x.device)
        return z + torch.stack([margin, 0 * margin, -0.1 + 0 * margin, -0.2 + 0 * margin], 1)


def _lattice_images(n=32):
    g = torch.Generator().manual_seed(0)
    return torch.randint(1, 4, (n, 3, 8, 8), generator=g).float() / 4, torch.zeros(n, dtype=torch.long)


def test_eps_monotone_fires_when_accuracy_rises_with_eps():
    x, y = _lattice_images()
    s, _ = _sanity(Lattice("abs").eval(), x, y)
    acc = s["accuracy"]
    assert acc["clean"] == 1.0 and acc["pgd_eps/4"] == 0.0 and acc["pgd_eps/2"] == 1.0, acc
    assert "eps_monotone" in s["failed"] and not s["checks"]["eps_monotone"], s
    assert s["tests"]["eps_monotone"]["b"] == 32 and s["tests"]["eps_monotone"]["c"] == 0


def test_pgd_le_fgsm_fires_when_pgd_is_weaker_than_fgsm():
    x, y = _lattice_images()
    s, _ = _sanity(Lattice("signed").eval(), x, y)
    acc = s["accuracy"]
    assert acc["clean"] == 1.0 and acc["fgsm"] == 0.0 and acc["pgd"] == 1.0, acc
    assert "pgd_le_fgsm" in s["failed"] and s["tests"]["pgd_le_fgsm"]["b"] == 32, s


def test_strong_attack_check_uses_the_full_attacked_set_when_given(sound, images):
    """With ra_aa's per-image flags the check is a sign test on every attacked image: 5 extra breaks flag a run
    at alpha 0.05 (2^-5 < 0.05), 4 do not (2^-4 > 0.05), whatever the number of images."""
    x, y = images
    pgd_ok = torch.ones(100, dtype=torch.bool)
    for broken, flagged in ((4, False), (5, True)):
        aa_ok = pgd_ok.clone()
        aa_ok[:broken] = False
        s, _ = _sanity(sound, x, y, strong=(pgd_ok, aa_ok))
        assert s["strong_n"] == 100 and s["accuracy"]["strong"] == 1 - broken / 100
        assert ("strong_attack_agrees" in s["failed"]) is flagged, s


def test_huge_temperature_is_flagged(sound, images):
    s, _ = _sanity(Temperature(sound), *images)
    assert not s["ok"] and "strong_attack_agrees" in s["failed"], s
    # PGD-CE is stuck near the clean accuracy; APGD-DLR (scale invariant) is not
    assert s["accuracy"]["pgd"] - s["accuracy"]["strong"] > 0.3


class Binarize(nn.Module):
    """Rounds every pixel to 0/1 first: a non-differentiable quantisation (zero input gradient)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(torch.round(x))


def _trained_on_binary():
    torch.manual_seed(0)
    x, y = toy_images(512, seed=3)
    m = Binarize(W_model())
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    for _ in range(2):
        for i in range(0, 512, 64):
            loss = F.cross_entropy(m(x[i:i + 64]), y[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return m.eval()


def W_model():
    from repro.models import build_model

    return build_model("cifar_resnet", 4, depths=(1, 1), width=8)


def test_non_differentiable_quantisation_is_flagged():
    """On these images no pixel is within 8/255 of 0.5: the binarised model is exactly invariant in
    the eps-ball, so PGD (zero gradients) does no better than random noise."""
    m = _trained_on_binary()
    x, y = toy_images(32, seed=9)
    s, _ = _sanity(m, x, y)
    assert s["accuracy"]["clean"] > 0.5
    assert not s["ok"] and "noise_weaker_than_pgd" in s["failed"], s
    assert s["accuracy"]["pgd"] == s["accuracy"]["noise"] == s["accuracy"]["clean"]


class Randomized(nn.Module):
    """A randomised defence: Gaussian noise inside the forward pass, also in eval mode."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x + 0.3 * torch.randn_like(x))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_randomized_forward_is_flagged_by_eps0(sound, images, seed):
    torch.manual_seed(seed)
    s, _ = _sanity(Randomized(sound), *images)
    assert "eps0_equals_sa" in s["failed"], s


def test_checks_are_deterministic(sound, images):
    assert _sanity(sound, *images) == _sanity(sound, *images)


# -------------------------------------------------------------------------------- APGD
def test_apgd_stays_in_the_ball_and_is_at_least_as_strong_as_pgd(sound):
    x, y = make_synthetic(128, seed=7)
    g = torch.Generator().manual_seed(0)
    xa = apgd(sound, x, y, eps=EPS, steps=25, generator=g)
    assert (xa - x).abs().max() <= EPS + 1e-6 and xa.min() >= 0 and xa.max() <= 1
    with torch.no_grad():
        acc = lambda z: (sound(z).argmax(1) == y).float().mean().item()  # noqa: E731
        a_pgd = acc(pgd(sound, x, y, eps=EPS, alpha=ALPHA, steps=20, generator=torch.Generator().manual_seed(0)))
        assert acc(xa) <= a_pgd + 2 / 128
        assert acc(apgd(sound, x, y, eps=0.0)) == acc(x)
    assert ATTACKS.get("apgd") is apgd
    assert torch.equal(attack_from_config("apgd", eps="8/255", steps=25, generator=torch.Generator().manual_seed(0))(
        sound, x, y), xa)


def test_apgd_agrees_with_torchattacks(sound):
    """Cross-check with torchattacks' APGD (Croce & Hein's reference port), CE and DLR losses."""
    ta = pytest.importorskip("torchattacks")
    x, y = make_synthetic(128, seed=11)
    for loss in ("ce", "dlr"):
        ours = apgd(sound, x, y, eps=EPS, steps=25, objective=loss, generator=torch.Generator().manual_seed(0))
        theirs = ta.APGD(sound, norm="Linf", eps=EPS, steps=25, n_restarts=1, loss=loss, seed=0)(x, y)
        with torch.no_grad():
            a, b = ((sound(z).argmax(1) == y).float().mean().item() for z in (ours, theirs))
        assert abs(a - b) <= 3 / 128, (loss, a, b)


@pytest.mark.parametrize("bad", [dict(eps=-1.0), dict(steps=0), dict(objective="cw"), dict(rho=0.0)])
def test_apgd_rejects_bad_options(sound, bad):
    x, y = make_synthetic(4, seed=1)
    with pytest.raises(ValueError):
        apgd(sound, x, y, **bad)


# --------------------------------------------------------------- stage wiring and summary
def test_evaluate_records_sanity_next_to_ra_and_summary_aggregates(tmp_path):
    from repro.stages import summary

    ws = W.clone(tmp_path / "ws")
    assert W.stage(ws, "transfer", "0.488")[0] == 0
    rc, err = W.stage(ws, "evaluate", "0.488")
    assert rc == 0, err
    rows = [json.loads(f.read_text()) for f in sorted((ws / "runs/eval/s0.488").rglob("metrics.json"))]
    assert len(rows) == 3
    for r in rows:
        assert isinstance(r["sanity_ok"], bool) and r["sanity_ok"] == r["sanity"]["ok"]
        assert set(r["sanity"]["checks"]) == set(CHECKS)
        assert r["sanity"]["n"] == min(32, r["n_robust"]) and r["sanity"]["accuracy"]["clean"] >= 0
    # one flagged run must show up in metrics/sanity.json, summary.json and the log
    flagged = sorted((ws / "runs/eval/s0.488").rglob("metrics.json"))[0]
    m = json.loads(flagged.read_text())
    m["sanity"] = {**m["sanity"], "ok": False, "failed": ["strong_attack_agrees"]}
    m["sanity_ok"] = False
    flagged.write_text(json.dumps(m))
    rc, err = W.stage(ws, "summary")
    assert rc == 0, err
    san = json.loads((ws / "metrics/sanity.json").read_text())
    assert san["checked"] == 3 and san["flagged"] == 1 and san["failures_per_check"]["strong_attack_agrees"] == 1
    assert san["flagged_runs"][0]["failed"] == ["strong_attack_agrees"]
    assert m["method"] in san["flagged_runs"][0]["run"]
    # the report shows both numbers of a flagged run: RA (PGD-20) and the stronger attack's, as in its metrics
    assert san["flagged_runs"][0]["ra"] == m["ra"] and san["flagged_runs"][0]["strong"] == m["sanity"]["accuracy"]["strong"]
    s = json.loads((ws / "metrics/summary.json").read_text())["attack_sanity"]
    assert s["flagged"] == 1 and s["failed_strong_attack_agrees"] == 1 and s["checked"] == 3
    # summary's plot series carry RA (PGD-20) and RA (AutoAttack) means equal to a recomputation from the runs
    agg = summary.aggregate(rows)
    adv = [r for r in rows if r["regime"] == "adversarial"]
    for r in adv:
        assert r["ra_aa"] <= r["ra"] and r["aa"]["robust_after"]["pgd20"] >= r["aa"]["robust_after"]["apgd-t"]
    for g in (g for g in agg if g["regime"] == "adversarial"):
        same = [r for r in adv if all(r[k] == g[k] for k in ("kind", "method", "task", "fraction", "level"))]
        assert g["ra_aa_mean"] == pytest.approx(sum(r["ra_aa"] for r in same) / len(same))


def test_sanity_off_records_nothing(tmp_path):
    ws = W.clone(tmp_path / "ws")
    p = W.smoke_params(evaluation={"sanity_images": 0})
    W.write_params(ws, p)
    assert W.stage(ws, "transfer", "0.488")[0] == 0
    assert W.stage(ws, "evaluate", "0.488")[0] == 0
    rows = [json.loads(f.read_text()) for f in (ws / "runs/eval/s0.488").rglob("metrics.json")]
    assert rows and all("sanity" not in r and "sanity_ok" not in r for r in rows)
    out = summarize(rows)
    assert out["not_checked"] == len(rows) and out["checked"] == 0


def test_report_shows_flagged_runs_in_red():
    import importlib.util

    spec = importlib.util.spec_from_file_location("render", W.ROOT / "paper_figures" / "render.py")
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    ok = render.sanity_html({"attack_sanity": {"checked": 5, "ok": 5, "flagged": 0, "not_checked": 0}})
    assert 'class="meta"' in ok and "5 of 5 robust evaluations passed" in ok
    bad = render.sanity_html({"attack_sanity": {"checked": 5, "ok": 4, "flagged": 1, "not_checked": 0,
                                                "failed_strong_attack_agrees": 1, "failed_pgd_le_fgsm": 0}})
    assert 'class="na"' in bad and "1 flagged" in bad and "strong_attack_agrees ×1" in bad
    assert "pgd_le_fgsm" not in bad
    both = render.sanity_html({"attack_sanity": {"checked": 5, "ok": 4, "flagged": 1, "failed_strong_attack_agrees": 1,
                                                 "flagged_runs": [{"run": "k-imp/t/adversarial", "failed": [
                                                     "strong_attack_agrees"], "strong_pgd": 0.31, "strong": 0.21,
                                                     "strong_n": 100}]}})
    assert "k-imp/t/adversarial" in both and "31.0 %" in both and "21.0 %" in both and "100 images" in both
    assert render.sanity_html({}) == ""
