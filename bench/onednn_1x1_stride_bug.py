"""Standalone reproduction of a oneDNN bug for a PyTorch / oneDNN bug report (needs only torch).

A 1x1 convolution with stride 2, fewer than 8 input channels, channels_last tensors, on the CPU: the
weight gradient of oneDNN's AVX2 kernel (``jit_avx2_1x1_convolution_bwd_weights_t``, chosen on CPUs
without AVX-512, e.g. AMD EPYC Zen 2/3, or anywhere under ``ONEDNN_MAX_CPU_ISA=AVX2``) is wrong on two
threads and corrupts the heap on one. Its reduce-to-unit-stride buffer is booked at
``pixels * in_channels`` floats per thread for an nhwc source, but ``execute_backward_weights`` offsets
into it by ``(ic_b * is + sp) * ic_block`` (the blocked layout's offset), so with ``in_channels < 8`` the
copy of the strided input runs past its part of the buffer.

    python bench/onednn_1x1_stride_bug.py            # each case in a child process (a crash is reported)

Seen with torch 2.14.1 (oneDNN v3.12.0, git 80afa71), Python 3.11, on a 2-core Intel Xeon (Sapphire
Rapids) under ``ONEDNN_MAX_CPU_ISA=AVX2`` and natively on a 2-core AMD EPYC. The package's guard is
``repro.base.runtime.SubsampledPointwiseConv`` (subsample, then a unit-stride 1x1 convolution).
"""
from __future__ import annotations

import os
import subprocess
import sys

CHILD = r"""
import sys, torch, torch.nn.functional as F
threads, ic, subsample = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
torch.set_num_threads(threads)
torch.manual_seed(0)
worst = 0.0
for _ in range(20):
    x = torch.randn(16, ic, 8, 8)
    g = torch.randn(16, 8, 4, 4)
    w = torch.randn(8, ic, 1, 1).contiguous(memory_format=torch.channels_last).requires_grad_()
    xc = x.contiguous(memory_format=torch.channels_last)
    out = F.conv2d(xc[:, :, ::2, ::2], w) if subsample else F.conv2d(xc, w, stride=2)
    out.backward(g.contiguous(memory_format=torch.channels_last))
    ref = torch.einsum("bohw,bihw->oi", g.double(), x[:, :, ::2, ::2].double())  # d loss / d weight, exact
    err = ((w.grad[:, :, 0, 0].double() - ref).abs().max() / ref.abs().max()).item()
    worst = max(worst, err)
print(f"{worst:.1e}")
"""


def run(threads: int, ic: int, subsample: bool, isa: str | None) -> str:
    env = dict(os.environ)
    if isa:
        env["ONEDNN_MAX_CPU_ISA"] = isa
    r = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(ic), "1" if subsample else "0"],
                       capture_output=True, text=True, env=env, timeout=600)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        return f"CRASH (exit {r.returncode}: {last[:60]})"
    err = float(r.stdout.strip())
    return f"rel. error {err:.1e}" + ("  WRONG" if err > 1e-4 else "")


def main() -> int:
    import torch

    print(f"torch {torch.__version__}; {torch.__config__.show().split('MKL-DNN')[1].split(chr(10))[0].strip()}")
    for isa in ("AVX2", None):
        print(f"\nONEDNN_MAX_CPU_ISA={isa or '(unset: best for this CPU)'}")
        for threads in (1, 2):
            for ic in (1, 3, 4, 6, 8):
                plain = run(threads, ic, False, isa)
                guard = run(threads, ic, True, isa)
                print(f"  threads {threads}  in_channels {ic}:  conv stride 2: {plain:<45} subsample+stride 1: {guard}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
