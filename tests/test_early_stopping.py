"""Early stopping of fast adversarial pretraining (issue 26, point 4; DW Sec. 3 after Rice et al. 2020): after every
epoch PGD attacks held-out source images, and the weights of the epoch with the best held-out PGD accuracy are kept,
so a run whose PGD accuracy collapses (FGSM's catastrophic overfitting) keeps the weights from before the collapse."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fastai.callback.core import Callback

import reliability_ws as W
from helpers import _one_thread  # noqa: F401  (one torch thread per test)
from repro.config import load_params
from repro.data import ArrayTask

KINDS = [W.KIND, "fast_adversarial"]


def _colour_source(n: int = 600, k: int = 5, size: int = 8) -> ArrayTask:
    """A source task an FGSM-trained network learns, robustly, within one epoch: one flat colour per class, far
    apart against eps 4/255, plus a little noise."""
    rng = np.random.default_rng(0)
    colours = np.array([[220, 30, 30], [30, 220, 30], [30, 30, 220], [220, 220, 30], [30, 220, 220]])[:k]

    def split(m):
        y = np.arange(m) % k
        x = colours[y][:, None, None, :] + rng.normal(0, 12, (m, size, size, 3))
        return np.clip(x, 0, 255).astype(np.uint8), y

    (x, y), (xt, yt) = split(n), split(200)
    return ArrayTask("synth_source", x, y, xt, yt, k)


class Snapshot(Callback):
    """The weights at the end of every epoch, before anything else after the epoch (validation runs at order 60)."""

    order = 40

    def before_fit(self):
        self.states = []

    def after_epoch(self):
        self.states.append({k: v.detach().cpu().clone() for k, v in self.learn.model.state_dict().items()})


class Collapse(Callback):
    """Catastrophic overfitting, made to happen: from epoch ``at`` on, every epoch ends with the classifier's rows
    rotated by one class, so the network predicts the next class for every image and its held-out PGD accuracy
    (and its clean accuracy) fall to about zero. Runs after ``Snapshot``: the snapshots hold what was kept or not."""

    order = 50

    def __init__(self, at: int):
        self.at = at

    def after_epoch(self):
        if self.epoch >= self.at:
            fc = self.learn.model.fc
            with torch.no_grad():
                fc.weight.copy_(torch.roll(fc.weight, 1, dims=0))
                fc.bias.copy_(torch.roll(fc.bias, 1, dims=0))


def _workspace(tmp_path, **early):
    ws = W.clone(tmp_path / "ws")
    W.write_params(ws, W.smoke_params(pretrain={
        "kinds": KINDS, "train": {"epochs": 3, "lr": 0.05, "batch_size": 50},
        "early_stopping": {"kinds": ["fast_adversarial"], "how": "stratified", "n": 100, "robust_images": 100,
                           "steps": 3, **early}}))
    with W.inside(ws):
        _colour_source().save("runs/data/synth_source.npz")
    return ws


def test_a_run_whose_pgd_accuracy_collapses_keeps_the_weights_from_before(tmp_path):
    from repro.pipeline.pretrain import pretrain

    ws = _workspace(tmp_path)
    snap = Snapshot()
    with W.inside(ws):
        p = load_params()
        model, sa, record = pretrain(p, "fast_adversarial", ws / "out", progress=False,
                                     extra_cbs=[snap, Collapse(at=1)])
    hist = [h["val_ra"] for h in record["history"]]
    assert len(hist) == 3 and record["n"] == 100 and record["robust_images"] == 100
    # epoch 0 learned robustly; from epoch 1 on the held-out PGD accuracy has collapsed
    assert hist[0] > 0.6 and max(hist[1:]) < 0.2, hist
    assert record["epoch_kept"] == 0 and record["held_out_ra"] == hist[0]
    kept = model.state_dict()
    assert all(torch.equal(kept[k], snap.states[0][k]) for k in kept)  # the weights of epoch 0, bit for bit
    assert not torch.equal(kept["fc.weight"], snap.states[-1]["fc.weight"])  # not the last, collapsed ones
    assert sa > 0.6  # and the kept network is the one that classifies the test images


def test_without_a_collapse_the_best_epoch_is_kept_and_recorded_by_the_stage(tmp_path):
    ws = _workspace(tmp_path)
    rc, err = W.stage(ws, "pretrain", "fast_adversarial")
    assert rc == 0, err
    doc = json.loads((ws / "runs/pretrain/fast_adversarial/metrics.json").read_text())
    es = doc["early_stopping"]
    hist = [h["val_ra"] for h in es["history"]]
    assert es["epoch_kept"] == max(range(len(hist)), key=lambda e: (hist[e], -e))  # ties: the earlier epoch
    assert es["attack"].startswith("PGD-3, eps 4/255")
    assert doc["eps"] == pytest.approx(4 / 255)


class TrainSize(Callback):
    order = 0

    def before_fit(self):
        self.n_train, self.n_valid = len(self.learn.dls.train_ds), len(self.learn.dls.valid_ds)


@pytest.mark.parametrize("kind, how", [("pgd_adversarial", "stratified"), ("fast_adversarial", "none")])
def test_kinds_not_named_train_on_every_image_without_validation(tmp_path, kind, how):
    """early_stopping.kinds names fast_adversarial only: pgd_adversarial, and any kind with how = none, trains on
    all 600 source images and records no early stopping; fast_adversarial with how = stratified holds out 100."""
    from repro.pipeline.pretrain import pretrain

    ws = _workspace(tmp_path, how=how)
    size = TrainSize()
    with W.inside(ws):
        _, _, record = pretrain(load_params(), kind, ws / "out", progress=False, extra_cbs=[size])
    assert record is None and size.n_train == 600
    named = TrainSize()
    with W.inside(_workspace(tmp_path / "named")):
        _, _, record = pretrain(load_params(), "fast_adversarial", tmp_path / "out2", progress=False,
                                extra_cbs=[named])
    assert record is not None and (named.n_train, named.n_valid) == (500, 100)


def test_a_held_out_count_the_source_cannot_spare_stops_the_data_stage(tmp_path):
    ws = W.clone(tmp_path / "ws")
    W.write_params(ws, W.smoke_params(pretrain={"kinds": KINDS, "early_stopping": {"n": 500, "robust_images": 10}}))
    rc, err = W.stage(ws, "data")
    assert rc == 2 and len(err) == 1
    assert "pretrain.early_stopping.n = 500" in err[0] and "synth_source" in err[0], err


def test_a_fraction_scales_the_held_out_source_images_with_the_data():
    """`make repro TIER="small trial" FRACTION=0.01` keeps 1 % of Tiny-ImageNet (1,000 images): the 1,000 held-out
    images of the small tier's early stopping shrink with it, as transfer.validation's do."""
    from repro import tiers

    cfg = {"pretrain": {"early_stopping": {"kinds": ["fast_adversarial"], "n": 1000, "robust_images": 1000}}}
    out = tiers.scale(cfg, 0.01)["pretrain"]["early_stopping"]
    assert (out["n"], out["robust_images"], out["kinds"]) == (10, 10, ["fast_adversarial"])
    assert cfg["pretrain"]["early_stopping"]["n"] == 1000  # input untouched
