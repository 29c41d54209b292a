"""Published pretrained ImageNet checkpoints: registry, pinned hashes, verified fetching, converters.

One registry entry (``WEIGHTS``) per published file: architecture (``resnet18`` /
``resnet50``, torchvision's ImageNet ResNets as built by ``repro.models.build_model``),
pretraining kind, eps or sigma, where the publisher serves it, the file name, the
sha256 known in code, the converter to a plain torchvision state_dict and the input
normalization (ImageNet mean/std, applied outside the network by all four publishers).

Hashes. ``weights.lock.yaml`` (next to this module) holds one sha256 per entry, or
``null`` when nobody has pinned it yet. torchvision's file names embed the first 8 hex
digits of the file's sha256 and torchvision itself checks only that prefix; those
prefixes are pinned in code and verified the same way (a lock entry may extend a prefix
to the full hash, never contradict it). Nothing else can be hashed here (no internet),
so the other entries start as ``null`` and ``fetch`` REFUSES them until pinned::

    python -m repro.weights pin <name> <file>     # prints the sha256 and records it in the lock
    python -m repro.weights pin <name>            # with internet: downloads it first (direct URLs)

Check the printed hash against the publisher's (Hugging Face shows a SHA256 on each LFS
file's page) before committing the lock. Any mismatch, a truncated file included, is one
line naming the file, the expected and the actual hash; a mismatching download is
deleted and nothing is written to the output.

Loading. Always ``torch.load(path, map_location="cpu", weights_only=True)``; never
``weights_only=False``. MadryLab's files were pickled with ``dill``, which may reference
``dill._dill._load_type`` (types by name) and, in some training scripts,
``argparse.Namespace``. For those entries only (``legacy_pickle=True``) the RESTRICTED
path adds an explicit allowlist for the duration of the load with
``torch.serialization.safe_globals``, mapping each name to a safe local stand-in:

* ``dill._dill._load_type`` / ``dill.dill._load_type`` -> ``_dill_load_type``, a lookup
  into a fixed table of builtin data types (``NoneType``, ``int``, ``list``, ...);
  anything else (``CodeType``, ``FunctionType``, ...) is refused;
* ``argparse.Namespace`` -> ``_Namespace``, an inert attribute container.

torch's weights-only unpickler still decides everything else (tensor rebuild functions,
storages, ``collections.OrderedDict``; ``os``/``sys``/``posix`` are blocked even if
allowlisted), so a file that references any other global (``os.system``,
``builtins.eval``, dill's function/code builders) is refused before anything runs. A
custom ``pickle_module`` is not an option: torch 2.14's ``torch.load`` raises
"Can not safely load weights when explicit pickle_module is specified" with
``weights_only=True`` (serialization.py), and a ``pickle_module`` with
``weights_only=False`` would hand control to an unrestricted unpickler. The allowlist
is process-global while the ``with`` block runs (torch's design); loads are not
concurrent here.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import pickle
import re
import sys
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import torch
import yaml

from .base.errors import CheckpointError, WeightsError
from .base.io import atomic_path, save_torch
from .models.resnet import IMAGENET_MEAN, IMAGENET_STD
from .base.registry import Registry

LOCK_FILE = Path(__file__).with_name("weights.lock.yaml")
WEIGHTS_ENV = "REPRO_WEIGHTS_DIR"
_HEX = re.compile(r"^[0-9a-f]{8,64}$")


# ------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class PublishedWeights:
    """One published checkpoint file and how to turn it into a torchvision state_dict."""

    name: str
    arch: str                       # 'resnet18' | 'resnet50' (repro.models / torchvision)
    kind: str                       # pretraining kind, as repro.pretraining.PRETRAIN
    url: str                        # direct file URL, or the publisher's page when direct=False
    filename: str                   # name in the weights cache
    converter: Callable[[Any], dict]
    sha256: Optional[str] = None    # pinned in code (hex, >= 8 digits; shorter than 64 = prefix)
    eps: Optional[float] = None     # L-inf radius, pixel scale [0, 1]
    sigma: Optional[float] = None   # Gaussian noise std, pixel scale [0, 1]
    mean: tuple[float, ...] = IMAGENET_MEAN   # input normalization, applied outside the network
    std: tuple[float, ...] = IMAGENET_STD
    direct: bool = True             # url serves the file itself (urllib can download it)
    archive_member: Optional[str] = None  # path of the file inside the publisher's archive
    legacy_pickle: bool = False     # dill-pickled: load through the restricted allowlist
    publisher: str = ""
    notes: str = ""

    def local_candidates(self, cache_dir: Path) -> list[Path]:
        """Where a local copy may sit: ``<cache>/<filename>``, or the archive extracted into the cache."""
        out = [cache_dir / self.filename]
        if self.archive_member:
            out.append(cache_dir / self.archive_member)
        return out


WEIGHTS: Registry[PublishedWeights] = Registry("published checkpoint")


def register(entry: PublishedWeights) -> PublishedWeights:
    if entry.sha256 is not None and not _HEX.match(entry.sha256):
        raise ValueError(f"{entry.name}: sha256 must be 8-64 lowercase hex digits, got {entry.sha256!r}")
    return WEIGHTS.register(entry.name)(entry)


# ---------------------------------------------------------------------------------- converters
def _tensor_dict(obj: Any, what: str) -> Mapping[str, torch.Tensor]:
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{what} is not a non-empty state_dict (got {type(obj).__name__})")
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise CheckpointError(f"{what} is not a state_dict: entry {k!r} is a {type(v).__name__}")
    return obj


def _field(obj: Any, key: str, layout: str) -> Any:
    if not isinstance(obj, Mapping) or key not in obj:
        keys = sorted(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f"not a {layout} checkpoint: no {key!r} entry (found {keys})")
    return obj[key]


def _check_arch(obj: Mapping, layout: str, arch: str | None) -> None:
    found = obj.get("arch") if isinstance(obj, Mapping) else None
    if arch is not None and found is not None and found != arch:
        raise CheckpointError(f"{layout} checkpoint is a {found!r}, the registry entry says {arch!r}")


def convert_torchvision(obj: Any, arch: str | None = None) -> dict:
    """torchvision ``IMAGENET1K_V1``: already a plain state_dict."""
    return dict(_tensor_dict(obj, "torchvision checkpoint"))


def convert_madrylab(obj: Any, arch: str | None = None) -> dict:
    """MadryLab robustness (robust-models-transfer): ``ckpt['model']`` of an AttackerModel.

    Keeps ``module.model.*`` (prefix stripped); drops the attacker's duplicate
    ``module.attacker.model.*`` and both normalizers (which must hold ImageNet mean/std).
    """
    sd = _tensor_dict(_field(obj, "model", "MadryLab"), "MadryLab ckpt['model']")
    out, drop = {}, ("module.attacker.model.", "module.attacker.normalize.", "module.normalizer.")
    for k, v in sd.items():
        if k.startswith("module.model."):
            out[k[len("module.model."):]] = v
        elif not k.startswith(drop):
            raise CheckpointError(f"unexpected key {k!r} in a MadryLab checkpoint (expected module.model.*, "
                                  "module.attacker.*, module.normalizer.*)")
    for prefix in ("module.normalizer.", "module.attacker.normalize."):
        for field_, ref in (("new_mean", IMAGENET_MEAN), ("new_std", IMAGENET_STD)):
            t = sd.get(prefix + field_)
            ok = t is None or (t.numel() == 3 and torch.allclose(t.flatten().float(), torch.tensor(ref), atol=1e-4))
            if not ok:
                raise CheckpointError(f"{prefix}{field_} is {t.flatten().tolist()}, not ImageNet's {list(ref)}")
    return out


def convert_fast_adversarial(obj: Any, arch: str | None = None) -> dict:
    """Wong et al. ImageNet: ``{'epoch', 'arch', 'state_dict', 'best_prec1', 'optimizer'}``, ``module.`` prefix."""
    _check_arch(obj, "fast-adversarial", arch)
    sd = _tensor_dict(_field(obj, "state_dict", "fast-adversarial"), "fast-adversarial ckpt['state_dict']")
    bad = [k for k in sd if not k.startswith("module.")]
    if bad:
        raise CheckpointError(f"unexpected key {bad[0]!r} in a fast-adversarial checkpoint (expected module.*)")
    return {k[len("module."):]: v for k, v in sd.items()}


def convert_smoothing(obj: Any, arch: str | None = None) -> dict:
    """Cohen et al.: ``{'epoch', 'arch', 'state_dict', 'optimizer'}`` of
    ``Sequential(NormalizeLayer, DataParallel(resnet50))``.

    Weights sit under ``1.module.``; ``0.*`` (the normalize layer) is dropped. The published
    NormalizeLayer keeps mean/std as plain attributes, so its file has no ``0.*`` keys at all.
    """
    _check_arch(obj, "random-smoothing", arch)
    sd = _tensor_dict(_field(obj, "state_dict", "random-smoothing"), "random-smoothing ckpt['state_dict']")
    out = {}
    for k, v in sd.items():
        if k.startswith("1.module."):
            out[k[len("1.module."):]] = v
        elif not k.startswith("0."):
            raise CheckpointError(f"unexpected key {k!r} in a random-smoothing checkpoint (expected 1.module.*, 0.*)")
    return out


@lru_cache(maxsize=None)
def reference_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of ``build_model(arch, 1000).state_dict()`` (= torchvision's), built on the meta device."""
    from .models import build_model

    with torch.device("meta"):
        if arch == "inception_v3":  # the FID feature network (repro/fid.py), torchvision's own module
            from torchvision.models import inception_v3

            model = inception_v3(weights=None, aux_logits=True, init_weights=False)
        else:
            model = build_model(arch, 1000)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def validate_state_dict(sd: Mapping[str, torch.Tensor], arch: str) -> None:
    ref = reference_shapes(arch)
    missing = [k for k in ref if k not in sd]
    if missing:
        raise CheckpointError(f"lacks {len(missing)} weights of torchvision {arch}, e.g. {missing[0]!r}")
    for k, shape in ref.items():
        if tuple(sd[k].shape) != shape:
            raise CheckpointError(f"{k!r} has shape {tuple(sd[k].shape)}, torchvision {arch} needs {shape}")
    extra = [k for k in sd if k not in ref]
    if extra:
        raise CheckpointError(f"has {len(extra)} keys torchvision {arch} does not, e.g. {extra[0]!r}")


