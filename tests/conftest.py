"""Shared fixtures: one generated ndigits copy per test session, and those of _helpers.py
(shared helper functions live there). Without a GPU the Triton kernels run under Triton's
interpreter, which must be chosen before triton is imported."""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from _helpers import fast_eval, no_data, quiet_partial_datasets  # noqa: E402

__all__ = ["fast_eval", "no_data", "quiet_partial_datasets"]  # fixtures, for every test file


@pytest.fixture(scope="session")
def ndigits_dir(tmp_path_factory):
    """A data folder holding the generated ndigits dataset (made once per session)."""
    from spikequant.data import get_dataset

    root = tmp_path_factory.mktemp("data")
    get_dataset("ndigits", "train", data_dir=str(root), progress=False)
    return root


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for modules of tiny tensors: a second thread only adds
    synchronisation, which is very slow (x5 seen) while other processes keep the cores busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
