"""The `spikequant` command. Each subcommand lives in its own module, NAME_cmd.py, with
`PARSER` (the keywords of its `add_parser`: help, formatter_class, ...; or `parser_options()`
where they are made when the parser is built), `add_arguments(parser)` and `run(args)`. Its
`--help` description is the module docstring after the first paragraph."""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from .._cpu_memory import keep_freed_memory
from ..errors import ConfigError

# Freed large CPU buffers stay in the process for the next step's tensors of the same size
# instead of being unmapped and faulted in again (~16 k page faults for each fresh 67 MB tensor
# of N-MNIST's FC layer, more than a pass of arithmetic over it): glibc's mmap and trim
# thresholds raised (spikequant._cpu_memory; SPIKEQUANT_MALLOPT=0 turns it off). Measured
# against torch's 2 MiB-page allocation (THP_MEM_ALLOC_ENABLE=1, which this command set
# before): faster with the compiled CPU kernels, so that is no longer set (BENCHMARKS.md).
try:
    keep_freed_memory()
except ConfigError:
    pass  # a SPIKEQUANT_MALLOPT it does not take: main() reports it as the command starts

# (module, one-line help) in the order `spikequant --help` lists them.
COMMANDS = (
    "demo",
    "train",
    "eval",
    "sweep",
    "export",
    "infer",
    "report",
    "datasets",
    "models",
)

# What the line printed for an interrupted command adds: how to continue.
ON_INTERRUPT = {
    "train": "every file in --out is complete; run it again with --resume to continue from "
             "the last finished epoch",
    "demo": "every file written is complete; run it again to continue",
    "sweep": "finished runs are kept; run the same sweep again to continue",
}


def help_description(command: ModuleType) -> str | None:
    """A command's `--help` description: its module docstring after the first paragraph."""
    _, _, body = (command.__doc__ or "").strip().partition("\n\n")
    return " ".join(body.split()) or None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikequant",
        description=(
            "Train spiking neural networks with low-precision (binary, ternary, k-bit) weights "
            "by quantization-aware training, and export them as packed low-bit model files."
        ),
        epilog="Run `spikequant COMMAND --help` for the options of one command.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"spikequant {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        command = importlib.import_module(f"{__name__}.{name}_cmd")
        options = (command.parser_options() if hasattr(command, "parser_options")
                   else command.PARSER)
        p = sub.add_parser(name, **{"description": help_description(command), **options})
        command.add_arguments(p)
        p.set_defaults(func=command.run)
    for command in sub.choices.values():  # train's comes from TrainConfig
        if "--plugin" not in command._option_string_actions:
            command.add_argument("--plugin", action="append", metavar="MODULE", dest="plugins",
                                 help=PLUGIN_HELP)
    return parser


PLUGIN_HELP = ("import MODULE first (a module name or a .py file; repeatable): it registers "
               "quantizers, neurons, datasets or networks by name")


def plugins_named(argv: list[str]) -> list[str]:
    """The plugins a command line asks for: each --plugin, then the `plugins` list of its
    --config file (read here, before the parser is built, so that --quantizer and --dataset
    know the names the plugins register)."""
    found: list[str] = []
    config = None
    for i, arg in enumerate(argv):
        for flag, into in (("--plugin", "plugin"), ("--config", "config")):
            value = None
            if arg == flag and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(flag + "="):
                value = arg.split("=", 1)[1]
            if value is not None and into == "plugin":
                found.append(value)
            elif value is not None:
                config = value
    if config is not None:
        found += _config_plugins(config)
    return list(dict.fromkeys(found))


def _config_plugins(path: str) -> list[str]:
    from ..errors import ConfigError
    from ..train.config_file import read_toml

    try:
        data = read_toml(path)
    except FileNotFoundError:
        return []  # the command itself reports the missing file
    table = data.get("train", data)
    plugins = table.get("plugins", []) if isinstance(table, dict) else []
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise ConfigError(f"plugins in {path} must be a list of module names or .py files, "
                          f"got {plugins!r}")
    return plugins


def error_line(err: BaseException) -> str:
    """One line for an expected error: its message, with the file of an OSError."""
    if isinstance(err, OSError) and err.strerror:
        where = f": {err.filename}" if err.filename is not None else ""
        also = f" -> {err.filename2}" if err.filename2 is not None else ""
        return f"{err.strerror}{where}{also}"
    return " ".join(str(err).split()) or type(err).__name__


def _load_plugins(argv: list[str]) -> None:
    """The installed plugins (entry points), then those the command line names."""
    from ..plugins import load_installed_plugins, load_plugins

    load_installed_plugins()
    load_plugins(plugins_named(argv))


@contextmanager
def one_line_warnings(command: str) -> Iterator[None]:
    """Print spikequant's own warnings as `spikequant COMMAND: warning: ...` (one line, no
    source location); other packages' warnings keep Python's format."""
    default = warnings.formatwarning

    def formatwarning(message, category, filename, lineno, line=None):
        if not category.__module__.startswith("spikequant"):
            return default(message, category, filename, lineno, line)
        return f"spikequant {command}: warning: {' '.join(str(message).split())}\n"

    warnings.formatwarning = formatwarning
    try:
        yield
    finally:
        warnings.formatwarning = default


def main(argv: list[str] | None = None) -> int:
    from .._signals import handled

    command: list[str] = []  # the subcommand, once parsed: named in the interrupted line
    with handled():  # from the start: a signal while torch is imported unwinds as well
        try:
            return _run(sys.argv[1:] if argv is None else argv, command)
        except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (_signals.Interrupted)
            name = getattr(stop, "name", "SIGINT")
            where = f"spikequant {command[0]}" if command else "spikequant"
            then = ON_INTERRUPT.get(command[0] if command else "", "no file was left half-written")
            print(f"{where}: interrupted ({name}): {then}", file=sys.stderr)
            return getattr(stop, "exit_status", 130)


def _run(argv: list[str], command: list[str]) -> int:
    from .. import environment
    from ..errors import SpikequantError
    from .argtypes import join_list_values

    argv = join_list_values(argv)
    try:
        _load_plugins(argv)
    except SpikequantError as err:
        print(f"spikequant: error: {error_line(err)}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    command.append(args.command)
    with one_line_warnings(args.command):
        try:
            for line in environment.check_environment():
                print(f"spikequant {args.command}: warning: {line}", file=sys.stderr)
            return int(args.func(args) or 0)
        except BrokenPipeError:
            # output piped into `head` and closed early: not an error of ours
            sys.stderr.close()
            return 0
        except (SpikequantError, ValueError, OSError, FloatingPointError, MemoryError) as err:
            # the errors bad input, bad files and full disks raise: one line, never a traceback
            print(f"spikequant {args.command}: error: {error_line(err)}", file=sys.stderr)
            return 2
