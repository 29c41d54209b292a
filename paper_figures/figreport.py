"""The report of the `figures` stage: ``<out>/manifest.json`` and ``<out>/index.html``.

The page opens with the claims scorecard (``metrics/claims_detail.json``, stage ``claims``, when present),
then the run's summary lines (``metrics/summary.json``: attack sanity, plausibility), the inputs' md5, and
one section per item of the catalogue (``items.yaml``): the paper's caption, the tier, the figure or
table, the paper's own values where it states them, the verdicts it supports and the notebooks' remarks.
The HTML is built from the ``string.Template``\\ s below; every value from the inputs is escaped.
"""
from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path
from string import Template

from figlib import aa_label
from fignotebooks import NOTEBOOKS, input_files

SUMMARY_FILE = "metrics/summary.json"
CLAIMS_FILE = "metrics/claims_detail.json"   # the claims stage (repro/claims/): scorecard, each item's verdicts
NOT_RUN_STATUS = "not run in this configuration"
#: the RA variants of the claims stage, as the scorecard names them (``aa``: the members and settings that ran,
#: figlib.aa_label, e.g. "AutoAttack, cut (APGD-CE + APGD-T; 10 it., 3 targets)")
RA_NAMES = {"pgd20": "PGD-20", "aa": aa_label()}

e = html.escape


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()[:12]


# --------------------------------------------------------------------------- manifest

def manifest(items: list[dict], not_run: dict[str, str], tier: str) -> dict:
    rows = []
    for it in items:
        rows.append({
            "id": it["id"], "paper": it["paper"], "label": it["label"], "title": it["title"],
            "status": NOT_RUN_STATUS if it["id"] in not_run else it.get("status", "available"),
            **({"reason": not_run[it["id"]]} if it["id"] in not_run else {}),
            "notebook": f"{it['notebook']}.ipynb" if it["notebook"] else None,
            "files": it["files"], "paper_values": it.get("paper_values"), "tier": tier,
        })
    return {"tier": tier, "report": "index.html", "items": rows,
            "notebooks": [f"notebooks/{nb}.ipynb" for nb in NOTEBOOKS]}


