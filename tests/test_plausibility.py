"""The plausibility guard (repro/plausibility.py): a run that did not learn is marked, counted and
never matching. The LMP runs of `make repro` once sat at exactly 1/K test accuracy and reached
Robust Tickets Fig. 5 unmarked; these tests construct such runs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from repro import plausibility
from repro.verdicts import aggregate, double_win


@pytest.mark.parametrize("n,p0", [(300, 0.1), (100, 0.5), (10000, 0.01), (5, 0.2), (1000, 1 / 3)])
def test_binomial_threshold_equals_scipys_exact_tail(n, p0):
    """Smallest k with P(X >= k) <= 1 %, X ~ Bin(n, p0), against scipy's survival function."""
    k = plausibility.binomial_threshold(n, p0)
    assert stats.binom.sf(k - 1, n, p0) <= plausibility.ALPHA
    assert k == 0 or stats.binom.sf(k - 2, n, p0) > plausibility.ALPHA


def test_binomial_threshold_by_value():
    """Computed by hand from the exact tail: 44 of 300 at chance 1/10 (the default's 10-class test sets, as the
    plausibility log lines say); 7 of 10 at 1/4 (P(X >= 6) = 0.0197 > 1 %, P(X >= 7) = 0.0035); an exact tie
    counts as significant: one trial at p0 = alpha needs 1 success (P(X >= 1) = alpha)."""
    assert plausibility.binomial_threshold(300, 0.1) == 44
    assert plausibility.binomial_threshold(10, 0.25) == 7
    assert plausibility.binomial_threshold(1, 0.01, alpha=0.01) == 1


def test_chance_is_the_majority_class_when_it_beats_uniform():
    y = np.array([0] * 70 + [1] * 20 + [2] * 10)
    assert plausibility.chance_accuracy(y, 3) == pytest.approx(0.7)
    assert plausibility.chance_accuracy(np.arange(10) % 5, 5) == pytest.approx(0.2)


def test_a_constant_predictor_did_not_learn():
    """A model whose logits do not depend on the input (what collapsed features give) predicts one class:
    its SA is a class frequency, within the binomial margin of chance."""
    from repro.metrics import evaluate

    y = np.arange(300) % 10
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.arange(10.0))
    x = torch.rand(300, 3, 8, 8)
    loader = [(x[i:i + 100], torch.as_tensor(y[i:i + 100])) for i in range(0, 300, 100)]
    sa = evaluate(model, loader, progress=False)["accuracy"]
    assert sa == pytest.approx(0.1)
    out = plausibility.check_learned([2.37, 2.36, 2.34], sa, y, 10)
    assert out["learned"] is False and "not above chance" in out["learned_why"]


def test_loss_that_never_fell_is_flagged_and_a_good_run_passes():
    y = np.arange(300) % 10
    flat = plausibility.check_learned([1.20, 1.31], 0.6, y, 10)
    assert flat["learned"] is False and "did not fall" in flat["learned_why"]
    ok = plausibility.check_learned([2.3, 1.1], 0.6, y, 10)
    assert ok == {"learned": True, "learned_why": ""}
    # one epoch: no loss comparison, only the chance test, decided exactly at the binomial threshold
    k = plausibility.binomial_threshold(300, 0.1)
    assert plausibility.check_learned([2.0], (k - 1) / 300, y, 10)["learned"] is False
    assert plausibility.check_learned([2.0], k / 300, y, 10)["learned"] is True


def test_history_csv_is_read_per_epoch(tmp_path):
    f = tmp_path / "history.csv"
    f.write_text("epoch,train_loss,valid_loss,accuracy\n0,2.37,2.40,0.1\n1,2.36,2.30,0.1\n2,2.34,2.30,0.1\n")
    assert plausibility.read_train_losses(f) == [2.37, 2.36, 2.34]


def _rows(ticket_learned: bool) -> list[dict]:
    base = dict(kind="pgd_adversarial", task="t", fraction=1.0, ra=0.3)
    rows = []
    for seed in (0, 1):
        for regime in ("standard", "adversarial"):
            rows.append({**base, "method": "dense", "regime": regime, "level": 0.0, "seed": seed,
                         "sa": 0.50 + 0.01 * seed, "learned": True})
            rows.append({**base, "method": "imp", "regime": regime, "level": 0.8, "seed": seed,
                         "sa": 0.60, "ra": 0.4, "learned": ticket_learned or seed == 0})
    return rows


def test_a_ticket_that_did_not_learn_is_never_matching():
    """Same numbers, one seed of the ticket marked learned: false -> no criterion and no double win."""
    good, bad = double_win(aggregate(_rows(True))), double_win(aggregate(_rows(False)))
    assert good[0]["levels"][0]["double_win"] is True and good[0]["extreme_sparsity"] == 0.8
    lv = bad[0]["levels"][0]
    assert lv["learned"] is False
    assert (lv["standard_sa"], lv["adversarial_sa"], lv["adversarial_ra"], lv["double_win"]) == (False,) * 4
    assert bad[0]["extreme_sparsity"] == 0.0


def test_summary_counts_and_names_the_runs_that_did_not_learn(tmp_path, monkeypatch):
    """The summary stage counts learned: false runs in metrics/summary.json and names each one."""
    import json

    from repro.config import load_params
    from repro.stages import summary

    from helpers import write_own_eps_choice

    p = load_params()
    monkeypatch.chdir(tmp_path)
    write_own_eps_choice(p, tmp_path)  # RT's eps per task, which summary reads (stage select_eps)
    for i, r in enumerate(_rows(False)):
        r = {**r, "n_test": 300, "n_robust": 100, "measured_sparsity": r["level"], "checkpoint": "last",
             "learned_why": "" if r["learned"] else "test SA 0.100 is not above chance"}
        d = tmp_path / "runs" / "eval" / f"r{i}"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps(r))
    summary.body(p)
    s = json.loads((tmp_path / "metrics" / "summary.json").read_text())
    assert s["not_learned"] == 2
    assert sorted(s["not_learned_runs"]) == [
        f"pgd_adversarial-imp/t/{reg}-f1-seed1@0.8: test SA 0.100 is not above chance"
        for reg in ("adversarial", "standard")]


def test_run_label_names_the_run_folder_including_a_named_recipe():
    """DW's and RT's runs of one ticket differ only by RT's recipe (transfer.recipes): their labels must too."""
    from repro.plausibility import run_label

    r = dict(kind="standard", method="imp", task="cifar10", regime="standard", fraction=1.0, seed=0, level=0.9)
    assert run_label(r) == "standard-imp/cifar10/standard-f1-seed0@0.9"
    assert run_label({**r, "recipe": "rt"}) == "standard-imp/cifar10/standard-rt-f1-seed0@0.9"
    # RT's run from the pgd_adversarial model at another eps (issue 26 point 1) sits in its own folder
    assert run_label({**r, "kind": "pgd_adversarial", "source": "eps1", "recipe": "rt"}) == \
        "pgd_adversarial-eps1-imp/cifar10/standard-rt-f1-seed0@0.9"
