"""Stage `claims`: every headline claim of both papers decided on this run's metrics (``repro.claims``).

Reads ``runs/eval/<level>/<run>/metrics.json`` (as the summary stage does), the segmentation runs
of the segment stage (``metrics/segment.json``, RT Fig. 7 and DW Fig. A10: regime ``segmentation``, metric
``miou``), the analysis stage's ``analysis/domain_gap.json`` (RT Table II), mask statistics
(``mask_similarity.csv``, ``zero_kernels.csv``: DW Sec. 6) and loss landscapes (``landscape/``: DW Fig. 6/A9),
the pretrained models' source accuracy (``runs/pretrain/<kind>/metrics.json``, and for RT's claims the ε-grid
models it chose, ``runs/pretrain_eps/<model>/metrics.json``: the premises) and the papers' printed numbers (``paper_figures/paper_values.yaml``: the same rules on them); an absent input makes its claims
``not run``. Writes ``metrics/claims.json`` (DVC metrics): the scope, the counts at the top level
(``reproduced``, ``inconclusive``, ``contradicted``, ``not_testable``, ``not_run``, ``total``; descriptive rows
not counted) under the RA variant ``evaluation.verdict_ra`` (``pgd20`` when the parameter does not exist), the
counts per RA variant, the claims whose outcome differs between variants, and per claim its outcome(s), kind,
premises, the outcome on the paper's own numbers and the scalar numbers behind it;
``metrics/claims_detail.json``: the same plus every claim's quote, test, reason and per-cell numbers (what the
report shows).
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import yaml

from ..base.io import save_json
from ..claims import evaluate_all, metric_view, scorecard_line
from ..claims.paper import evaluate_paper
from ..claims.scope import build_scope
from ..config import Params
from ..config.params import PAPERS
from ..pipeline.results import METRICS_DIR, collect, paper_sources, segment_rows
from ..plan import load_choice, model_name, pretrained_dir
from .common import log, run_stage

ANALYSIS = Path("analysis")
DOMAIN_GAP = ANALYSIS / "domain_gap.json"
SEGMENT = Path("metrics") / "segment.json"
PAPER_VALUES = Path("paper_figures") / "paper_values.yaml"


def _csv(path: Path, floats=()) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in r:
            if k in floats or k in ("zero_kernels", "total_kernels"):
                r[k] = float(r[k]) if k in floats else int(r[k])
    return rows


def landscapes(rows: list[dict], first_seed: int) -> list[dict]:
    """The analysis stage's loss contours (``analysis/landscape``) with whether each run learned."""
    import numpy as np

    index = _csv(ANALYSIS / "landscape" / "index.csv", floats=("fraction", "level"))
    learned = {(r["kind"], r["method"], r["task"], r["regime"], r["fraction"], r["level"]): r.get("learned", True)
               for r in rows if r.get("seed") == first_seed}
    out = []
    for r in index:
        f = ANALYSIS / "landscape" / f"{r['run']}.npz"
        if not f.is_file():
            continue
        with np.load(f) as z:
            arrays = {k: z[k].tolist() for k in ("alphas", "betas", "loss_clean", "loss_adv")}
        key = (r["kind"], r["method"], r["task"], r["regime"], r["fraction"], r["level"])
        out.append({**{k: r[k] for k in ("kind", "method", "task", "regime", "fraction", "level")},
                    "learned": learned.get(key, True), **arrays})
    return out


def _source_sa(folder: Path) -> float | None:
    f = folder / "metrics.json"
    if not f.is_file():
        return None
    sa = json.loads(f.read_text()).get("source_sa")
    return float(sa) if isinstance(sa, (int, float)) else None


def paper_contexts(sources: dict[str, dict], source_sa: dict[str, float]) -> dict[str, dict]:
    """paper -> what its premises read instead of the kinds' own models: RT's EPS_KIND runs are on the ε-grid models
    select_eps chose per task (``sources``), so RT's comparable-backbones premise reads the source accuracy of the
    least accurate of those models (every chosen model must be comparable); DW's runs use the kinds' own models."""
    out = {}
    for paper, by_key in sources.items():
        chosen = sorted({(kind, src) for (kind, _, _), src in by_key.items()})
        if not chosen:
            continue
        sa = dict(source_sa)
        for kind in {k for k, _ in chosen}:
            vals = [_source_sa(pretrained_dir(kind, src)) for k, src in chosen if k == kind]
            if all(v is not None for v in vals):
                sa[kind] = min(vals)
            else:
                sa.pop(kind, None)   # not recorded: the premise says so, it does not read another model's number
        out[paper.upper()] = {"source_sa": sa,
                              "source_models": {k: sorted(model_name(k, s) for kk, s in chosen if kk == k)
                                                for k in {k for k, _ in chosen}}}
    return out


def context(p: Params, rows: list[dict]) -> dict:
    """What the premises and the analysis-based claims read besides the evaluated runs."""
    source_sa = {}
    for kind in p.pretrain.kinds:
        sa = _source_sa(pretrained_dir(kind, ""))
        if sa is not None:
            source_sa[kind] = sa
    return {"source_sa": source_sa, "published": sorted(p.pretrain.published),
            "model": {"arch": p.model.arch}, "scope": build_scope(p, rows),
            "analysis": {"mask_similarity": _csv(ANALYSIS / "mask_similarity.csv", floats=("level", "iou")),
                         "zero_kernels": _csv(ANALYSIS / "zero_kernels.csv", floats=("level", "sparsity")),
                         "landscape": landscapes(rows, p.transfer.seeds[0])}}


def body(p: Params) -> None:
    rows = collect()
    if SEGMENT.is_file():
        rows += segment_rows(json.loads(SEGMENT.read_text()), p.seed)
    gaps = json.loads(DOMAIN_GAP.read_text()) if DOMAIN_GAP.is_file() else None
    verdict_ra = getattr(p.evaluation, "verdict_ra", "pgd20")
    paper = evaluate_paper(yaml.safe_load(PAPER_VALUES.read_text())) if PAPER_VALUES.is_file() else None
    # each paper's claims read the runs of the recipes its experiments name (Params.recipe_tags), RT's at the eps
    # select_eps chose per task (paper_sources)
    srcs = paper_sources(p, load_choice(p))
    ctx = context(p, rows)
    doc = evaluate_all(rows, gaps, verdict_ra, recipes={paper.upper(): p.recipe_tags(paper) for paper in PAPERS},
                       sources={paper.upper(): srcs[paper] for paper in PAPERS}, context=ctx,
                       paper_context=paper_contexts(srcs, ctx["source_sa"]), paper_numbers=paper)
    doc = {"tier": p.tier, **doc}
    doc["scorecard"] = scorecard_line(doc, p.tier)   # the report's first line (paper_figures/figreport.py)
    save_json(doc, METRICS_DIR / "claims_detail.json")
    save_json(metric_view(doc), METRICS_DIR / "claims.json")
    log("claims", doc["scorecard"] + f" (RA: {verdict_ra}; {doc['descriptive']} descriptive row(s) "
        "not counted)")
    if doc.get("paper_numbers"):
        log("claims", "the papers' own numbers through the same rules: "
            + ", ".join(f"{n} {o.replace('_', ' ')}" for o, n in sorted(doc["paper_numbers"].items())))
    if doc["differ"]:
        log("claims", "outcome depends on the RA variant for: " + ", ".join(doc["differ"]))


def main(argv=None) -> int:
    return run_stage("claims", body)


if __name__ == "__main__":
    sys.exit(main())
