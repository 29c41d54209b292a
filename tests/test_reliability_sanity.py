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
    s, ra = _sanity(sound, *images)
    assert s["ok"] and s["failed"] == [] and set(s["checks"]) == set(CHECKS), s
    acc = s["accuracy"]
    assert acc["pgd"] == pytest.approx(ra)  # the reported attack itself
    assert acc["clean"] > acc["pgd_eps/4"] >= acc["pgd_eps/2"] >= acc["pgd"] and acc["noise"] > acc["pgd"]
    assert acc["strong"] <= acc["pgd"]  # worst case over PGD and APGD


class Temperature(nn.Module):
    """logits x 1e4: the softmax saturates, so cross-entropy gradients vanish (gradient masking)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x) * 1e4


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
    s = json.loads((ws / "metrics/summary.json").read_text())["attack_sanity"]
    assert s["flagged"] == 1 and s["failed_strong_attack_agrees"] == 1 and s["checked"] == 3
    assert summary.__name__  # (the stage ran in-process)


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
    assert render.sanity_html({}) == ""
