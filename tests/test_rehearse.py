"""`make rehearse` (issue 25, point 3), what it runs and how it judges a run, checked without running it: the
whole `dvc repro` of each combination is `make rehearse`'s own job, outside `make test`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import rehearse as R  # noqa: E402
from bench import rehearse_checks as C  # noqa: E402


def test_every_real_tier_and_overlay_is_rehearsed():
    tiers = {f.stem for f in (ROOT / "tiers").glob("*.yaml")}
    assert set().union(*R.COMBOS.values()) == tiers - R.NOT_REHEARSED
    assert set(C.PROMISES) == set(R.COMBOS)


@pytest.mark.parametrize("combo", list(R.COMBOS))
def test_each_combination_is_the_tier_at_trial_scale_and_validates(combo, tmp_path):
    from repro.plan.hours import report
    from repro.registries import params_from

    cfg = R.rehearsal_params(R.COMBOS[combo], tmp_path / "data")
    p = params_from(cfg)  # the typed checks every stage runs first
    assert (p.model.width_divisor, p.data.image_size, p.data.root) == (R.WIDTH_DIVISOR, R.IMAGE_SIZE,
                                                                        str(tmp_path / "data"))
    assert p.pretrain.published == {} and p.evaluation.domain_gap == "stats"
    assert list(p.sweep.sparsities) == [0.2] and list(p.transfer.seeds) == [0]  # the trial overlay
    tier = yaml.safe_load((ROOT / "tiers" / f"{R.COMBOS[combo][-1]}.yaml").read_text())
    assert p.model.arch == (tier.get("model") or {}).get("arch", p.model.arch)  # the tier's network, narrowed
    v = p.transfer.validation
    if v.how != "none":
        assert v.n == 0.1 and v.robust_images == 5
    assert report(p, p.tier).total.runs > 0  # the planner prices it (its CPU estimate is checked against the run)
    if "dw_data" in p.experiments and p.experiments["dw_data"].pairs:  # DW Fig. 5: every downstream task
        assert p.experiments["dw_data"].tasks in (None, tuple(p.data.downstream), list(p.data.downstream)), combo


def test_the_data_root_covers_every_dataset_a_combination_reads(tmp_path):
    vtab = R.rehearsal_params(R.COMBOS["paper-vtab"], tmp_path)
    assert {"birdsnap", "flowers", "caltech101", "imagenet", "svhn"} <= R.datasets_of(vtab)
    a10 = R.rehearsal_params(R.COMBOS["paper-a10"], tmp_path)
    assert {"cub200", "visda17"} <= R.datasets_of(a10) and a10["segment"]["task"] == "voc2012"
    # PASCAL VOC only for a combination that segments: a10 (DW Fig. A10), not r18 or vtab (segment.pairs: [])
    assert {n: R.reads_voc(R.rehearsal_params(R.COMBOS[n], tmp_path)) for n in ("paper", "paper-a10", "paper-r18",
                                                                               "paper-vtab")} == {
        "paper": True, "paper-a10": True, "paper-r18": False, "paper-vtab": False}


def test_promised_figures_are_report_items():
    ids = {it["id"] for it in yaml.safe_load((ROOT / "paper_figures" / "items.yaml").read_text())["items"]}
    for combo, promised in C.PROMISES.items():
        assert promised is None or promised <= ids, combo
    assert C.OVERLAY_ITEMS <= ids


def test_figure_check_fails_on_a_promised_item_not_rendered(tmp_path):
    out = tmp_path / "paper_figures" / "out"
    out.mkdir(parents=True)
    (tmp_path / "paper_figures" / "items.yaml").write_text((ROOT / "paper_figures" / "items.yaml").read_text())
    (out / "fig9.png").write_bytes(b"png")
    rows = [{"id": "rt-fig9", "status": "available", "files": ["fig9.png"]},
            {"id": "rt-table2", "status": "not run in this configuration", "reason": "no FID", "files": ["t2.csv"]}]
    (out / "manifest.json").write_text(json.dumps({"items": rows}))
    got, fails = C.check_figures(tmp_path, "paper-vtab")
    assert got == {"promised": ["rt-fig9", "rt-table2"], "rendered": ["rt-fig9"]}
    assert fails == ["promised rt-table2 not rendered (not run in this configuration: no FID)"]


def test_the_scratch_copy_takes_the_sources_and_never_a_previous_runs_outputs(tmp_path, monkeypatch):
    """A checkout that ran `make repro` holds dvc.lock and the stages' outputs, ignored by dvc's .gitignore entries
    or not, and git holds its dvc.lock (once, a restored .gitignore made the outputs untracked files: the rehearsal's
    scratch repository committed them and dvc then refused to write `analysis` as 'already tracked by SCM'). The copy
    takes tracked files and an untracked source file, never an output or dvc.lock."""
    import subprocess

    sys.path.insert(0, str(ROOT / "tests"))
    import workspace as W

    (tmp_path / "dvc.yaml").write_bytes((ROOT / "dvc.yaml").read_bytes())
    files = {"repro/a.py": "tracked", "paper_figures/figlib.py": "tracked", "new_module.py": "untracked source",
             "dvc.lock": "output", "analysis/landscape.json": "output", "metrics/claims.json": "output",
             "runs/tickets/s0.5/mask.pt": "output", "paper_figures/out/report.html": "output", "plots/a.csv": "output"}
    for f in files:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text(files[f])
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "dvc.yaml", "repro/a.py", "paper_figures/figlib.py"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "dvc.lock"], cwd=tmp_path, check=True)  # as `dvc repro` stages it (core.autostage)
    monkeypatch.setattr(W, "ROOT", tmp_path)
    assert W.project_files() == ["dvc.yaml", "new_module.py", "paper_figures/figlib.py", "repro/a.py"]
