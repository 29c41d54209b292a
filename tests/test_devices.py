"""The device seam (issue 25, point 1): every stage's models go to the resolved device through
``repro.base.devices.place``, and the device trace shows it. Here the mechanics on the CPU; the whole
pipeline's trace is checked on the smoke tier's run (tests/test_smoke_pipeline.py,
``test_every_stage_computes_on_the_resolved_device``)."""
from __future__ import annotations

import torch

from repro.base import devices, runtime
from repro.models import build_model


def _net():
    return build_model("cifar_resnet", 3, depths=(1,), width=4)


def test_trace_flags_unplaced_and_hard_coded_models_and_passes_placed_ones(tmp_path, monkeypatch):
    trace = tmp_path / "trace.jsonl"
    monkeypatch.setenv(devices.TRACE_ENV, str(trace))
    dev = runtime.device("cpu")
    assert dev == torch.device("cpu", 0)  # while tracing, the CPU is spelt cpu:0: a literal "cpu" stands out
    devices.begin("unit", dev)
    try:
        x = torch.rand(2, 3, 8, 8)
        good = devices.place(_net(), dev)
        good(x)
        runtime.inference_model(good)(x)  # the folded copy keeps the mark
        _net()(x)  # never placed
        devices.place(_net(), "cpu")(x)  # a hard-coded device, not the resolved one
        with torch.device("meta"):  # the planner's FLOP count (parallel_map's longest-first order): no compute
            _net()(torch.rand(2, 3, 8, 8))
    finally:
        devices.end()
    events = devices.read(trace)
    problems = devices.check(events)
    assert any("without repro.base.devices.place" in p for p in problems), problems
    assert any("placed on cpu, not the stage's resolved device cpu:0" in p for p in problems), problems
    assert len(problems) == 2, problems
    assert devices.summary(events)["unit"]["resolved"] == "cpu:0"
    # a trace of the placed network alone is clean
    assert devices.check([e for e in events if e.get("placed") == "cpu:0" or e["event"] == "stage"]) == []


def test_check_compares_parameter_and_input_devices_with_the_resolved_one():
    stage = {"event": "stage", "stage": "s", "resolved": "cuda"}
    ok = {"event": "forward", "stage": "s", "model": "M", "placed": "cuda", "params": "cuda:0", "inputs": "cuda:0"}
    assert devices.check([stage, ok]) == []
    cpu_params = dict(ok, params="cpu")
    cpu_inputs = dict(ok, inputs="cpu")
    assert devices.check([stage, cpu_params]) == ["[s] M: parameters on cpu, resolved device cuda"]
    assert devices.check([stage, cpu_inputs]) == ["[s] M: input on cpu, resolved device cuda"]
    other_gpu = {"event": "stage", "stage": "s", "resolved": "cuda:1"}
    assert devices.check([other_gpu, dict(ok, placed="cuda:1")]) == ["[s] M: input on cuda:0, resolved device cuda:1",
                                                                     "[s] M: parameters on cuda:0, resolved device cuda:1"]
    assert devices.check([dict(ok, stage="elsewhere")]) == ["[elsewhere] M: forward pass outside a traced stage"]


def test_no_trace_no_hooks_and_the_cpu_is_plain(monkeypatch):
    monkeypatch.delenv(devices.TRACE_ENV, raising=False)
    assert runtime.device("cpu") == torch.device("cpu") and not devices.tracing()
    devices.begin("quiet", "cpu")  # records nothing without the variable
    assert devices._STATE["stage"] is None or devices._STATE["stage"] != "quiet"


def test_batches_move_non_blocking_and_loaders_pin_only_for_cuda():
    x, y = torch.rand(2, 3), torch.tensor([0, 1])
    bx, by = devices.to((x, y), "cpu")
    assert bx.device.type == "cpu" and by.dtype == torch.int64
    assert devices.pin("cuda") and devices.pin("cuda:1") and not devices.pin("cpu")
    from repro.data import array_loader
    import numpy as np

    dl = array_loader(np.zeros((2, 8, 8, 3), np.uint8), None, 2, 8, recipe="none", device="cpu")
    assert dl.pin_memory is False
