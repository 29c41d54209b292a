"""The figures layer (paper_figures/): render every notebook on a tiny synthetic set of pipeline outputs.

The inputs are written here (no dependency on a pipeline run): plots/curves.csv, the double-win
verdicts, the analysis stage's files and params.yaml. Checks: every expected item exists, is
non-empty and is linked from index.html; a missing input stops the stage naming the file (before
and inside a notebook); no figure is drawn from an empty selection: it is listed as "not run in this
configuration" with the reason while the others render (also on a grid without IMP); editing one metric
value changes the corresponding table; saved figures carry no timestamps.
"""
from __future__ import annotations

import csv
import itertools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
RENDER = REPO / "paper_figures" / "render.py"

pytest.importorskip("papermill")
pytest.importorskip("matplotlib")
pytest.importorskip("pandas")

#: the issue's list: every item the report must show
EXPECTED = {
    "dw-fig3": ["dw_fig3.png", "dw_fig3.svg"],
    "dw-fig4": ["dw_fig4.png", "dw_fig4.svg"],
    "dw-fig5": ["dw_fig5.png", "dw_fig5.svg"],
    "dw-fig6": ["dw_fig6.png", "dw_fig6.svg"],
    "dw-figA9": ["dw_figA9.png", "dw_figA9.svg"],
    "dw-fig7": ["dw_fig7.png", "dw_fig7.svg"],
    "dw-figA8": ["dw_figA8.png", "dw_figA8.svg"],
    "dw-tableA2": ["dw_table_a2.csv", "dw_table_a2.md"],
    "dw-extreme-sparsity": ["dw_extreme_sparsity.csv", "dw_extreme_sparsity.md"],
    "rt-fig1": ["rt_fig1.png", "rt_fig1.svg"],
    "rt-fig2": ["rt_fig2.png", "rt_fig2.svg"],
    "rt-fig3": ["rt_fig3.png", "rt_fig3.svg"],
    "rt-fig4": ["rt_fig4.png", "rt_fig4.svg"],
    "rt-fig5": ["rt_fig5.png", "rt_fig5.svg"],
    "rt-fig6": ["rt_fig6.png", "rt_fig6.svg"],
    "rt-fig7": ["rt_fig7.png", "rt_fig7.svg"],
    "dw-figA10": ["dw_figA10.png", "dw_figA10.svg"],
    "rt-fig8": ["rt_fig8.png", "rt_fig8.svg"],
    "rt-table1": ["rt_table1.csv", "rt_table1.md"],
    "rt-fig9": ["rt_fig9.png", "rt_fig9.svg"],
    "rt-table2": ["rt_table2.csv", "rt_table2.md"],
}

KINDS = ["standard", "fast_adversarial", "pgd_adversarial", "random_smoothing"]
LEVELS = [0.36, 0.488]
METRICS = ["sa", "ra", "ece", "nll", "ood_auroc", "transfer_attack_acc", "measured_sparsity"]
DW_TASK, RT_TASK = "synth_near", "synth_far"


# --------------------------------------------------------------------------- synthetic pipeline outputs

def _grid() -> list[tuple]:
    """(kind, method, task, regime, fraction) of the ticket runs, shaped like params.yaml's experiments."""
    g = []
    dw = [("standard", "imp"), ("fast_adversarial", "imp"), ("pgd_adversarial", "imp"), ("pgd_adversarial", "random"),
          ("pgd_adversarial", "a_imp"), ("pgd_adversarial", "omp")]
    g += [(k, m, DW_TASK, r, 1.0) for (k, m), r in itertools.product(dw, ["standard", "adversarial"])]
    g += [(k, "imp", DW_TASK, "adversarial", f) for k in KINDS[:3] for f in (0.1, 0.01)]
    g += [(k, "omp", t, r, 1.0) for k, t, r in itertools.product(KINDS, [DW_TASK, RT_TASK], ["standard", "linear"])]
    g += [(k, m, RT_TASK, r, 1.0) for k, m, r in itertools.product(
        ["standard", "pgd_adversarial"], ["omp_row", "omp_kernel", "omp_channel"], ["standard", "linear"])]
    g += [(k, m, RT_TASK, "standard", 1.0) for k, m in itertools.product(
        ["standard", "pgd_adversarial"], ["imp", "a_imp", "a_imp_ds"])]
    g += [(k, "lmp", RT_TASK, "mask", 1.0) for k in ("standard", "pgd_adversarial")]
    return sorted(set(g))


