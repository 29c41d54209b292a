"""Issue 26 point 2: the standard AutoAttack's other two members, FAB-T and Square, and the four-member `ra_aa`.

* FAB-T's step (the L-inf projection onto a hyperplane inside the image box) is the optimum of the linear program
  it solves (scipy's), and FAB-T agrees with torchattacks' independent FAB (multi-targeted, 100 iterations).
* Square needs no gradient: on a model whose gradients are masked (input quantised through ``torch.round``,
  gradient zero everywhere) APGD-CE breaks nothing and Square still breaks the images a plain model loses.
* The four-member ensemble agrees within 2 points with torchattacks' four members at the standard settings, is never
  above the two-member cut version, and every member's images stay in the eps-ball and in [0, 1].
* The validator accepts the four members (and nothing else), the real tiers run them in AutoAttack's order at the
  standard settings, the embedded default's cut version is named as such, and the planner prices every member.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from helpers import _one_thread, make_synthetic, train_small_robust  # noqa: F401  (module-wide one thread)
from repro import metrics
from repro.attacks import AA_MEMBERS, STANDARD_MEMBERS, apgd_ce, autoattack, fab_t, linf_box_projection, square
from repro.attacks.square import window_fraction
from repro.config import ConfigError
from repro.config.constants import AA_MEMBER_NAMES
from repro.registries import params_from
from repro.tiers import merge

EPS = 8 / 255
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def robust():
    return train_small_robust(EPS)


@pytest.fixture(scope="module")
def images():
    return make_synthetic(100, seed=22, signal=0.06, noise=0.2)


def _acc(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def _in_ball(xa, x):
    return (xa - x).abs().max().item() <= EPS + 1e-6 and xa.min().item() >= 0 and xa.max().item() <= 1


# ------------------------------------------------------------------------------------------ FAB-T
def test_fab_projection_is_the_linear_programs_optimum():
    from scipy.optimize import linprog

    g = torch.Generator().manual_seed(3)
    n, d = 40, 7
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    x[:5, :3] = torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64)  # coordinates on the box's faces
    w = torch.randn(n, d, generator=g, dtype=torch.float64)
    c = torch.randn(n, generator=g, dtype=torch.float64) * 0.6
    c[-1] = 0.0
    step = linf_box_projection(x, w, c)
    assert ((x + step) >= -1e-12).all() and ((x + step) <= 1 + 1e-12).all()
    feasible = 0
    for i in range(n):
        # minimise t subject to |d_j| <= t, 0 <= x_j + d_j <= 1 and <w, d> = c (variables d, t)
        a_ub = np.vstack([np.hstack([np.eye(d), -np.ones((d, 1))]), np.hstack([-np.eye(d), -np.ones((d, 1))])])
        bounds = [(-x[i, j].item(), 1 - x[i, j].item()) for j in range(d)] + [(0, None)]
        res = linprog(np.r_[np.zeros(d), 1.0], A_ub=a_ub, b_ub=np.zeros(2 * d), A_eq=np.r_[w[i].numpy(), 0.0][None],
                      b_eq=[c[i].item()], bounds=bounds)
        if res.status == 0:
            feasible += 1
            assert step[i].abs().max().item() == pytest.approx(res.x[d], abs=1e-7), i
            assert (w[i] * step[i]).sum().item() == pytest.approx(c[i].item(), abs=1e-7), i
        else:  # beyond the box: the corner that comes closest to the hyperplane
            assert abs((w[i] * step[i]).sum().item()) < abs(c[i].item()), i
            assert torch.sign(w[i] * step[i]).ge(0).all() if c[i] > 0 else torch.sign(w[i] * step[i]).le(0).all()
    assert feasible >= 30
    assert step[-1].abs().max().item() == 0.0


def test_fab_t_agrees_with_torchattacks_fab(robust, images):
    ta = pytest.importorskip("torchattacks")
    x, y = images
    ours = fab_t(robust, x, y, EPS, 100, 9, None)
    theirs = ta.FAB(robust, norm="Linf", eps=EPS, steps=100, n_restarts=1, multi_targeted=True, n_classes=4,
                    seed=0)(x, y)
    assert _in_ball(ours, x)
    sa, a_ours, a_theirs = _acc(robust, x, y), _acc(robust, ours, y), _acc(robust, theirs, y)
    assert a_ours < sa - 0.3  # an attack that works (clean 0.78 -> ~0.21 here)
    assert abs(a_ours - a_theirs) <= 0.02, (a_ours, a_theirs)


def test_fab_t_returns_the_clean_image_where_it_finds_nothing_within_eps(robust, images):
    x, y = images[0][:32], images[1][:32]
    tiny = fab_t(robust, x, y, 0.5 / 255, 20, 3, None)
    with torch.no_grad():
        fooled = robust(tiny).argmax(1) != y
        clean_ok = robust(x).argmax(1) == y
    kept = (tiny == x).flatten(1).all(1)
    assert ((tiny - x).abs().amax((1, 2, 3)) <= 0.5 / 255 + 1e-6).all()
    assert (kept | fooled).all()  # every changed image is an adversarial example within eps
    assert (kept & clean_ok).any() and not (kept & clean_ok & fooled).any()


# ------------------------------------------------------------------------------------------ Square
class _Quantised(torch.nn.Module):
    """The model behind a 16-level input quantisation: its input gradient is exactly zero (gradient masking)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 15) / 15)


