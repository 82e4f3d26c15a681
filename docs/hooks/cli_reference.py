"""The command-line reference, written from the `spikequant` argparse parser and TrainConfig's
field metadata at every docs build, so it can never disagree with `--help`."""

from __future__ import annotations

import argparse
import dataclasses
import os


def _expanded_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """An option's help as `--help` prints it (%(default)s filled in, the defaults a
    formatter class adds included), on one line."""
    if not action.help:
        return ""
    text = parser._get_formatter()._expand_help(action)
    return " ".join(text.split())


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _names(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    metavar = ""
    if action.nargs != 0:
        if action.choices is not None and action.metavar is None:
            metavar = " {" + ",".join(map(str, action.choices)) + "}"
        else:
            metavar = f" {action.metavar or action.dest.upper()}"
    return ", ".join(f"`{name}{metavar}`" for name in action.option_strings)


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    return [(name, helps.get(name, ""), p) for name, p in sub.choices.items()]


def _options_tables(parser: argparse.ArgumentParser) -> list[str]:
    lines: list[str] = []
    for group in parser._action_groups:
        shown = [a for a in group._group_actions
                 if a.help is not argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)]
        if not shown:
            continue
        title = group.title or "options"
        lines += ["", f"**{title[0].upper()}{title[1:]}**", "", "| option | meaning |", "|---|---|"]
        lines += [f"| {_cell(_names(a))} | {_cell(_expanded_help(parser, a))} |" for a in shown]
    return lines


def _usage(parser: argparse.ArgumentParser) -> str:
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "96"
    try:
        return parser.format_usage().strip()
    finally:
        if before is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = before


def cli_reference() -> str:
    """The markdown of the command-line reference page."""
    from spikequant.cli import build_parser

    parser = build_parser()
    out = [
        "# Command line",
        "",
        "This page is generated from the `spikequant` command's own parser each time the "
        "documentation is built: it is what `spikequant COMMAND --help` prints, as tables.",
        "",
        f"{parser.description}",
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    commands = _subcommands(parser)
    out += [f"| [`spikequant {name}`](#spikequant-{name}) | {_cell(text or '')} |"
            for name, text, _ in commands]
    out += ["", "`python -m spikequant` is the same command. Every expected failure is one line "
            "`spikequant COMMAND: error: ...` and exit status 2."]
    for name, _, sub in commands:
        out += ["", f"## spikequant {name}", "", "```text", _usage(sub), "```", ""]
        if sub.description:
            out += [" ".join(sub.description.split())]
        out += _options_tables(sub)
        if sub.epilog:
            out += ["", " ".join(sub.epilog.split())]
    out += ["", "The settings of `spikequant train` are also the keys of a config file: "
            "[Training settings](settings.md) lists them all with their defaults."]
    return "\n".join(out) + "\n"


def settings_reference() -> str:
    """The markdown of the page listing every TrainConfig field (config-file key)."""
    from spikequant.train.config import TrainConfig
    from spikequant.train.setting import GROUPS, choices_of, default_shown, flag_of, help_of

    out = [
        "# Training settings",
        "",
        "Generated from `spikequant.train.TrainConfig` at each documentation build. Every "
        "setting is a key of a config file's `[train]` table (`spikequant train --config "
        "FILE`); most are also a flag of `spikequant train`. A flag given on the command line "
        "wins over the file, the file over the default. A file may start with "
        "`extends = \"base.toml\"` to take another file's settings first.",
    ]
    fields = dataclasses.fields(TrainConfig)
    for group in GROUPS:
        members = [f for f in fields if f.metadata.get("group", "") == group
                   and not f.metadata.get("hidden")]
        if not members:
            continue
        out += ["", f"## {group[0].upper() + group[1:] if group else 'Run'}", "",
                "| key | flag | default | meaning |", "|---|---|---|---|"]
        for f in members:
            flag = flag_of(f)
            default = default_shown(f)
            if isinstance(f.default, bool):
                default = str(f.default).lower()
            choices = choices_of(f)
            meaning = help_of(f) + (f" (one of: {', '.join(choices)})" if choices else "")
            out.append(f"| `{f.name}` | {f'`{flag}`' if flag else 'config file only'} | "
                       f"{_cell(default or '')} | {_cell(meaning)} |")
    return "\n".join(out) + "\n"
