"""Segmentation transfer (RT Fig. 7, DW Fig. A10): the net, the metrics, RT's schedule, VOC's layout, training."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from repro.data import DataError, fit_square
from repro.data.segmentation import IGNORE, SegTask, fit_square_mask, load_seg_task
from repro.data.segmentation import make_seg_task
from repro.models import build_model, prunable_names
from repro.segmentation import (SegConfig, SegmentationNet, confusion, evaluate_segmentation, miou, pixel_accuracy,
                                train_segmentation)
from repro.tickets import omp_mask


@pytest.fixture
def one_thread():
    """Tiny networks do not gain from threads; two threads on a busy 2-core machine cost 10x."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_confusion_miou_and_pixel_accuracy_by_value():
    y = torch.tensor([[0, 0, 1, 1], [2, 2, IGNORE, 1]])
    p = torch.tensor([[0, 1, 1, 1], [2, 0, 0, 1]])
    c = confusion(p, y, 3)
    assert c.tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]  # the 255 pixel is not counted
    # IoU: class 0: 1 / (2 + 2 - 1) = 1/3; class 1: 3 / (3 + 4 - 3) = 3/4; class 2: 1 / (2 + 1 - 1) = 1/2
    assert miou(c) == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert pixel_accuracy(c) == pytest.approx(5 / 7)
    assert miou(confusion(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 2, dtype=torch.long), 5)) == 1.0


def test_rt_schedule_is_iteration_based():
    cfg = SegConfig()  # RT Sec. III: 30k iterations, batch 4, momentum 0.9, wd 1e-4, x0.1 at 18k and 22k
    assert (cfg.iterations, cfg.batch_size, cfg.momentum, cfg.weight_decay, cfg.milestones) == (
        30000, 4, 0.9, 1e-4, (18000, 22000))
    assert [cfg.lr_at(i) for i in (0, 17999, 18000, 21999, 22000, 29999)] == pytest.approx(
        [0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001])
    with pytest.raises(ValueError, match="milestones"):
        SegConfig(iterations=100, milestones=(150,))


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_segmentation_net_keeps_the_backbone_names_and_the_ticket_applies(arch, one_thread):
    net = build_model(arch, 10)
    mask = omp_mask(net, 0.5)
    seg = SegmentationNet(net, 21, head="fcn")
    names = dict(seg.named_parameters())
    assert all(n in names for n in prunable_names(net)) and not any(n.startswith("fc.") for n in names)
    mask.apply(seg)  # the classification ticket, as is
    assert all(bool((names[k][mask[k] == 0] == 0).all()) for k in mask)
    if arch == "resnet50":  # torchvision's segmentation geometry: output stride 8 (dilated layer3/4)
        from torchvision.models import resnet50

        ref = dict(resnet50(replace_stride_with_dilation=[False, True, True]).named_modules())
        for n, m in seg.named_modules():
            if isinstance(m, torch.nn.Conv2d) and n in ref:
                assert (m.stride, m.dilation, m.padding) == (ref[n].stride, ref[n].dilation, ref[n].padding), n
    seg.eval()
    with torch.no_grad():
        assert seg(torch.rand(1, 3, 32, 32)).shape == (1, 21, 32, 32)


def test_synthetic_task_is_deterministic_and_labels_follow_textures():
    a, b = make_seg_task(size=16, n_train=20, n_test=10, seed=3), make_seg_task(size=16, n_train=20, n_test=10, seed=3)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.m_test, b.m_test)
    assert a.num_classes == 4 and set(np.unique(a.m_train)) == {0, 1, 2, 3}
    assert not np.array_equal(a.x_train, make_seg_task(size=16, n_train=20, n_test=10, seed=4).x_train)


