"""The names the schema allows, one tuple each (pretraining kinds, ticket methods, regimes, schedules, tiers)."""

PRETRAIN_KINDS = ("standard", "fast_adversarial", "pgd_adversarial", "random_smoothing")
# ticket methods of the experiments: registry method + granularity + where it is drawn
METHODS = ("omp", "random", "imp", "a_imp", "a_imp_ds", "lmp", "omp_row", "omp_kernel", "omp_channel")
REGIMES = ("standard", "adversarial", "linear", "mask")
LMP_BN = ("train", "frozen")  # tickets.lmp.bn: BatchNorm statistics while LMP scores train
LINEAR_BN = ("recalibrate", "frozen")  # transfer.linear_bn: the frozen backbone's BatchNorm statistics
CHECKPOINTS = ("last", "best_sa", "best_ra")  # the weights a transfer run keeps (best_*: transfer.validation)
SELECT_REGIMES = TRAIN_REGIMES = ("standard", "adversarial", "linear")  # regimes with checkpoint selection (LMP keeps its last mask)
RECIPE_NAME = r"[a-z][a-z0-9_]*"  # transfer.recipes names: part of run folder names (repro.plan.RunSpec.name)
SCHEDULES = ("step", "cosine", "constant")  # TrainParams.schedule (repro.training.schedules)
#: evaluation.aa_members: the AutoAttack members (repro.attacks.AA_MEMBERS), in the standard L-inf AutoAttack's order
AA_MEMBER_NAMES = ("apgd-ce", "apgd-t", "fab-t", "square")
PAPERS = ("dw", "rt")  # an experiment belongs to the paper its name starts with (dw_*, rt_*): claims, figures

#: the tier names ``tiers/<name>.yaml`` (and the committed default) that ``tier`` may record
#: (tests/test_pipeline.py checks it against the files in tiers/)
TIERS = ("default", "smoke", "small", "paper", "trial", "vtab", "r18", "a10")
