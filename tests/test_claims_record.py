"""The per-run record the claims' noise model reads (issue 27, point 4): which test images a run got right
(clean, PGD-20, AutoAttack-grade, transfer attack; bit-packed), the bootstrap standard errors of NLL, ECE and OoD
AUROC over the test images, and the segment stage's bootstrap standard error of mIoU."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from repro.base.io import unpack_bits


def test_evaluate_records_per_image_bits_and_bootstrap_errors():
    from repro import metrics
    from repro.pipeline.evaluate import bootstrap_se, per_image_record

    torch.manual_seed(0)
    logits, y, ood = torch.randn(300, 10) * 2, torch.randint(0, 10, (300,)), torch.randn(300, 10)
    se = bootstrap_se(logits, y, ood, 15, seed=0)
    per = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    assert se["nll"] == pytest.approx(float(per.std() / 300 ** 0.5), rel=0.25)
    # OoD AUROC: Hanley & McNeil's (1982) standard error of an AUROC of n_in x n_out scores
    from repro.metrics import ood_auroc

    a, n1, n2 = ood_auroc(logits, ood), 300, 300
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    hm = ((a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n2 - 1) * (q2 - a * a)) / (n1 * n2)) ** 0.5
    assert se["ood_auroc"] == pytest.approx(hm, rel=0.25)
    assert 0 < se["ece"] < 0.05 and bootstrap_se(logits, y, ood, 15, seed=0) == se   # seeded: the same record
    ok = logits.argmax(1) == y
    rec = per_image_record(ok, ok[:100], ok[:100], ok[:100])
    assert set(rec) == {"sa", "ra", "ra_aa", "transfer_attack_acc"} and len(rec["sa"]["bits"]) == 52
    assert (unpack_bits(rec["sa"]) == ok.numpy()).all()
    # the transfer attack's per-image outcomes: the logits of the same attack transfer_attack_accuracy scores
    target = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))
    source = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))
    x, yy = torch.rand(40, 3, 8, 8), torch.randint(0, 10, (40,))
    loader = [(x[:20], yy[:20]), (x[20:], yy[20:])]
    acc = metrics.transfer_attack_accuracy(target, source, loader, progress=False, seed=0, steps=5)
    acc2, lg, lab = metrics.transfer_attack_accuracy(target, source, loader, progress=False, seed=0, steps=5,
                                                     return_logits=True)
    assert acc2 == acc == float((lg.argmax(1) == lab).float().mean()) and len(lab) == 40


def test_segmentation_records_a_bootstrap_error_of_miou():
    from repro.segmentation import miou, miou_bootstrap_se

    rng = np.random.default_rng(0)
    per_image = rng.integers(0, 50, size=(200, 9))
    se = miou_bootstrap_se(per_image, 3, seed=0)
    assert 0 < se < 0.1 and miou(per_image.sum(0).reshape(3, 3)) > 0
    # four times the images (each one four times): the sampling error halves
    assert miou_bootstrap_se(np.repeat(per_image, 4, axis=0), 3, seed=0) == pytest.approx(se / 2, rel=0.2)
    # identical images: every resample has the same confusion matrix, no sampling error
    assert miou_bootstrap_se(np.repeat(per_image[:1], 50, axis=0), 3, seed=0) == 0.0


def test_every_evaluated_run_records_its_images_consistently(tmp_path):
    """The evaluate stage on the smoke workspace (a standard, an adversarial and a mask run; the reference model for
    the transfer attack): each per-image record has one bit per scored image and its mean is the run's accuracy
    (SA over every test image, also for a run graded by the AutoAttack-grade ensemble, whose bookkeeping once
    overwrote the clean record with the attacked images'), and each run stores its bootstrap errors."""
    import json

    import reliability_ws as W

    ws = W.clone(tmp_path / "ws")
    for stage in (("reference",), ("transfer", "0.488"), ("evaluate", "0.488")):
        rc, err = W.stage(ws, *stage)
        assert rc == 0, err
    rows = [json.loads(f.read_text()) for f in sorted((ws / "runs/eval/s0.488").rglob("metrics.json"))]
    assert {r["regime"] for r in rows} >= {"standard", "adversarial"}
    seen = set()
    for r in rows:
        for key, rec in r["correct"].items():
            n = r["n_test"] if key == "sa" else r["n_robust"]
            bits = unpack_bits(rec)
            assert rec["n"] == bits.size == n, (r["regime"], key)
            assert bits.mean() == pytest.approx(r[key], abs=1e-6), (r["regime"], key)
            seen.add(key)
        assert set(r["se"]) == {"nll", "ece", "ood_auroc"} and all(v > 0 for v in r["se"].values())
    assert seen == {"sa", "ra", "ra_aa", "transfer_attack_acc"}