def test_training_keeps_pruned_weights_zero_and_beats_a_constant_predictor(one_thread):
    torch.manual_seed(0)
    task = make_seg_task(size=16, n_train=300, n_test=100)
    net = build_model("cifar_resnet", 10, depths=(1, 1, 1), width=8)
    mask = omp_mask(net, 0.7)
    learn = train_segmentation(task, net, SegConfig(iterations=120, lr=0.05, batch_size=16, milestones=(80,)),
                               mask=mask, seed=0, device="cpu")
    sched = next(cb for cb in learn.cbs if type(cb).__name__ == "IterationSchedule")
    assert sched.step == 120  # exactly the configured number of optimizer steps
    params = dict(learn.model.named_parameters())
    assert all(bool((params[k].detach()[mask[k] == 0] == 0).all()) for k in mask)
    res = evaluate_segmentation(learn.model, task)
    y = torch.from_numpy(task.m_test.astype(np.int64))
    best_constant = max(miou(confusion(torch.full_like(y, c), y, 4)) for c in range(4))
    assert res["miou"] > best_constant + 0.2, (res["miou"], best_constant)


def _voc(root: Path, names: dict[str, list[str]], rng) -> dict:
    """VOCdevkit/VOC2012/{JPEGImages/*.jpg, SegmentationClass/*.png (palette), ImageSets/Segmentation/*.txt}."""
    base = root / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / d).mkdir(parents=True, exist_ok=True)
    out = {}
    palette = [v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)]
    for split, ids in names.items():
        (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        for i in ids:
            img = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
            Image.fromarray(img).save(base / "JPEGImages" / f"{i}.jpg", quality=95)
            m = rng.integers(0, 21, (20, 30)).astype(np.uint8)
            m[0, :] = IGNORE
            pm = Image.fromarray(m, "P")
            pm.putpalette(palette)
            pm.save(base / "SegmentationClass" / f"{i}.png")
            with Image.open(base / "JPEGImages" / f"{i}.jpg") as im:
                out[i] = (np.asarray(im.convert("RGB")), m)
    return out


def test_voc2012_reads_the_published_layout_through_torchvision(tmp_path):
    ref = _voc(tmp_path, {"train": ["2007_000032", "2007_000039"], "val": ["2007_000033"]}, np.random.default_rng(0))
    t = load_seg_task("voc2012", tmp_path, 16)
    assert t.num_classes == 21 and t.x_train.shape == (2, 16, 16, 3) and t.m_test.shape == (1, 16, 16)
    img, m = ref["2007_000039"]
    assert np.array_equal(t.x_train[1], fit_square(img, 16)) and np.array_equal(t.m_train[1], fit_square_mask(m, 16))
    assert np.array_equal(t.m_test[0], fit_square_mask(ref["2007_000033"][1], 16))
    assert load_seg_task("voc2012", tmp_path, 16, max_train=1).x_train.shape[0] == 1
    with pytest.raises(DataError) as e:
        load_seg_task("voc2012", tmp_path / "none", 16)
    assert "ImageSets/Segmentation/train.txt" in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "VOCdevkit/VOC2012/SegmentationClass/2007_000033.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="2007_000033.png"):
        load_seg_task("voc2012", tmp_path, 16)


def test_seg_task_round_trips_and_rejects_bad_masks(tmp_path):
    t = make_seg_task(size=8, n_train=4, n_test=2)
    back = SegTask.load(t.save(tmp_path / "s.npz"))
    assert np.array_equal(back.m_train, t.m_train) and back.num_classes == 4
    bad = t.m_train.copy()
    bad[0, 0, 0] = 7
    with pytest.raises(DataError, match="mask value 7"):
        SegTask("x", t.x_train, bad, t.x_test, t.m_test, 4)


def test_segment_stage_without_pairs_runs_nothing_and_writes_its_outputs(tmp_path, monkeypatch):
    """segment.pairs: [] turns segmentation off: the stage needs no input (no task file, no pretrained model) and
    writes its outputs, an empty runs/segment and metrics/segment.json with no runs."""
    import json

    import yaml

    from repro.stages import segment as stage

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REPRO_THREADS", "1")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"segment": {"task": "voc2012", "pairs": []}}))
    assert stage.main() == 0
    assert json.loads((tmp_path / "metrics" / "segment.json").read_text()) == {"task": "voc2012", "head": "fcn",
                                                                               "runs": []}
    assert (tmp_path / "runs" / "segment").is_dir() and not any((tmp_path / "runs" / "segment").iterdir())
    assert not (tmp_path / "runs" / "data").exists()
