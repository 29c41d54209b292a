"""The claims registry: every headline claim of both papers, tested on the pipeline's own metrics.

A :class:`Claim` names the paper, section and figure/table, quotes the paper, says in words which runs
it reads and how it decides (``test``), and carries a ``decide`` function that returns a
:class:`Result`: ``reproduced``, ``inconclusive`` (too few seeds or cells, or a gap inside the noise),
``contradicted``, or ``not run`` (its runs are absent at this tier), with the numbers behind it; a claim
whose premise (``repro.claims.premises``) fails in the run is ``not testable here`` whatever its cells say.

**What counts.** ``kind`` says what a row is: ``stated`` (the paper's sentence, tested as written),
``derived`` (a reading the paper implies but does not state, e.g. that the linear-evaluation margin
exceeds the fine-tuning one; labelled so in every output) or ``descriptive`` (numbers the paper only
prints, e.g. RT Table I's calibration columns: shown, never counted). The counts are over stated and
derived claims.

**Scope.** Every verdict is a verdict on one run: ``scope`` (tier, data, model, scale; built by the
stage) heads ``metrics/claims.json``, the log line and the report's first line.

**The papers' own numbers.** Where a paper prints the numbers a rule reads (``paper_figures/paper_values.yaml``),
``repro.claims.paper`` runs the same rule on them; its outcome is shown beside ours (``paper``).
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
from .premises import Premise
from .stats import Result, decide

NOT_TESTABLE = "not testable here"
OUTCOMES = ("reproduced", "inconclusive", "contradicted", NOT_TESTABLE, "not run")
DESCRIPTIVE = "descriptive"
KINDS = ("stated", "derived", "descriptive")
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
    kind: str = "stated"       # stated | derived | descriptive (not counted)
    premises: tuple[Premise, ...] = ()


CLAIMS: Registry[Claim] = Registry("claim")


def claim(id: str, paper: str, section: str, figure: str, quote: str, test: str, items=(), uses_ra=False,
          kind: str = "stated", premises=()):
    if kind not in KINDS:
        raise ValueError(f"claim {id}: kind {kind!r}; allowed: {', '.join(KINDS)}")

    def deco(fn: Callable[[Evidence], Result]) -> Callable[[Evidence], Result]:
        CLAIMS.register(id)(Claim(id, paper, section, figure, quote, test, fn, tuple(items), uses_ra, None, kind,
                                  tuple(premises)))
        return fn
    return deco


def compared(id: str, paper: str, section: str, figure: str, quote: str, test: str, pairs, on, mode="greater",
             fractions=(1.0,), levels: Callable[[float], bool] = lambda lv: lv > 0, margin=None, items=(),
             uses_ra=False, what: str = "", kind: str = "stated", premises=()) -> None:
    """Register a claim decided on the cells of :func:`versus`: every ticket pair (A, B) in ``pairs`` on every
    (regime, metric) in ``on``, at ``fractions`` and the sweep levels ``levels`` accepts; ``mode`` as in :func:`decide`."""
    def decide_pairs(ev: Evidence) -> Result:
        cells = []
        for a, b in pairs:
            for regime, metric in on:
                cells += versus(ev, a, b, [metric], [regime], fractions, levels=levels, margin=margin,
                                prefix=f"{a[0]}-{a[1]} vs {b[0]}-{b[1]}: " if len(pairs) > 1 else "")
        return decide(cells, mode, what)
    if kind not in KINDS:
        raise ValueError(f"claim {id}: kind {kind!r}; allowed: {', '.join(KINDS)}")
    spec = dict(pairs=list(pairs), on=list(on), mode=mode, fractions=tuple(fractions), levels=levels, margin=margin)
    CLAIMS.register(id)(Claim(id, paper, section, figure, quote, test, decide_pairs, tuple(items), uses_ra, spec,
                              kind, tuple(premises)))


def judge(c: Claim, ev: Evidence) -> Result:
    """The claim's outcome on ``ev``: its rule, then its premises (a failed premise makes a decided claim
    ``not testable here``; the rule's own outcome stays in ``numbers.run_shows``), then its kind (a
    descriptive claim's outcome is ``descriptive``)."""
    r = c.decide(ev)
    checks = [(p.name, p.check(ev)) for p in c.premises]
    nums = dict(r.numbers)
    if checks:
        nums["premises"] = [chk.as_dict(name) for name, chk in checks]
    failed = [f"{name}: {chk.detail}" for name, chk in checks if chk.holds is False]
    if c.kind == "descriptive":
        return Result(DESCRIPTIVE, r.reason, nums)
    if failed and r.outcome != "not run":
        nums["run_shows"] = r.outcome
        return Result(NOT_TESTABLE, "premise fails: " + "; ".join(failed) + f" (the run shows: {r.outcome}, "
                      f"{r.reason})", nums)
    return Result(r.outcome, r.reason, nums)


