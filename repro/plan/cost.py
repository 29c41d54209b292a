"""What a tier costs before it runs: ``python -m repro.plan cost [--tier paper] [--gpu-tflops 312]``.

Counts, per DVC stage and per experiment, the runs and the floating-point operations of their
training and attacks, then converts them into hours:

* FLOPs per image are counted by ``torch.utils.flop_counter`` on one batch of the tier's model at
  its image size: a training step (forward + backward), one attack iteration (forward + input
  gradient, no parameter gradients), a forward pass, and a linear-evaluation step (frozen backbone).
  A run costs images x epochs x (training step + attack steps x attack iteration); masked tickets
  compute dense convolutions, so a ticket costs what the dense network costs.
* Images come from the tier's data params (the synthetic generator's counts, or the published
  sizes of the public datasets below, capped by ``data.max_train``/``data.fraction``), times each
  run's data fraction.
* Evaluation counts the clean pass over the test and OoD sets, RA (PGD ``steps`` x ``restarts`` on
  ``n_robust`` images), the attack sanity checks (``sanity_images`` x (PGD + two PGD-5 + two APGD
  of ``sanity_strong_steps``)), the transfer attack, the AutoAttack RA of the runs that get it
  (:func:`aa_units`: ``aa_steps`` attack iterations for APGD-CE and per target class for APGD-T, the same
  plus one forward pass each for FAB-T, ``aa_queries`` forward passes for Square; priced as if every
  attacked image survived PGD-20 and every earlier member: an upper bound) and the Adv-Acc sweep; ``analysis`` the loss contours; ``segment`` its runs' training
  iterations (whole epochs) and the test-split passes after each epoch, on the segmentation network.
  Not counted: data generation and decoding, python/fastai start-up, validation passes (except the held-out PGD
  accuracy of early-stopped pretraining, ``pretrain.early_stopping``, counted as evaluation).
* Robust Tickets' per-task ε (``pretrain.eps_grid``): ``pretrain_eps`` trains one PGD model per further radius
  (a published kind: fetches), ``select_eps`` fine-tunes every candidate's dense model per (task, regime) on the
  training images minus the held-out ones; the RT runs of EPS_KIND are priced as if each (task, regime) chose a
  grid model of its own (``repro.plan.rt_source``'s placeholder), so their tickets, IMP runs and transfers never
  share DW's: an upper bound.
* GPU-hours at ``--gpu-tflops`` (default 312: the dense bf16 tensor-core peak of an NVIDIA A100,
  the most common datacenter GPU in the papers' time; its dense fp32 peak is 19.5). A peak is a
  lower bound on hours: ResNet training reaches a fraction of it.
* CPU-hours for this machine from the achieved GFLOP/s that ``make bench`` measured (the ``flops``
  section of ``bench/results/*.json``): training FLOPs at the standard-step rate, attack FLOPs at
  the adversarial-step rate, of the tier's own model when the bench measured it (params.yaml's
  model, one thread per worker, x the workers), else of the benched model closest to it.
  Each stage adds its start-up (a fresh Python importing a training stage, measured by the same
  bench section); DVC's own bookkeeping and per-run set-up are not in it.

The tier's params are merged as ``repro.tiers`` would merge them, without writing params.yaml.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Params, from_dict
from ..config.constants import EPS_KIND
from .eps import grid_models, selection_runs, selection_validation
from .grid import (aa_graded, adv_acc_run, experiment_runs, imp_runs, level_name, runs_for_level, seg_runs,
                   study_baselines, tickets_for_level)

#: default device throughput (TFLOP/s) and its name
GPU_TFLOPS = 312.0
GPU_NAME = "NVIDIA A100 (bf16 dense peak)"
#: segmentation tasks (stage `segment`): (train, test) images; VOC 2012's train / val segmentation lists
SEG_SIZES = {"voc2012": (1_464, 1_449)}
#: published split sizes and classes of the public datasets of the tiers: (train, test, classes)
PUBLIC_SIZES = {
    "cifar10": (50_000, 10_000, 10),
    "cifar100": (50_000, 10_000, 100),
    "svhn": (73_257, 26_032, 10),
    "tiny_imagenet": (100_000, 10_000, 200),
    "imagenet": (1_281_167, 50_000, 1000),
    # Double-Win Fig. A10
    "cub200": (5_994, 5_794, 200),
    "visda17": (152_397, 55_388, 12),        # train: the synthetic split; test: the real validation split
    # Robust Tickets Fig. 9 (splits as repro/data/public/'s TORCHVISION_SETS read them)
    "aircraft": (6_667, 3_333, 100),         # trainval / test
    "pets": (3_680, 3_669, 37),              # trainval / test
    "flowers": (2_040, 6_149, 102),          # train + val / test
    "cars": (8_144, 8_041, 196),
    "food": (75_750, 25_250, 101),
    "dtd": (3_760, 1_880, 47),               # partition 1: train + val / test
    "sun397": (50 * 397, 50 * 397, 397),     # first 50 / next 50 per class
    "caltech101": (30 * 101, 8_677 - 30 * 101, 101),   # first 30 per class / the rest
    "caltech256": (60 * 257, 30_607 - 60 * 257, 257),  # first 60 per class / the rest
    # Birdsnap 1.1 lists 49,829 images of 500 species, 2,443 of them its test set (test_images.txt); a copy fetched
    # with get_birdsnap.py holds fewer (Flickr no longer serves every image): an upper bound
    "birdsnap": (49_829 - 2_443, 2_443, 500),
}
BENCH_RESULTS = Path("bench") / "results"


# ------------------------------------------------------------------------------ images
@dataclass(frozen=True)
class TaskSize:
    n_train: int
    n_test: int
    classes: int


def task_size(p: Params, name: str) -> TaskSize:
    """Images and classes of a task under the tier's data params."""
    d = p.data
    syn = d.synthetic
    if name == d.source and name.startswith("synth"):
        return TaskSize(syn.n_train_source, syn.n_test_source, syn.source_classes)
    if name == d.ood and name.startswith("synth"):
        return TaskSize(syn.n_ood, syn.n_ood, syn.downstream_classes)
    if name.startswith("synth"):
        return TaskSize(syn.n_train_downstream, syn.n_test_downstream, syn.downstream_classes)
    if name not in PUBLIC_SIZES:
        raise ValueError(f"cost: no known size for dataset {name!r}; known: synthetic tasks, {', '.join(PUBLIC_SIZES)}")
    n_tr, n_te, c = PUBLIC_SIZES[name]
    cap_tr, cap_te = d.caps(name)
    n_tr = min(n_tr, cap_tr * c) if cap_tr else n_tr
    n_te = min(n_te, cap_te * c) if cap_te else n_te
    f = getattr(d, "fraction", 1.0)
    return TaskSize(max(c, round(n_tr * f)), max(c, round(n_te * f)), c)


