"""Issue 14: AutoAttack-grade RA (`ra_aa`), fp32 evaluation attacks on every device, Adv-Acc sweep, verdicts under both RAs.

* Every evaluation attack (PGD-20 RA, transfer attack, the sanity attacks, ra_aa, the Adv-Acc sweep) computes in
  float32 even inside autocast and even where AMP is on (CUDA: ``runtime.use_amp``), checked by a forward hook.
* ``ra_aa`` (APGD-CE, then APGD-T; Croce & Hein 2020) agrees with torchattacks' independent APGD + APGD-T
  ensemble within 2 points on a small adversarially trained model, and is never above PGD-20's RA; the standard
  four-member AutoAttack (with FAB-T and Square) agrees with torchattacks' same four members within 2 points
  (issue 26: tests/test_autoattack_members.py).
* APGD-T's targeted DLR loss equals its formula by value; members run only on the still-robust points.
"""
from __future__ import annotations

import pytest
import torch

from helpers import _one_thread, make_synthetic, train_small_robust  # noqa: F401  (module-wide one thread)
from repro import metrics
from repro.base import runtime
from repro.attacks import apgd, autoattack
from repro.attacks.ensemble import _apgd_objective
from repro.models import build_model
from repro.sanity import attack_sanity
from repro.verdicts import aggregate, double_win
from repro.registries import params_from

EPS = 8 / 255


@pytest.fixture(scope="module")
def robust():
    return train_small_robust(EPS)


@pytest.fixture(scope="module")
def images():
    return make_synthetic(100, seed=22, signal=0.06, noise=0.2)


# ------------------------------------------------------------------------------------------ fp32
def _dtype_hook(seen: set):
    def hook(_mod, _inp, out):
        if torch.is_tensor(out) and out.is_floating_point():
            seen.add(out.dtype)
    return hook


def _autocast_dtypes():
    out = [torch.bfloat16]
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            torch.nn.Linear(2, 2)(torch.ones(1, 2))
        out.append(torch.float16)
    except Exception:  # this CPU / build has no fp16 autocast
        pass
    return out


@pytest.mark.parametrize("dtype", _autocast_dtypes())
def test_every_evaluation_attack_computes_in_float32_under_autocast_and_amp(robust, images, monkeypatch, dtype):
    """Autocast forced on around the call AND runtime.use_amp() true (as on CUDA): still float32 inside."""
    monkeypatch.setattr(runtime, "use_amp", lambda dev: True)
    x, y = images[0][:16], images[1][:16]
    loader = [(x, y)]
    fast = runtime.inference_model(robust)
    seen: set = set()
    handles = [mod.register_forward_hook(_dtype_hook(seen)) for mod in fast.modules()]
    src = runtime.inference_model(build_model("cifar_resnet", 4, depths=(1, 1), width=8).eval())
    handles += [mod.register_forward_hook(_dtype_hook(seen)) for mod in src.modules()]
    # the hook itself sees low precision when autocast is on and nothing turns it off
    with torch.autocast("cpu", dtype=dtype):
        fast(x)
    assert dtype in seen
    with torch.no_grad():
        clean = fast(x).float()
    calls = {
        "robust_accuracy": lambda: metrics.robust_accuracy(fast, loader, steps=3, progress=False, seed=0),
        "transfer_attack": lambda: metrics.transfer_attack_accuracy(fast, src, loader, steps=3, progress=False, seed=0),
        "ra_aa": lambda: metrics.robust_accuracy_aa(fast, loader, steps=3, queries=200, progress=False, seed=0),
        "adv_acc_sweep": lambda: metrics.adv_acc_sweep(fast, loader, [2 / 255], steps=3, progress=False, seed=0),
        "sanity": lambda: attack_sanity(fast, x, y, clean, clean, eps=EPS,
                                        alpha=2 / 255, steps=3, strong_steps=3),
    }
    for name, call in calls.items():
        seen.clear()
        with torch.autocast("cpu", dtype=dtype):
            call()
        assert seen == {torch.float32}, (name, seen)
    for h in handles:
        h.remove()


def test_collect_logits_refuses_amp_with_an_attack(robust, images):
    with pytest.raises(ValueError, match="float32"):
        metrics.collect_logits(robust, [images], attack=lambda m, x, y: x, amp=True, progress=False)


