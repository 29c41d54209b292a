"""The experiment grid: which transfer runs each sparsity level needs.

``python -m repro.plan cost [--tier paper]`` prints what the grid costs (runs, FLOPs, GPU- and
CPU-hours per stage and experiment; ``repro.plan.cost`` and ``repro.plan.hours``).

Each entry of ``params.experiments`` is one figure's grid; the union of all
grids, deduplicated, is the work of a level. A run is named by its content:
``<kind>-<method>/<task>/<regime>-f<fraction>-seed<seed>`` under the level's
folder, so the same experiment always lands in the same place. A run of an
experiment with a named recipe (``experiments.<name>.recipe``, one of
``transfer.recipes``, e.g. Robust Tickets' fine-tuning) in a regime that recipe
lists is ``.../<regime>-<recipe>-f<fraction>-seed<seed>``: DW's and RT's runs of
the same (kind, method, task, regime, fraction, seed) never share a folder.

Robust Tickets' per-task ε (``pretrain.eps_grid``): RT's experiments (named ``rt_*``) transfer EPS_KIND's
network at the ε the stage ``select_eps`` chose for the run's task and regime (an ``EpsChoice``); a run from an
ε-grid model is ``<kind>-eps<e>-<method>/...`` (``RunSpec.source``), a run from the kind's own model (its
``pretrain.pgd.eps``, every DW run) keeps ``<kind>-<method>/...``, so an RT run whose chosen ε is the kind's own
shares DW's folder. Before the choice exists (``choice=None``: the planner) each (task, regime) of RT gets a
placeholder source (``planned-...``), as if every one chose a grid model of its own: an upper bound of the work.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Experiment, Params
from ..config.constants import DS_METHODS, EPS_KIND

RUNS = Path("runs")
DENSE = "dense"
IMP_GRID_TOL = 5e-4
PLANNED = "planned-"  # prefix of the planner's placeholder sources (never a folder)
#: the IMP run behind each IMP-family ticket method: its retraining and whether it runs downstream (DS)
IMP_METHODS = {"imp": ("standard", False), "a_imp": ("adversarial", False),
               "imp_ds": ("standard", True), "a_imp_ds": ("adversarial", True)}


@dataclass(frozen=True, order=True)
class RunSpec:
    kind: str
    method: str          # a ticket method, or "dense"
    task: str
    regime: str          # standard | adversarial | linear | mask
    fraction: float
    seed: int
    recipe: str = ""     # a name of transfer.recipes, or "" (the regime's own: transfer.<regime>, per_task)
    source: str = ""     # the pretrained model of `kind`: "" its own, "eps<e>" the pretrain.eps_grid model at e/255

    @property
    def name(self) -> str:
        tag = f"-{self.recipe}" if self.recipe else ""
        return f"{model_name(self.kind, self.source)}-{self.method}/{self.task}/{self.regime}{tag}-f{self.fraction:g}" \
               f"-seed{self.seed}"

    @classmethod
    def of(cls, spec: dict) -> "RunSpec":
        """The run a ``spec.json`` (which holds these keys among others) describes."""
        return cls(spec["kind"], spec["method"], spec["task"], spec["regime"], spec["fraction"], spec["seed"],
                   spec.get("recipe", ""), spec.get("source", ""))


def model_name(kind: str, source: str = "") -> str:
    """A pretrained model's name: the kind (its own model), or ``<kind>-eps<e>`` (an ε-grid model)."""
    return f"{kind}-{source}" if source else kind


def select_regime(regime: str) -> str:
    """The regime whose held-out accuracy picks the ε of a ``regime`` run: its own; LMP (``mask``, weights frozen)
    takes linear evaluation's (the one regime whose dense model also keeps the pretrained weights fixed)."""
    return "linear" if regime == "mask" else regime


def eps_grid_on(p: Params) -> bool:
    """Does RT pick EPS_KIND's ε per task (``pretrain.eps_grid`` set and the kind pretrained)?"""
    return bool(p.pretrain.eps_grid) and EPS_KIND in p.pretrain.kinds


@dataclass(frozen=True)
class EpsChoice:
    """The ε ``select_eps`` chose: (task, selection regime) -> source ("" = the kind's own model)."""

    sources: tuple[tuple[tuple[str, str], str], ...] = ()

    def source(self, task: str, regime: str) -> str:
        """The source of ``regime`` runs on ``task`` ("" where nothing was selected: the kind's own model)."""
        return dict(self.sources).get((task, select_regime(regime)), "")


