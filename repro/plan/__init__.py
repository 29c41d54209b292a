"""The experiment grid (``grid``: which runs each sparsity level needs, content-named) and what it costs before it
runs (``cost``: runs and counted FLOPs per stage and experiment; ``hours``: GPU- and CPU-hours, the report and
``python -m repro.plan cost``). The package exports the grid; ``cost`` and ``hours`` are imported on use."""
from .grid import (DENSE, IMP_GRID_TOL, IMP_METHODS, RUNS, RunSpec, aa_graded, adv_acc_run, experiment_runs, imp_dir, imp_round_of,
                   imp_runs, in_experiment, level_name, runs_for_level, seg_runs, study_baselines, ticket_path,
                   tickets_for_level)

__all__ = ["DENSE", "IMP_GRID_TOL", "IMP_METHODS", "RUNS", "RunSpec", "aa_graded", "adv_acc_run", "experiment_runs", "imp_dir",
           "imp_round_of", "imp_runs", "in_experiment", "level_name", "runs_for_level", "seg_runs", "study_baselines",
           "ticket_path", "tickets_for_level"]
