"""Stage `claims`: every headline claim of both papers decided on this run's metrics (``repro.claims``).

Reads ``runs/eval/<level>/<run>/metrics.json`` (as the summary stage does), the segmentation runs
of the segment stage (``metrics/segment.json``, RT Fig. 7: regime ``segmentation``, metric ``miou``)
and ``analysis/domain_gap.json`` (RT Table II); an absent input makes its claims ``not run``. Writes
``metrics/claims.json`` (DVC metrics): the counts at the top level (``reproduced``, ``inconclusive``,
``contradicted``, ``not_run``, ``total``) under the RA variant ``evaluation.verdict_ra`` (``pgd20``
when the parameter does not exist), the counts per RA variant, the claims whose outcome differs
between variants, and per claim its outcome(s) and the scalar numbers behind it;
``metrics/claims_detail.json``: the same plus every claim's quote, test, reason and per-cell numbers
(what the report shows).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..base.io import save_json
from ..claims import evaluate_all, metric_view, scorecard_line
from ..config import Params
from ..config.params import PAPERS
from ..pipeline.results import METRICS_DIR, collect, paper_sources, segment_rows
from ..plan import load_choice
from .common import log, run_stage

DOMAIN_GAP = Path("analysis") / "domain_gap.json"
SEGMENT = Path("metrics") / "segment.json"


def body(p: Params) -> None:
    rows = collect()
    if SEGMENT.is_file():
        rows += segment_rows(json.loads(SEGMENT.read_text()), p.seed)
    gaps = json.loads(DOMAIN_GAP.read_text()) if DOMAIN_GAP.is_file() else None
    verdict_ra = getattr(p.evaluation, "verdict_ra", "pgd20")
    # each paper's claims read the runs of the recipes its experiments name (Params.recipe_tags), RT's at the eps
    # select_eps chose per task (paper_sources)
    srcs = paper_sources(p, load_choice(p))
    doc = evaluate_all(rows, gaps, verdict_ra, recipes={paper.upper(): p.recipe_tags(paper) for paper in PAPERS},
                       sources={paper.upper(): srcs[paper] for paper in PAPERS})
    doc = {"tier": p.tier, **doc}
    save_json(doc, METRICS_DIR / "claims_detail.json")
    save_json(metric_view(doc), METRICS_DIR / "claims.json")
    log("claims", scorecard_line(doc, p.tier) + f" (RA: {verdict_ra})")
    if doc["differ"]:
        log("claims", "outcome depends on the RA variant for: " + ", ".join(doc["differ"]))


def main(argv=None) -> int:
    return run_stage("claims", body)


if __name__ == "__main__":
    sys.exit(main())