def evaluate_all(rows: list[dict], domain_gap: dict | None = None, verdict_ra: str = "pgd20",
                 recipes: dict[str, dict[str, str]] | None = None, sources: dict[str, dict] | None = None,
                 context: dict | None = None, paper_context: dict[str, dict] | None = None,
                 paper_numbers: dict | None = None) -> dict:
    """Every registered claim on ``rows``; the document written to ``metrics/claims.json``.

    Top-level counts are those under ``verdict_ra`` over the counted (stated and derived) claims; ``by_variant``
    holds the counts under each RA variant and ``differ`` the claims whose outcome depends on the variant.
    ``recipes``: per paper (``DW``, ``RT``) its {regime: recipe tag} (``Params.recipe_tags``); a claim reads its
    paper's view of the runs (:func:`repro.verdicts.paper_view`, e.g. RT's claims the runs of RT's fine-tuning
    recipe); None: every claim reads the runs of the regimes' own recipes. ``sources``: per paper its {(kind, task,
    regime): source} (RT's chosen ε, ``repro.pipeline.results.paper_sources``); None: the kinds' own models' runs.
    ``context``: the premises' inputs and
    the analysis stage's numbers (:class:`Evidence`), with ``scope``; ``paper_context``: per paper, keys that replace
    the context's for that paper's claims (RT's ``source_sa`` of the ε-grid models its runs use). ``paper_numbers``: the same rules' outcomes on the
    papers' printed numbers (:func:`repro.claims.paper.evaluate_paper`), shown beside ours (``paper_numbers`` of each
    claim)."""
    if verdict_ra not in RA_VARIANTS:
        raise ValueError(f"verdict_ra {verdict_ra!r}; allowed: {', '.join(RA_VARIANTS)}")
    recipes, sources = recipes or {}, sources or {}
    context = context or {}
    by_paper = paper_context or {}
    views = {paper: {v: Evidence(paper_view(rows, recipes.get(paper, {}), sources.get(paper)), domain_gap, key,
                              {**context, **by_paper.get(paper, {})})
                     for v, key in RA_VARIANTS.items()} for paper in {CLAIMS.get(cid).paper for cid in CLAIMS}}
    present = {v: any(r.get(key) is not None for r in rows) for v, key in RA_VARIANTS.items()}
    on_paper = paper_numbers or {}
    claims, differ = {}, []
    for cid in CLAIMS:
        c = CLAIMS.get(cid)
        evs = views[c.paper]
        entry = {"paper": c.paper, "section": c.section, "figure": c.figure, "quote": c.quote, "test": c.test,
                 "items": list(c.items), "uses_ra": c.uses_ra, "kind": c.kind,
                 "premises_stated": [f"{p.name}: {p.text}" for p in c.premises]}
        if c.uses_ra:
            by = {v: judge(c, evs[v]).as_dict() for v in RA_VARIANTS}
            head = by[verdict_ra]
            entry.update(outcome=head["outcome"], reason=head["reason"], numbers=head["numbers"],
                         by_variant={v: {"outcome": r["outcome"], "reason": r["reason"]} for v, r in by.items()})
            if all(present.values()) and len({r["outcome"] for r in by.values()}) > 1:
                differ.append(cid)
        else:
            entry.update(judge(c, evs["pgd20"]).as_dict())
        if paper_numbers is not None:
            entry["paper_numbers"] = on_paper.get(cid)
        claims[cid] = entry
    doc = {**counts(claims), "verdict_ra": verdict_ra, "scope": context.get("scope"),
           "by_variant": {v: counts(claims, v) for v in RA_VARIANTS},
           "ra_variants_present": [v for v, ok in present.items() if ok], "differ": differ,
           "runs": len(rows), "excluded_not_learned": sum(r.get("learned", True) is False for r in rows),
           "claims": claims}
    if paper_numbers is not None:
        doc["paper_numbers"] = paper_counts(claims)
    return doc


