"""Shared pytest fixtures and skips.

Lab and integration tests need root and the Debian packages that scripts/setup installs; on a machine
without them they fail loudly rather than skip, because `make test` is supposed to install them.
Data-set tests skip cleanly when ../shared/data is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; skips the test when the data sets are not present."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (network namespaces); run `make test` as root")
