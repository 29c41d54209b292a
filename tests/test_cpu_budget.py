"""CPU budget from what the process may use (issue 18, point 1; ``repro/base/cpus.py``).

Threads and workers were sized from ``os.cpu_count()`` (the host's cores). A job may use only its
affinity mask (taskset, SLURM cpusets) and its cgroup CPU quota (``docker run --cpus``: cgroup v2
``cpu.max``, v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``): the budget is the smaller, rounded
down; ``REPRO_THREADS`` and the ``workers`` param override within it, so workers x threads never
exceeds it; every stage logs the split in one line at its start.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from repro.base import cpus
from repro.base import cpus as pool

ROOT = Path(__file__).resolve().parents[1]
HAS_TASKSET = shutil.which("taskset") is not None and hasattr(os, "sched_getaffinity")


def _env(**kw) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("REPRO_THREADS", "REPRO_CGROUP_ROOT")}
    env.update({k: str(v) for k, v in kw.items()})
    return env


def _fake_v2(tmp_path: Path, text: str) -> Path:
    root = tmp_path / "cg2"
    root.mkdir()
    (root / "cpu.max").write_text(text)
    return root


# ------------------------------------------------------------------ reading the quota
def test_cgroup_v2_cpu_max(tmp_path):
    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/job/step\n")
    root = tmp_path / "cg"
    (root / "job" / "step").mkdir(parents=True)
    (root / "cpu.max").write_text("max 100000\n")                 # the machine: no quota
    (root / "job" / "cpu.max").write_text("250000 100000\n")      # the job: 2.5 CPUs
    (root / "job" / "step" / "cpu.max").write_text("max 100000\n")
    assert cpus.cgroup_quota(root, proc) == pytest.approx(2.5)    # the tightest ancestor counts
    (root / "job" / "cpu.max").write_text("max 100000\n")
    assert cpus.cgroup_quota(root, proc) is None


def test_cgroup_v1_cfs_quota(tmp_path):
    proc = tmp_path / "proc_cgroup"
    proc.write_text("4:memory:/x\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    d = tmp_path / "cg" / "cpu,cpuacct" / "docker" / "abc"
    d.mkdir(parents=True)
    (d / "cpu.cfs_quota_us").write_text("150000\n")
    (d / "cpu.cfs_period_us").write_text("100000\n")
    assert cpus.cgroup_quota(tmp_path / "cg", proc) == pytest.approx(1.5)
    (d / "cpu.cfs_quota_us").write_text("-1\n")                   # v1: no quota
    assert cpus.cgroup_quota(tmp_path / "cg", proc) is None


def test_budget_is_the_smaller_of_affinity_and_quota_rounded_down(tmp_path, monkeypatch):
    monkeypatch.delenv("REPRO_THREADS", raising=False)
    aff = cpus.affinity()
    root = _fake_v2(tmp_path, "350000 100000")  # 3.5 CPUs
    assert cpus.budget(root)[0] == min(aff, 3)
    (root / "cpu.max").write_text("50000 100000")  # half a CPU still runs one thread
    assert cpus.budget(root)[0] == 1


def test_split_never_exceeds_the_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(cpus, "budget", lambda root=None: (4, {"host": 64, "affinity": 8, "quota": 4.0}))
    monkeypatch.delenv("REPRO_THREADS", raising=False)
    s = cpus.split()
    assert (s.workers, s.threads, s.threads_alone) == (4, 1, 4)      # auto: one worker per CPU
    assert cpus.split(device_type="cuda").workers == 1
    s = cpus.split(workers=16)                                        # the param is capped
    assert (s.workers, s.threads) == (4, 1)
    s = cpus.split(workers=2)
    assert (s.workers, s.threads) == (2, 2)
    monkeypatch.setenv("REPRO_THREADS", "64")                         # the override is capped too
    s = cpus.split(workers=2)
    assert (s.workers, s.threads, s.threads_alone) == (2, 2, 4)
    monkeypatch.setenv("REPRO_THREADS", "1")
    s = cpus.split(workers=2)
    assert (s.workers, s.threads, s.threads_alone) == (2, 1, 1)
    monkeypatch.setenv("REPRO_THREADS", "two")
    with pytest.raises(ValueError, match="REPRO_THREADS='two'"):
        cpus.split()


# ------------------------------------------------------------ in a real process
def _sizing(cmd_prefix: list[str], env: dict, *args: str) -> dict:
    r = subprocess.run([*cmd_prefix, sys.executable, "-m", "repro.base.cpus", *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.skipif(not HAS_TASKSET, reason="needs taskset and sched_getaffinity")
def test_taskset_one_cpu_gives_one_worker_one_thread():
    s = _sizing(["taskset", "-c", "0"], _env())
    assert (s["affinity"], s["budget"], s["workers"], s["threads"], s["threads_alone"]) == (1, 1, 1, 1, 1)
    s = _sizing(["taskset", "-c", "0"], _env(REPRO_THREADS=8), "--workers", "4")
    assert (s["budget"], s["workers"], s["threads"], s["threads_alone"]) == (1, 1, 1, 1)


def test_faked_cgroup_quota_caps_a_process(tmp_path):
    root = _fake_v2(tmp_path, "150000 100000")  # `docker run --cpus 1.5`
    s = _sizing([], _env(REPRO_CGROUP_ROOT=root))
    assert s["quota"] == pytest.approx(1.5)
    assert (s["budget"], s["workers"], s["threads"], s["threads_alone"]) == (1, 1, 1, 1)


def _stage_log(tmp_path: Path, prefix: list[str], env: dict) -> str:
    """Start a real stage (``evaluate`` of the dense level in an empty workspace): it validates params,
    sizes itself and logs the split, then stops with a one-line error on its missing inputs."""
    ws = tmp_path / "ws"
    ws.mkdir()
    shutil.copy(ROOT / "params.yaml", ws / "params.yaml")
    r = subprocess.run([*prefix, sys.executable, "-m", "repro.stages.evaluate", "0"], cwd=ws,
                       env=dict(env, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 2), r.stderr[-2000:]
    lines = [line for line in r.stdout.splitlines() if "cpu budget" in line]
    assert len(lines) == 1, r.stdout
    return lines[0]


@pytest.mark.skipif(not HAS_TASKSET, reason="needs taskset and sched_getaffinity")
def test_a_stage_under_taskset_logs_and_uses_one_cpu(tmp_path):
    line = _stage_log(tmp_path, ["taskset", "-c", "0"], _env())
    assert "cpu budget 1 (" in line and "affinity 1" in line
    assert "1 worker(s) x 1 thread(s); 1 thread(s) in one process" in line


def test_a_stage_under_a_faked_quota_logs_it(tmp_path):
    root = _fake_v2(tmp_path, "150000 100000")
    line = _stage_log(tmp_path, [], _env(REPRO_CGROUP_ROOT=root))
    assert "cgroup quota 1.5" in line and "cpu budget 1 (" in line
    assert "1 worker(s) x 1 thread(s); 1 thread(s) in one process" in line


def _threads(_):
    return torch.get_num_threads()


def test_parallel_map_workers_get_budget_over_workers_threads(tmp_path, monkeypatch):
    """Forked workers of a stage: workers x threads <= budget (here a faked 4-CPU budget)."""
    monkeypatch.setattr(cpus, "budget", lambda root=None: (4, {"host": 64, "affinity": 4, "quota": None}))
    monkeypatch.delenv("REPRO_THREADS", raising=False)
    assert list(pool.parallel_map(_threads, [0, 1, 2, 3], 2)) == [2, 2, 2, 2]
    assert list(pool.parallel_map(_threads, [0, 1, 2, 3], 4)) == [1, 1, 1, 1]
    monkeypatch.setenv("REPRO_THREADS", "1")
    assert list(pool.parallel_map(_threads, [0, 1], 2)) == [1, 1]


def test_openmp_threads_sleep_at_barriers_unless_the_user_says_otherwise():
    """Graceful beside other work (issue 18, point 2): the package sets OMP_WAIT_POLICY=PASSIVE before torch
    loads (a spinning OpenMP thread burns the time slice its descheduled sibling needs); a user's value wins."""
    probe = "import os, repro, torch; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "PASSIVE", r.stderr
    r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=dict(env, OMP_WAIT_POLICY="ACTIVE"),
                       capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "ACTIVE", r.stderr
