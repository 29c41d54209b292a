"""Results do not depend on the worker: one transfer level run in one process (`workers: 1`) and in
two forked worker processes (`workers: 2`) writes byte-identical run folders (weights, masks, logs,
trajectories). Each run seeds itself from its own spec (repro.stages.common.parallel_map)."""
from __future__ import annotations

import reliability_ws as W


def test_one_and_two_workers_give_byte_identical_transfer_outputs(tmp_path, monkeypatch):
    from repro.stages import transfer

    used = []
    n_workers = transfer.n_workers
    monkeypatch.setattr(transfer, "n_workers", lambda p: used.append(n_workers(p)) or used[-1])
    trees = {}
    for workers in (1, 2):
        ws = W.clone(tmp_path / f"w{workers}")
        W.write_params(ws, W.smoke_params(workers=workers))
        rc, err = W.stage(ws, "transfer", W.LEVEL)
        assert rc == 0, err
        trees[workers] = W.tree(ws / "runs" / "transfer" / f"s{W.LEVEL}")
    assert used == [1, 2]  # the second level really ran in two worker processes
    runs = {k.rsplit("/", 1)[0] for k in trees[1] if k.endswith("/spec.json")}
    assert len(runs) == 3 and any(k.endswith("trajectory.pt") for k in trees[1])
    assert sorted(trees[1]) == sorted(trees[2])
    assert [k for k in trees[1] if trees[1][k] != trees[2][k]] == []