def convert(entry: PublishedWeights, obj: Any, path: str | os.PathLike = "<memory>") -> OrderedDict:
    """Loaded checkpoint -> plain torchvision state_dict (keys and order of ``torchvision.models.<arch>()``).

    BatchNorm counters missing from files older than torch 0.4.1 are filled with 0, as
    ``BatchNorm._load_from_state_dict`` does for such files.
    """
    try:
        sd = dict(entry.converter(obj, entry.arch))
        ref = reference_shapes(entry.arch)
        for k in ref:
            bn = k[: -len("num_batches_tracked")]
            if k.endswith(".num_batches_tracked") and k not in sd and bn + "running_mean" in sd:
                sd[k] = torch.tensor(0, dtype=torch.long)
        validate_state_dict(sd, entry.arch)
    except CheckpointError as e:
        raise WeightsError(f"{str(path)!r} ({entry.name}): {e}") from None
    return OrderedDict((k, sd[k].detach().to("cpu").contiguous().clone()) for k in ref)


# --------------------------------------------------------------------- restricted legacy loading
# dill's _load_type(name) returns a type by name; only plain data types are served here.
_DILL_TYPES: dict[str, type] = {
    "NoneType": type(None), "EllipsisType": type(...), "NotImplementedType": type(NotImplemented),
    "BooleanType": bool, "bool": bool, "IntType": int, "LongType": int, "int": int,
    "FloatType": float, "float": float, "ComplexType": complex, "complex": complex,
    "StringType": str, "UnicodeType": str, "str": str, "BytesType": bytes, "bytes": bytes,
    "ByteArrayType": bytearray, "bytearray": bytearray, "TupleType": tuple, "tuple": tuple,
    "ListType": list, "list": list, "DictType": dict, "dict": dict, "SetType": set, "set": set,
    "FrozenSetType": frozenset, "frozenset": frozenset, "SliceType": slice, "slice": slice,
    "XRangeType": range, "RangeType": range, "range": range,
}


