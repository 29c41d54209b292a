"""Run-time device choice, determinism and ``torch.compile`` of the training model (``runtime.compile``).

The device is chosen at run time: CUDA when present (with AMP), the CPU
otherwise. Models are channels_last on both (measured in ``bench/``: faster
convolutions on CUDA and on this CPU). The logic is identical on both; only
the AMP switch differs, and on the CPU one guard against a oneDNN bug
(:func:`guard_cpu_convolutions`).
"""
from __future__ import annotations

import os
import random
import warnings

import numpy as np
import torch

from . import devices


def device(prefer: str = "auto") -> torch.device:
    """The device ``prefer`` (params' ``device``) resolves to: CUDA when present for ``auto``. While the device
    trace is on (``repro.base.devices``), the CPU is spelt ``cpu:0``, so a model put on a hard-coded ``"cpu"``
    stands out from one put on the resolved device."""
    if prefer == "auto":
        prefer = "cuda" if torch.cuda.is_available() else "cpu"
    if prefer.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {prefer!r} requested but CUDA is not available; use 'cpu' or 'auto'")
    dev = torch.device(prefer)
    return torch.device("cpu", 0) if dev.type == "cpu" and devices.tracing() else dev


def use_amp(dev: torch.device) -> bool:
    """Mixed precision only on CUDA (bf16 autocast is slower on these CPUs)."""
    return dev.type == "cuda"


def prepare_model(model: torch.nn.Module, dev: torch.device) -> torch.nn.Module:
    """Move ``model`` to ``dev`` (through the device seam, ``devices.place``) in channels_last memory format (CPU
    and CUDA alike); on the CPU, with :func:`guard_cpu_convolutions` applied."""
    model = devices.place(model, dev).to(memory_format=torch.channels_last)
    if torch.device(dev).type == "cpu":
        guard_cpu_convolutions(model)
    return model


class SubsampledPointwiseConv(torch.nn.Conv2d):
    """A 1x1 convolution of stride s (no padding) computed as the stride-1 1x1 convolution of every s-th
    pixel: the same function, parameters, names and ``state_dict``; only the kernel oneDNN runs differs.

    Why: oneDNN's AVX2 1x1 weight-gradient kernel (``jit_avx2_1x1_convolution_bwd_weights_t``), which runs
    on CPUs without AVX-512 (AMD EPYC before Zen 4, or any CPU under ``ONEDNN_MAX_CPU_ISA=AVX2``), copies a
    strided channels_last input into a per-thread buffer of ``pixels * in_channels`` floats but indexes it as
    if it held ``pixels * 8`` (the blocked layout's offset, ``(ic_b * is + sp) * ic_block``, in
    ``execute_backward_weights``). With fewer than 8 input channels the copy runs past the buffer: on one
    thread past the heap block (glibc aborts: "corrupted double-linked list", or SIGSEGV), on two threads
    into the other thread's part (silently wrong weight gradients, 5-88 % relative error measured).
    Measured with torch 2.14.1 (oneDNN v3.12.0); the same offset is in oneDNN's main branch in December 2026.
    Reproduction for a bug report: ``bench/onednn_1x1_stride_bug.py``. Unit-stride 1x1 convolutions do not
    take that path (the input needs no copy), so subsampling first avoids it on every CPU.
    """

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        sh, sw = self.stride
        return torch.nn.functional.conv2d(input[:, :, ::sh, ::sw], weight, bias, 1, 0, self.dilation, self.groups)


def needs_conv_guard(m: torch.nn.Module) -> bool:
    """Whether ``m`` is a convolution the oneDNN bug of :class:`SubsampledPointwiseConv` can hit: 1x1,
    strided, unpadded, ungrouped, with an input channel count that is not a multiple of 8 (the AVX2 block;
    measured wrong for 2-7 input channels, right for 1, 8-24 and 64; non-multiples above 8 are guarded too,
    since the buffer arithmetic can overrun for them as well)."""
    return (type(m) is torch.nn.Conv2d and m.kernel_size == (1, 1) and m.stride != (1, 1)
            and m.padding in ((0, 0), "valid") and m.dilation == (1, 1) and m.groups == 1
            and m.in_channels % 8 != 0)


def guard_cpu_convolutions(model: torch.nn.Module) -> torch.nn.Module:
    """Turn, in place, every convolution :func:`needs_conv_guard` names into a :class:`SubsampledPointwiseConv`
    (same object, same parameters; only its class changes). No other layer and no CUDA model is touched."""
    for m in model.modules():
        if needs_conv_guard(m):
            m.__class__ = SubsampledPointwiseConv
    return model


