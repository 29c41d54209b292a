"""Robust Tickets' per-task ε (issue 26, point 1): RT's experiments transfer θ_AT at the ε whose dense model has the
best held-out accuracy on each task and regime (stage select_eps); DW's keep their one ε; the choice is recorded
per task and reaches the run folders, the tickets, the IMP runs, the views of each paper and the planner."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from repro.config import ConfigError
from repro.plan import (EpsChoice, RunSpec, candidates, experiment_runs, grid_models, imp_runs, in_experiment,
                        load_choice, runs_for_level, selection_keys, selection_runs, selection_validation, tickets_for_level)
from repro.registries import params_from
from repro.tiers import merge

ROOT = Path(__file__).resolve().parents[1]
AT = "pgd_adversarial"


def raw(**over) -> dict:
    return merge(yaml.safe_load((ROOT / "params.yaml").read_text()), over)


def tier(*names) -> dict:
    cfg = yaml.safe_load((ROOT / "params.yaml").read_text())
    for n in names:
        cfg = merge(cfg, yaml.safe_load((ROOT / "tiers" / f"{n}.yaml").read_text()))
    return cfg


def choice_of(p, pick: dict) -> EpsChoice:
    """A choice: ``pick`` maps (task, regime) to a source; every other key of the config chooses the kind's own."""
    return EpsChoice(tuple(sorted((k, pick.get(k, "")) for k in selection_keys(p))))


# ------------------------------------------------------------------------------------------------ configuration
@pytest.mark.parametrize("grid, msg", [([0.0], "outside"), ([2, 3], "outside"), (["1/255", "1/255"], "unique")])
def test_a_bad_eps_grid_is_refused_naming_the_key(grid, msg):
    with pytest.raises(ConfigError, match=f"pretrain.eps_grid.*{msg}"):
        params_from(raw(pretrain={"eps_grid": grid}))


def test_a_published_kind_needs_a_checkpoint_at_every_radius_of_the_grid():
    params_from(tier("paper"))  # MadryLab's ResNet-50 L-inf models: 0.5, 1, 2, 4, 8 / 255
    params_from(tier("paper", "r18"))  # and the ResNet-18s
    with pytest.raises(ConfigError, match=r"pretrain.eps_grid: 3/255 has no published pgd_adversarial resnet50.*"
                                          r"allowed: 0.5/255, 1/255, 2/255, 4/255, 8/255"):
        params_from(merge(tier("paper"), {"pretrain": {"eps_grid": ["1/255", "3/255"]}}))


@pytest.mark.parametrize("key, value, msg", [
    ("eps_select", {"n": 0}, "eps_select.n"),
    ("early_stopping", {"kinds": ["standard"]}, "early_stopping.kinds"),
    ("early_stopping", {"robust_images": 0}, "early_stopping.robust_images"),
    ("early_stopping", {"n": 10, "robust_images": 20}, "early_stopping.robust_images"),
])
def test_bad_held_out_settings_are_refused(key, value, msg):
    with pytest.raises(ConfigError, match=msg):
        params_from(raw(pretrain={key: value}))


def test_real_tiers_pick_eps_per_task_from_salman_et_al_radii():
    for name, own in (("small", "8/255"), ("paper", "8/255")):
        p = params_from(tier(name))
        labels = [f"{e * 255:g}/255" for _, e in candidates(p)]
        assert labels[0] == own and sorted(labels, key=lambda x: float(x[:-4])) == \
            ["0.5/255", "1/255", "2/255", "4/255", "8/255"]
        # every RT experiment's task and regime is decided on the held-out images of checkpoint selection
        assert {t for t, _ in selection_keys(p)} == set(p.data.downstream)
        assert selection_validation(p) == p.transfer.validation


# ------------------------------------------------------------------------------------------------ the grid
def test_the_kinds_own_eps_is_a_candidate_and_never_trained_twice():
    p = params_from(raw())
    assert [(s, round(e * 255, 6)) for s, e in candidates(p)] == [("", 4.0), ("eps1", 1.0)]
    assert [s for s, _ in grid_models(p)] == ["eps1"]
    off = params_from(raw(pretrain={"eps_grid": []}))
    assert grid_models(off) == [] and selection_keys(off) == [] and selection_runs(off) == []
    assert load_choice(off) == EpsChoice()  # nothing to read when the grid is off


def test_selection_covers_every_rt_task_and_regime_with_every_candidate():
    p = params_from(raw())
    keys = selection_keys(p)
    # rt_lmp (mask) is decided by linear evaluation; rt_* on all three tasks, standard and linear
    assert keys == sorted((t, r) for t in p.data.downstream for r in ("standard", "linear"))
    runs = selection_runs(p)
    assert len(runs) == len(keys) * 2 and {r.method for r in runs} == {"dense"} and {r.kind for r in runs} == {AT}
    assert {r.source for r in runs} == {"", "eps1"}


