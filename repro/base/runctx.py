"""How stages run in this process, as a launcher sets it (``repro.launch.torchrun``): never what they compute.

The stages read it instead of being patched: ``workers`` forces the worker processes of every stage (torchrun:
1, each run uses every rank), ``checkpoints`` turns the per-epoch resume checkpoints off (every rank would write
the same file), ``scratch`` sends every run folder to a private folder that is deleted (the non-main ranks of a
data-parallel run), ``quiet`` silences the stages' progress lines (the same).
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional


@dataclass(frozen=True)
class RunContext:
    workers: Optional[int] = None
    checkpoints: bool = True
    scratch: Optional[Path] = None
    quiet: bool = False


_CURRENT = [RunContext()]


def current() -> RunContext:
    return _CURRENT[0]


def log(stage: str, msg: str) -> None:
    """A stage's progress line ``[stage] msg`` on stdout (silent where a launcher set ``quiet``)."""
    if not current().quiet:
        print(f"[{stage}] {msg}", flush=True)


@contextlib.contextmanager
def configured(**changes) -> Iterator[RunContext]:
    """The context with ``changes`` for the duration of the block (a launcher wraps the stage it runs)."""
    before = _CURRENT[0]
    _CURRENT[0] = dataclasses.replace(before, **changes)
    try:
        yield _CURRENT[0]
    finally:
        _CURRENT[0] = before
