"""Published weights: every publisher's layout converts to torchvision's state_dict with identical logits;
pinned sha256 checked before loading; the restricted legacy-pickle path; the pretrain stage. Offline."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import email.message
import io
import json
import os
import pickle
import sys
import types
import urllib.error
import urllib.request
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import yaml

from repro import weights as W
from repro.models import build_model
from repro.models.resnet import IMAGENET_MEAN, IMAGENET_STD

from helpers import _one_thread  # noqa: F401  (module fixture: one thread)

ROOT = Path(__file__).resolve().parents[1]
MADRY18 = "madrylab_resnet18_linf_eps4.0"


# ------------------------------------------------------------------------------------ fixtures
@contextlib.contextmanager
def fake_dill():
    """Importable stand-ins for ``dill._dill`` so pickle writes dill's globals (dill is not installed)."""
    dill, _dill = types.ModuleType("dill"), types.ModuleType("dill._dill")

    def stub(qualname):
        def f(*a):
            raise AssertionError("the real dill helper must never be called")
        f.__module__, f.__name__, f.__qualname__ = "dill._dill", qualname, qualname
        setattr(_dill, qualname, f)
        return f

    dill._dill = _dill
    saved = {k: sys.modules.get(k) for k in ("dill", "dill._dill")}
    sys.modules.update({"dill": dill, "dill._dill": _dill})
    try:
        yield stub("_load_type"), stub("_create_function")
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class Reduce:
    """Pickles as ``fn(*args)``: how a file smuggles in a call."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def torchvision_net() -> torch.nn.Module:
    """torchvision ResNet-18 with random weights and non-trivial BatchNorm statistics, in eval mode."""
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return net.eval()


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Nothing in these tests may download: a test that needs urlopen replaces it with a fake."""
    def refuse(*a, **k):
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(torch.hub, "urlopen", refuse)  # repro.weights downloads with torch.hub.download_url_to_file


@pytest.fixture(scope="module")
def net():
    return torchvision_net()


@pytest.fixture(scope="module")
def x():
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def reference_logits(net, x):
    """The publisher's network: normalization outside, then torchvision's ResNet."""
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        return net((x - mean) / std)


def repro_logits(sd, x):
    """``repro.models`` ResNet-18 (Normalize inside), loaded the way the pipeline loads pretrained weights."""
    from repro.pipeline.inputs import load_into

    model = build_model("resnet18", 1000).eval()
    load_into(model, sd, Path("converted"))
    with torch.no_grad():
        return model(x)


