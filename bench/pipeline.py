"""Bench section `pipeline`: where the time of a tier's whole `dvc repro` goes (default: the embedded default).

Each repeat reproduces the tier from nothing in a fresh scratch copy of the repository (tracked files, a new
git repository, an empty DVC cache), times the whole `dvc repro`, and reads the timing record every stage wrote
(`.cache/repro/timing/<stage>.json`, repro.base.timing): per stage its wall time (process start to end: start-up,
then the body) and the runs it did. The table gives, per stage, the median wall time over the repeats, its share
of the sum, and the planner's estimate (`python -m repro.plan cost`: FLOPs at the CPU rates of the newest
`make bench` results, plus a stage's start-up). Then a no-op `dvc repro` and `dvc status` in the last copy, and
`dvc status`/`dvc dag` of the paper tier's DAG. The machine's load average is recorded before and after: the
numbers mean something only when nothing else ran.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, log
from repro.base.timing import TIMING_ROOT


def _run(cmd: list[str], cwd: Path, env: dict) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - t0


def _copy_repo(dst: Path, env: dict) -> Path:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (ROOT / f).is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dst / f)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "bench"]):
        _run(cmd, dst, env)
    return dst


def stage_records(work: Path) -> dict[str, dict]:
    """{stage: its timing record} of a finished `dvc repro` in ``work``."""
    out = {}
    for f in sorted((work / TIMING_ROOT).glob("*.json")):
        rec = json.loads(f.read_text())
        out[rec["stage"]] = rec
    return out


def planner_seconds(work: Path) -> dict[str, float]:
    """{stage (as the timing records name it): the planner's estimate in seconds} for ``work``'s params."""
    from repro.plan.hours import bench_rate, report
    from repro.registries import load

    p = load(work / "params.yaml")
    rate = bench_rate(p, ROOT / "bench" / "results")
    if rate is None:
        return {}
    r = report(p, p.tier, results=ROOT / "bench" / "results")
    # the planner names the dense stages transfer_dense / evaluate_dense; their records, transfer@dense / evaluate@dense
    return {name.replace("_dense", "@dense"): rate.seconds(c) for name, c in r.stages.items()}


def stage_table(walls: dict[str, list[float]], estimate: dict[str, float]) -> list[dict]:
    """One row per stage, in the order they ran: median wall over the repeats, share of the sum, planner."""
    med = {s: statistics.median(w) for s, w in walls.items()}
    total = sum(med.values())
    return [{"stage": s, "wall_s": round(m, 1), "share": round(m / total, 4) if total else 0.0,
             "planner_s": round(estimate[s], 1) if s in estimate else None} for s, m in med.items()]


def bench_pipeline(tier: str, workspace: Path | None = None, repeats: int = 1) -> dict:
    """``repeats`` fresh reproductions of ``tier`` (or, with ``workspace``, the records of a finished one)."""
    venv_bin = Path(sys.executable).parent
    dvc = str(venv_bin / "dvc")
    env = dict(os.environ, PATH=f"{venv_bin}:{os.environ.get('PATH', '')}", PYTHONWARNINGS="ignore")
    out: dict = {"tier": tier, "load_before": [round(x, 2) for x in os.getloadavg()]}
    walls: dict[str, list[float]] = {}
    totals, runs = [], {}
    with tempfile.TemporaryDirectory(prefix="repro-bench-") as tmp:
        work = None
        if workspace is not None:
            work, out["tier"] = workspace, f"workspace {workspace}"
            records = stage_records(work)
            for s, rec in records.items():
                walls.setdefault(s, []).append(rec["wall_s"])
        for i in range(repeats if workspace is None else 0):
            work = _copy_repo(Path(tmp) / f"repo{i}", env)
            if tier != "default":
                _run([sys.executable, "-m", "repro.tiers", "use", tier], work, env)
            log(f"pipeline: `dvc repro` of tier {tier}, repeat {i + 1}/{repeats} ...")
            totals.append(_run([dvc, "repro"], work, env))
            records = stage_records(work)
            for s, rec in records.items():
                walls.setdefault(s, []).append(rec["wall_s"])
            runs = {s: rec["runs"] for s, rec in records.items()}
            if i + 1 < repeats:
                shutil.rmtree(work)
        if totals:
            out.update(repro_s=[round(t, 1) for t in totals], repro_median_s=round(statistics.median(totals), 1))
        estimate = planner_seconds(work)
        out["stages"] = stage_table(walls, estimate)
        out["planner_total_s"] = round(sum(estimate.values()), 1) if estimate else None
        out["stage_sum_s"] = round(sum(r["wall_s"] for r in out["stages"]), 1)
        out["runs"] = {s: [{"run": r["run"], "wall_s": r["wall_s"]} for r in rr] for s, rr in runs.items() if rr}
        out["noop_repro_s"] = _run([dvc, "repro"], work, env)
        out["status_s"] = _run([dvc, "status"], work, env)
        paper = _copy_repo(Path(tmp) / "paper", env)
        _run([sys.executable, "-m", "repro.tiers", "use", "paper"], paper, env)
        out["paper_dvc_status_s"] = _run([dvc, "status"], paper, env)
        out["paper_dvc_dag_s"] = _run([dvc, "dag"], paper, env)
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def table_rows(p: dict) -> list[str]:
    """The report's rows for this section."""
    rows = []
    if "repro_median_s" in p:
        rows.append(f"| `dvc repro`, tier {p['tier']}, median of {len(p['repro_s'])} fresh runs (s) | "
                    f"{p['repro_median_s']:.0f} ({', '.join(f'{t:.0f}' for t in p['repro_s'])}) | "
                    f"planner {p['planner_total_s']} | load {p['load_before']} -> {p['load_after']} |")
    for r in p.get("stages", []):
        est = f"{r['planner_s']:.0f}" if r["planner_s"] is not None else "—"
        rows.append(f"| &nbsp; {r['stage']} (s) | {r['wall_s']:.1f} ({100 * r['share']:.1f} %) | planner {est} | |")
    rows.append(f"| no-op `dvc repro` / `dvc status` (s) | {p['noop_repro_s']:.1f} / {p['status_s']:.1f} | | |")
    rows.append(f"| `dvc status` / `dvc dag`, paper tier DAG (s) | {p['paper_dvc_status_s']:.1f} / "
                f"{p['paper_dvc_dag_s']:.1f} | | |")
    return rows
