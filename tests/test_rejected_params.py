"""A rejected parameter leaves the workspace as it was: after a valid run (the session's smoke-tier run),
`dvc exp run -S sparsity=1.5` stops with the one-line error before any work, and once params.yaml is
restored `dvc status` is clean with every output of the `study` stage byte-identical (DVC did not
delete them: they are `persist` outputs, replaced by the stage itself)."""
from __future__ import annotations

from workspace import clone_lab, dvc, run, tree_bytes


def test_rejected_sparsity_leaves_the_study_outputs_and_status_clean(tmp_path, smoke_lab):
    ws = clone_lab(smoke_lab, tmp_path / "ws")
    assert "Data and pipelines are up to date" in dvc(ws, "status").stdout
    before = {"runs/study": tree_bytes(ws / "runs" / "study"), "metrics/study.json": (ws / "metrics/study.json").read_bytes()}
    lock = (ws / "dvc.lock").read_bytes()

    r = dvc(ws, "exp", "run", "-S", "sparsity=1.5", check=False)
    assert r.returncode != 0
    errors = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.startswith("[study] error:")]
    assert errors == ["[study] error: params: sparsity: 1.5 is outside [0, 1)"], r.stdout + r.stderr

    assert tree_bytes(ws / "runs" / "study") == before["runs/study"]
    assert (ws / "metrics/study.json").read_bytes() == before["metrics/study.json"]
    assert (ws / "dvc.lock").read_bytes() == lock
    run(ws, "git", "checkout", "-q", "params.yaml")
    assert "Data and pipelines are up to date" in dvc(ws, "status").stdout
    assert run(ws, "git", "status", "--porcelain").stdout == ""
