"""Per-experiment recipes (issue 13 point 4): Robust Tickets' fine-tuning for the RT experiments, Double-Win's
recipe for DW's, in separate run folders.

RT Sec. III-A: "SGD ... finetuning 150 epochs in total with a batch size of 64, a momentum of 0.9, and a weight
decay of 1e-4. The learning rate decays by 0.1 at the 50-th and 100-th epochs." DW (official code): standard
transfer with wd 5e-4; adversarial 100 epochs, lr 0.1, x0.1 at 50 and 75 (SVHN: 80 epochs, lr 0.01, cosine).
A run is named by its content, so a run of another recipe must not share a folder with DW's run of the same
(kind, method, task, regime, fraction, seed); the embedded default (no named recipe) keeps today's names.
"""
from __future__ import annotations

import dataclasses

import re
from pathlib import Path

import pytest
import yaml

from repro.claims import evaluate_all
from repro.config import ConfigError, load_params
from repro.config.params import Params
from repro.plan import RUNS, EpsChoice, RunSpec, experiment_runs, level_name, runs_for_level, selection_keys
from repro.tiers import merge
from repro.verdicts import aggregate, paper_view
from repro.registries import params_from

ROOT = Path(__file__).resolve().parents[1]
RT_EXPERIMENTS = ("rt_omp", "rt_structured", "rt_aimp")  # fine-tuned / linearly evaluated (rt_lmp learns masks)
#: today's run-folder names: <kind>-<method>/<task>/<regime>-f<frac>-seed<s>
TODAY = re.compile(r"[a-z_]+-[a-z_]+/[a-z0-9_]+/(standard|adversarial|linear|mask)-f[0-9.e-]+-seed\d+")


def _default() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def tiers(*names: str) -> Params:
    cfg = _default()
    for n in names:
        cfg = merge(cfg, yaml.safe_load((ROOT / "tiers" / f"{n}.yaml").read_text()))
    return params_from(cfg)


def own_eps(p: Params) -> EpsChoice:
    """RT's per-task eps (issue 26 point 1) as if select_eps kept pgd_adversarial's own eps on every task: RT's
    runs then differ from DW's by their recipe alone."""
    return EpsChoice(tuple((k, "") for k in selection_keys(p)))


def all_runs(p: Params) -> list[RunSpec]:
    return [r for lv in (0.0, *p.sweep.sparsities) for r in runs_for_level(p, lv, own_eps(p))]


def with_rt() -> dict:
    """The embedded default with a (standard-transfer only) RT recipe selected by every fine-tuned RT experiment."""
    rt = {"standard": {"epochs": 4, "lr": 0.001, "weight_decay": 1.0e-4, "schedule": "step", "milestones": [2, 3],
                       "batch_size": 16}}
    return merge(_default(), {"transfer": {"recipes": {"rt": rt}},
                              "experiments": {n: {"recipe": "rt"} for n in RT_EXPERIMENTS}})


# ------------------------------------------------------------------------------------------------ names

def test_dw_and_rt_runs_of_one_ticket_get_different_names_and_folders():
    p = tiers("paper")
    lv = 0.2  # an IMP level both dw_pretraining and rt_aimp run: (standard, imp) tickets, standard transfer
    key = ("standard", "imp", "cifar10", "standard", 1.0, 0)
    same = [r for r in runs_for_level(p, lv, own_eps(p)) if (r.kind, r.method, r.task, r.regime, r.fraction, r.seed) == key]
    assert sorted(r.recipe for r in same) == ["", "rt"]
    names = {r.recipe: r.name for r in same}
    assert names[""] == "standard-imp/cifar10/standard-f1-seed0"  # DW's run: today's name
    assert names["rt"] == "standard-imp/cifar10/standard-rt-f1-seed0"
    folders = {RUNS / "transfer" / level_name(lv) / r.name for r in same}
    assert len(folders) == 2
    # dense baselines too: DW's standard transfer and RT's of θ_AT are two runs
    dense = [r for r in runs_for_level(p, 0.0, own_eps(p))
             if (r.kind, r.method, r.task, r.regime, r.seed) == ("pgd_adversarial", "dense", "svhn", "standard", 0)]
    assert sorted(r.name for r in dense) == ["pgd_adversarial-dense/svhn/standard-f1-seed0",
                                             "pgd_adversarial-dense/svhn/standard-rt-f1-seed0"]
    # no two runs of a level share a folder
    for lv in (0.0, *p.sweep.sparsities):
        runs = runs_for_level(p, lv, own_eps(p))
        assert len({r.name for r in runs}) == len(runs)