def rt_source(p: Params, kind: str, experiment: str, task: str, regime: str, choice: EpsChoice | None) -> str:
    """The source of experiment ``experiment``'s ``kind`` runs on (task, regime): the chosen ε-grid model for RT's
    experiments and EPS_KIND, else "" (DW's experiments keep the kind's own ε); ``choice=None``: a placeholder."""
    if kind != EPS_KIND or not experiment.startswith("rt_") or not eps_grid_on(p):
        return ""
    if choice is None:
        return f"{PLANNED}{task}-{select_regime(regime)}"
    return choice.source(task, regime)


def in_experiment(p: Params, run: RunSpec, name: str, any_task: bool = False, choice: EpsChoice | None = None) -> bool:
    """Is ``run`` part of experiment ``name``'s grid (its pairs, or their dense baselines)? ``any_task``: on
    any downstream task, not only the experiment's. ``choice``: RT's chosen ε (None: any source of an RT
    experiment's EPS_KIND run counts)."""
    ex = p.experiments.get(name)
    if ex is None or run.regime not in ex.regimes:
        return False
    if not any_task and run.task not in (ex.tasks or p.data.downstream):
        return False
    if run.recipe != p.transfer.recipe_tag(ex.recipe, run.regime):  # another experiment's recipe
        return False
    want = rt_source(p, run.kind, name, run.task, run.regime, choice)
    if run.source != want and not (choice is None and want.startswith(PLANNED)):  # another ε's model
        return False
    if run.method == DENSE:
        return ex.dense and any(k == run.kind for k, _ in ex.pairs)
    return (run.kind, run.method) in {tuple(pair) for pair in ex.pairs}


def adv_acc_run(p: Params, run: RunSpec, choice: EpsChoice | None = None) -> bool:
    """A standard-fine-tuned run of ``evaluation.adv_acc_experiments`` (RT Fig. 8 / Table I's Adv-Acc)?"""
    return run.regime == "standard" and any(in_experiment(p, run, x, choice=choice)
                                            for x in p.evaluation.adv_acc_experiments)


def aa_graded(p: Params, run: RunSpec, choice: EpsChoice | None = None) -> bool:
    """Does ``run`` get ``ra_aa`` (the AutoAttack-grade RA)? Every run whose RA a claim reads: the adversarially
    fine-tuned ones, and the standard-fine-tuned runs of the tickets ``evaluation.adv_acc_experiments`` name, on
    every task (claim ``rt-properties-adversarial`` compares their RA wherever both tickets were fine-tuned)."""
    if not p.evaluation.aa_members:
        return False
    return run.regime == "adversarial" or (run.regime == "standard" and any(
        in_experiment(p, run, x, any_task=True, choice=choice) for x in p.evaluation.adv_acc_experiments))


def level_name(sparsity: float) -> str:
    """Folder of a sparsity level: 0 -> 'dense', 0.7379 -> 's0.7379' (str of the float, as in dvc.yaml)."""
    return DENSE if sparsity == 0 else f"s{float(sparsity)}"  # as DVC writes ${item}


def imp_round_of(sparsity: float, rate: float = 0.2, max_rounds: int = 200) -> int | None:
    """k with 1-(1-rate)^k within IMP_GRID_TOL of ``sparsity``, else None."""
    for k in range(1, max_rounds + 1):
        s = 1 - (1 - rate) ** k
        if abs(s - sparsity) <= IMP_GRID_TOL:
            return k
        if s > sparsity:
            return None
    return None


def experiment_runs(p: Params, e: Experiment, sparsity: float, name: str = "",
                    choice: EpsChoice | None = None) -> set[RunSpec]:
    """The transfer runs of one experiment's grid at one level (``sparsity == 0``: its dense baselines); ``name``:
    the experiment's (RT's, ``rt_*``, transfer EPS_KIND at the ε of ``choice``, ``rt_source``)."""
    out: set[RunSpec] = set()
    tasks = e.tasks or p.data.downstream
    for kind, method in e.pairs:
        if sparsity == 0:
            if not e.dense or method == "lmp":
                continue
            method = DENSE
        for task in tasks:
            for regime in e.regimes:
                if (method == "lmp") != (regime == "mask") and method != DENSE:
                    continue
                recipe = p.transfer.recipe_tag(e.recipe, regime)
                source = rt_source(p, kind, name, task, regime, choice)
                for fraction in e.fractions:
                    for seed in e.seeds or p.transfer.seeds:
                        out.add(RunSpec(kind, method, task, regime, fraction, seed, recipe, source))
    return out


