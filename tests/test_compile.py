"""runtime.compile (auto | on | off): a compiled training run computes what the eager one computes.

torch.compile changes only which kernels run (inductor's fused C++ on the CPU), so losses and final
weights must agree with the eager run up to float rounding; the ticket's pruned weights stay exactly
zero (``MaskEnforcer`` multiplies the parameters in place after each step and the compiled code reads
them at every call); attacks get the same input gradients through the compiled model, and no
parameter gradient (``no_param_grad``). ``auto`` compiles only on CUDA and only runs whose eager
remainder, timed on their first batches, lasts at least ``runtime.COMPILE_MIN_SECONDS``.

The compiled run pays inductor's cold compile (tens of seconds on these 2 cores for the smallest
network; the on-disk cache of a later session makes it a few seconds), so the equivalence runs once
per module on the smallest ResNet (one stage, width 4, 8x8 images).
"""
from __future__ import annotations

import math

import pytest
import torch
from fastai.callback.core import Callback, CancelValidException
from fastai.data.core import DataLoaders
from torch.utils.data import TensorDataset

from conftest import tiny_model, toy_images
from repro.base import runtime
from repro.attacks import attack_from_config, no_param_grad
from repro.config import ConfigError, from_dict
from repro.config.params import RuntimeParams, load_params
from repro.tickets import draw_ticket
from repro.training import make_learner, train
from repro.config import TrainParams
from repro.training.learner import AutoCompile
from repro.registries import params_from

STEPS, BS = 3, 16


def _dls(seed: int = 0) -> DataLoaders:
    runtime.seed_everything(seed)  # fastai's shuffle draws its seed from python's `random`
    xt, yt = toy_images(STEPS * BS, size=8, seed=seed)
    xv, yv = toy_images(BS, size=8, seed=seed + 1)
    return DataLoaders.from_dsets(TensorDataset(xt, yt), TensorDataset(xv, yv), bs=BS, device="cpu")


class _Probe(Callback):
    """Every training batch's loss, no validation pass (the eval-mode graph would be one more cold compile;
    evaluation runs on the eager ``runtime.inference_model`` copy anyway), and after fit, still on the
    (compiled) training model: the final weights, then the input gradient an attack takes on a fixed batch
    (train-mode BN, parameters frozen by ``no_param_grad``, as ``AdversarialTraining``'s PGD does)."""

    order = 101

    def __init__(self):
        self.losses: list[float] = []

    def after_loss(self):
        if self.training:
            self.losses.append(float(self.learn.loss.detach()))

    def before_validate(self):
        raise CancelValidException()

    def after_fit(self):
        model = self.learn.model
        self.compiled = runtime.is_compiled(model)
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        x, y = toy_images(BS, size=8, seed=3)
        x = x.requires_grad_(True)
        with no_param_grad(model):
            (self.grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), y), x)
        self.param_grads = [p.grad for p in model.parameters()]
        self.requires_grad = [p.requires_grad for p in model.parameters()]


def _run(mode: str):
    model = tiny_model(depths=(1,), width=4)
    mask = draw_ticket("omp", model, 0.5)
    probe = _Probe()
    attack = attack_from_config("pgd", eps=8 / 255, alpha=2 / 255, steps=2, random_start=False)
    learn = train(_dls(), model, TrainParams(epochs=1, lr=0.05, schedule="constant", batch_size=BS), mask=mask,
                  attack=attack, attack_bn_mode="train", progress=False, extra_cbs=[probe], compile=mode)
    return learn, mask, probe


@pytest.fixture(scope="module")
def runs():
    return {mode: _run(mode) for mode in ("off", "on")}


def test_compiled_run_matches_eager(runs):
    """Same losses at every step and same final weights (PGD-2 adversarial training of a 50 % ticket)."""
    (_, mask, eager), (_, _, comp) = runs["off"], runs["on"]
    assert comp.compiled and not eager.compiled  # the compiled run really ran compiled
    assert len(eager.losses) == len(comp.losses) == STEPS
    assert all(math.isfinite(v) for v in eager.losses)
    assert comp.losses == pytest.approx(eager.losses, rel=1e-4, abs=1e-5)
    assert list(eager.state) == list(comp.state)  # nn.Module.compile keeps the names (checkpoints, masks)
    moved = 0
    start_model = tiny_model(depths=(1,), width=4)
    mask.apply(start_model)
    start = start_model.state_dict()
    for name, v in eager.state.items():
        if v.is_floating_point():
            torch.testing.assert_close(comp.state[name], v, rtol=1e-4, atol=1e-5, msg=name)
            moved += int(not torch.equal(v.cpu(), start[name]))
    assert moved > 0  # training changed the weights (the comparison is not of two untouched copies)
    for name, m in mask.items():  # the in-place re-masking reached the compiled model's parameters
        w = comp.state[name]
        assert bool((w[m.to(w.device) == 0] == 0).all()), name
        assert bool((w[m.to(w.device) != 0] != 0).any()), name


