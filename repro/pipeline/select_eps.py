"""Robust Tickets' per-task ε (stage ``select_eps``; ``repro.plan.eps`` states the rule): the dense selection runs
of every candidate model on every (task, regime) RT transfers EPS_KIND in, their held-out accuracy, the choice."""
from __future__ import annotations

from ..base.io import read_json
from ..config import Params
from ..config.constants import EPS_KIND, eps_label
from ..plan import RunSpec, candidates, own_eps, selection_keys, selection_run_dir, selection_validation
from .transfer import run_one

RULE = ("per (task, regime) of RT's experiments (mask: linear evaluation's), the candidate whose dense model, "
        "fine-tuned with RT's recipe on the training images minus held-out ones, has the best held-out SA at the "
        "checkpoint evaluation.select names; ties: the kind's own eps, then the smaller; the test split is never read")


def train_selection_run(p: Params, spec: RunSpec, tasks: dict, stage: str = "select_eps") -> str:
    """Fine-tune one selection run into ``runs/select_eps/runs/<run>`` (held-out images: ``selection_validation``)."""
    run_one(p, spec, 0.0, tasks, out_final=selection_run_dir(spec), stage=stage, validation=selection_validation(p))
    return spec.name


def held_out_sa(p: Params, spec: RunSpec) -> dict:
    """The held-out SA of a selection run at the checkpoint ``evaluation.select`` names for its regime."""
    val = read_json(selection_run_dir(spec) / "validation.json")
    ckpt = p.evaluation.selected(spec.regime)
    hist = val["epochs"]
    epoch = hist[-1]["epoch"] if ckpt == "last" else val[f"{ckpt}_epoch"]
    sa = next(h["val_sa"] for h in hist if h["epoch"] == epoch)
    return {"held_out_sa": sa, "epoch": epoch, "checkpoint": ckpt, "n_held_out": val["n"]}


def choose(p: Params, runs: list[RunSpec]) -> dict:
    """The choice document (``metrics/eps.json``): per task and regime every candidate's held-out SA and the chosen
    eps; ``runs``: the selection runs, all trained."""
    cands = candidates(p)
    by_source = {s: e for s, e in cands}
    doc = {"kind": EPS_KIND, "own": eps_label(own_eps(p)), "candidates": [eps_label(e) for _, e in cands],
           "rule": RULE, "tasks": {}}
    for task, regime in selection_keys(p):
        got = {r.source: held_out_sa(p, r) for r in runs if (r.task, r.regime) == (task, regime)}
        missing = [eps_label(by_source[s]) for s, _ in cands if s not in got]
        if missing:
            raise FileNotFoundError(f"select_eps: no selection run of {EPS_KIND} at {missing[0]} on {task} ({regime})")
        best = max(got, key=lambda s: (got[s]["held_out_sa"], s == "", -by_source[s]))
        doc["tasks"].setdefault(task, {})[regime] = {
            "eps": eps_label(by_source[best]), "source": best, "checkpoint": got[best]["checkpoint"],
            "n_held_out": got[best]["n_held_out"],
            "held_out_sa": {eps_label(by_source[s]): round(v["held_out_sa"], 6) for s, v in got.items()},
            "epoch": {eps_label(by_source[s]): v["epoch"] for s, v in got.items()}}
    return doc
