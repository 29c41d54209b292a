"""fastai training and the paper's callbacks (issue: core building blocks)."""
from __future__ import annotations

import json

import pytest
import torch
from fastai.callback.core import Callback

from repro.attacks import pgd
from repro.tickets.mask import Mask
from repro.training import AdversarialTraining, NonFiniteLossError, make_learner, train
from repro.config import TrainParams

from conftest import tiny_model, toy_dls, toy_images


def _random_mask(model, sparsity=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = Mask.ones_like(model)
    for k in list(m.keys()):
        m[k] = torch.rand(m[k].shape, generator=g) >= sparsity
    return m


def test_mask_enforced_through_sgd_momentum_and_weight_decay():
    """Official code: a ticket's pruned weights stay 0 for the whole fine-tuning run.

    50 SGD steps with momentum 0.9 and weight decay 5e-4 (coupled L2, as torch.optim.SGD):
    every masked weight is exactly 0 afterwards and the unmasked ones moved.
    """
    dls = toy_dls(n_train=400, bs=8)
    model = tiny_model()
    mask = _random_mask(model)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    cfg = TrainParams(epochs=1, lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="constant", batch_size=8)
    learn = train(dls, model, cfg, mask=mask, progress=False)
    assert learn.train_iter == 50
    params = dict(model.named_parameters())
    for k, m in mask.items():
        w = params[k].detach()
        assert torch.count_nonzero(w[~m]) == 0, f"{k}: pruned weights drifted back"
        kept_moved = (w[m] != before[k][m]).float().mean()
        assert kept_moved > 0.9, f"{k}: unmasked weights did not train"


class _MaskGrads(Callback):
    """The textbook variant: also zero the pruned weights' gradients after every backward pass."""

    def __init__(self, mask):
        self.mask = mask

    def after_backward(self):
        params = dict(self.learn.model.named_parameters())
        with torch.no_grad():
            for k, m in self.mask.items():
                params[k].grad.mul_(m.to(params[k].grad.dtype))


def test_masking_weights_after_each_step_equals_masking_gradients_too():
    """MaskEnforcer re-masks weights after each SGD step and leaves gradients alone: with SGD
    (momentum, coupled weight decay) an element's update uses only its own gradient and state, so
    the trained weights are bit-identical to also masking the gradients (what it saves: one pass)."""
    cfg = TrainParams(epochs=1, lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="constant", batch_size=8)
    finals = []
    for extra in ((), "grads"):
        model = tiny_model()
        mask = _random_mask(model)
        cbs = [_MaskGrads(mask)] if extra else []
        train(toy_dls(n_train=160, bs=8), model, cfg, mask=mask, progress=False, extra_cbs=cbs)
        finals.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    for k in finals[0]:
        assert torch.equal(finals[0][k], finals[1][k]), k


def test_train_uses_torch_sgd_with_configured_hyperparameters(dls, model):
    """Official code: SGD, momentum 0.9, coupled weight decay (torch.optim.SGD)."""
    cfg = TrainParams(epochs=1, lr=0.01, momentum=0.9, weight_decay=5e-4, schedule="constant")
    learn = make_learner(dls, model, cfg, progress=False)
    learn.create_opt()
    opt = learn.opt.opt
    assert isinstance(opt, torch.optim.SGD)
    assert opt.param_groups[0]["momentum"] == 0.9
    assert opt.param_groups[0]["weight_decay"] == 5e-4


class _Recorder(Callback):
    """Records what the forward pass is about to see, right after the adversarial callback."""

    order = AdversarialTraining.order + 1

    def __init__(self):
        self.grads_clean, self.modes, self.changed = [], [], []

    def before_fit(self):
        self.x_seen = []

    def before_batch(self):
        if not self.training:
            return
        self.grads_clean.append(all(p.grad is None or not p.grad.any() for p in self.learn.model.parameters()))
        self.modes.append([m.training for m in self.learn.model.modules()])


@pytest.mark.parametrize("bn_mode", ["train", "eval"])
def test_adversarial_callback_leaves_no_param_grads_and_restores_mode(bn_mode):
    """The attack must only take gradients w.r.t. the input, and hand the model back
    to the forward pass in the train/eval mode it found (official: attack in train mode;
    torchattacks/MadryLab: eval mode; a parameter)."""
    dls = toy_dls(n_train=64, bs=16)
    model = tiny_model()
    seen_modes = []

    def attack(m, x, y):
        seen_modes.append(m.training)
        return pgd(m, x, y, eps=8 / 255, alpha=2 / 255, steps=3)

    rec = _Recorder()
    cfg = TrainParams(epochs=1, lr=0.01, schedule="constant")
    learn = make_learner(dls, model, cfg, attack=attack, attack_bn_mode=bn_mode, progress=False, extra_cbs=[rec])
    learn.fit(1)
    assert rec.grads_clean and all(rec.grads_clean)
    assert all(all(flags) for flags in rec.modes), "model not back in train mode for the forward pass"
    assert seen_modes and all(s == (bn_mode == "train") for s in seen_modes)


def test_adversarial_callback_replaces_training_batch_only():
    """Adversarial training attacks training batches; validation sees clean inputs."""
    dls = toy_dls(n_train=32, n_valid=32, bs=16)
    model = tiny_model()
    calls = {"n": 0}

    def attack(m, x, y):
        calls["n"] += 1
        return (x + 0.01).clamp(0, 1)

    learn = make_learner(dls, model, TrainParams(epochs=1, lr=0.01, schedule="constant"), attack=attack,
                         progress=False)
    learn.fit(1)
    assert calls["n"] == 2  # 32 training images / 16, no validation batches


def _pgd_acc(model, x, y, eps=8 / 255):
    model.eval()
    torch.manual_seed(0)
    x_adv = pgd(model, x, y, eps=eps, alpha=eps / 4, steps=10)
    with torch.no_grad():
        return (model(x_adv).argmax(1) == y).float().mean().item()


def test_adversarial_training_improves_robust_accuracy_end_to_end():
    """Adversarial training really works: PGD-trained beats standard-trained under PGD-10."""
    eps = 16 / 255
    accs, clean = {}, {}
    x_test, y_test = toy_images(256, seed=7)
    for kind in ("standard", "adversarial"):
        dls = toy_dls(n_train=512, bs=32, seed=3)
        model = tiny_model(seed=3)
        attack = None
        if kind == "adversarial":
            attack = lambda m, x, y: pgd(m, x, y, eps=eps, alpha=eps / 2, steps=3)  # noqa: E731
        train(dls, model, TrainParams(epochs=4, lr=0.05, schedule="cosine"), attack=attack,
              attack_bn_mode="train", progress=False)
        accs[kind] = _pgd_acc(model, x_test, y_test, eps)
        with torch.no_grad():
            clean[kind] = (model.eval()(x_test).argmax(1) == y_test).float().mean().item()
    # the adversarially trained model really learned the task (robustness is not an untrained model's)
    assert clean["adversarial"] > 0.6, clean
    assert accs["adversarial"] > accs["standard"] + 0.1, accs


def test_step_schedule_drops_lr_at_the_milestone_epochs():
    """Official CIFAR recipe: lr x0.1 at given epochs (MultiStepLR), checked per batch."""
    dls = toy_dls(n_train=64, n_valid=16, bs=16)
    cfg = TrainParams(epochs=4, lr=0.1, schedule="step", milestones=(2, 3), gamma=0.1)
    learn = train(dls, tiny_model(), cfg, progress=False)
    lrs = learn.recorder.hps["lr"]  # one entry per training batch, 4 batches per epoch
    assert len(lrs) == 16
    per_epoch = [lrs[i * 4:(i + 1) * 4] for i in range(4)]
    for got, want in zip(per_epoch, [0.1, 0.1, 0.01, 0.001]):
        assert got == pytest.approx([want] * 4)


def test_linear_eval_frozen_trains_only_the_classifier(dls, model):
    """Linear evaluation (Robust Tickets Fig. 2), ``linear_bn="frozen"``: backbone frozen, incl. BN statistics."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train(dls, model, TrainParams(epochs=1, lr=0.05, schedule="constant"), linear_eval=True, linear_bn="frozen",
          progress=False)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k]) and "num_batches" not in k}
    assert changed == {"fc.weight", "fc.bias"}


def test_linear_eval_recalibrates_bn_statistics_of_the_masked_backbone_then_freezes():
    """``transfer.linear_bn: recalibrate`` (the default): before the head trains, every BatchNorm's
    running statistics are re-estimated for the *masked* backbone on the training images (one
    pass, no gradients) and then stay fixed; no weight or affine parameter changes, only the head
    trains. With one batch of all 64 training images the statistics must equal that batch's
    pre-BN mean and unbiased variance, as BatchNorm computes them in train mode."""
    import copy

    dls = toy_dls(n_train=64, bs=64)
    model = tiny_model()
    with torch.no_grad():  # pretrained statistics that describe nothing the ticket computes
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.fill_(3.0)
                m.running_var.fill_(0.01)
    mask = _random_mask(model, sparsity=0.8)
    want = {}
    ref = copy.deepcopy(model)
    mask.apply(ref)
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: want.__setitem__(n, i[0].detach()))
             for n, m in ref.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    ref.train()
    with torch.no_grad():
        ref(dls.train_ds.tensors[0])
    for h in hooks:
        h.remove()
    mask.apply(model)  # as make_learner does: the ticket's weights
    before = {k: v.clone() for k, v in model.named_parameters()}
    train(dls, model, TrainParams(epochs=2, lr=0.05, schedule="constant", batch_size=64), mask=mask,
          linear_eval=True, progress=False)
    mods = dict(model.named_modules())
    assert len(want) >= 3
    for n, x in want.items():
        bn = mods[n]
        torch.testing.assert_close(bn.running_mean, x.mean((0, 2, 3)), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(bn.running_var, x.var((0, 2, 3), unbiased=True), atol=1e-5, rtol=1e-4)
    changed = {k for k, v in model.named_parameters() if not torch.equal(before[k], v)}
    assert changed == {"fc.weight", "fc.bias"}


def test_linear_bn_bad_value_is_refused(dls, model):
    with pytest.raises(ValueError, match=r"linear_bn 'warm' is not allowed; allowed: recalibrate, frozen"):
        make_learner(dls, model, TrainParams(epochs=1, schedule="constant"), linear_eval=True, linear_bn="warm")


def test_gaussian_noise_only_on_training_inputs():
    """Random-smoothing pretraining: N(0, sigma^2) noise is added to training inputs only."""
    from fastai.data.core import DataLoaders
    from torch.utils.data import TensorDataset

    seen = {"train": [], "valid": []}

    class Spy(Callback):
        order = 60

        def before_batch(self):
            seen["train" if self.training else "valid"].append(self.learn.xb[0].clone())

    x = torch.full((64, 3, 16, 16), 0.5)
    y = torch.arange(64) % 4
    dls = DataLoaders.from_dsets(TensorDataset(x, y), TensorDataset(x, y), bs=64, device="cpu")
    learn = make_learner(dls, tiny_model(), TrainParams(epochs=1, lr=0.01, schedule="constant"),
                         noise_sigma=0.25, progress=False, extra_cbs=[Spy()])
    learn.fit(1)
    noise = seen["train"][0] - 0.5
    assert noise.mean().abs() < 0.01 and noise.std() == pytest.approx(0.25, rel=0.02)
    assert torch.equal(seen["valid"][0], x)


def test_nan_loss_stops_with_clear_error(dls):
    """A NaN loss must fail the run, never produce a silent result."""
    model = tiny_model()
    with torch.no_grad():
        model.fc.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="loss became nan"):
        train(dls, model, TrainParams(epochs=1, lr=0.01, schedule="constant"), progress=False)


def test_dvclive_logs_into_the_stage_folder(tmp_path, dls, model, monkeypatch):
    """Metrics go to the stage's own folder through DVCLive; no dvc.yaml is written."""
    monkeypatch.chdir(tmp_path)
    train(dls, model, TrainParams(epochs=2, lr=0.01, schedule="constant"), live_dir=tmp_path / "run" / "live",
          progress=False)
    live = tmp_path / "run" / "live"
    assert (live / "metrics.json").is_file()
    metrics = json.loads((live / "metrics.json").read_text())
    assert "train" in metrics or any("loss" in k for k in metrics)
    assert not list(tmp_path.rglob("dvc.yaml"))


def test_train_config_rejects_bad_values():
    """Bad hyperparameters fail at construction with the key named."""
    with pytest.raises(ValueError, match="lr"):
        TrainParams(lr=-1)
    with pytest.raises(ValueError, match="schedule"):
        TrainParams(schedule="linear")
    with pytest.raises(ValueError, match="milestones"):
        TrainParams(epochs=10, milestones=(50,))


def test_dvclive_end_waits_for_another_process_ending_in_the_same_repository(tmp_path, monkeypatch):
    """Live.end removes DVCLive's step signal file (.dvc/tmp/exps/run) by a check then a remove, so two worker
    processes of one stage ending runs together failed one with FileNotFoundError ('error: 2 (in the training
    callback DVCLiveCallback.after_fit)', the paper tier's rehearsal). The callback ends under the repository's lock:
    while another process holds it, after_fit waits; once released, it ends the run."""
    import fcntl
    import threading

    from repro.training.learner import live_callback

    (tmp_path / ".dvc").mkdir()
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    cb = live_callback(tmp_path / "live")
    cb.live.log_metric("acc", 0.5)
    cb.live.next_step()  # writes the signal file that end() removes
    signal = tmp_path / ".dvc" / "tmp" / "exps" / "run" / "DVCLIVE_STEP_COMPLETED"
    assert signal.is_file()
    lock = tmp_path / ".dvc" / "tmp" / "repro-dvclive-end.lock"
    with lock.open("a") as held:  # another process's end (a separate open file: flock excludes it)
        fcntl.flock(held, fcntl.LOCK_EX)
        ended = threading.Thread(target=cb.after_fit)
        ended.start()
        ended.join(1.0)
        assert ended.is_alive() and signal.is_file()  # waiting for the lock, nothing removed yet
    ended.join(30)
    assert not ended.is_alive() and not signal.exists()
