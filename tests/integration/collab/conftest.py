"""The collaboration tests' PKI, made once per session with the openssl CLI."""

from __future__ import annotations

import pytest
from support.collab_pki import Pki, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("collab-pki"))
