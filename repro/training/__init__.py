"""Training: one fastai Learner, extended by the paper's callbacks."""
from .callbacks import (AdversarialTraining, BnRecalibration, GaussianNoise, LearnableMask,
                        MaskEnforcer, NonFiniteLossError, RaiseOnNaN)
from .resume import EpochCheckpoint
from .validation import HeldOutValidation
from .learner import make_learner, sgd, train
from .schedules import cosine, make_schedule, step_decay

__all__ = ["AdversarialTraining", "BnRecalibration", "EpochCheckpoint", "GaussianNoise", "HeldOutValidation", "LearnableMask", "MaskEnforcer", "NonFiniteLossError",
           "RaiseOnNaN", "make_learner", "sgd", "train", "cosine", "make_schedule", "step_decay"]