def _row(rng, kind, method, task, regime, fraction, level) -> dict:
    r = {"kind": kind, "method": method, "task": task, "regime": regime, "fraction": fraction, "level": level,
         "n_seeds": 2}
    for m in METRICS:
        if m == "transfer_attack_acc" and not (regime == "adversarial" and task == DW_TASK):
            r[f"{m}_mean"], r[f"{m}_std"] = "", ""
            continue
        mean = level if m == "measured_sparsity" else float(rng.uniform(0.2, 0.9))
        r[f"{m}_mean"], r[f"{m}_std"] = round(mean, 6), round(float(rng.uniform(0, 0.03)), 6)
    return r


def make_inputs(root: Path) -> None:
    rng = np.random.default_rng(0)
    (root / "plots").mkdir(parents=True)
    (root / "metrics").mkdir()
    (root / "analysis" / "landscape").mkdir(parents=True)
    (root / "params.yaml").write_text("tier: default\nsparsity: 0.9\n")
    rows, dense = [], set()
    for kind, method, task, regime, fraction in _grid():
        for lv in LEVELS:
            rows.append(_row(rng, kind, method, task, regime, fraction, lv))
        if regime != "mask":
            dense.add((kind, task, regime, fraction))
    rows += [_row(rng, k, "dense", t, r, f, 0.0) for k, t, r, f in sorted(dense)]
    fields = ["kind", "method", "task", "regime", "fraction", "level", "n_seeds"] + \
        [f"{m}_{s}" for m in METRICS for s in ("mean", "std")]
    with (root / "plots" / "curves.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)

    pairs = sorted({(k, m) for k, m, t, r, f in _grid() if t == DW_TASK and r == "adversarial" and f == 1.0})
    (root / "metrics" / "double_win.json").write_text(json.dumps(
        {f"{k}-{m}": {DW_TASK: {"extreme_sparsity": LEVELS[i % 2]}} for i, (k, m) in enumerate(pairs)}))
    (root / "plots" / "double_win_levels.json").write_text(json.dumps({
        f"verdicts_{k}-{m}-{DW_TASK}": {"kind": k, "method": m, "task": DW_TASK, "fraction": 1.0,
                                        "extreme_sparsity": LEVELS[i % 2],
                                        "levels": [{"level": lv, "measured_sparsity": lv, "standard_sa": True,
                                                    "adversarial_sa": True, "adversarial_ra": j <= i % 2,
                                                    "double_win": j <= i % 2} for j, lv in enumerate(LEVELS)]}
        for i, (k, m) in enumerate(pairs)}))
    (root / "metrics" / "summary.json").write_text(json.dumps({"runs": len(rows), "groups": len(rows),
                                                               "mask_violations": 0, "dense": {}}))

    a = root / "analysis"
    kinds3 = KINDS[:3]
    with (a / "mask_similarity.csv").open("w") as f:
        f.write("level,kind_a,kind_b,iou\n")
        for lv in LEVELS:
            for x, y in itertools.combinations(sorted(kinds3), 2):
                f.write(f"{lv},{x},{y},{rng.uniform(0.2, 0.9):.6f}\n")
    with (a / "zero_kernels.csv").open("w") as f:
        f.write("level,kind,zero_kernels,total_kernels,sparsity\n")
        for lv in LEVELS:
            for k in sorted(kinds3):
                f.write(f"{lv},{k},{int(rng.integers(5, 60))},200,{lv}\n")
    shapes = {"conv1.weight": (4, 3), "layer1.0.conv1.weight": (4, 4), "layer2.0.conv1.weight": (8, 4),
              "layer2.0.downsample.0.weight": (8, 4)}
    np.savez_compressed(a / "kernel_maps.npz", **{f"{k}|{n}": rng.random(s) < 0.3
                                                   for k in kinds3 for n, s in shapes.items()})
    (a / "domain_gap.json").write_text(json.dumps({DW_TASK: 17.5, RT_TASK: 351.2}))
    (root / "metrics" / "segment.json").write_text(json.dumps({"task": "synth_seg", "head": "fcn", "runs": [
        {"kind": k, "method": m, "sparsity": lv, "miou": round(float(rng.uniform(0.3, 0.8)), 6),
         "pixel_acc": round(float(rng.uniform(0.6, 0.95)), 6)}
        for k in kinds3 for m in ("omp", "imp") for lv in LEVELS] + [
        {"kind": k, "method": "dense", "sparsity": 0.0, "miou": 0.7, "pixel_acc": 0.9} for k in kinds3]}))
    al, be = np.linspace(-1, 0.3, 7), np.linspace(-0.2, 0.2, 5)
    A, B = np.meshgrid(al, be)
    with (a / "landscape" / "index.csv").open("w") as f:
        f.write("run,kind,method,task,regime,fraction,level,explained_1,explained_2,final_loss_clean\n")
        for k in kinds3:
            for frac in (1.0, 0.1, 0.01):
                run = f"{k}-imp__{DW_TASK}__adversarial-f{frac:g}-seed0"
                f.write(f"{run},{k},imp,{DW_TASK},adversarial,{frac},0.488,0.9,0.1,1.0\n")
                np.savez_compressed(a / "landscape" / f"{run}.npz", alphas=al, betas=be,
                                    loss_clean=1 + A ** 2 + 3 * B ** 2, loss_adv=2 + A ** 2 + 5 * B ** 2,
                                    trajectory=np.array([[-0.9, 0.1], [-0.4, -0.05], [0.0, 0.0]]),
                                    explained=np.array([0.9, 0.1]))


def render(root: Path, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RENDER), "--root", str(root), *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    make_inputs(root)
    res = render(root)
    assert res.returncode == 0, res.stderr[-3000:]
    return root


def _copy_inputs(src: Path, dst: Path) -> Path:
    for name in ("plots", "metrics", "analysis"):
        shutil.copytree(src / name, dst / name)
    shutil.copy(src / "params.yaml", dst / "params.yaml")
    return dst


# --------------------------------------------------------------------------- tests

def test_every_item_exists_and_is_linked(rendered):
    out = rendered / "paper_figures" / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    items = {it["id"]: it for it in manifest["items"]}
    assert set(items) == set(EXPECTED)
    index = (out / "index.html").read_text()
    for item_id, files in EXPECTED.items():
        it = items[item_id]
        assert f'id="{item_id}"' in index
        assert it["tier"] == "default"
        if not files:
            assert it["status"] == "not yet available"
            continue
        assert set(files) <= set(it["files"]), item_id
        for f in it["files"]:
            p = out / f
            assert p.is_file() and p.stat().st_size > 0, f
            assert f'href="{f}"' in index, f"{f} not linked from index.html"
    for nb in manifest["notebooks"]:
        assert (out / nb).is_file() and f'href="{nb}"' in index
    assert "tier <span class=\"tier\">default</span>" in index


def test_paper_values_shown_beside_ours(rendered):
    out = rendered / "paper_figures" / "out"
    a2 = (out / "dw_table_a2.csv").read_text()
    assert "ours (tier default)" in a2 and "paper (DW Table A2)" in a2 and "62.79" in a2
    t1 = (out / "rt_table1.md").read_text()
    assert "ours (tier default)" in t1 and "paper (RT Table I) — R-50" in t1
    t2 = (out / "rt_table2.csv").read_text()
    assert "205.04" in t2 and "ours (tier default)" in t2
    ext = (out / "dw_extreme_sparsity.md").read_text()
    assert "paper: CIFAR-10 (%)" in ext and f"ours: {DW_TASK} (%)" in ext


def test_figures_are_deterministic_files(rendered):
    out = rendered / "paper_figures" / "out"
    svg = (out / "dw_fig3.svg").read_text()
    assert "<dc:date>" not in svg and "Matplotlib v" not in svg
    png = (out / "dw_fig3.png").read_bytes()
    assert b"Software" not in png and b"tIME" not in png
    nb = (out / "notebooks" / "dw_transfer.ipynb").read_text()
    assert "start_time" not in nb and "end_time" not in nb


def test_missing_input_names_the_file(rendered, tmp_path):
    root = _copy_inputs(rendered, tmp_path)
    (root / "analysis" / "zero_kernels.csv").unlink()
    res = render(root, timeout=60)
    assert res.returncode == 2
    err = [line for line in res.stderr.splitlines() if "error" in line]
    assert len(err) == 1 and "zero_kernels.csv" in err[0]
    assert not (root / "paper_figures" / "out").exists()


def test_notebook_missing_input_names_the_file(rendered, tmp_path):
    root = _copy_inputs(rendered, tmp_path)
    gone = next((root / "analysis" / "landscape").glob("fast_adversarial-*.npz"))
    gone.unlink()
    res = render(root, "--only", "dw_analysis", timeout=120)
    assert res.returncode == 2
    assert gone.name in res.stderr and "MissingInput" in res.stderr
    assert not (root / "paper_figures" / "out" / "dw_fig6.png").exists()


def test_empty_selection_draws_no_figure(rendered, tmp_path):
    root = _copy_inputs(rendered, tmp_path)
    p = root / "plots" / "curves.csv"
    lines = p.read_text().splitlines(keepends=True)
    # no OMP ticket under whole-model fine-tuning: RT Fig. 1 has nothing to show; it is reported as not
    # run (with the reason) and the notebook's other figures are still drawn
    p.write_text("".join(line for line in lines if not (",omp," in line and ",standard," in line)))
    res = render(root, "--only", "rt_tickets", timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    out = root / "paper_figures" / "out"
    assert not (out / "rt_fig1.png").exists()
    items = {it["id"]: it for it in json.loads((out / "manifest.json").read_text())["items"]}
    assert items["rt-fig1"]["status"] == "not run in this configuration"
    assert "curves.csv" in items["rt-fig1"]["reason"] and "omp" in items["rt-fig1"]["reason"]
    section = (out / "index.html").read_text().split('id="rt-fig1"')[1].split("</section>")[0]
    assert "Not run in this configuration" in section and "curves.csv" in section and "<img" not in section
    for it in ("rt-fig4", "rt-fig5"):  # other cells of the same notebook (A-IMP, LMP: no OMP needed)
        assert items[it]["status"] == "available" and (out / EXPECTED[it][0]).is_file(), it


def test_no_segmentation_runs_draw_no_segmentation_figure(tmp_path):
    """segment.pairs: [] (the r18 and vtab overlays): metrics/segment.json holds no runs; the segmentation
    notebook reports RT Fig. 7 and DW Fig. A10 as not run in this configuration and the stage succeeds."""
    make_inputs(tmp_path)
    (tmp_path / "metrics" / "segment.json").write_text(json.dumps({"task": "voc2012", "head": "fcn", "runs": []}))
    res = render(tmp_path, "--only", "segmentation", timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    out = tmp_path / "paper_figures" / "out"
    items = {it["id"]: it for it in json.loads((out / "manifest.json").read_text())["items"]}
    for i in ("rt-fig7", "dw-figA10"):
        assert items[i]["status"] == "not run in this configuration", items[i]
        assert "no segmentation runs" in items[i]["reason"] and not any((out / f).exists() for f in EXPECTED[i]), i


#: what a grid without IMP (no imp / a_imp / a_imp_ds runs) lacks
IMP_METHODS = ("imp", "a_imp", "a_imp_ds")


def _without_imp(root: Path) -> None:
    """Rewrite the synthetic outputs as the pipeline writes them for experiments without IMP."""
    p = root / "plots" / "curves.csv"
    rows = [r for r in csv.DictReader(p.open()) if r["method"] not in IMP_METHODS]
    with p.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for f in (root / "metrics" / "double_win.json", root / "plots" / "double_win_levels.json"):
        d = json.loads(f.read_text())
        f.write_text(json.dumps({k: v for k, v in d.items() if not any(f"-{m}" in k for m in IMP_METHODS)}))
    a = root / "analysis"
    for name in ("mask_similarity.csv", "zero_kernels.csv"):  # the analysis stage's table without rows
        (a / name).write_text("empty\n")
    np.savez_compressed(a / "kernel_maps.npz")
    idx = a / "landscape" / "index.csv"  # trajectories of OMP tickets only
    idx.write_text(idx.read_text().replace(",imp,", ",omp,"))


def test_grid_without_imp_renders_what_it_can(rendered, tmp_path):
    """The figures stage on experiments without IMP: every figure that needs IMP is listed as not run in
    this configuration (with the reason), every other one is drawn, and the stage succeeds."""
    root = _copy_inputs(rendered, tmp_path)
    _without_imp(root)
    res = render(root, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = root / "paper_figures" / "out"
    items = {it["id"]: it for it in json.loads((out / "manifest.json").read_text())["items"]}
    index = (out / "index.html").read_text()
    not_run = {i for i, it in items.items() if it["status"] == "not run in this configuration"}
    # figures drawn from IMP tickets only (those that mix IMP with other methods, e.g. DW Fig. 3/4, draw the rest)
    needs_imp = {"dw-fig5", "dw-fig6", "dw-figA9", "dw-fig7", "dw-figA8", "rt-fig4", "rt-fig8"}
    assert needs_imp <= not_run, sorted(needs_imp - not_run)
    drawn = {"dw-fig3", "rt-fig1", "rt-fig2", "rt-fig3", "rt-fig5", "rt-fig6", "rt-fig9", "rt-table2"}
    assert not drawn & not_run, sorted(drawn & not_run)
    for i in drawn:
        assert items[i]["status"] == "available" and all((out / f).stat().st_size > 0 for f in EXPECTED[i]), i
    for i in not_run:
        section = index.split(f'id="{i}"')[1].split("</section>")[0]
        assert "Not run in this configuration" in section and items[i]["reason"] in html_unescape(section), i
        assert not any((out / f).exists() for f in EXPECTED[i]), i
    assert "landscape/index.csv: no rows for method=imp" in items["dw-fig6"]["reason"]


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


def test_table_follows_an_edited_metric(rendered, tmp_path):
    root = _copy_inputs(rendered, tmp_path)
    shutil.copytree(rendered / "paper_figures" / "out", root / "paper_figures" / "out")
    table = root / "paper_figures" / "out" / "dw_table_a2.csv"
    before = table.read_text()
    p = root / "plots" / "curves.csv"
    rows = list(csv.DictReader(p.open()))
    hit = [r for r in rows if (r["kind"], r["method"], r["task"], r["regime"], r["fraction"], r["level"]) ==
           ("pgd_adversarial", "imp", DW_TASK, "adversarial", "1.0", "0.488")]
    assert len(hit) == 1
    hit[0]["transfer_attack_acc_mean"] = "0.4321"
    with p.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    res = render(root, "--only", "dw_transfer", timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    after = table.read_text()
    assert after != before
    changed = [line for line in after.splitlines() if line not in before.splitlines()]
    assert len(changed) == 1 and changed[0].startswith(f"ours (tier default),{DW_TASK},48.8,43.21,")
    assert re.search(r"\| 48\.8 \| 43\.21 \|", (table.parent / "dw_table_a2.md").read_text())


def test_scrub_merges_stream_outputs_the_kernel_split_by_timing(tmp_path):
    """The kernel cuts printed text into messages by time, so the same prints once came out as one
    stream output and once as two (the second starting with the first's newline): the S3 round trip
    re-rendered the figures to different bytes. After scrub both are the same file."""
    import importlib.util

    import nbformat

    spec = importlib.util.spec_from_file_location("render_mod", RENDER)
    render_mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(RENDER.parent))
    try:
        spec.loader.exec_module(render_mod)
    finally:
        sys.path.remove(str(RENDER.parent))
    stream = nbformat.v4.new_output
    one = [stream("stream", name="stdout", text="note a\nnote b\n"),
           nbformat.v4.new_output("execute_result", data={"text/plain": "1"}, execution_count=1)]
    two = [stream("stream", name="stdout", text="note a"), stream("stream", name="stdout", text="\nnote b\n"),
           nbformat.v4.new_output("execute_result", data={"text/plain": "1"}, execution_count=1)]
    paths = []
    for i, outs in enumerate((one, two)):
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell("print('note a'); print('note b'); 1", id="c1")
        cell.outputs = outs
        nb.cells = [cell]
        paths.append(tmp_path / f"nb{i}.ipynb")
        nbformat.write(nb, paths[-1])
        render_mod.scrub(paths[-1])
    assert paths[0].read_bytes() == paths[1].read_bytes()
    # stderr between two stdout chunks is kept apart: only neighbours of the same stream merge
    mixed = [stream("stream", name="stdout", text="a"), stream("stream", name="stderr", text="w"),
             stream("stream", name="stdout", text="b")]
    assert [o["text"] for o in render_mod.coalesce_streams(mixed)] == ["a", "w", "b"]
