"""The cost planner (issue 18, point 4): ``python -m repro.plan cost [--tier T]``.

Checked by value on a tiny grid: run counts equal the grid's (counted by hand here), FLOPs equal
torch's flop counter on the model times images x epochs x attack steps, CPU-hours divide them by
the bench's measured rates; a tier's params are merged without writing params.yaml.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from repro.plan import cost, hours
from repro.config import Params, to_dict
from repro.models import model_from_params
from repro.plan import RunSpec, runs_for_level
from repro.tiers import combine
from repro.registries import params_from

ROOT = Path(__file__).resolve().parents[1]


def tiny_params() -> Params:
    """The smoke tier with a hand-countable grid: 2 (kind, method) pairs x 1 task x 2 regimes x 2 seeds."""
    raw = combine(["smoke"], ROOT / "params.yaml")
    raw["pretrain"]["kinds"] = ["standard", "pgd_adversarial"]
    raw["transfer"]["seeds"] = [0, 1]
    raw["study"] = {"method": "omp", "tasks": None}
    raw["experiments"] = {"grid": {"pairs": [["standard", "omp"], ["pgd_adversarial", "omp"]],
                                   "regimes": ["standard", "adversarial"], "tasks": ["synth_near"]}}
    raw["evaluation"]["transfer_attack_task"] = "synth_near"
    raw["evaluation"]["trajectory_level"] = raw["sweep"]["sparsities"][0]
    return params_from(raw)


def real_flops(p: Params, classes: int) -> cost.StepFlops:
    torch.manual_seed(0)
    return cost.count_flops(model_from_params(p.model, classes), p.data.image_size)


def test_counts_equal_the_grid():
    p = tiny_params()
    st = cost.stage_costs(p)
    (lv,) = p.sweep.sparsities
    assert st["transfer@" + f"s{lv}"].runs == 2 * 1 * 2 * 2          # pairs x tasks x regimes x seeds
    # dense: 2 kinds x 2 regimes x 2 seeds on synth_near; the study's baselines are the same runs
    assert st["transfer_dense"].runs == 2 * 2 * 2
    assert st["evaluate_dense"].runs == st["transfer_dense"].runs
    assert st[f"tickets@s{lv}"].runs == 2                             # one OMP ticket per kind
    assert st["imp"].runs == 0                                         # no IMP in the grid or the study
    assert st["study"].runs == 2 * 1 * 2 * 2                           # kinds x study tasks x regimes x seeds
    assert st["analysis"].runs == 2                                    # adversarial, first seed, first task
    assert cost.experiment_costs(p)["grid"].runs == 8 + 8


def test_flops_equal_the_counter_times_the_multipliers():
    p = tiny_params()
    syn = p.data.synthetic
    st = cost.stage_costs(p)
    f_src = real_flops(p, syn.source_classes)
    f_ds = real_flops(p, syn.downstream_classes)
    assert cost.flops_for(p, syn.source_classes) == f_src             # the meta-device count is the real one
    pt = p.pretrain
    assert st["pretrain@standard"].train == pytest.approx(syn.n_train_source * pt.train.epochs * f_src.train)
    assert st["pretrain@standard"].attack == 0
    assert st["pretrain@pgd_adversarial"].attack == pytest.approx(
        syn.n_train_source * pt.train.epochs * pt.pgd.steps * f_src.attack)
    # one level: 4 standard and 4 adversarial runs on synth_near at fraction 1
    tp, n = p.transfer, syn.n_train_downstream
    lv = f"transfer@s{p.sweep.sparsities[0]}"
    assert st[lv].train == pytest.approx(4 * n * tp.standard.epochs * f_ds.train + 4 * n * tp.adversarial.epochs * f_ds.train)
    assert st[lv].attack == pytest.approx(4 * n * tp.adversarial.epochs * tp.attack.steps * f_ds.attack)
    ref = p.evaluation.reference
    assert st["reference"].train == pytest.approx(n * ref.epochs * f_ds.train)
    assert st["reference"].attack == pytest.approx(n * ref.epochs * tp.attack.steps * f_ds.attack)
    # evaluation of a standard run: clean passes over test + OoD, RA and sanity iterations
    e, a = p.evaluation, p.evaluation.attack
    n_rob = min(e.n_robust, syn.n_test_downstream)
    k = min(e.sanity_images, n_rob)
    spec = next(s for s in runs_for_level(p, 0.0) if s.regime == "standard")
    sizes = {t: cost.task_size(p, t) for t in {p.data.source, p.data.ood, *p.data.downstream}}
    iters = n_rob * a.steps * a.restarts + n_rob * (1 + a.restarts) + k * (a.steps + 10 + 2 * e.sanity_strong_steps + 4)
    clean = (syn.n_test_downstream + sizes[p.data.ood].n_test) * f_ds.forward
    assert cost.evaluate_cost(p, spec, sizes).eval == pytest.approx(clean + iters * f_ds.attack)
    # an adversarial run adds the transfer attack (PGD from the reference model, then classified) and ra_aa:
    # APGD-CE, then APGD-T per target class, priced as if every attacked image survived PGD-20
    assert e.aa_members == ("apgd-ce", "apgd-t")
    adv = next(s for s in runs_for_level(p, 0.0) if s.regime == "adversarial")
    extra = n_rob * (a.steps + 1) + n_rob * (e.aa_steps * (1 + e.aa_target_classes) + 1)
    assert cost.evaluate_cost(p, adv, sizes).eval == pytest.approx(clean + (iters + extra) * f_ds.attack)


def test_fractions_and_linear_evaluation():
    p = tiny_params()
    sizes = {t: cost.task_size(p, t) for t in {p.data.source, p.data.ood, *p.data.downstream}}
    f = real_flops(p, p.data.synthetic.downstream_classes)
    n = p.data.synthetic.n_train_downstream
    spec = RunSpec("standard", "omp", "synth_near", "linear", 0.5, 0)
    c = cost.transfer_cost(p, spec, sizes)
    assert c.train == pytest.approx(round(n * 0.5) * p.transfer.linear.epochs * f.linear) and c.attack == 0
    assert f.linear < f.train  # the frozen backbone computes no weight gradients


def test_public_sizes_and_caps():
    raw = combine(["small"], ROOT / "params.yaml")
    raw["data"]["max_train"] = 100
    p = params_from(raw)
    assert cost.task_size(p, "cifar100") == cost.TaskSize(100 * 100, 10_000, 100)
    assert cost.task_size(p, "svhn").n_train == 1000
    with pytest.raises(ValueError, match="no known size for dataset 'nope'"):
        cost.task_size(p, "nope")


def test_cpu_hours_from_the_bench_rates(tmp_path):
    p = tiny_params()
    res = {"when": "2099-01-01T00:00:00Z",
           "cost": {"model": json.loads(json.dumps(to_dict(p.model))),
                    "image_size": p.data.image_size, "workers": 2, "standard": {"gflops_per_thread": 2.0},
                    "adversarial": {"gflops_per_thread": 1.0}, "evaluation": {"gflops_per_thread": 4.0}}}
    (tmp_path / "m.json").write_text(json.dumps(res))
    r = hours.report(p, "tiny", gpu_tflops=100, results=tmp_path)
    t = r.total
    assert r.cpu.hours(t) == pytest.approx((t.train / 4e9 + t.attack / 2e9 + t.eval / 8e9) / 3600)
    assert hours.gpu_hours(t, 100) == pytest.approx(t.flops / 1e14 / 3600)
    assert hours.bench_rate(params_from(combine(["small"], ROOT / "params.yaml")), tmp_path) is None
    with pytest.raises(ValueError, match="gpu-tflops"):
        hours.report(p, "tiny", gpu_tflops=0, results=tmp_path)


def test_cli_reads_a_tier_without_touching_params_yaml():
    before = (ROOT / "params.yaml").read_bytes()
    r = subprocess.run([sys.executable, "-m", "repro.plan", "cost", "--tier", "smoke", "--json"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["tier"] == "smoke" and out["runs"] == sum(s["runs"] for s in out["stages"].values())
    assert (ROOT / "params.yaml").read_bytes() == before
    with pytest.raises(SystemExit, match="unknown tier 'huge'"):
        hours.main(["--tier", "huge", "--params", str(ROOT / "params.yaml")])
    assert (ROOT / "params.yaml").read_bytes() == before


def test_segment_stage_is_priced_from_its_runs_and_iterations():
    """Stage `segment` (RT Fig. 7, DW Fig. A10's VOC panel): its runs x whole epochs of training until
    `iterations` batches are done, plus a pass over the test split after each epoch and a final one; FLOPs
    from torch's counter on the real segmentation network (not the meta-device count the planner uses)."""
    from torch.utils.flop_counter import FlopCounterMode

    from repro.segmentation import SegmentationNet

    raw = to_dict(tiny_params())
    raw["segment"]["pairs"] = [["standard", "omp"], ["pgd_adversarial", "omp"]]
    p = params_from(raw)
    s = p.segment
    assert (s.task, s.n_train, s.batch_size, s.iterations, s.n_test) == ("synth_seg", 40, 8, 10, 20)  # smoke tier
    c = cost.stage_costs(p)["segment"]
    assert c.runs == 2 + 2  # the two OMP tickets the grid draws, and each kind's dense backbone
    torch.manual_seed(0)
    net = SegmentationNet(model_from_params(p.model, 4), 4, s.head)
    x, y = torch.rand(2, 3, p.data.image_size, p.data.image_size), torch.zeros(2, p.data.image_size,
                                                                               p.data.image_size, dtype=torch.long)
    with FlopCounterMode(display=False) as fc:
        torch.nn.functional.cross_entropy(net.train()(x), y).backward()
    train = fc.get_total_flops() / 2
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net.eval()(x)
    forward = fc.get_total_flops() / 2
    # 40 images in batches of 8: 5 batches an epoch, 10 iterations = 2 epochs = 80 images; 3 passes over 20 test images
    assert c.train == pytest.approx(4 * 80 * train) and c.attack == 0
    assert c.eval == pytest.approx(4 * 3 * 20 * forward)
    raw["segment"].update(task="voc2012", max_train=None, max_test=100)
    assert cost.seg_size(params_from(raw)) == cost.TaskSize(1_464, 100, 21)