def seg_size(p: Params) -> TaskSize:
    """Images and classes of the segmentation task (stage `segment`) under the tier's params."""
    from ..data.segmentation import SYNTH_SEG_CLASSES, VOC_CLASSES

    s = p.segment
    synth = s.task == "synth_seg"
    n_tr, n_te = (s.n_train, s.n_test) if synth else SEG_SIZES[s.task]
    return TaskSize(min(n_tr, s.max_train or n_tr), min(n_te, s.max_test or n_te),
                    SYNTH_SEG_CLASSES if synth else len(VOC_CLASSES))


# ------------------------------------------------------------------------------- FLOPs
@dataclass(frozen=True)
class StepFlops:
    """FLOPs per image of one step of each kind."""
    train: float    # forward + backward (parameter and activation gradients)
    attack: float   # one attack iteration: forward + gradient w.r.t. the input only
    forward: float  # inference
    linear: float   # linear evaluation: frozen backbone, the head trains


def count_flops(model: torch.nn.Module, size: int, batch: int = 2) -> StepFlops:
    """torch's flop counter on one batch of ``batch`` images of ``size`` px (then per image)."""
    from torch.utils.flop_counter import FlopCounterMode

    from ..attacks import no_param_grad
    from ..models import freeze_backbone

    ce = torch.nn.functional.cross_entropy
    x = torch.rand(batch, 3, size, size)
    y = torch.zeros(batch, dtype=torch.long)

    def counted(fn) -> float:
        with FlopCounterMode(display=False) as fc:
            fn()
        return fc.get_total_flops() / batch

    model.train()
    train = counted(lambda: ce(model(x), y).backward())
    with no_param_grad(model):
        attack = counted(lambda: ce(model(x.clone().requires_grad_(True)), y).backward())
    model.eval()
    with torch.no_grad():
        forward = counted(lambda: model(x))
    model.train()
    model.zero_grad(set_to_none=True)
    freeze_backbone(model)
    linear = counted(lambda: ce(model(x), y).backward())
    return StepFlops(train, attack, forward, linear)


