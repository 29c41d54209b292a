"""Checkpoint selection (issue 13, point 1): the official Double-Win code validates on held-out
training images (the last 5,000) and reports test SA/RA at the best-validation-SA and
best-validation-RA checkpoints. The test set is never used for selection."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import reliability_ws as W
from helpers import _one_thread  # noqa: F401  (one torch thread per test)
from repro.config import ConfigError, load_params
from repro.data import ArrayTask, make_dataloaders
from repro.plan import RunSpec
from repro.tiers import merge

ROOT = Path(__file__).resolve().parents[1]


def _task(n=60, n_test=30, k=3, size=8):
    rng = np.random.default_rng(0)
    # image i of the training split carries its index in its first pixel, so a loader's images name themselves
    x = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    x[:, 0, 0, 0], x[:, 0, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
    y = np.arange(n) % k
    xt = rng.integers(0, 256, (n_test, size, size, 3), dtype=np.uint8)
    return ArrayTask("t", x, y, xt, np.arange(n_test) % k, k)


@pytest.mark.parametrize("how", ["last", "stratified"])
def test_held_out_images_are_disjoint_from_training_and_the_test_split_is_untouched(how):
    from repro.data.splits import held_out, with_held_out

    task = _task()
    train_idx, val_idx = held_out(task.y_train, how, 12)
    assert len(val_idx) == 12 and not set(train_idx) & set(val_idx)
    assert sorted([*train_idx, *val_idx]) == list(range(60))
    if how == "last":  # the official code: the last N training images
        assert list(val_idx) == list(range(48, 60))
    else:  # class proportions kept: 12 of 60 images over 3 equal classes = 4 per class
        assert np.bincount(task.y_train[val_idx]).tolist() == [4, 4, 4]
    view = with_held_out(task, how, 12)
    assert view.x_test is task.x_test and view.y_test is task.y_test  # the test split is the same object
    dls = make_dataloaders(view, bs=8, size=8, recipe="none", val_from_train=12, device="cpu")
    tr, va = dls.train_ds, dls.valid_ds
    ids = lambda ds: {int(ds.images[i, 0, 0, 0]) + 256 * int(ds.images[i, 0, 0, 1]) for i in ds.indices}  # noqa: E731
    assert va.images is view.x_train  # validation images come from the training split, never the test split
    assert ids(va) == set(val_idx.tolist()) and ids(tr) == set(train_idx.tolist())
    # the rest keep their file order, so the official "first N" fraction still takes the first images
    assert [int(view.x_train[i, 0, 0, 0]) for i in range(10)] == sorted(train_idx.tolist())[:10]


def test_a_streamed_task_holds_out_stratified_images_without_decoding_them(tmp_path):
    """ImageNet is streamed from its files (ImageFiles): a stratified held-out split reorders the file list, so
    the paper tier's in-house FGSM-RS pretraining can stop early on ImageNet (the rehearsal of the `paper` tier
    found it refused)."""
    from PIL import Image

    from repro.data.files import ImageFiles
    from repro.data.splits import held_out, with_held_out

    n, k = 24, 3
    for i in range(n):   # class-sorted files, as an ImageNet folder lists them
        d = tmp_path / f"c{i * k // n}"
        d.mkdir(exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(d / f"{i:03d}.png")
    paths = sorted(str(f.relative_to(tmp_path)) for f in tmp_path.rglob("*.png"))
    y = np.array([i * k // n for i in range(n)])
    xt = ImageFiles(tmp_path, paths[:3], 8, "imagenet")
    task = ArrayTask("imagenet", ImageFiles(tmp_path, paths, 8, "imagenet"), y, xt, y[:3], k,
                     stats=((0.5,) * 3, (0.25,) * 3))
    assert task.streamed
    view = with_held_out(task, "stratified", 6)
    assert view.streamed and view.x_test is task.x_test
    train_idx, val_idx = held_out(y, "stratified", 6)
    assert list(view.x_train.paths[:-6]) == [paths[i] for i in train_idx]
    assert sorted(view.x_train.paths[-6:]) == sorted(paths[i] for i in val_idx)
    assert view.y_train[-6:].tolist() == [0, 1, 2, 0, 1, 2]   # the classes in turn: any first k cover them
    last = int(view.x_train[len(view.y_train) - 1][0, 0, 0])   # the file read is that image (pixel = its index)
    assert last in val_idx and y[last] == 2


def test_held_out_refuses_a_count_that_leaves_no_training_images():
    from repro.data import DataError
    from repro.data.splits import held_out

    with pytest.raises(DataError, match="transfer.validation.n = 60"):
        held_out(np.zeros(60, int), "last", 60)
    with pytest.raises(DataError, match="pretrain.early_stopping.n = 60"):   # the parameter the count came from
        held_out(np.zeros(60, int), "stratified", 60, key="pretrain.early_stopping.n")


def _fit(cb, epochs=3):
    from repro.models import build_model
    from repro.data.splits import with_held_out
    from repro.training import train
    from repro.config import TrainParams

    task = _task(n=96, n_test=30, k=3)
    dls = make_dataloaders(with_held_out(task, "stratified", 24), bs=16, size=8, recipe="none",
                           val_from_train=24, device="cpu")
    model = build_model("cifar_resnet", 3, depths=(1,), width=4)
    train(dls, model, TrainParams(epochs=epochs, lr=0.05, schedule="constant", batch_size=16),
          progress=False, extra_cbs=[cb])
    return dls


def test_held_out_validation_keeps_the_weights_of_the_best_epochs_in_fp32():
    from repro import metrics
    from repro.base import runtime
    from repro.training import HeldOutValidation

    cb = HeldOutValidation(dict(eps=8 / 255, alpha=2 / 255, steps=2), n_robust=12, seed=0)
    torch.manual_seed(0)
    dls = _fit(cb)
    hist = cb.history
    assert [h["epoch"] for h in hist] == [0, 1, 2]
    best_sa = max(range(3), key=lambda e: (hist[e]["val_sa"], -e))
    best_ra = max(range(3), key=lambda e: (hist[e]["val_ra"], -e))
    assert cb.best["best_sa"]["epoch"] == best_sa and cb.best["best_ra"]["epoch"] == best_ra
    # the kept weights really are that epoch's: their held-out accuracy is the logged value
    from repro.models import build_model

    m = build_model("cifar_resnet", 3, depths=(1,), width=4)
    m.load_state_dict(cb.best["best_sa"]["state"])
    sa = metrics.accuracy(*metrics.collect_logits(runtime.inference_model(m), dls.valid, progress=False,
                                                  amp=False, device="cpu"))
    assert sa == pytest.approx(hist[best_sa]["val_sa"])
    assert all(0 <= h["val_ra"] <= 1 for h in hist)


def _params(ws: Path):
    p = W.smoke_params()
    p = merge(p, {"transfer": {"validation": {"how": "stratified", "n": 16, "robust_images": 8, "steps": 2}},
                  "evaluation": {"select": {"standard": "best_sa", "adversarial": "best_ra", "linear": "best_sa"}}})
    W.write_params(ws, p)


def test_transfer_keeps_best_checkpoints_and_evaluate_reports_each_with_its_source(tmp_path):
    from repro.pipeline import evaluate, transfer

    ws = W.clone(tmp_path / "ws")
    _params(ws)
    spec = RunSpec(W.KIND, "omp", "synth_near", "adversarial", 1.0, 0)
    with W.inside(ws):
        p = load_params()
        run = transfer.run_one(p, spec, 0.488, {})
        files = {f.name for f in run.iterdir()}
        assert {"model.pt", "best_sa.pt", "best_ra.pt", "validation.json"} <= files
        spec_json = json.loads((run / "spec.json").read_text())
        assert spec_json["checkpoints"] == ["last", "best_ra", "best_sa"]
        assert spec_json["n_train"] == 80 - 16  # smoke: 80 training images, 16 held out
        val = json.loads((run / "validation.json").read_text())
        assert len(val["epochs"]) == p.transfer.adversarial.epochs
        assert val["best_ra_epoch"] == max(range(len(val["epochs"])), key=lambda e: (val["epochs"][e]["val_ra"], -e))
        from repro.pipeline.inputs import load_task

        m = evaluate.evaluate_run(p, run, {}, load_task(p.data.ood), {})
    assert m["checkpoint"] == "best_ra"
    assert {"sa@last", "ra@last", "sa@best_sa", "ra@best_sa", "sa@best_ra", "ra@best_ra"} <= set(m)
    assert m["sa"] == m["sa@best_ra"] and m["ra"] == m["ra@best_ra"]


def test_best_checkpoint_selection_needs_held_out_images(tmp_path):
    p = W.smoke_params()
    W.write_params(tmp_path, merge(p, {"evaluation": {"select": {"adversarial": "best_ra"}}}))
    with pytest.raises(ConfigError, match="evaluation.select.adversarial"):
        load_params(tmp_path / "params.yaml")
    W.write_params(tmp_path, merge(p, {"transfer": {"validation": {"how": "last", "n": 10}},
                                       "evaluation": {"select": {"adversarial": "best_ra"}}}))
    with pytest.raises(ConfigError, match="robust_images"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize("tier", ["small", "paper"])
def test_real_tiers_select_on_the_official_held_out_images(tier):
    cfg = yaml.safe_load((ROOT / "params.yaml").read_text())
    cfg = merge(cfg, yaml.safe_load((ROOT / "tiers" / f"{tier}.yaml").read_text()))
    v = cfg["transfer"]["validation"]
    # the official code: the last 5,000 training images; `auto` keeps them where the file order is a fair draw
    # of the classes (CIFAR's shuffled batches), else draws them per class (tests/test_splits.py)
    assert (v["how"], v["n"]) == ("auto", 5000)
    assert v["robust_images"] >= 1
    assert cfg["evaluation"]["select"] == {"standard": "best_sa", "adversarial": "best_ra", "linear": "best_sa"}


def test_a_fraction_of_a_tier_holds_out_that_fraction_of_the_validation_images(tmp_path, monkeypatch):
    from repro import tiers

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.setattr(tiers, "TIERS_DIR", ROOT / "tiers")
    cfg = tiers.apply(["small", "trial"], tmp_path / "params.yaml", fraction=0.01)
    v = cfg["transfer"]["validation"]
    assert (v["how"], v["n"], v["robust_images"]) == ("auto", 50, 10)
    load_params(tmp_path / "params.yaml")  # still valid: robust_images <= n


def test_a_killed_run_with_validation_resumes_bit_identically(tmp_path, monkeypatch):
    """The validation log and the best weights so far travel in the per-epoch checkpoint."""
    from repro.pipeline import transfer
    from repro.training import resume

    spec = RunSpec(W.KIND, "omp", "synth_near", "adversarial", 1.0, 0)
    rel = Path("runs/transfer/s0.488") / spec.name
    ref, run = W.clone(tmp_path / "ref"), W.clone(tmp_path / "run")
    for ws in (ref, run):
        _params(ws)
    with W.inside(ref):
        transfer.run_one(load_params(), spec, 0.488, {})
    want = W.tree(ref / rel)
    assert {"best_sa.pt", "best_ra.pt", "validation.json"} <= set(want)

    original = resume.EpochCheckpoint.after_epoch

    class Killed(Exception):
        pass

    def crash_after_first_checkpoint(self):
        original(self)
        if self.path.is_file():
            raise Killed("killed")

    monkeypatch.setattr(resume.EpochCheckpoint, "after_epoch", crash_after_first_checkpoint)
    with W.inside(run), pytest.raises(Killed):
        transfer.run_one(load_params(), spec, 0.488, {})
    monkeypatch.setattr(resume.EpochCheckpoint, "after_epoch", original)
    with W.inside(run):
        transfer.run_one(load_params(), spec, 0.488, {})
    assert W.tree(run / rel) == want


def test_data_stage_refuses_more_held_out_images_than_a_task_has(tmp_path, monkeypatch, capsys):
    """A data root too small for ``transfer.validation.n`` (e.g. the trial overlay's n = 50 on a 10-image task)
    stops the `data` stage with one line naming the key, the task and what is allowed, and writes nothing; it
    used to surface in the transfer stages, after pretraining and IMP had run."""
    from repro.stages import data as data_stage
    from repro.stages.common import run_stage

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "data": {"downstream": ["synth_near"], "image_size": 8,
                 "synthetic": {"source_classes": 4, "n_train_source": 40, "n_test_source": 8,
                               "downstream_classes": 4, "n_train_downstream": 40, "n_test_downstream": 8, "n_ood": 8}},
        "transfer": {"validation": {"how": "last", "n": 40, "robust_images": 0}},
        "pretrain": {"early_stopping": {"how": "none"}}}))  # the 40 source images could not hold out its 300 either
    assert run_stage("data", data_stage.body) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "transfer.validation.n = 40" in err[0] and "'synth_near' has 40 training" in err[0] \
        and "[1, 39]" in err[0], err
    assert not (tmp_path / "runs" / "data").exists() or not any((tmp_path / "runs" / "data").iterdir())


def test_a_last_batch_of_one_image_is_skipped_and_a_one_image_split_refused():
    """Batch norm cannot train on one image (torch raises mid-epoch, after hours on a GPU when a task's size is
    1 more than a multiple of the batch size): that last batch is skipped; a training split of one image (a data
    fraction of a small task) is refused in one line."""
    from repro.data import DataError

    task = _task(n=9, n_test=6, k=3)
    dls = make_dataloaders(task, bs=4, size=8, recipe="none", device="cpu")
    assert [len(b[1]) for b in dls.train] == [4, 4]             # 9 = 4 + 4 + 1: the single image skipped
    assert sum(len(b[1]) for b in dls.valid) == 6               # evaluation keeps every image
    dls = make_dataloaders(_task(n=10, n_test=6, k=3), bs=4, size=8, recipe="none", device="cpu")
    assert [len(b[1]) for b in dls.train] == [4, 4, 2]          # a last batch of 2 is kept
    with pytest.raises(DataError, match="data fraction 0.1 leaves 1 training image; allowed: at least 2"):
        make_dataloaders(task, bs=4, size=8, recipe="none", device="cpu", fraction=0.1, how="first")


def test_the_data_stage_refuses_a_fraction_that_leaves_one_image(tmp_path):
    """DW Fig. 5's 1 % of a small task, with the official first-N rule: caught by the data stage, before any
    pretraining (the rehearsal of the paper tier met it as a batch-norm error in transfer@dense)."""
    ws = W.clone(tmp_path / "ws")
    W.write_params(ws, W.smoke_params(data={"fraction_how": "first"},
                                      experiments={"rel": {"fractions": [1.0, 0.001]}}))
    before = {f.name: f.stat().st_mtime_ns for f in (ws / "runs" / "data").glob("*")}
    rc, err = W.stage(ws, "data")
    assert rc == 2 and len(err) == 1, err
    assert "experiments.rel.fractions: 0.001 of task 'synth_near'" in err[0] and "at least 2" in err[0]
    assert {f.name: f.stat().st_mtime_ns for f in (ws / "runs" / "data").glob("*")} == before   # nothing written
