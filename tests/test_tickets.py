"""Mask type, OMP, random pruning and draw_ticket (Double-Win LTH / Robust Tickets)."""
from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from repro.models import build_model, prunable_names
from repro.tickets import (GRANULARITIES, PRUNERS, Mask, MaskError, PruneContext, draw_ticket,
                           group_shape, mask_iou, omp_mask, random_mask, to_groups, zero_kernels)

torch.set_num_threads(2)


def tiny(seed: int = 0, width: int = 8):
    torch.manual_seed(seed)
    return build_model("cifar_resnet", 10, depths=(1, 1), width=width)


def conv_weights(model):
    params = dict(model.named_parameters())
    return {n: params[n].detach().clone() for n in prunable_names(model)}


def num_pruned(mask: Mask) -> int:
    return mask.num_total - mask.num_kept


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_state(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


MODEL = tiny()  # shared read-only model for the property test


# -- OMP ----------------------------------------------------------------------

@pytest.mark.parametrize("s", [0.2, 0.5, 0.9, 0.99])
def test_omp_global_count_keeps_largest_and_skips_fc(s):
    """Double-Win: global L1 pruning over all conv weights only; round(s*N) pruned, the kept are the largest |w|, fc untouched."""
    model = tiny()
    before = state(model)
    mask = draw_ticket("omp", model, s, PruneContext())
    assert list(mask.keys()) == prunable_names(model)
    assert not any(k.startswith("fc.") for k in mask.keys())
    assert abs(num_pruned(mask) - s * mask.num_total) <= 1
    assert num_pruned(mask) == round(s * mask.num_total)
    w = conv_weights(model)
    kept = torch.cat([w[n][mask[n]].abs() for n in mask])
    pruned = torch.cat([w[n][~mask[n]].abs() for n in mask])
    assert pruned.max() <= kept.min()
    assert same_state(before, state(model)), "OMP must not modify the model"


def test_omp_is_global_not_layerwise():
    """Double-Win: one global threshold over all layers, so a layer with large weights survives almost entirely."""
    model = tiny()
    with torch.no_grad():
        model.layer2[0].conv2.weight.mul_(100.0)
    mask = omp_mask(model, 0.5)
    assert mask.layer_sparsity()["layer2.0.conv2.weight"] < 0.05
    assert mask.layer_sparsity()["layer1.0.conv1.weight"] > 0.5


def test_omp_ties_are_deterministic():
    """Exact count with ties: all-equal weights still give exactly round(s*N) pruned, the same mask every call."""
    model = tiny()
    with torch.no_grad():
        for n in prunable_names(model):
            dict(model.named_parameters())[n].fill_(0.5)
    a, b = omp_mask(model, 0.3), omp_mask(model, 0.3)
    assert a == b and num_pruned(a) == round(0.3 * a.num_total)


@settings(max_examples=25, deadline=None)
@given(s=st.floats(0.0, 0.999, allow_nan=False), g=st.sampled_from(GRANULARITIES))
def test_omp_count_property(s, g):
    """Exact global count (unstructured); structured: within half the largest group of round(s*N)."""
    mask = omp_mask(MODEL, s, granularity=g)
    target = round(s * mask.num_total)
    params = dict(MODEL.named_parameters())
    half_group = max(to_groups(params[n], g).shape[1] for n in mask) / 2
    if g == "unstructured":
        assert num_pruned(mask) == target
    else:
        assert abs(num_pruned(mask) - target) <= half_group


@pytest.mark.parametrize("g", ["row", "kernel", "channel"])
def test_structured_omp_ranks_groups_by_mean_abs(g):
    """Robust Tickets structured OMP: a group's score is its L1 norm / size; every kept group scores >= every pruned group."""
    model = tiny()
    mask = omp_mask(model, 0.6, granularity=g)
    params = dict(model.named_parameters())
    kept, pruned = [], []
    for n in mask:
        score = to_groups(params[n].detach().abs(), g).mean(1)
        keep = to_groups(mask[n], g)[:, 0]
        kept.append(score[keep])
        pruned.append(score[~keep])
    assert torch.cat(pruned).max() <= torch.cat(kept).min()


# -- random -------------------------------------------------------------------

def test_random_count_and_seed():
    """Double-Win random pruning: same scope and global count as OMP, random scores; same seed same mask, other seed other mask."""
    model = tiny()
    before = state(model)
    a = draw_ticket("random", model, 0.7, PruneContext(seed=1))
    b = draw_ticket("random", model, 0.7, PruneContext(seed=1))
    c = draw_ticket("random", model, 0.7, PruneContext(seed=2))
    assert a == b and a != c
    assert random_mask(model, 0.7, seed=1) == a
    assert list(a.keys()) == prunable_names(model)
    assert num_pruned(a) == num_pruned(c) == round(0.7 * a.num_total)
    assert a != omp_mask(model, 0.7)
    # random masks are roughly uniform across layers (unlike magnitude)
    assert all(0.5 < v < 0.9 for v in a.layer_sparsity().values())
    assert same_state(before, state(model))


# -- structured ---------------------------------------------------------------

@pytest.mark.parametrize("method", ["omp", "random", "lmp"])
@pytest.mark.parametrize("g", ["row", "kernel", "channel"])
def test_structured_masks_constant_within_groups(method, g):
    """Robust Tickets: row [out,in,kh], kernel [out,in], channel [out] groups are all kept or all pruned."""
    model = tiny()
    ctx = PruneContext(granularity=g, seed=3, train_scores=lambda m: None)
    mask = draw_ticket(method, model, 0.5, ctx)
    for n, m in mask.items():
        groups = to_groups(m, g)
        assert groups.shape[0] == math.prod(group_shape(m.shape, g))
        assert (groups.all(1) | ~groups.any(1)).all(), f"{n}: a group is partly pruned"
    assert 0.3 < mask.sparsity < 0.7


def test_custom_scope():
    """The ticket scope is configurable (default: all conv weights); a mask covers only its scope."""
    model = tiny()
    mask = draw_ticket("omp", model, 0.5, PruneContext(scope=["layer1.0.conv1.weight"]))
    assert list(mask.keys()) == ["layer1.0.conv1.weight"]
    assert num_pruned(mask) == round(0.5 * mask.num_total)
    with pytest.raises(MaskError, match="not parameters"):
        draw_ticket("omp", model, 0.5, PruneContext(scope=["nope.weight"]))


# -- draw_ticket validation ---------------------------------------------------

@pytest.mark.parametrize("bad", [1.5, 1.0, -0.1, float("nan")])
def test_draw_ticket_rejects_bad_sparsity(bad):
    """Sparsity is the pruned fraction in [0, 1); the error names the value."""
    with pytest.raises(ValueError, match=r"sparsity .* is outside \[0, 1\)"):
        draw_ticket("omp", tiny(), bad)
    with pytest.raises(ValueError, match="must be a number"):
        draw_ticket("omp", tiny(), "0.5")


def test_draw_ticket_unknown_method_and_granularity():
    """Unknown names fail with the allowed list."""
    with pytest.raises(ValueError, match="allowed: imp, lmp, omp, random"):
        draw_ticket("snip", tiny(), 0.5)
    with pytest.raises(ValueError, match="allowed: unstructured, row, kernel, channel"):
        PruneContext(granularity="filter")
    assert PRUNERS.names() == ["imp", "lmp", "omp", "random"]


def test_zero_sparsity_is_dense():
    """Sparsity 0 gives the dense mask for every method that needs no callables."""
    for method in ("omp", "random"):
        assert draw_ticket(method, tiny(), 0.0).sparsity == 0.0


# -- Mask ---------------------------------------------------------------------

def test_mask_save_load_round_trip(tmp_path):
    """Masks are stored per conv layer under torchvision names, with a sparsity report beside them."""
    mask = omp_mask(tiny(), 0.8)
    mask.save(tmp_path / "mask.pt")
    back = Mask.load(tmp_path / "mask.pt")
    assert back == mask and list(back.keys()) == list(mask.keys())
    report = json.loads((tmp_path / "sparsity_report.json").read_text())
    assert report["unpruned"] == mask.num_kept and report["total"] == mask.num_total


def test_mask_refuses_non_binary():
    """A mask is binary: 0/1 only."""
    with pytest.raises(MaskError, match="0/1"):
        Mask({"conv1.weight": torch.tensor([0.0, 0.5, 1.0])})
    with pytest.raises(MaskError):
        Mask({"conv1.weight": torch.tensor([float("nan"), 1.0])})
    assert Mask({"a": torch.tensor([0.0, 1.0])})["a"].dtype == torch.bool


def test_mask_of_other_architecture_rejected():
    """A ticket applies only to the architecture it was drawn from."""
    mask = omp_mask(tiny(), 0.5)
    with pytest.raises(MaskError, match="shape"):
        mask.check_compatible(tiny(width=16))
    other = build_model("cifar_resnet", 10, depths=(1, 1, 1), width=8)
    Mask.ones_like(other).check_compatible(other)
    with pytest.raises(MaskError, match="another architecture"):
        Mask.ones_like(other).check_compatible(tiny())


def test_mask_apply_zeroes_pruned_only():
    """Applying a ticket zeroes exactly the pruned conv weights."""
    model = tiny()
    w = conv_weights(model)
    mask = omp_mask(model, 0.5)
    mask.apply(model)
    after = conv_weights(model)
    for n in mask:
        assert torch.equal(after[n], w[n] * mask[n])


def test_mask_iou():
    """Double-Win Fig. A8: IoU of identical masks is 1, of disjoint masks 0."""
    a = Mask({"w": torch.tensor([1, 1, 0, 0])})
    b = Mask({"w": torch.tensor([0, 0, 1, 1])})
    c = Mask({"w": torch.tensor([1, 0, 1, 0])})
    assert mask_iou(a, a) == 1.0
    assert mask_iou(a, b) == 0.0
    assert mask_iou(a, c) == pytest.approx(1 / 3)
    m = omp_mask(tiny(), 0.5)
    assert mask_iou(m, m) == 1.0


def test_zero_kernels_counts():
    """Double-Win Fig. 7: count of [out, in] kernels that are entirely pruned, per conv layer."""
    t = torch.ones(2, 3, 3, 3, dtype=torch.bool)
    t[0, 0] = False
    t[1, 2] = False
    t[1, 1, 0, 0] = False  # partly pruned kernel does not count
    assert zero_kernels(Mask({"c.weight": t})) == {"c.weight": 2}
    channel = omp_mask(tiny(), 0.5, granularity="kernel")
    counts = zero_kernels(channel)
    assert sum(counts[n] * math.prod(channel[n].shape[2:]) for n in counts) == channel.num_total - channel.num_kept