def write_manifest(out: Path, items: list[dict], not_run: dict[str, str], tier: str) -> None:
    (out / "manifest.json").write_text(json.dumps(manifest(items, not_run, tier), indent=1, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------- pieces of the page

def load_notes(out: Path) -> dict[str, list[str]]:
    notes: dict[str, list[str]] = {}
    for f in sorted((out / "notes").glob("*.json")):
        for k, v in json.loads(f.read_text()).items():
            notes.setdefault(k, []).extend(v)
    return notes


def md_to_html(text: str) -> str:
    """Markdown table file -> HTML, its headings demoted below the item's <h3>."""
    text = "\n".join("###" + line if line.startswith("#") else line for line in text.splitlines())
    try:
        import mistune

        return mistune.html(text)
    except ImportError:  # pragma: no cover - mistune is a declared dependency (pyproject.toml)
        return f"<pre>{html.escape(text)}</pre>"


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
section.item{border:1px solid #e3e3e3;border-radius:6px;padding:.8em 1.2em;margin:1.4em 0}
blockquote{margin:.5em 0;padding:.3em 1em;border-left:4px solid #bbb;color:#444;background:#fafafa}
.meta{font-size:.9em;color:#555}.tier{font-weight:bold;color:#0072B2}
.na{color:#b00;font-weight:bold}.notes{font-size:.85em;color:#7a4b00}
img{max-width:100%;height:auto;border:1px solid #eee}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}
.paper{background:#fff7e6;padding:.1em .4em;border-radius:3px}
.reproduced{color:#1a7f37;font-weight:bold}.contradicted{color:#b00;font-weight:bold}
.inconclusive{color:#9a6700;font-weight:bold}.not-run{color:#777;font-weight:bold}
.not-testable-here{color:#5a4fcf;font-weight:bold}.descriptive{color:#555;font-style:italic}
.kind{font-size:.8em;color:#fff;background:#777;border-radius:3px;padding:0 .3em}
section.scorecard{border:2px solid #0072B2;border-radius:6px;padding:.6em 1.2em;margin:1em 0}
"""

SANITY = Template(
    '<p class="$cls">Attack sanity (PGD monotone in eps, PGD ≤ FGSM, eps 0 = SA, noise weaker than PGD, AutoAttack '
    "not significantly stronger than PGD; exact sign tests): $ok of $checked robust evaluations passed every "
    "check$flagged$not_checked.</p>$runs")
SANITY_FLAGGED = Template("; <b>$n flagged</b> ($failed), a sign of gradient masking: see <code>metrics/sanity.json</code>")
SANITY_RUN = Template("<li>$run: $failed; RA (PGD-20) $pgd % vs $strong % under the stronger attack (AutoAttack: "
                      "ra_aa's members where computed, else APGD-CE + APGD-T) on $n images</li>")


def sanity_html(summary: dict) -> str:
    """The report's line on the attack sanity checks (repro/sanity.py, counted in metrics/summary.json;
    metrics/sanity.json lists the flagged runs); flagged runs are shown in red."""
    san = summary.get("attack_sanity")
    if not san:
        return ""
    failed = ", ".join(f"{k[len('failed_'):]} ×{v}" for k, v in san.items() if k.startswith("failed_") and v)
    runs = "".join(  # each flagged run with both numbers: RA under PGD-20 and under the stronger attack
        SANITY_RUN.substitute(run=e(str(r.get("run"))), failed=e(", ".join(r.get("failed", []))),
                              pgd=f"{100 * r['strong_pgd']:.1f}", strong=f"{100 * r['strong']:.1f}",
                              n=e(str(r.get("strong_n"))))
        for r in san.get("flagged_runs") or [] if r.get("strong") is not None and r.get("strong_pgd") is not None)
    return SANITY.substitute(
        cls="na" if san.get("flagged") else "meta", ok=e(str(san.get("ok", "?"))), checked=e(str(san.get("checked", "?"))),
        flagged=SANITY_FLAGGED.substitute(n=e(str(san["flagged"])), failed=e(failed)) if san.get("flagged") else "",
        not_checked=f"; {e(str(san['not_checked']))} not checked" if san.get("not_checked") else "",
        runs=f'<ul class="na">{runs}</ul>' if runs else "")


LEARNED_ALL = Template('<p class="meta">Plausibility: every one of the $runs runs learned (training loss fell, test SA '
                       "above chance by a one-sided binomial test).</p>")
LEARNED_NOT = Template('<p class="na"><b>$n runs did not learn</b> (training loss never fell or test SA within the '
                       "binomial margin of chance); their numbers appear in the figures but never count as "
                       'matching:</p><ul class="na">$runs</ul>')


def learned_html(summary: dict) -> str:
    """The report's line on the plausibility guard (repro/plausibility.py): runs whose training loss
    never fell or whose SA is within the binomial margin of chance, listed in red by name; they
    never count as matching in a double-win verdict."""
    if "not_learned" not in summary:
        return ""
    if not summary["not_learned"]:
        return LEARNED_ALL.substitute(runs=e(str(summary.get("runs", "?"))))
    runs = summary.get("not_learned_runs") or []
    return LEARNED_NOT.substitute(n=e(str(summary["not_learned"])), runs="".join(f"<li>{e(r)}</li>" for r in runs))


def _outcome(o: str) -> str:
    return f'<span class="{o.replace(" ", "-")}">{html.escape(o)}</span>'


SCORE_HEAD = Template(
    '<section class="scorecard" id="scorecard">\n<h2>Do the papers\' claims hold? $line</h2>\n<p class="meta">$total '
    "headline claims of both papers (stated, or <span class=\"kind\">derived</span> where the paper only implies "
    "them), each decided on this run's metrics by the rule in its row (<code>metrics/claims_detail.json</code>, "
    "<code>repro/claims/</code>); $descriptive descriptive row(s) shown but not counted. A verdict is a verdict on "
    "this run's scope only. <b>Not testable here</b>: the claim's premise (a stated rule, in its row) fails in this "
    "run, so neither outcome would bear on it; what the run's cells show is in the row$shows. RA-based claims "
    "counted under $ra RA. Runs that did not learn are never evidence ($excluded excluded).</p>$paper")
SCORE_PAPER = Template('<p class="meta">The same rules on the papers\' own printed numbers '
                       '(<code>paper_figures/paper_values.yaml</code>): $counts; a rule that called them contradicted '
                       "would be wrong.</p>")
SCORE_VARIANT = Template("<p>Under $ra RA: $reproduced reproduced, $inconclusive inconclusive, $contradicted "
                         "contradicted, $not_testable not testable here, $not_run not run; outcomes differ for: "
                         "$differ.</p>")
SCORE_TABLE = ("<details open><summary>Every claim</summary><table><tr><th>claim</th><th>paper</th><th>where</th>"
               "<th>quoted claim</th><th>outcome</th><th>on the paper's own numbers</th>"
               "<th>why (numbers in metrics/claims_detail.json)</th></tr>")
SCORE_ROW = Template(
    '<tr id="claim-$cid"><td>$cid$kind</td><td>$paper</td><td>$section; $figure<br><small>$links</small></td>'
    '<td style="text-align:left">“$quote”<br><small>test: $test</small>$premises</td><td>$outcome$alt</td>'
    '<td>$on_paper</td><td style="text-align:left">$reason</td></tr>')
COUNTS = ("reproduced", "inconclusive", "contradicted", "not_testable", "not_run")


def scorecard_html(claims: dict) -> str:
    """The report's opening: the scope and counts of metrics/claims.json ("at tier T (scope): N reproduced, ..."),
    what the not-testable claims' cells show, the rules' outcomes on the papers' own numbers, the claims whose
    outcome depends on the RA variant, and one row per claim (repro/claims/)."""
    verdict_ra = claims.get("verdict_ra")
    line = claims.get("scorecard") or f"at tier {claims.get('tier', '?')}"  # repro.claims.scorecard_line, by the stage
    shows: dict[str, int] = {}
    for c in claims.get("claims", {}).values():
        if c["outcome"] == "not testable here":
            o = c.get("numbers", {}).get("run_shows", "?")
            shows[o] = shows.get(o, 0) + 1
    shows_text = (" (of the " + str(sum(shows.values())) + ", the cells show " +
                  ", ".join(f"{n} {o}" for o, n in sorted(shows.items())) + ")") if shows else ""
    paper = claims.get("paper_numbers")
    paper_html = SCORE_PAPER.substitute(counts=e(", ".join(f"{n} {o.replace('_', ' ')}" for o, n in
                                                           sorted(paper.items())))) if paper else ""
    h = [SCORE_HEAD.substitute(line=e(line), total=claims["total"], descriptive=e(str(claims.get("descriptive", 0))),
                               ra=e(RA_NAMES.get(verdict_ra, str(verdict_ra))), shows=e(shows_text), paper=paper_html,
                               excluded=e(str(claims.get("excluded_not_learned", 0))))]
    for v in (v for v in claims.get("by_variant", {}) if v != verdict_ra):
        if v not in claims.get("ra_variants_present", []):
            h.append(f'<p class="meta">{e(RA_NAMES.get(v, v))} RA: not run at this tier.</p>')
            continue
        differ = ", ".join(f'<a href="#claim-{e(d)}">{e(d)}</a>' for d in claims.get("differ", [])) or "none"
        h.append(SCORE_VARIANT.substitute(ra=e(RA_NAMES.get(v, v)), differ=differ,
                                          **{k: claims["by_variant"][v].get(k, 0) for k in COUNTS}))
    h.append(SCORE_TABLE)
    for cid, c in claims.get("claims", {}).items():
        by = c.get("by_variant")
        alt = "".join(f"<br><small>{e(RA_NAMES.get(v, v))}: {_outcome(r['outcome'])}</small>" for v, r in by.items()
                      if v != verdict_ra) if by else ""
        if c["outcome"] == "not testable here" and c.get("numbers", {}).get("run_shows"):
            alt += f"<br><small>the run's cells: {_outcome(c['numbers']['run_shows'])}</small>"
        links = " ".join(f'<a href="#{e(i)}">{e(i)}</a>' for i in c.get("items", []))
        kind = c.get("kind", "stated")
        premises = "".join(f"<br><small>premise: {e(p)}</small>" for p in c.get("premises_stated", []))
        pn = c.get("paper_numbers")
        on_paper = f"{_outcome(pn['outcome'])}<br><small>{e(pn['source'])}</small>" if pn else "<small>–</small>"
        h.append(SCORE_ROW.substitute(cid=e(cid), links=links, outcome=_outcome(c["outcome"]), alt=alt,
                                      kind="" if kind == "stated" else f' <span class="kind">{e(kind)}</span>',
                                      premises=premises, on_paper=on_paper,
                                      **{k: e(c[k]) for k in ("paper", "section", "figure", "quote", "test", "reason")}))
    h.append("</table></details></section>")
    return "\n".join(h)


def item_claims_html(claims: dict, item_id: str) -> str:
    """The verdicts a report item supports (claims naming it in ``items``), shown beside the figure."""
    rows = [(cid, c) for cid, c in claims.get("claims", {}).items() if item_id in c.get("items", [])]
    if not rows:
        return ""
    return ('<p class="meta">Claims this item supports: ' + "; ".join(
        f'<a href="#claim-{html.escape(cid)}">{html.escape(cid)}</a> {_outcome(c["outcome"])} '
        f"({html.escape(c['reason'])})" for cid, c in rows) + ".</p>")


# --------------------------------------------------------------------------- the page

HEAD = Template(
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n<title>repro — paper figures and tables</title>\n'
    "<style>$css</style></head><body>\n<h1>repro — figures and tables of both papers</h1>")
INTRO = Template(
    "<p>Every figure and table below was produced from the pipeline's tracked outputs at scale tier "
    '<span class="tier">$tier</span> (params.yaml <code>tier</code>). Values labelled <span class="paper">paper</span> '
    "are the papers' own published numbers (<code>paper_figures/paper_values.yaml</code>, each with its citation), "
    "shown beside ours; they never enter our rows. Our tasks and models differ from the papers' unless the tier is "
    "<code>paper</code>.</p>")
SUMMARY = Template('<p class="meta">Evaluated runs: $runs, groups (mean ± std over seeds): $groups, pruned weights that '
                   "became non-zero during fine-tuning (mask violations): $mask_violations.</p>")
ITEM_HEAD = Template('<section class="item" id="$id">\n<h3>$paper $label — $title</h3>\n<blockquote>“$caption” <br>'
                     "<small>— $paper, caption of $label</small></blockquote>")
ITEM_NOT_RUN = Template('<p class="na">Not run in this configuration: $reason (notebook <a href="notebooks/$nb.ipynb">'
                        "$nb_text.ipynb</a>)</p></section>")
ITEM_META = Template('<p class="meta">Produced by tier <span class="tier">$tier</span> · notebook <a href="$href">'
                     "$nb.ipynb</a> · files: $files</p>")
ITEM_PAPER_VALUES = Template('<p class="meta">Shown beside ours: <span class="paper">paper</span> values from $source '
                             "(rows/sections labelled “paper”); ours are labelled “ours (tier $tier)”.</p>")
ITEM_FIGURE = Template('<p><a href="$svg"><img src="$png" alt="$paper $label: $title"></a></p>')
FOOT = ('<hr><p class="meta">Written by <code>paper_figures/render.py</code> (DVC stage <code>figures</code>). '
        'Machine-readable list: <a href="manifest.json">manifest.json</a>.</p></body></html>')


def item_html(it: dict, out: Path, tier: str, claims: dict, notes: list[str], not_run: dict[str, str]) -> list[str]:
    """One item's section: heading and caption, then why it is absent, or its files, verdicts and remarks."""
    paper, label = it["paper"], e(it["label"])
    h = [ITEM_HEAD.substitute(id=it["id"], paper=paper, label=label, title=e(it["title"]), caption=e(it["caption"]))]
    if it.get("status") == "not yet available":
        return h + [f'<p class="na">{e(it["why"])}</p></section>']
    if it["id"] in not_run:
        return h + [ITEM_NOT_RUN.substitute(reason=e(not_run[it["id"]]), nb=it["notebook"], nb_text=e(it["notebook"]))]
    h.append(ITEM_META.substitute(tier=e(tier), href=f"notebooks/{it['notebook']}.ipynb", nb=e(it["notebook"]),
                                  files=" · ".join(f'<a href="{f}">{e(f)}</a>' for f in it["files"])))
    if it.get("paper_values"):
        h.append(ITEM_PAPER_VALUES.substitute(source=e(it["paper_values"]), tier=e(tier)))
    for f in it["files"]:
        if f.endswith(".png"):
            h.append(ITEM_FIGURE.substitute(svg=f"{f[:-4]}.svg", png=f, paper=paper, label=label, title=e(it["title"])))
        elif f.endswith(".md") and (out / f).is_file():  # (not rendered under --only)
            h.append(f'<div class="table">{md_to_html((out / f).read_text())}</div>')
    if item_claims_html(claims, it["id"]):
        h.append(item_claims_html(claims, it["id"]))
    h += [f'<p class="notes">Remark: {e(n)}</p>' for n in notes]
    return h + ["</section>"]


def write_report(out: Path, root: Path, tier: str, items: list[dict], papers: dict[str, str],
                 not_run: dict[str, str]) -> None:
    notes = load_notes(out)
    summary = json.loads((root / SUMMARY_FILE).read_text()) if (root / SUMMARY_FILE).is_file() else {}
    claims = json.loads((root / CLAIMS_FILE).read_text()) if (root / CLAIMS_FILE).is_file() else {}
    h = [HEAD.substitute(css=CSS)]
    if claims:
        h.append(scorecard_html(claims))   # the report opens with the scorecard
    h.append(INTRO.substitute(tier=e(tier)))
    if summary:
        h.append(SUMMARY.substitute({k: e(str(summary.get(k, "?"))) for k in ("runs", "groups", "mask_violations")}))
    h += [line for line in (sanity_html(summary), learned_html(summary)) if line]
    h.append("<details><summary>Inputs (md5)</summary><ul>")
    for f in (f for f in input_files(root, NOTEBOOKS) if f.is_file()):  # (--only: others may be absent)
        rel = f.relative_to(root) if f.is_relative_to(root) else Path("paper_figures") / f.name
        h.append(f"<li><code>{e(str(rel))}</code> {md5(f)}</li>")
    h.append("</ul></details>")
    h.append("<p><b>Contents:</b> " + " · ".join(
        f'<a href="#{it["id"]}">{it["paper"]} {e(it["label"])}</a>' for it in items) + "</p>")
    for paper, citation in papers.items():
        h.append(f"<h2>{paper}: {e(citation)}</h2>")
        for it in (i for i in items if i["paper"] == paper):
            h += item_html(it, out, tier, claims, notes.get(it["id"], []), not_run)
    h.append(FOOT)
    (out / "index.html").write_text("\n".join(h) + "\n")
