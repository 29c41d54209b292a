"""The typed schema of params.yaml (the whole file: ``Params``; its sections in ``sections``, ``evaluation`` and
``experiments``; the allowed names in ``constants``). Every stage validates the whole file at start.

``load_params()`` reads params.yaml and returns a frozen ``Params``; any
invalid key or value raises ``ConfigError`` naming the key and what is allowed,
before any work starts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..base.errors import ConfigError
from .constants import (CHECKPOINTS, DS_METHODS, EPS_KIND, LINEAR_BN, LMP_BN, METHODS, PAPERS,  # noqa: F401
                        PRETRAIN_KINDS, RECIPE_NAME, REGIMES, SCHEDULES, SELECT_REGIMES, TIERS, TRAIN_REGIMES, eps_label)
from .evaluation import EvalParams
from .experiments import Experiment, RuntimeParams, SegmentParams, SegRecipe, StudyParams, SweepParams  # noqa: F401
from .names import Names, current, using
from .sections import (AttackParams, DataParams, EarlyStopParams, HeldOutParams, ImpParams, LmpParams,  # noqa: F401
                       ModelParams, PretrainParams, SyntheticParams, TextureParams, TicketParams, TrainParams,
                       TransferParams, ValidationParams)
from .typed import check, from_dict


@dataclass(frozen=True)
class Params:
    sparsity: float = 0.9
    tier: str = "default"  # a tier name, or overlays stacked by repro.tiers with '+' (e.g. 'small+trial')
    seed: int = 0
    device: str = "auto"
    workers: int = 0  # processes for independent runs; 0 = auto (CPU cores on CPU, 1 on CUDA)
    data: DataParams = field(default_factory=DataParams)
    model: ModelParams = field(default_factory=ModelParams)
    pretrain: PretrainParams = field(default_factory=PretrainParams)
    tickets: TicketParams = field(default_factory=TicketParams)
    transfer: TransferParams = field(default_factory=TransferParams)
    evaluation: EvalParams = field(default_factory=EvalParams)
    sweep: SweepParams = field(default_factory=SweepParams)
    study: StudyParams = field(default_factory=StudyParams)
    segment: SegmentParams = field(default_factory=SegmentParams)
    runtime: RuntimeParams = field(default_factory=RuntimeParams)
    experiments: dict[str, Experiment] = field(default_factory=dict)

    def __post_init__(self):
        check(0 <= self.sparsity < 1, "sparsity", f"{self.sparsity} is outside [0, 1)")
        bad = [t for t in self.tier.split("+") if t not in TIERS]
        check(not bad, "tier", f"{self.tier!r} names unknown tier(s) {bad}; allowed: {', '.join(TIERS)}, "
                               f"joined with '+'")
        check(self.workers >= 0, "workers", f"{self.workers} must be >= 0 (0 = auto)")
        check(re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None, "device",
              f"{self.device!r} is not allowed; allowed: auto, cpu, cuda, cuda:N")
        check(self.model.width_divisor == 1 or not self.pretrain.published, "model.width_divisor",
              f"{self.model.width_divisor} narrows the network, but pretrain.published loads checkpoints of the full "
              "one; allowed: 1, or pretrain.published {}")
        check(len(set(self.pretrain.kinds)) == len(self.pretrain.kinds), "pretrain.kinds",
              f"{list(self.pretrain.kinds)}: kinds must be unique (one pretrain@<kind> stage each)")
        levels = self.sweep.sparsities
        for s in levels:
            check(0 < s < 1, "sweep.sparsities", f"{s} is outside (0, 1)")
        check(len(set(levels)) == len(levels), "sweep.sparsities", "levels must be unique")
        names = current()
        known = names.datasets if names is not None else None
        allowed = ", ".join(sorted(known or ()))
        for key, used in (("data.source", [self.data.source]), ("data.downstream", self.data.downstream),
                          ("data.ood", [self.data.ood]), ("data.ood_per_task", list(self.data.ood_per_task))):
            for name in used:
                check(known is None or name in known, key, f"dataset {name!r} is unknown; allowed: {allowed}")
        check(self.evaluation.transfer_attack or self.evaluation.transfer_attack_task is None,
              "evaluation.transfer_attack_task", f"{self.evaluation.transfer_attack_task!r} names the transfer-attack "
              "task, but evaluation.transfer_attack is false; allowed: null, or transfer_attack: true")
        if self.evaluation.transfer_attack_task is not None:
            check(self.evaluation.transfer_attack_task in self.data.downstream, "evaluation.transfer_attack_task",
                  f"{self.evaluation.transfer_attack_task!r} is not a downstream task; allowed: {', '.join(self.data.downstream)}")
        for t in self.study.tasks or ():
            check(t in self.data.downstream, "study.tasks",
                  f"{t!r} is not a downstream task; allowed: {', '.join(self.data.downstream)}")
        for ename, e in self.experiments.items():
            key = f"experiments.{ename}"
            for lv in e.levels or ():
                check(any(abs(lv - s) < 1e-6 for s in levels), f"{key}.levels",
                      f"{lv} is not a level of sweep.sparsities {list(levels)}")
            check(e.levels is None or len(set(e.levels)) == len(e.levels), f"{key}.levels", "levels must be unique")
            for kind, method in e.pairs:
                check(kind in self.pretrain.kinds, f"{key}.pairs",
                      f"pretraining kind {kind!r} is not in pretrain.kinds; allowed: {', '.join(self.pretrain.kinds)}")
                check(method in METHODS, f"{key}.pairs", f"method {method!r} is not allowed; allowed: {', '.join(METHODS)}")
            for r in e.regimes:
                check(r in REGIMES, f"{key}.regimes", f"{r!r} is not allowed; allowed: {', '.join(REGIMES)}")
            for f in e.fractions:
                check(0 < f <= 1, f"{key}.fractions", f"{f} is outside (0, 1]")
            for t in e.tasks or ():
                check(t in self.data.downstream, f"{key}.tasks",
                      f"{t!r} is not a downstream task; allowed: {', '.join(self.data.downstream)}")
            if e.seeds is not None:
                check(len(e.seeds) >= 1 and len(set(e.seeds)) == len(e.seeds), f"{key}.seeds",
                      f"{list(e.seeds)}: seeds must be unique and at least one (or null = transfer.seeds)")
            # LMP learns its mask in the transfer stage (regime `mask`); other methods never run there
            has_lmp = any(m == "lmp" for _, m in e.pairs)
            if has_lmp:
                check("mask" in e.regimes, f"{key}.regimes",
                      f"{list(e.regimes)}: method 'lmp' runs only in regime 'mask', which is missing")
            if "mask" in e.regimes and e.pairs:
                check(has_lmp, f"{key}.regimes", "regime 'mask' (LMP mask learning) needs an (kind, 'lmp') pair")
            check(e.recipe is None or e.recipe in self.transfer.recipes, f"{key}.recipe",
                  f"{e.recipe!r} is not a recipe of transfer.recipes; allowed: "
                  f"{', '.join(self.transfer.recipes) or 'none defined'}, or null (the regimes' own)")
        for paper in PAPERS:
            self.recipe_tags(paper)  # one recipe per regime within a paper's experiments
        grid = self.pretrain.eps_grid
        pub = self.pretrain.published.get(EPS_KIND)
        if grid and pub is not None and names is not None and names.weights_eps:
            have = {eps_label(e): n for n, (k, a, e) in names.weights_eps.items()
                    if k == EPS_KIND and a == self.model.arch}
            for e in grid:
                check(eps_label(e) in have, "pretrain.eps_grid",
                      f"{eps_label(e)} has no published {EPS_KIND} {self.model.arch} checkpoint (pretrain.published."
                      f"{EPS_KIND} is {pub!r}); allowed: {', '.join(sorted(have, key=lambda x: float(x[:-4])))}")
        v = self.transfer.validation
        for r in SELECT_REGIMES:
            c = self.evaluation.selected(r)
            check(c == "last" or v.how != "none", f"evaluation.select.{r}",
                  f"{c!r} needs held-out validation images (transfer.validation.how 'last', 'stratified' or 'auto'); "
                  "allowed without them: last")
            check(c != "best_ra" or v.robust_images > 0, f"evaluation.select.{r}",
                  "'best_ra' needs transfer.validation.robust_images >= 1 (the validation RA)")
        for t in self.transfer.per_task:  # a tier's recipe for a task this run leaves out is unused, not an error
            check(known is None or t in known, f"transfer.per_task.{t}", f"dataset {t!r} is unknown; allowed: {allowed}")
        for t in v.per_task:  # the same for a tier's held-out count of a task this run leaves out
            check(known is None or t in known, f"transfer.validation.per_task.{t}",
                  f"dataset {t!r} is unknown; allowed: {allowed}")
        lv = self.evaluation.trajectory_level
        check(any(abs(lv - s) < 1e-6 for s in levels), "evaluation.trajectory_level",
              f"{lv} is not a level of sweep.sparsities {list(levels)} (the level whose runs keep trajectories)")
        km = self.evaluation.kernel_map_level
        check(km is None or any(abs(km - s) < 1e-6 for s in levels), "evaluation.kernel_map_level",
              f"{km} is not a level of sweep.sparsities {list(levels)} (or null: the highest)")
        if any("adversarial" in e.regimes for e in self.experiments.values()):
            tr = self.transfer
            adv = {"transfer.adversarial": tr.adversarial,
                   **{f"transfer.{key}.{name}.adversarial": r["adversarial"]
                      for key, table in (("per_task", tr.per_task), ("recipes", tr.recipes))
                      for name, r in table.items() if "adversarial" in r}}
            for key, recipe in adv.items():
                check(recipe.epochs >= 2, f"{key}.epochs", f"{recipe.epochs} must be >= 2: the Fig. 6 trajectory "
                      "plane of the adversarial runs needs at least 3 weight snapshots (epochs + 1)")

    def recipe_tags(self, paper: str) -> dict[str, str]:
        """{regime: recipe tag} of one paper's experiments (named ``<paper>_*``, with pairs): the runs its claims and
        figures read ('' = the regime's own recipe; a regime absent here reads ''). Validation refuses two of its
        experiments giving one regime different recipes (its figures could not tell which runs to show)."""
        tags: dict[str, str] = {}
        seen: dict[str, str] = {}
        for ename, e in self.experiments.items():
            if not ename.startswith(f"{paper}_") or not e.pairs:
                continue
            for r in e.regimes:
                tag = self.transfer.recipe_tag(e.recipe, r)
                if tags.setdefault(r, tag) != tag:
                    shown = {t: repr(t) if t else "the regime's own" for t in (tag, tags[r])}
                    check(False, f"experiments.{ename}.recipe",
                          f"{e.recipe!r} gives regime {r!r} recipe {shown[tag]}, experiments.{seen[r]} gives it "
                          f"{shown[tags[r]]}; allowed: one recipe per regime among the {paper}_* experiments")
                seen.setdefault(r, ename)
        return tags

    @property
    def study_tasks(self) -> tuple[str, ...]:
        """The study's tasks: ``study.tasks``, the first downstream task when null; () = no study."""
        return self.study.tasks if self.study.tasks is not None else (self.data.downstream[0],)

    @property
    def transfer_attack_task(self) -> str:
        return self.evaluation.transfer_attack_task or self.data.downstream[0]


def load_params(path: str | Path = "params.yaml", names: "Names | None" = None) -> Params:
    """params.yaml as a validated ``Params``. ``names``: the registries' names (``repro.registries.names()``, passed in
    by the caller: config imports none of the layers it configures); with them every name a value uses (architecture,
    datasets, published checkpoints) is checked too, else only the schema."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"params file {str(path)!r} is not valid YAML: {str(e).splitlines()[0]}") from None
    with using(names):
        return from_dict(Params, raw or {})
