"""The real tiers run the papers' own protocol (issue 13): no toy values left from the embedded
default, the paper's values as defaults with the official code's one parameter away, OoD sets that
are not the evaluated task."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from repro.config import ConfigError
from repro.tiers import merge
from repro.registries import params_from

ROOT = Path(__file__).resolve().parents[1]
REAL_TIERS = ("small", "paper")


def _default() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def merged(tier: str) -> dict:
    return merge(_default(), yaml.safe_load((ROOT / "tiers" / f"{tier}.yaml").read_text()))


def training_blocks(cfg, path=()):
    """(path, block) of every training recipe (a mapping with ``epochs``) in a params tree."""
    if isinstance(cfg, dict):
        if "epochs" in cfg:
            yield path, cfg
        for k, v in cfg.items():
            yield from training_blocks(v, (*path, k))


def _at(cfg, path):
    """The value at ``path`` (None where the embedded default has no such block, e.g. a per-task recipe)."""
    for k in path:
        if not isinstance(cfg, dict) or k not in cfg:
            return None
        cfg = cfg[k]
    return cfg


@pytest.mark.parametrize("tier", REAL_TIERS)
def test_every_training_block_of_a_real_tier_is_set_explicitly(tier):
    default, cfg = _default(), merged(tier)
    blocks = list(training_blocks(cfg))
    # pretraining, IMP retraining, LMP, the three transfer regimes and the Table A2 reference model
    assert len(blocks) >= 7
    toy = [".".join(p) for p, b in blocks if b == _at(default, p)]
    assert not toy, f"tier {tier} leaves the embedded default's toy recipe at {toy}"


@pytest.mark.parametrize("tier", REAL_TIERS)
def test_real_tiers_run_the_papers_a_imp_step_and_the_official_first_n_subsets(tier):
    cfg = merged(tier)
    p = params_from(cfg)
    a = p.tickets.imp.attack
    assert (a.name, a.steps) == ("pgd", 3)
    assert a.eps == pytest.approx(8 / 255) and a.alpha == pytest.approx(2 / 255)  # DW Sec. A1
    assert p.data.fraction_how == "first"  # the official code's data-limited subsets


def test_a_imp_defaults_to_the_papers_step_and_the_official_step_is_one_parameter_away(tmp_path):
    p = params_from(_default())
    assert p.tickets.imp.attack.alpha == pytest.approx(2 / 255)
    official = params_from(merge(_default(), {"tickets": {"imp": {"attack": {"alpha": "16/765"}}}}))
    assert official.tickets.imp.attack.alpha == pytest.approx(16 / (3 * 255))


def test_an_ood_set_equal_to_an_evaluated_task_is_refused():
    cfg = merge(_default(), {"data": {"ood": "synth_near"}})
    with pytest.raises(ConfigError, match=r"data\.ood.*'synth_near' is also the evaluated task"):
        params_from(cfg)
    cfg = merge(_default(), {"data": {"ood_per_task": {"synth_mid": "synth_mid"}}})
    with pytest.raises(ConfigError, match=r"ood_per_task\.synth_mid"):
        params_from(cfg)
    p = params_from(merge(_default(), {"data": {"ood_per_task": {"synth_mid": "synth_near"}}}))
    assert (p.data.ood_for("synth_mid"), p.data.ood_for("synth_near")) == ("synth_near", "synth_ood")


@pytest.mark.parametrize("tier", REAL_TIERS)
def test_no_real_tier_measures_a_task_against_itself_as_ood(tier):
    p = params_from(merged(tier))
    assert all(p.data.ood_for(t) != t for t in p.data.downstream)
    assert p.data.ood_for("svhn") == "cifar10" and p.data.ood_for("cifar10") == "svhn"


def test_evaluate_uses_each_tasks_own_ood_set(tmp_path):
    import reliability_ws as W
    from repro.config import load_params
    from repro.pipeline import evaluate, transfer
    from repro.plan import RunSpec

    ws = W.clone(tmp_path / "ws")
    W.write_params(ws, merge(W.smoke_params(), {"data": {"ood_per_task": {"synth_near": "synth_far"}}}))
    spec = RunSpec(W.KIND, "omp", "synth_near", "standard", 1.0, 0)
    with W.inside(ws):
        p = load_params()
        run = transfer.run_one(p, spec, 0.488, {})
        cache: dict = {}
        evaluate.evaluate_run(p, run, {}, cache, {})
    assert list(cache) == ["synth_far"]


# ------------------------------------------------------------------ point 2: the papers' sparsity grids
IMP_GRID = [round(1 - 0.8 ** k, 4) for k in range(1, 20)]  # 20.00 % .. 98.56 % (official list, DW's levels)


@pytest.mark.parametrize("tier", REAL_TIERS)
def test_real_tiers_run_every_imp_level_and_the_rt_levels(tier):
    p = params_from(merged(tier))
    levels = set(p.sweep.sparsities)
    assert set(IMP_GRID) <= levels  # incl. 36.00, 59.04, 83.22, 93.13, 95.60, 97.19, 98.20 %
    assert p.tickets.imp.max_rounds >= 19
    for name in ("dw_pretraining", "dw_methods", "dw_data", "rt_aimp"):
        assert sorted(p.experiments[name].levels) == IMP_GRID, name
    for name in ("rt_omp", "rt_structured", "rt_lmp"):
        assert {0.7, 0.92, 0.99} <= set(p.experiments[name].levels), name  # RT Sec. III text
    assert {0.2, 0.5904, 0.7903, 0.8926} <= set(p.experiments["rt_omp"].levels)  # RT Table I
    assert p.evaluation.kernel_map_level == pytest.approx(0.9719)  # DW Fig. 7


def test_each_experiment_runs_only_at_its_own_levels():
    from repro.plan import runs_for_level

    p = params_from(merged("small"))
    # 30 %: an RT level only (OMP / structured / LMP tickets; no DW run, e.g. no adversarial transfer)
    at_rt_only = {(r.method, r.regime) for r in runs_for_level(p, 0.3)}
    assert at_rt_only and all(m.startswith("omp") or m == "lmp" for m, _ in at_rt_only)
    assert "adversarial" not in {g for _, g in at_rt_only}
    # 36 %: an IMP level only (DW, RT A-IMP; no RT OMP linear evaluation, structured or LMP run)
    at_imp_only = {(r.method, r.regime) for r in runs_for_level(p, 0.36)}
    assert at_imp_only and not {g for _, g in at_imp_only} & {"linear", "mask"}
    assert not any(m.startswith("omp_") for m, _ in at_imp_only)
    dense = runs_for_level(p, 0)
    assert {r.method for r in dense} == {"dense"} and len(dense) > 0


def test_experiment_levels_off_the_sweep_are_refused():
    cfg = merge(_default(), {"experiments": {"dw_data": {"levels": [0.95]}}})
    with pytest.raises(ConfigError, match=r"experiments\.dw_data\.levels.*0\.95"):
        params_from(cfg)
    with pytest.raises(ConfigError, match="kernel_map_level"):
        params_from(merge(_default(), {"evaluation": {"kernel_map_level": 0.95}}))


@pytest.mark.parametrize("tier", REAL_TIERS)
def test_the_trial_overlay_runs_every_experiment_at_its_one_level(tier):
    cfg = merge(merged(tier), yaml.safe_load((ROOT / "tiers" / "trial.yaml").read_text()))
    p = params_from(cfg)
    assert p.sweep.sparsities == (0.2,) and all(e.levels is None for e in p.experiments.values())


# ------------------------------------------------------------- point 8: landscapes at the tier's transform
def test_loss_landscape_sees_the_tiers_test_transform(tmp_path, monkeypatch):
    """The landscape inputs go through the tier's test transform at data.image_size (224 px in the paper
    tier), not the stored arrays at their native size: here 8-px images, a 16-px model input."""
    import reliability_ws as W
    from repro import landscape
    from repro.config import load_params
    from repro.plan import RunSpec
    from repro.pipeline import transfer
    from repro.pipeline import analysis

    ws = W.clone(tmp_path / "ws")
    W.write_params(ws, merge(W.smoke_params(), {"data": {"image_size": 16, "recipe": "imagenet224"}}))
    seen = []
    real = landscape.loss_grid
    monkeypatch.setattr(landscape, "loss_grid", lambda model, plane, a, b, x, y: seen.append(tuple(x.shape))
                        or real(model, plane, a, b, x, y))
    spec = RunSpec(W.KIND, "omp", "synth_near", "adversarial", 1.0, 0)
    with W.inside(ws):
        p = load_params()
        run = transfer.run_one(p, spec, 0.488, {})
        analysis._landscape(p, run.parents[3], run / "trajectory.pt")
    n = min(p.evaluation.landscape_images, 40)
    assert seen == [(n, 3, 16, 16)] * 2  # clean and PGD grids


# ------------------------------------- point 6: published checkpoints keep their publisher's normalization
def test_imp_on_the_source_keeps_a_published_checkpoints_normalization(tmp_path, monkeypatch):
    import reliability_ws as W
    from repro.config import load_params
    from repro.models.resnet import IMAGENET_MEAN, IMAGENET_STD
    from repro.pipeline import imp
    from repro.pipeline.inputs import load_task

    ws = W.clone(tmp_path / "ws")
    seen = {}

    def fake_imp(model, target, ctx):  # what IMP / A-IMP would retrain: record its input normalization
        seen["mean"], seen["std"] = model.normalize.mean.flatten().tolist(), model.normalize.std.flatten().tolist()
        return []

    monkeypatch.setattr(imp, "run_imp", fake_imp)
    for published, want in (({W.KIND: "torchvision_resnet18_imagenet1k_v1"}, (IMAGENET_MEAN, IMAGENET_STD)),
                            ({}, None)):
        W.write_params(ws, merge(W.smoke_params(), {"pretrain": {"published": published}}))
        with W.inside(ws):
            p = load_params()
            imp.run_one(p, W.KIND, "adversarial", None)
            src = load_task(p.data.source)
        want = want or (src.mean, src.std)  # in-house pretraining: the source task's own statistics
        assert seen["mean"] == pytest.approx(list(want[0])) and seen["std"] == pytest.approx(list(want[1]))


# ------------------------------------------------------------- point 11: docs/PROTOCOL.md against the tier
PROTOCOL = ROOT / "docs" / "PROTOCOL.md"
ITEMS = ([f"DW Figure {i}" for i in (1, 2, 3, 4, 5, 6, 7, "A8", "A9", "A10")] + ["DW Table 1", "DW Table A2"]
         + [f"RT Fig. {i}" for i in range(1, 10)] + ["RT Table I", "RT Table II"])
CHECK_COLUMN = "`paper` tier (checked)"


def protocol_rows() -> list[dict]:
    """Every row of every table in docs/PROTOCOL.md as {header: cell}."""
    rows, header = [], None
    for line in PROTOCOL.read_text().splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif not set("".join(cells)) <= set("-: "):
            assert len(cells) == len(header), f"PROTOCOL.md row has {len(cells)} cells, header {len(header)}: {line}"
            rows.append(dict(zip(header, cells)))
    return rows


def _value(v):
    from repro.config import parse_number

    if isinstance(v, list):
        return [_value(x) for x in v]
    if isinstance(v, str) and "/" in v:
        return parse_number(v, "PROTOCOL.md")  # e.g. 8/255
    if isinstance(v, str):
        try:
            return float(v)  # YAML reads 5e-4 (no dot) as a string
        except ValueError:
            return v
    return v


def _plain(v):
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    return v


def _same(a, b) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return b == pytest.approx(a, rel=1e-6, abs=1e-9)
    return a == b


def _lookup(p, key: str):
    node = p
    for part in key.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return _plain(node)


def test_protocol_lists_every_table_and_figure_of_both_papers():
    names = [r.get("item") for r in protocol_rows() if "item" in r]
    assert sorted(names) == sorted(ITEMS)


def test_every_protocol_row_holds_in_the_merged_paper_tier():
    import re

    p = params_from(merged("paper"))
    checked = 0
    for row in protocol_rows():
        label = row.get("item") or row.get("setting")
        cell = row[CHECK_COLUMN]
        claims = re.findall(r"`([^`]+)`", cell)
        status = row["status / notes"]
        if not claims:  # nothing the tier carries: the row must say it is not run, and why
            assert cell == "—" and status.startswith("not run"), label
            continue
        for claim in claims:
            m = re.fullmatch(r"([\w.]+) (=|⊇) (.+)", claim)
            assert m, f"{label}: cannot read the claim {claim!r}"
            key, op, text = m.groups()
            actual, want = _lookup(p, key), _value(yaml.safe_load(text))
            if op == "=":
                assert _same(want, actual), f"{label}: {key} is {actual!r}, PROTOCOL.md says {want!r}"
            else:
                missing = [w for w in want if not any(_same(w, a) for a in actual)]
                assert not missing, f"{label}: {key} = {actual!r} lacks {missing!r} (PROTOCOL.md)"
            checked += 1
        assert re.search(r"\b(paper|official|choice|deviation)\b", status), f"{label}: status {status!r}"
    assert checked >= 80


# ------------------------------------------------------------------ point 4: per-task recipes (DW SVHN)
@pytest.mark.parametrize("tier", REAL_TIERS)
def test_dw_svhn_adversarial_transfer_runs_its_own_recipe(tier):
    p = params_from(merged(tier))
    svhn, cifar = p.transfer.recipe("adversarial", "svhn"), p.transfer.recipe("adversarial", "cifar10")
    assert (svhn.epochs, svhn.lr, svhn.schedule, svhn.batch_size, svhn.weight_decay) == (80, 0.01, "cosine", 128, 5e-4)
    assert (cifar.epochs, cifar.lr, cifar.schedule, cifar.milestones) == (100, 0.1, "step", (50, 75))
    assert p.transfer.recipe("standard", "svhn") == p.transfer.standard


def test_per_task_recipes_name_downstream_tasks_and_regimes():
    with pytest.raises(ConfigError, match=r"transfer\.per_task\.svnh: dataset 'svnh' is unknown"):
        params_from(merge(_default(), {"transfer": {"per_task": {"svnh": {"adversarial": {"epochs": 2}}}}}))
    with pytest.raises(ConfigError, match=r"data\.ood_per_task: dataset 'svnh' is unknown"):
        params_from(merge(_default(), {"data": {"ood_per_task": {"svnh": "synth_far"}}}))
    # a tier's entry for a known task this run leaves out (e.g. the paper tier's SVHN recipe and OoD set
    # with data.downstream: [cifar10]) is unused, not an error
    p = params_from(merge(_default(), {"transfer": {"per_task": {"svhn": {"adversarial": {"epochs": 2}}}},
                                             "data": {"ood_per_task": {"svhn": "cifar10"}}}))
    assert p.data.ood_for("synth_near") == p.data.ood
    with pytest.raises(ConfigError, match=r"per_task\.synth_near\.mask"):
        params_from(merge(_default(), {"transfer": {"per_task": {"synth_near": {"mask": {"epochs": 2}}}}}))


def test_a_transfer_run_trains_with_its_tasks_recipe(tmp_path):
    import csv

    import reliability_ws as W
    from repro.config import load_params
    from repro.plan import RunSpec
    from repro.pipeline import transfer

    ws = W.clone(tmp_path / "ws")
    own = {"epochs": 2, "lr": 0.02, "momentum": 0.9, "weight_decay": 0.0, "schedule": "constant", "batch_size": 20}
    W.write_params(ws, merge(W.smoke_params(), {"transfer": {"per_task": {"synth_near": {"standard": own}}}}))
    with W.inside(ws):
        p = load_params()
        assert p.transfer.standard.epochs == 1
        run = transfer.run_one(p, RunSpec(W.KIND, "omp", "synth_near", "standard", 1.0, 0), 0.488, {})
    rows = list(csv.DictReader((ws / run / "history.csv").open()))
    assert len(rows) == 2  # the task's 2 epochs, not the regime's 1


def test_a_fraction_keeps_two_epochs_of_every_adversarial_recipe():
    from repro import tiers

    out = tiers.scale(merged("small"), 0.01)
    assert out["transfer"]["per_task"]["svhn"]["adversarial"]["epochs"] == 2


# ---------------------------------------------------- point 9: Robust Tickets' ResNet-18 panels (`paper r18`)
def test_the_r18_overlay_runs_rts_resnet18_panels_from_the_published_resnet18s():
    from repro.plan import runs_for_level
    from repro.weights import WEIGHTS

    cfg = merge(merged("paper"), yaml.safe_load((ROOT / "tiers" / "r18.yaml").read_text()))
    cfg["tier"] = "paper+r18"
    p = params_from(cfg)
    assert p.model.arch == "resnet18"
    for kind in p.pretrain.kinds:  # every kind that runs starts from a published ResNet-18 of that kind
        entry = WEIGHTS.get(p.pretrain.published[kind])
        assert (entry.arch, entry.kind) == ("resnet18", kind)
    assert set(p.pretrain.kinds) == {"standard", "pgd_adversarial"}  # natural vs robust tickets (RT)
    for name in ("rt_omp", "rt_aimp", "rt_lmp"):  # Fig. 1/2/8 + Table I, Fig. 4, Fig. 5
        e = p.experiments[name]
        assert e.pairs and e.tasks == ("cifar10", "cifar100"), name
    assert not any(p.experiments[n].pairs for n in ("dw_pretraining", "dw_methods", "dw_data", "rt_structured"))
    regimes = {r.regime for r in runs_for_level(p, 0.7)} | {r.regime for r in runs_for_level(p, 0.36)}
    assert regimes == {"standard", "linear", "mask"}
    # the paper tier's recipes, levels and checkpoint selection are kept
    assert p.transfer.standard.epochs == 150 and p.evaluation.selected("standard") == "best_sa"


# ------------------------------------------- issue 26 point 8: rows 33, 52, 61, 67-68 tell the truth
def _row(label: str) -> dict:
    return next(r for r in protocol_rows() if (r.get("item") or r.get("setting")) == label)


@pytest.mark.parametrize("overlay", [None, "r18", "vtab"])
def test_rt_source_networks_row_holds_rts_eps_is_picked_per_task_from_salmans_grid(overlay):
    """RT picks the robust model's ε per task (Salman et al.'s published L-inf models at 0.5-8/255): the paper tier
    and its ResNet-18 overlays offer RT's experiments every radius as a published checkpoint of their architecture
    (issue 26 point 1), DW's ε = 8/255 ResNet-50 stays the kind's own, and the row says 'per task'."""
    from repro.plan import candidates
    from repro.weights import WEIGHTS

    row = _row("RT source networks (Sec. III-A)")
    cfg = merged("paper")
    if overlay:
        cfg = merge(cfg, yaml.safe_load((ROOT / "tiers" / f"{overlay}.yaml").read_text()))
        cfg["tier"] = f"paper+{overlay}"
    p = params_from(cfg)
    radii = sorted(round(e * 255, 6) for _, e in candidates(p))
    assert radii == [0.5, 1, 2, 4, 8]
    own = WEIGHTS.get(p.pretrain.published["pgd_adversarial"])
    assert own.arch == p.model.arch and own.eps * 255 == pytest.approx(8 if overlay is None else 4)
    assert "per task" in row["status / notes"] and "**deviation**" not in row["status / notes"]
    assert "pretrain.published.pgd_adversarial = madrylab_resnet50_linf_eps8.0" in row[CHECK_COLUMN]


def test_dw_a10_voc_panel_is_a_deviation_not_a_choice():
    row = _row("DW Figure A10")
    assert row["status / notes"].startswith("**deviation**") and "instance segmentation" in row["status / notes"]
    assert params_from(merged("paper")).segment.task == "voc2012"  # the semantic stage that stands in for it


def test_rt_a_imp_row_names_its_settings_as_dws():
    row = _row("RT Fig. 4")
    p = params_from(merged("paper"))
    a, r = p.tickets.imp.attack, p.tickets.imp.retrain
    assert (a.steps, r.epochs, r.batch_size) == (3, 30, 2048)  # DW Sec. A1's, which the row names
    assert "DW" in row["attack"] and "DW" in row["status / notes"] and "not RT's" in row["status / notes"]
    assert "**choice**" in row["status / notes"]


def test_rt_fig9_and_table2_rows_hold_in_the_vtab_overlay():
    """Fig. 9 / Table II name 12 tasks (RT Sec. III-A says 13); the vtab overlay runs those 12 with OMP linear
    evaluation and the FID of Table II; the rows say so, and the 13-vs-12 discrepancy."""
    fig9, table2 = _row("RT Fig. 9"), _row("RT Table II")
    twelve = ["cifar10", "aircraft", "cifar100", "pets", "flowers", "cars", "food", "dtd", "birdsnap", "sun397",
              "caltech101", "caltech256"]
    cfg = merge(merged("paper"), yaml.safe_load((ROOT / "tiers" / "vtab.yaml").read_text()))
    cfg["tier"] = "paper+vtab"
    p = params_from(cfg)
    assert list(p.experiments["rt_omp"].tasks) == twelve and p.experiments["rt_omp"].regimes == ("linear",)
    assert set(twelve) <= set(p.data.downstream)
    assert (p.evaluation.domain_gap, p.evaluation.fid_weights) == ("fid", "fid_inception_v3_2015_12_05")
    assert "13 datasets" in fig9["datasets"] and "name 12" in fig9["datasets"]
    # the robust ResNet-18's eps is chosen per task from the paper tier's five radii, as RT's other experiments
    assert "vtab" in fig9["status / notes"] and "per task" in fig9["status / notes"]
    assert len(p.pretrain.eps_grid) == 5 and "one ε for all tasks" not in fig9["status / notes"]
    assert "deviation" not in table2["status / notes"] and "vtab" in table2["status / notes"]