def _dill_load_type(name: str) -> type:
    """Safe stand-in for ``dill._dill._load_type``: a fixed table of builtin data types, nothing else."""
    try:
        return _DILL_TYPES[name]
    except (KeyError, TypeError):
        raise pickle.UnpicklingError(f"[repro] dill type {name!r} is not on the allowlist "
                                     f"(allowed: {', '.join(sorted(_DILL_TYPES))})") from None


class _Namespace:
    """Inert stand-in for ``argparse.Namespace``: attributes only, no behaviour."""

    def __repr__(self) -> str:
        return f"Namespace({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


#: The RESTRICTED path's whole allowlist: (safe local object, the global name it answers to).
LEGACY_GLOBALS: tuple[tuple[Any, str], ...] = (
    (_dill_load_type, "dill._dill._load_type"),
    (_dill_load_type, "dill.dill._load_type"),   # dill < 0.3 wrote the module as dill.dill
    (_Namespace, "argparse.Namespace"),
)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_BOILERPLATE = ("Weights only load failed", "(1)", "(2)", "Check the documentation", "Please file an issue",
                "Re-running", "In PyTorch 2.6")


def _refusal(e: Exception) -> tuple[bool, str]:
    """torch's multi-line weights-only error -> (was it a refusal of the file's content?, the one fact that matters)."""
    s = _ANSI.sub("", str(e))
    m = re.search(r"\[repro\] ([^\n]*)", s)
    if m:
        return True, m.group(1)
    m = re.search(r"GLOBAL (\S+) whose module (\S+) is blocked", s)
    if m:
        return True, f"refused global {m.group(1)!r} (module {m.group(2)!r} is never allowed)"
    m = re.search(r"GLOBAL (\S+) was not an allowed global", s)
    if m:
        name = m.group(1) if "." in m.group(1) else f"builtins.{m.group(1)}"  # torch drops 'builtins.'
        return True, f"refused global {name!r} (not on the weights-only allowlist)"
    m = re.search(r"(Trying to call reduce for unrecognized function [^\n]*|Can only [^\n]*)", s)
    if m:
        return True, m.group(1)
    lines = [ln.strip() for ln in s.splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.lstrip("\t").startswith(_BOILERPLATE)]
    return False, f"{type(e).__name__}: {(useful or lines or ['(no message)'])[0]}"


