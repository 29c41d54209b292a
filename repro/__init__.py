"""repro: reproducibility package for robust lottery tickets.

Layers (each imports only from the ones above it):
    registry, io, runtime             -- plumbing
    models, data                      -- networks and datasets
    tickets                           -- the Mask type and pruning methods
    attacks, metrics                  -- L-inf PGD / FGSM-RS and evaluation
    training                          -- fastai Learner factory and callbacks
    stages                            -- DVC stage entry points
"""

__version__ = "0.1.0"
