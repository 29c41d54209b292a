"""The Markdown table `make bench` prints from its results."""
from __future__ import annotations

from bench import contention, pipeline
from bench.common import MODELS


def _span(r: list[float]) -> str:
    return f"repeats {r[0]:.2f}–{r[1]:.2f}"


def table(res: dict) -> str:
    """Markdown table of the results; a ratio is the median of the paired per-repeat ratios."""
    rows = ["| measurement | ours | baseline | ratio |", "|---|---|---|---|"]
    for key, r in res.get("adv", {}).items():
        rows.append(f"| PGD-10 adversarial fine-tuning, {r['model']}, batch {r['batch']}, 80 % ticket (img/s) | "
                    f"{r['ours_img_s']:.1f} | {r['baseline_img_s']:.1f} (official code's way) | **{r['ratio']:.2f}×** "
                    f"({_span(r['ratio_range'])}) |")
    r = res.get("compile")
    if r:
        rows.append(f"| PGD-10 adversarial fine-tuning, {r['model']}, batch {r['batch']}, 80 % ticket, "
                    f"`runtime.compile: on`, steady state (img/s) | {r['compiled_img_s']:.1f} | "
                    f"{r['baseline_img_s']:.1f} (official code's way) | **{r['ratio_steady']:.2f}×** "
                    f"({_span(r['ratio_steady_range'])}; {r['ratio_compiled_vs_eager']:.2f}× our eager path) |")
        if "work_ratio" in r:
            rows.append(f"| the work of a step, counted by torch (GFLOP per image): the bound on the ratio at an equal FLOP "
                        f"rate | {r['gflop_per_img']:.2f} | {r['baseline_gflop_per_img']:.2f} | {r['work_ratio']:.2f}× "
                        f"(our eager path: {r['ratio_eager_vs_baseline']:.2f}×) |")
        even = "never" if r["break_even_batches"] is None else f"{r['break_even_batches']:.0f} batches"
        rows.append(f"| the same over a run of {r['project_batches']} batches (one CIFAR-10 epoch), cold compile "
                    f"{r['compile_cold_s']:.0f} s included (break-even: {even}) | | | "
                    f"**{r['ratio_over_project']:.2f}×** |")
    for key, r in res.get("eval", {}).items():
        rows.append(f"| PGD-20 robust accuracy, {MODELS[key][0]}, {r['batches']} x {r['batch_size']} images (img/s) | "
                    f"{r['ours_img_s']:.1f} | "
                    f"{r['torchattacks_img_s']:.1f} (torchattacks 3.5.1) | **{r['ratio']:.2f}×** "
                    f"({_span(r['ratio_range'])}) |")
    r = res.get("aa")
    if r:
        rows.append(f"| AutoAttack RA (APGD-CE + APGD-T, 100 it., 9 targets), {r['model']}, {r['images']} images "
                    f"(img/s; RA {r['ra_aa']:.2f} vs {r['ra_torchattacks']:.2f}) | {r['ours_img_s']:.2f} | "
                    f"{r['torchattacks_img_s']:.2f} (torchattacks 3.5.1) | **{r['ratio']:.2f}×** ({_span(r['ratio_range'])}) |")
    for key, r in res.get("mask", {}).items():
        rows.append(f"| mask enforcement, {MODELS[key][0]}: masked / dense step time | "
                    f"{r['masked_img_s']:.1f} img/s | {r['dense_img_s']:.1f} img/s (dense) | "
                    f"{1 + r['overhead']:.3f} ({100 * r['overhead']:+.1f} %; repeats "
                    f"{100 * r['overhead_range'][0]:+.1f} to {100 * r['overhead_range'][1]:+.1f} %) |")
    fl = res.get("flops", {})
    for key in MODELS:
        if key in fl:
            r = fl[key]
            rows.append(f"| achieved GFLOP/s, {MODELS[key][0]}: standard / PGD-10 step | "
                        f"{r['standard_gflops']:.1f} / {r['pgd10_gflops']:.1f} | {fl['matmul_gflops']:.0f} (fp32 matmul) | "
                        f"{r['standard_fraction_of_matmul']:.2f} / {r['pgd10_fraction_of_matmul']:.2f} |")
    d = res.get("data", {})
    for key in MODELS:
        if key in d:
            rows.append(f"| data loading + albumentations per image vs standard step, {MODELS[key][0]} | "
                        f"{d['load_ms_per_img']:.3f} ms | | {d[key]['fraction_of_standard_step']:.3f} |")
    c = res.get("cost")
    if c:
        rows.append(f"| achieved GFLOP/s of params.yaml's model ({c['image_size']} px) per worker thread: standard / "
                    f"adversarial (PGD-{c['adversarial']['attack_steps']}) training / PGD-{c['evaluation']['attack_steps']} "
                    f"evaluation (the planner's CPU rates) | {c['standard']['gflops_per_thread']:.2f} / "
                    f"{c['adversarial']['gflops_per_thread']:.2f} / {c['evaluation']['gflops_per_thread']:.2f} | | |")
    rows += contention.table_rows(res.get("contention", {}))
    if res.get("pipeline"):
        rows += pipeline.table_rows(res["pipeline"])
    return "\n".join(rows)