@functools.lru_cache(maxsize=None)
def _model_flops(model_key: str, classes: int, size: int) -> StepFlops:
    from ..config import ModelParams
    from ..models import model_from_params

    mp = from_dict(ModelParams, json.loads(model_key))
    with torch.device("meta"):  # shapes only: the same counts as real tensors, without the arithmetic
        return count_flops(model_from_params(mp, classes), size)


@functools.lru_cache(maxsize=None)
def _seg_flops(model_key: str, classes: int, size: int, head: str) -> tuple[float, float]:
    """(training step, forward) FLOPs per image of the segmentation network (repro.segmentation): the tier's
    backbone under ``head``, per-pixel cross-entropy, at ``size`` px."""
    from torch.utils.flop_counter import FlopCounterMode

    from ..config import ModelParams
    from ..models import model_from_params
    from ..segmentation import SegmentationNet

    mp = from_dict(ModelParams, json.loads(model_key))
    with torch.device("meta"):
        net = SegmentationNet(model_from_params(mp, classes), classes, head)
        x, y = torch.rand(2, 3, size, size), torch.zeros(2, size, size, dtype=torch.long)
        with FlopCounterMode(display=False) as fc:
            torch.nn.functional.cross_entropy(net.train()(x), y).backward()
        train = fc.get_total_flops() / 2
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            net.eval()(x)
    return train, fc.get_total_flops() / 2


def segment_cost(p: Params) -> Cost:
    """Stage `segment`: every run trains whole epochs until ``iterations`` batches are done (as
    ``repro.segmentation.train_segmentation`` does), validating on the test split after each epoch, then
    evaluates once more. No run (``segment.pairs: []``): nothing, without sizing the task or the network."""
    from ..config import to_dict

    from ..segmentation import epoch_plan

    runs = len(seg_runs(p))
    if not runs:
        return Cost()
    s, t = p.segment, seg_size(p)
    train, forward = _seg_flops(json.dumps(to_dict(p.model), sort_keys=True), t.classes, s.image_size or p.data.image_size,
                                s.head)
    batches, epochs = epoch_plan(t.n_train, s.batch_size, s.iterations)
    images = epochs * min(batches * s.batch_size, t.n_train)
    return Cost(runs, train=runs * images * train, eval=runs * (epochs + 1) * t.n_test * forward)


def flops_for(p: Params, classes: int) -> StepFlops:
    from ..config import to_dict

    return _model_flops(json.dumps(to_dict(p.model), sort_keys=True), classes, p.data.image_size)


# ------------------------------------------------------------------------------ ledger
@dataclass
class Cost:
    """Runs and FLOPs of a group of work: training steps, training-time attack iterations, and
    evaluation (clean passes and evaluation attacks), kept apart because they run at different
    rates (batch sizes, BN folded for evaluation)."""
    runs: int = 0
    train: float = 0.0
    attack: float = 0.0
    eval: float = 0.0

    def add(self, other: "Cost") -> "Cost":
        self.runs += other.runs
        self.train += other.train
        self.attack += other.attack
        self.eval += other.eval
        return self

    @property
    def flops(self) -> float:
        return self.train + self.attack + self.eval


def training(images: int, epochs: int, step: float, attack_steps: int, f: StepFlops) -> Cost:
    """One training run: ``images`` x ``epochs`` x (one step + ``attack_steps`` attack iterations)."""
    return Cost(1, images * epochs * step, images * epochs * attack_steps * f.attack)


def task_sizes(p: Params) -> dict[str, TaskSize]:
    return {t: task_size(p, t) for t in {p.data.source, p.data.ood, *p.data.downstream}}