def test_rt_runs_use_the_chosen_eps_and_dw_runs_keep_theirs():
    p = params_from(raw())
    choice = choice_of(p, {("synth_far", "standard"): "eps1", ("synth_far", "linear"): "eps1"})
    runs = runs_for_level(p, 0.8926, choice)
    rt_far = [r for r in runs if r.kind == AT and r.task == "synth_far" and r.method in ("omp", "lmp", "a_imp_ds")]
    assert rt_far and all(r.source == "eps1" for r in rt_far)  # LMP (mask) follows the linear choice
    assert all(r.name.startswith(f"{AT}-eps1-") for r in rt_far)  # content-named: the model is in the folder
    # DW's runs (dw_*: synth_near, standard + adversarial) keep the kind's own model, and RT's runs on synth_near,
    # whose choice is the kind's own eps, are the same runs (one folder, trained once)
    near = [r for r in runs if r.kind == AT and r.task == "synth_near"]
    assert near and all(r.source == "" for r in near)
    assert all(r.source == "" for r in runs if r.kind != AT)
    # the tickets and IMP runs follow: eps1 tickets for synth_far's RT runs, the own model's for DW
    tickets = tickets_for_level(p, 0.8926, choice)
    assert (AT, "omp", None, "eps1") in tickets and (AT, "omp", None, "") in tickets
    assert (AT, "a_imp_ds", "synth_far", "eps1") in tickets and (AT, "imp_ds", "synth_far", "eps1") in tickets
    imps = imp_runs(p, choice)
    assert (AT, "adversarial", None, "eps1") in imps and (AT, "adversarial", None, "") in imps  # RT US, DW A-IMP
    assert ("standard", "standard", "synth_far", "") in imps  # the natural DS ticket (imp_ds)


def test_in_experiment_tells_rt_runs_from_dw_runs_of_the_same_ticket():
    p = params_from(raw())
    choice = choice_of(p, {("synth_near", "standard"): "eps1"})
    dw = RunSpec(AT, "omp", "synth_near", "standard", 1.0, 0)
    rt = dataclasses.replace(dw, source="eps1")
    assert in_experiment(p, rt, "rt_omp", choice=choice) and not in_experiment(p, dw, "rt_omp", choice=choice)
    assert in_experiment(p, dw, "dw_methods", choice=choice) and not in_experiment(p, rt, "dw_methods", choice=choice)


def test_load_choice_refuses_a_missing_or_stale_file(tmp_path):
    p = params_from(raw())
    with pytest.raises(FileNotFoundError, match="select_eps"):
        load_choice(p, tmp_path / "eps.json")
    doc = {"candidates": ["4/255", "1/255"],
           "tasks": {t: {r: {"source": "eps1" if t == "synth_far" else ""} for r in ("standard", "linear")}
                     for t in p.data.downstream}}
    (tmp_path / "eps.json").write_text(json.dumps(doc))
    c = load_choice(p, tmp_path / "eps.json")
    assert c.source("synth_far", "mask") == "eps1" and c.source("synth_near", "standard") == ""
    doc["candidates"] = ["4/255", "2/255"]  # another grid's choice
    (tmp_path / "eps.json").write_text(json.dumps(doc))
    with pytest.raises(FileNotFoundError, match="does not hold"):
        load_choice(p, tmp_path / "eps.json")


# ------------------------------------------------------------------------------------------------ the choice
def _selection_workspace(tmp_path, monkeypatch, val_sa: dict, select="last"):
    """Selection runs' validation.json files with the given held-out SA per (task, regime, source)."""
    from repro.plan import selection_run_dir

    monkeypatch.chdir(tmp_path)
    p = params_from(raw(pretrain={"eps_grid": ["1/255", "2/255"]}))
    for r in selection_runs(p):
        d = selection_run_dir(r)
        d.mkdir(parents=True)
        v = val_sa.get((r.task, r.regime, r.source), 0.5)
        hist = [{"epoch": 0, "val_sa": v - 0.2, "val_ra": None}, {"epoch": 1, "val_sa": v, "val_ra": None},
                {"epoch": 2, "val_sa": v - 0.1, "val_ra": None}]
        (d / "validation.json").write_text(json.dumps({"n": 100, "epochs": hist, "best_sa_epoch": 1}))
    return p


