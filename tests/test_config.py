"""Typed params: the committed params.yaml validates; bad values stop a stage before any work."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from repro.config import ConfigError, Params, load_params
from repro.registries import params_from

ROOT = Path(__file__).resolve().parents[1]


def test_committed_params_validate():
    p = load_params(ROOT / "params.yaml")
    assert isinstance(p, Params)
    assert abs(p.transfer.attack.eps - 8 / 255) < 1e-12  # '8/255' parsed
    assert p.evaluation.attack.steps == 20  # RA is always PGD-20


def test_tiers_use_the_official_attack_steps():
    """small/paper tiers: PGD-10 adversarial fine-tuning and PGD-20 evaluation (official code)."""
    from repro.tiers import merge

    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    for tier in ("small", "paper"):
        merged = merge(base, yaml.safe_load((ROOT / "tiers" / f"{tier}.yaml").read_text()))
        assert merged["transfer"]["attack"]["steps"] == 10
        assert merged["evaluation"]["attack"]["steps"] == 20


@pytest.mark.parametrize("bad, key", [
    ({"sparsity": 1.5}, "sparsity"),
    ({"sparsity": -0.1}, "sparsity"),
    ({"data": {"downstream": ["cifar11"]}}, "cifar11"),
    ({"bogus": 1}, "bogus"),
    ({"transfer": {"attack": {"eps": "x"}}}, "transfer.attack.eps"),
    ({"transfer": {"adversarial": {"epochs": 2, "milestones": [5]}}}, "transfer.adversarial.milestones"),
    ({"transfer": {"bn_mode": "batch"}}, "transfer.bn_mode"),
    ({"model": {"arch": "vgg"}}, "model.arch"),
    ({"experiments": {"x": {"pairs": [["standard", "snip"]]}}}, "experiments.x.pairs"),
    ({"experiments": {"x": {"pairs": [["alien", "omp"]]}}}, "experiments.x.pairs"),
    ({"sweep": {"sparsities": [0.2, 1.0]}}, "sweep.sparsities"),
    ({"model": {"width_divisor": 3}}, "model.width_divisor"),
    ({"model": {"arch": "resnet50", "width_divisor": 16},
      "pretrain": {"published": {"standard": "torchvision_resnet50_imagenet1k_v1"}}}, "model.width_divisor"),
])
def test_invalid_values_name_the_key(bad, key):
    from repro.registries import params_from

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        params_from(bad)


def _stage(tmp_path: Path, module: str, params: dict, *args) -> subprocess.CompletedProcess:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.mark.parametrize("override, needle", [
    ({"sparsity": 1.5}, "sparsity: 1.5 is outside [0, 1)"),
    ({"data": {"downstream": ["cifar11"]}}, "dataset 'cifar11' is unknown"),
])
def test_stage_fails_fast_with_one_line_and_writes_nothing(tmp_path, override, needle):
    """`dvc exp run -S sparsity=1.5` or an unknown dataset: a clear one-line error, exit 2, no outputs."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for k, v in override.items():
        params[k] = v if not isinstance(v, dict) else {**params[k], **v}
    r = _stage(tmp_path, "repro.stages.study", params)
    assert r.returncode == 2
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and needle in err[0], r.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["params.yaml"]


def test_one_epoch_adversarial_transfer_is_rejected_before_any_work():
    """Fig. 6 trajectory plane: 3 snapshots = at least 2 adversarial epochs; caught at params load,
    not hours later in the analysis stage."""
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    raw["transfer"]["adversarial"]["epochs"] = 1
    raw["transfer"]["adversarial"]["milestones"] = []
    with pytest.raises(ConfigError, match="transfer.adversarial.epochs: 1 must be >= 2"):
        params_from(raw)
    raw["transfer"]["adversarial"]["epochs"] = 2  # the same for a per-task or a named recipe's adversarial entry
    one = {"epochs": 1, "lr": 0.01, "batch_size": 8}
    for key, table in (("per_task", {"synth_near": {"adversarial": one}}), ("recipes", {"rt": {"adversarial": one}})):
        bad = {**raw, "transfer": {**raw["transfer"], key: table}}
        name = next(iter(table))
        with pytest.raises(ConfigError, match=rf"transfer\.{key}\.{name}\.adversarial\.epochs: 1 must be >= 2"):
            params_from(bad)
