"""Iterative magnitude pruning with rewinding (Double-Win LTH official code)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from repro.models import build_model, prunable_names
from repro.tickets import Mask, PruneContext, draw_ticket, imp_schedule, omp_mask, run_imp

torch.set_num_threads(2)

OFFICIAL_LEVELS = [20.00, 36.00, 48.80, 59.04, 67.23, 73.79, 79.03, 83.22, 86.58, 89.26, 91.41, 93.13,
                   94.50, 95.60, 96.48, 97.19, 97.75, 98.20, 98.56]


def tiny(seed: int = 0):
    torch.manual_seed(seed)
    return build_model("cifar_resnet", 10, depths=(1, 1), width=8)


def sgd_retrain(steps: int = 2, calls: list | None = None):
    """Cheap stand-in for (adversarial) retraining: plain SGD on random data, mask enforced after each step."""
    def retrain(model, mask):
        if calls is not None:
            calls.append(mask.sparsity)
        gen = torch.Generator().manual_seed(len(calls or []))
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        model.train()
        for _ in range(steps):
            x = torch.rand(8, 3, 16, 16, generator=gen)
            y = torch.randint(0, 10, (8,), generator=gen)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mask.apply(model)
    return retrain


def test_imp_schedule_matches_official_levels():
    """Double-Win: sparsities lie on 1 - 0.8^k (20.00, 36.00, ..., 98.56 %); the last round stops at the target."""
    sched = imp_schedule(1 - 0.8 ** 19)
    assert [round(100 * s, 2) for s in sched] == OFFICIAL_LEVELS
    assert imp_schedule(0.36) == [0.2, 0.36]
    assert imp_schedule(0.5) == [0.2, 0.36, 0.488, 0.5]
    assert imp_schedule(0.1) == [0.1]
    assert imp_schedule(0.0) == []
    assert len(imp_schedule(0.9)) == 11 and imp_schedule(0.9)[-1] == 0.9


def test_imp_rounds_sparsity_and_rewind_to_pretrained():
    """Double-Win IMP: round 1 = OMP 20 % of the pretrained weights; k rounds give 1-0.8^k; survivors and the
    rest of the model are rewound EXACTLY to the pretrained values, the cumulative mask re-applied."""
    model = tiny()
    pretrained = {k: v.clone() for k, v in model.state_dict().items()}
    rounds, calls = [], []
    ctx = PruneContext(retrain=sgd_retrain(calls=calls), on_round=lambda k, m: rounds.append((k, m)))
    target = 1 - 0.8 ** 3
    mask = draw_ticket("imp", model, target, ctx)
    n = mask.num_total
    assert [k for k, _ in rounds] == [1, 2, 3]
    assert len(calls) == 2, "retraining happens before rounds 2 and 3 only"
    assert calls == pytest.approx([0.2, 0.36], abs=1 / n)
    for k, m in rounds:
        assert m.num_total - m.num_kept == round((1 - 0.8 ** k) * n)
    assert rounds[0][1] == omp_mask(tiny(), 0.2)
    for (_, a), (_, b) in zip(rounds, rounds[1:]):  # pruned weights stay pruned
        assert all(not (b[k] & ~a[k]).any() for k in a)
    assert rounds[-1][1] == mask
    after = model.state_dict()
    for k, v in pretrained.items():
        expected = v * mask[k] if k in mask.keys() else v
        assert torch.equal(after[k], expected), k
    assert list(mask.keys()) == prunable_names(model)


def test_imp_prunes_remaining_by_retrained_magnitude():
    """Double-Win IMP: later rounds rank the REMAINING weights by the magnitude of the retrained (not pretrained) weights."""
    model = tiny()
    names = prunable_names(model)
    gen = torch.Generator().manual_seed(5)
    factors = {n: torch.rand(dict(model.named_parameters())[n].shape, generator=gen) + 0.01 for n in names}
    seen = {}

    def retrain(m, mask):  # deterministic "training": rescale every weight, keep the mask
        with torch.no_grad():
            for n, p in m.named_parameters():
                if n in factors:
                    p.mul_(factors[n]).mul_(mask[n])
        seen.update({n: p.detach().clone() for n, p in m.named_parameters() if n in factors})
        seen["mask"] = mask

    mask = run_imp(model, 0.36, PruneContext(retrain=retrain))[-1]
    total = mask.num_total
    prev = seen["mask"]
    scores = torch.cat([torch.where(prev[n], seen[n].abs(), torch.tensor(-1.0)).flatten() for n in names])
    order = torch.argsort(scores, stable=True)
    expected = torch.ones(total, dtype=torch.bool)
    expected[order[:round(0.36 * total)]] = False
    got = torch.cat([mask[n].flatten() for n in names])
    assert torch.equal(got, expected)
    assert mask != omp_mask(tiny(), 0.36)


def test_imp_target_09_exact():
    """A target of 90 % needs 11 rounds (the last partial) and lands within 0.1 % (here: exactly round(0.9 N))."""
    model = tiny()
    levels = []
    ctx = PruneContext(retrain=sgd_retrain(steps=1), on_round=lambda k, m: levels.append(m.sparsity))
    mask = draw_ticket("imp", model, 0.9, ctx)
    assert len(levels) == 11
    assert abs(mask.sparsity - 0.9) < 1e-3
    assert mask.num_total - mask.num_kept == round(0.9 * mask.num_total)
    assert levels == sorted(levels)


def test_imp_needs_retrain_and_is_unstructured():
    """IMP beyond one round needs the caller's retrain callable; IMP is unstructured in both papers."""
    with pytest.raises(ValueError, match="ctx.retrain"):
        draw_ticket("imp", tiny(), 0.5, PruneContext())
    assert draw_ticket("imp", tiny(), 0.2, PruneContext()) == omp_mask(tiny(), 0.2)
    with pytest.raises(ValueError, match="unstructured"):
        draw_ticket("imp", tiny(), 0.5, PruneContext(granularity="channel", retrain=sgd_retrain()))


def test_imp_custom_rate():
    """The per-round rate is a parameter (default 20 % of the remaining weights)."""
    assert imp_schedule(0.75, rate=0.5) == [0.5, 0.75]
    m = draw_ticket("imp", tiny(), 0.75, PruneContext(rate=0.5, retrain=sgd_retrain(steps=1)))
    assert isinstance(m, Mask) and m.num_total - m.num_kept == round(0.75 * m.num_total)


def test_continue_imp_partial_round_lands_exactly_on_an_off_grid_target():
    """`dvc exp run -S sparsity=0.9`: IMP continues from the saved round 2 (36 %) with one partial round
    to exactly round(0.4*N) pruned weights; earlier pruning is kept and survivors equal the pretrained values."""
    from repro.tickets import continue_imp

    model = tiny()
    pretrained = {k: v.clone() for k, v in model.state_dict().items()}
    start = run_imp(model, 0.36, PruneContext(retrain=sgd_retrain()))[-1]
    model.load_state_dict(pretrained)
    mask = continue_imp(model, start, 0.4, PruneContext(retrain=sgd_retrain()))
    assert mask.num_total - mask.num_kept == round(0.4 * mask.num_total)
    for k in mask:
        assert not (mask[k] & ~start[k]).any(), "a weight pruned earlier came back"
    params = dict(model.named_parameters())
    for k, m in mask.items():
        assert torch.equal(params[k].detach()[m], pretrained[k][m])
    with pytest.raises(ValueError, match="cannot continue"):
        continue_imp(model, mask, 0.3, PruneContext(retrain=sgd_retrain()))
