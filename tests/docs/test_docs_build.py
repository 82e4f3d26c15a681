"""The documentation site builds with warnings as errors (mkdocs.yml: strict, with nav, link
and anchor validation), so a broken link, a missing API target, a page left out of the
navigation or a stale generated page fails the default suite. The same build on a copy of the
docs with one broken link must fail, so this test is not one that always passes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")


def _build(root: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "-f", str(root / "mkdocs.yml"), "-d", str(site)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)


def test_the_site_builds_with_no_warnings(tmp_path):
    done = _build(ROOT, tmp_path / "site")
    assert done.returncode == 0, done.stderr[-4000:]
    site = tmp_path / "site"
    for page in ("index.html", "getting-started/index.html", "reference/cli/index.html",
                 "reference/api/quant/index.html", "method/index.html"):
        assert (site / page).is_file(), f"{page} was not built"
    api = (site / "reference/api/quant/index.html").read_text()
    assert "quantize_model" in api and "SigmoidQuantizer" in api  # docstrings rendered
    cli = (site / "reference/cli/index.html").read_text()
    assert "--quantizer-option" in cli  # generated from the parsers, not retyped


def test_a_broken_link_fails_the_build(tmp_path):
    copy = tmp_path / "copy"
    for part in ("docs", "src", "mkdocs.yml", "README.md", "BENCHMARKS.md", "configs"):
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, copy / part)
    page = copy / "docs" / "limits.md"
    page.write_text(page.read_text() + "\n\nSee [the missing page](no-such-page.md).\n")
    done = _build(copy, tmp_path / "site")
    assert done.returncode != 0
    assert "no-such-page.md" in done.stdout + done.stderr
