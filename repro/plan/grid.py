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
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Experiment, Params

RUNS = Path("runs")
DENSE = "dense"
IMP_GRID_TOL = 5e-4


@dataclass(frozen=True, order=True)
class RunSpec:
    kind: str
    method: str          # a ticket method, or "dense"
    task: str
    regime: str          # standard | adversarial | linear | mask
    fraction: float
    seed: int
    recipe: str = ""     # a name of transfer.recipes, or "" (the regime's own: transfer.<regime>, per_task)

    @property
    def name(self) -> str:
        tag = f"-{self.recipe}" if self.recipe else ""
        return f"{self.kind}-{self.method}/{self.task}/{self.regime}{tag}-f{self.fraction:g}-seed{self.seed}"

    @classmethod
    def of(cls, spec: dict) -> "RunSpec":
        """The run a ``spec.json`` (which holds these keys among others) describes."""
        return cls(spec["kind"], spec["method"], spec["task"], spec["regime"], spec["fraction"], spec["seed"],
                   spec.get("recipe", ""))


def in_experiment(p: Params, run: RunSpec, name: str, any_task: bool = False) -> bool:
    """Is ``run`` part of experiment ``name``'s grid (its pairs, or their dense baselines)? ``any_task``: on
    any downstream task, not only the experiment's."""
    ex = p.experiments.get(name)
    if ex is None or run.regime not in ex.regimes:
        return False
    if not any_task and run.task not in (ex.tasks or p.data.downstream):
        return False
    if run.recipe != p.transfer.recipe_tag(ex.recipe, run.regime):  # another experiment's recipe
        return False
    if run.method == DENSE:
        return ex.dense and any(k == run.kind for k, _ in ex.pairs)
    return (run.kind, run.method) in {tuple(pair) for pair in ex.pairs}


def adv_acc_run(p: Params, run: RunSpec) -> bool:
    """A standard-fine-tuned run of ``evaluation.adv_acc_experiments`` (RT Fig. 8 / Table I's Adv-Acc)?"""
    return run.regime == "standard" and any(in_experiment(p, run, x) for x in p.evaluation.adv_acc_experiments)


def aa_graded(p: Params, run: RunSpec) -> bool:
    """Does ``run`` get ``ra_aa`` (the AutoAttack-grade RA)? Every run whose RA a claim reads: the adversarially
    fine-tuned ones, and the standard-fine-tuned runs of the tickets ``evaluation.adv_acc_experiments`` name, on
    every task (claim ``rt-properties-adversarial`` compares their RA wherever both tickets were fine-tuned)."""
    if not p.evaluation.aa_members:
        return False
    return run.regime == "adversarial" or (run.regime == "standard" and any(
        in_experiment(p, run, x, any_task=True) for x in p.evaluation.adv_acc_experiments))


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


def experiment_runs(p: Params, e: Experiment, sparsity: float) -> set[RunSpec]:
    """The transfer runs of one experiment's grid at one level (``sparsity == 0``: its dense baselines)."""
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
                for fraction in e.fractions:
                    for seed in e.seeds or p.transfer.seeds:
                        out.add(RunSpec(kind, method, task, regime, fraction, seed, recipe))
    return out


def study_baselines(p: Params) -> set[RunSpec]:
    """The dense runs the study stage compares its ticket with (every kind, study task, both regimes)."""
    return {RunSpec(kind, DENSE, task, regime, 1.0, seed) for kind in p.pretrain.kinds for task in p.study_tasks
            for regime in ("standard", "adversarial") for seed in p.transfer.seeds}


def runs_for_level(p: Params, sparsity: float) -> list[RunSpec]:
    """Every transfer run of one level (``sparsity == 0``: the dense baselines), deduplicated over experiments."""
    out: set[RunSpec] = set()
    for e in p.experiments.values():
        if not e.runs_at(sparsity):  # the experiment's own levels (experiments.<name>.levels)
            continue
        out |= experiment_runs(p, e, sparsity)
    if sparsity == 0:  # the study stage compares its ticket with these dense baselines
        out |= study_baselines(p)
    return sorted(out)


def tickets_for_level(p: Params, sparsity: float) -> list[tuple[str, str, str | None]]:
    """(kind, method, task-or-None) of every mask a level needs (LMP masks are learned in transfer)."""
    out = set()
    for r in runs_for_level(p, sparsity):
        if r.method in (DENSE, "lmp"):
            continue
        out.add((r.kind, r.method, r.task if r.method == "a_imp_ds" else None))
    return sorted(out, key=lambda t: (t[0], t[1], t[2] or ""))


def seg_runs(p: Params) -> list[tuple[str, str, float]]:
    """(kind, method, sparsity) of every run of stage `segment`, then each kind's dense backbone: each pair at
    every level of ``sweep.sparsities`` where an experiment draws its ticket (``segment.levels``, when set,
    restricts them)."""
    items = []
    for lv in p.sweep.sparsities:
        if p.segment.levels is not None and not any(abs(lv - x) < 1e-9 for x in p.segment.levels):
            continue
        drawn = {(k, m) for k, m, t in tickets_for_level(p, lv) if t is None}
        items += [(k, m, float(lv)) for k, m in p.segment.pairs if (k, m) in drawn]
    kinds = list(dict.fromkeys(k for k, _ in p.segment.pairs))
    return items + [(k, DENSE, 0.0) for k in kinds]


def imp_runs(p: Params) -> list[tuple[str, str, str | None]]:
    """(kind, retraining, task-or-None) of every IMP run the experiments need."""
    need = set()
    for e in p.experiments.values():
        for kind, method in e.pairs:
            if method == "imp":
                need.add((kind, "standard", None))
            elif method == "a_imp":
                need.add((kind, "adversarial", None))
            elif method == "a_imp_ds":
                for t in e.tasks or p.data.downstream:
                    need.add((kind, "adversarial", t))
    if p.study.method in ("imp", "a_imp") and p.study_tasks:  # the study draws its ticket for every kind
        for kind in p.pretrain.kinds:
            need.add((kind, "standard" if p.study.method == "imp" else "adversarial", None))
    return sorted(need, key=lambda t: (t[0], t[1], t[2] or ""))


def imp_dir(kind: str, retrain: str, task: str | None) -> Path:
    return RUNS / "imp" / (f"{kind}-{retrain}" + (f"-ds-{task}" if task else "-us"))


def ticket_path(sparsity: float, kind: str, method: str, task: str | None) -> Path:
    sub = f"{kind}-{method}" + (f"-{task}" if task else "")
    return RUNS / "tickets" / level_name(sparsity) / sub / "mask.pt"
