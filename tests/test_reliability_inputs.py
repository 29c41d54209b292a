"""Reliability 4: corrupted inputs at the stage level. Each fault gives one clear line on stderr,
exit code 2, and leaves no half-written output (no run folder, no temporary file).

Function-level checks live elsewhere (tests/test_data.py: corrupted .npz files; tests/test_tickets.py:
mask validation; tests/test_training.py: NaN loss; tests/test_weights.py: published checkpoints);
here every fault goes through a real stage entry point.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

import reliability_ws as W
from repro.base.io import save_torch
from repro.models import build_model
from repro.tickets.mask import Mask

PRETRAINED = Path("runs/pretrain") / W.KIND / "model.pt"
#: the level's LMP runs (they learn their own mask and come first in the plan): a broken ticket mask
#: stops the stage at the first OMP run, after these are complete
LMP_RUNS = [f"{W.KIND}-lmp/synth_near/mask-f1-seed0"]
MASK = Path("runs/tickets/s0.488") / f"{W.KIND}-omp" / "mask.pt"


def _nothing_half_written(ws: Path, root: str) -> None:
    base = ws / root
    leftovers = [p for p in base.rglob("*") if p.name.endswith(".tmp")] if base.exists() else []
    assert not leftovers, leftovers
    runs = [p.parent for p in base.rglob("spec.json")] if base.exists() else []
    for r in runs:  # any run folder present is complete
        assert (r / "model.pt").is_file() and (r / "history.csv").is_file(), r


class _Evil:
    """A pickle that would run code when unpickled."""

    def __reduce__(self):
        return (Path.touch, (Path("PWNED"),))


def _truncate(f: Path) -> None:
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _flip(f: Path) -> None:
    b = bytearray(f.read_bytes())
    for i in range(200, len(b), 97):
        b[i] ^= 0xFF
    f.write_bytes(bytes(b))


def _pickle_payload(f: Path) -> None:
    with open(f, "wb") as fh:
        pickle.dump({"conv1.weight": _Evil()}, fh)


def _other_arch(f: Path) -> None:  # a two-stage network: the model's layer3 weights are missing
    save_torch(build_model("cifar_resnet", 5, depths=(1, 1), width=4).state_dict(), f)


def _other_width(f: Path) -> None:
    save_torch(build_model("cifar_resnet", 5, depths=(1, 1, 1), width=8).state_dict(), f)


def _nan_weights(f: Path) -> None:
    sd = torch.load(f, weights_only=True)
    sd["conv1.weight"] = torch.full_like(sd["conv1.weight"], float("nan"))
    save_torch(sd, f)


def _mask_other_arch(f: Path) -> None:
    Mask.ones_like(build_model("resnet18", 10)).save(f)


def _mask_other_shape(f: Path) -> None:
    Mask.ones_like(build_model("cifar_resnet", 4, depths=(1, 1, 1), width=8)).save(f)


def _mask_not_binary(f: Path) -> None:
    m = torch.load(f, weights_only=True)
    k = next(iter(m))
    m[k] = torch.full(m[k].shape, 0.5)
    save_torch(m, f)


CASES = [
    # (fault, file, how, stage, args, expected words in the one-line error)
    ("truncated checkpoint", PRETRAINED, _truncate, "transfer", ("0.488",), ["model.pt", "cannot be loaded"]),
    ("corrupted checkpoint", PRETRAINED, _flip, "transfer", ("0.488",), ["model.pt", "cannot be loaded"]),
    ("pickle with code", PRETRAINED, _pickle_payload, "transfer", ("0.488",), ["model.pt", "weights-only"]),
    ("checkpoint of another architecture", PRETRAINED, _other_arch, "transfer", ("0.488",),
     ["lacks", "another architecture"]),
    ("checkpoint with mismatched shapes", PRETRAINED, _other_width, "transfer", ("0.488",), ["has shape", "needs"]),
    ("NaN weights -> NaN loss", PRETRAINED, _nan_weights, "transfer", ("0.488",), ["training loss became nan"]),
    ("mask of another architecture", MASK, _mask_other_arch, "transfer", ("0.488",),
     ["mask names", "another architecture"]),
    ("mask with mismatched shapes", MASK, _mask_other_shape, "transfer", ("0.488",), ["has shape", "parameter"]),
    ("mask not binary", MASK, _mask_not_binary, "transfer", ("0.488",), ["must be 0/1"]),
    ("truncated dataset", Path("runs/data/synth_near.npz"), _truncate, "transfer", ("0.488",), ["synth_near.npz"]),
    ("truncated source dataset", Path("runs/data/synth_source.npz"), _truncate, "pretrain", (W.KIND,),
     ["synth_source.npz"]),
    ("truncated pretrained checkpoint for tickets", PRETRAINED, _truncate, "tickets", ("0.488",),
     ["model.pt", "cannot be loaded"]),
]


@pytest.mark.parametrize("fault, rel, how, module, args, words", CASES, ids=[c[0] for c in CASES])
def test_corrupted_input_fails_the_stage_with_one_line(tmp_path, fault, rel, how, module, args, words):
    ws = W.clone(tmp_path / "ws")
    how(ws / rel)
    before_pretrain = W.tree(ws / "runs" / "pretrain") if module == "pretrain" else None
    rc, err = W.stage(ws, module, *args)
    assert rc == 2, (fault, err)
    assert len(err) == 1 and err[0].startswith(f"[{module}@"), err
    for w in words:
        assert w in err[0], (fault, err[0])
    assert not (ws / "PWNED").exists()  # the pickle's payload never ran
    out_root = {"transfer": "runs/transfer", "pretrain": "runs/pretrain", "tickets": "runs/tickets"}[module]
    _nothing_half_written(ws, out_root)
    if module == "transfer":  # no run that needed the faulty input exists (LMP runs need no ticket mask)
        level = ws / "runs/transfer/s0.488"
        done = sorted(str(p.parent.relative_to(level)) for p in level.rglob("model.pt"))
        assert done == (LMP_RUNS if rel == MASK else []), done
    if module == "pretrain":  # the earlier complete output is untouched
        assert W.tree(ws / "runs" / "pretrain") == before_pretrain


def test_corrupted_run_model_fails_evaluate_and_keeps_complete_metrics_only(tmp_path):
    ws = W.clone(tmp_path / "ws")
    rc, err = W.stage(ws, "transfer", "0.488")
    assert rc == 0, err
    runs = sorted(p.parent for p in (ws / "runs/transfer/s0.488").rglob("spec.json"))
    _truncate(runs[-1] / "model.pt")  # the last run evaluated
    rc, err = W.stage(ws, "evaluate", "0.488")
    assert rc == 2 and len(err) == 1 and "model.pt" in err[0] and "cannot be loaded" in err[0], err
    got = sorted((ws / "runs/eval/s0.488").rglob("metrics.json"))
    assert len(got) == len(runs) - 1  # the complete ones only, each a whole JSON file
    import json

    for f in got:
        json.loads(f.read_text())
    assert not [p for p in (ws / "runs/eval").rglob("*") if p.name.endswith(".tmp")]


def test_missing_upstream_output_is_one_line(tmp_path):
    ws = W.clone(tmp_path / "ws")
    rc, err = W.stage(ws, "evaluate", "0.488")
    assert rc == 2 and len(err) == 1 and "run transfer@s0.488 first" in err[0], err


@pytest.mark.parametrize("item, words", [("abc", "not a number"), ("1.5", "outside [0, 1)"), ("nan", "outside")])
def test_bad_level_is_one_line(tmp_path, item, words):
    ws = W.clone(tmp_path / "ws")
    rc, err = W.stage(ws, "transfer", item)
    assert rc == 2 and len(err) == 1 and words in err[0], err
