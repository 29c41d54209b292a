"""Sharing results through a DVC remote: one lab computes, everyone else pulls.

The S3 test starts moto's S3-compatible server on 127.0.0.1 (a free port), takes the session's one
`smoke`-tier run (the ``smoke_lab`` fixture, tests/conftest.py) as the "lab", pushes outputs and the
run-cache, pulls them into a fresh clone, and checks that nothing is left to run there: `dvc status -c`
in sync, `dvc repro` skipping every stage, the same bytes in every output, and the figures re-rendered
from the pulled artifacts byte-identical to the lab's. The directory-remote test does the same for one
small stage through a plain folder (the shared-filesystem case) and also restores a stage from the
run-cache alone.

moto_server comes from the project's tools venv (`make tools`, requirements-tools.lock; installing
moto[server] into the project venv would upgrade botocore past what dvc-s3's aiobotocore accepts),
never from the system; without it the S3 test skips, and under CI=true it fails.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from workspace import DVC, clone_lab, commit_all, dvc, env, need_tool, run, tree_bytes

pytestmark = pytest.mark.skipif(not DVC.exists(), reason="dvc is not installed in this environment")

BUCKET = "repro-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_endpoint(tmp_path):
    """moto's S3 server on 127.0.0.1 with one bucket; stopped when the test ends."""
    moto = need_tool("moto_server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "moto.log", "w")
    # moto_server is a script of the tools venv: run it with the caller's environment minus this venv.
    senv = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            env=senv)
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(urllib.request.Request(f"{url}/{BUCKET}", method="PUT"), timeout=5)
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"moto_server did not start: {(tmp_path / 'moto.log').read_text()}")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _outs(repo: Path) -> list[str]:
    """Every cached output path recorded in dvc.lock."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return sorted(o["path"] for st in lock.values() for o in st.get("outs", []))


def _same_outputs(a: Path, b: Path) -> None:
    for out in _outs(a):
        pa, pb = a / out, b / out
        if pa.is_dir():
            assert tree_bytes(pa) == tree_bytes(pb), out
        else:
            assert pa.read_bytes() == pb.read_bytes(), out


def _stage_names(repo: Path) -> list[str]:
    r = dvc(repo, "stage", "list", "--name-only")
    return r.stdout.split()


def _assert_nothing_ran(repo: Path, out: str) -> None:
    assert "Running stage" not in out, out
    for name in _stage_names(repo):
        assert f"Stage '{name}' didn't change, skipping" in out, (name, out)


def test_s3_remote_round_trip(tmp_path, s3_endpoint, smoke_lab):
    creds = env(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    lab = clone_lab(smoke_lab, tmp_path / "lab")  # the session's smoke-tier run, results committed
    # The remote lives in the committed .dvc/config (everyone shares it); credentials come from
    # the usual AWS chain (here environment variables), never from the repository.
    dvc(lab, "remote", "add", "-d", "store", f"s3://{BUCKET}/repro")
    dvc(lab, "remote", "modify", "store", "endpointurl", s3_endpoint)
    dvc(lab, "remote", "modify", "store", "region", "us-east-1")
    commit_all(lab, "remote")
    assert "Data and pipelines are up to date" in dvc(lab, "status", environ=creds).stdout

    dvc(lab, "push", "--run-cache", environ=creds)
    assert "in sync" in dvc(lab, "status", "-c", environ=creds).stdout

    mate = tmp_path / "mate"
    run(tmp_path, "git", "clone", "-q", lab, mate)
    tracked = set(run(mate, "git", "ls-files").stdout.split())  # git carries only the uncached metrics
    assert not any((mate / out).exists() for out in _outs(lab) if out not in tracked)
    dvc(mate, "pull", "--run-cache", environ=creds)
    assert any((mate / ".dvc" / "cache" / "runs").rglob("*")), "the run-cache was not pulled"
    assert "in sync" in dvc(mate, "status", "-c", environ=creds).stdout
    assert "Data and pipelines are up to date" in dvc(mate, "status", environ=creds).stdout
    t1 = time.time()
    _assert_nothing_ran(mate, dvc(mate, "repro", environ=creds).stdout)
    assert time.time() - t1 < 60  # bookkeeping only
    _same_outputs(lab, mate)
    figs = tree_bytes(lab / "paper_figures" / "out")
    assert any(f.endswith(".png") for f in figs) and "index.html" in figs

    # The pulled artifacts are enough to render the figures again, to the same bytes.
    shutil.rmtree(mate / "paper_figures" / "out")
    dvc(mate, "repro", "--force", "--single-item", "figures", environ=creds)
    assert tree_bytes(mate / "paper_figures" / "out") == figs
    assert run(mate, "git", "status", "--porcelain", "dvc.lock").stdout == ""


def test_directory_remote_round_trip_and_run_cache(tmp_path, smoke_lab):
    """A plain folder (e.g. on a shared filesystem) as the remote, for the `data` stage."""
    shared = tmp_path / "shared-store"
    lab = clone_lab(smoke_lab, tmp_path / "lab")  # the session's smoke-tier run
    dvc(lab, "remote", "add", "-d", "shared", shared)
    commit_all(lab, "remote")
    dvc(lab, "push", "--run-cache", "data")
    assert any((shared / "files").rglob("*")) and any((shared / "runs").rglob("*"))

    # A fresh clone with the committed dvc.lock: pull, and nothing to run.
    mate = tmp_path / "mate"
    run(tmp_path, "git", "clone", "-q", lab, mate)
    dvc(mate, "pull", "data")
    assert "in sync" in dvc(mate, "status", "-c", "data").stdout
    out = dvc(mate, "repro", "data").stdout
    assert "Stage 'data' didn't change, skipping" in out and "Running stage" not in out, out
    assert tree_bytes(lab / "runs" / "data") == tree_bytes(mate / "runs" / "data")

    # A clone without that dvc.lock (e.g. the job of another machine): the run-cache alone
    # restores the stage (same command, dependencies and params) instead of running it.
    other = tmp_path / "other"
    run(tmp_path, "git", "clone", "-q", lab, other)
    (other / "dvc.lock").unlink()
    dvc(other, "pull", "--run-cache", check=False)  # fetches the run-cache; outputs need dvc.lock
    out = dvc(other, "repro", "--pull", "data").stdout
    assert "Stage 'data' is cached - skipping run, checking out outputs" in out, out
    assert tree_bytes(lab / "runs" / "data") == tree_bytes(other / "runs" / "data")
