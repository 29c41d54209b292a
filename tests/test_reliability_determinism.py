"""Reliability 3: determinism on the CPU. The same params and seed give bit-identical weights and
metrics across runs (pretraining, fine-tuning, evaluation with its attacks and sanity checks);
a different seed gives different ones."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import torch

import reliability_ws as W
from repro.plan import RunSpec


def _pretrain(p, out: Path):
    from repro.pipeline.pretrain import pretrain

    from repro.base import runtime

    runtime.seed_everything(p.seed)  # what run_stage does before the stage body
    model, sa, _ = pretrain(p, W.KIND, out)
    return {k: v.clone() for k, v in model.state_dict().items()}, sa


def test_pretraining_same_seed_same_bits_other_seed_differs(tmp_path):
    from repro.config import load_params

    ws = W.clone(tmp_path / "ws")
    with W.inside(ws):
        p = load_params()
        a, sa_a = _pretrain(p, tmp_path / "a")
        b, sa_b = _pretrain(p, tmp_path / "b")
        c, _ = _pretrain(dataclasses.replace(p, seed=p.seed + 1), tmp_path / "c")
    assert sa_a == sa_b
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())
    assert W.tree(tmp_path / "a") == W.tree(tmp_path / "b")  # the DVCLive logs too


def _transfer_and_evaluate(ws: Path, seed: int, eval_seed: int = 0) -> tuple[dict, dict]:
    from repro.config import load_params
    from repro.pipeline import evaluate, transfer
    from repro.pipeline.inputs import load_task

    spec = RunSpec(W.KIND, "omp", "synth_near", "adversarial", 1.0, seed)
    with W.inside(ws):
        p = dataclasses.replace(load_params(), seed=eval_seed)
        run_dir = transfer.run_one(p, spec, 0.488, {}, out_final=Path(f"runs/det/seed{seed}-eval{eval_seed}"))
        m = evaluate.evaluate_run(p, run_dir, {}, load_task(p.data.ood), {})
        return W.tree(run_dir), m


def test_fine_tuning_and_evaluation_same_seed_same_bits_other_seed_differs(tmp_path):
    ws = W.clone(tmp_path / "ws")
    files_a, m_a = _transfer_and_evaluate(ws, seed=0)
    files_b, m_b = _transfer_and_evaluate(W.clone(tmp_path / "ws2"), seed=0)
    assert files_a == files_b  # model.pt, mask.pt, history.csv, trajectory.pt, spec.json: byte for byte
    assert json.dumps(m_a, sort_keys=True) == json.dumps(m_b, sort_keys=True)  # every metric, sanity included
    assert "sanity" in m_a
    files_c, m_c = _transfer_and_evaluate(ws, seed=1)
    assert files_c["model.pt"] != files_a["model.pt"]
    assert (m_c["sa"], m_c["ra"], m_c["nll"]) != (m_a["sa"], m_a["ra"], m_a["nll"])
    # the evaluation seed (attack random starts) changes the attacked images, not the clean metrics
    _, m_d = _transfer_and_evaluate(ws, seed=0, eval_seed=5)
    assert (m_d["sa"], m_d["nll"]) == (m_a["sa"], m_a["nll"])


def test_an_imp_run_does_not_depend_on_what_its_worker_ran_before(tmp_path):
    """parallel_map hands runs to workers in any order (longest first, then whichever worker is free): an
    A-IMP run (PGD random starts in every retraining round) gives the same masks whatever random state the
    worker was left in."""
    from repro.config import load_params
    from repro.pipeline.imp import run_one
    from repro.plan import imp_dir

    ws = W.clone(tmp_path / "ws")
    trees = []
    with W.inside(ws):
        p = load_params()
        for before in (0, 1):  # what an earlier run in the same worker would have drawn
            torch.manual_seed(100 + before)
            torch.rand(3 + 5 * before)
            run_one(p, W.KIND, "adversarial", None)
            out = imp_dir(W.KIND, "adversarial", None)
            trees.append(W.tree(out))
            shutil.rmtree(out)
    assert any(k.endswith("mask.pt") for k in trees[0])
    assert trees[0] == trees[1]


def test_a_diverged_run_is_recorded_as_not_learned_without_numbers(tmp_path):
    """A run whose network outputs NaN on the test images (its training diverged: the paper tier's rehearsal met
    one, 2 training images at lr 0.1) gets no metric and learned: false with the reason; the stage evaluating it
    does not stop (before: 'auroc scores contain NaN' ended evaluate@dense)."""
    from repro.base.io import load_torch, save_torch
    from repro.config import load_params
    from repro.pipeline import evaluate, transfer
    from repro.pipeline.inputs import load_task
    from repro.verdicts import aggregate

    ws = W.clone(tmp_path / "ws")
    spec = RunSpec(W.KIND, "omp", "synth_near", "standard", 1.0, 0)
    with W.inside(ws):
        p = load_params()
        run_dir = transfer.run_one(p, spec, 0.488, {}, out_final=Path("runs/det/nan"))
        f = run_dir / evaluate.CHECKPOINT_FILES["last"]
        sd = load_torch(f)
        k = next(n for n, v in sd.items() if n.endswith("weight") and v.is_floating_point() and v.dim() == 4)
        sd[k] = torch.full_like(sd[k], float("nan"))
        save_torch(sd, f)
        m = evaluate.evaluate_run(p, run_dir, {}, load_task(p.data.ood), {})
    assert m["learned"] is False and m["diverged"] is True and "not finite" in m["learned_why"]
    assert all(m[x] is None for x in ("sa", "ra", "nll", "ece", "ood_auroc"))
    assert (m["kind"], m["method"], m["task"]) == (W.KIND, "omp", "synth_near")
    row = aggregate([m])[0]
    assert row["learned"] is False and "sa_mean" not in row          # no number computed from NaN
    from repro.verdicts import criteria

    ticket = {"sa_mean": 0.8, "sa_std": 0.01, "ra_mean": 0.4, "ra_std": 0.01, "learned": True}
    c = criteria(ticket, ticket, row, row)                              # its dense baseline diverged
    assert (c["double_win"], c["adversarial_ra"], c["learned"]) == (False, False, False)
    assert criteria(ticket, ticket, ticket, ticket)["double_win"] is True   # and a comparable one still matches
