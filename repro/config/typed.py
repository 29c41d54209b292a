"""Strict conversion of plain YAML data into frozen dataclasses.

``from_dict(cls, data, path)`` checks every key against the dataclass fields
(an unknown key names itself and the allowed keys), every value against the
field's type (``int``, ``float``, ``str``, ``bool``, ``Literal[...]``, tuples,
nested dataclasses, ``dict[str, X]``, ``Optional``), then runs the class's own
``__post_init__`` range checks. Errors are ``ConfigError`` with the dotted key.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
import types
import typing
from fractions import Fraction
from typing import Any, Literal, Union, get_args, get_origin

from ..base.errors import ConfigError


def check(cond: bool, key: str, msg: str) -> None:
    """Inside a dataclass's ``__post_init__``: ``key`` is relative to that dataclass;
    ``from_dict`` prefixes the dotted path of the section."""
    if not cond:
        raise ValueError(f"{key}: {msg}")


_FRACTION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*$")


def parse_number(value: Any, key: str) -> float:
    """Finite numbers, or strings like ``'8/255'`` (how the papers write eps); NaN and infinity are refused."""
    if isinstance(value, bool):
        raise ConfigError(f"params: {key}: expected a number, got {value!r}")
    out = None
    if isinstance(value, (int, float)):
        out = float(value)
    elif isinstance(value, str):
        m = _FRACTION.match(value)
        if m:
            if Fraction(m.group(2)) == 0:
                raise ConfigError(f"params: {key}: {value!r} divides by zero")
            out = float(Fraction(m.group(1)) / Fraction(m.group(2)))
        else:
            try:
                out = float(value)
            except ValueError:
                pass
    if out is None:
        raise ConfigError(f"params: {key}: expected a number or a fraction like '8/255', got {value!r}")
    if not math.isfinite(out):
        raise ConfigError(f"params: {key}: expected a finite number, got {value!r}")
    return out


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"params: {key}: invalid value {value!r}")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"params: {key}: {value!r} is not allowed; allowed: {', '.join(map(str, allowed))}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"params: {key}: expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"params: {key}: expected {len(args)} items, got {len(value)}")
            return tuple(_convert(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        return tuple(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"params: {key}: expected a mapping, got {value!r}")
        kt, vt = get_args(tp)
        return {_convert(kt, k, key): _convert(vt, v, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"params: {key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"params: {key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        return parse_number(value, key)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"params: {key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp} at {key}")


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict:
    """The resolved field types of a dataclass (evaluating string annotations is slow; the schema is fixed)."""
    return typing.get_type_hints(cls)


def from_dict(cls: type, data: Any, path: str = "") -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"params: {path or '<root>'}: expected a mapping, got {data!r}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigError(f"params: unknown key {where}{unknown[0]}; allowed keys: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        key = f"{path}.{name}" if path else name
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"params: missing key {key}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        raise ConfigError(f"params: {path + '.' if path else ''}{e}") from None


def to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def config_hash(obj) -> str:
    return hashlib.sha256(json.dumps(to_dict(obj), sort_keys=True, default=str).encode()).hexdigest()[:16]
