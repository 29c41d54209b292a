"""Reliability 1: every invalid params.yaml is refused with a ConfigError naming the dotted key.

Property-based (hypothesis): configurations are the committed params.yaml with one leaf replaced
by a value of the wrong type, an out-of-range value, an unknown key, or an inconsistent
combination; valid ones are random in-range edits, and they must load and round-trip.

Which key is broken is not left to chance: every schema leaf (``LEAVES``), every constrained key
(``OUT_OF_RANGE``) and every section (``SECTIONS``) is its own test case (pytest parametrize);
hypothesis draws only the values. ``test_enumeration_covers_the_whole_schema`` pins the counts that
docs/RELIABILITY.md states.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Literal, Union, get_args, get_origin

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from repro.config import METHODS, ConfigError, Params, to_dict
from repro.config.typed import parse_number
from repro.registries import params_from

ROOT = Path(__file__).resolve().parents[1]
BASE = yaml.safe_load((ROOT / "params.yaml").read_text())
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: per enumerated key: hypothesis draws this many values for each leaf / constrained key / section
PER_KEY = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------- schema walk
def _leaves(cls, prefix: tuple = ()) -> list[tuple[tuple, object]]:
    """(path, type) of every field of the schema; experiments are walked under their committed names."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, path = hints[f.name], prefix + (f.name,)
        if dataclasses.is_dataclass(tp):
            out.append((path, tp))
            out += _leaves(tp, path)
        elif path == ("experiments",):
            from repro.config import Experiment

            out.append((path, tp))
            for name in BASE["experiments"]:
                out.append((path + (name,), Experiment))
                out += _leaves(Experiment, path + (name,))
        else:
            out.append((path, tp))
    return out


LEAVES = _leaves(Params)
PATHS = {p for p, _ in LEAVES}


def _is_number(v) -> bool:
    try:
        parse_number(v, "k")
        return True
    except ConfigError:
        return False


def wrong_type(tp) -> st.SearchStrategy:
    """Values that no field of type ``tp`` accepts."""
    origin = get_origin(tp)
    junk_text = st.text(min_size=1, max_size=8)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(tp) if a is not type(None)]
        # a value another member accepts is not wrong (runtime.compile: str, or YAML's bare on/off booleans)
        return wrong_type(inner[0]).filter(lambda v: not any(isinstance(v, a) for a in inner[1:]))
    if origin is Literal:
        allowed = get_args(tp)
        return st.one_of(junk_text.filter(lambda s: s not in allowed), st.integers(),
                         st.lists(st.integers(), max_size=2))
    if dataclasses.is_dataclass(tp):
        return st.one_of(st.integers(), junk_text, st.lists(st.integers(), min_size=1, max_size=2))
    if origin in (tuple, list):
        return st.one_of(st.integers(), junk_text, st.dictionaries(junk_text, st.integers(), min_size=1, max_size=2))
    if origin is dict:
        return st.one_of(st.integers(), junk_text, st.lists(st.integers(), min_size=1, max_size=2))
    if tp is bool:
        return st.one_of(st.integers(), junk_text, st.floats(allow_nan=False))
    if tp is int:
        non_integral = st.floats(allow_nan=False).filter(lambda x: not math.isfinite(x) or x != int(x))
        return st.one_of(junk_text, st.booleans(), non_integral,
                         st.lists(st.integers(), min_size=1, max_size=2))
    if tp is float:
        return st.one_of(junk_text.filter(lambda s: not _is_number(s)), st.booleans(),
                         st.lists(st.integers(), min_size=1, max_size=2), st.just(float("nan")), st.just(float("inf")))
    if tp is str:
        return st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(),
                         st.lists(st.integers(), min_size=1, max_size=2))
    raise AssertionError(f"no wrong-type strategy for {tp}")


def _get(cfg: dict, path: tuple):
    for k in path:
        cfg = cfg[k]
    return cfg


def _set(cfg: dict, path: tuple, value) -> dict:
    out = copy.deepcopy(cfg)
    node = out
    for k in path[:-1]:
        node = node.setdefault(k, {})
        if node is None:
            raise AssertionError(path)
    node[path[-1]] = value
    return out


