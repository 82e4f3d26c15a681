"""MkDocs hook (mkdocs.yml `hooks:`): the pages and figures generated from the code at every
build, so none of them can go stale: the command-line reference and the training settings
(from the argparse parser and TrainConfig's metadata) and the method page's figure (from
spikequant.quant)."""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).parent))

from cli_reference import cli_reference, settings_reference  # noqa: E402
from quantizer_plot import quantizer_figure_png  # noqa: E402

GENERATED = {
    "reference/cli.md": cli_reference,
    "reference/settings.md": settings_reference,
    "img/quantizer-temperatures.png": quantizer_figure_png,
}


def on_files(files: Files, config) -> Files:
    for path, make in GENERATED.items():
        files.append(File.generated(config, path, content=make()))
    return files
