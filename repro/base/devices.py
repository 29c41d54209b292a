"""The one seam between a stage's compute and its device, and the trace that shows it was used.

Every stage resolves its device once (``runtime.device(p.device)``: CUDA when present, else the CPU) and
every model it computes with goes there through :func:`place`; batches follow through :func:`to`
(``non_blocking``: a copy from a loader's pinned host memory overlaps the GPU's work), and loaders pin host
memory exactly when the device is CUDA (:func:`pin`). :func:`place` marks the model with the device it put it
on; ``runtime.inference_model`` carries the mark to its folded copy.

**The trace.** With ``REPRO_DEVICE_TRACE=<file>`` in the environment, the stage runner records the stage and
its resolved device (:func:`begin`), and a global forward hook records, in every process of the stage (the
forked workers too), each distinct top-level forward pass: the model's class, the device :func:`place` put it
on (``null`` when it never went through the seam), the device of its parameters and of its input. The lines
are JSON, appended (one ``write`` each, so processes do not interleave). :func:`check` lists every forward
that ran off its stage's resolved device or on a model the seam never placed: what the tests, ``make
rehearse`` and ``python -m repro.gpucheck`` read. While tracing, ``runtime.device`` spells the CPU ``cpu:0``
(the same device), so a model put on a hard-coded ``"cpu"`` is told apart from one put on the resolved device.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Iterable

import torch
from torch.nn.utils.parametrize import ParametrizationList

TRACE_ENV = "REPRO_DEVICE_TRACE"
_MARK = "_repro_device"


def place(model: torch.nn.Module, dev) -> torch.nn.Module:
    """``model`` moved to ``dev`` (the stage's resolved device) and marked as placed there; returns it."""
    dev = torch.device(dev)
    model = model.to(dev)
    mark(model, dev)
    return model


def mark(model: torch.nn.Module, dev) -> torch.nn.Module:
    object.__setattr__(model, _MARK, str(torch.device(dev)))
    return model


def placed(model: torch.nn.Module) -> str | None:
    """The device :func:`place` put ``model`` on, or None."""
    return getattr(model, _MARK, None)


def to(batch, dev, non_blocking: bool = True):
    """Tensors of ``batch`` (a tensor, or a tuple/list of them) on ``dev``; ``non_blocking`` from pinned memory."""
    if isinstance(batch, torch.Tensor):
        return batch.to(dev, non_blocking=non_blocking)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to(b, dev, non_blocking) for b in batch)
    return batch


def pin(dev) -> bool:
    """Whether a loader feeding ``dev`` pins its host memory (CUDA only: pinned pages cost host RAM)."""
    return torch.device(dev).type == "cuda"


# ----------------------------------------------------------------------------------------------- the trace
class _Trace(threading.local):
    depth = 0


_STATE: dict[str, Any] = {"stage": None, "resolved": None, "seen": set(), "hooks": None}
_LOCAL = _Trace()


def trace_path() -> Path | None:
    v = os.environ.get(TRACE_ENV)
    return Path(v) if v else None


def tracing() -> bool:
    return trace_path() is not None


