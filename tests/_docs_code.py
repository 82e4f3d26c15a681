"""Runs the code blocks of a documentation page, in order, as a reader would: python blocks in
one namespace, bash blocks one command at a time (`spikequant ...` in this process, through
`spikequant.cli.main`, anything else with bash), in the current folder.

A page steers its test run with HTML comments, which the rendered page does not show:

    <!-- docs-test: skip (why) -->         the next code block is not run
    <!-- docs-test: file NAME -->          the next code block is written to NAME, not run
    <!-- docs-test: replace "A" => "B" --> every block of the page runs with A replaced by B
                                           (tiny settings for the test: fewer epochs, ...)

Blocks in other languages (text, toml, console output) are not run. Used by
tests/docs/test_docs_code.py: `python tests/_docs_code.py PAGE` exits non-zero naming the block
that failed."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DIRECTIVE = re.compile(r"<!--\s*docs-test:\s*(.*?)\s*-->")
REPLACE = re.compile(r'replace\s+"(.*?)"\s*=>\s*"(.*?)"$')
FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)")
RUN_LANGUAGES = ("python", "bash")


@dataclass
class Block:
    """One fenced code block: its language, text, first line in the page and what to do."""

    language: str
    code: str
    line: int
    action: str = "run"  # run, skip, or file
    target: str = ""


def parse_page(text: str) -> tuple[list[Block], list[tuple[str, str]]]:
    """The page's code blocks and its replacements, in page order."""
    blocks: list[Block] = []
    replacements: list[tuple[str, str]] = []
    pending: tuple[str, str] | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = DIRECTIVE.search(line)
        fence = FENCE.match(line)
        if directive:
            words = directive.group(1)
            replace = REPLACE.match(words)
            if replace:
                replacements.append((replace.group(1), replace.group(2)))
            elif words == "skip" or words.startswith(("skip ", "skip(")):
                pending = ("skip", "")
            elif words.startswith("file "):
                pending = ("file", words.split(None, 1)[1])
            else:
                raise ValueError(f"line {i + 1}: unknown docs-test directive {words!r}")
        elif fence:
            indent, language = fence.group(1), fence.group(2)
            body: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                body.append(lines[i][len(indent):])
                i += 1
            action, target = pending or ("run", "")
            blocks.append(Block(language, "\n".join(body) + "\n", i - len(body), action, target))
            pending = None
        elif line.strip() and pending is not None:
            raise ValueError(f"line {i + 1}: a docs-test skip/file directive must come right "
                             "before its code block")
        i += 1
    return blocks, replacements


def shell_commands(code: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments and blanks dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(shlex.join(words))
    return commands


def run_shell(command: str) -> None:
    words = shlex.split(command)
    if words[0] == "spikequant" or words[:3] == ["python", "-m", "spikequant"]:
        from spikequant.cli import main

        argv = words[1:] if words[0] == "spikequant" else words[3:]
        try:
            status = main(argv)
        except SystemExit as stop:  # --help and argparse errors exit
            status = stop.code or 0
        if status != 0:
            raise RuntimeError(f"`{command}` exited with status {status}")
    else:
        subprocess.run(["bash", "-ec", command], check=True)


def run_page(path: Path) -> int:
    """Run every block of the page at `path`; returns how many were run."""
    import torch

    torch.set_num_threads(1)  # tiny tensors: a second thread only adds synchronisation
    blocks, replacements = parse_page(path.read_text())
    namespace: dict = {"__name__": "__docs__"}
    ran = 0
    for block in blocks:
        code = block.code
        for old, new in replacements:
            code = code.replace(old, new)
        where = f"{path}:{block.line}"
        if block.action == "file":
            Path(block.target).write_text(code)
            continue
        if block.action == "skip" or block.language not in RUN_LANGUAGES:
            continue
        print(f"--- {where} ({block.language})", flush=True)
        try:
            if block.language == "python":
                exec(compile(code, where, "exec"), namespace)
            else:
                for command in shell_commands(code):
                    print(f"$ {command}", flush=True)
                    run_shell(command)
        except BaseException as err:
            raise RuntimeError(f"the {block.language} block at {where} failed: {err!r}") from err
        ran += 1
    return ran


if __name__ == "__main__":
    print(f"ran {run_page(Path(sys.argv[1]).resolve())} block(s)")