def load_checkpoint(path: str | os.PathLike, legacy_pickle: bool = False, data: bytes | None = None) -> Any:
    """``torch.load(weights_only=True)`` on the CPU; ``legacy_pickle`` adds ``LEGACY_GLOBALS`` (and nothing else).

    ``data``: the file's bytes, already read and hashed (so exactly the verified bytes are loaded).
    """
    path = Path(path)
    if data is None and not path.is_file():
        raise WeightsError(f"checkpoint {str(path)!r} does not exist")
    allow = list(LEGACY_GLOBALS) if legacy_pickle else []
    try:
        with torch.serialization.safe_globals(allow):
            return torch.load(path if data is None else io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # refused content, truncated zip / pickle, not a torch file
        refused, detail = _refusal(e)
        if refused:
            raise WeightsError(f"checkpoint {str(path)!r} refused by the weights-only unpickler: {detail}; "
                               "nothing from the file was executed") from None
        raise WeightsError(f"checkpoint {str(path)!r} cannot be loaded as a weights-only tensor file "
                           f"(truncated or not a torch checkpoint): {detail}") from None


# ------------------------------------------------------------------------------------ the lock
def read_lock(lock: str | os.PathLike | None = None) -> dict[str, Optional[str]]:
    """``{name: sha256 or None}`` from the lock table; a missing file is an empty table."""
    path = Path(lock) if lock is not None else LOCK_FILE
    if not path.is_file():
        return {}
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise WeightsError(f"lock table {str(path)!r} is not valid YAML: {str(e).splitlines()[0]}") from None
    table = raw.get("sha256", {}) if isinstance(raw, dict) else None
    table = {} if (isinstance(raw, dict) and table is None) else table
    if not isinstance(table, dict):
        raise WeightsError(f"lock table {str(path)!r} needs a mapping 'sha256: {{name: hex or null}}'")
    for name, h in table.items():
        if name not in WEIGHTS:
            raise WeightsError(f"lock table {str(path)!r} lists unknown checkpoint {name!r}; "
                               f"allowed: {', '.join(WEIGHTS.names())}")
        if h is not None and not (isinstance(h, str) and _HEX.match(h)):
            raise WeightsError(f"lock table {str(path)!r}: {name}: {h!r} is not a quoted string of 8-64 lowercase "
                               "hex digits, or null")
    return table


def _agree(a: str, b: str) -> bool:
    return a.startswith(b) or b.startswith(a)


def expected_sha256(name: str, lock: str | os.PathLike | None = None) -> Optional[str]:
    """The pinned hash (full or prefix) of ``name``: the lock's, extending the one in code; None = unpinned."""
    entry = WEIGHTS.get(name)
    locked = read_lock(lock).get(name)
    if locked and entry.sha256 and not _agree(locked, entry.sha256):
        raise WeightsError(f"lock table pins {name!r} to {locked}, but the registry pins {entry.sha256}")
    candidates = [h for h in (locked, entry.sha256) if h]
    return max(candidates, key=len) if candidates else None


def sha256_file(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _matches(expected: str, actual: str) -> bool:
    return actual.startswith(expected)  # torchvision-style when expected is a prefix


def _describe(expected: str | None) -> str:
    if expected is None:
        return "none (unpinned)"
    return expected if len(expected) == 64 else f"{expected}… (prefix)"


def _lock_name(lock) -> str:
    return str(Path(lock) if lock is not None else LOCK_FILE)


def write_lock_entry(name: str, sha256: str, lock: str | os.PathLike | None = None) -> Path:
    """Set ``name: "sha256"`` in the lock table, keeping the other lines and comments (line edit, atomic write)."""
    WEIGHTS.get(name)
    path = Path(lock) if lock is not None else LOCK_FILE
    text = path.read_text() if path.is_file() else "sha256:\n"
    line = re.compile(rf"^(?P<indent>[ \t]+){re.escape(name)}:[^\n]*$", re.M)
    entry = f'{name}: "{sha256}"  # recorded by `python -m repro.weights pin`'
    m = line.search(text)
    if m:
        text = text[: m.start()] + m.group("indent") + entry + text[m.end():]
    else:
        text = text.rstrip("\n") + f"\n  {entry}\n"
    with atomic_path(path) as tmp:  # the lock is replaced only if the edited text reads back right
        tmp.write_text(text)
        if read_lock(tmp).get(name) != sha256:
            raise WeightsError(f"could not record {name!r} in {str(path)!r}; edit it by hand")
    return path


# ------------------------------------------------------------------------------------ fetching
def weights_dir(data_root: str | os.PathLike = "data") -> Path:
    """The local cache of published files: ``$REPRO_WEIGHTS_DIR``, else ``<data.root>/weights``."""
    return Path(os.environ.get(WEIGHTS_ENV) or Path(data_root) / "weights")


@dataclass(frozen=True)
class Fetched:
    name: str
    sha256: str      # of the published file, as verified
    source: Path     # the verified local copy
    dest: Path       # the converted state_dict


def _how_to_get(entry: PublishedWeights, target: Path) -> str:
    if entry.archive_member:
        return (f"download the archive from {entry.url}, extract {entry.archive_member} and put it at {target} "
                f"(or extract the archive into {target.parent})")
    return f"download {entry.url} and put it at {target}"


def _download(entry: PublishedWeights, target: Path, expected: str, progress: bool) -> tuple[Path, str]:
    """urllib -> temp file beside ``target``; hashed while written; renamed only when the hash matches."""
    import urllib.error
    import urllib.request

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp)
    digest, size = hashlib.sha256(), 0
    try:
        req = urllib.request.Request(entry.url, headers={"User-Agent": "repro-weights/1"})
        try:
            resp = urllib.request.urlopen(req, timeout=60)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise WeightsError(f"cannot download {entry.url} ({reason}); without internet, put a copy of "
                               f"{entry.filename} at {target}") from None
        with resp, os.fdopen(fd, "wb") as out:
            fd = None
            total = int(resp.headers.get("Content-Length") or 0) or None
            bar = _progress_bar(total, entry.filename, progress)
            try:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
            except OSError as e:
                raise WeightsError(f"download of {entry.url} broke off after {size} bytes ({e}); "
                                   "nothing was kept, run again") from None
            finally:
                bar.close()
        actual = digest.hexdigest()
        if total is not None and size != total:
            raise WeightsError(f"{entry.filename}: truncated download ({size} of {total} bytes, sha256 {actual}, "
                               f"expected {_describe(expected)}); deleted, nothing was written")
        if expected is not None and not _matches(expected, actual):  # None: `pin` computes the first hash
            raise WeightsError(f"{entry.filename}: sha256 mismatch: expected {_describe(expected)}, got {actual} "
                               f"(downloaded from {entry.url}); deleted, nothing was written")
        os.replace(tmp, target)
        return target, actual
    finally:
        if fd is not None:
            os.close(fd)
        if tmp.exists():
            tmp.unlink()


def _progress_bar(total: int | None, desc: str, enabled: bool):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        class _Quiet:
            def update(self, n): ...
            def close(self): ...
        return _Quiet()
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, disable=not enabled,
                file=sys.stderr)