def _key(path: tuple) -> str:
    return ".".join(map(str, path))


def expect_config_error(cfg: dict, key: str) -> str:
    with pytest.raises(ConfigError) as ei:
        params_from(cfg)  # as a stage validates: the schema and every registered name
    msg = str(ei.value)
    assert key in msg, f"{key!r} not named in {msg!r}"
    assert "\n" not in msg
    return msg


# ------------------------------------------------------------------------- invalid configs
@pytest.mark.parametrize("path, tp", LEAVES, ids=[_key(p) for p, _ in LEAVES])
@PER_KEY
@given(data=st.data())
def test_wrong_type_anywhere_names_the_key(path, tp, data):
    value = data.draw(wrong_type(tp), label="value")
    expect_config_error(_set(BASE, path, value), _key(path))


def _sections() -> list[tuple[tuple, type]]:
    return [((), Params)] + [(p, tp) for p, tp in LEAVES if dataclasses.is_dataclass(tp)]


SECTIONS = _sections()


@pytest.mark.parametrize("section, cls", SECTIONS, ids=[_key(p) or "<top>" for p, _ in SECTIONS])
@PER_KEY
@given(name=st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True))
def test_unknown_key_anywhere_names_the_key(section, cls, name):
    assume(name not in {f.name for f in dataclasses.fields(cls)})
    cfg = copy.deepcopy(BASE)
    node = cfg
    for k in section:
        node = node.setdefault(k, {})
    node[name] = 1
    expect_config_error(cfg, "unknown key " + _key(section + (name,)))


def _outside(lo, hi, lo_open=False, hi_open=False) -> st.SearchStrategy:
    """Floats outside [lo, hi] (bounds themselves invalid when the interval is open there), plus NaN/inf."""
    below = st.floats(max_value=lo, exclude_max=not lo_open, allow_nan=False, allow_infinity=False, width=32)
    above = st.floats(min_value=hi, exclude_min=not hi_open, allow_nan=False, allow_infinity=False, width=32)
    return st.one_of(below, above, st.sampled_from([float("nan"), float("inf"), float("-inf")]))


ATTACKS = [("pretrain", "pgd"), ("pretrain", "fgsm_rs"), ("tickets", "imp", "attack"), ("transfer", "attack"),
           ("evaluation", "attack")]
TRAINS = [("pretrain", "train"), ("tickets", "imp", "retrain"), ("tickets", "lmp", "train"), ("transfer", "standard"),
          ("transfer", "adversarial"), ("transfer", "linear"), ("evaluation", "reference")]
