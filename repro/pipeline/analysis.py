"""The analysis stage's work (``analysis/``): mask similarity (IoU) and zero kernels of the IMP tickets (DW Fig. 7,
A8), loss landscapes and training trajectories (DW Figs. 6, A9), and the domain gap of every downstream task
(RT Table II: hand-made statistics, or FID on Inception-v3 features)."""
from __future__ import annotations

import csv
import itertools
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .. import landscape
from ..attacks import bn_mode, pgd
from ..base import devices, runtime
from ..base.cpus import parallel_map, workers_for
from ..base.io import atomic_path, load_torch, read_json, save_json
from ..base.runctx import log
from ..config import Params
from ..data import array_loader, domain_gap_score
from ..plan import RUNS, level_name
from ..tickets.mask import Mask, kernel_zero_map, mask_iou, zero_kernels
from .evaluate import load_run_model
from .inputs import load_task

OUT = Path("analysis")


def _write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp:
        with tmp.open("w", newline="") as f:
            fields = list(rows[0]) if rows else ["empty"]
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)


def imp_masks(p: Params) -> dict[float, dict[str, Mask]]:
    out: dict[float, dict[str, Mask]] = {}
    for lv in p.sweep.sparsities:
        d = RUNS / "tickets" / level_name(lv)
        for kind in p.pretrain.kinds:
            f = d / f"{kind}-imp" / "mask.pt"
            if f.is_file():
                out.setdefault(lv, {})[kind] = Mask.load(f)
    return out


def mask_stats(p: Params) -> None:
    masks = imp_masks(p)
    sim, zk = [], []
    for lv, by_kind in sorted(masks.items()):
        for a, b in itertools.combinations(sorted(by_kind), 2):
            sim.append({"level": lv, "kind_a": a, "kind_b": b, "iou": round(mask_iou(by_kind[a], by_kind[b]), 6)})
        for kind, m in sorted(by_kind.items()):
            per_layer = zero_kernels(m)
            total_kernels = sum(v.shape[0] * v.shape[1] for v in m._m.values() if v.dim() == 4)
            zk.append({"level": lv, "kind": kind, "zero_kernels": sum(per_layer.values()),
                       "total_kernels": total_kernels, "sparsity": round(m.sparsity, 6)})
    _write_csv(OUT / "mask_similarity.csv", sim)
    _write_csv(OUT / "zero_kernels.csv", zk)
    arrays = {}
    if masks:  # DW Fig. 7: evaluation.kernel_map_level (97.19 % in the real tiers), else the highest level
        km = p.evaluation.kernel_map_level
        top = next((lv for lv in masks if km is not None and abs(lv - km) < 1e-6), max(masks))
        for kind, m in masks[top].items():
            for name in m:
                if m[name].dim() == 4:
                    arrays[f"{kind}|{name}"] = kernel_zero_map(m, name).numpy()
    with atomic_path(OUT / "kernel_maps.npz") as tmp:
        with tmp.open("wb") as f:
            np.savez_compressed(f, **arrays)
    log("analysis", f"mask similarity: {len(sim)} pairs; zero kernels: {len(zk)} masks")


def _landscape(p: Params, root: Path, traj_file: Path) -> dict:
    """Loss contours (clean and PGD) over the trajectory plane of one run."""
    run_dir = traj_file.parent
    spec = read_json(run_dir / "spec.json")
    task = load_task(spec["task"])
    model = load_run_model(p, run_dir, task)  # on the stage's resolved device
    dev = runtime.device(p.device)
    snaps = load_torch(traj_file)
    mask_flat = None
    if (run_dir / "mask.pt").is_file():
        mask = Mask.load(run_dir / "mask.pt")
        names = sorted(snaps[-1])
        mask_flat = torch.cat([mask[n].reshape(-1).double() if n in mask else
                               torch.ones(snaps[-1][n].numel(), dtype=torch.float64) for n in names])
    plane = landscape.trajectory_plane(snaps, mask_flat)
    n = min(p.evaluation.landscape_images, task.x_test.shape[0])
    # the tier's test transform, as every evaluation (e.g. Resize 256 + CenterCrop 224 for the 224-px models)
    batches = list(array_loader(task.x_test[:n], task.y_test[:n], p.evaluation.batch_size, p.data.image_size,
                                recipe=p.data.recipe, device=dev))
    x, y = devices.to((torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches]).long()), dev)
    a = p.evaluation.attack
    with bn_mode(model, "eval"):
        x_adv = pgd(model, x, y, eps=a.eps, alpha=a.alpha, steps=a.steps,
                    generator=torch.Generator().manual_seed(p.seed))
    alphas, betas = landscape.grid_axes(plane.coords, p.evaluation.landscape_points)
    clean = landscape.loss_grid(model, plane, alphas, betas, x, y)
    adv = landscape.loss_grid(model, plane, alphas, betas, x_adv, y)
    rel = run_dir.relative_to(root)
    key = str(rel).replace("/", "__")
    with atomic_path(OUT / "landscape" / f"{key}.npz") as tmp:
        with tmp.open("wb") as f:
            np.savez_compressed(f, alphas=alphas, betas=betas, loss_clean=clean, loss_adv=adv,
                                trajectory=plane.coords, explained=np.array(plane.explained))
    return {"run": key, **{k: spec[k] for k in ("kind", "method", "task", "regime", "fraction")},
            "level": p.evaluation.trajectory_level, "explained_1": round(plane.explained[0], 4),
            "explained_2": round(plane.explained[1], 4),
            "final_loss_clean": round(float(clean[np.argmin(np.abs(betas)), np.argmin(np.abs(alphas))]), 5)}


def landscapes(p: Params) -> None:
    lv = p.evaluation.trajectory_level
    root = RUNS / "transfer" / level_name(lv)
    found = sorted(root.rglob("trajectory.pt")) if root.is_dir() else []
    summary = list(parallel_map(partial(_landscape, p, root), found, workers_for(p.workers, p.device)))
    (OUT / "landscape").mkdir(parents=True, exist_ok=True)
    _write_csv(OUT / "landscape" / "index.csv", summary)
    log("analysis", f"loss landscapes: {len(summary)} runs")


def domain_gaps(p: Params) -> None:
    """``evaluation.domain_gap``: ``stats`` (hand-made image statistics, the offline default) or ``fid``
    (Inception-v3 pool-3 FID with the feature network ``evaluation.fid_weights``, repro/fid.py; RT Table II)."""
    src = load_task(p.data.source)
    if p.evaluation.domain_gap == "fid":
        from ..fid import fid, load_inception

        net = load_inception(p.data.root, device=runtime.device(p.device), name=p.evaluation.fid_weights)
        score = lambda t: fid(src, t, net)  # noqa: E731
    else:
        score = lambda t: domain_gap_score(src, t)  # noqa: E731
    gaps = {t: round(float(score(load_task(t))), 6) for t in p.data.downstream}
    save_json(gaps, OUT / "domain_gap.json")
    log("analysis", f"domain gap ({p.evaluation.domain_gap}): {gaps}")