def _cached(name: str, cache_dir) -> tuple[PublishedWeights, Path, Path, Optional[Path]]:
    """(entry, weights cache, where its file goes, the cached copy or None)."""
    entry = WEIGHTS.get(name)
    cache = Path(cache_dir) if cache_dir is not None else weights_dir()
    return entry, cache, cache / entry.filename, next((p for p in entry.local_candidates(cache) if p.is_file()), None)


def fetch(name: str, dest: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
          lock: str | os.PathLike | None = None, download: bool = True, progress: bool | None = None) -> Fetched:
    """Verify, load (weights-only), convert and atomically write the plain state_dict of ``name`` to ``dest``.

    The local copy ``<cache_dir>/<filename>`` is used when present, else downloaded (direct
    URLs only). The sha256 is checked BEFORE loading; an unpinned entry is refused.
    """
    entry, cache, target, local = _cached(name, cache_dir)
    expected = expected_sha256(name, lock)
    if expected is None:
        where = local or target
        if local is None and entry.direct:  # one explicit command downloads, shows and pins it
            how = (f"with internet, run `python -m repro.weights pin {name}` (downloads {entry.url} to {target}, "
                   "prints its size and sha256, checks it loads, records the hash), compare the hash with the "
                   "publisher's")
        else:
            how = (f"{_how_to_get(entry, target) if local is None else f'the file is at {where}'}, check its "
                   f"sha256 against the publisher's, then run `python -m repro.weights pin {name} {where}`")
        raise WeightsError(f"published checkpoint {name!r} has no pinned sha256 in {_lock_name(lock)}; refusing to "
                           f"trust an unverified file: {how}")
    if local is None:
        if not (download and entry.direct):
            how = _how_to_get(entry, target)
            raise WeightsError(f"published checkpoint {name!r} is not in the weights cache ({cache}): "
                               f"{how}{'' if entry.direct else ' (the publisher serves it through a web page)'}")
        progress = sys.stderr.isatty() if progress is None else progress
        print(f"[weights] downloading {entry.url} -> {target}", file=sys.stderr, flush=True)
        local, _ = _download(entry, target, expected, progress)
    data = local.read_bytes()  # hashed and loaded from the same bytes
    actual = hashlib.sha256(data).hexdigest()
    if not _matches(expected, actual):
        raise WeightsError(f"{str(local)!r}: sha256 mismatch for {name!r}: expected {_describe(expected)}, "
                           f"got {actual} (truncated or a different file); not used, nothing was written "
                           "(delete it to download again)")
    sd = convert(entry, load_checkpoint(local, entry.legacy_pickle, data), local)
    del data
    save_torch(sd, dest)
    return Fetched(name, actual, local, Path(dest))


