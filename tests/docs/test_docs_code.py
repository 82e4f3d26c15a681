"""The code of the tutorials, the guides and the README runs as written (with the page's own
`docs-test: replace` directives for tiny settings), each page in a fresh process and folder,
so the documentation cannot drift from the code. tests/_docs_code.py is the runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from _docs_code import parse_page, shell_commands

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).resolve().parents[1] / "_docs_code.py"
PAGES = sorted(
    [ROOT / "README.md", ROOT / "docs" / "getting-started.md", ROOT / "docs" / "method.md",
     ROOT / "docs" / "formats.md", ROOT / "docs" / "nir.md"]
    + list((ROOT / "docs" / "tutorials").glob("*.md"))
    + list((ROOT / "docs" / "guide").glob("*.md"))
)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_code_of_the_page_runs(page, ndigits_dir, tmp_path):
    env = {**os.environ, "SPIKEQUANT_DATA": str(ndigits_dir),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(RUNNER), str(page)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_every_tutorial_has_code_that_runs():
    for page in (ROOT / "docs" / "tutorials").glob("*.md"):
        if page.name in ("index.md", "plugins.md"):
            continue
        blocks, _ = parse_page(page.read_text())
        assert any(b.action == "run" and b.language in ("python", "bash") for b in blocks), \
            page.name


def test_the_runner_reads_directives_and_commands():
    blocks, replacements = parse_page(
        '<!-- docs-test: replace "--epochs 9" => "--epochs 1" -->\n'
        "<!-- docs-test: skip (slow) -->\n```bash\nmake demo\n```\n"
        "<!-- docs-test: file a.toml -->\n```toml\nx = 1\n```\n"
        "```bash\nspikequant train --epochs 9 \\\n    --out r  # comment\n```\n")
    assert replacements == [("--epochs 9", "--epochs 1")]
    assert [(b.language, b.action, b.target) for b in blocks] == [
        ("bash", "skip", ""), ("toml", "file", "a.toml"), ("bash", "run", "")]
    assert shell_commands(blocks[2].code) == ["spikequant train --epochs 9 --out r"]
    with pytest.raises(ValueError, match="unknown docs-test directive"):
        parse_page("<!-- docs-test: skipp -->\n")
    with pytest.raises(ValueError, match="right before its code block"):
        parse_page("<!-- docs-test: skip -->\ntext\n```bash\nx\n```\n")