NEG = st.integers(max_value=-1)
OUT_OF_RANGE = [
    (("sparsity",), _outside(0, 1, hi_open=True)),
    (("workers",), NEG),
    (("device",), st.sampled_from(["gpu", "cudax", "cuda:", "CPU", "tpu:0"])),
    (("data", "image_size"), st.integers(max_value=7)),
    (("data", "num_workers"), NEG),
    (("data", "synthetic", "source_classes"), st.integers(max_value=1)),
    (("data", "synthetic", "n_train_downstream"), st.integers(max_value=0)),
    (("data", "synthetic", "gaps", "synth_far"), _outside(0, 1)),
    (("data", "synthetic", "texture", "amplitude"), _outside(0, 0.5)),
    (("data", "synthetic", "texture", "tile"), st.integers(max_value=1)),
    (("data", "synthetic", "texture", "basis"), st.integers(max_value=0)),
    (("model", "width"), st.integers(max_value=0)),
    (("model", "width_divisor"), st.sampled_from([0, -2, 3, 6, 64])),
    (("model", "depths"), st.one_of(st.just([]), st.lists(st.integers(max_value=0), min_size=1, max_size=3))),
    (("pretrain", "smoothing_sigma"), st.floats(max_value=0, allow_nan=False, allow_infinity=False)),
    (("tickets", "imp", "rate"), _outside(0, 1, lo_open=True, hi_open=True)),
    (("tickets", "imp", "max_rounds"), st.integers(max_value=0)),
    (("transfer", "seeds"), st.one_of(st.just([]), st.integers().map(lambda s: [s, s]))),
    (("evaluation", "ece_bins"), st.integers(max_value=0)),
    (("evaluation", "batch_size"), st.integers(max_value=0)),
    (("evaluation", "landscape_points"), st.integers(max_value=2)),
    (("evaluation", "landscape_images"), st.integers(max_value=0)),
    (("evaluation", "n_robust"), NEG),
    (("evaluation", "trajectory_level"), _outside(0, 1, lo_open=True, hi_open=True)),
    (("evaluation", "sanity_images"), NEG),
    (("evaluation", "sanity_tolerance"), _outside(0, 1)),
    (("evaluation", "sanity_alpha"), _outside(0, 1, lo_open=True, hi_open=True)),
    (("evaluation", "sanity_strong_steps"), st.integers(max_value=0)),
    (("sweep", "sparsities"), _outside(0, 1, lo_open=True, hi_open=True).map(lambda s: [0.488, s])),
    (("experiments", "dw_data", "fractions"), _outside(0, 1, lo_open=True).map(lambda f: [1.0, f])),
    (("segment", "gamma"), _outside(0, 1, lo_open=True)),
]
for a in ATTACKS:
    OUT_OF_RANGE += [(a + ("eps",), _outside(0, 1)),
                     (a + ("alpha",), st.floats(max_value=0, allow_nan=False, allow_infinity=False)),
                     (a + ("steps",), NEG), (a + ("restarts",), st.integers(max_value=0))]
for t in TRAINS:
    OUT_OF_RANGE += [(t + ("epochs",), st.integers(max_value=0)),
                     (t + ("lr",), st.floats(max_value=0, allow_nan=False, allow_infinity=False)),
                     (t + ("momentum",), _outside(0, 1, hi_open=True)),
                     (t + ("weight_decay",), st.floats(max_value=0, exclude_max=True, allow_nan=False,
                                                       allow_infinity=False)),
                     (t + ("gamma",), st.floats(max_value=0, allow_nan=False, allow_infinity=False)),
                     (t + ("batch_size",), st.integers(max_value=0))]
#: only keys the schema has (a renamed or removed key drops out here; the count test below notices)
OUT_OF_RANGE = [(p, s) for p, s in OUT_OF_RANGE if p in PATHS]


@pytest.mark.parametrize("path, strategy", OUT_OF_RANGE, ids=[_key(p) for p, _ in OUT_OF_RANGE])
@PER_KEY
@given(data=st.data())
def test_out_of_range_anywhere_names_the_key(path, strategy, data):
    value = data.draw(strategy, label="value")
    if path[-1] in ("epochs",):  # a step schedule's milestones must fit the epochs: keep them consistent
        cfg = _set(BASE, path[:-1] + ("milestones",), [])
        cfg = _set(cfg, path, value)
    else:
        cfg = _set(BASE, path, value)
    expect_config_error(cfg, _key(path))


def test_step_milestones_beyond_the_epochs_name_the_key():
    expect_config_error(_set(BASE, ("transfer", "adversarial", "milestones"), [7]), "transfer.adversarial.milestones")


DOWNSTREAM = BASE["data"]["downstream"]
OTHER_TASK = st.sampled_from(["synth_source", "synth_ood", "cifar10", "svhn"])