def pin(name: str, file: str | os.PathLike, lock: str | os.PathLike | None = None, write: bool = True) -> str:
    """sha256 of a local copy of ``name``; checks that it loads and converts, then records it in the lock."""
    entry = WEIGHTS.get(name)
    data = Path(file).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    known = expected_sha256(name, lock)
    if known and not _matches(known, actual):
        raise WeightsError(f"{str(file)!r}: sha256 mismatch for {name!r}: expected {_describe(known)}, got {actual}; "
                           "not pinned")
    convert(entry, load_checkpoint(file, entry.legacy_pickle, data), file)
    if write:
        write_lock_entry(name, actual, lock)
    return actual


def pin_download(name: str, lock: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                 write: bool = True, progress: bool | None = None) -> tuple[Path, int, str]:
    """The first run of a published checkpoint, for a user with internet: ``(file, bytes, sha256)``.

    Uses the cached copy when there is one, else downloads the direct URL into the weights cache
    (through a temporary file; a prefix pinned in code is still checked), then hashes the file,
    checks that it loads (weights-only) and converts, and records the hash it computed in the lock
    (``write=False``: print only). Entries without a direct URL say where to get the file.
    """
    entry, _, target, local = _cached(name, cache_dir)
    if local is None:
        if not entry.direct:
            raise WeightsError(f"{name!r} has no direct download URL: {_how_to_get(entry, target)}, then run "
                               f"`python -m repro.weights pin {name} {target}`")
        progress = sys.stderr.isatty() if progress is None else progress
        print(f"[weights] downloading {entry.url} -> {target}", file=sys.stderr, flush=True)
        local, _ = _download(entry, target, expected_sha256(name, lock), progress)
        try:
            sha = pin(name, local, lock, write=write)
        except WeightsError:
            local.unlink()  # what was just downloaded and does not load is not kept
            raise
    else:
        sha = pin(name, local, lock, write=write)
    return local, local.stat().st_size, sha


