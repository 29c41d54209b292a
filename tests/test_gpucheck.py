"""`make gpu-check` (issue 25, point 4): on a machine without CUDA one line and exit 0; its checks and
measurements, run on the CPU with the same code."""
from __future__ import annotations

import pytest
import torch

from repro import gpucheck as G


def test_without_cuda_one_line_and_exit_0(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert G.main([]) == 0
    out = capsys.readouterr()
    lines = [ln for ln in out.out.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gpu-check: no CUDA device here") and not out.err.strip()


def test_bad_image_count_is_one_line_before_any_work(capsys):
    assert G.main(["--device", "cpu", "--images", "3"]) == 2
    assert capsys.readouterr().err.strip() == "gpu-check: error: --images 3 is too few; allowed: at least 8"


def test_a_network_through_the_stages_code_passes_every_check_and_is_timed():
    rec = G.check_network(G.Bench("cifar_resnet18", 32, 128, "cifar"), torch.device("cpu"), images=16, width_divisor=16)
    assert rec["problems"] == []
    assert all(rec[k] > 0 for k in ("standard_img_s", "adversarial_img_s", "pgd20_eval_img_s"))
    f = rec["flops_per_image"]
    assert f["train"] > f["forward"] > 0 and f["attack_step"] > f["forward"]
    t = rec["achieved_tflops"]  # rate x FLOPs per image of each step
    assert t["train"] == pytest.approx(f["train"] * rec["standard_img_s"] / 1e12, rel=0.01, abs=1e-3)


def test_the_fp32_check_catches_an_attack_left_in_autocast():
    from repro import metrics

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3))
    x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    dev = torch.device("cpu")
    assert G.fp32_problems(lambda: metrics.robust_accuracy(net, [(x, y)], steps=2, progress=False, seed=0), dev) == []
    bad = G.fp32_problems(lambda: net(x), dev)  # a forward pass that stays in the enclosing autocast
    assert bad and all("reduced precision" in b for b in bad)


def test_ddp_step_over_two_processes_matches_one_process():
    assert G.ddp_step(2, "gloo") == []


def test_tier_hours_at_measured_rates_divide_each_kind_of_work_by_its_rate():
    from repro.plan.hours import gpu_hours, params_for, report

    rates = {"train": 10.0, "adversarial": 5.0, "eval": 2.0}  # TFLOP/s
    rows = G.tier_hours({"cifar_resnet18": {"achieved_tflops": rates}}, 312.0)
    t = report(params_for(["small"]), "small").total
    assert rows["small"]["planner_gpu_hours"] == round(gpu_hours(t, 312.0), 1)
    want = (t.train / 10 + t.attack / 5 + t.eval / 2) / 1e12 / 3600
    assert rows["small"]["measured_gpu_hours"] == round(want, 1)
    assert "measured_gpu_hours" not in rows["paper"]  # no ResNet-50 rates given
