"""Launchers: the top layer, which runs stages on more than one process or machine and imports anything below.

``torchrun``: one training stage data-parallel under ``torchrun``; ``scaleout``: the DVC stages as jobs
(submitit: SLURM or local processes), sharing outputs through a DVC remote."""