# -------------------------------------------------------------------------------------- entries
_TV = "https://download.pytorch.org/models/"
for _arch, _prefix in (("resnet18", "f37072fd"), ("resnet50", "0676ba61")):
    register(PublishedWeights(
        name=f"torchvision_{_arch}_imagenet1k_v1", arch=_arch, kind="standard",
        url=f"{_TV}{_arch}-{_prefix}.pth", filename=f"{_arch}-{_prefix}.pth", sha256=_prefix,
        converter=convert_torchvision, publisher="torchvision",
        notes="IMAGENET1K_V1; the file name embeds the sha256 prefix that torchvision checks"))

# the FID feature network of Robust Tickets Table II (repro/fid.py), not a pretraining starting point
register(PublishedWeights(
    name="torchvision_inception_v3_imagenet1k_v1", arch="inception_v3", kind="fid_features",
    url=f"{_TV}inception_v3_google-0cc3c7bd.pth", filename="inception_v3_google-0cc3c7bd.pth", sha256="0cc3c7bd",
    converter=convert_torchvision, publisher="torchvision",
    notes="Inception_V3_Weights.IMAGENET1K_V1 (ported from TensorFlow; inputs in [-1, 1]); FID features only"))

_HF = "https://huggingface.co/madrylab/robust-imagenet-models/resolve/main/"
for _arch in ("resnet18", "resnet50"):
    for _eps in (0.5, 1.0, 2.0, 4.0, 8.0):
        register(PublishedWeights(
            name=f"madrylab_{_arch}_linf_eps{_eps}", arch=_arch, kind="pgd_adversarial", eps=_eps / 255,
            url=f"{_HF}{_arch}_linf_eps{_eps}.ckpt", filename=f"{_arch}_linf_eps{_eps}.ckpt",
            converter=convert_madrylab, legacy_pickle=True, publisher="MadryLab (Salman et al. 2020)",
            notes="robust-models-transfer; dict model/optimizer/schedule/epoch/amp pickled with dill"))

