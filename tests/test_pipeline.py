"""dvc.yaml: stage structure, per-level isolation, and the scale tiers resolving offline."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DVC = Path(sys.executable).with_name("dvc")


def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_every_stage_is_a_module_with_an_entry_point():
    """One stage, one module: each cmd runs `python -m repro.stages.<name>` and the module has main()."""
    import importlib

    for name, st in _stages().items():
        cmd = (st.get("do") or st)["cmd"]
        if name == "figures":  # the papermill driver lives beside its notebooks
            assert cmd == "python paper_figures/render.py"
            continue
        assert cmd.startswith("python -m repro.stages."), name
        module = cmd.split()[2]
        assert callable(importlib.import_module(module).main), module


def test_per_level_stages_do_not_depend_on_the_sweep_list():
    """Adding one sweep level must re-run only that level's stages (plus the aggregating ones)."""
    for name, st in _stages().items():
        body = st.get("do") or st
        params = [p if isinstance(p, str) else next(iter(p)) for p in body.get("params", [])]
        if name in ("analysis", "segment"):  # both read every level's tickets in one stage
            continue
        assert not any(p == "sweep" or p.startswith("sweep.") for p in params), name
        if name not in ("tickets", "transfer", "evaluate"):
            assert "${item}" not in body["cmd"] or name == "pretrain"


def test_no_output_nests_in_another():
    outs = []
    for st in _stages().values():
        body = st.get("do") or st
        outs += [o if isinstance(o, str) else next(iter(o)) for o in body.get("outs", [])]
    for a in outs:
        for b in outs:
            if a != b:
                assert not (b + "/").startswith(a.rstrip("/") + "/"), (a, b)


@pytest.mark.skipif(not DVC.exists(), reason="dvc is not installed in this environment")
@pytest.mark.parametrize("tier", ["smoke", "small", "paper"])
def test_tier_resolves_into_a_dag_offline(tmp_path, tier):
    """`make repro TIER=small|paper`: the tier's params resolve into DVC stages (no network needed)."""
    for f in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(ROOT / f, tmp_path / f)
    shutil.copytree(ROOT / "tiers", tmp_path / "tiers")
    (tmp_path / "repro").symlink_to(ROOT / "repro")
    (tmp_path / "paper_figures").symlink_to(ROOT / "paper_figures")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    run = lambda *a: subprocess.run(a, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)  # noqa: E731
    assert run("git", "init", "-q").returncode == 0
    assert run(str(DVC), "init", "-q").returncode == 0
    r = run(sys.executable, "-m", "repro.tiers", "use", tier)
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load((tmp_path / "params.yaml").read_text())["tier"] == tier
    r = run(str(DVC), "stage", "list")
    assert r.returncode == 0, r.stderr
    levels = yaml.safe_load((ROOT / "tiers" / f"{tier}.yaml").read_text())["sweep"]["sparsities"]
    assert f"transfer@{levels[-1]}" in r.stdout and "study" in r.stdout
    # The DAG DVC builds, by value: every stage of the tier and exactly the expected edges between them
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    r = run(str(DVC), "dag", "--dot")
    assert r.returncode == 0, r.stderr
    nodes, edges = _dot(r.stdout)
    want_nodes, want_edges = expected_dag(params["pretrain"]["kinds"], params["sweep"]["sparsities"])
    assert want_nodes <= nodes, sorted(want_nodes - nodes)
    known = {(a, b) for a, b in edges if a in want_nodes and b in want_nodes}
    assert known == want_edges, (sorted(want_edges - known), sorted(known - want_edges))
    # Nothing has run: `dvc status` lists every stage as changed.
    r = run(str(DVC), "status", "--json")
    assert r.returncode == 0, r.stderr
    assert set(json.loads(r.stdout)) == nodes


#: stage family -> the families that read its outputs (docs/ARCHITECTURE.md, Pipeline), written out by hand
FAMILY_EDGES = {
    "data": ["pretrain", "pretrain_eps", "select_eps", "imp", "reference", "tickets", "transfer_dense", "transfer",
             "evaluate_dense", "evaluate", "analysis", "study"],
    "pretrain": ["select_eps", "imp", "tickets", "transfer_dense", "transfer", "study"],
    # RT's per-task eps (issue 26 point 1): the eps-grid models, then the choice every stage from imp on reads
    "pretrain_eps": ["select_eps", "imp", "tickets", "transfer_dense", "transfer"],
    "select_eps": ["imp", "tickets", "transfer_dense", "transfer", "evaluate_dense", "evaluate", "summary", "figures"],
    "imp": ["tickets", "study"],
    "reference": ["evaluate_dense", "evaluate", "study"],
    "tickets": ["transfer", "analysis"],
    "transfer_dense": ["evaluate_dense", "analysis"],
    "transfer": ["evaluate", "analysis"],
    "evaluate_dense": ["summary", "study"],
    "evaluate": ["summary"],
    "analysis": ["figures"],
    "summary": ["figures"],
    "study": [],
    "figures": [],
}
PER_LEVEL = ("tickets", "transfer", "evaluate")
PER_KIND = ("pretrain",)


