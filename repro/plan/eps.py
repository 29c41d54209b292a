"""Robust Tickets' per-task ε (RT Sec. III-A: "we follow [19] to pick the optimal perturbation strength for each
task", [19] = Salman et al. 2020): the candidate models of EPS_KIND, the dense selection runs, and the choice.

* Candidates: the kind's own model (``pretrain.pgd.eps``, or its published checkpoint's ε; every DW run uses it)
  and one model per further radius of ``pretrain.eps_grid`` (stage ``pretrain_eps``: trained here at that ε, or
  the published checkpoint of the same kind and architecture at that ε).
* Selection (stage ``select_eps``): for every (task, regime) some RT experiment (``rt_*``) transfers EPS_KIND in
  (``mask``, LMP, is decided by linear evaluation: ``select_regime``), the dense model of every candidate is
  fine-tuned with RT's recipe for that regime on the task's training images minus held-out ones
  (``transfer.validation``'s when it is on, else ``pretrain.eps_select``'s), and the candidate with the best
  held-out SA at the checkpoint ``evaluation.select`` names for the regime is chosen (ties: the kind's own ε, then
  the smaller ε). The test split is never read.
* The choice: ``metrics/eps.json`` (every task) and ``runs/select_eps/<task>.json`` (one per task), read back as an
  ``EpsChoice`` by every stage whose runs depend on it.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..config import Params
from ..config.constants import EPS_KIND, eps_label, eps_tag
from ..config.params import ValidationParams
from .grid import DENSE, RUNS, EpsChoice, RunSpec, eps_grid_on, model_name, select_regime

SELECT_DIR = RUNS / "select_eps"
CHOICE_FILE = Path("metrics") / "eps.json"
PRETRAIN_EPS_DIR = RUNS / "pretrain_eps"


def own_eps(p: Params) -> float:
    """The ε of EPS_KIND's own model: its published checkpoint's, else ``pretrain.pgd.eps``."""
    name = p.pretrain.published.get(EPS_KIND)
    if name is None:
        return p.pretrain.pgd.eps
    from ..weights import WEIGHTS

    return WEIGHTS.get(name).eps


def candidates(p: Params) -> list[tuple[str, float]]:
    """(source, ε) of every candidate model, the kind's own first (source ""), then the grid's by ε."""
    own = own_eps(p)
    out = [("", own)]
    for e in sorted(p.pretrain.eps_grid):
        if eps_label(e) != eps_label(own):
            out.append((eps_tag(e), e))
    return out


def grid_models(p: Params) -> list[tuple[str, float]]:
    """(source, ε) of the models stage ``pretrain_eps`` provides: the candidates besides the kind's own."""
    return candidates(p)[1:] if eps_grid_on(p) else []


def published_at(p: Params, eps: float) -> str | None:
    """The published EPS_KIND checkpoint of ``model.arch`` at ``eps`` when the kind comes published, else None."""
    if EPS_KIND not in p.pretrain.published:
        return None
    from ..weights import WEIGHTS

    for name in WEIGHTS.names():
        w = WEIGHTS.get(name)
        if w.kind == EPS_KIND and w.arch == p.model.arch and w.eps and eps_label(w.eps) == eps_label(eps):
            return name
    raise ValueError(f"pretrain.eps_grid: {eps_label(eps)} has no published {EPS_KIND} {p.model.arch} checkpoint")


def pretrained_dir(kind: str, source: str = "") -> Path:
    """The folder of a pretrained model: ``runs/pretrain/<kind>`` (its own), ``runs/pretrain_eps/<kind>-eps<e>``."""
    return PRETRAIN_EPS_DIR / model_name(kind, source) if source else RUNS / "pretrain" / kind


def selection_keys(p: Params) -> list[tuple[str, str]]:
    """(task, selection regime) of every RT experiment's EPS_KIND runs (none when the grid is off)."""
    if not eps_grid_on(p):
        return []
    keys = set()
    for name, e in p.experiments.items():
        if name.startswith("rt_") and any(k == EPS_KIND for k, _ in e.pairs):
            keys |= {(t, select_regime(r)) for t in e.tasks or p.data.downstream for r in e.regimes}
    return sorted(keys)


def selection_seed(p: Params, task: str, regime: str) -> int:
    """The seed of a selection run: the lowest first seed of the RT experiments that need (task, regime)."""
    seeds = [(e.seeds or p.transfer.seeds)[0] for name, e in p.experiments.items()
             if name.startswith("rt_") and any(k == EPS_KIND for k, _ in e.pairs)
             and task in (e.tasks or p.data.downstream) and regime in {select_regime(r) for r in e.regimes}]
    return min(seeds or p.transfer.seeds[:1])


def selection_runs(p: Params) -> list[RunSpec]:
    """The dense runs of the selection: every candidate on every (task, regime) of ``selection_keys``, with RT's
    recipe for the regime, full data."""
    tags = p.recipe_tags("rt")
    return [RunSpec(EPS_KIND, DENSE, t, r, 1.0, selection_seed(p, t, r), tags.get(r, ""), src)
            for t, r in selection_keys(p) for src, _ in candidates(p)]


def selection_validation(p: Params) -> ValidationParams:
    """The held-out images the selection reads: ``transfer.validation``'s when it is on (the same images checkpoint
    selection holds out, so the chosen ε's selection run is RT's dense baseline), else ``pretrain.eps_select``'s."""
    v = p.transfer.validation
    if v.how != "none":
        return v
    s = p.pretrain.eps_select
    return ValidationParams(how=s.how, n=s.n, robust_images=0, steps=v.steps)


def selection_run_dir(spec: RunSpec) -> Path:
    return SELECT_DIR / "runs" / spec.name


def reusable_run(p: Params, spec: RunSpec) -> Path | None:
    """The selection run that *is* dense run ``spec`` (same recipe, seed, held-out images: ``transfer.validation``
    on), for transfer_dense to copy instead of training it again; else None."""
    if p.transfer.validation.how == "none" or spec.method != DENSE or spec.kind != EPS_KIND or spec.fraction != 1.0:
        return None
    d = selection_run_dir(spec)
    return d if spec in selection_runs(p) and (d / "spec.json").is_file() else None


def load_choice(p: Params, path: Path = CHOICE_FILE) -> EpsChoice:
    """The ε ``select_eps`` chose (an empty choice when the grid is off); a missing or stale file is an error."""
    keys = selection_keys(p)
    if not keys:
        return EpsChoice()
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} is missing: run the select_eps stage first (dvc repro select_eps)")
    doc = json.loads(path.read_text())
    got = {(t, r): v["source"] for t, by in doc.get("tasks", {}).items() for r, v in by.items()}
    missing = [k for k in keys if k not in got]
    if missing or doc.get("candidates") != [eps_label(e) for _, e in candidates(p)]:
        raise FileNotFoundError(f"{str(path)!r} does not hold this configuration's choice (e.g. {missing[:1]} or "
                                "other candidates): run the select_eps stage again")
    return EpsChoice(tuple(sorted((k, got[k]) for k in keys)))


def source_eps(p: Params, kind: str, source: str) -> float | None:
    """The pretraining ε of a model of ``kind`` (None for kinds without one)."""
    if source:
        return dict((s, e) for s, e in candidates(p))[source]
    if kind == EPS_KIND:
        return own_eps(p)
    if kind == "fast_adversarial":
        name = p.pretrain.published.get(kind)
        if name is None:
            return p.pretrain.fgsm_rs.eps
        from ..weights import WEIGHTS

        return WEIGHTS.get(name).eps
    return None