for _eps in (2, 4):
    register(PublishedWeights(
        name=f"fastadv_resnet50_linf_eps{_eps}.0", arch="resnet50", kind="fast_adversarial", eps=_eps / 255,
        url="https://github.com/locuslab/fast_adversarial/tree/master/ImageNet", direct=False,
        filename=f"imagenet_model_weights_{_eps}px.pth.tar", converter=convert_fast_adversarial,
        publisher="Wong et al. 2020 (locuslab/fast_adversarial)",
        notes="the README links the files on Google Drive (no direct URL); evaluated at 288 px"))

for _sigma in ("0.25", "0.50", "1.00"):
    register(PublishedWeights(
        name=f"smoothing_resnet50_sigma{_sigma}", arch="resnet50", kind="random_smoothing", sigma=float(_sigma),
        url="https://drive.google.com/file/d/1h_TpbXm5haY5f-l4--IKylmdz6tvPoR4/view?usp=sharing", direct=False,
        filename=f"cohen2019_imagenet_resnet50_noise_{_sigma}.pth.tar",
        archive_member=f"models/imagenet/resnet50/noise_{_sigma}/checkpoint.pth.tar",
        converter=convert_smoothing, publisher="Cohen et al. 2019 (locuslab/smoothing)",
        notes="one Google Drive archive (models/) with every noise level"))


# ------------------------------------------------------------------------------------------ CLI
def _fmt(entry: PublishedWeights, lock) -> str:
    try:
        h = expected_sha256(entry.name, lock)
    except WeightsError as e:
        h = f"ERROR {e}"
    radius = (f"eps {entry.eps * 255:g}/255" if entry.eps is not None
              else f"sigma {entry.sigma:g}" if entry.sigma is not None else "-")
    return f"{entry.name:38s} {entry.kind:17s} {entry.arch:9s} {radius:13s} {(h or 'UNPINNED'):16.16s} {entry.url}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m repro.weights", description=__doc__.split("\n\n")[0])
    ap.add_argument("--lock", default=None, help=f"lock table (default {LOCK_FILE})")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="every registered checkpoint and its pin")
    p = sub.add_parser("pin", help="print the size and sha256 of a local copy (no FILE: download it into the "
                                   "weights cache first) and record the hash in the lock")
    p.add_argument("name")
    p.add_argument("file", nargs="?", default=None, help="a local copy; omitted: download the direct URL")
    p.add_argument("--cache", default=None, help=f"weights cache (default ${WEIGHTS_ENV} or data/weights)")
    p.add_argument("--dry-run", action="store_true", help="print only; do not write the lock")
    f = sub.add_parser("fetch", help="verify + convert one checkpoint into a plain state_dict")
    f.add_argument("name")
    f.add_argument("dest")
    f.add_argument("--cache", default=None, help=f"weights cache (default ${WEIGHTS_ENV} or data/weights)")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "list":
            for name in WEIGHTS.names():
                print(_fmt(WEIGHTS.get(name), a.lock))
        elif a.cmd == "pin":
            if a.file is None:
                path, size, h = pin_download(a.name, a.lock, a.cache, write=not a.dry_run)
            else:
                path, h = Path(a.file), pin(a.name, a.file, a.lock, write=not a.dry_run)
                size = path.stat().st_size
            print(f"{h}  {path}  ({size} bytes, {size / 2**20:.1f} MiB)")
            print(f"{'would pin' if a.dry_run else 'pinned'} {a.name} in {_lock_name(a.lock)}: compare the hash "
                  "with the publisher's before committing it", file=sys.stderr)
        else:
            r = fetch(a.name, a.dest, cache_dir=a.cache, lock=a.lock)
            print(f"{r.name}: sha256 {r.sha256} ok -> {r.dest}")
    except (WeightsError, CheckpointError, KeyError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"[weights] error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
