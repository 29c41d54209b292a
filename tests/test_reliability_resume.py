"""Reliability 2: interruption. A stage killed mid-training leaves nothing DVC or the next run could
take as complete; the rerun resumes from the per-epoch checkpoint (outside every DVC output) and
ends with outputs bit-identical to an uninterrupted run; the checkpoint is deleted afterwards.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import reliability_ws as W
from repro.base.io import save_torch
from repro.plan import RunSpec

DVC = str(Path(sys.executable).parent / "dvc")


# --------------------------------------------------------------- SIGKILL under `dvc repro`
def _kill_params() -> dict:
    # pgd_adversarial pretraining, 6 epochs: long enough to be killed between two epochs
    return W.smoke_params(pretrain={"kinds": ["pgd_adversarial"], "train": {"epochs": 6}},
                          experiments={"rel": {"pairs": [["pgd_adversarial", "omp"]], "regimes": ["standard"]}})


def _dvc(repo: Path, *args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([DVC, *args], cwd=repo, capture_output=True, text=True, env=W.cmd_env(), timeout=timeout)


def test_sigkill_mid_training_then_dvc_repro_resumes_bit_identically(tmp_path):
    stage, out = "pretrain@pgd_adversarial", Path("runs/pretrain/pgd_adversarial")
    repo = W.git_dvc_repo(tmp_path / "killed", _kill_params())
    # the data stage's outputs (same seed and data params as the shared workspace), recorded by DVC
    subprocess.run(["cp", "-a", str(W.workspace() / "runs"), str(repo / "runs")], check=True)
    for d in ("pretrain", "tickets"):
        subprocess.run(["rm", "-rf", str(repo / "runs" / d)], check=True)
    r = _dvc(repo, "commit", "-f", "data")
    assert r.returncode == 0, r.stdout + r.stderr

    # 1. `dvc repro` the stage; SIGKILL dvc and the stage (its process group) once the first
    #    per-epoch checkpoint exists, i.e. in the middle of training.
    proc = subprocess.Popen([DVC, "repro", stage], cwd=repo, env=W.cmd_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    ckpt_root = repo / ".cache" / "repro" / "ckpt" / stage
    deadline = time.time() + 300
    try:
        while not list(ckpt_root.glob("*/last.pt")):
            assert proc.poll() is None, f"stage ended before its first checkpoint:\n{proc.stdout.read().decode()}"
            assert time.time() < deadline, "no checkpoint after 300 s"
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    # 2. nothing that looks complete: no output folder, no lock entry, DVC sees the stage as not run
    assert not (repo / out).exists()
    lock = (repo / "dvc.lock").read_text()
    assert "data:" in lock and stage not in lock
    st = _dvc(repo, "status", stage, "--json")
    assert st.returncode == 0 and stage in json.loads(st.stdout), st.stdout
    leftovers = [p for p in (repo / "runs" / "pretrain").iterdir() if p.name != ".gitignore"]
    assert leftovers and all(p.name.startswith(".pgd_adversarial.") and p.name.endswith(".tmp") for p in leftovers)
    ign = subprocess.run([DVC, "check-ignore", str(leftovers[0].relative_to(repo))], cwd=repo, capture_output=True,
                         text=True, env=W.cmd_env())
    assert ign.returncode == 0, "a killed run's temporary folder must be invisible to DVC"
    ckpt = torch.load(next(ckpt_root.glob("*/last.pt")), weights_only=True)
    assert 1 <= ckpt["epochs_done"] < 6

    # 3. re-run: resumes from the checkpoint, finishes, removes the checkpoint and the stale temp folder
    r = _dvc(repo, "repro", stage)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"resuming after epoch {ckpt['epochs_done']} of 6" in r.stdout + r.stderr
    assert not list(ckpt_root.glob("*/last.pt"))
    assert [p.name for p in (repo / "runs" / "pretrain").iterdir() if p.name != ".gitignore"] == ["pgd_adversarial"]
    assert _dvc(repo, "status", stage, "--json").stdout.strip() in ("{}", "")

    # 4. an uninterrupted run of the same stage (in this process): every output file is bit-identical
    ref = tmp_path / "ref"
    (ref / "runs").mkdir(parents=True)
    W.write_params(ref, _kill_params())
    subprocess.run(["cp", "-a", str(repo / "runs" / "data"), str(ref / "runs" / "data")], check=True)
    rc, err = W.stage(ref, "pretrain", "pgd_adversarial")
    assert rc == 0, err
    got, want = W.tree(repo / out), W.tree(ref / out)
    assert sorted(got) == sorted(want) and len(got) >= 5
    assert all(got[k] == want[k] for k in want), [k for k in want if got[k] != want[k]]


# ------------------------------------------------- in-process: transfer runs of every kind
class _Crash(Exception):
    pass


@pytest.mark.parametrize("regime, method", [("adversarial", "omp"), ("mask", "lmp")])
def test_transfer_run_interrupted_after_an_epoch_resumes_bit_identically(tmp_path, monkeypatch, regime, method):
    """PGD fine-tuning with per-epoch weight snapshots (the trajectory) and CSV log, and LMP mask
    learning (scores as parametrizations): crash after epoch 1, rerun, compare with a clean run."""
    from repro.config import load_params
    from repro.pipeline import transfer
    from repro.training import resume

    spec = RunSpec(W.KIND, method, "synth_near", regime, 1.0, 0)
    rel = Path("runs/transfer/s0.488") / spec.name
    ref, run = W.clone(tmp_path / "ref"), W.clone(tmp_path / "run")
    with W.inside(ref):
        transfer.run_one(load_params(), spec, 0.488, {})
    want = W.tree(ref / rel)
    assert "history.csv" in want and (regime != "adversarial" or "trajectory.pt" in want)

    saved = []
    original = resume.EpochCheckpoint.after_epoch


    def crash_after_first_checkpoint(self):
        original(self)
        if self.path.is_file():
            saved.append(self.path)
            raise _Crash("killed")

    monkeypatch.setattr(resume.EpochCheckpoint, "after_epoch", crash_after_first_checkpoint)
    with W.inside(run), pytest.raises(_Crash):
        transfer.run_one(load_params(), spec, 0.488, {})
    assert saved and (run / saved[0]).is_file()
    assert not (run / rel).exists() and not list((run / rel).parent.glob("*.tmp"))
    assert torch.load(run / saved[0], weights_only=True)["epochs_done"] == 1

    # The rerun must resume: the checkpoint is read (EpochCheckpoint.resumed_from) and only the epochs
    # after it are trained. A rerun from scratch would also end bit-identical (it is deterministic),
    # so the epochs it trains are counted.
    loaded, trained = [], []
    before_fit = resume.EpochCheckpoint.before_fit

    def spy_before_fit(self):
        before_fit(self)
        loaded.append((self.resumed_from, self.path.resolve()))

    def count_epochs(self):
        trained.append(self.epoch)
        original(self)

    monkeypatch.setattr(resume.EpochCheckpoint, "before_fit", spy_before_fit)
    monkeypatch.setattr(resume.EpochCheckpoint, "after_epoch", count_epochs)
    with W.inside(run):
        p = load_params()
        transfer.run_one(p, spec, 0.488, {})
    n_epochs = {"adversarial": p.transfer.adversarial.epochs, "mask": p.tickets.lmp.train.epochs}[regime]
    assert n_epochs >= 2
    assert loaded == [(1, (run / saved[0]).resolve())], loaded  # one fit, resumed after epoch 1 of n
    assert trained == list(range(1, n_epochs)), trained  # epoch 0 is not trained again
    assert W.tree(run / rel) == want
    assert not (run / saved[0]).exists()  # deleted once the run folder is in place


def test_unreadable_or_foreign_checkpoint_is_ignored(tmp_path, monkeypatch, capsys):
    """A checkpoint is a cache: a corrupted one (warning) or one of another configuration is ignored,
    the run starts over and ends as a clean run does."""
    from repro.config import load_params
    from repro.pipeline import transfer
    from repro.training import resume

    spec = RunSpec(W.KIND, "omp", "synth_near", "adversarial", 1.0, 0)
    rel = Path("runs/transfer/s0.488") / spec.name
    ref = W.clone(tmp_path / "ref")
    with W.inside(ref):
        transfer.run_one(load_params(), spec, 0.488, {})
    want = W.tree(ref / rel)
    original = resume.EpochCheckpoint.after_epoch
    saved = []

    def crash(self):
        original(self)
        saved.append(self.path)
        raise _Crash("killed")

    for case in ("garbage", "foreign"):
        ws = W.clone(tmp_path / case)
        monkeypatch.setattr(resume.EpochCheckpoint, "after_epoch", crash)
        with W.inside(ws), pytest.raises(_Crash):
            transfer.run_one(load_params(), spec, 0.488, {})
        path = ws / saved[-1]
        if case == "garbage":
            path.write_bytes(path.read_bytes()[:100])  # truncated
        else:
            state = torch.load(path, weights_only=True)
            save_torch({**state, "key": "another configuration"}, path)
        monkeypatch.setattr(resume.EpochCheckpoint, "after_epoch", original)
        capsys.readouterr()
        with W.inside(ws):
            transfer.run_one(load_params(), spec, 0.488, {})
        out = capsys.readouterr()
        assert "resuming" not in out.out
        assert ("ignoring the unreadable run checkpoint" in out.err) == (case == "garbage")
        assert W.tree(ws / rel) == want, case


def test_checkpoint_key_covers_params_inputs_and_code(tmp_path):
    from repro.config import load_params
    from repro.pipeline.inputs import task_path
    from repro.training.resume import checkpoint_key

    ws = W.clone(tmp_path / "ws")
    with W.inside(ws):
        p = load_params()
        inputs = [task_path("synth_near")]
        k = checkpoint_key("s", "run", p, inputs)
        assert checkpoint_key("s", "run", p, inputs) == k
        assert checkpoint_key("s", "other", p, inputs) != k
        import dataclasses

        p2 = dataclasses.replace(p, seed=p.seed + 1)
        assert checkpoint_key("s", "run", p2, inputs) != k
        os.utime(inputs[0], ns=(1, 1))  # an input rewritten since: its mtime changed
        assert checkpoint_key("s", "run", p, inputs) != k


def test_killed_atomic_writes_leave_only_hidden_tmp_files_that_the_rerun_removes(tmp_path):
    from repro.base.io import atomic_dir

    final = tmp_path / "runs" / "x" / "run"
    stale = final.parent / ".run.abc123.tmp"  # what a SIGKILL inside atomic_dir leaves
    stale.mkdir(parents=True)
    (stale / "model.pt").write_bytes(b"half")
    with atomic_dir(final) as out:
        assert not stale.exists()
        (out / "model.pt").write_bytes(b"whole")
    assert sorted(p.name for p in final.parent.iterdir()) == ["run"]
    dvcignore = (W.ROOT / ".dvcignore").read_text().split()
    assert ".*.tmp" in dvcignore and "/.cache/" in dvcignore


def test_torch_outputs_are_byte_deterministic(tmp_path):
    """The same tensors saved twice give the same bytes (the zip's inner folder is not the temp name)."""
    sd = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2)}
    save_torch(sd, tmp_path / "a.pt")
    save_torch(sd, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
