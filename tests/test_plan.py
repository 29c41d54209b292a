"""The experiment grid and the Double-Win verdict rule."""
from __future__ import annotations

from pathlib import Path

from repro.config import load_params
from repro.plan import imp_round_of, level_name, runs_for_level, tickets_for_level
from repro.verdicts import aggregate, double_win

ROOT = Path(__file__).resolve().parents[1]


def test_level_folder_matches_dvc_interpolation():
    """dvc.yaml writes outs as runs/.../s${item}; YAML floats interpolate as str(float)."""
    assert level_name(0.7379) == "s0.7379" and level_name(0.488) == "s0.488" and level_name(0) == "dense"


def test_imp_grid_lookup():
    """IMP levels are 1 - 0.8^k (Double-Win); 73.79 % is round 6, 0.9 is off the grid."""
    assert imp_round_of(0.2) == 1 and imp_round_of(0.7379) == 6 and imp_round_of(0.8926) == 10
    assert imp_round_of(0.9) is None


def test_default_grid_covers_every_figure_family_without_duplicates():
    p = load_params(ROOT / "params.yaml")
    lv = p.sweep.sparsities[0]
    runs = runs_for_level(p, lv)
    assert len(runs) == len(set(runs))
    methods = {r.method for r in runs}
    assert {"imp", "a_imp", "a_imp_ds", "omp", "random", "lmp", "omp_row", "omp_kernel", "omp_channel"} <= methods
    assert {r.regime for r in runs} == {"standard", "adversarial", "linear", "mask"}
    assert {0.1, 0.01} <= {r.fraction for r in runs}
    assert all(r.regime == "mask" for r in runs if r.method == "lmp")
    dense = runs_for_level(p, 0)
    assert all(r.method == "dense" for r in dense)
    # the study's dense baselines exist for every pretraining kind
    assert {r.kind for r in dense if r.regime == "adversarial" and r.fraction == 1.0} == set(p.pretrain.kinds)
    assert all(m != "lmp" for _, m, _, _ in tickets_for_level(p, lv))


def _row(kind, method, regime, level, seed, sa, ra):
    return dict(kind=kind, method=method, task="t", regime=regime, fraction=1.0, level=level, seed=seed,
                sa=sa, ra=ra, measured_sparsity=level)


def test_matching_within_one_std_of_dense_and_extreme_sparsity():
    """Double-Win: matching = within one std of dense (or above) for std-SA, adv-SA and adv-RA;
    the extreme sparsity is the largest double-win level."""
    rows = []
    for seed, (sa, ra) in enumerate([(0.80, 0.40), (0.82, 0.42)]):  # dense: mean 0.81 / 0.41, std 0.01414
        rows += [_row("k", "dense", "standard", 0.0, seed, sa, ra), _row("k", "dense", "adversarial", 0.0, seed, sa, ra)]
    for lv, sa, ra in [(0.5, 0.80, 0.40), (0.7, 0.797, 0.41), (0.9, 0.70, 0.30)]:
        for seed in range(2):
            rows += [_row("k", "imp", "standard", lv, seed, sa, ra), _row("k", "imp", "adversarial", lv, seed, sa, ra)]
    v = double_win(aggregate(rows))
    assert len(v) == 1
    verdict = {r["level"]: r["double_win"] for r in v[0]["levels"]}
    assert verdict == {0.5: True, 0.7: True, 0.9: False}  # 0.797 >= 0.81 - 0.01414
    assert v[0]["extreme_sparsity"] == 0.7
