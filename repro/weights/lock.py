"""The lock table (``weights.lock.yaml`` beside this module): one pinned sha256 per published checkpoint."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Optional

import yaml

from ..base.errors import WeightsError
from ..base.io import atomic_path
from .registry import HEX, WEIGHTS

LOCK_FILE = Path(__file__).with_name("weights.lock.yaml")


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
        if h is not None and not (isinstance(h, str) and HEX.match(h)):
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


def matches(expected: str, actual: str) -> bool:
    return actual.startswith(expected)  # torchvision-style when expected is a prefix


def describe(expected: str | None) -> str:
    if expected is None:
        return "none (unpinned)"
    return expected if len(expected) == 64 else f"{expected}… (prefix)"


def lock_name(lock) -> str:
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
