"""The errors spikequant raises for bad input, bad files and unusable settings, and the
warnings it gives where it carries on.

Every one of them is a `SpikequantError`, so a caller can catch them all; the `spikequant`
command prints such an error as one line and exits with status 2. Most are also a
`ValueError`, which is what they were before these classes existed, so code catching
ValueError keeps working.
"""

from __future__ import annotations

__all__ = [
    "SpikequantError", "ConfigError", "ModelError", "CheckpointError", "UnsafeFileError",
    "RunFolderError", "ModelFileError", "OutputExistsError", "ResourceError", "TrainingDiverged",
    "DataError", "UnsupportedExport", "NIRGraphError", "KernelsUnavailable", "UnknownComponent",
    "OptionError", "PluginError", "MissingFileError", "CacheUnavailableWarning",
    "KernelFallbackWarning"]


class SpikequantError(Exception):
    """Base class: an expected failure with a message saying what to do."""


class ConfigError(SpikequantError, ValueError):
    """A setting (flag, config file entry, environment variable, argument of the Python API)
    that is unknown, of the wrong type or out of range."""


class ModelError(SpikequantError, ValueError):
    """A model handed to the Python API that it cannot work on as asked: no layer to quantize,
    weights that are not finite or not float32, layers quantized already."""


class CheckpointError(SpikequantError, ValueError):
    """A checkpoint that is not one spikequant wrote, is damaged, or does not fit the network."""


class UnsafeFileError(CheckpointError):
    """A file that would run code or build objects other than tensors when loaded."""


class RunFolderError(SpikequantError, ValueError):
    """A run folder (`--out`) that cannot be used: in use, holding foreign files, no checkpoint
    to resume, or settings that differ from the run it holds."""


class ModelFileError(SpikequantError, ValueError):
    """A packed model file that is not one `spikequant export` wrote (another safetensors
    file, for one), is damaged, or does not fit the network it declares."""


class OutputExistsError(SpikequantError, ValueError):
    """An output file that exists (and `--force` was not given) or is one of the inputs."""


class ResourceError(SpikequantError, ValueError):
    """A device that does not exist here, or a run that would not fit in memory."""


class TrainingDiverged(SpikequantError, FloatingPointError):
    """The network's parameters or loss stopped being finite numbers."""


class DataError(SpikequantError, ValueError):
    """A dataset file or folder that cannot be used: a corrupt or unreadable recording, a data
    folder that is a file or cannot be written.

    Such an error raised inside a DataLoader worker is rebuilt by PyTorch in the main process
    from a single string, the worker's whole traceback; the original one-line message is taken
    back out of it, so the user still sees one line naming the file.

    Args:
        message: what is wrong and with which file or folder. A DataLoader worker's whole
            traceback is accepted too: the message of its last "pkg.module.ClassName: ..."
            line naming this class is kept (the whole text when there is none).
    """

    def __init__(self, message: str):
        super().__init__(_without_worker_traceback(message, type(self).__name__))


def _without_worker_traceback(message: str, class_name: str) -> str:
    if "Traceback (most recent call last)" not in message:
        return message
    marker = f"{class_name}: "
    for line in reversed(message.splitlines()):
        head, found, rest = line.partition(marker)
        if found and " " not in head.strip():  # "pkg.module.ClassName: message"
            return rest.strip()
    return message


class UnsupportedExport(SpikequantError, NotImplementedError):
    """A network holding a layer, or an arrangement of layers, that an export format (NIR) has
    no form for."""


class NIRGraphError(SpikequantError, ValueError):
    """A NIR graph (or its quantization sidecar) that cannot be imported: an unsupported
    primitive, a missing parameter, inconsistent shapes; the message names the node."""


class KernelsUnavailable(SpikequantError, RuntimeError):
    """Kernels asked for by name (SPIKEQUANT_KERNELS) that cannot run on this machine."""


class UnknownComponent(ConfigError):
    """A quantizer, neuron, surrogate, dataset or network name that nothing registered."""


class OptionError(ConfigError):
    """An option a component does not declare, or a value of the wrong type for it."""


class PluginError(SpikequantError, ImportError):
    """A plugin module (`--plugin`, `plugins = [...]`, an entry point) that fails to import."""


class MissingFileError(SpikequantError, FileNotFoundError):
    """A file the call names (a checkpoint, a packed model file) that is not there; also a
    FileNotFoundError, as it was before this class existed."""


class CacheUnavailableWarning(UserWarning):
    """A cache (compiled kernels, frames) that cannot be read or written: the command goes on
    without it, slower; the message names the folder and the setting that moves it."""


class KernelFallbackWarning(UserWarning):
    """A Triton kernel that failed its first-use self-check against the torch reference (or
    did not compile): spikequant runs the torch implementation in its place; the message
    names the kernel, the device and SPIKEQUANT_KERNELS=torch, which turns the kernels off."""