# ------------------------------------------------------------------------------------------ ra_aa
def test_ra_aa_agrees_with_torchattacks_and_is_never_above_pgd20(robust, images):
    ta = pytest.importorskip("torchattacks")
    x, y = images
    loader = [(x, y)]
    ra = metrics.robust_accuracy(robust, loader, progress=False, seed=0)
    ra_aa, correct, trace = metrics.robust_accuracy_aa(robust, loader, members=("apgd-ce", "apgd-t"), progress=False,
                                                       seed=0, return_details=True)
    robust.eval()
    theirs = ta.MultiAttack([ta.APGD(robust, norm="Linf", eps=EPS, steps=100, n_restarts=1, loss="ce", seed=0),
                             ta.APGDT(robust, norm="Linf", eps=EPS, steps=100, n_restarts=1, n_classes=4, seed=0)])
    with torch.no_grad():
        ra_ta = (robust(theirs(x, y)).argmax(1) == y).float().mean().item()
        sa = (robust(x).argmax(1) == y).float().mean().item()
    assert 0.2 < ra_aa < sa  # a robust model, and the attack does something
    assert abs(ra_aa - ra_ta) <= 0.02, (ra_aa, ra_ta)
    assert ra_aa <= ra, (ra_aa, ra)
    assert trace["clean"] == round(sa * len(y)) and trace["apgd-t"] == int(correct.sum())
    assert trace["clean"] >= trace["apgd-ce"] >= trace["apgd-t"]


def test_ra_aa_on_pgd_survivors_is_the_worst_case(robust, images):
    """With `robust` (PGD-20's correct flags), only those points are attacked and the others count as broken."""
    x, y = images
    ra, adv, labels = metrics.robust_accuracy(robust, [(x, y)], progress=False, seed=0, return_logits=True)
    pgd_ok = adv.argmax(1) == labels
    ra_aa, correct, trace = metrics.robust_accuracy_aa(robust, [(x, y)], robust=pgd_ok, steps=20, progress=False,
                                                       seed=0, return_details=True)
    assert not (correct & ~pgd_ok).any() and ra_aa <= ra
    assert trace["clean"] == int(pgd_ok.sum())  # the attacked points: clean-correct and PGD-robust
    assert ra_aa == pytest.approx(correct.float().mean().item())
    with pytest.raises(ValueError, match="robust flags"):
        metrics.robust_accuracy_aa(robust, [(x, y)], robust=pgd_ok[:5], steps=2, progress=False)


def test_targeted_dlr_loss_by_value():
    z = torch.tensor([[5.0, 1.0, 3.0, 2.0, 0.0]])
    y, t = torch.tensor([0]), torch.tensor([2])
    # -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2) = -(5 - 3) / (5 - (2 + 1) / 2)
    assert _apgd_objective(z, y, "dlr_targeted", t).item() == pytest.approx(-2.0 / 3.5)
    with pytest.raises(ValueError, match="target"):
        apgd(torch.nn.Linear(2, 2), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), objective="dlr_targeted")


def test_autoattack_rejects_unknown_members(robust, images):
    with pytest.raises(KeyError, match="apgd-ce.*fab-t.*square"):
        autoattack(robust, images[0][:2], images[1][:2], members=("fab",))


def test_apgd_t_targets_the_top_classes_and_stops_on_broken_points(robust, images, monkeypatch):
    """APGD-T runs towards the classes ranked 2nd, 3rd, ... by the clean logits, each run only on unbroken points."""
    import repro.attacks.ensemble as A  # the module whose apgd apgd_t calls

    x, y = images[0][:32], images[1][:32]
    calls = []
    real = A.apgd

    def spy(model, xx, yy, **kw):
        calls.append((len(xx), kw.get("target")))
        return real(model, xx, yy, **kw)

    monkeypatch.setattr(A, "apgd", spy)
    A.apgd_t(robust, x, y, EPS, 5, 9, None)
    with torch.no_grad():
        order = robust(x).argsort(1, descending=True)
    assert 1 <= len(calls) <= 3  # 4 classes: at most 3 targets
    assert calls[0][0] == 32 and torch.equal(calls[0][1], order[:, 1])
    assert all(b[0] <= a[0] for a, b in zip(calls, calls[1:]))


# ------------------------------------------------------------------------------------------ verdicts
def test_double_win_under_both_ras():
    """The ticket matches the dense RA under PGD-20 but not under AutoAttack: the two verdicts differ."""
    rows = []
    for seed, (ra, aa, dra, daa) in enumerate([(0.40, 0.20, 0.41, 0.35), (0.42, 0.22, 0.43, 0.36)]):
        base = dict(kind="k", task="t", fraction=1.0, seed=seed)
        rows += [dict(base, method="dense", regime="standard", level=0.0, sa=0.9),
                 dict(base, method="dense", regime="adversarial", level=0.0, sa=0.7, ra=dra, ra_aa=daa),
                 dict(base, method="imp", regime="standard", level=0.5, sa=0.9),
                 dict(base, method="imp", regime="adversarial", level=0.5, sa=0.7, ra=ra, ra_aa=aa)]
    agg = aggregate(rows)
    v = double_win(agg)[0]
    lv = v["levels"][0]
    assert lv["double_win_pgd20"] is True and lv["double_win_aa"] is False and lv["double_win"] is True
    assert v["extreme_sparsity"] == v["extreme_sparsity_pgd20"] == 0.5 and v["extreme_sparsity_aa"] == 0.0
    w = double_win(agg, verdict_ra="aa")[0]
    assert w["levels"][0]["double_win"] is False and w["extreme_sparsity"] == 0.0 and w["verdict_ra"] == "aa"
    no_aa = [{k: v for k, v in r.items() if k != "ra_aa"} for r in rows]
    assert double_win(aggregate(no_aa))[0]["levels"][0]["double_win_aa"] is None
    with pytest.raises(ValueError, match="ra_aa"):
        double_win(aggregate(no_aa), verdict_ra="aa")


