"""Shared pytest fixtures and skips.

Lab and integration tests need root and the Debian packages that scripts/setup installs; on a machine
without them they fail loudly rather than skip, because `make test` is supposed to install them.
Data-set tests skip cleanly when ../shared/data is absent.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
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


@pytest.fixture
def scratch_netns(require_root: None) -> Iterator[str]:
    """A fresh network namespace with its loopback up (a unique name), deleted afterwards."""
    name = "svtn" + secrets.token_hex(3)
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