def paper_counts(claims: dict) -> dict:
    """How the rules decide the papers' own printed numbers: outcome -> count, over the claims they bear on."""
    out: dict = {}
    for e in claims.values():
        p = e.get("paper_numbers")
        if p:
            out[p["outcome"].replace(" ", "_")] = out.get(p["outcome"].replace(" ", "_"), 0) + 1
    return out


def metric_view(doc: dict) -> dict:
    """The DVC metric (``metrics/claims.json``): the counts at the top level and, per claim, its outcome (and
    its outcome per RA variant) and the scalar numbers behind it; the quotes, tests, reasons and per-cell
    details stay in the full document (``metrics/claims_detail.json``), so ``dvc exp show`` stays readable."""
    out = {k: v for k, v in doc.items() if k != "claims"}
    out["claims"] = {}
    for cid, c in doc["claims"].items():
        e = {"outcome": c["outcome"], "kind": c.get("kind", "stated")}
        if c.get("paper_numbers"):
            e["paper_numbers"] = c["paper_numbers"]["outcome"]
        for chk in c["numbers"].get("premises", []):
            e[f"premise: {chk['premise']}"] = chk["holds"]
        e.update({v: r["outcome"] for v, r in c.get("by_variant", {}).items()})
        e.update({k: v for k, v in c["numbers"].items() if k not in ("detail", "premises") and
                  not isinstance(v, list)})
        out["claims"][cid] = e
    return out


def counts(claims: dict, variant: str | None = None) -> dict:
    """reproduced / inconclusive / contradicted / not_testable / not_run / total over the counted claims
    (stated and derived; a variant's outcome if given), and how many descriptive rows were left out."""
    out = {o.replace(" ", "_").replace("_here", ""): 0 for o in OUTCOMES}
    descriptive = 0
    for e in claims.values():
        if e.get("kind") == "descriptive":
            descriptive += 1
            continue
        o = e["by_variant"][variant]["outcome"] if variant and e.get("by_variant") else e["outcome"]
        out[o.replace(" ", "_").replace("_here", "")] += 1
    out["total"] = sum(out.values())
    out["descriptive"] = descriptive
    return out


def scope_text(scope: dict | None) -> str:
    """The scope in a few words: data, model, scale (``scope`` of :func:`evaluate_all`)."""
    if not scope:
        return ""
    return scope.get("summary", "")


def scorecard_line(doc: dict, tier: str) -> str:
    """"at tier <tier> (<scope>): N reproduced, M inconclusive, K contradicted, T not testable here, J not run"
    (the report's first line and the claims stage's log line)."""
    scope = scope_text(doc.get("scope"))
    return (f"at tier {tier}{f' ({scope})' if scope else ''}: {doc['reproduced']} reproduced, "
            f"{doc['inconclusive']} inconclusive, {doc['contradicted']} contradicted, "
            f"{doc['not_testable']} not testable here, {doc['not_run']} not run")
