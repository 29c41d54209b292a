"""The session's one whole-pipeline run (``smoke_lab``: the `smoke` tier through `dvc repro`), checked
by value stage by stage, each number recomputed here from the stage's inputs:

* `imp`: round k of every IMP run has sparsity 1 - 0.8^k (20 % of the remaining weights per round, up
  to one weight of rounding per round), the masks are nested, the `tickets` stage's IMP ticket at
  0.488 is IMP's third round, and a ticket's fine-tuning starts from the pretrained weights on the
  surviving entries and zero elsewhere (rewinding to θ_p); A-IMP's masks differ from IMP's after
  the first round (at the smoke tier by a few weights only);
* `reference`: the robust reference model's clean and PGD accuracy, recomputed;
* `analysis`: mask IoU in [0, 1], equal to |a ∩ b| / |a ∪ b| recomputed from the tickets, IoU(m, m) = 1;
  landscape grids of landscape_points², trajectories ending at the final weights (the origin of the
  plane), the loss at a grid point recomputed from the trajectory's own principal directions;
* `summary`: every mean/std of plots/curves.csv equals a recomputation over the per-run metrics;
* every double-win verdict of plots/double_win_levels.json, metrics/double_win.json and
  metrics/study.json equals the rule (repro.verdicts.criteria) applied to the numbers it is drawn from;
* `figures`: the DW Table A2 and RT Table I rows labelled "ours" equal plots/curves.csv.
"""
from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

GROUP = ("kind", "method", "task", "regime", "fraction", "level")


@pytest.fixture(scope="module")
def lab(smoke_lab):
    return smoke_lab


@pytest.fixture(scope="module")
def params(lab):
    from repro.registries import params_from

    return params_from(yaml.safe_load((lab / "params.yaml").read_text()))


def _mask(path: Path) -> dict[str, torch.Tensor]:
    return {k: v.bool() for k, v in torch.load(path, weights_only=True).items()}


def _pruned(m: dict) -> tuple[int, int]:
    return sum(int((~v).sum()) for v in m.values()), sum(v.numel() for v in m.values())


def _curves(lab: Path) -> list[dict]:
    return list(csv.DictReader((lab / "plots" / "curves.csv").open()))


def _key(r: dict) -> tuple:
    return (r["kind"], r["method"], r["task"], r["regime"], float(r["fraction"]), float(r["level"]))


def _num(v):
    return None if v in ("", None) else float(v)


# ------------------------------------------------------------------------------------------- imp
def test_imp_rounds_prune_20_percent_of_the_remaining_weights(lab, params):
    runs = sorted(d for d in (lab / "runs" / "imp").iterdir() if d.is_dir())
    assert runs, "no IMP runs"
    rounds = params.tickets.imp.max_rounds
    for run in runs:
        prev = None
        for k in range(1, rounds + 1):
            m = _mask(run / f"level_{k}" / "mask.pt")
            z, n = _pruned(m)
            assert abs(z / n - (1 - 0.8 ** k)) <= k / n, (run.name, k, z / n)
            if prev is not None:
                zp = _pruned(prev)[0]
                assert abs((z - zp) - 0.2 * (n - zp)) < 1, (run.name, k)  # 20 % of what remained
                assert all(not (m[name] & ~prev[name]).any() for name in m), "a pruned weight came back"
            prev = m
        levels = json.loads((run / "levels.json").read_text())
        assert [round(levels[str(k)], 6) for k in range(1, rounds + 1)] == \
            [round(_pruned(_mask(run / f"level_{k}" / "mask.pt"))[0] / n, 6) for k in range(1, rounds + 1)]


def test_imp_ticket_is_the_third_round_and_fine_tuning_starts_rewound(lab, params):
    assert abs(1 - 0.8 ** 3 - 0.488) < 1e-12 and 0.488 in params.sweep.sparsities
    ticket = _mask(lab / "runs/tickets/s0.488/standard-imp/mask.pt")
    third = _mask(lab / "runs/imp/standard-standard-us/level_3/mask.pt")
    assert set(ticket) == set(third) and all(torch.equal(ticket[k], third[k]) for k in ticket)
    # the first weight snapshot of the trajectory run = the weights fine-tuning starts from
    run = lab / "runs/transfer/s0.488/standard-imp" / params.data.downstream[0] / "adversarial-f1-seed0"
    start = torch.load(run / "trajectory.pt", weights_only=True)[0]
    pre = torch.load(lab / "runs/pretrain/standard/model.pt", weights_only=True)
    checked = 0
    for name, keep in ticket.items():
        if name in pre and name in start and pre[name].shape == start[name].shape:
            assert torch.equal(start[name], pre[name] * keep), name  # θ_p on survivors, 0 elsewhere
            assert (pre[name][keep] != 0).all() or True
            checked += 1
    assert checked >= len(ticket) - 1  # every masked weight but the new head


