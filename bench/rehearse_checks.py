"""The checks `make rehearse` runs on a finished rehearsal workspace (bench/rehearse.py), each by value."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import yaml

#: the report items each tier promises (paper_figures/items.yaml ids): small and paper every figure and table of
#: both papers but the overlays' own; each overlay the ones it names (tiers/*.yaml, README's tier table)
ALL_BUT_OVERLAYS = None  # filled from items.yaml: every id but OVERLAY_ITEMS
OVERLAY_ITEMS = {"dw-figA10", "rt-fig9", "rt-table2"}
PROMISES = {
    "small": ALL_BUT_OVERLAYS, "paper": ALL_BUT_OVERLAYS,
    "paper-r18": {"rt-fig1", "rt-fig2", "rt-fig4", "rt-fig5", "rt-fig8", "rt-table1"},
    "paper-a10": {"dw-figA10"},
    "paper-vtab": {"rt-fig9", "rt-table2"},
}


def stage_times(repo: Path) -> dict[str, float]:
    """{stage: wall seconds, start-up included} from the timing record each stage wrote (repro.base.timing)."""
    from bench.pipeline import stage_records

    return {s: rec["wall_s"] for s, rec in stage_records(repo).items()}


def _dvc(repo: Path, env: dict, *args: str):
    from workspace import dvc  # tests/workspace.py, on the path bench/rehearse.py sets

    return dvc(repo, *args, check=False, environ=env)


def check_stages(repo: Path, env: dict) -> tuple[list[str], list[str]]:
    """(stages of dvc.yaml, failures): every stage is in dvc.lock, and `dvc status` is clean."""
    r = _dvc(repo, env, "stage", "list", "--name-only")
    names = [n.strip() for n in r.stdout.splitlines() if n.strip()]
    lock = yaml.safe_load((repo / "dvc.lock").read_text()) if (repo / "dvc.lock").is_file() else {}
    ran = set((lock or {}).get("stages", {}))
    fails = [f"stage {n} did not run (not in dvc.lock)" for n in names if n not in ran]
    if not names:
        fails.append(f"dvc stage list listed no stage: {r.stderr.strip()[-200:]}")
    st = _dvc(repo, env, "status")
    if "up to date" not in st.stdout:
        fails.append(f"dvc status is not clean after the run: {st.stdout.strip()[:200]}")
    return names, fails


def check_splits(repo: Path) -> tuple[dict, list[str]]:
    """Every task of runs/data: its training split holds every class; a downstream task with held-out validation:
    both the held-out images and the training images beside them hold every class (the data stage's own rule,
    repro.data.splits.check_classes, re-run on what it wrote); every transfer run's validation.json agrees."""
    from repro.base.errors import DataError
    from repro.data import ArrayTask
    from repro.pipeline.data import check_validation
    from repro.registries import load

    out, fails = {}, []
    with contextlib.chdir(repo):
        p = load("params.yaml")
        v = p.transfer.validation
        for f in sorted(Path("runs/data").glob("*.npz")):
            name = f.stem
            if name == p.segment.task:
                continue
            task = ArrayTask.load(f)
            try:
                rule = check_validation(p, name, task)
            except DataError as e:
                fails.append(f"split of {name}: {e}")
                continue
            out[name] = {"classes": task.num_classes, "train": int(len(task.y_train)), "test": int(len(task.y_test)),
                         "held_out": v.count(name, len(task.y_train)) if rule != "none" else 0, "rule": rule}
        for vf in sorted(Path("runs/transfer").rglob("validation.json")):
            spec = json.loads((vf.parent / "spec.json").read_text())
            rec = json.loads(vf.read_text())
            want = out.get(spec["task"], {})
            if (rec["how"], rec["n"]) != (want.get("rule"), want.get("held_out")):
                fails.append(f"{vf.parent}: validation {rec['how']}/{rec['n']}, the data stage's "
                             f"{want.get('rule')}/{want.get('held_out')}")
    return out, fails


