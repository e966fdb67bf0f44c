"""Deterministic torch settings for every test (float64, fixed seed)."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    """One cache of digits classifiers and data-set statistics (``mmgan.gan.metrics.cache_dir``) for the whole
    session, shared by the tests and the notebooks that nbval executes (their kernels inherit this
    environment): each is trained once per session, and never read from or written to the user's
    ``~/.cache/mmgan``. Tests of the cache itself point ``MMGAN_CACHE`` at their own folder."""
    os.environ["MMGAN_CACHE"] = tempfile.mkdtemp(prefix="mmgan-test-cache-")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(os.environ.get("MMGAN_CACHE", ""), ignore_errors=True)


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)