@SETTINGS
@given(data=st.data(), n_down=st.integers(1, len(DOWNSTREAM)))
def test_inconsistent_combinations_name_the_key(data, n_down):
    """Cross-field rules: tasks must be downstream tasks, pairs must use known kinds/methods of
    pretrain.kinds, LMP only with its `mask` regime, trajectories at a sweep level, unique kinds."""
    downstream = DOWNSTREAM[:n_down]
    base = _set(BASE, ("data", "downstream"), downstream)
    for e in base["experiments"].values():  # keep the committed experiments consistent with fewer tasks
        if e.get("tasks"):
            e["tasks"] = [t for t in e["tasks"] if t in downstream] or [downstream[0]]
    not_down = data.draw(st.one_of(OTHER_TASK, st.sampled_from(DOWNSTREAM[n_down:] or ["synth_far2"])))
    assume(not_down not in downstream)
    kinds = BASE["pretrain"]["kinds"]
    case = data.draw(st.sampled_from(["study_task", "exp_task", "attack_task", "pair_kind_unknown", "pair_kind_unused",
                                      "pair_method", "lmp_without_mask", "mask_without_lmp", "trajectory", "kinds_dup",
                                      "exp_seeds_dup", "pair_shape"]))
    e = {"pairs": [["standard", "omp"]], "regimes": ["standard"]}
    if case == "study_task":
        cfg, key = _set(base, ("study", "tasks"), [downstream[0], not_down]), "study.tasks"
    elif case == "exp_task":
        cfg, key = _set(base, ("experiments", "x"), {**e, "tasks": [not_down]}), "experiments.x.tasks"
    elif case == "attack_task":
        cfg, key = _set(base, ("evaluation", "transfer_attack_task"), not_down), "evaluation.transfer_attack_task"
    elif case == "pair_kind_unknown":
        kind = data.draw(st.from_regex(r"[a-z_]{1,12}", fullmatch=True).filter(lambda k: k not in kinds))
        cfg, key = _set(base, ("experiments", "x"), {**e, "pairs": [[kind, "omp"]]}), "experiments.x.pairs"
    elif case == "pair_kind_unused":
        cfg = _set(base, ("pretrain", "kinds"), ["standard"])
        cfg["experiments"] = {"x": {**e, "pairs": [["pgd_adversarial", "omp"]]}}
        key = "experiments.x.pairs"
    elif case == "pair_method":
        method = data.draw(st.from_regex(r"[a-z_]{1,12}", fullmatch=True).filter(
            lambda m: m not in METHODS))
        cfg, key = _set(base, ("experiments", "x"), {**e, "pairs": [["standard", method]]}), "experiments.x.pairs"
    elif case == "lmp_without_mask":
        cfg, key = _set(base, ("experiments", "x"), {"pairs": [["standard", "lmp"]], "regimes": ["standard"]}), \
            "experiments.x.regimes"
    elif case == "mask_without_lmp":
        cfg, key = _set(base, ("experiments", "x"), {"pairs": [["standard", "imp"]], "regimes": ["mask"]}), \
            "experiments.x.regimes"
    elif case == "trajectory":
        lv = data.draw(st.floats(0.01, 0.99).filter(
            lambda v: all(abs(v - s) > 1e-5 for s in BASE["sweep"]["sparsities"])))
        cfg, key = _set(base, ("evaluation", "trajectory_level"), lv), "evaluation.trajectory_level"
    elif case == "kinds_dup":
        cfg, key = _set(base, ("pretrain", "kinds"), kinds + [kinds[0]]), "pretrain.kinds"
    elif case == "exp_seeds_dup":
        cfg, key = _set(base, ("experiments", "x"), {**e, "seeds": [3, 3]}), "experiments.x.seeds"
    else:
        cfg, key = _set(base, ("experiments", "x"), {**e, "pairs": [["standard"]]}), "experiments.x.pairs"
    expect_config_error(cfg, key)


def test_unknown_dataset_names_its_key():
    expect_config_error(_set(BASE, ("data", "ood"), "no_such_set"), "data.ood")
    expect_config_error(_set(BASE, ("data", "source"), "no_such_set"), "data.source")


# --------------------------------------------------------------------------- valid configs
FRACTION_STR = st.tuples(st.integers(0, 16), st.integers(1, 255)).filter(lambda t: t[0] <= t[1]).map(
    lambda t: f"{t[0]}/{t[1]}")
UNIT = st.floats(0, 1, allow_nan=False)