def imp_cost(p: Params, run: tuple, sizes: dict) -> Cost:
    """One IMP run (kind, retraining, task or None = the source, source model): ``max_rounds`` retrainings; a
    downstream run (DS) retrains with ``tickets.imp.retrain_ds`` on the task's images minus the held-out ones."""
    _kind, retrain, task = run[:3]
    ip = p.tickets.imp
    v = p.transfer.validation
    t = sizes[task] if task else sizes[p.data.source]
    f = flops_for(p, t.classes)
    cfg = ip.retrain_ds if task else ip.retrain
    n = t.n_train - (v.count(task, t.n_train) if task else 0)
    c = training(n, cfg.epochs, f.train, ip.attack.steps if retrain == "adversarial" else 0, f)
    return Cost(1, c.train * ip.max_rounds, c.attack * ip.max_rounds)


def run_flops(p: Params, what: str):
    """``item -> estimated FLOPs`` of one run of a stage (``what``: transfer, evaluate, imp): the planner's count,
    which ``repro.base.cpus.parallel_map`` uses to start the longest runs first."""
    sizes = task_sizes(p)
    cost = {"transfer": transfer_cost, "evaluate": evaluate_cost, "imp": imp_cost}[what]
    return lambda item: cost(p, item, sizes).flops


def transfer_cost(p: Params, spec, sizes: dict, held_out: int = 0) -> Cost:
    """One transfer run; ``held_out``: training images held out (not trained on)."""
    t = sizes[spec.task]
    f = flops_for(p, t.classes)
    n = max(1, round((t.n_train - held_out) * spec.fraction))
    cfg = transfer_cfg(p, spec)
    steps = p.transfer.attack.steps if spec.regime == "adversarial" else 0
    # linear evaluation trains the head over a frozen backbone; LMP's scores need the full backward
    step = f.linear if spec.regime == "linear" else f.train
    return training(n, cfg.epochs, step, steps, f)


def aa_units(e) -> tuple[int, int]:
    """(attack iterations, forward passes) per attacked image of ``ra_aa`` with the members of ``e``
    (``EvalParams``), as if the image survived every member; the final classification counts as one attack
    iteration, as every other classification of attacked images here does."""
    iters = fwd = 0
    for m in e.aa_members:
        runs = e.aa_target_classes if m in ("apgd-t", "fab-t") else 1
        if m == "square":
            fwd += e.aa_queries
        else:
            iters += e.aa_steps * runs
            fwd += e.aa_steps * runs if m == "fab-t" else 0  # FAB checks each new point with a forward pass
    return iters + 1, fwd


def transfer_cfg(p: Params, spec):
    """The recipe a run trains with: its experiment's named one, the task's own, or the regime's (as transfer does)."""
    return p.tickets.lmp.train if spec.regime == "mask" else p.transfer.recipe(spec.regime, spec.task, spec.recipe)


def evaluate_cost(p: Params, spec, sizes: dict) -> Cost:
    e = p.evaluation
    t = sizes[spec.task]
    f = flops_for(p, t.classes)
    n_rob = t.n_test if e.n_robust <= 0 else min(e.n_robust, t.n_test)
    a = e.attack
    clean = (t.n_test + sizes[p.data.ood].n_test) * f.forward
    iters = n_rob * a.steps * a.restarts + n_rob * (1 + a.restarts)  # RA: attack + its classification
    k = min(getattr(e, "sanity_images", 0), n_rob)
    if k:
        iters += k * (a.steps + 2 * 5 + 2 * getattr(e, "sanity_strong_steps", 10) + 4)
    if spec.regime == "adversarial" and spec.task == p.transfer_attack_task and e.transfer_attack:
        iters += n_rob * (a.steps + 1)  # examples from the reference model, then classified
    if aa_graded(p, spec):  # ra_aa: each member on the images PGD-20 left correct; priced as if all were (a bound)
        aa_iters, aa_fwd = aa_units(e)
        iters += n_rob * aa_iters
        clean += n_rob * aa_fwd * f.forward
    if e.adv_acc_eps and adv_acc_run(p, spec):
        iters += n_rob * len(e.adv_acc_attacked()) * (a.steps + 1)
    return Cost(1, eval=clean + iters * f.attack)