def test_the_best_held_out_accuracy_wins_ties_go_to_the_own_eps_then_the_smaller(tmp_path, monkeypatch):
    from repro.pipeline.select_eps import choose

    p = _selection_workspace(tmp_path, monkeypatch, {
        ("synth_far", "standard", "eps2"): 0.9,   # the best
        ("synth_far", "linear", "eps1"): 0.7, ("synth_far", "linear", "eps2"): 0.7,   # a tie: the smaller
        ("synth_mid", "standard", "eps1"): 0.5,   # a tie with the own 0.5: the own
    })
    doc = choose(p, selection_runs(p))
    far, mid = doc["tasks"]["synth_far"], doc["tasks"]["synth_mid"]
    assert (far["standard"]["eps"], far["standard"]["source"]) == ("2/255", "eps2")
    assert far["standard"]["held_out_sa"] == {"4/255": 0.4, "1/255": 0.4, "2/255": 0.8}  # the last epoch's
    assert far["linear"]["eps"] == "1/255" and mid["standard"]["eps"] == "4/255"
    assert doc["candidates"] == ["4/255", "1/255", "2/255"] and doc["own"] == "4/255"


def test_the_choice_reads_the_checkpoint_evaluation_select_names(tmp_path, monkeypatch):
    from repro.pipeline.select_eps import held_out_sa

    p = _selection_workspace(tmp_path, monkeypatch, {})
    spec = selection_runs(p)[0]
    assert held_out_sa(p, spec)["epoch"] == 2  # last
    best = params_from(raw(pretrain={"eps_grid": ["1/255", "2/255"]},
                           transfer={"validation": {"how": "stratified", "n": 100}},
                           evaluation={"select": {"standard": "best_sa", "linear": "best_sa"}}))
    assert held_out_sa(best, spec) == {"held_out_sa": 0.5, "epoch": 1, "checkpoint": "best_sa", "n_held_out": 100}


def test_a_selection_run_trains_and_validates_on_training_images_only(tmp_path, monkeypatch):
    """A selection run holds out ``pretrain.eps_select.n`` training images and validates on them: fastai's
    validation loader holds training images, never the test split."""
    import reliability_ws as W
    from repro.config import load_params
    from repro.pipeline import select_eps, transfer
    from repro.plan import selection_run_dir

    ws = W.clone(tmp_path / "ws")
    W.write_params(ws, W.smoke_params())
    seen = []
    real = transfer.make_dataloaders

    def spy(task, *a, **kw):
        dls = real(task, *a, **kw)
        seen.append((kw["val_from_train"], dls.valid_ds.images is task.x_train, len(dls.valid_ds)))
        return dls

    monkeypatch.setattr(transfer, "make_dataloaders", spy)
    with W.inside(ws):
        p = load_params()
        spec = RunSpec(W.KIND, "dense", "synth_near", "standard", 1.0, 0)
        select_eps.train_selection_run(p, spec, {})
        out = selection_run_dir(spec)
        s = json.loads((out / "spec.json").read_text())
        val = json.loads((out / "validation.json").read_text())
    n = p.pretrain.eps_select.n
    assert seen == [(n, True, n)]
    assert s["held_out"] == n and s["n_train"] == 80 - n  # smoke: 80 training images
    assert val["n"] == n and len(val["epochs"]) == p.transfer.standard.epochs


def test_the_stages_pretrain_a_second_eps_and_record_the_choice_per_task(tmp_path):
    """Stages pretrain_eps and select_eps on the smoke tier: θ_AT at a second radius (1/255 beside its own 4/255),
    the dense selection runs of RT's task on held-out training images, and metrics/eps.json with every
    candidate's held-out SA and the choice, which the grid of every later stage then reads."""
    import reliability_ws as W

    ws = W.clone(tmp_path / "ws")
    W.write_params(ws, W.smoke_params(pretrain={"kinds": [W.KIND, AT], "eps_grid": ["1/255"]}, experiments={
        "rt_x": {"pairs": [[AT, "omp"]], "regimes": ["standard"], "tasks": ["synth_near"], "seeds": [0]}}))
    for module, args in (("pretrain", (AT,)), ("pretrain_eps", ()), ("select_eps", ())):
        rc, err = W.stage(ws, module, *args)
        assert rc == 0, (module, err)
    grid = json.loads((ws / "runs/pretrain_eps/pgd_adversarial-eps1/metrics.json").read_text())
    assert grid["eps"] == pytest.approx(1 / 255) and grid["source"] == "eps1"
    doc = json.loads((ws / "metrics/eps.json").read_text())
    got = doc["tasks"]["synth_near"]["standard"]
    assert doc["candidates"] == ["4/255", "1/255"] and set(got["held_out_sa"]) == {"4/255", "1/255"}
    best = max(got["held_out_sa"].values())
    assert got["held_out_sa"][got["eps"]] == best and got["n_held_out"] == 20  # smoke: pretrain.eps_select.n
    assert json.loads((ws / "runs/select_eps/synth_near.json").read_text())["regimes"]["standard"] == got
    with W.inside(ws):
        from repro.config import load_params

        p = load_params()
        rt = experiment_runs(p, p.experiments["rt_x"], 0.0, "rt_x", load_choice(p))
    assert rt and {r.source for r in rt} == {got["source"]}  # RT's dense runs start from the chosen model


