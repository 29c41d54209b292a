"""The experiment grid (``grid``: which runs each sparsity level needs, content-named), Robust Tickets' per-task ε
(``eps``: the candidate models, the selection runs and the choice) and what it costs before it runs (``cost``: runs
and counted FLOPs per stage and experiment; ``hours``: GPU- and CPU-hours, the report and ``python -m repro.plan
cost``). The package exports the grid and the ε choice; ``cost`` and ``hours`` are imported on use."""
from .eps import (CHOICE_FILE, SELECT_DIR, candidates, grid_models, load_choice, own_eps, pretrained_dir,
                  reusable_run, selection_keys, selection_run_dir, selection_runs, selection_validation, source_eps)
from .grid import (DENSE, IMP_GRID_TOL, IMP_METHODS, RUNS, EpsChoice, RunSpec, aa_graded, adv_acc_run, eps_grid_on,
                   experiment_runs, imp_dir, imp_round_of, imp_runs, in_experiment, level_name, model_name, rt_source,
                   runs_for_level, seg_runs, select_regime, study_baselines, ticket_path, tickets_for_level)

__all__ = ["CHOICE_FILE", "DENSE", "IMP_GRID_TOL", "IMP_METHODS", "RUNS", "SELECT_DIR", "EpsChoice", "RunSpec",
           "aa_graded", "adv_acc_run", "candidates", "eps_grid_on", "experiment_runs", "grid_models", "imp_dir",
           "imp_round_of", "imp_runs", "in_experiment", "level_name", "load_choice", "model_name", "own_eps",
           "pretrained_dir", "reusable_run", "rt_source", "runs_for_level", "seg_runs", "select_regime",
           "selection_keys", "selection_run_dir", "selection_runs", "selection_validation", "source_eps",
           "study_baselines", "ticket_path", "tickets_for_level"]
