"""Stage `analysis`: mask similarity, zero kernels, loss landscapes and trajectories, domain gap.

* ``analysis/mask_similarity.csv``: IoU |a∩b|/|a∪b| of the IMP tickets drawn
  from different pretraining kinds at every level (Double-Win Fig. A8 top);
* ``analysis/zero_kernels.csv`` and ``analysis/kernel_maps.npz``: completely
  pruned kernels per layer and the [out, in] maps at the highest level (Fig. 7, A8);
* ``analysis/landscape/<run>.npz``: loss contours on clean and PGD-20 test data
  along the trajectory plane, and the trajectory (Fig. 6, A9);
* ``analysis/domain_gap.json``: Fréchet distance of features between the source
  and each downstream task (Robust Tickets Table II): ``evaluation.domain_gap: fid`` is the
  paper's FID (Inception-v3 pool-3, repro/fid.py), ``stats`` the offline default's hand-made
  image statistics (``repro.data.domain_gap_score``).
"""
from __future__ import annotations

import sys

from ..config import Params
from ..pipeline.analysis import OUT, domain_gaps, landscapes, mask_stats
from .common import run_stage


def body(p: Params) -> None:
    OUT.mkdir(exist_ok=True)
    mask_stats(p)
    landscapes(p)
    domain_gaps(p)


def main(argv=None) -> int:
    return run_stage("analysis", body)


if __name__ == "__main__":
    sys.exit(main())
