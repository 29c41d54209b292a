"""Issue 26 point 5: the `small` tier segments VOC-format data at a reduced, named scale (RT Fig. 7) and reports its
domain gap as FID (RT Table II), as the `paper` tier does.

The tier's own `segment` settings (merged as `python -m repro.tiers use small` merges them) read a VOC 2012 folder
in the published layout (tests/voc_files.py) through the data stage's loader and train the tier's CIFAR ResNet-18
with the tier's head for a few of its iterations; the full run is RT's recipe over a tenth of its iterations.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import yaml

from helpers import _one_thread  # noqa: F401  (module-wide one thread)
from voc_files import VOID, voc_colormap, write_voc
from repro.data.segmentation import VOC_CLASSES, fit_square_mask, load_seg_task
from repro.registries import params_from
from repro.tiers import merge

ROOT = Path(__file__).resolve().parents[1]


def small():
    cfg = merge(yaml.safe_load((ROOT / "params.yaml").read_text()),
                yaml.safe_load((ROOT / "tiers" / "small.yaml").read_text()))
    return params_from(cfg)


def test_the_small_tier_runs_rts_voc_segmentation_at_a_named_reduced_scale_and_fid():
    p = small()
    s = p.segment
    assert (s.task, s.head, s.image_size) == ("voc2012", "deeplabv3", 96)
    # RT Sec. III-A's recipe, its 30k iterations cut to a tenth with the milestones at the same fractions
    assert (s.iterations, s.milestones, s.batch_size, s.momentum, s.weight_decay, s.gamma) == \
        (3000, (1800, 2200), 4, 0.9, 1e-4, 0.1)
    assert [m / s.iterations for m in s.milestones] == [18000 / 30000, 22000 / 30000]
    assert s.max_train is None and s.max_test is None  # every VOC train / val image
    assert set(s.pairs) == {("standard", "omp"), ("pgd_adversarial", "omp")} and s.levels == (0.7,)
    assert (p.evaluation.domain_gap, p.evaluation.fid_weights) == ("fid", "fid_inception_v3_2015_12_05")
    paper = params_from(merge(yaml.safe_load((ROOT / "params.yaml").read_text()),
                              yaml.safe_load((ROOT / "tiers" / "paper.yaml").read_text())))
    assert paper.segment.task == s.task and paper.evaluation.domain_gap == "fid"


def test_voc_files_are_in_the_published_format(tmp_path):
    from PIL import Image

    ref = write_voc(tmp_path, {"train": 2, "val": 1})
    base = tmp_path / "VOCdevkit" / "VOC2012"
    ids = (base / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    assert len(ids) == 2 and all(len(i) == 11 and i[4] == "_" for i in ids)
    with Image.open(base / "SegmentationClass" / f"{ids[0]}.png") as m:
        assert m.mode == "P" and m.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]  # background, aeroplane, bicycle
        assert m.getpalette()[3 * VOID:3 * VOID + 3] == voc_colormap()[3 * VOID:3 * VOID + 3] == [224, 224, 192]
        vals = set(np.unique(np.asarray(m)).tolist())
    assert VOID in vals and 0 in vals and vals - {0, VOID} <= set(range(1, 21))
    with Image.open(base / "JPEGImages" / f"{ids[0]}.jpg") as im:
        assert im.format == "JPEG" and im.mode == "RGB" and im.size == ref[ids[0]][1].shape[::-1]


def test_the_small_tier_reads_and_trains_on_voc_data(tmp_path):
    from repro.models import model_from_params, set_normalization
    from repro.segmentation import evaluate_segmentation, train_segmentation

    p = small()
    s = p.segment
    ref = write_voc(tmp_path, {"train": 6, "val": 3}, seed=1)
    size = s.image_size or p.data.image_size
    task = load_seg_task(s.task, tmp_path, size, s.max_train, s.max_test, False, p.seed, s.n_train, s.n_test)
    assert task.num_classes == len(VOC_CLASSES) == 21
    assert task.x_train.shape == (6, 96, 96, 3) and task.m_test.shape == (3, 96, 96)
    val_ids = (tmp_path / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt").read_text().split()
    assert np.array_equal(task.m_test[0], fit_square_mask(ref[val_ids[0]][1], 96))
    assert VOID in task.m_train  # VOC's void band survives as the ignored label
    backbone = set_normalization(model_from_params(p.model, 10), task.mean, task.std)
    short = dataclasses.replace(s, iterations=2, milestones=(1,))  # the tier's recipe, two of its steps
    learn = train_segmentation(task, backbone, short, head=s.head, seed=0, device="cpu")
    res = evaluate_segmentation(learn.model, task)
    assert 0.0 <= res["miou"] <= 1.0 and np.isfinite(res["pixel_acc"])
    with torch.no_grad():
        out = learn.model.eval()(torch.from_numpy(task.x_test[:1]).permute(0, 3, 1, 2).float() / 255)
    assert out.shape == (1, 21, 96, 96)
