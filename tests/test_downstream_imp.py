"""Downstream IMP tickets and the images held out for validation (issue 26, points 3 and 7).

* ``imp_ds`` beside ``a_imp_ds``: RT Fig. 4's natural downstream tickets, so claim ``rt-aimp`` compares A-IMP DS
  with IMP DS (and US with US);
* the downstream IMP / A-IMP recipe is the named ``tickets.imp.retrain_ds`` and never trains on the images
  ``transfer.validation`` holds out;
* LMP (regime ``mask``) validates on the held-out images, never the test split, as every other regime does."""
from __future__ import annotations

import json

import pytest

import reliability_ws as W
from helpers import _one_thread  # noqa: F401  (one torch thread per test)
from repro.config import load_params
from repro.plan import RunSpec, imp_dir, imp_runs, tickets_for_level
from repro.registries import params_from

HELD = {"transfer": {"validation": {"how": "last", "n": 16, "robust_images": 4, "steps": 2}}}


def test_imp_ds_is_an_imp_run_on_the_downstream_task_and_a_ticket_of_rt_fig4():
    import yaml

    from repro.tiers import merge

    raw = yaml.safe_load((W.ROOT / "params.yaml").read_text())
    p = params_from(raw)
    pairs = {tuple(x) for x in p.experiments["rt_aimp"].pairs}
    assert {("standard", "imp_ds"), ("pgd_adversarial", "imp_ds"), ("pgd_adversarial", "a_imp_ds")} <= pairs
    assert ("standard", "standard", "synth_far", "") in imp_runs(p)  # IMP with standard retraining, downstream
    assert ("standard", "imp_ds", "synth_far", "") in tickets_for_level(p, 0.488)
    assert str(imp_dir("standard", "standard", "synth_far")) == "runs/imp/standard-standard-ds-synth_far"
    # refused where it cannot run: the ticket method must be known
    with pytest.raises(Exception, match="imp_dss"):
        params_from(merge(raw, {"experiments": {"rt_aimp": {"pairs": [["standard", "imp_dss"]]}}}))


def test_rt_aimp_compares_like_with_like():
    from repro.claims import CLAIMS

    spec = CLAIMS.get("rt-aimp").compares
    assert [tuple(map(tuple, x)) for x in spec["pairs"]] == [(("pgd_adversarial", "a_imp"), ("standard", "imp")),
                             (("pgd_adversarial", "a_imp_ds"), ("standard", "imp_ds"))]


def test_downstream_imp_trains_with_its_recipe_on_the_images_not_held_out(tmp_path, monkeypatch):
    from repro.pipeline import imp

    ws = W.clone(tmp_path / "ws")
    W.write_params(ws, W.smoke_params(**HELD, tickets={"imp": {"max_rounds": 3, "retrain_ds": {
        "epochs": 1, "lr": 0.02, "momentum": 0.9, "weight_decay": 1.0e-4, "schedule": "constant", "batch_size": 16}}}))
    seen = []
    real = imp.train

    def spy(dls, model, cfg, **kw):
        tr, va = dls.train_ds, dls.valid_ds
        seen.append((cfg, set(tr.indices.tolist()), va.images is dls.task.x_train, set(va.indices.tolist())))
        return real(dls, model, cfg, **kw)

    monkeypatch.setattr(imp, "train", spy)
    with W.inside(ws):
        p = load_params()
        for retrain in ("standard", "adversarial"):  # imp_ds, a_imp_ds
            imp.run_one(p, W.KIND, retrain, "synth_near")
            levels = json.loads((imp_dir(W.KIND, retrain, "synth_near") / "levels.json").read_text())
            assert len(levels) == 3
    assert len(seen) == 4  # rounds 2 and 3 retrain, in both runs
    for cfg, train_idx, valid_is_train, valid_idx in seen:
        assert cfg == p.tickets.imp.retrain_ds
        # smoke: 80 training images, the last 16 held out (transfer.validation 'last'): never trained on
        assert train_idx == set(range(64)) and valid_is_train and valid_idx == set(range(64, 80))


def test_lmp_validates_on_held_out_training_images_not_the_test_split(tmp_path, monkeypatch):
    from repro.pipeline import transfer

    ws = W.clone(tmp_path / "ws")
    W.write_params(ws, W.smoke_params(**HELD))
    seen = []
    real = transfer.make_dataloaders

    def spy(task, *a, **kw):
        dls = real(task, *a, **kw)
        seen.append((kw["val_from_train"], dls.valid_ds.images is task.x_train, len(dls.valid_ds), len(dls.train_ds)))
        return dls

    monkeypatch.setattr(transfer, "make_dataloaders", spy)
    spec = RunSpec(W.KIND, "lmp", "synth_near", "mask", 1.0, 0)
    with W.inside(ws):
        run = transfer.run_one(load_params(), spec, 0.488, {})
        s = json.loads((run / "spec.json").read_text())
        epochs = (run / "history.csv").read_text().strip().splitlines()[1:]
        files = {f.name for f in run.iterdir()}
    assert seen == [(16, True, 16, 64)]
    assert s["held_out"] == 16 and s["n_train"] == 64
    assert len(epochs) == 2  # the per-epoch validation (held-out images) of the smoke LMP recipe's two epochs
    assert "best_sa.pt" not in files  # LMP keeps its last mask: no checkpoint selection