def test_the_default_recipe_keeps_todays_names():
    assert RunSpec("pgd_adversarial", "imp", "synth_near", "adversarial", 0.1, 1).name == \
        "pgd_adversarial-imp/synth_near/adversarial-f0.1-seed1"
    assert RunSpec("standard", "omp", "t", "linear", 1.0, 0, "").name == "standard-omp/t/linear-f1-seed0"
    p = load_params(ROOT / "params.yaml")  # the embedded default names no recipe: every name as before
    runs = all_runs(p)
    assert runs and all(r.recipe == "" and TODAY.fullmatch(r.name) for r in runs)
    # a recipe that lists no entry for a regime leaves that regime's runs (and names) alone
    q = params_from(with_rt())
    lin = [r for r in all_runs(q) if r.regime == "linear"]
    assert lin and all(r.recipe == "" and TODAY.fullmatch(r.name) for r in lin)


# ------------------------------------------------------------------------------------------------ recipes

def _cfg(p: Params, spec: RunSpec):
    return p.tickets.lmp.train if spec.regime == "mask" else p.transfer.recipe(spec.regime, spec.task, spec.recipe)


@pytest.mark.parametrize("stack", [("paper",), ("small",), ("paper", "r18"), ("paper", "vtab")])
def test_real_tiers_give_rt_experiments_rts_recipe_and_dw_experiments_dws(stack):
    p = tiers(*stack)
    seen = {"rt": 0, "dw": 0}
    for name, e in p.experiments.items():
        for lv in (0.0, *p.sweep.sparsities):
            if not e.runs_at(lv):
                continue
            for spec in experiment_runs(p, e, lv):
                cfg = _cfg(p, spec)
                if name in RT_EXPERIMENTS:
                    seen["rt"] += 1
                    assert spec.recipe == "rt" and spec.name.split("/")[-1].startswith(f"{spec.regime}-rt-f")
                    assert (cfg.epochs, cfg.batch_size, cfg.momentum, cfg.weight_decay, cfg.schedule,
                            cfg.milestones, cfg.gamma) == (150, 64, 0.9, 1e-4, "step", (50, 100), 0.1), (name, spec)
                elif name.startswith("dw_"):
                    seen["dw"] += 1
                    assert spec.recipe == "", (name, spec)
                    assert cfg.weight_decay == 5e-4 and (cfg.momentum, cfg.batch_size) == (0.9, 64 if spec.regime == "standard" else 128)
                    if spec.regime == "standard":  # DW's official standard transfer
                        assert (cfg.epochs, cfg.lr, cfg.milestones) == (150, 0.001, (50, 100))
                    elif spec.task == "svhn":  # DW Sec. 3
                        assert (cfg.epochs, cfg.lr, cfg.schedule) == (80, 0.01, "cosine")
                    else:
                        assert (cfg.epochs, cfg.lr, cfg.milestones) == (100, 0.1, (50, 75))
    assert seen["rt"] > 0 and (seen["dw"] > 0 or stack[-1] in ("r18", "vtab"))


def test_paper_tier_rt_recipe_values():
    p = tiers("paper")
    std, lin = p.transfer.recipes["rt"]["standard"], p.transfer.recipes["rt"]["linear"]
    for r in (std, lin):
        assert (r.epochs, r.batch_size, r.momentum, r.weight_decay, r.milestones) == (150, 64, 0.9, 1e-4, (50, 100))
    assert [p.experiments[n].recipe for n in RT_EXPERIMENTS] == ["rt"] * 3
    assert all(e.recipe is None for n, e in p.experiments.items() if n.startswith("dw_"))
    assert p.recipe_tags("rt") == {"standard": "rt", "linear": "rt", "mask": ""}
    assert p.recipe_tags("dw") == {"standard": "", "adversarial": ""}


def test_the_embedded_default_names_no_recipe():
    p = load_params(ROOT / "params.yaml")  # its 15-minute budget: RT's 150 epochs would not fit
    assert p.transfer.recipes == {} and all(e.recipe is None for e in p.experiments.values())


# ------------------------------------------------------------------------------------------------ bad values

@pytest.mark.parametrize("edit, message", [
    (lambda c: merge(c, {"experiments": {"rt_omp": {"recipe": "rtt"}}}),
     r"^params: experiments\.rt_omp\.recipe: 'rtt' is not a recipe of transfer\.recipes; allowed: rt, or null"),
    (lambda c: merge(_default(), {"experiments": {n: {"recipe": "rt"} for n in RT_EXPERIMENTS}}),
     r"^params: experiments\.rt_omp\.recipe: 'rt' is not a recipe of transfer\.recipes; allowed: none defined"),
    (lambda c: merge(c, {"transfer": {"recipes": {"rt": {"mask": {"epochs": 2}}}}}),
     r"^params: transfer\.recipes\.rt\.mask: regime 'mask' is not allowed; allowed: standard, adversarial, linear"),
    (lambda c: merge(c, {"transfer": {"recipes": {"RT-1": {"standard": {"epochs": 2}}}}}),
     r"^params: transfer\.recipes\.RT-1: 'RT-1' is not allowed as a recipe name .*allowed: lowercase letters"),
    (lambda c: merge(c, {"transfer": {"recipes": {"rt": {"standard": {"epoch": 2}}}}}),
     r"transfer\.recipes\.rt\.standard.*epoch"),
    (lambda c: merge(c, {"transfer": {"recipes": {"rt": {"standard": {"milestones": [9]}}}}}),
     r"^params: transfer\.recipes\.rt\.standard"),
    (lambda c: merge(c, {"transfer": {"recipes": {"other": {"standard": {"epochs": 2}}}},
                         "experiments": {"rt_structured": {"recipe": "other"}}}),
     r"^params: experiments\.rt_structured\.recipe: 'other' gives regime 'standard' recipe 'other', experiments\.rt_omp "
     r"gives it 'rt'; allowed: one recipe per regime among the rt_\* experiments"),
])
def test_bad_recipe_values_fail_with_one_line_naming_them(edit, message):
    with pytest.raises(ConfigError) as ei:
        params_from(edit(with_rt()))
    msg = str(ei.value)
    assert "\n" not in msg and re.search(message, msg), msg