def _write(event: dict) -> None:
    path = trace_path()
    if path is None:
        return
    line = (json.dumps(event, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _first_tensor(obj) -> torch.Tensor | None:
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, (tuple, list)):
        for o in obj:
            t = _first_tensor(o)
            if t is not None:
                return t
    if isinstance(obj, dict):
        return _first_tensor(list(obj.values()))
    return None


def _fx_tracing() -> bool:
    """torch.fx's symbolic tracing (``runtime.inference_model``'s folding) calls modules on proxies, not data."""
    from torch.fx._symbolic_trace import is_fx_symbolic_tracing

    return is_fx_symbolic_tracing()


def _pre(module: torch.nn.Module, args) -> None:
    local = _LOCAL
    local.depth += 1
    if local.depth != 1 or _STATE["stage"] is None or _fx_tracing() or isinstance(module, ParametrizationList):
        return  # nested, untraced, symbolic, or a parametrized weight read outside a forward (LMP's masked weights)
    weight = next(module.parameters(), None)
    if weight is None:
        weight = next(module.buffers(), None)
    if weight is None:  # a parameter-free module (a wrapper, an activation): nothing runs on a device of its own
        return
    if weight.device.type == "meta":  # shapes only, no data, no arithmetic: the planner's FLOP count
        return
    x = _first_tensor(args)
    event = {"event": "forward", "stage": _STATE["stage"], "model": type(module).__name__, "placed": placed(module),
             "params": str(weight.device), "inputs": None if x is None else str(x.device)}
    key = tuple(sorted(event.items()))
    if key not in _STATE["seen"]:
        _STATE["seen"].add(key)
        _write({**event, "pid": os.getpid()})


def _post(module, args, out) -> None:
    _LOCAL.depth = max(0, _LOCAL.depth - 1)


def begin(stage: str, resolved) -> None:
    """The stage runner, once per stage process: records ``stage`` and its resolved device and starts recording
    forward passes (only with ``REPRO_DEVICE_TRACE`` set; otherwise nothing is recorded and no hook installed)."""
    if not tracing():
        return
    _STATE.update(stage=stage, resolved=str(torch.device(resolved)), seen=set())
    if _STATE["hooks"] is None:
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

        _STATE["hooks"] = (register_module_forward_pre_hook(_pre),
                           register_module_forward_hook(_post, always_call=True))
    _write({"event": "stage", "stage": stage, "resolved": _STATE["resolved"], "pid": os.getpid()})


def end() -> None:
    """Stop recording (the hooks stay installed but record nothing until the next :func:`begin`)."""
    _STATE["stage"] = None


# ----------------------------------------------------------------------------------------------- reading it
def read(path: str | os.PathLike) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def _same(resolved: torch.device, got: str | None) -> bool:
    if got is None:
        return True  # a forward without tensor input (nothing moved)
    d = torch.device(got)
    if d.type != resolved.type:
        return False
    return resolved.type == "cpu" or resolved.index is None or d.index is None or d.index == resolved.index


def check(events: Iterable[dict]) -> list[str]:
    """Every forward that ran off its stage's resolved device, or on a model :func:`place` never placed there,
    as one line each (empty: every stage's compute went through the seam to its device)."""
    resolved: dict[str, str] = {}
    problems: list[str] = []
    forwards = []
    for e in events:
        if e.get("event") == "stage":
            resolved[e["stage"]] = e["resolved"]
        elif e.get("event") == "forward":
            forwards.append(e)
    for e in forwards:
        want = resolved.get(e["stage"])
        what = f"[{e['stage']}] {e['model']}"
        if want is None:
            problems.append(f"{what}: forward pass outside a traced stage")
            continue
        dev = torch.device(want)
        if e["placed"] is None:
            problems.append(f"{what}: ran on {e['params']} without repro.base.devices.place (resolved: {want})")
        elif e["placed"] != want:
            problems.append(f"{what}: placed on {e['placed']}, not the stage's resolved device {want}")
        if not _same(dev, e["params"]):
            problems.append(f"{what}: parameters on {e['params']}, resolved device {want}")
        if not _same(dev, e["inputs"]):
            problems.append(f"{what}: input on {e['inputs']}, resolved device {want}")
    return sorted(set(problems))


def summary(events: Iterable[dict]) -> dict[str, dict]:
    """{stage: {"resolved": device, "models": sorted model classes that ran forward passes}}."""
    out: dict[str, dict] = {}
    for e in events:
        s = out.setdefault(e["stage"], {"resolved": None, "models": set()})
        if e.get("event") == "stage":
            s["resolved"] = e["resolved"]
        else:
            s["models"].add(e["model"])
    return {k: {"resolved": v["resolved"], "models": sorted(v["models"])} for k, v in sorted(out.items())}