def check_figures(repo: Path, combo: str) -> tuple[dict, list[str]]:
    """Every item the tier promises rendered: status available in out/manifest.json and its files written."""
    items = yaml.safe_load((repo / "paper_figures" / "items.yaml").read_text())["items"]
    promised = PROMISES[combo] or {it["id"] for it in items} - OVERLAY_ITEMS
    man = repo / "paper_figures" / "out" / "manifest.json"
    if not man.is_file():
        return {}, ["paper_figures/out/manifest.json is missing"]
    rows = {r["id"]: r for r in json.loads(man.read_text())["items"]}
    rendered = sorted(i for i, r in rows.items() if r["status"] == "available"
                      and all((repo / "paper_figures" / "out" / f).is_file() for f in r["files"]))
    fails = [f"promised {i} not rendered ({rows.get(i, {}).get('status', 'absent')}: "
             f"{rows.get(i, {}).get('reason', '')[:120]})" for i in sorted(promised) if i not in rendered]
    return {"promised": sorted(promised), "rendered": rendered}, fails


def computing_stages(repo: Path, names: list[str]) -> list[str]:
    """The stages that must have run forward passes under this params.yaml."""
    from repro.plan import imp_runs, runs_for_level, seg_runs
    from repro.registries import load

    with contextlib.chdir(repo):
        p = load("params.yaml")
        want = [f"pretrain@{k}" for k in p.pretrain.kinds if k not in p.pretrain.published]
        want += ["imp"] if imp_runs(p) else []
        want += ["reference"] if p.evaluation.transfer_attack else []
        for lv in (0.0, *p.sweep.sparsities):
            if runs_for_level(p, lv):
                tag = "dense" if lv == 0 else f"s{float(lv)}"
                want += [f"transfer@{tag}", f"evaluate@{tag}"]
        want += ["segment"] if seg_runs(p) else []
        want += ["study"] if p.study_tasks else []
        idx = Path("analysis/landscape/index.csv")
        if idx.is_file() and len(idx.read_text().strip().splitlines()) > 1:
            want.append("analysis")
    return want


def check_devices(repo: Path, trace: Path, names: list[str]) -> tuple[dict, list[str]]:
    """No forward pass off the stage's resolved device or on a model the seam never placed; every computing stage
    recorded forward passes (an empty trace would prove nothing)."""
    from repro.base import devices

    events = devices.read(trace)
    seen = devices.summary(events)
    fails = devices.check(events)
    fails += [f"stage {s} recorded no forward pass" for s in computing_stages(repo, names)
              if not seen.get(s, {}).get("models")]
    return {s: v["resolved"] for s, v in seen.items()}, fails


def planner(repo: Path, stage_s: dict[str, float]) -> dict:
    """The planner's CPU estimate of this params.yaml (``bench.pipeline.planner_seconds``: FLOPs at the newest
    bench results' CPU rates plus each stage's start-up) per stage and in all, beside each stage's measured wall
    time (its timing record)."""
    from bench.pipeline import planner_seconds

    with contextlib.chdir(repo):
        est = planner_seconds(repo)
    if not est:
        return {"cpu_s": None, "why": "no bench result with CPU rates"}
    per = {s: {"estimate_s": round(e, 1), "measured_s": stage_s.get(s)} for s, e in est.items()}
    total = sum(est.values())
    measured = sum(stage_s.values())
    return {"cpu_s": round(total, 1), "measured_stages_s": round(measured, 1),
            "measured_over_estimate": round(measured / total, 2) if total else None, "stages": per}


def check_all(repo: Path, env: dict, trace: Path, tiers: tuple[str, ...]) -> dict:
    from bench.rehearse import COMBOS

    combo = next(k for k, v in COMBOS.items() if v == tiers)
    rec: dict = {}
    names, fails = check_stages(repo, env)
    rec["stages"] = len(names)
    splits, f = check_splits(repo)
    rec["splits"], fails = splits, fails + f
    figs, f = check_figures(repo, combo)
    rec["figures"], fails = figs, fails + f
    devs, f = check_devices(repo, trace, names)
    rec["devices"], fails = devs, fails + f
    rec["failures"] = fails
    return rec
