"""The errors spikequant raises for bad input, bad files and unusable settings.

Every one of them is a `SpikequantError`, so a caller can catch them all; the `spikequant`
command prints such an error as one line and exits with status 2. Most are also a
`ValueError`, which is what they were before these classes existed, so code catching
ValueError keeps working.
"""

from __future__ import annotations


class SpikequantError(Exception):
    """Base class: an expected failure with a message saying what to do."""


class ConfigError(SpikequantError, ValueError):
    """A setting (flag, config file entry) that is unknown, of the wrong type or out of range."""


class CheckpointError(SpikequantError, ValueError):
    """A checkpoint that is not one spikequant wrote, is damaged, or does not fit the network."""


class UnsafeFileError(CheckpointError):
    """A file that would run code or build objects other than tensors when loaded."""


class RunFolderError(SpikequantError, ValueError):
    """A run folder (`--out`) that cannot be used: in use, holding foreign files, no checkpoint
    to resume, or settings that differ from the run it holds."""


class OutputExistsError(SpikequantError, ValueError):
    """An output file that exists (and `--force` was not given) or is one of the inputs."""


class ResourceError(SpikequantError, ValueError):
    """A device that does not exist here, or a run that would not fit in memory."""


class TrainingDiverged(SpikequantError, FloatingPointError):
    """The network's parameters or loss stopped being finite numbers."""