def test_summary_json_shows_the_chosen_eps_per_task(tmp_path, monkeypatch):
    """metrics/summary.json repeats the choice: rt_eps (task -> regime -> eps), every candidate's held-out SA, and
    DW's one eps."""
    from helpers import write_own_eps_choice
    from repro.stages.summary import eps_summary

    p = params_from(raw())
    monkeypatch.chdir(tmp_path)
    assert eps_summary() == {}  # no choice: nothing to show
    write_own_eps_choice(p, tmp_path)
    s = eps_summary()
    assert s["dw_eps"] == "4/255"
    assert s["rt_eps"] == {t: {"standard": "4/255", "linear": "4/255"} for t in p.data.downstream}
    assert s["rt_eps_held_out"]["synth_far"]["linear"] == {"4/255": 0.5, "1/255": 0.5}


def test_a_task_that_chose_another_eps_draws_and_transfers_from_that_model(tmp_path):
    """When select_eps picks the grid model (here forced: 1/255 on synth_near), the imp stage runs RT's downstream
    IMP from that model, the tickets stage draws RT's tickets from it and the transfer stage fine-tunes it, in
    folders that name it; the run's spec.json records the source and its eps."""
    import reliability_ws as W
    import torch

    from repro.config import load_params
    from repro.pipeline.tickets import draw
    from repro.tickets.mask import Mask

    ws = W.clone(tmp_path / "ws")
    W.write_params(ws, W.smoke_params(pretrain={"kinds": [W.KIND, AT], "eps_grid": ["1/255"]}, experiments={
        "rt_x": {"pairs": [[AT, "omp"], [AT, "imp_ds"]], "regimes": ["standard"], "tasks": ["synth_near"],
                 "seeds": [0]}}))
    for module, args in (("pretrain", (AT,)), ("pretrain_eps", ()), ("select_eps", ())):
        assert W.stage(ws, module, *args)[0] == 0, module
    doc = json.loads((ws / "metrics/eps.json").read_text())
    doc["tasks"]["synth_near"]["standard"].update(eps="1/255", source="eps1")  # as if 1/255 had won
    (ws / "metrics/eps.json").write_text(json.dumps(doc))
    for module, args in (("imp", ()), ("tickets", (W.LEVEL,)), ("transfer", (W.LEVEL,))):
        rc, err = W.stage(ws, module, *args)
        assert rc == 0, (module, err)
    assert (ws / "runs/imp" / f"{AT}-eps1-standard-ds-synth_near" / "levels.json").is_file()
    assert (ws / "runs/tickets" / f"s{W.LEVEL}" / f"{AT}-eps1-imp_ds-synth_near" / "mask.pt").is_file()
    assert (ws / "runs/transfer" / f"s{W.LEVEL}" / f"{AT}-eps1-imp_ds" / "synth_near" / "standard-f1-seed0"
            / "spec.json").is_file()
    ticket = ws / "runs/tickets" / f"s{W.LEVEL}" / f"{AT}-eps1-omp" / "mask.pt"
    assert ticket.is_file()  # (the own model's OMP ticket is drawn too: segment.pairs, RT Fig. 7, keep DW's eps)
    with W.inside(ws):
        want = draw(load_params(), AT, "omp", None, float(W.LEVEL), "eps1")  # OMP of the 1/255 model's weights
    got = Mask.load(ticket)
    assert all(torch.equal(got._m[k], want._m[k]) for k in want._m)
    own = Mask.load(ws / "runs/tickets" / f"s{W.LEVEL}" / f"{AT}-omp" / "mask.pt")   # the 4/255 model's OMP ticket
    assert any(not torch.equal(own._m[k], got._m[k]) for k in got._m)   # so `draw` did read the source's weights
    run = ws / "runs/transfer" / f"s{W.LEVEL}" / f"{AT}-eps1-omp" / "synth_near" / "standard-f1-seed0"
    spec = json.loads((run / "spec.json").read_text())
    assert (spec["source"], spec["eps"], spec["kind"], spec["method"]) == ("eps1", "1/255", AT, "omp")
