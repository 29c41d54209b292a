"""Loading a published file weights-only; MadryLab's dill pickles through a restricted allowlist (the package
doc says how)."""
from __future__ import annotations

import io
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from ..base.errors import WeightsError


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
