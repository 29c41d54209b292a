"""repro: reproducibility package for robust lottery tickets.

Layers (each imports only from the ones above it):
    registry, io, runtime, cpus       -- plumbing
    models, data                      -- networks and datasets
    tickets                           -- the Mask type and pruning methods
    attacks, metrics                  -- L-inf PGD / FGSM-RS and evaluation
    training                          -- fastai Learner factory and callbacks
    stages                            -- DVC stage entry points
"""
import os as _os

# No network at import time: albumentations (>= 1.4) asks PyPI for a newer version on every import
# (a request with a 2 s timeout; on an offline node, 2 s and a warning per stage). Its documented
# switch is set here, before any module of the package can import it; a user's own value wins.
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# Graceful beside other work: OpenMP threads that wait at a barrier sleep instead of spinning. A
# spinning thread burns the time slice its descheduled sibling needs whenever another process wants
# a core (bench/contention.py: on a loaded 2-core machine a 2-thread training step took 3.0 s with
# the OpenMP default and 0.52 s with PASSIVE). OpenMP reads it when torch loads, so it takes effect
# for `python -m repro...` entry points (this runs before torch is imported); a user's value wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
