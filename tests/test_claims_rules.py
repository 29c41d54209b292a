"""Issue 27: what a verdict is about and the statistics behind it (repro/claims/): scope and premises ("not testable
here"), only the papers' claims counted, the noise model (t for few seeds, paired per-image comparisons, bootstrap
errors; the per-run record behind them: tests/test_claims_record.py), every headline claim listed, and the papers'
own printed numbers through the same rules (never contradicted)."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from repro.base.io import pack_bits, unpack_bits
from repro.claims import CLAIMS, NOT_TESTABLE, Evidence, evaluate_all, judge, scorecard_line
from repro.claims.evidence import best_of, cell
from repro.claims.premises import (SOURCE_RATIO, comparable_backbones, independent_pretrainings, large_model,
                                   matches_at_lowest_level, sweep_reaches)
from repro.claims.stats import Cell, binom_tail, combine, decide, spearman_perm_p, tcrit

REPO = Path(__file__).resolve().parents[1]
AT, STD, FAT, RS = "pgd_adversarial", "standard", "fast_adversarial", "random_smoothing"


def run(kind, method, task, regime, level, sa, ra=0.1, seed=0, fraction=1.0, **extra):
    r = {"kind": kind, "method": method, "task": task, "regime": regime, "fraction": fraction, "level": level,
         "seed": seed, "sa": sa, "ra": ra, "nll": 1.0, "ece": 0.05, "ood_auroc": 0.7, "n_test": 1000,
         "n_robust": 1000, "measured_sparsity": level}
    r.update(extra)
    return r


def omp_rows(robust, natural, tasks=("t1", "t2", "t3"), levels=(0.5, 0.8)):
    return [run(k, "omp", t, "standard", lv, v) for t in tasks for lv in levels for k, v in ((AT, robust),
                                                                                               (STD, natural))]


# --------------------------------------------------------------------------- premises and "not testable here"

def test_comparable_backbones_premise_is_the_papers_ratio():
    assert SOURCE_RATIO == pytest.approx(54.53 / 76.13)
    p = comparable_backbones((AT, STD))
    ev = lambda ctx: Evidence([], None, "ra", ctx)  # noqa: E731
    chk = p.check(ev({"source_sa": {AT: 0.516, STD: 0.890}}))          # the embedded default: 0.58
    assert chk.holds is False and "0.58" in chk.detail
    assert p.check(ev({"source_sa": {AT: 0.6386, STD: 0.7613}})).holds is True   # MadryLab eps 4 vs torchvision
    assert p.check(ev({"source_sa": {AT: 0.5453, STD: 0.7613}})).holds is True   # DW's eps 8: exactly the bound
    assert p.check(ev({"source_sa": {AT: 0.54, STD: 0.7613}})).holds is False
    assert p.check(ev({"source_sa": {}})).holds is None                          # not recorded: noted, decided
    assert p.check(ev({"source_sa": {}, "published": [AT, STD]})).holds is True  # the papers' checkpoints


def test_other_premises():
    ev = lambda ctx, rows=(): Evidence(list(rows), None, "ra", ctx)  # noqa: E731
    assert large_model().check(ev({"model": {"arch": "cifar_resnet"}})).holds is False
    assert large_model().check(ev({"model": {"arch": "resnet50"}})).holds is True
    assert independent_pretrainings((STD, AT)).check(ev({"published": []})).holds is False
    assert independent_pretrainings((STD, AT)).check(ev({"published": [AT]})).holds is True
    rows = [run(AT, "imp", "t", "standard", lv, 0.5) for lv in (0.5, 0.8926)]
    assert sweep_reaches(0.956).check(ev({}, rows)).holds is False
    rows.append(run(AT, "imp", "t", "standard", 0.9719, 0.5))
    assert sweep_reaches(0.956).check(ev({}, rows)).holds is True


def test_no_ticket_matching_at_the_lowest_level_makes_the_order_untestable():
    rows = []
    for kind in (STD, FAT, AT):
        for s in (0, 1):
            for regime in ("standard", "adversarial"):
                rows.append(run(kind, "dense", "t", regime, 0.0, 0.8 + 0.01 * s, ra=0.4, seed=s))
                rows += [run(kind, "imp", "t", regime, lv, 0.6, ra=0.2, seed=s) for lv in (0.488, 0.8)]
    ev = Evidence(rows, None, "ra", {})
    assert matches_at_lowest_level((STD, FAT, AT)).check(ev).holds is False
    r = judge(CLAIMS.get("dw-extreme-order"), ev)
    assert r.outcome == NOT_TESTABLE and "lowest level (48.8 %)" in r.reason
    assert r.numbers["run_shows"] in ("inconclusive", "reproduced", "contradicted")


def test_not_testable_keeps_what_the_run_shows_and_counts_separately():
    rows = omp_rows(0.30, 0.60)   # robust tickets lose everywhere
    ctx = {"source_sa": {AT: 0.516, STD: 0.890}}
    doc = evaluate_all(rows, context=ctx)
    c = doc["claims"]["rt-finetune"]
    assert c["outcome"] == NOT_TESTABLE and c["numbers"]["run_shows"] == "contradicted"
    assert c["numbers"]["premises"][0]["holds"] is False and "premise fails" in c["reason"]
    assert doc["not_testable"] >= 1 and doc["contradicted"] == 0
    ok = evaluate_all(rows, context={"source_sa": {AT: 0.70, STD: 0.75}})
    assert ok["claims"]["rt-finetune"]["outcome"] == "contradicted"


def test_rt_premise_reads_the_eps_models_rt_chose(tmp_path, monkeypatch):
    """RT's runs of θ_AT are on the ε select_eps chose per task (RT Sec. III-A), so RT's comparable-backbones premise
    reads those models' source accuracy, not the kind's own model's (which DW's claims keep): the embedded default's
    1/255 model (83.8 % vs 89.0 %) is comparable where its own 4/255 model (51.6 %) is not."""
    import json

    from repro.stages import claims as stage

    rows = omp_rows(0.30, 0.60)
    ctx = {"source_sa": {AT: 0.516, STD: 0.890}}
    doc = evaluate_all(rows, context=ctx, paper_context={"RT": {"source_sa": {AT: 0.838, STD: 0.890}}})
    assert doc["claims"]["rt-finetune"]["outcome"] == "contradicted"          # the premise holds: decided
    assert doc["claims"]["dw-at-outperforms"]["numbers"]["premises"][0]["holds"] is False   # DW: own model
    monkeypatch.chdir(tmp_path)
    from repro.plan import pretrained_dir
    for src, sa in (("eps1", 0.838), ("eps2", 0.70)):
        d = pretrained_dir(AT, src)
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({"source_sa": sa}))
    srcs = {"dw": {}, "rt": {(AT, "t1", "standard"): "eps1", (AT, "t2", "standard"): "eps2"}}
    out = stage.paper_contexts(srcs, ctx["source_sa"])
    assert set(out) == {"RT"} and out["RT"]["source_sa"] == {AT: 0.70, STD: 0.890}   # the least accurate chosen
    assert out["RT"]["source_models"] == {AT: ["pgd_adversarial-eps1", "pgd_adversarial-eps2"]}
    srcs["rt"][(AT, "t3", "standard")] = "eps4"                                   # not recorded: not guessed
    assert AT not in stage.paper_contexts(srcs, ctx["source_sa"])["RT"]["source_sa"]


# --------------------------------------------------------------------------- only the papers' claims count

def test_calibration_is_descriptive_and_derived_claims_are_labelled():
    assert CLAIMS.get("rt-properties-calibration").kind == "descriptive"
    assert "lower NLL in 6 of its 8 cells and the lower ECE in 2 of 8" in CLAIMS.get("rt-properties-calibration").test
    assert CLAIMS.get("rt-linear-margin").kind == "derived"
    assert CLAIMS.get("dw-fat-over-std-adversarial").kind == "derived"
    assert "dw-robust-ra" not in CLAIMS.names()
    doc = evaluate_all([])
    assert doc["descriptive"] == 1 and doc["total"] == len(CLAIMS.names()) - 1
    assert doc["claims"]["rt-properties-calibration"]["outcome"] == "descriptive"


HEADLINE = {   # issue 27, point 5: every headline claim has a row
    "dw-tickets-amplify": "DW Sec. 5 (2): tickets beat their own dense model with 10 % / 1 % data",
    "dw-at-gain-stable-standard": "DW Sec. 4.1 (3): the AT gain stays stable in standard transfer",
    "dw-at-gain-shrinks-adversarial": "DW Sec. 4.1 (3): it shrinks past ~95 % in adversarial transfer",
    "dw-aimp-beats-random": "DW Sec. 4.2: A-IMP vs random",
    "dw-mask-iou": "DW Sec. 6 / Fig. A8: mask IoU below 20 % and falling",
    "dw-zero-kernels": "DW Sec. 6 / Fig. 7: standard masks have the most zero kernels",
    "dw-flatter-landscape": "DW Figs. 6 / A9: flatter landscape",
    "rt-advantage-shrinks": "RT key insight (2): the advantage shrinks with sparsity",
    "rt-structured-coarser": "RT Fig. 3 (2): smaller gains for coarser patterns",
    "rt-aimp-us-mild": "RT Fig. 4 (2): US best at mild sparsity",
    "rt-aimp-ds-high": "RT Fig. 4 (3): DS better at high sparsity",
    "rt-vtab-count": "RT Fig. 9: 7 / 3 / 2 of 12 tasks",
}


def test_every_claim_has_its_row_and_kind_in_the_docs():
    text = (REPO / "docs" / "CLAIMS.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z0-9-]+)` \| [^|]+ \| (stated|derived|descriptive) \|", text, re.M))
    assert rows == {cid: CLAIMS.get(cid).kind for cid in CLAIMS}


def test_every_headline_claim_has_a_row_and_at_least_35_count():
    names = set(CLAIMS.names())
    assert set(HEADLINE) <= names
    counted = [c for c in names if CLAIMS.get(c).kind != "descriptive"]
    assert len(names) >= 35 and len(counted) >= 35


# --------------------------------------------------------------------------- the noise model

def test_t_distribution_for_few_seeds():
    assert tcrit(math.inf) == pytest.approx(1.96, abs=0.01)
    assert tcrit(1) == pytest.approx(12.71, abs=0.01) and tcrit(2) == pytest.approx(4.30, abs=0.01)
    se, df = combine([(0.01 ** 2 / 2, 1), (0.01 ** 2 / 2, 1)])   # two sides, two seeds each, equal spread
    assert df == pytest.approx(2.0) and se == pytest.approx(0.01)
    se, df = combine([(1e-4, 1), (1e-4, math.inf)])              # half the variance from the test set
    assert df == pytest.approx(4.0)


def test_two_seeds_widen_the_threshold_by_t():
    """Robust 5 pp above natural, both sides 2 seeds 2 pp apart: Z = 2 called it a win, t with 2 df does not."""
    rows = []
    for s, d in ((0, -0.01), (1, 0.01)):
        rows += [run(AT, "omp", "t", "standard", 0.5, 0.65 + d, seed=s, n_test=100000),
                 run(STD, "omp", "t", "standard", 0.5, 0.60 + d, seed=s, n_test=100000)]
    c = cell(Evidence(rows), (AT, "omp", "t", "standard", 1.0, 0.5), (STD, "omp", "t", "standard", 1.0, 0.5), "sa", "x")
    assert c.df < 3 and c.result == "tie" and 2 * c.se < c.diff < c.threshold


def test_paired_per_image_comparison_on_shared_test_images():
    rng = np.random.default_rng(0)
    easy = rng.random(1000) < 0.6
    a = easy | (rng.random(1000) < 0.10)       # A: right on B's images and 4 pp more
    b = easy.copy()
    rows = [run(AT, "omp", "t", "standard", 0.5, a.mean(), correct={"sa": pack_bits(a)}),
            run(STD, "omp", "t", "standard", 0.5, b.mean(), correct={"sa": pack_bits(b)})]
    ev = Evidence(rows)
    key_a, key_b = (AT, "omp", "t", "standard", 1.0, 0.5), (STD, "omp", "t", "standard", 1.0, 0.5)
    paired = cell(ev, key_a, key_b, "sa", "x")
    for r in rows:
        del r["correct"]
    unpaired = cell(Evidence(rows), key_a, key_b, "sa", "x")
    assert paired.paired and not unpaired.paired and paired.se < unpaired.se / 2
    assert paired.result == "win" and unpaired.result == "win"
    assert (unpack_bits(pack_bits(a)) == a).all()


def test_bootstrap_errors_give_one_seed_metrics_a_noise_floor():
    """mIoU with one seed: without a sampling error the 1-point margin alone decided; with the stored bootstrap se a
    2-point gap on a noisy test set is a tie."""
    rows = [{"kind": k, "method": "omp", "task": "seg", "regime": "segmentation", "fraction": 1.0, "level": lv,
             "seed": 0, "miou": v} for lv in (0.5, 0.7, 0.9) for k, v in ((AT, 0.52), (STD, 0.50))]
    assert CLAIMS.get("rt-segmentation").decide(Evidence(rows)).outcome == "reproduced"
    for r in rows:
        r["se"] = {"miou": 0.015}
    r = CLAIMS.get("rt-segmentation").decide(Evidence(rows))
    assert r.outcome == "inconclusive" and r.numbers["ties"] == 3


def test_best_of_levels_is_bonferroni_raised():
    cells = [Cell(f"s{i}", d, 0.01, 0.01, 2) for i, d in enumerate((0.0, 0.021, 0.0))]
    assert cells[1].result == "win"                    # 2.1 se > 1.96 se
    b = best_of(cells, "best")
    assert b.result == "tie" and b.crit == pytest.approx(2.39, abs=0.01)   # 1 - 0.025/3
    assert best_of([Cell("x", -0.05, 0.01, 0.01, 2)] * 3, "b").result == "loss"


def test_exact_tests():
    assert binom_tail(6, 6) == pytest.approx(1 / 64) and binom_tail(0, 4) == 1.0
    assert binom_tail(6, 6, 1 / 3) == pytest.approx(3 ** -6)
    assert spearman_perm_p([1, 2, 3], [1, 2, 3]) == pytest.approx(1 / 6)
    assert spearman_perm_p([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1 / 24)


def test_equal_mode_contradicts_only_beyond_the_bound():
    near = [Cell("c", 0.015, 0.004, 0.01, 2) for _ in range(4)]     # 1.5 pp, known to ±0.8 pp: equivalent
    assert decide(near, "equal").outcome == "reproduced"
    mid = [Cell("c", 0.025, 0.01, 0.01, 2) for _ in range(4)]       # 2.5 pp ± 2 pp: neither
    r = decide(mid, "equal")
    assert r.outcome == "inconclusive" and r.numbers["wins"] == 4   # the old rule: contradicted
    far = [Cell("c", 0.06, 0.01, 0.01, 2) for _ in range(4)]        # 6 pp ± 2 pp: beyond 3 pp
    assert decide(far, "equal").outcome == "contradicted"


def test_not_less_all_ties_is_inconclusive():
    ties = [Cell("c", 0.0, 0.01, 0.01, 2) for _ in range(4)]
    assert decide(ties, "not_less").outcome == "inconclusive"
    assert decide([Cell("c", 0.05, 0.01, 0.01, 2)] * 2 + ties[:2], "not_less").outcome == "reproduced"


# --------------------------------------------------------------------------- the papers' own numbers

def test_the_papers_own_numbers_are_never_contradicted():
    from repro.claims.paper import evaluate_paper

    values = yaml.safe_load((REPO / "paper_figures" / "paper_values.yaml").read_text())
    out = evaluate_paper(values)
    assert set(out) >= {"dw-exist", "dw-extreme-order", "dw-no-gradient-masking",
                        "dw-transfer-attack-sparse-beats-dense", "rt-properties-accuracy",
                        "rt-properties-adversarial", "rt-properties-ood", "rt-domain-gap", "rt-vtab-count"}
    for cid, r in out.items():
        assert r["outcome"] in ("reproduced", "inconclusive", "descriptive"), (cid, r)
    assert out["rt-domain-gap"]["outcome"] == "reproduced"   # RT's own Table II under the new rule
    assert out["rt-vtab-count"]["outcome"] == "reproduced"
    assert out["dw-extreme-order"]["outcome"] == "reproduced"
    doc = evaluate_all([], paper_numbers=out)
    assert doc["claims"]["rt-domain-gap"]["paper_numbers"]["source"] == "RT Table II"
    assert "contradicted" not in doc["paper_numbers"]


def test_every_table_that_prints_numbers_is_read_by_a_rule():
    """Both papers' tables, found in their texts: each is read by a rule on the papers' numbers or prints none."""
    from repro.claims.paper import NO_NUMBERS, SOURCES

    papers = REPO.parent / "shared" / "papers"
    if not papers.is_dir():
        pytest.skip("the papers' texts are not beside this clone")
    found = {}
    for tag, name, pat in (("DW", "double-win-lottery-tickets.txt", r"^Table (A?\d+)\. "),
                           ("RT", "robust-tickets-transfer-better.txt", r"^TABLE ([IVX]+): ")):
        lines = (papers / name).read_text().splitlines()
        for i, line in enumerate(lines):
            m = re.match(pat, line)
            if m:
                found[f"{tag} Table {m.group(1)}"] = lines[i + 1:i + 9]
    assert set(found) == {"DW Table 1", "DW Table A2", "RT Table I", "RT Table II"}
    read = {src.split(" (")[0] for src, _ in SOURCES.values()}
    for table, body in found.items():
        if table in NO_NUMBERS:
            short = [ln for ln in body if ln.strip() and len(ln) < 120]
            assert short and not any(re.search(r"\d", ln) for ln in short), (table, short)   # truly no numbers
            assert table not in read
        else:
            assert table in read, f"{table} prints numbers no rule reads"


def test_scope_heads_the_line():
    doc = {"reproduced": 1, "inconclusive": 2, "contradicted": 3, "not_testable": 4, "not_run": 5,
           "scope": {"summary": "synthetic data: s → 3 task(s) at 16 px"}}
    assert scorecard_line(doc, "default") == ("at tier default (synthetic data: s → 3 task(s) at 16 px): 1 reproduced, "
                                              "2 inconclusive, 3 contradicted, 4 not testable here, 5 not run")


def test_vtab_count_contradicts_on_losses_not_on_ties():
    """RT's 7/3/2 of 12 reproduces; three losses of three contradict; twelve ties (a run too noisy to see RT's wins)
    do not: noise turns wins into ties, never into losses (a rule on the score W - L contradicted RT's own pattern
    in 18 % of simulated default runs)."""
    from repro.claims.rt import count_decision

    def count(w, t, lo):
        return count_decision({f"t{i}": r for i, r in enumerate(["win"] * w + ["tie"] * t + ["loss"] * lo)})
    r = count(7, 3, 2)
    assert r.outcome == "reproduced" and r.numbers["p_losses_under_paper"] == pytest.approx(0.619, abs=0.001)
    assert r.numbers["p_without_advantage"] == pytest.approx(0.012, abs=0.001)
    r = count(0, 0, 3)
    assert r.outcome == "contradicted" and r.numbers["p_losses_under_paper"] == pytest.approx(1 / 216, abs=1e-4)
    assert count(0, 12, 0).outcome == "inconclusive"
    assert count(3, 0, 0).outcome == "reproduced" and count(2, 10, 0).outcome == "inconclusive"


def test_old_domain_gap_case_is_no_longer_reproduced():
    """Issue 27: rho = 1.00 over 3 tasks (p = 1/6) while robust tickets lose on every task."""
    tasks = ("near", "mid", "far")
    rows = [run(k, "omp", t, "linear", 0.8926, v) for t, d in zip(tasks, (-0.15, -0.10, -0.05))
            for k, v in ((AT, 0.5 + d), (STD, 0.5))]
    r = CLAIMS.get("rt-domain-gap").decide(Evidence(rows, {"near": 1.0, "mid": 2.0, "far": 3.0}))
    assert r.outcome == "inconclusive" and "needs 4" in r.reason