def study_baselines(p: Params) -> set[RunSpec]:
    """The dense runs the study stage compares its ticket with (every kind, study task, both regimes)."""
    return {RunSpec(kind, DENSE, task, regime, 1.0, seed) for kind in p.pretrain.kinds for task in p.study_tasks
            for regime in ("standard", "adversarial") for seed in p.transfer.seeds}


def runs_for_level(p: Params, sparsity: float, choice: EpsChoice | None = None) -> list[RunSpec]:
    """Every transfer run of one level (``sparsity == 0``: the dense baselines), deduplicated over experiments."""
    out: set[RunSpec] = set()
    for name, e in p.experiments.items():
        if not e.runs_at(sparsity):  # the experiment's own levels (experiments.<name>.levels)
            continue
        out |= experiment_runs(p, e, sparsity, name, choice)
    if sparsity == 0:  # the study stage compares its ticket with these dense baselines
        out |= study_baselines(p)
    return sorted(out)


def tickets_for_level(p: Params, sparsity: float, choice: EpsChoice | None = None) -> list[tuple[str, str, str | None, str]]:
    """(kind, method, task-or-None, source) of every mask a level needs (LMP masks are learned in transfer); the
    segmentation pairs (``segment.pairs``) drawn at the level also from the kind's own model (source "")."""
    out = set()
    for r in runs_for_level(p, sparsity, choice):
        if r.method in (DENSE, "lmp"):
            continue
        out.add((r.kind, r.method, r.task if r.method in DS_METHODS else None, r.source))
    drawn = {(k, m) for k, m, t, _ in out if t is None}
    out |= {(k, m, None, "") for k, m in p.segment.pairs if (k, m) in drawn}
    return sorted(out, key=lambda t: (t[0], t[1], t[2] or "", t[3]))


def seg_runs(p: Params) -> list[tuple[str, str, float]]:
    """(kind, method, sparsity) of every run of stage `segment`, then each kind's dense backbone: each pair at
    every level of ``sweep.sparsities`` where an experiment draws its ticket (``segment.levels``, when set,
    restricts them)."""
    items = []
    for lv in p.sweep.sparsities:
        if p.segment.levels is not None and not any(abs(lv - x) < 1e-9 for x in p.segment.levels):
            continue
        drawn = {(k, m) for k, m, t, s in tickets_for_level(p, lv) if t is None and s == ""}
        items += [(k, m, float(lv)) for k, m in p.segment.pairs if (k, m) in drawn]
    kinds = list(dict.fromkeys(k for k, _ in p.segment.pairs))
    return items + [(k, DENSE, 0.0) for k in kinds]


def imp_runs(p: Params, choice: EpsChoice | None = None) -> list[tuple[str, str, str | None, str]]:
    """(kind, retraining, task-or-None, source) of every IMP run the experiments need: upstream (US, task None) or
    downstream (DS: ``imp_ds``, ``a_imp_ds``), from the model each experiment's runs transfer (``rt_source``)."""
    need = set()
    for name, e in p.experiments.items():
        for kind, method in e.pairs:
            if method not in IMP_METHODS:
                continue
            retrain, ds = IMP_METHODS[method]
            for t in e.tasks or p.data.downstream:
                for regime in e.regimes:
                    need.add((kind, retrain, t if ds else None, rt_source(p, kind, name, t, regime, choice)))
    if p.study.method in ("imp", "a_imp") and p.study_tasks:  # the study draws its ticket for every kind
        for kind in p.pretrain.kinds:
            need.add((kind, IMP_METHODS[p.study.method][0], None, ""))
    # a segmentation pair's ticket comes from the kind's own model (tickets_for_level)
    us = {(k, r) for k, r, t, _ in need if t is None}
    need |= {(k, IMP_METHODS[m][0], None, "") for k, m in p.segment.pairs
             if m in IMP_METHODS and (k, IMP_METHODS[m][0]) in us}
    return sorted(need, key=lambda t: (t[0], t[1], t[2] or "", t[3]))


def imp_dir(kind: str, retrain: str, task: str | None, source: str = "") -> Path:
    return RUNS / "imp" / (f"{model_name(kind, source)}-{retrain}" + (f"-ds-{task}" if task else "-us"))


def ticket_path(sparsity: float, kind: str, method: str, task: str | None, source: str = "") -> Path:
    sub = f"{model_name(kind, source)}-{method}" + (f"-{task}" if task else "")
    return RUNS / "tickets" / level_name(sparsity) / sub / "mask.pt"