# ------------------------------------------------------------------------------------------ Adv-Acc sweep
def test_adv_acc_sweep_is_pgd20_at_each_budget(robust, images):
    """Each budget is PGD-20 with step eps/4 and the same seed: at 8/255 exactly RA's attack."""
    x, y = images[0][:40], images[1][:40]
    sweep = metrics.adv_acc_sweep(robust, [(x, y)], [2 / 255, 8 / 255], progress=False, seed=3)
    assert sweep[1] == metrics.robust_accuracy(robust, [(x, y)], eps=8 / 255, alpha=2 / 255, steps=20, progress=False,
                                               seed=3)
    assert sweep[0] == metrics.robust_accuracy(robust, [(x, y)], eps=2 / 255, alpha=0.5 / 255, steps=20,
                                               progress=False, seed=3)
    assert sweep[0] >= sweep[1]


def test_adv_acc_is_aggregated_per_budget_and_limited_to_its_experiments():
    from repro.config import load_params
    from repro.plan import RunSpec, in_experiment
    from repro.verdicts import adv_acc_metrics

    base = dict(kind="standard", method="imp", task="t", regime="standard", fraction=1.0, level=0.5)
    rows = [dict(base, seed=0, sa=0.9, adv_acc={"0.5/255": 0.6, "2/255": 0.3}),
            dict(base, seed=1, sa=0.8, adv_acc={"0.5/255": 0.4, "2/255": 0.1})]
    agg = aggregate(rows)[0]
    assert agg["adv_acc@0.5/255_mean"] == pytest.approx(0.5) and agg["adv_acc@2/255_mean"] == pytest.approx(0.2)
    assert agg["adv_acc@2/255_std"] == pytest.approx(0.1414213, rel=1e-5)
    assert adv_acc_metrics([agg]) == ["adv_acc@0.5/255", "adv_acc@2/255"]
    p = load_params()
    t = p.data.downstream[-1]
    aimp = RunSpec("pgd_adversarial", "a_imp", "synth_far", "standard", 1.0, 0)
    assert in_experiment(p, aimp, "rt_aimp") and not in_experiment(p, aimp, "rt_omp")
    assert in_experiment(p, RunSpec("standard", "omp", t, "standard", 1.0, 0), "rt_omp")
    assert in_experiment(p, RunSpec("standard", "dense", t, "standard", 1.0, 0), "rt_omp")
    assert not in_experiment(p, RunSpec("standard", "omp", t, "adversarial", 1.0, 0), "rt_omp")


def test_ra_aa_covers_every_run_whose_ra_a_claim_reads():
    """`ra_aa` for the adversarially fine-tuned runs and for the standard-fine-tuned runs of the tickets of
    evaluation.adv_acc_experiments, on every task (RT Fig. 8 / Table I Adv-Acc: claim rt-properties-adversarial,
    which was `not run` under the AA variant without them); not for runs whose RA no claim reads."""
    from pathlib import Path

    import yaml

    from repro.plan import RunSpec, aa_graded

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    p = params_from(raw)

    def spec(kind, method, task, regime):
        return RunSpec(kind, method, task, regime, 1.0, 0)

    assert aa_graded(p, spec("pgd_adversarial", "imp", "synth_near", "adversarial"))
    assert aa_graded(p, spec("pgd_adversarial", "a_imp", "synth_far", "standard"))  # rt_aimp
    # the claim compares RT's tickets wherever both were fine-tuned: also DW's synth_near runs of them
    assert "synth_near" not in p.experiments["rt_aimp"].tasks
    assert aa_graded(p, spec("pgd_adversarial", "a_imp", "synth_near", "standard"))
    assert aa_graded(p, spec("standard", "imp", "synth_near", "standard"))
    assert aa_graded(p, spec("standard", "omp", "synth_near", "standard"))  # rt_omp
    assert not aa_graded(p, spec("fast_adversarial", "imp", "synth_near", "standard"))  # DW only: its claims read SA
    assert not aa_graded(p, spec("pgd_adversarial", "omp", "synth_far", "linear"))
    raw["evaluation"]["adv_acc_experiments"] = ["rt_aimp"]
    assert not aa_graded(params_from(raw), spec("standard", "omp", "synth_near", "standard"))
    raw["evaluation"]["aa_members"] = []
    assert not aa_graded(params_from(raw), spec("pgd_adversarial", "imp", "synth_near", "adversarial"))
