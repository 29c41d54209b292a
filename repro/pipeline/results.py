"""The evaluated runs as rows (stages ``summary`` and ``claims``) and where the aggregates go."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from ..base.io import atomic_path
from ..config import Params
from ..config.constants import EPS_KIND, PAPERS
from ..plan import RUNS, EpsChoice, rt_source
from ..verdicts import paper_view

#: dvc plots series: (regime, metric) -> (the ticket method plotted, the paper whose view of the runs it reads)
PLOT_SERIES = {("standard", "sa"): ("imp", "dw"), ("adversarial", "sa"): ("imp", "dw"),
               ("adversarial", "ra"): ("imp", "dw"), ("linear", "sa"): ("omp", "rt")}
#: further columns of a series' CSV: RA (AutoAttack-grade, ``ra_aa``) is plotted next to RA (PGD-20, ``ra``)
PLOT_EXTRA = {"ra": ("ra_aa",)}

METRICS_DIR = Path("metrics")


PLOTS_DIR = Path("plots")


def collect(root: Path = RUNS / "eval") -> list[dict]:
    rows = []
    for f in sorted(root.rglob("metrics.json")):
        rows.append(json.loads(f.read_text()))
    if not rows:
        raise FileNotFoundError(f"no evaluated runs under {str(root)!r}; run the evaluate stages first")
    return rows


def segment_rows(doc: dict, seed: int) -> list[dict]:
    """The segment stage's runs as claim rows: regime ``segmentation``, full data, the sparsity as the level, and the
    mIoU's bootstrap standard error over the test images (``se``) where the run recorded it."""
    return [{"kind": r["kind"], "method": r["method"], "task": r["task"], "regime": "segmentation", "fraction": 1.0,
             "level": float(r["sparsity"]), "seed": seed, "miou": r["miou"], "pixel_acc": r.get("pixel_acc"),
             **({"se": {"miou": r["miou_se"]}} if r.get("miou_se") is not None else {})}
            for r in doc.get("runs", [])]


def write_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    with atomic_path(path) as tmp:
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def paper_sources(p: Params, choice: EpsChoice) -> dict[str, dict]:
    """paper -> {(kind, task, regime): source} of the runs its figures and claims read: RT's EPS_KIND runs at the
    ε ``select_eps`` chose per task and regime (``repro.plan.rt_source``); DW's, and every other, the kind's own."""
    rt = {(EPS_KIND, t, r): rt_source(p, EPS_KIND, name, t, r, choice)
          for name, e in p.experiments.items() if name.startswith("rt_")
          for t in e.tasks or p.data.downstream for r in e.regimes}
    return {paper: (rt if paper == "rt" else {}) for paper in PAPERS}


def plot_series(agg: list[dict], kinds, task: str, tags: dict[str, dict[str, str]] | None = None,
                sources: dict[str, dict] | None = None) -> dict[str, list[dict]]:
    """``<regime>_<metric>/<kind>`` -> rows (sparsity, metric, metric_std), dense baseline at sparsity 0.
    ``tags``: paper -> ``Params.recipe_tags(paper)`` (None: the regimes' own recipes); ``sources``: paper ->
    its sources (``paper_sources``; None: the kinds' own models)."""
    out = {}
    for (regime, metric), (method, paper) in PLOT_SERIES.items():
        view = paper_view(agg, (tags or {}).get(paper, {}), (sources or {}).get(paper))
        for kind in kinds:
            rows = [r for r in view if r["kind"] == kind and r["task"] == task and r["regime"] == regime
                    and r["fraction"] == 1.0 and r["method"] in (method, "dense") and f"{metric}_mean" in r]
            extra = PLOT_EXTRA.get(metric, ())  # e.g. RA (AutoAttack) beside RA (PGD-20)
            out[f"{regime}_{metric}/{kind}"] = [
                {"sparsity": r["level"], metric: r[f"{metric}_mean"], f"{metric}_std": r[f"{metric}_std"],
                 **{f"{x}{s}": r.get(f"{x}_mean" if s == "" else f"{x}_std", "") for x in extra for s in ("", "_std")}}
                for r in sorted(rows, key=lambda r: r["level"])]
    return out


def nest_verdicts(verdicts: list[dict]) -> dict:
    out: dict = {}
    for v in verdicts:
        out.setdefault(f"{v['kind']}-{v['method']}", {})[v["task"]] = {  # under verdict_ra, then under each RA
            k: v[k] for k in ("extreme_sparsity", "extreme_sparsity_pgd20", "extreme_sparsity_aa") if k in v}
    return out
