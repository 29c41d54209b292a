"""The claims registry: every headline claim of both papers, tested on the pipeline's own metrics.

The claims registry: every headline claim of both papers, tested on the pipeline's own metrics.

A :class:`Claim` names the paper, section and figure/table, quotes the paper, says in words which runs
it reads and how it decides (``test``), and carries a ``decide`` function that returns a
:class:`Result`: ``reproduced``, ``inconclusive`` (too few seeds or cells, or a gap inside the noise),
``contradicted``, or ``not run`` (its runs are absent at this tier), with the numbers behind it.
Claims are registered in :data:`CLAIMS` (:func:`claim` decorates a decision function,
:func:`compared` registers an A-against-B comparison); ``python -m repro.stages.claims`` writes them
all to ``metrics/claims_detail.json`` and the counts and outcomes to ``metrics/claims.json``.

**Inputs.** The per-run metrics the evaluate stages write (``runs/eval/<level>/<run>/metrics.json``),
averaged over seeds by :func:`repro.verdicts.aggregate` (the double-win claims use
:func:`repro.verdicts.double_win`, the matching rule of DW Sec. 4.1), and the domain-gap scores of
the analysis stage (RT Table II). A run with ``learned: false`` (it did not learn its task) never
counts as evidence: it is dropped before aggregation; a claim whose every run was dropped is
``inconclusive``.

**Robust accuracy.** A claim that reads RA is decided once per RA variant (:data:`RA_VARIANTS`):
``pgd20`` reads ``ra`` (the papers' PGD-20), ``aa`` reads ``ra_aa`` (AutoAttack-grade); a run without
the key is absent for that variant, so a claim with none is ``not run`` under it.

The statistics (one comparison cell, a claim over cells) are ``repro.claims.stats``'s; the claims themselves
``repro.claims.dw`` and ``repro.claims.rt``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..base.registry import Registry
from ..verdicts import VERDICT_RA, paper_view
from .evidence import Evidence, versus
from .stats import Result, decide

OUTCOMES = ("reproduced", "inconclusive", "contradicted", "not run")
#: RA variant -> the per-run metrics key it reads (the variants of ``evaluation.verdict_ra``)
RA_VARIANTS = VERDICT_RA


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str                 # DW | RT
    section: str
    figure: str                # figure / table label
    quote: str                 # the claim, quoted from the paper
    test: str                  # which runs, which statistic, which decision rule
    decide: Callable[[Evidence], Result]
    items: tuple[str, ...] = ()  # report items (paper_figures/render.py ITEMS ids) it supports
    uses_ra: bool = False      # decided once per RA variant
    compares: dict | None = None  # a :func:`compared` claim's definition (pairs, on, mode, fractions, levels)


CLAIMS: Registry[Claim] = Registry("claim")


def claim(id: str, paper: str, section: str, figure: str, quote: str, test: str, items=(), uses_ra=False):
    def deco(fn: Callable[[Evidence], Result]) -> Callable[[Evidence], Result]:
        CLAIMS.register(id)(Claim(id, paper, section, figure, quote, test, fn, tuple(items), uses_ra))
        return fn
    return deco


def compared(id: str, paper: str, section: str, figure: str, quote: str, test: str, pairs, on, mode="greater",
             fractions=(1.0,), levels: Callable[[float], bool] = lambda lv: lv > 0, margin=None, items=(),
             uses_ra=False, what: str = "") -> None:
    """Register a claim decided on the cells of :func:`versus`: every ticket pair (A, B) in ``pairs`` on every
    (regime, metric) in ``on``, at ``fractions`` and the sweep levels ``levels`` accepts; ``mode`` as in :func:`decide`."""
    def decide_pairs(ev: Evidence) -> Result:
        cells = []
        for a, b in pairs:
            for regime, metric in on:
                cells += versus(ev, a, b, [metric], [regime], fractions, levels=levels, margin=margin,
                                prefix=f"{a[0]}-{a[1]} vs {b[0]}-{b[1]}: " if len(pairs) > 1 else "")
        return decide(cells, mode, what)
    spec = dict(pairs=list(pairs), on=list(on), mode=mode, fractions=tuple(fractions), levels=levels)
    CLAIMS.register(id)(Claim(id, paper, section, figure, quote, test, decide_pairs, tuple(items), uses_ra, spec))


def evaluate_all(rows: list[dict], domain_gap: dict | None = None, verdict_ra: str = "pgd20",
                 recipes: dict[str, dict[str, str]] | None = None, sources: dict[str, dict] | None = None) -> dict:
    """Every registered claim on ``rows``; the document written to ``metrics/claims.json``.

    Top-level counts are those under ``verdict_ra``; ``by_variant`` holds the counts under each RA
    variant and ``differ`` the claims whose outcome depends on the variant. ``recipes``: per paper (``DW``,
    ``RT``) its {regime: recipe tag} (``Params.recipe_tags``); a claim reads its paper's view of the runs
    (:func:`repro.verdicts.paper_view`, e.g. RT's claims the runs of RT's fine-tuning recipe); None: every
    claim reads the runs of the regimes' own recipes. ``sources``: per paper its {(kind, task, regime): source} (RT's
    chosen ε, ``repro.pipeline.results.paper_sources``); None: every claim reads the kinds' own models' runs."""
    if verdict_ra not in RA_VARIANTS:
        raise ValueError(f"verdict_ra {verdict_ra!r}; allowed: {', '.join(RA_VARIANTS)}")
    recipes, sources = recipes or {}, sources or {}
    views = {paper: {v: Evidence(paper_view(rows, recipes.get(paper, {}), sources.get(paper)), domain_gap, key)
                     for v, key in RA_VARIANTS.items()} for paper in {CLAIMS.get(cid).paper for cid in CLAIMS}}
    present = {v: any(r.get(key) is not None for r in rows) for v, key in RA_VARIANTS.items()}
    claims, differ = {}, []
    for cid in CLAIMS:
        c = CLAIMS.get(cid)
        evs = views[c.paper]
        entry = {"paper": c.paper, "section": c.section, "figure": c.figure, "quote": c.quote, "test": c.test,
                 "items": list(c.items), "uses_ra": c.uses_ra}
        if c.uses_ra:
            by = {v: c.decide(evs[v]).as_dict() for v in RA_VARIANTS}
            head = by[verdict_ra]
            entry.update(outcome=head["outcome"], reason=head["reason"], numbers=head["numbers"],
                         by_variant={v: {"outcome": r["outcome"], "reason": r["reason"]} for v, r in by.items()})
            if all(present.values()) and len({r["outcome"] for r in by.values()}) > 1:
                differ.append(cid)
        else:
            entry.update(c.decide(evs["pgd20"]).as_dict())
        claims[cid] = entry
    doc = {**counts(claims), "verdict_ra": verdict_ra,
           "by_variant": {v: counts(claims, v) for v in RA_VARIANTS},
           "ra_variants_present": [v for v, ok in present.items() if ok], "differ": differ,
           "runs": len(rows), "excluded_not_learned": sum(r.get("learned", True) is False for r in rows),
           "claims": claims}
    return doc


def metric_view(doc: dict) -> dict:
    """The DVC metric (``metrics/claims.json``): the counts at the top level and, per claim, its outcome (and
    its outcome per RA variant) and the scalar numbers behind it; the quotes, tests, reasons and per-cell
    details stay in the full document (``metrics/claims_detail.json``), so ``dvc exp show`` stays readable."""
    out = {k: v for k, v in doc.items() if k != "claims"}
    out["claims"] = {}
    for cid, c in doc["claims"].items():
        e = {"outcome": c["outcome"]}
        e.update({v: r["outcome"] for v, r in c.get("by_variant", {}).items()})
        e.update({k: v for k, v in c["numbers"].items() if k != "detail"})
        out["claims"][cid] = e
    return out


def counts(claims: dict, variant: str | None = None) -> dict:
    """reproduced / inconclusive / contradicted / not_run / total over ``claims`` (a variant's outcome if given)."""
    out = {o.replace(" ", "_"): 0 for o in OUTCOMES}
    for e in claims.values():
        o = e["by_variant"][variant]["outcome"] if variant and e.get("by_variant") else e["outcome"]
        out[o.replace(" ", "_")] += 1
    out["total"] = len(claims)
    return out


def scorecard_line(doc: dict, tier: str) -> str:
    """"at tier <tier>: N reproduced, M inconclusive, K contradicted, J not run" (the report's first line)."""
    return (f"at tier {tier}: {doc['reproduced']} reproduced, {doc['inconclusive']} inconclusive, "
            f"{doc['contradicted']} contradicted, {doc['not_run']} not run")
