"""The real tiers run the papers' own protocol (issue 13): no toy values left from the embedded
default, the paper's values as defaults with the official code's one parameter away, OoD sets that
are not the evaluated task."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from repro.config import ConfigError, from_dict
from repro.config.params import Params
from repro.tiers import merge

ROOT = Path(__file__).resolve().parents[1]
REAL_TIERS = ("small", "paper")


def _default() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def merged(tier: str) -> dict:
    return merge(_default(), yaml.safe_load((ROOT / "tiers" / f"{tier}.yaml").read_text()))


def training_blocks(cfg, path=()):
    """(path, block) of every training recipe (a mapping with ``epochs``) in a params tree."""
    if isinstance(cfg, dict):
        if "epochs" in cfg:
            yield path, cfg
        for k, v in cfg.items():
            yield from training_blocks(v, (*path, k))


def _at(cfg, path):
    for k in path:
        cfg = cfg[k]
    return cfg


@pytest.mark.parametrize("tier", REAL_TIERS)
def test_every_training_block_of_a_real_tier_is_set_explicitly(tier):
    default, cfg = _default(), merged(tier)
    blocks = list(training_blocks(cfg))
    # pretraining, IMP retraining, LMP, the three transfer regimes and the Table A2 reference model
    assert len(blocks) >= 7
    toy = [".".join(p) for p, b in blocks if b == _at(default, p)]
    assert not toy, f"tier {tier} leaves the embedded default's toy recipe at {toy}"


@pytest.mark.parametrize("tier", REAL_TIERS)
def test_real_tiers_run_the_papers_a_imp_step_and_the_official_first_n_subsets(tier):
    cfg = merged(tier)
    p = from_dict(Params, cfg)
    a = p.tickets.imp.attack
    assert (a.name, a.steps) == ("pgd", 3)
    assert a.eps == pytest.approx(8 / 255) and a.alpha == pytest.approx(2 / 255)  # DW Sec. A1
    assert p.data.fraction_how == "first"  # the official code's data-limited subsets


def test_a_imp_defaults_to_the_papers_step_and_the_official_step_is_one_parameter_away(tmp_path):
    p = from_dict(Params, _default())
    assert p.tickets.imp.attack.alpha == pytest.approx(2 / 255)
    official = from_dict(Params, merge(_default(), {"tickets": {"imp": {"attack": {"alpha": "16/765"}}}}))
    assert official.tickets.imp.attack.alpha == pytest.approx(16 / (3 * 255))


def test_an_ood_set_equal_to_an_evaluated_task_is_refused():
    cfg = merge(_default(), {"data": {"ood": "synth_near"}})
    with pytest.raises(ConfigError, match=r"data\.ood.*'synth_near' is also the evaluated task"):
        from_dict(Params, cfg)
    cfg = merge(_default(), {"data": {"ood_per_task": {"synth_mid": "synth_mid"}}})
    with pytest.raises(ConfigError, match=r"ood_per_task\.synth_mid"):
        from_dict(Params, cfg)
    p = from_dict(Params, merge(_default(), {"data": {"ood_per_task": {"synth_mid": "synth_near"}}}))
    assert (p.data.ood_for("synth_mid"), p.data.ood_for("synth_near")) == ("synth_near", "synth_ood")


@pytest.mark.parametrize("tier", REAL_TIERS)
def test_no_real_tier_measures_a_task_against_itself_as_ood(tier):
    p = from_dict(Params, merged(tier))
    assert all(p.data.ood_for(t) != t for t in p.data.downstream)
    assert p.data.ood_for("svhn") == "cifar10" and p.data.ood_for("cifar10") == "svhn"


def test_evaluate_uses_each_tasks_own_ood_set(tmp_path):
    import reliability_ws as W
    from repro.config import load_params
    from repro.stages import evaluate, transfer
    from repro.plan import RunSpec

    ws = W.clone(tmp_path / "ws")
    W.write_params(ws, merge(W.smoke_params(), {"data": {"ood_per_task": {"synth_near": "synth_far"}}}))
    spec = RunSpec(W.KIND, "omp", "synth_near", "standard", 1.0, 0)
    with W.inside(ws):
        p = load_params()
        run = transfer.run_one(p, spec, 0.488, {})
        cache: dict = {}
        evaluate.evaluate_run(p, run, {}, cache, {})
    assert list(cache) == ["synth_far"]
