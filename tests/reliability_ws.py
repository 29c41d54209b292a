"""A tiny smoke-tier workspace shared by the reliability tests (built once per test session).

``workspace()`` returns a folder holding ``params.yaml`` (the smoke tier, narrowed to one
pretraining kind and three transfer runs per level) and the outputs of the ``data``,
``pretrain@standard`` and ``tickets@0.488`` stages, run in-process. Tests copy it
(``clone``) before writing into it. ``stage(ws, module, *args)`` runs a stage's ``main`` in
``ws`` in-process and returns ``(exit code, stderr lines)``.
"""
from __future__ import annotations

import atexit
import contextlib
import importlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from workspace import copy_project, env, tree_bytes

ROOT = Path(__file__).resolve().parents[1]
LEVEL = "0.488"
KIND = "standard"


def smoke_params(**over) -> dict:
    from repro.tiers import merge

    p = merge(yaml.safe_load((ROOT / "params.yaml").read_text()),
              yaml.safe_load((ROOT / "tiers" / "smoke.yaml").read_text()))
    p = merge(p, {
        "workers": 1,
        "pretrain": {"kinds": [KIND]},
        "tickets": {"lmp": {"train": {"epochs": 2}}},
        "transfer": {"adversarial": {"epochs": 3}},
        "experiments": {"rel": {"pairs": [[KIND, "omp"], [KIND, "lmp"]],
                                "regimes": ["standard", "adversarial", "mask"], "tasks": ["synth_near"],
                                "seeds": [0]}},
        "study": {"tasks": None},
    })
    p["experiments"] = {"rel": p["experiments"]["rel"]}
    return merge(p, over)


@contextlib.contextmanager
def inside(ws: Path):
    """cwd = ``ws`` and one torch thread per stage, restored afterwards."""
    import torch

    old_cwd, old_env, old_threads = os.getcwd(), os.environ.get("REPRO_THREADS"), torch.get_num_threads()
    os.chdir(ws)
    os.environ["REPRO_THREADS"] = "1"
    torch.set_num_threads(1)  # tiny networks: two OpenMP threads only wait for each other on a busy box
    try:
        yield ws
    finally:
        os.chdir(old_cwd)
        if old_env is None:
            os.environ.pop("REPRO_THREADS", None)
        else:
            os.environ["REPRO_THREADS"] = old_env
        torch.set_num_threads(old_threads)


def stage(ws: Path, module: str, *args: str) -> tuple[int, list[str]]:
    """``repro.stages.<module>.main(args)`` in ``ws``; returns the exit code and the non-empty stderr lines."""
    mod = importlib.import_module(f"repro.stages.{module}")
    for cache in ("_TASKS", "_STATE"):  # per-process caches: each stage is a fresh process under DVC
        if isinstance(getattr(mod, cache, None), dict):
            getattr(mod, cache).clear()
    err = io.StringIO()
    with inside(ws), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = mod.main(list(args))
    return rc, [line for line in err.getvalue().splitlines() if line.strip() and "Warning" not in line
                and not line.startswith("  warnings.warn")]


_WS: dict = {}


def workspace() -> Path:
    if "path" not in _WS:
        ws = Path(tempfile.mkdtemp(prefix="repro-reliability-"))
        atexit.register(shutil.rmtree, ws, True)
        (ws / "params.yaml").write_text(yaml.safe_dump(smoke_params(), sort_keys=False))
        for module, args in (("data", ()), ("pretrain", (KIND,)), ("tickets", (LEVEL,))):
            rc, err = stage(ws, module, *args)
            assert rc == 0, (module, err)
        _WS["path"] = ws
    return _WS["path"]


def clone(dst: Path, ws: Path | None = None) -> Path:
    """A private copy of the shared workspace (params and runs)."""
    shutil.copytree(ws or workspace(), dst, dirs_exist_ok=True)
    return dst


def write_params(ws: Path, params: dict) -> None:
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


tree = tree_bytes


def cmd_env(**extra) -> dict:
    """The test environment of tests/workspace.py, one thread per process."""
    return env(REPRO_THREADS="1", OMP_NUM_THREADS="1", **extra)


def git_dvc_repo(dst: Path, params: dict) -> Path:
    """The project copied into ``dst`` with ``params``, as its own git + DVC repository."""
    copy_project(dst)
    write_params(dst, params)
    dvc = str(Path(sys.executable).parent / "dvc")
    init_dvc = [] if (dst / ".dvc").is_dir() else [[dvc, "init", "-q"]]  # .dvc/config is a project file
    for cmd in (["git", "init", "-q"], *init_dvc, ["git", "add", "-A"], ["git", "commit", "-qm", "p"]):
        r = subprocess.run(cmd, cwd=dst, capture_output=True, text=True, env=cmd_env())
        assert r.returncode == 0, (cmd, r.stdout, r.stderr)
    return dst


__all__ = ["KIND", "LEVEL", "ROOT", "clone", "copy_project", "cmd_env", "git_dvc_repo", "inside", "smoke_params",
           "stage", "tree", "workspace", "write_params"]