def madrylab_ckpt(sd, load_type=None):
    model = OrderedDict()
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    model["module.normalizer.new_mean"], model["module.normalizer.new_std"] = mean, std
    for k, v in sd.items():
        model[f"module.model.{k}"] = v
    model["module.attacker.normalize.new_mean"], model["module.attacker.normalize.new_std"] = mean, std
    for k, v in sd.items():
        model[f"module.attacker.model.{k}"] = v
    ck = {"model": model, "epoch": 90, "amp": None,
          "optimizer": {"state": {0: {"momentum_buffer": torch.zeros(3)}},
                        "param_groups": [{"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "params": [0]}]},
          "schedule": {"step_size": 30, "gamma": 0.1, "last_epoch": 89}}
    if load_type is not None:  # what dill writes for a builtin type, plus a training-script Namespace
        ck["schedule"]["_type"] = Reduce(load_type, "NoneType")
        ck["args"] = argparse.Namespace(arch="resnet18", eps=4.0, constraint="inf")
    return ck


LAYOUTS = {
    "torchvision_resnet18_imagenet1k_v1": lambda sd, lt: OrderedDict(
        (k, v) for k, v in sd.items() if not k.endswith("num_batches_tracked")),  # an old file: no BN counters
    MADRY18: madrylab_ckpt,
    "fastadv_resnet50_linf_eps4.0": lambda sd, lt: {
        "epoch": 15, "arch": "resnet18", "best_prec1": 43.5, "optimizer": {"state": {}, "param_groups": []},
        "state_dict": OrderedDict((f"module.{k}", v) for k, v in sd.items())},
    "smoothing_resnet50_sigma0.25": lambda sd, lt: {
        "epoch": 90, "arch": "resnet18", "optimizer": {"state": {}, "param_groups": []},
        "state_dict": OrderedDict([("0.means", torch.tensor(IMAGENET_MEAN)), ("0.sds", torch.tensor(IMAGENET_STD)),
                                   *((f"1.module.{k}", v) for k, v in sd.items())])},
}


def as_resnet18(name: str) -> W.PublishedWeights:
    """The registry entry with the test network's architecture (ResNet-50 files are too big for a unit test)."""
    return dataclasses.replace(W.WEIGHTS.get(name), arch="resnet18")


@pytest.fixture(scope="module")
def files(net, tmp_path_factory):
    """One fake checkpoint per published layout; MadryLab's references dill's globals."""
    d = tmp_path_factory.mktemp("published")
    sd = net.state_dict()
    out = {}
    with fake_dill() as (load_type, _):
        for name, make in LAYOUTS.items():
            path = d / W.WEIGHTS.get(name).filename
            legacy = name.startswith("smoothing")  # Cohen et al. saved with torch 1.x: the pre-zip format
            torch.save(make(sd, load_type), path, _use_new_zipfile_serialization=not legacy)
            out[name] = path
    return out


def write_lock(path: Path, pins: dict) -> Path:
    path.write_text("# test lock\nsha256:\n" + "".join(f'  {k}: "{v}"\n' for k, v in pins.items()))
    return path


@pytest.fixture
def cache(tmp_path, files):
    """A weights cache holding the MadryLab ResNet-18 file, and a lock pinning it."""
    c = tmp_path / "cache"
    c.mkdir()
    src = files[MADRY18]
    (c / src.name).write_bytes(src.read_bytes())
    lock = write_lock(tmp_path / "lock.yaml", {MADRY18: W.sha256_file(src)})
    return c, lock


# ------------------------------------------------------------------------------ layouts/logits
@pytest.mark.parametrize("name", list(LAYOUTS))
def test_every_published_layout_converts_to_the_same_network(name, files, net, x):
    entry = as_resnet18(name)
    obj = W.load_checkpoint(files[name], entry.legacy_pickle)
    sd = W.convert(entry, obj, files[name])
    assert list(sd) == list(build_model("resnet18", 1000).state_dict())  # torchvision's keys, in order
    assert torch.equal(repro_logits(sd, x), reference_logits(net, x))


def test_madrylab_dill_globals_resolve_to_safe_stand_ins(files):
    ck = W.load_checkpoint(files[MADRY18], legacy_pickle=True)
    assert ck["schedule"]["_type"] is type(None)
    assert isinstance(ck["args"], W._Namespace) and ck["args"].eps == 4.0
    # without the restricted allowlist the same file is refused, naming dill's global
    with pytest.raises(W.WeightsError, match=r"refused global 'dill\._dill\._load_type'"):
        W.load_checkpoint(files[MADRY18], legacy_pickle=False)


def test_madrylab_normalizer_must_be_imagenet(net):
    ck = madrylab_ckpt(net.state_dict())
    ck["model"]["module.normalizer.new_std"] = torch.ones(3, 1, 1)
    with pytest.raises(W.WeightsError, match="new_std is .* not ImageNet's"):
        W.convert(as_resnet18(MADRY18), ck)


def test_wrong_layout_names_the_first_missing_key(net):
    sd = OrderedDict((k, v) for k, v in net.state_dict().items() if not k.startswith("layer4.1.conv2"))
    first_missing = r"lacks 1 weights of torchvision resnet18, e\.g\. 'layer4\.1\.conv2\.weight'"
    with pytest.raises(W.WeightsError, match=first_missing):
        W.convert(as_resnet18("torchvision_resnet18_imagenet1k_v1"), sd)
    with pytest.raises(W.WeightsError, match=r"lacks \d+ weights of torchvision resnet50"):  # not a ResNet-50
        W.convert(W.WEIGHTS.get("torchvision_resnet50_imagenet1k_v1"), net.state_dict())
    with pytest.raises(W.WeightsError, match="not a fast-adversarial checkpoint: no 'state_dict'"):
        W.convert(as_resnet18("fastadv_resnet50_linf_eps4.0"), {"model": net.state_dict()})


# -------------------------------------------------------------------- restricted legacy path
def test_forbidden_globals_are_refused_and_never_run(tmp_path, net):
    marker = tmp_path / "pwned"
    evil = {
        "os.system": Reduce(os.system, f"touch {marker}"),
        "builtins.eval": Reduce(eval, f"__import__('pathlib').Path({str(marker)!r}).touch()"),
    }
    for what, obj in evil.items():
        path = tmp_path / f"{what}.pt"
        torch.save({"model": {"w": torch.zeros(1)}, "payload": obj}, path)
        for legacy in (False, True):
            with pytest.raises(W.WeightsError) as e:
                W.load_checkpoint(path, legacy_pickle=legacy)
            msg = str(e.value)
            assert "\n" not in msg and "refused" in msg and "nothing from the file was executed" in msg
            assert ("posix.system" if what == "os.system" else "builtins.eval") in msg
    assert not marker.exists()


def test_dill_helpers_outside_the_type_table_are_refused(tmp_path):
    with fake_dill() as (load_type, create_function):
        torch.save({"t": Reduce(load_type, "CodeType")}, tmp_path / "code.pt")
        torch.save({"f": Reduce(create_function, "code", {}, "name")}, tmp_path / "fn.pt")
    with pytest.raises(W.WeightsError, match="dill type 'CodeType' is not on the allowlist"):
        W.load_checkpoint(tmp_path / "code.pt", legacy_pickle=True)
    with pytest.raises(W.WeightsError, match=r"refused global 'dill\._dill\._create_function'"):
        W.load_checkpoint(tmp_path / "fn.pt", legacy_pickle=True)


def test_torch_rejects_a_custom_pickle_module_with_weights_only(tmp_path):
    """Why the restricted path uses safe_globals: torch.load(weights_only=True) refuses any pickle_module."""
    torch.save({"w": torch.zeros(1)}, tmp_path / "a.pt")
    with pytest.raises(RuntimeError, match="explicit pickle_module"):
        torch.load(tmp_path / "a.pt", weights_only=True, pickle_module=pickle)


def test_truncated_checkpoint_is_one_clear_error(tmp_path, files):
    path = tmp_path / "cut.ckpt"
    path.write_bytes(files[MADRY18].read_bytes()[:100_000])
    with pytest.raises(W.WeightsError, match="cannot be loaded as a weights-only tensor file") as e:
        W.load_checkpoint(path, legacy_pickle=True)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------- hashes and fetching
def test_fetch_verifies_converts_and_writes(cache, tmp_path, net, x):
    c, lock = cache
    got = W.fetch(MADRY18, tmp_path / "out" / "model.pt", cache_dir=c, lock=lock)
    assert got.sha256 == W.sha256_file(c / W.WEIGHTS.get(MADRY18).filename)
    sd = torch.load(got.dest, weights_only=True)
    assert torch.equal(repro_logits(sd, x), reference_logits(net, x))


def test_unpinned_checkpoint_is_refused(cache, tmp_path):
    c, _ = cache
    empty = write_lock(tmp_path / "empty.yaml", {})
    with pytest.raises(W.WeightsError, match=rf"no pinned sha256 .*`python -m repro\.weights pin {MADRY18} ") as e:
        W.fetch(MADRY18, tmp_path / "model.pt", cache_dir=c, lock=empty)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "model.pt").exists()


def test_wrong_sha256_is_refused_and_nothing_is_written(cache, tmp_path):
    c, _ = cache
    bad = write_lock(tmp_path / "bad.yaml", {MADRY18: "ab" * 32})
    with pytest.raises(W.WeightsError) as e:
        W.fetch(MADRY18, tmp_path / "out" / "model.pt", cache_dir=c, lock=bad)
    msg, actual = str(e.value), W.sha256_file(c / "resnet18_linf_eps4.0.ckpt")
    assert "resnet18_linf_eps4.0.ckpt" in msg and "ab" * 32 in msg and actual in msg and "\n" not in msg
    assert not (tmp_path / "out").exists()


def test_truncated_cached_file_fails_its_hash(cache, tmp_path):
    c, lock = cache
    f = c / "resnet18_linf_eps4.0.ckpt"
    f.write_bytes(f.read_bytes()[:-1000])
    with pytest.raises(W.WeightsError, match=r"sha256 mismatch .*\(truncated or a different file\)"):
        W.fetch(MADRY18, tmp_path / "model.pt", cache_dir=c, lock=lock)
    assert not (tmp_path / "model.pt").exists()


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes, length: int | None = None):
        super().__init__(data)
        self.headers = email.message.Message()
        self.headers["Content-Length"] = str(len(data) if length is None else length)

    def info(self):
        return self.headers


def test_download_is_verified_before_it_enters_the_cache(cache, tmp_path, monkeypatch, files):
    _, lock = cache
    c = tmp_path / "fresh"
    data = files[MADRY18].read_bytes()
    served = {"data": data, "length": None}
    monkeypatch.setattr(torch.hub, "urlopen", lambda req, timeout=None: FakeResponse(served["data"], served["length"]))
    W.fetch(MADRY18, tmp_path / "a.pt", cache_dir=c, lock=lock, progress=False)
    assert (c / "resnet18_linf_eps4.0.ckpt").read_bytes() == data and (tmp_path / "a.pt").is_file()

    (c / "resnet18_linf_eps4.0.ckpt").unlink()
    served["data"] = data[:-1] + bytes([data[-1] ^ 1])  # corrupted in transit
    with pytest.raises(W.WeightsError, match="sha256 mismatch: expected .* deleted, nothing was written"):
        W.fetch(MADRY18, tmp_path / "b.pt", cache_dir=c, lock=lock, progress=False)
    served.update(data=data[: len(data) // 2], length=len(data))  # connection dropped half way
    with pytest.raises(W.WeightsError, match=r"sha256 mismatch: .*truncated or a different file\); deleted"):
        W.fetch(MADRY18, tmp_path / "b.pt", cache_dir=c, lock=lock, progress=False)
    assert list(c.iterdir()) == [] and not (tmp_path / "b.pt").exists()  # no temp file, nothing cached


def test_offline_missing_file_names_it_and_where_to_put_it(cache, tmp_path, monkeypatch):
    _, lock = cache

    def offline(req, timeout=None):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "urlopen", offline)
    with pytest.raises(W.WeightsError) as e:
        W.fetch(MADRY18, tmp_path / "m.pt", cache_dir=tmp_path / "empty", lock=lock, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "Name or service not known" in msg
    assert f"put a copy of resnet18_linf_eps4.0.ckpt at {tmp_path / 'empty' / 'resnet18_linf_eps4.0.ckpt'}" in msg
    # a publisher without a direct URL: never downloaded, the message says how to get it
    name = "smoothing_resnet50_sigma0.25"
    lock2 = write_lock(tmp_path / "l2.yaml", {name: "cd" * 32})
    with pytest.raises(W.WeightsError, match="extract models/imagenet/resnet50/noise_0.25/checkpoint.pth.tar"):
        W.fetch(name, tmp_path / "m.pt", cache_dir=tmp_path / "empty", lock=lock2)


def test_archive_extracted_into_the_cache_is_found(tmp_path, monkeypatch, files, net, x):
    name = "smoothing_resnet50_sigma0.25"
    monkeypatch.setitem(W.WEIGHTS._items, name, as_resnet18(name))
    member = tmp_path / "cache" / W.WEIGHTS.get(name).archive_member
    member.parent.mkdir(parents=True)
    member.write_bytes(files[name].read_bytes())
    lock = write_lock(tmp_path / "lock.yaml", {name: W.sha256_file(member)})
    got = W.fetch(name, tmp_path / "m.pt", cache_dir=tmp_path / "cache", lock=lock)
    assert got.source == member
    assert torch.equal(repro_logits(torch.load(got.dest, weights_only=True), x), reference_logits(net, x))


def test_pin_records_the_hash_and_keeps_the_lock_readable(tmp_path, files, capsys):
    lock = tmp_path / "lock.yaml"
    lock.write_text((ROOT / "repro" / "weights" / "weights.lock.yaml").read_text())
    assert W.main(["--lock", str(lock), "pin", MADRY18, str(files[MADRY18])]) == 0
    h = W.sha256_file(files[MADRY18])
    assert capsys.readouterr().out.startswith(h)
    assert W.read_lock(lock)[MADRY18] == h and lock.read_text().startswith("# sha256 of each published")
    assert W.read_lock(lock)["torchvision_resnet50_imagenet1k_v1"] == "0676ba61"
    # a file that does not match an existing pin is not pinned
    other = files["fastadv_resnet50_linf_eps4.0"]
    assert W.main(["--lock", str(lock), "pin", MADRY18, str(other)]) == 2
    assert "sha256 mismatch" in capsys.readouterr().err and W.read_lock(lock)[MADRY18] == h


def test_torchvision_prefix_is_pinned_like_torchvision_checks_it(tmp_path, files):
    for arch, prefix in (("resnet18", "f37072fd"), ("resnet50", "0676ba61")):
        e = W.WEIGHTS.get(f"torchvision_{arch}_imagenet1k_v1")
        assert e.url == f"https://download.pytorch.org/models/{arch}-{prefix}.pth" and e.sha256 == prefix
        assert W.expected_sha256(e.name) == prefix
    bad = write_lock(tmp_path / "lock.yaml", {"torchvision_resnet18_imagenet1k_v1": "00" * 32})
    with pytest.raises(W.WeightsError, match="the registry pins f37072fd"):
        W.expected_sha256("torchvision_resnet18_imagenet1k_v1", bad)
    name = "torchvision_resnet18_imagenet1k_v1"  # our fake file does not start with f37072fd
    c = tmp_path / "c"
    c.mkdir()
    (c / "resnet18-f37072fd.pth").write_bytes(files[name].read_bytes())
    with pytest.raises(W.WeightsError, match=r"expected f37072fd… \(prefix\)"):
        W.fetch(name, tmp_path / "m.pt", cache_dir=c)


def test_repo_lock_lists_every_entry_and_invents_no_hash():
    table = W.read_lock()
    assert sorted(table) == W.WEIGHTS.names()
    for name, h in table.items():
        assert h == W.WEIGHTS.get(name).sha256, name  # only the torchvision prefixes are known offline


def test_unknown_registry_name_lists_the_allowed_ones(tmp_path):
    from repro.config import ConfigError
    from repro.registries import params_from

    with pytest.raises(KeyError, match=r"unknown published checkpoint 'resnet50_linf_eps4'; allowed: fastadv_"):
        W.fetch("resnet50_linf_eps4", tmp_path / "m.pt")
    with pytest.raises(ConfigError, match=r"published\.pgd_adversarial: 'nope' is not a published .* allowed: "):
        params_from({"pretrain": {"published": {"pgd_adversarial": "nope"}}})
    with pytest.raises(ConfigError, match=r"pretrain\.published: kind 'robust' is not allowed; allowed: standard"):
        params_from({"pretrain": {"published": {"robust": MADRY18}}})
    with pytest.raises(ConfigError, match=r"is pgd_adversarial pretraining, not standard; allowed: torchvision_"):
        params_from({"pretrain": {"published": {"standard": MADRY18}}})


def test_paper_tier_uses_registered_resnet50_checkpoints():
    from repro.config import PretrainParams, from_dict

    tier = yaml.safe_load((ROOT / "tiers" / "paper.yaml").read_text())
    pub = from_dict(PretrainParams, tier["pretrain"]).published
    assert set(pub) == {"standard", "pgd_adversarial", "fast_adversarial", "random_smoothing"}
    assert all(W.WEIGHTS.get(n).arch == tier["model"]["arch"] == "resnet50" for n in pub.values())


# ---------------------------------------------------------------------------------- the stage
def test_pretrain_stage_with_a_published_checkpoint(cache, tmp_path, monkeypatch, capsys, net, x):
    from repro.stages import pretrain
    from repro.pipeline.inputs import load_state

    c, lock = cache
    run = tmp_path / "work"
    run.mkdir()
    monkeypatch.chdir(run)
    monkeypatch.setenv("REPRO_WEIGHTS_DIR", str(c))
    monkeypatch.setenv("REPRO_THREADS", "1")
    monkeypatch.setattr(W.lock, "LOCK_FILE", lock)
    (run / "params.yaml").write_text(yaml.safe_dump(
        {"model": {"arch": "resnet18"}, "pretrain": {"published": {"pgd_adversarial": MADRY18}}}))
    out = run / "runs" / "pretrain" / "pgd_adversarial"

    assert pretrain.main(["pgd_adversarial"]) == 0
    sd = load_state(out / "model.pt")  # what imp / tickets / transfer load
    assert torch.equal(repro_logits(sd, x), reference_logits(net, x))
    meta = json.loads((out / "metrics.json").read_text())
    assert meta["source"] == "published" and meta["name"] == MADRY18 and meta["kind"] == "pgd_adversarial"
    assert meta["sha256"] == W.sha256_file(c / "resnet18_linf_eps4.0.ckpt")

    import shutil

    shutil.rmtree(run / "runs")
    write_lock(lock, {MADRY18: "ef" * 32})
    capsys.readouterr()
    assert pretrain.main(["pgd_adversarial"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "sha256 mismatch" in err and "ef" * 32 in err
    assert not out.exists() and list((run / "runs" / "pretrain").iterdir()) == []  # no half-written run

    (run / "params.yaml").write_text(yaml.safe_dump(
        {"model": {"arch": "resnet50"}, "pretrain": {"published": {"pgd_adversarial": MADRY18}}}))
    assert pretrain.main(["pgd_adversarial"]) == 2
    assert "is a resnet18, but model.arch is 'resnet50'" in capsys.readouterr().err


def test_the_data_stage_refuses_unpinned_checkpoints_before_any_work(tmp_path, monkeypatch, capsys):
    """A configuration naming a published checkpoint without a pinned sha256 stops at the first stage, in one line
    naming it, with nothing written: not at pretraining or at the analysis stage (FID) hours later."""
    from repro.config import load_params
    from repro.pipeline.data import check_weights_pinned, required_weights
    from repro.stages import data

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REPRO_THREADS", "1")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"model": {"arch": "resnet18"}, "pretrain": {"published": {"pgd_adversarial": MADRY18}},
         "evaluation": {"domain_gap": "fid"}}))
    p = load_params()
    assert {MADRY18, "fid_inception_v3_2015_12_05"} <= set(required_weights(p))
    assert W.expected_sha256(MADRY18) is None          # the committed lock: unpinned until a user pins it
    assert data.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and MADRY18 in err and "repro.weights pin" in err
    assert "fid_inception_v3_2015_12_05" not in err     # pinned in code by its file name's prefix
    assert not (tmp_path / "runs").exists()
    lock = tmp_path / "lock.yaml"
    write_lock(lock, {n: "ab" * 32 for n in required_weights(p) if W.expected_sha256(n) is None})
    monkeypatch.setattr(W.lock, "LOCK_FILE", lock)
    check_weights_pinned(p)                             # every one pinned: nothing to refuse
