"""Every headline claim of both papers, decided on the pipeline's own metrics (``registry``: the ``Claim`` type,
the ``CLAIMS`` registry and the scorecard; ``stats``: cells and decisions; ``evidence``: the runs a claim reads;
``dw`` / ``rt``: the claims of each paper, registered in that order)."""
from . import dw, rt  # noqa: F401  (register the claims, DW's first)
from .evidence import Evidence
from .registry import CLAIMS, OUTCOMES, RA_VARIANTS, Claim, counts, evaluate_all, metric_view, scorecard_line
from .stats import Cell, Result, decide, spearman

__all__ = ["CLAIMS", "OUTCOMES", "RA_VARIANTS", "Cell", "Claim", "Evidence", "Result", "counts", "decide",
           "evaluate_all", "metric_view", "scorecard_line", "spearman"]
