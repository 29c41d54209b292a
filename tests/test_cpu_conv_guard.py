"""The CPU guard against oneDNN's AVX2 1x1 strided weight-gradient bug (issue 24; ``repro.base.runtime``).

On CPUs without AVX-512 (AMD EPYC Zen 2/3; any CPU under ``ONEDNN_MAX_CPU_ISA=AVX2``), torch 2.14.1's
oneDNN computes the weight gradient of a 1x1 stride-2 channels_last convolution with 2-7 input channels
past its buffer: heap corruption on one thread, wrong gradients on two. The smoke tier's ResNet (width 4)
has such a shortcut (4 -> 8 channels). ``runtime.prepare_model`` computes those layers as subsample + unit
stride on the CPU. The child-process tests force the AVX2 kernels, so they fail without the guard on
every x86 machine (Intel included), and a native crash fails one test instead of the session.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from repro.base import runtime
from repro.models import build_model

ROOT = Path(__file__).resolve().parents[1]
#: glibc's checking malloc (glibc >= 2.34): a write past a heap block aborts at the next free, every time
MALLOC_DEBUG = next((p for p in ("/lib/x86_64-linux-gnu/libc_malloc_debug.so.0", "/usr/lib64/libc_malloc_debug.so.0",
                                 "/lib64/libc_malloc_debug.so.0") if Path(p).is_file()), None)
#: the smoke tier's network and batch (tiers/smoke.yaml: depths [1,1,1], width 4, 8 px; batch 50)
SMOKE_NET = dict(depths=(1, 1, 1), width=4)

x86 = pytest.mark.skipif(os.uname().machine not in ("x86_64", "AMD64"), reason="oneDNN's AVX2 kernels are x86 only")


def _child(code: str, threads: int, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2", REPRO_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               PYTHONPATH=str(ROOT))
    if MALLOC_DEBUG and threads == 1:
        env.update(LD_PRELOAD=MALLOC_DEBUG, MALLOC_CHECK_="3")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=timeout)


def test_guard_swaps_exactly_the_affected_convolutions():
    """Width 4: the 4 -> 8 shortcut (1x1, stride 2) is guarded; 3x3 convs, the 8 -> 16 shortcut and every
    layer of the default's width 8 are not. Names, parameters and the state_dict are unchanged."""
    m = build_model("cifar_resnet", 10, **SMOKE_NET)
    keys = list(m.state_dict())
    runtime.prepare_model(m, torch.device("cpu"))
    guarded = [n for n, mod in m.named_modules() if isinstance(mod, runtime.SubsampledPointwiseConv)]
    assert guarded == ["layer2.0.downsample.0"]
    assert list(m.state_dict()) == keys
    assert m.layer2[0].downsample[0].stride == (2, 2)  # still reads as what it computes
    wide = runtime.prepare_model(build_model("cifar_resnet", 10, depths=(1, 1, 1), width=8), torch.device("cpu"))
    assert not any(isinstance(mod, runtime.SubsampledPointwiseConv) for mod in wide.modules())


@pytest.mark.parametrize("ic,hw,stride", [(3, 8, 2), (4, 9, 2), (6, 16, 3), (12, 7, 2)])
def test_guarded_convolution_is_the_same_function(ic, hw, stride):
    """Output, input gradient and weight gradient equal the plain strided convolution's (odd sizes included)."""
    torch.manual_seed(0)
    conv = nn.Conv2d(ic, 8, 1, stride=stride, bias=True)
    guarded = runtime.guard_cpu_convolutions(nn.Sequential(nn.Conv2d(ic, 8, 1, stride=stride, bias=True)))[0]
    guarded.load_state_dict(conv.state_dict())
    assert isinstance(guarded, runtime.SubsampledPointwiseConv)
    x = torch.randn(5, ic, hw, hw, dtype=torch.float64)
    outs = []
    for m in (conv.double(), guarded.double()):
        xi = x.clone().requires_grad_()
        y = m(xi)
        y.backward(torch.ones_like(y))
        outs.append((y.detach(), xi.grad, m.weight.grad.clone(), m.bias.grad.clone()))
    for a, b in zip(*outs):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_models_on_other_devices_are_not_guarded():
    """Only the CPU's oneDNN has the bug: a model prepared for another device keeps its plain convolutions
    (``meta`` stands in for CUDA here: no GPU on these machines)."""
    m = runtime.prepare_model(build_model("cifar_resnet", 10, **SMOKE_NET), torch.device("meta"))
    assert not any(isinstance(mod, runtime.SubsampledPointwiseConv) for mod in m.modules())
    assert type(m.layer2[0].downsample[0]) is nn.Conv2d


@x86
def test_weight_gradients_of_the_prepared_smoke_network_are_right_on_avx2():
    """Two threads, AVX2 kernels: every parameter's gradient of the package-prepared smoke network equals
    a float64 computation of the same network (no oneDNN). Without the guard the shortcut's weight
    gradient was 40-90 % off (measured)."""
    r = _child(f"""
        import torch
        from repro.base import runtime
        from repro.models import build_model
        torch.set_num_threads(2)
        torch.manual_seed(0)
        m = build_model("cifar_resnet", 20, depths={SMOKE_NET['depths']}, width={SMOKE_NET['width']}).train()
        ref = build_model("cifar_resnet", 20, depths={SMOKE_NET['depths']}, width={SMOKE_NET['width']}).train()
        ref.load_state_dict(m.state_dict()); ref.double()
        m = runtime.prepare_model(m, torch.device("cpu"))
        x, y = torch.rand(50, 3, 8, 8), torch.randint(0, 20, (50,))
        torch.nn.functional.cross_entropy(m(x.contiguous(memory_format=torch.channels_last)), y).backward()
        torch.nn.functional.cross_entropy(ref(x.double()), y).backward()
        grads = dict(ref.named_parameters())
        for n, p in m.named_parameters():
            g = grads[n].grad
            err = ((p.grad.double() - g).abs().max() / g.abs().max().clamp_min(1e-12)).item()
            print(n, f"{{err:.1e}}")
            assert err < 1e-4, (n, err)
        """, threads=2)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


@x86
def test_training_the_smoke_network_on_one_thread_does_not_corrupt_the_heap():
    """The package's training path (``repro.training.train``: fastai Learner, channels_last model, SGD) on
    the smoke tier's network and batch, one thread, AVX2 kernels, glibc's checking malloc: it must exit 0
    (it aborted with "corrupted double-linked list" / SIGSEGV before the guard)."""
    r = _child("""
        import torch
        from fastai.data.core import DataLoaders
        from torch.utils.data import TensorDataset
        from repro.models import build_model
        from repro.training import train
        from repro.config import TrainParams
        torch.set_num_threads(1)
        g = torch.Generator().manual_seed(0)
        ds = lambda n: TensorDataset(torch.rand(n, 3, 8, 8, generator=g), torch.randint(0, 20, (n,), generator=g))
        dls = DataLoaders.from_dsets(ds(1000), ds(100), bs=50, device="cpu")
        model = build_model("cifar_resnet", 20, depths=(1, 1, 1), width=4)
        cfg = TrainParams(epochs=3, lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="cosine", batch_size=50)
        learn = train(dls, model, cfg, progress=False)
        assert learn.train_iter == 60, learn.train_iter
        print("ok")
        """, threads=1)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), \
        f"exit {r.returncode}: " + r.stdout[-1000:] + r.stderr[-2000:]