# ------------------------------------------------------------------------------------------------ readers

def _row(kind, regime, sa, recipe="", seed=0, level=0.5, task="t"):
    r = {"kind": kind, "method": "omp", "task": task, "regime": regime, "fraction": 1.0, "level": level, "seed": seed,
         "sa": sa, "ra": 0.1, "nll": 1.0, "ece": 0.05, "ood_auroc": 0.7, "n_test": 1000, "n_robust": 1000,
         "measured_sparsity": level}
    return {**r, "recipe": recipe} if recipe else r


def test_groups_never_mix_recipes_and_each_paper_reads_its_own():
    rows = [_row("standard", "standard", 0.5, seed=s) for s in (0, 1)] + [_row("standard", "standard", 0.9, "rt")]
    agg = aggregate(rows)
    assert sorted((g.get("recipe", ""), g["n_seeds"], round(g["sa_mean"], 3)) for g in agg) == \
        [("", 2, 0.5), ("rt", 1, 0.9)]
    assert [g["sa_mean"] for g in paper_view(agg, {"standard": "rt"})] == [0.9]
    assert [g["sa_mean"] for g in paper_view(agg, {})] == [0.5]


def test_rt_claims_read_the_runs_of_rts_recipe():
    """RT Fig. 2 (rt-linear): robust OMP tickets beat natural ones under linear evaluation. The RT-recipe runs
    say so; DW-recipe runs of the same tickets say the opposite and must not be read for RT's claim."""
    rows = []
    for task in ("a", "b", "c"):
        for lv in (0.5, 0.8):
            rows += [_row("pgd_adversarial", "linear", 0.60, "rt", level=lv, task=task),
                     _row("standard", "linear", 0.40, "rt", level=lv, task=task),
                     _row("pgd_adversarial", "linear", 0.30, level=lv, task=task),
                     _row("standard", "linear", 0.50, level=lv, task=task)]
    doc = evaluate_all(rows, recipes={"RT": {"linear": "rt"}, "DW": {}})
    assert doc["claims"]["rt-linear"]["outcome"] == "reproduced"
    assert doc["runs"] == len(rows)
    assert evaluate_all(rows)["claims"]["rt-linear"]["outcome"] == "contradicted"  # the regime's own recipe


def test_figures_read_their_papers_groups(tmp_path):
    import sys

    sys.path.insert(0, str(ROOT / "paper_figures"))
    import figlib as fl

    f = tmp_path / "curves.csv"
    f.write_text("kind,method,task,regime,fraction,level,n_seeds,recipe,papers,sa_mean,sa_std\n"
                 "standard,dense,t,standard,1,0,3,,dw,0.5,0.01\n"
                 "standard,dense,t,standard,1,0,1,rt,rt,0.9,0\n"
                 "standard,dense,t,adversarial,1,0,3,,dw rt,0.4,0.01\n")
    assert sorted(fl.load_curves(f, paper="rt").sa_mean) == [0.4, 0.9]
    assert sorted(fl.load_curves(f, paper="dw").sa_mean) == [0.4, 0.5]
    assert len(fl.load_curves(f)) == 3


def test_cost_planner_prices_each_run_with_its_recipe():
    from repro.plan.cost import task_size, transfer_cost

    p = tiers("paper")
    sizes = {"cifar10": task_size(p, "cifar10")}
    dw = transfer_cost(p, RunSpec("standard", "omp", "cifar10", "linear", 1.0, 0), sizes)  # transfer.linear: 100 epochs
    rt = transfer_cost(p, RunSpec("standard", "omp", "cifar10", "linear", 1.0, 0, "rt"), sizes)  # RT: 150
    assert rt.train == pytest.approx(dw.train * 150 / 100)


def test_evaluate_counts_a_run_in_the_experiment_of_its_recipe():
    from repro.plan import in_experiment

    p = tiers("paper")
    spec = RunSpec("standard", "omp", "cifar10", "standard", 1.0, 0)
    assert in_experiment(p, dataclasses.replace(spec, recipe="rt"), "rt_omp")
    assert not in_experiment(p, spec, "rt_omp")  # DW's run of the same ticket is not part of RT's grid