#: ``runtime.compile`` values: ``on`` / ``off`` always / never compile the training model; ``auto``
#: compiles a CUDA run whose eager remainder, timed on its first batches, lasts ``COMPILE_MIN_SECONDS``.
COMPILE_MODES = ("auto", "on", "off")

#: The eager run time from which ``auto`` compiles. A compile of cost C that speeds steps up s-fold saves time
#: once the eager run lasts C * s / (s - 1); at 20 C (C: a CIFAR ResNet-18's cold compile, ~150 s on one CPU
#: thread, docs/PERFORMANCE.md) a run pays it back for any speed-up s >= 1.053. The speed-up on a GPU is not
#: known here, hence a threshold from C alone; on the CPU ``auto`` never compiles (the tiny default network
#: runs slower compiled).
COMPILE_MIN_SECONDS = 3000.0
#: training batches ``auto`` times (after one warm-up batch) to estimate the eager run time
COMPILE_PROBE_BATCHES = 3


def should_compile(mode: str, dev: torch.device, eager_seconds: float) -> bool:
    """Whether a training run on ``dev`` whose (remaining) eager run time is ``eager_seconds`` is compiled.

    ``auto`` compiles only on CUDA and only runs of at least ``COMPILE_MIN_SECONDS``: on this CPU the
    compiled tiny network of the embedded default is slower than the eager one (measured), and the
    package's CPU runs are many short ones in forked workers, each of which would pay the compile."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"runtime.compile {mode!r} is not allowed; allowed: {', '.join(COMPILE_MODES)}")
    if mode == "auto":
        return torch.device(dev).type == "cuda" and eager_seconds >= COMPILE_MIN_SECONDS
    return mode == "on"


def compile_model(model: torch.nn.Module) -> torch.nn.Module:
    """Compile ``model`` in place (``nn.Module.compile``: ``torch.compile`` of its call, so parameter names,
    ``state_dict`` keys and the module object stay the same; in-place weight updates such as
    ``MaskEnforcer``'s are seen by the compiled code, which reads the parameters at every call).
    Only what runs changes (fused kernels); what is computed is the same up to float rounding
    (tests/test_compile.py). Each new situation (train/eval mode, parameter gradients on/off during an
    attack, autocast, a new batch shape) compiles once more on first use."""
    model.compile()
    return model


def is_compiled(model: torch.nn.Module) -> bool:
    return getattr(model, "_compiled_call_impl", None) is not None


def uncompile(model: torch.nn.Module) -> torch.nn.Module:
    """Undo :func:`compile_model` (the eager module again, e.g. once training is over)."""
    if is_compiled(model):
        model._compiled_call_impl = None
    return model


def inference_model(model: torch.nn.Module) -> torch.nn.Module:
    """An eval-mode copy of ``model`` for evaluation and evaluation-mode attacks: every Conv-BN
    pair folded into one convolution (``torch.fx``'s conv-BN fusion), parameters frozen.

    In eval mode a BatchNorm is an affine map with fixed statistics, so folding it into the
    preceding convolution computes the same function (up to float rounding, ~1e-6 on the
    logits) and removes the BN forward and backward from each of PGD-20's 20 iterations
    (measured in ``bench/``). ``model`` itself is not changed. A model that ``torch.fx``
    cannot trace is returned unchanged (with a warning), as is a model this function made.
    """
    if getattr(model, "_repro_inference", False):
        return model
    from torch.fx.experimental.optimization import fuse

    saved = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        fused = fuse(model)  # a deep copy; the original keeps its modules
    except Exception as err:  # untraceable forward (data-dependent control flow, wrappers)
        warnings.warn(f"inference_model: {type(model).__name__} could not be traced for conv-BN folding "
                      f"({type(err).__name__}: {err}); evaluating the unfused model", stacklevel=2)
        return model
    finally:
        for m, flag in saved:
            m.training = flag
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    if convs and convs[0].weight.is_contiguous(memory_format=torch.channels_last):
        fused = fused.to(memory_format=torch.channels_last)  # folded weights are new, contiguous tensors
    fused.eval().requires_grad_(False)
    fused._repro_inference = True
    if devices.placed(model) is not None:  # the copy sits where the original was placed
        devices.mark(fused, devices.placed(model))
    return fused


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch (all devices); make CPU/CUDA kernels deterministic."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


