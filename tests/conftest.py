"""Shared fixtures: one generated ndigits copy per test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ndigits_dir(tmp_path_factory):
    """A data folder holding the generated ndigits dataset (made once per session)."""
    from spikequant.data import get_dataset

    root = tmp_path_factory.mktemp("data")
    get_dataset("ndigits", "train", data_dir=str(root), progress=False)
    return root