def test_compiled_model_gives_attacks_the_eager_input_gradient(runs):
    """An attack's gradient (w.r.t. the input, parameters frozen) through the compiled model equals the
    eager one; no parameter gradient is computed, and ``no_param_grad`` restores ``requires_grad``."""
    eager, comp = runs["off"][2], runs["on"][2]
    assert comp.grad.abs().sum() > 0
    torch.testing.assert_close(comp.grad, eager.grad, rtol=1e-3, atol=1e-6)
    assert all(g is None for g in comp.param_grads) and all(comp.requires_grad)


def test_train_returns_the_eager_module(runs):
    """The compiled run really compiled; ``train`` hands back the eager module (evaluation, saving)."""
    learn = runs["on"][0]
    assert not runtime.is_compiled(learn.model)
    assert not runtime.is_compiled(runs["off"][0].model)


@pytest.mark.parametrize("mode,dev,seconds,expected", [
    ("auto", "cpu", 1e9, False),                                   # never on the CPU
    ("auto", "cuda", runtime.COMPILE_MIN_SECONDS, True),           # a long CUDA run
    ("auto", "cuda", 0.999 * runtime.COMPILE_MIN_SECONDS, False),  # a short one
    ("on", "cpu", 0.0, True),
    ("off", "cuda", 1e9, False),
])
def test_auto_decides_by_device_and_run_length(mode, dev, seconds, expected):
    assert runtime.should_compile(mode, torch.device(dev), seconds) is expected


@pytest.mark.parametrize("threshold,expected", [(None, False), (0.0, True)])
def test_auto_compile_times_the_run_then_decides(monkeypatch, threshold, expected):
    """On CUDA, ``AutoCompile`` times the first batches eagerly and compiles when the rest of the run lasts at
    least the threshold: a run of seconds stays eager under the measured threshold (the embedded default's
    runs last seconds), and compiles under a zero threshold (compile_model recorded, not run: no compile cost)."""
    if threshold is not None:
        monkeypatch.setattr(runtime, "COMPILE_MIN_SECONDS", threshold)
    compiled = []
    monkeypatch.setattr(runtime, "compile_model", compiled.append)
    auto = AutoCompile(torch.device("cuda"))  # its CUDA synchronisation is skipped without a GPU
    cfg = TrainParams(epochs=2, lr=0.1, schedule="constant", batch_size=BS)
    learn = make_learner(_dls(), tiny_model(depths=(1,), width=4), cfg,
                         progress=False, compile="off", extra_cbs=[auto])
    learn.fit(2)
    assert 0 < auto.estimate < runtime.COMPILE_MIN_SECONDS or threshold == 0.0
    assert len(auto.times) == runtime.COMPILE_PROBE_BATCHES + 1
    assert auto.compiled is expected and compiled == ([learn.model] if expected else [])


def test_auto_never_compiles_on_this_cpu():
    """On the CPU ``auto`` adds no timing and never compiles, whatever the run's length."""
    cfg = TrainParams(epochs=10**6, lr=0.1, schedule="constant", batch_size=BS)
    learn = make_learner(_dls(), tiny_model(depths=(1,), width=4), cfg,
                         progress=False, compile="auto")
    assert not any(isinstance(cb, AutoCompile) for cb in learn.cbs)
    assert not runtime.is_compiled(learn.model)
    assert load_params("params.yaml").runtime.compile == "auto"


def test_bad_compile_value_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"^params: runtime\.compile: 'x' is not allowed; allowed: auto, on, off$"):
        params_from({"runtime": {"compile": "x"}})
    assert from_dict(RuntimeParams, {"compile": True}).compile == "on"  # YAML 1.1 reads a bare `on` as true
    assert from_dict(RuntimeParams, {"compile": False}).compile == "off"
    model = tiny_model(depths=(1,), width=4)
    with pytest.raises(ValueError, match=r"^runtime\.compile 'yes' is not allowed; allowed: auto, on, off$"):
        make_learner(_dls(), model, TrainParams(epochs=1, schedule="constant", batch_size=BS), progress=False,
                     compile="yes")
    assert not runtime.is_compiled(model)
