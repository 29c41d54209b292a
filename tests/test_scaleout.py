"""The submitit driver (repro/launch/scaleout.py): stages as jobs in dependency order, in parallel.

The integration tests run stages of the `smoke` tier through submitit's LocalExecutor (real
separate processes, as on a SLURM node): `data`, then the four `pretrain@<kind>` at once, in one
shared workspace (DVC's lock taken with --wait-for-lock) pushing to a directory remote; and the
isolated mode, where each job works in its own clone and the head collects from the run-cache.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from repro.launch.scaleout import make_plan, upstream
from workspace import commit_all, copy_project, dvc, env, init_repo, run

GRAPH = {
    "data": set(),
    "pretrain@a": {"data"}, "pretrain@b": {"data"},
    "imp": {"pretrain@a", "pretrain@b", "data"},
    "reference": {"data"},
    "summary": {"imp", "reference"},
}
KINDS = ["standard", "fast_adversarial", "pgd_adversarial", "random_smoothing"]


def test_plan_orders_selects_and_skips_up_to_date():
    p = make_plan(GRAPH)
    assert set(p.order) == set(GRAPH) and p.up_to_date == []
    for s in p.order:  # upstream first
        assert all(p.order.index(d) < p.order.index(s) for d in GRAPH[s])
    # a foreach name means every item; upstream comes along, downstream does not
    p = make_plan(GRAPH, ["pretrain"])
    assert set(p.order) == {"data", "pretrain@a", "pretrain@b"}
    # only what changed and what depends on it runs
    p = make_plan(GRAPH, changed={"pretrain@b"})
    assert set(p.order) == {"pretrain@b", "imp", "summary"}
    assert p.deps["imp"] == {"pretrain@b"} and set(p.up_to_date) == {"data", "pretrain@a", "reference"}
    assert set(make_plan(GRAPH, changed=set(), force=True).order) == set(GRAPH)
    assert make_plan(GRAPH, changed=set()).order == []
    assert upstream(GRAPH, ["imp"]) == {"imp", "pretrain@a", "pretrain@b", "data"}
    with pytest.raises(SystemExit, match="unknown stage"):
        make_plan(GRAPH, ["nope"])


class _FakeExecutor:
    """Runs nothing: each submitted stage finishes at the next poll, failing if listed in ``fail``."""

    def __init__(self, fail=()):
        self.fail, self.submitted, self.running, self.max_running = set(fail), [], set(), 0

    def submit(self, fn, root, stage, *args):
        from types import SimpleNamespace

        ex = self
        ex.submitted.append(stage)
        ex.running.add(stage)
        ex.max_running = max(ex.max_running, len(ex.running))

        class Job:
            job_id, paths = stage, SimpleNamespace(stdout=Path("/logs/x.out"))

            def done(self):
                return True

            def result(self):
                ex.running.discard(stage)
                if stage in ex.fail:
                    raise RuntimeError(f"stage {stage}: boom")
                return {"stage": stage, "host": "h", "seconds": 0}
        return Job()


def test_drive_submits_in_dependency_order_and_skips_below_a_failure():
    from repro.launch.scaleout import drive

    ex = _FakeExecutor(fail={"pretrain@a"})
    res = drive(Path("."), make_plan(GRAPH), ex, "shared", None, max_parallel=2, poll_s=0, out=lambda m: None)
    assert ex.submitted[0] == "data" and ex.max_running <= 2
    assert "boom" in res["pretrain@a"]["error"]
    assert res["imp"]["error"].startswith("skipped") and res["summary"]["error"].startswith("skipped")
    assert "imp" not in ex.submitted and "summary" not in ex.submitted
    assert "error" not in res["reference"] and "error" not in res["pretrain@b"]  # independent work goes on


def test_plan_from_the_real_dvc_yaml(tmp_path):
    """The stage graph DVC builds from dvc.yaml (foreach expanded) for the smoke tier."""
    from repro.launch.scaleout import stage_graph

    ws = init_repo(copy_project(tmp_path / "ws"), tier="smoke")
    g = stage_graph(ws)
    assert {f"pretrain@{k}" for k in KINDS} <= set(g)
    assert g["pretrain@standard"] == {"data"} and {f"pretrain@{k}" for k in KINDS} <= g["imp"]
    assert "summary" in upstream(g, ["figures"])


def _scaleout(ws, *args):
    return run(ws, sys.executable, "-m", "repro.launch.scaleout", *args, environ=env(OMP_NUM_THREADS="1"), timeout=600)


def _report(ws) -> dict:
    return json.loads((ws / ".dvc" / "tmp" / "scaleout" / "report.json").read_text())


def test_local_executor_runs_stages_in_parallel_shared_workspace(tmp_path):
    shared = tmp_path / "store"
    ws = init_repo(copy_project(tmp_path / "ws"), tier="smoke")
    dvc(ws, "remote", "add", "-d", "shared", shared)
    commit_all(ws, "remote")

    plan = _scaleout(ws, "data", "pretrain", "--dry").stdout
    assert "5 stage(s) to run" in plan and "pretrain@standard  <- data" in plan, plan
    r = _scaleout(ws, "data", "pretrain", "--max-parallel", "4")
    rep = _report(ws)
    assert set(rep) == {"data", *(f"pretrain@{k}" for k in KINDS)}, r.stdout
    assert all(x["ran"] for x in rep.values())
    pre = [rep[f"pretrain@{k}"] for k in KINDS]
    assert min(x["start"] for x in pre) >= rep["data"]["end"]  # dependency order
    assert max(x["start"] for x in pre) < min(x["end"] for x in pre), rep  # the four overlapped in time

    st = dvc(ws, "status", "data", "pretrain").stdout
    assert "Data and pipelines are up to date" in st, st
    lock = yaml.safe_load((ws / "dvc.lock").read_text())["stages"]
    assert {"data", *(f"pretrain@{k}" for k in KINDS)} <= set(lock)
    assert "in sync" in dvc(ws, "status", "-c", "data", "pretrain").stdout  # every job pushed
    assert len(list((shared / "runs").rglob("*/*/*"))) >= 5  # and its run-cache entry
    # Nothing left: a second call plans nothing.
    assert "0 stage(s) to run" in _scaleout(ws, "data", "pretrain").stdout


def test_isolated_mode_jobs_in_clones_head_collects_from_the_run_cache(tmp_path):
    shared, scratch = tmp_path / "store", tmp_path / "scratch"
    ws = init_repo(copy_project(tmp_path / "ws"), tier="smoke")
    dvc(ws, "remote", "add", "-d", "shared", shared)
    commit_all(ws, "remote")
    targets = ["pretrain@standard", "pretrain@random_smoothing"]
    r = _scaleout(ws, *targets, "--mode", "isolated", "--scratch", scratch, "--max-parallel", "2")
    rep = _report(ws)
    assert set(rep) == {"data", *targets} and all(x["ran"] for x in rep.values()), rep
    for t in targets:  # each clone took `data` from the run-cache the data job pushed
        assert rep[t]["restored"] == ["data"], rep[t]
    # The head ran nothing: it checked all three stages out of the run-cache.
    assert "Running stage" not in r.stdout, r.stdout
    assert r.stdout.count("is cached - skipping run, checking out outputs") == 3, r.stdout
    assert "Data and pipelines are up to date" in dvc(ws, "status", "data", *targets).stdout
    assert (ws / "runs" / "pretrain" / "standard" / "model.pt").is_file()
    assert not any(scratch.iterdir())  # the clones are removed