def expected_dag(kinds: list[str], levels: list[float]) -> tuple[set, set]:
    """Stage names and edges for these pretraining kinds and sweep levels; a per-level stage feeds only
    the same level's stages (adding a level must not re-run the others)."""
    def items(fam):
        if fam in PER_KIND:
            return [(f"{fam}@{k}", None) for k in kinds]
        if fam in PER_LEVEL:
            return [(f"{fam}@{lv}", lv) for lv in levels]
        return [(fam, None)]

    nodes = {n for fam in FAMILY_EDGES for n, _ in items(fam)}
    edges = set()
    for a, readers in FAMILY_EDGES.items():
        for b in readers:
            for na, la in items(a):
                for nb, lb in items(b):
                    if la is None or lb is None or la == lb:
                        edges.add((na, nb))
    return nodes, edges


def _dot(text: str) -> tuple[set, set]:
    """Nodes and edges of `dvc dag --dot`."""
    import re

    edges = set(re.findall(r'"([^"]+)" -> "([^"]+)"', text))
    nodes = set(re.findall(r'^"([^"]+)";$', text, re.M)) | {n for e in edges for n in e}
    return nodes, edges


def test_expected_dag_is_not_vacuous():
    nodes, edges = expected_dag(["standard", "pgd_adversarial"], [0.2, 0.5])
    assert ("tickets@0.2", "transfer@0.2") in edges and ("tickets@0.2", "transfer@0.5") not in edges
    assert ("pretrain@standard", "transfer@0.5") in edges and ("study", "figures") not in edges
    assert len(nodes) == 2 + 2 * 3 + 11 and len(edges) > 40


def test_unknown_tier_is_a_clear_error(tmp_path, monkeypatch):
    from repro import tiers

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiers").mkdir()
    (tmp_path / "tiers" / "small.yaml").write_text("tier: small\n")
    (tmp_path / "params.yaml").write_text("sparsity: 0.5\n")
    with pytest.raises(SystemExit, match="unknown tier 'huge'; allowed: default"):
        tiers.apply("huge")


def test_tier_fraction_scales_epochs_milestones_and_data():
    """`make repro TIER=small FRACTION=0.1`: every epoch count and lr milestone shrinks, at least one epoch."""
    from repro import tiers

    cfg = {"transfer": {"adversarial": {"epochs": 100, "milestones": [50, 75], "lr": 0.1},
                        "standard": {"epochs": 3, "milestones": [2]}}, "seed": 0}
    out = tiers.scale(cfg, 0.1)
    assert out["transfer"]["adversarial"] == {"epochs": 10, "milestones": [5, 8], "lr": 0.1}
    assert tiers.scale(cfg, 0.01)["transfer"]["adversarial"]["epochs"] == 2  # 3 snapshots for Fig. 6
    named = {"transfer": {"per_task": {"svhn": {"adversarial": {"epochs": 80}}},
                          "recipes": {"rt": {"adversarial": {"epochs": 150}, "standard": {"epochs": 150}}}}}
    small = tiers.scale(named, 0.001)["transfer"]
    assert small["per_task"]["svhn"]["adversarial"]["epochs"] == 2 and small["recipes"]["rt"]["adversarial"]["epochs"] == 2
    assert small["recipes"]["rt"]["standard"]["epochs"] == 1
    assert out["transfer"]["standard"] == {"epochs": 1, "milestones": [1]}
    assert out["seed"] == 0 and cfg["transfer"]["adversarial"]["epochs"] == 100  # input untouched
    with pytest.raises(SystemExit, match="outside"):
        tiers.scale(cfg, 1.5)


def test_tiers_stack_in_order_and_the_trial_overlay_keeps_the_tier(tmp_path, monkeypatch):
    """`make repro TIER="small trial" FRACTION=0.01`: the small tier's data, model and schedules on the
    trial grid (one level, three IMP rounds, one seed), recorded as tier small+trial and valid."""
    from repro import tiers
    from repro.registries import params_from

    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "tiers", tmp_path / "tiers")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    merged = tiers.apply(["small", "trial"], fraction=0.01)
    assert merged["tier"] == "small+trial" and merged["model"]["arch"] == "cifar_resnet18"
    assert merged["data"]["source"] == "tiny_imagenet" and merged["data"]["fraction"] == 0.01
    assert merged["sweep"]["sparsities"] == [0.2] and merged["transfer"]["seeds"] == [0]
    assert merged["tickets"]["imp"]["max_rounds"] == 3 and merged["tickets"]["imp"]["retrain"]["lr"] == 5.0e-4
    assert merged["transfer"]["adversarial"]["epochs"] == 2
    p = params_from(yaml.safe_load((tmp_path / "params.yaml").read_text()))
    assert p.tier == "small+trial" and p.evaluation.trajectory_level == 0.2


def test_the_tier_names_params_accept_are_the_tier_files():
    """params.tier is checked against repro.config.params.TIERS; it must name exactly the overlays in tiers/."""
    from repro.config.params import TIERS

    assert set(TIERS) == {"default", *(f.stem for f in (ROOT / "tiers").glob("*.yaml"))}