def stage_costs(p: Params) -> dict[str, Cost]:
    """{DVC stage: Cost} for the whole pipeline of ``p``."""
    sizes = task_sizes(p)
    src = sizes[p.data.source]
    out: dict[str, Cost] = {"data": Cost(runs=len(sizes))}
    # pretraining of every kind not served by a published checkpoint
    pt = p.pretrain
    steps = {"standard": 0, "fast_adversarial": 1, "pgd_adversarial": pt.pgd.steps, "random_smoothing": 0}
    f = flops_for(p, src.classes)

    def pretraining(kind: str) -> Cost:
        es = pt.early_stopping
        n_val = es.n if es.applies(kind) else 0
        c = training(src.n_train - n_val, pt.train.epochs, f.train, steps[kind], f)
        if n_val:  # held-out SA on n_val, PGD-`steps` accuracy on robust_images, after every epoch
            c.eval += pt.train.epochs * (n_val * f.forward + es.robust_images * (es.steps + 1) * f.attack)
        return c

    for kind in pt.kinds:
        out[f"pretrain@{kind}"] = Cost(1) if kind in (pt.published or {}) else pretraining(kind)
    grid = Cost()
    for _ in grid_models(p):
        grid.add(Cost(1) if EPS_KIND in (pt.published or {}) else pretraining(EPS_KIND))
    out["pretrain_eps"] = grid
    sel, sv = Cost(), selection_validation(p)
    for spec in selection_runs(p):
        t = sizes[spec.task]
        n_val = sv.count(spec.task, t.n_train)
        sel.add(transfer_cost(p, spec, sizes, held_out=n_val))
        sel.eval += transfer_cfg(p, spec).epochs * n_val * flops_for(p, t.classes).forward  # held-out SA per epoch
    out["select_eps"] = sel
    imp = Cost()
    for run in imp_runs(p):
        imp.add(imp_cost(p, run, sizes))
    out["imp"] = imp
    ref = sizes[p.transfer_attack_task]
    f = flops_for(p, ref.classes)
    out["reference"] = (training(ref.n_train, p.evaluation.reference.epochs, f.train, p.transfer.attack.steps, f)
                        if p.evaluation.transfer_attack else Cost())
    for lv in [0.0, *p.sweep.sparsities]:
        name = level_name(lv)
        runs = runs_for_level(p, lv)
        if lv:
            out[f"tickets@{name}"] = Cost(runs=len(tickets_for_level(p, lv)))
        tr, ev = Cost(), Cost()
        for spec in runs:
            tr.add(transfer_cost(p, spec, sizes))
            ev.add(evaluate_cost(p, spec, sizes))
        out["transfer_dense" if lv == 0 else f"transfer@{name}"] = tr
        out["evaluate_dense" if lv == 0 else f"evaluate@{name}"] = ev
    # analysis: loss contours (clean and PGD) over the trajectory plane of the trajectory runs
    e = p.evaluation
    lv = e.trajectory_level
    traj = [s for s in runs_for_level(p, lv) if s.regime == "adversarial" and s.seed == p.transfer.seeds[0]
            and s.task == p.data.downstream[0]]
    an = Cost()
    for s in traj:
        t = sizes[s.task]
        f = flops_for(p, t.classes)
        n = min(e.landscape_images, t.n_test)
        an.add(Cost(1, eval=2 * e.landscape_points ** 2 * n * f.forward + n * e.attack.steps * f.attack))
    out["analysis"] = an
    # study: the ticket at `sparsity` fine-tuned and evaluated for every kind (dense baselines come from evaluate_dense)
    st = Cost()
    for s in study_runs(p):
        st.add(transfer_cost(p, s, sizes)).add(evaluate_cost(p, s, sizes))
        st.runs -= 1  # one run, two costs
    out["study"] = st
    out["segment"] = segment_cost(p)
    out["summary"] = Cost(runs=1)
    out["figures"] = Cost(runs=1)
    return out


def study_runs(p: Params) -> list:
    """The study stage's runs: its baselines' grid with the study's ticket method instead of dense."""
    from dataclasses import replace

    return sorted(replace(s, method=p.study.method) for s in study_baselines(p))


def experiment_costs(p: Params) -> dict[str, Cost]:
    """{experiment: Cost of the transfer and evaluation runs of its grid over every level}; a run shared by
    several experiments counts in each (the stage table counts it once)."""
    sizes = task_sizes(p)
    out = {}
    for name, e in p.experiments.items():
        c = Cost()
        for lv in [0.0, *p.sweep.sparsities]:
            if not e.runs_at(lv):  # the experiment's own levels
                continue
            for spec in sorted(experiment_runs(p, e, lv, name)):
                c.add(transfer_cost(p, spec, sizes))
                c.add(evaluate_cost(p, spec, sizes))
                c.runs -= 1
        out[name] = c
    return out