def test_square_breaks_a_model_whose_gradients_are_masked(robust, images):
    x, y = images
    masked = _Quantised(robust).eval()
    sa = _acc(masked, x, y)
    grad = apgd_ce(masked, x, y, EPS, 20, 9, None)
    sq = square(masked, x, y, EPS, 100, 9, torch.Generator().manual_seed(0), queries=1000)
    assert _in_ball(sq, x)
    assert _acc(masked, grad, y) >= sa - 0.03  # the gradient attack sees nothing
    assert _acc(masked, sq, y) <= sa - 0.2, (sa, _acc(masked, sq, y))  # the black-box search does


def test_square_schedule_and_reproducibility(robust, images):
    assert window_fraction(1, 5000) == 0.8 and window_fraction(11, 5000) == 0.4
    assert window_fraction(501, 5000) == pytest.approx(0.8 / 16) and window_fraction(4999, 5000) == pytest.approx(0.8 / 128)
    assert window_fraction(4999, 5000, rescale=True) == pytest.approx(0.8 / 512)  # iteration 9,998 of 10,000
    x, y = images[0][:24], images[1][:24]
    a = square(robust, x, y, EPS, 1, 1, torch.Generator().manual_seed(5), queries=100)
    b = square(robust, x, y, EPS, 1, 1, torch.Generator().manual_seed(5), queries=100)
    assert torch.equal(a, b) and _in_ball(a, x)


# ------------------------------------------------------------------------------------------ the ensemble
def test_the_standard_four_members_agree_with_torchattacks_four(robust, images):
    ta = pytest.importorskip("torchattacks")
    x, y = images
    ra4, correct, trace = metrics.robust_accuracy_aa(robust, [(x, y)], progress=False, seed=0, return_details=True)
    ra2 = metrics.robust_accuracy_aa(robust, [(x, y)], members=("apgd-ce", "apgd-t"), progress=False, seed=0)
    theirs = ta.MultiAttack([
        ta.APGD(robust, norm="Linf", eps=EPS, steps=100, n_restarts=1, loss="ce", seed=0),
        ta.APGDT(robust, norm="Linf", eps=EPS, steps=100, n_restarts=1, n_classes=4, seed=0),
        ta.FAB(robust, norm="Linf", eps=EPS, steps=100, n_restarts=1, multi_targeted=True, n_classes=4, seed=0),
        ta.Square(robust, norm="Linf", eps=EPS, n_queries=5000, n_restarts=1, p_init=0.8, resc_schedule=False, seed=0),
    ])
    ra_ta = _acc(robust, theirs(x, y), y)
    assert abs(ra4 - ra_ta) <= 0.02, (ra4, ra_ta)
    assert ra4 <= ra2 and 0.1 < ra4
    assert list(trace) == ["clean", *STANDARD_MEMBERS]
    assert trace["clean"] >= trace["apgd-ce"] >= trace["apgd-t"] >= trace["fab-t"] >= trace["square"] == int(correct.sum())


