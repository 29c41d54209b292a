"""Learnable mask pruning (Robust Tickets eq. 3; hidden-networks / edge-popup conventions)."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from repro.models import build_model, prunable_names
from repro.tickets import (PruneContext, ScoreMask, attach_scores, current_mask, detach_scores, draw_ticket,
                           group_shape, to_groups)

torch.set_num_threads(2)


def tiny(seed: int = 0):
    torch.manual_seed(seed)
    return build_model("cifar_resnet", 10, depths=(1, 1), width=8)


def batch(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(8, 3, 16, 16, generator=gen), torch.randint(0, 10, (8,), generator=gen)


def train_scores_loop(model, scores, steps=5, lr=1.0):
    opt = torch.optim.SGD(scores, lr=lr)
    model.eval()
    for i in range(steps):
        x, y = batch(i)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_lmp_changes_only_scores():
    """Robust Tickets LMP: only the mask scores are optimised; model weights stay fixed (bit-identical)."""
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    names_before = [n for n, _ in model.named_parameters()]
    params_before = dict(model.named_parameters())
    scores = attach_scores(model, 0.3, seed=0)
    assert all(not params_before[n].requires_grad for n in prunable_names(model))
    init = [s.detach().clone() for s in scores]
    mask0 = current_mask(model)
    train_scores_loop(model, scores)
    assert any(not torch.equal(a, s.detach()) for a, s in zip(init, scores)), "scores did not move"
    mask = detach_scores(model)
    assert mask != mask0, "the learned mask should differ from the initial one"
    assert [n for n, _ in model.named_parameters()] == names_before
    assert all(p is params_before[n] for n, p in model.named_parameters()), "original parameter objects restored"
    assert all(p.requires_grad for p in model.parameters())
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert type(model.conv1) is torch.nn.Conv2d


@pytest.mark.parametrize("g", ["unstructured", "row", "kernel", "channel"])
def test_lmp_exact_per_layer_density(g):
    """LMP top-k is taken PER LAYER: each layer keeps exactly round(density * number of groups) groups."""
    model = tiny()
    scores = attach_scores(model, 0.25, granularity=g, seed=1)
    mask = current_mask(model)
    params = {n: p for n, p in zip(prunable_names(model), scores)}
    for n, m in mask.items():
        groups = to_groups(m, g)
        assert int(groups[:, 0].sum()) == round(0.25 * groups.shape[0])
        assert tuple(params[n].shape) == group_shape(m.shape, g)
    detach_scores(model)


@pytest.mark.parametrize("g", ["unstructured", "channel"])
def test_lmp_straight_through_gradient(g):
    """Edge-popup: forward uses weight * topk(|s|); backward is straight-through, so dL/ds = sign(s) * dL/dmask
    for every score, pruned ones included."""
    model = tiny()
    scores = attach_scores(model, 0.5, granularity=g, seed=2)
    x, y = batch()
    # effective weights as leaves to read dL/dw_eff
    pm = model.conv1.parametrizations.weight[0]
    w = model.conv1.parametrizations.weight.original
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    s = scores[0]
    assert s.grad is not None and (s.grad != 0).any()
    # recompute dL/dw_eff for conv1 with a plain copy of the masked model
    ref = copy.deepcopy(model)
    mask = current_mask(model)
    detach_scores(ref)
    with torch.no_grad():
        for n, p in ref.named_parameters():
            if n in mask.keys():
                p.mul_(mask[n])
    ref.zero_grad()
    ref_loss = F.cross_entropy(ref(x), y)
    ref_loss.backward()
    assert torch.allclose(ref_loss, loss)
    dmask = (ref.conv1.weight.grad * w.detach())
    dmask = to_groups(dmask, g).sum(1).reshape(s.shape)
    assert torch.allclose(s.grad, torch.sign(s.detach()) * dmask, atol=1e-6)
    assert isinstance(pm, ScoreMask)
    assert all(sc.grad is not None for sc in scores)
    assert w.grad is None, "weights are frozen"


def test_lmp_forward_equals_masked_model():
    """The parametrised model computes exactly the pretrained model with the current mask applied."""
    model = tiny()
    attach_scores(model, 0.4, seed=3)
    x, _ = batch()
    model.eval()
    out = model(x)
    mask = current_mask(model)
    detach_scores(model)
    mask.apply(model)
    assert torch.allclose(model(x), out, atol=1e-6)


def test_lmp_registered_method_keeps_weights():
    """draw_ticket('lmp'): attach scores, ctx.train_scores(model), detach; returns the mask, model weights untouched."""
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def train(m):
        scores = [p for n, p in m.named_parameters() if n.endswith(".scores")]
        assert len(scores) == len(prunable_names(before_model))
        train_scores_loop(m, scores, steps=3)

    before_model = tiny()
    mask = draw_ticket("lmp", model, 0.7, PruneContext(seed=4, train_scores=train))
    assert list(mask.keys()) == prunable_names(model)
    for n, m in mask.items():
        assert int(m.sum()) == round(0.3 * m.numel()), "per-layer density is exact"
    after = model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before)
    with pytest.raises(ValueError, match="train_scores"):
        draw_ticket("lmp", model, 0.5, PruneContext())


def test_lmp_detaches_on_error_and_refuses_double_attach():
    """A failing train_scores leaves the model restored; scores cannot be attached twice."""
    model = tiny()
    names = [n for n, _ in model.named_parameters()]

    def boom(m):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        draw_ticket("lmp", model, 0.5, PruneContext(train_scores=boom))
    assert [n for n, _ in model.named_parameters()] == names
    attach_scores(model, 0.5)
    with pytest.raises(ValueError, match="already"):
        attach_scores(model, 0.5)
    detach_scores(model)
    with pytest.raises(ValueError, match="no LMP scores"):
        current_mask(model)


def test_lmp_seeded_init():
    """Scores are kaiming-uniform from a seeded generator: same seed, same initial mask."""
    a, b, c = tiny(), tiny(), tiny()
    attach_scores(a, 0.5, seed=7)
    attach_scores(b, 0.5, seed=7)
    attach_scores(c, 0.5, seed=8)
    assert current_mask(a) == current_mask(b) != current_mask(c)
    s = a.layer1[0].conv1.parametrizations.weight[0].scores
    bound = (1.0 / (8 * 9)) ** 0.5  # kaiming_uniform(a=sqrt(5)) bound = 1/sqrt(fan_in)
    assert s.abs().max() <= bound + 1e-7
