"""Where the time goes (issue 29): every stage writes a timing record outside DVC's outputs, runs start longest
first, and the records count what was processed."""
from __future__ import annotations

import json
import os
import time
from functools import partial

from repro.base import cpus, timing


def _start_and_sleep(log, item):
    with open(log, "a") as f:  # O_APPEND: one whole line per start, in start order
        f.write(f"{item}\n")
    time.sleep(0.05)
    timing.count_images(item)
    return item * 10


def test_runs_start_longest_first_and_come_back_in_order(tmp_path):
    """With a cost per item, the two workers take the costliest runs first; the results keep the items' order,
    and each run's record has its name, times and images."""
    log = tmp_path / "starts.txt"
    items = [1, 2, 3, 4, 5, 6]
    timing._RUNS.clear()
    out = list(cpus.parallel_map(partial(_start_and_sleep, log), items, 2, cost=lambda i: i))
    assert out == [10, 20, 30, 40, 50, 60]
    starts = [int(x) for x in log.read_text().split()]
    assert set(starts[:2]) == {6, 5} and sorted(starts) == items
    assert [r["run"] for r in timing._RUNS] == [repr(i) for i in items]
    assert [r["images"] for r in timing._RUNS] == items
    assert all(r["wall_s"] >= 0.05 for r in timing._RUNS)


def test_stage_record_is_written_outside_the_outputs(tmp_path):
    """One JSON per stage: start-up from process start, body wall and CPU time, workers, runs, images; written
    whether the body succeeds or fails."""
    with timing.stage_record("transfer@s0.5", root=tmp_path, workers=2, threads=1):
        list(cpus.parallel_map(partial(_start_and_sleep, tmp_path / "log"), [1, 2], 1))
        timing.count_images(7)
    rec = json.loads((tmp_path / "transfer@s0.5.json").read_text())
    assert rec["ok"] is True and rec["workers"] == 2 and rec["threads"] == 1
    assert rec["images"] == 7 + 1 + 2 and len(rec["runs"]) == 2
    assert 0 <= rec["startup_s"] <= rec["wall_s"] and rec["body_wall_s"] >= 0.1
    assert rec["wall_s"] == rec["startup_s"] + rec["body_wall_s"] or abs(rec["wall_s"] - rec["startup_s"] -
                                                                          rec["body_wall_s"]) < 0.01
    try:
        with timing.stage_record("failing", root=tmp_path):
            raise ValueError("boom")
    except ValueError:
        pass
    assert json.loads((tmp_path / "failing.json").read_text())["ok"] is False


def test_process_start_is_before_now():
    start = timing.process_start()
    assert start <= time.time() and time.time() - start < 3600 * 24 * 30
    assert os.path.exists(f"/proc/{os.getpid()}/stat") is False or start < timing._IMPORTED + 1


def test_training_counts_every_batch_it_sees():
    """The training loop counts its images: one epoch over 64 training and 32 validation images."""
    import torch
    from fastai.data.core import DataLoaders
    from torch.utils.data import TensorDataset

    from repro.config import TrainParams
    from repro.models import build_model
    from repro.training import train

    g = torch.Generator().manual_seed(0)
    ds = lambda n: TensorDataset(torch.rand(n, 3, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g))  # noqa: E731
    dls = DataLoaders.from_dsets(ds(64), ds(32), bs=16, device="cpu")
    timing._IMAGES[0] = 0
    train(dls, build_model("cifar_resnet", 4, depths=(1,), width=4), TrainParams(epochs=1, schedule="constant"),
          progress=False)
    assert timing._IMAGES[0] == 64 + 32
