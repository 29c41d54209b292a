"""`make rehearse`: the paths a GPU user runs, rehearsed end to end on the CPU and checked by value (issue 25).

For each combination of ``COMBOS`` (``small``, ``paper`` and the overlays stacked on it: every real tier of
``tiers/``), in a scratch copy of the repository:

1. a data root of format-exact files of every dataset the tier reads (``tests/published_formats.py``: the
   published layouts, synthetic images a network can learn), written once and shared;
2. params.yaml = the tier, the ``trial`` overlay, and ``REHEARSAL``: what a CPU needs to run the whole path in
   minutes (listed below, each a reduction of scale, never of the path);
3. the whole ``dvc repro``, to the report, on the CPU, with the device trace on (``repro.base.devices``);
4. checks by value (``bench/rehearse_checks.py``): every stage of dvc.yaml ran and ``dvc status`` is clean;
   every training split and every held-out split (and the training images left beside it) holds every
   class; every figure and table the tier promises rendered; no stage computed off its resolved device
   or on a model the device seam never placed; and the planner's CPU estimate for the run beside its
   measured time, stage by stage.

``REHEARSAL`` (on top of ``trial`` and ``tiers.scale``'s epoch scaling at ``EPOCH_FRACTION``, which gives
every training block one or two epochs): images of ``IMAGE_SIZE`` px, every network at 1/``WIDTH_DIVISOR``
of its channels (``model.width_divisor``: same layers and parameter names); per class ``TRAIN`` training
(``TRAIN_FIRST`` for a tier with the official first-N data fractions) and ``TEST`` test images (the sources ``SOURCE_TRAIN``), caps that the planner reads too; held-out validation
a tenth of each task (the share the official 5,000 is of CIFAR's 50,000; the tier's ``how`` and ``per_task``
kept) with the validation RA on 5 images; the AutoAttack-grade RA at the embedded default's 10 iterations and
3 target classes; segmentation for 2 iterations. Two substitutions, because the files cannot exist here:
published checkpoints (``pretrain.published``) and the FID's Inception weights are pinned to the published
bytes (sha256), so the rehearsal pretrains every kind in-house on the format-exact source for one epoch and
measures the domain gap with ``stats``; the fetch / convert path is tests/test_weights.py's.

``python -m bench.rehearse [--only paper-a10 ...] [--keep DIR]``; writes
``bench/results/<machine>-rehearse.json`` and prints a table. Exit 1 when a check fails.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.common import ROOT, log, machine, machine_name

sys.path.insert(0, str(ROOT / "tests"))

#: name -> the tiers stacked (the trial overlay and REHEARSAL come on top)
COMBOS = {"small": ("small",), "paper": ("paper",), "paper-r18": ("paper", "r18"), "paper-a10": ("paper", "a10"),
          "paper-vtab": ("paper", "vtab")}
#: tiers that are not rehearsed: the offline ones (run by `make repro` and the tests) and the trial overlay itself
NOT_REHEARSED = {"smoke", "trial"}
EPOCH_FRACTION = 0.01
IMAGE_SIZE = 16
WIDTH_DIVISOR = 16
TRAIN, TEST, SOURCE_TRAIN, SOURCE_TEST = 10, 2, 2, 1
#: per class training images of a tier with the official first-N data fractions (the paper tier's fraction_how):
#: DW Fig. 5's 1 % of a task must be at least 2 images (the data stage refuses fewer): 1 % of 20 x 10 minus a tenth
TRAIN_FIRST = 20
SOURCES = ("tiny_imagenet", "imagenet")
SEG_TRAIN, SEG_TEST = 8, 4
#: tiers whose grids run each experiment on one downstream task (an index into data.downstream), spread so that
#: every task is fine-tuned: the first task keeps the adversarial runs Table A2 (transfer attack) reads; the last
#: one (SVHN) its own adversarial recipe (transfer.per_task) in dw_methods. dw_data keeps every task: DW Fig. 5
#: shows all three (and Fig. 6's trajectories the first)
ONE_TASK_TIERS = {"small", "paper"}
ONE_TASK = {"dw_pretraining": 0, "dw_methods": 2, "rt_omp": 1, "rt_structured": 2, "rt_aimp": 1, "rt_lmp": 0}


def rehearsal_params(tiers: tuple[str, ...], data_root: Path, params: Path = ROOT / "params.yaml") -> dict:
    """The params.yaml a rehearsal runs: the tiers, ``trial``, epochs scaled, then ``REHEARSAL`` (module doc)."""
    from repro import tiers as T

    cfg = T.combine([*tiers, "trial"], params)
    val = cfg["transfer"]["validation"]
    cfg = T.scale(cfg, EPOCH_FRACTION)  # every training block's epochs and milestones; not data.fraction:
    cfg["data"].pop("fraction", None)   # the data root is already small
    d = cfg["data"]
    train = TRAIN_FIRST if d.get("fraction_how") == "first" else TRAIN
    d.update(root=str(data_root), image_size=IMAGE_SIZE, num_workers=0, max_train=train, max_test=TEST,
             max_train_per_task={s: SOURCE_TRAIN for s in SOURCES if s in (d["source"], *d["downstream"])},
             max_test_per_task={s: SOURCE_TEST for s in SOURCES if s in (d["source"], *d["downstream"])})
    cfg["model"]["width_divisor"] = WIDTH_DIVISOR
    cfg["pretrain"]["published"] = {}
    ev = cfg["evaluation"]
    ev.update(domain_gap="stats", aa_steps=10, aa_target_classes=3)
    if val.get("how", "none") != "none":
        cfg["transfer"]["validation"] = {**val, "n": 0.1, "robust_images": 5,
                                         "per_task": {t: 0.1 for t in val.get("per_task") or {}}}
    if set(tiers) <= ONE_TASK_TIERS:  # the big grids: each experiment on one downstream task (ONE_TASK)
        down = cfg["data"]["downstream"]
        for name, e in cfg["experiments"].items():
            if e.get("pairs") and name in ONE_TASK:
                e["tasks"] = [down[ONE_TASK[name] % len(down)]]
    seg = cfg["segment"]
    if seg.get("task", "synth_seg") != "synth_seg":
        seg.update(iterations=2, milestones=[], max_train=SEG_TRAIN, max_test=SEG_TEST)
    return cfg


def datasets_of(cfg: dict) -> set[str]:
    """The public datasets a params dict reads (source, downstream, OoD)."""
    from repro.data import PUBLIC_DATASETS

    d = cfg["data"]
    return {n for n in (d["source"], *d["downstream"], d["ood"]) if n in PUBLIC_DATASETS}


def reads_voc(cfg: dict) -> bool:
    """Whether a params dict segments PASCAL VOC: ``segment.task`` voc2012 and some ``segment.pairs`` (``[]``: off,
    the data stage reads no VOC file)."""
    seg = cfg["segment"]
    return seg.get("task") == "voc2012" and bool(seg.get("pairs", True))  # absent: the default pairs


def write_data_root(root: Path, names: set[str], voc: bool) -> dict:
    """Every dataset of ``names`` (and PASCAL VOC) under ``root`` in its published format; skips what a previous
    call wrote (a ``.written-<name>`` stamp). Returns {name: what was written}."""
    from published_formats import write_public, write_voc

    root.mkdir(parents=True, exist_ok=True)
    out = {}
    todo = sorted(names) + (["voc2012"] if voc else [])
    for name in todo:
        stamp = root / f".written-{name}"
        if stamp.is_file():
            out[name] = json.loads(stamp.read_text())
            continue
        t0 = time.time()
        if name == "voc2012":
            w = write_voc(root, SEG_TRAIN, SEG_TEST, size=IMAGE_SIZE * 2)
        elif name in SOURCES:
            w = write_public(name, root, SOURCE_TRAIN, SOURCE_TEST, size=IMAGE_SIZE * 2)
        else:
            w = write_public(name, root, max(TRAIN, TRAIN_FIRST), TEST, size=IMAGE_SIZE * 2)
        stamp.write_text(json.dumps(w))
        out[name] = w
        log(f"rehearse: wrote {name} ({w['classes']} classes, {w['train']} + {w['test']} images) in "
            f"{time.time() - t0:.1f} s")
    return out


def rehearse(name: str, work: Path, data_root: Path) -> dict:
    """One combination: scratch copy, params, the whole `dvc repro`, the checks. Returns its record."""
    import workspace as W

    from bench import rehearse_checks as C
    from repro.base.devices import TRACE_ENV

    tiers = COMBOS[name]
    repo = work / name
    shutil.rmtree(repo, ignore_errors=True)
    W.copy_project(repo)
    (repo / "params.yaml").write_text(yaml.safe_dump(rehearsal_params(tiers, data_root), sort_keys=False))
    W.init_repo(repo)
    trace, logf = work / f"{name}.trace.jsonl", work / f"{name}.log"
    for f in (trace, logf):
        f.unlink(missing_ok=True)
    env = W.env(**{TRACE_ENV: str(trace)})
    log(f"rehearse {name}: dvc repro of {'+'.join(tiers)}+trial (log: {logf}) ...")
    t0 = time.time()
    with logf.open("w") as f:  # streamed: `tail -f` the log to follow a run
        r = subprocess.run([str(W.DVC), "repro"], cwd=repo, env=env, stdout=f, stderr=subprocess.STDOUT, text=True)
    rec = {"tiers": "+".join((*tiers, "trial")), "exit": r.returncode, "wall_s": round(time.time() - t0, 1),
           "stage_s": C.stage_times(repo)}
    if r.returncode:
        tail = [ln for ln in logf.read_text().strip().splitlines() if ln.strip()][-3:]
        rec["failures"] = [f"dvc repro exited {r.returncode}: {' | '.join(tail)}"]
        return rec
    rec.update(C.check_all(repo, env, trace, tiers))
    rec["planner"] = C.planner(repo, rec["stage_s"])
    return rec


def table(results: dict) -> str:
    rows = ["| combination | dvc repro wall | planner CPU estimate | stages | checks |", "|---|---:|---:|---:|---|"]
    for name, r in results.items():
        est = r.get("planner", {}).get("cpu_s")
        fails = r.get("failures", [])
        rows.append(f"| {name} | {r.get('wall_s', 0) / 60:.1f} min | "
                    f"{'' if est is None else f'{est / 60:.1f} min'} | {len(r.get('stage_s', {}))} | "
                    f"{'ok' if not fails else f'{len(fails)} failed: ' + '; '.join(fails[:3])} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=list(COMBOS), default=list(COMBOS))
    ap.add_argument("--keep", type=Path, default=None,
                    help="work folder kept afterwards (scratch copies, logs, traces, the data root); default: a "
                         "temporary folder, deleted")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/<machine>-rehearse.json)")
    a = ap.parse_args(argv)
    work = a.keep or Path(tempfile.mkdtemp(prefix="repro-rehearse-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.time()
        cfgs = {n: rehearsal_params(COMBOS[n], work / "data") for n in a.only}
        names = set().union(*(datasets_of(c) for c in cfgs.values()))
        voc = any(reads_voc(c) for c in cfgs.values())
        written = write_data_root(work / "data", names, voc)
        data_s = time.time() - t0
        results = {}
        for n in a.only:
            results[n] = rehearse(n, work, work / "data")
            log(f"rehearse {n}: {results[n].get('wall_s', 0) / 60:.1f} min, "
                f"{'ok' if not results[n].get('failures') else results[n]['failures']}")
        m = machine()
        record = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": m,
                  "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                           text=True).stdout.strip(),
                  "load_average_at_end": os.getloadavg(), "data_root_s": round(data_s, 1), "data_root": written,
                  "total_s": round(time.time() - t0, 1), "rehearsal": {k: v for k, v in globals().items()
                                                                       if re.fullmatch(r"[A-Z_]+", k)
                                                                       and isinstance(v, (int, float, tuple))},
                  "results": results}
        out = a.out or ROOT / "bench" / "results" / f"{machine_name(m)}-rehearse.json"
        from repro.base.io import save_json

        save_json(record, out)
        print(table(results))
        print(f"total {record['total_s'] / 60:.1f} min (data root {data_s:.0f} s); wrote {out}")
        return 1 if any(r.get("failures") for r in results.values()) else 0
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