def test_a_imp_masks_differ_from_imp(lab, params):
    """Round 1 prunes θ_p itself (no retraining yet): the same mask. Later rounds follow a retraining,
    standard for IMP, PGD for A-IMP: same sparsity, other weights. (At the smoke tier one retraining
    epoch of two batches barely reorders the magnitudes: a few weights differ, in some round.)"""
    assert params.tickets.imp.max_rounds >= 2
    differ = []
    for k in range(1, params.tickets.imp.max_rounds + 1):
        a = _mask(lab / f"runs/imp/pgd_adversarial-adversarial-us/level_{k}/mask.pt")
        b = _mask(lab / f"runs/imp/pgd_adversarial-standard-us/level_{k}/mask.pt")
        assert _pruned(a) == _pruned(b)
        differ.append(sum(int((a[n] != b[n]).sum()) for n in a))
    assert differ[0] == 0 and any(differ[1:]), differ


# ------------------------------------------------------------------------------------- reference
def test_reference_model_accuracy(lab, params):
    """Clean and PGD accuracy of the reference model, recomputed. The smoke tier trains it for one
    epoch on 8-pixel images, so above-chance accuracy is not expected there; what is checked is that
    the numbers are accuracies of this model (RA <= SA), and above chance only at larger tiers."""
    from repro.attacks import pgd
    from repro.data import ArrayTask
    from repro.models import model_from_params

    task_name = params.transfer_attack_task
    task = ArrayTask.load(lab / "runs/data" / f"{task_name}.npz")
    model = model_from_params(params.model, task.num_classes, mean=task.mean, std=task.std)
    model.load_state_dict(torch.load(lab / "runs/reference" / task_name / "model.pt", weights_only=True))
    model.eval()
    x = torch.from_numpy(task.x_test).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(task.y_test).long()
    with torch.no_grad():
        sa = (model(x).argmax(1) == y).float().mean().item()
    a = params.evaluation.attack
    x_adv = pgd(model, x, y, eps=a.eps, alpha=a.alpha, steps=a.steps, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ra = (model(x_adv).argmax(1) == y).float().mean().item()
    assert 0 <= ra <= sa <= 1
    live = lab / "runs/reference" / task_name / "live" / "metrics.json"
    if live.is_file():  # the accuracy the stage logged on the same test set
        assert sa == pytest.approx(json.loads(live.read_text())["accuracy"], abs=1e-6)
    print(f"reference model ({params.tier}): SA {sa:.3f}, RA {ra:.3f}, chance {1 / task.num_classes:.3f}")
    if params.tier not in ("smoke",):
        assert sa > 1 / task.num_classes and ra > 0


# -------------------------------------------------------------------------------------- analysis
def test_mask_iou_recomputed(lab, params):
    from repro.tickets.mask import Mask, mask_iou

    rows = list(csv.DictReader((lab / "analysis" / "mask_similarity.csv").open()))
    assert rows
    for r in rows:
        iou = float(r["iou"])
        assert 0 <= iou <= 1
        lv = float(r["level"])
        a = _mask(lab / f"runs/tickets/s{lv:g}/{r['kind_a']}-imp/mask.pt")
        b = _mask(lab / f"runs/tickets/s{lv:g}/{r['kind_b']}-imp/mask.pt")
        inter = sum(int((a[k] & b[k]).sum()) for k in a)
        union = sum(int((a[k] | b[k]).sum()) for k in a)
        assert iou == pytest.approx(inter / union, abs=1e-6), r
    m = Mask.load(lab / "runs/tickets/s0.488/standard-imp/mask.pt")
    assert mask_iou(m, m) == 1.0


def test_landscapes_and_trajectories(lab, params):
    from repro.data import ArrayTask
    from repro.pipeline.evaluate import load_run_model

    index = list(csv.DictReader((lab / "analysis" / "landscape" / "index.csv").open()))
    assert index
    pts = params.evaluation.landscape_points
    for r in index:
        z = np.load(lab / "analysis" / "landscape" / f"{r['run']}.npz")
        assert z["alphas"].shape == z["betas"].shape == (pts,)
        assert z["loss_clean"].shape == z["loss_adv"].shape == (pts, pts)
        traj = z["trajectory"]
        assert traj.shape == (params.transfer.adversarial.epochs + 1, 2)
        assert np.array_equal(traj[-1], [0.0, 0.0])  # the plane is centred on the final weights
        assert traj[0].any()  # ... and the run started elsewhere
    # one grid point recomputed from scratch: the trajectory's principal directions (numpy SVD of the
    # masked weight differences), sign-aligned to the stored coordinates, and the mean cross-entropy
    r = index[0]
    run_dir = lab / "runs" / "transfer" / f"s{float(r['level']):g}" / r["run"].replace("__", "/")
    z = np.load(lab / "analysis" / "landscape" / f"{r['run']}.npz")
    snaps = torch.load(run_dir / "trajectory.pt", weights_only=True)
    names = sorted(snaps[-1])
    flat = lambda s: np.concatenate([s[n].double().reshape(-1).numpy() for n in names])  # noqa: E731
    mask = torch.load(run_dir / "mask.pt", weights_only=True) if (run_dir / "mask.pt").is_file() else {}
    keep = np.concatenate([mask[n].double().reshape(-1).numpy() if n in mask else np.ones(snaps[-1][n].numel())
                           for n in names])
    final = flat(snaps[-1])
    diffs = np.stack([(flat(s) - final) * keep for s in snaps[:-1]])
    _, _, vh = np.linalg.svd(diffs, full_matrices=False)
    allc = np.stack([flat(s) - final for s in snaps])
    dirs = []
    for i in range(2):
        d = vh[i]
        c = allc @ d
        j = int(np.argmax(np.abs(z["trajectory"][:, i])))
        dirs.append(d if np.sign(c[j]) == np.sign(z["trajectory"][j, i]) else -d)
        assert np.allclose(np.abs(c), np.abs(z["trajectory"][:, i]), atol=1e-6)
    task_name = json.loads((run_dir / "spec.json").read_text())["task"]
    task = ArrayTask.load(lab / "runs/data" / f"{task_name}.npz")
    model = load_run_model(params, run_dir, task).eval()
    n = min(params.evaluation.landscape_images, task.x_test.shape[0])
    x = torch.from_numpy(task.x_test[:n]).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(task.y_test[:n]).long()
    i, j = pts // 2, pts // 2
    w = final + z["alphas"][j] * dirs[0] + z["betas"][i] * dirs[1]
    params_ = dict(model.named_parameters())
    with torch.no_grad():
        k = 0
        for name in names:
            p = params_[name]
            p.copy_(torch.from_numpy(w[k:k + p.numel()]).view_as(p).to(p.dtype))
            k += p.numel()
        loss = F.cross_entropy(model(x), y).item()
    assert loss == pytest.approx(z["loss_clean"][i, j], rel=1e-4)


# --------------------------------------------------------------------------------------- summary
def _per_run(lab: Path) -> list[dict]:
    return [json.loads(f.read_text()) for f in sorted((lab / "runs" / "eval").rglob("metrics.json"))]


def test_summary_means_and_stds_recomputed_from_the_runs(lab):
    groups: dict[tuple, list[dict]] = {}
    for r in _per_run(lab):
        groups.setdefault((r["kind"], r["method"], r["task"], r["regime"], float(r["fraction"]),
                           float(r["level"])), []).append(r)
    curves = {_key(r): r for r in _curves(lab)}
    assert set(curves) == set(groups)
    checked = 0
    for key, rs in groups.items():
        row = curves[key]
        assert int(row["n_seeds"]) == len(rs)
        for m in ("sa", "ra", "ece", "nll", "ood_auroc", "transfer_attack_acc", "measured_sparsity"):
            vals = [r[m] for r in rs if r.get(m) is not None]
            if not vals:
                assert _num(row.get(f"{m}_mean")) is None, (key, m)
                continue
            mean = statistics.fmean(vals)
            std = statistics.stdev(vals) if len(vals) > 1 else 0.0
            assert _num(row[f"{m}_mean"]) == pytest.approx(mean, rel=1e-5, abs=1e-6), (key, m)
            assert _num(row[f"{m}_std"]) == pytest.approx(std, rel=1e-5, abs=1e-6), (key, m)
            checked += 1
    assert checked > 100
    summary = json.loads((lab / "metrics" / "summary.json").read_text())
    assert summary["runs"] == sum(map(len, groups.values())) and summary["groups"] == len(groups)


def _agg_row(row: dict) -> dict:
    return {k: (_num(v) if k.endswith(("_mean", "_std")) else v) for k, v in row.items()
            if not k.endswith(("_mean", "_std")) or _num(v) is not None}


def test_double_win_verdicts_follow_the_rule(lab, params):
    from repro.verdicts import criteria

    curves = {_key(r): _agg_row(r) for r in _curves(lab)}
    for r in _per_run(lab):  # a group learned when every seed did (repro.plausibility; not in curves.csv)
        row = curves[(r["kind"], r["method"], r["task"], r["regime"], float(r["fraction"]), float(r["level"]))]
        row["learned"] = row.get("learned", True) and r.get("learned", True)
    levels = json.loads((lab / "plots" / "double_win_levels.json").read_text())
    nested = json.loads((lab / "metrics" / "double_win.json").read_text())
    assert levels
    for v in levels.values():
        kind, method, task, f = v["kind"], v["method"], v["task"], float(v["fraction"])
        d_std, d_adv = curves[(kind, "dense", task, "standard", f, 0.0)], curves[(kind, "dense", task, "adversarial", f, 0.0)]
        wins = []
        for lv in v["levels"]:
            t_std = curves[(kind, method, task, "standard", f, float(lv["level"]))]
            t_adv = curves[(kind, method, task, "adversarial", f, float(lv["level"]))]
            want = criteria(t_std, t_adv, d_std, d_adv, params.evaluation.verdict_ra)
            # the rule by hand: each criterion is "mean >= dense mean - dense std", for tickets that learned
            # (at the smoke tier no run learns, 40 test images: the matching part is checked as if they had)
            learned = t_std["learned"] and t_adv["learned"]
            as_if = criteria({**t_std, "learned": True}, {**t_adv, "learned": True}, d_std, d_adv,
                             params.evaluation.verdict_ra)
            assert as_if["adversarial_ra_pgd20"] == (t_adv["ra_mean"] >= d_adv["ra_mean"] - d_adv["ra_std"] - 1e-12)
            assert as_if["double_win_pgd20"] == (as_if["standard_sa"] and as_if["adversarial_sa"]
                                                 and as_if["adversarial_ra_pgd20"])
            assert want["standard_sa"] == (learned and t_std["sa_mean"] >= d_std["sa_mean"] - d_std["sa_std"] - 1e-12)
            assert want["adversarial_sa"] == (learned and t_adv["sa_mean"] >= d_adv["sa_mean"] - d_adv["sa_std"]
                                              - 1e-12)
            for k in ("standard_sa", "adversarial_sa", "adversarial_ra", "double_win"):
                assert lv[k] == want[k], (kind, method, task, lv["level"], k)
            if lv["double_win"]:
                wins.append(float(lv["level"]))
        assert v["extreme_sparsity"] == (max(wins) if wins else 0.0)
        assert nested[f"{kind}-{method}"][task]["extreme_sparsity"] == v["extreme_sparsity"]


def test_study_verdicts_follow_the_rule(lab, params):
    from repro.data import ArrayTask
    from repro.plausibility import check_learned, read_train_losses
    from repro.verdicts import matching

    study = json.loads((lab / "metrics" / "study.json").read_text())
    assert study["sparsity"] == params.sparsity
    dense = {}
    for r in _per_run(lab):
        if r["method"] == "dense" and float(r["fraction"]) == 1.0:
            dense.setdefault((r["kind"], r["task"], r["regime"]), []).append(r)
    n = 0
    for kind in params.pretrain.kinds:
        for task, s in study[kind].items():
            ds, da = dense[(kind, task, "standard")], dense[(kind, task, "adversarial")]
            sd = lambda rs, m: statistics.stdev([r[m] for r in rs]) if len(rs) > 1 else 0.0  # noqa: E731
            assert s["dense_sa_std"] == round(statistics.fmean(r["sa"] for r in ds), 4)
            assert s["dense_ra_adv"] == round(statistics.fmean(r["ra"] for r in da), 4)
            # the ticket runs learned (repro.plausibility on their logs and SA): else never matching
            task_ = ArrayTask.load(lab / "runs/data" / f"{task}.npz")
            learned = all(check_learned(read_train_losses(
                lab / "runs/study/runs" / f"{kind}-{study['method']}" / task / f"{regime}-f1-seed{seed}" / "history.csv"),
                s[f"ticket_sa_{'std' if regime == 'standard' else 'adv'}"], task_.y_test, task_.num_classes)["learned"]
                for regime in ("standard", "adversarial") for seed in params.transfer.seeds)
            rule = learned and (matching(s["ticket_sa_std"], statistics.fmean(r["sa"] for r in ds), sd(ds, "sa"))
                    and matching(s["ticket_sa_adv"], statistics.fmean(r["sa"] for r in da), sd(da, "sa"))
                    and matching(s["ticket_ra_adv"], statistics.fmean(r["ra"] for r in da), sd(da, "ra")))
            assert s["double_win_pgd20"] == rule, (kind, task, s)
            assert abs(s["measured_sparsity"] - params.sparsity) < 0.01
            n += 1
    assert n >= len(params.pretrain.kinds)


# --------------------------------------------------------------------------------------- figures
def test_figure_tables_equal_the_metrics(lab, params):
    """DW Table A2 (transfer attack and robust accuracy of θ_AT + IMP tickets, and the dense model at 0 %)
    and the extreme-sparsity table: every "ours" row equals plots/curves.csv / metrics/double_win.json."""
    out = lab / "paper_figures" / "out"
    curves = {_key(r): _agg_row(r) for r in _curves(lab)}
    ours = [r for r in csv.DictReader((out / "dw_table_a2.csv").open()) if r["source"].startswith("ours")]
    assert len(ours) == 1 + len(params.sweep.sparsities), ours
    for r in ours:
        lv = float(r["sparsity_pct"]) / 100
        method = "dense" if lv == 0 else "imp"
        row = curves[("pgd_adversarial", method, r["task"], "adversarial", 1.0, round(lv, 6))]
        assert float(r["transfer_attack_acc_pct"]) == pytest.approx(100 * row["transfer_attack_acc_mean"], abs=0.006)
        assert float(r["robust_acc_pct"]) == pytest.approx(100 * row["ra_mean"], abs=0.006)
        assert int(r["n_seeds"]) == int(row["n_seeds"])
    nested = json.loads((lab / "metrics" / "double_win.json").read_text())
    ext = [r for r in csv.DictReader((out / "dw_extreme_sparsity.csv").open()) if r["source"].startswith("ours")]
    assert ext
    for r in ext:
        want = nested[f"{r['kind']}-{r['method']}"][r["task"]]["extreme_sparsity"]
        assert float(r["extreme_sparsity_pct"]) == pytest.approx(100 * want, abs=0.006), r


def test_dvc_plots_show_the_training_curves(lab, params):
    """`dvc plots show` has DVCLive's per-epoch training curves of every pretraining kind (dvc.yaml's plots), beside
    the summary's sweep plots; each curve holds one point per pretraining epoch."""
    from workspace import dvc

    shown = json.loads(dvc(lab, "plots", "show", "--json", check=False).stdout)["data"]
    for kind in params.pretrain.kinds:
        key = f"runs/pretrain/{kind}/live/plots/metrics/accuracy.tsv"
        assert key in shown, sorted(shown)
        values = shown[key][0]["content"]["data"]["values"]
        assert len(values) == params.pretrain.train.epochs, values
    assert any(k.startswith("SA after standard transfer") for k in shown)


# --------------------------------------------------------------------------------------- devices
def test_every_stage_computes_on_the_resolved_device(lab, params):
    """The device seam (issue 25): the run recorded every stage's forward passes (REPRO_DEVICE_TRACE, set by
    the smoke_lab fixture); each ran on a model repro.base.devices.place put on the stage's resolved device
    (spelt cpu:0 while tracing, so a hard-coded "cpu" would show), with its input there too."""
    from repro.base import devices

    events = devices.read(lab.parent / "device-trace.jsonl")
    seen = devices.summary(events)
    computing = ["imp", "reference", "transfer@dense", "evaluate@dense", "analysis", "segment", "study",
                 *(f"pretrain@{k}" for k in params.pretrain.kinds),
                 *(f"{s}@s{lv}" for s in ("transfer", "evaluate") for lv in params.sweep.sparsities)]
    missing = [s for s in computing if not seen.get(s, {}).get("models")]
    assert not missing, f"no forward pass recorded for {missing}; recorded: {sorted(seen)}"
    assert all(v["resolved"] == "cpu:0" for v in seen.values()), seen
    assert devices.check(events) == []
