"""The expected failures of the package: each is one line to the user (``repro.stages.common`` maps them to a
message on stderr and exit code 2), raised by the layer that finds the problem."""
from __future__ import annotations


class ConfigError(ValueError):
    """A params.yaml key or value is invalid. The message names the key."""


class DataError(ValueError):
    """A dataset file or array is missing, truncated, corrupted or inconsistent."""


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupted or of the wrong kind."""


class WeightsError(CheckpointError):
    """A published checkpoint is unpinned, missing, fails its hash or cannot be converted (one line)."""


class MaskError(ValueError):
    """A mask is not binary, or does not fit the model it is applied to."""


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite (raised by ``training.RaiseOnNaN``)."""


#: what a stage reports as one line and exit code 2 (with missing files, unknown keys and bad values)
EXPECTED_ERRORS = (ConfigError, CheckpointError, MaskError, DataError, FileNotFoundError, KeyError, ValueError,
                   NonFiniteLossError)