def test_every_member_stays_in_the_ball_and_the_registry_holds_the_standard_order(robust, images):
    assert AA_MEMBERS.names() == sorted(STANDARD_MEMBERS) and tuple(AA_MEMBER_NAMES) == STANDARD_MEMBERS
    assert STANDARD_MEMBERS == ("apgd-ce", "apgd-t", "fab-t", "square")
    x, y = images[0][:16], images[1][:16]
    for name in STANDARD_MEMBERS:
        xa = AA_MEMBERS.get(name)(robust, x, y, EPS, 5, 2, torch.Generator().manual_seed(0), queries=50)
        assert _in_ball(xa, x), name
    with pytest.raises(ValueError, match="queries"):
        autoattack(robust, x, y, queries=0)


# ------------------------------------------------------------------------------------------ config, tiers, cost
def _default() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def _tier(name: str) -> dict:
    return merge(_default(), yaml.safe_load((ROOT / "tiers" / f"{name}.yaml").read_text()))


def test_the_validator_accepts_the_four_members_and_names_the_allowed_ones():
    p = params_from(merge(_default(), {"evaluation": {"aa_members": ["apgd-ce", "apgd-t", "fab-t", "square"]}}))
    assert p.evaluation.aa_members == STANDARD_MEMBERS
    with pytest.raises(ConfigError, match=r"aa_members.*'fab'.*\['apgd-ce', 'apgd-t', 'fab-t', 'square'\]"):
        params_from(merge(_default(), {"evaluation": {"aa_members": ["apgd-ce", "fab"]}}))
    with pytest.raises(ConfigError, match="aa_queries"):
        params_from(merge(_default(), {"evaluation": {"aa_queries": 0}}))


@pytest.mark.parametrize("tier", ["small", "paper"])
def test_real_tiers_run_the_standard_autoattack(tier):
    e = params_from(_tier(tier)).evaluation
    assert (e.aa_members, e.aa_steps, e.aa_target_classes, e.aa_queries) == (STANDARD_MEMBERS, 100, 9, 5000)
    assert e.aa_name() == "AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square)"


def test_the_cut_version_is_named_as_such_in_metrics_and_figures(tmp_path):
    import sys

    e = params_from(_default()).evaluation
    assert e.aa_name() == "AutoAttack, cut (APGD-CE + APGD-T; 10 it., 3 targets)"
    sys.path.insert(0, str(ROOT / "paper_figures"))
    try:
        import figlib
    finally:
        sys.path.remove(str(ROOT / "paper_figures"))
    for cfg in (_default(), _tier("paper"), merge(_default(), {"evaluation": {"aa_members": ["apgd-ce", "square"],
                                                                               "aa_queries": 1000}})):
        f = tmp_path / "params.yaml"
        f.write_text(yaml.safe_dump(cfg))
        assert figlib.aa_label(str(f)) == params_from(cfg).evaluation.aa_name()
    assert "Square; 10 it., 1,000 queries" in figlib.aa_label(str(f))


def test_the_planner_prices_every_member():
    from repro.plan.cost import aa_units

    p = params_from(_tier("paper"))
    iters, fwd = aa_units(p.evaluation)
    # APGD-CE 100, APGD-T 9 x 100, FAB-T 9 x 100 (+ one forward each), Square 5,000 forwards, one classification
    assert (iters, fwd) == (100 + 900 + 900 + 1, 900 + 5000)
    cut = params_from(_default()).evaluation
    assert aa_units(cut) == (10 + 3 * 10 + 1, 0)