@st.composite
def valid_config(draw):
    cfg = copy.deepcopy(BASE)
    cfg["sparsity"] = draw(st.floats(0, 0.999))
    cfg["seed"] = draw(st.integers(-2**31, 2**31))
    cfg["workers"] = draw(st.integers(0, 64))
    cfg["device"] = draw(st.sampled_from(["auto", "cpu", "cuda", "cuda:0", "cuda:3"]))
    n = draw(st.integers(1, len(DOWNSTREAM)))
    cfg["data"]["downstream"] = draw(st.permutations(DOWNSTREAM))[:n]
    tasks = cfg["data"]["downstream"]
    cfg["data"]["image_size"] = draw(st.integers(8, 64))
    cfg["model"]["depths"] = draw(st.lists(st.integers(1, 3), min_size=1, max_size=4))
    cfg["model"]["width"] = draw(st.integers(1, 16))
    for a in ATTACKS:
        node = _get(cfg, a)
        node["eps"] = draw(st.one_of(UNIT, FRACTION_STR))
        node["alpha"] = draw(st.one_of(st.floats(1e-6, 1), FRACTION_STR.filter(lambda s: not s.startswith("0/"))))
        node["steps"] = draw(st.integers(0, 50))
    for t in TRAINS:
        node = _get(cfg, t)
        # adversarial fine-tuning keeps >= 3 weight snapshots for the trajectory plane (Fig. 6)
        node["epochs"] = epochs = draw(st.integers(2 if t == ("transfer", "adversarial") else 1, 30))
        node["lr"] = draw(st.floats(1e-6, 10))
        node["momentum"] = draw(st.floats(0, 0.999))
        node["weight_decay"] = draw(st.floats(0, 1))
        node["schedule"] = sched = draw(st.sampled_from(["step", "cosine", "constant"]))
        node["milestones"] = draw(st.lists(st.integers(1, epochs), max_size=3)) if sched == "step" else []
    cfg["evaluation"]["sanity_images"] = draw(st.integers(0, 512))
    if ("evaluation", "sanity_tolerance") in PATHS:
        cfg["evaluation"]["sanity_tolerance"] = draw(UNIT)
    if ("evaluation", "sanity_alpha") in PATHS:
        cfg["evaluation"]["sanity_alpha"] = draw(st.floats(1e-6, 0.999))
    cfg["evaluation"]["transfer_attack_task"] = draw(st.one_of(st.none(), st.sampled_from(tasks)))
    cfg["study"]["tasks"] = draw(st.one_of(st.none(), st.lists(st.sampled_from(tasks), min_size=1, unique=True)))
    for e in cfg["experiments"].values():
        if e.get("tasks"):
            e["tasks"] = [t for t in e["tasks"] if t in tasks] or None
        e["fractions"] = draw(st.lists(st.floats(0.001, 1), min_size=1, max_size=3))
    return cfg


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=valid_config())
def test_valid_configs_load_and_round_trip(cfg):
    p = params_from(cfg)
    assert isinstance(p, Params)
    assert params_from(to_dict(p)) == p  # what loads, dumps and loads again unchanged
    assert p.data.downstream == tuple(cfg["data"]["downstream"])


# ------------------------------------------------------------------- the enumeration is complete
def _yaml_paths(node: dict, prefix: tuple = ()):
    sections = {p for p, _ in SECTIONS} | {("experiments",)}
    for k, v in node.items():
        path = prefix + (k,)
        yield path
        if isinstance(v, dict) and path in sections:
            yield from _yaml_paths(v, path)


def test_enumeration_covers_the_whole_schema():
    """Every key of the committed params.yaml is a schema leaf that the wrong-type test enumerates, every
    out-of-range case is a real leaf, and docs/RELIABILITY.md states the true counts."""
    import re

    assert set(_yaml_paths(BASE)) <= PATHS, sorted(set(_yaml_paths(BASE)) - PATHS)
    assert len(PATHS) == len(LEAVES) and len({p for p, _ in OUT_OF_RANGE}) == len(OUT_OF_RANGE)
    text = " ".join((ROOT / "docs" / "RELIABILITY.md").read_text().split())
    m = re.search(r"(\d+) schema keys \(wrong type\), (\d+) constrained keys \(out of range\) and (\d+) "
                  r"sections \(unknown key\)", text)
    assert m, "docs/RELIABILITY.md must state the enumerated counts"
    assert tuple(map(int, m.groups())) == (len(LEAVES), len(OUT_OF_RANGE), len(SECTIONS))
