"""Bench section `pipeline`: wall times of `dvc repro` of a tier, a no-op `dvc repro` and `dvc status`
in a scratch copy of the repository, and `dvc status`/`dvc dag` of the paper tier."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, log


def _run(cmd: list[str], cwd: Path, env: dict) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - t0


def bench_pipeline(tier: str, workspace: Path | None = None) -> dict:
    """Wall times of the pipeline in a scratch copy of the repository (tracked files only).

    With ``workspace`` (a checkout where ``dvc repro`` has finished, e.g. after ``make repro``) the
    no-op ``dvc repro`` and ``dvc status`` are timed there and no tier is reproduced.
    """
    venv_bin = Path(sys.executable).parent
    dvc = str(venv_bin / "dvc")
    env = dict(os.environ, PATH=f"{venv_bin}:{os.environ.get('PATH', '')}", PYTHONWARNINGS="ignore")
    out = {"tier": tier}
    with tempfile.TemporaryDirectory(prefix="repro-bench-") as tmp:
        work = Path(tmp) / "repo"
        files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        for f in files:
            if (ROOT / f).is_file():
                (work / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / f, work / f)
        for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "bench"]):
            _run(cmd, work, env)
        paper = Path(tmp) / "paper"
        shutil.copytree(work, paper)
        _run([sys.executable, "-m", "repro.tiers", "use", "paper"], paper, env)
        out["paper_dvc_status_s"] = _run([dvc, "status"], paper, env)
        out["paper_dvc_dag_s"] = _run([dvc, "dag"], paper, env)
        if workspace is not None:
            work, out["tier"] = workspace, f"workspace {workspace}"
        else:
            if tier != "default":
                _run([sys.executable, "-m", "repro.tiers", "use", tier], work, env)
            log(f"pipeline: `dvc repro` of tier {tier} (a few minutes) ...")
            out["repro_s"] = _run([dvc, "repro"], work, env)
        out["noop_repro_s"] = _run([dvc, "repro"], work, env)
        out["status_s"] = _run([dvc, "status"], work, env)
    return out
