"""Every headline claim of both papers, decided on the pipeline's own metrics (``registry``: the ``Claim`` type,
the ``CLAIMS`` registry and the scorecard; ``stats``: cells, noise and decisions; ``evidence``: the runs a claim
reads; ``premises``: what must hold for a claim to be testable in a run; ``dw`` / ``rt``: the claims of each paper,
registered in that order; ``paper``: the same rules on the papers' own printed numbers; ``simulate``: each rule's
power and false-positive rate on simulated runs)."""
from . import dw, dw_analysis, rt  # noqa: F401  (register the claims, DW's first)
from .evidence import Evidence
from .registry import (CLAIMS, DESCRIPTIVE, NOT_TESTABLE, OUTCOMES, RA_VARIANTS, Claim, counts, evaluate_all, judge,
                       metric_view, scorecard_line)
from .stats import Cell, Result, decide, spearman

__all__ = ["CLAIMS", "DESCRIPTIVE", "NOT_TESTABLE", "OUTCOMES", "RA_VARIANTS", "Cell", "Claim", "Evidence", "Result",
           "counts", "decide", "evaluate_all", "judge", "metric_view", "scorecard_line", "spearman"]
