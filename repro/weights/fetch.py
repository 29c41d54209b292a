"""Getting a published checkpoint: the weights cache, a verified download, conversion to a plain state_dict
(``fetch``), and pinning a file's hash in the lock (``pin``, ``pin_download``)."""
from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..base.errors import WeightsError
from ..base.io import save_torch
from .convert import convert
from .lock import describe, expected_sha256, lock_name, matches, sha256_file, write_lock_entry
from .registry import WEIGHTS, PublishedWeights
from .safeload import load_checkpoint

WEIGHTS_ENV = "REPRO_WEIGHTS_DIR"


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


def _download(entry: PublishedWeights, target: Path, expected: str | None, progress: bool) -> tuple[Path, str]:
    """``torch.hub.download_url_to_file``: into a temporary file beside ``target``, renamed onto it only when the
    download is complete and, with ``expected`` (a sha256 or its prefix), its hash starts with it; else deleted.
    Returns the file and its sha256. A stalled connection fails after 60 s."""
    import http.client
    import socket
    import urllib.error

    from torch.hub import download_url_to_file

    target.parent.mkdir(parents=True, exist_ok=True)
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(60)
    try:
        download_url_to_file(entry.url, str(target), hash_prefix=expected, progress=progress)
    except RuntimeError as e:  # torch.hub: 'invalid hash value (expected "...", got "...")'
        got = re.search(r'got "([0-9a-f]+)"', str(e))
        raise WeightsError(f"{entry.filename}: sha256 mismatch: expected {describe(expected)}, got "
                           f"{got.group(1) if got else '?'} (downloaded from {entry.url}: truncated or a different "
                           "file); deleted, nothing was written") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise WeightsError(f"cannot download {entry.url} ({reason}); without internet, put a copy of "
                           f"{entry.filename} at {target}") from None
    finally:
        socket.setdefaulttimeout(before)
    return target, sha256_file(target)


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
        raise WeightsError(f"published checkpoint {name!r} has no pinned sha256 in {lock_name(lock)}; refusing to "
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
    if not matches(expected, actual):
        raise WeightsError(f"{str(local)!r}: sha256 mismatch for {name!r}: expected {describe(expected)}, "
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
    if known and not matches(known, actual):
        raise WeightsError(f"{str(file)!r}: sha256 mismatch for {name!r}: expected {describe(known)}, got {actual}; "
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
