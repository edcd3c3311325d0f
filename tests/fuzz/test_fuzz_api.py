"""Fuzz every API write endpoint (POST and DELETE /api/v1/reports) with arbitrary JSON, over the app as
tests/unit/daemon/test_api.py builds it (real store, monitor and holders in memory).

Properties: every answer is JSON with a 2xx or 4xx status, never 5xx; a 4xx has the project's error body
(`{"message": <non-empty str>, ...}`) and leaves the state as it was; a 2xx holds only valid names and
canonical prefixes, and POST keeps one report per (router, interface, prefix) from the API.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from appliance.api import ApiPorts, create_app
from appliance.api.memory import PushedRules, RpkiStatusBoard, RulesHolder
from appliance.config import ApiConfig
from appliance.model import PrefixReport, canonical_prefix
from appliance.monitor import ManualClock, Monitor
from appliance.monitor.counters import CounterBoard
from appliance.monitor.metrics import Metrics
from appliance.names import interface_name_problem, router_name_problem
from appliance.state import Announce, StateStore

from . import corpus, fuzz_settings

TOKEN = "fuzz-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FIELDS = ["router", "interface", "prefix", "subnet", "anycast", "special", "multihomed"]
VALUES = st.sampled_from(["r1", "eth1", "198.18.1.0/24", "2001:db8::/32", "fe80::%eth0/64", "../../../X",
                          "198.18.1.0/255.255.255.0", "::ffff:198.18.1.0/120", "yes", "", "lan-a",
                          "eth1/../x"])
LEAVES = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
          | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20) | VALUES)
JSON = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6) | st.sampled_from(FIELDS), inner, max_size=4),
                    max_leaves=8)
BODIES = st.dictionaries(st.sampled_from([*FIELDS, "extra"]), LEAVES, max_size=8) | JSON


def make_client() -> tuple[TestClient, StateStore]:
    store = StateStore()
    monitor = Monitor(ManualClock(100.0))
    counters = CounterBoard()
    ports = ApiPorts(store, RulesHolder(), RpkiStatusBoard(), PushedRules(store), monitor, counters,
                     Metrics(monitor, counters))
    held = PrefixReport("r2", "eth1", "198.18.2.0/24", "2", source="file")
    store.apply(Announce("file:reports.yaml", (held,)))
    return TestClient(create_app(ports, ApiConfig(token=TOKEN)), raise_server_exceptions=False), store


CLIENT, STORE = make_client()


def _check(response: Any, before: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    body = response.json()  # every answer is JSON
    if response.status_code >= 400:
        assert isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"], body
        assert STORE.snapshot() == before, "a refused write changed the state"
    api = [r for r in STORE.snapshot().reports if "api" in STORE.snapshot().sources_of(r)]
    for r in api:
        assert router_name_problem(r.router) is None and interface_name_problem(r.interface) is None
        assert canonical_prefix(r.prefix) == r.prefix
    keys = [(r.router, r.interface, r.prefix) for r in api]
    assert len(keys) == len(set(keys)), "two API reports for one (router, interface, prefix)"


def _post(body: Any, raw: bool = False) -> None:
    before = STORE.snapshot()
    if raw:
        headers = {**AUTH, "Content-Type": "application/json"}
        response = CLIENT.post("/api/v1/reports", content=body, headers=headers)
    else:
        response = CLIENT.post("/api/v1/reports", json=body, headers=AUTH)
    _check(response, before)


@fuzz_settings()
@given(body=BODIES)
def test_fuzz_post_arbitrary_json(body: Any) -> None:
    _post(body)


@fuzz_settings()
@given(body=st.fixed_dictionaries({"router": VALUES | LEAVES, "interface": VALUES | LEAVES,
                                   "prefix": VALUES | LEAVES},
                                  optional={k: LEAVES | VALUES for k in FIELDS[3:]}))
def test_fuzz_post_report_shaped_bodies(body: Any) -> None:
    _post(body)


@fuzz_settings()
@given(body=st.binary(max_size=200))
def test_fuzz_post_arbitrary_bytes(body: bytes) -> None:
    _post(body, raw=True)


@fuzz_settings()
@given(params=st.dictionaries(st.sampled_from(["router", "interface", "prefix", "x"]),
                              VALUES | st.text(max_size=30), max_size=4))
def test_fuzz_delete_arbitrary_parameters(params: dict[str, str]) -> None:
    before = STORE.snapshot()
    response = CLIENT.delete("/api/v1/reports", params=params, headers=AUTH)
    _check(response, before)


@pytest.mark.parametrize("case", corpus("api"), ids=lambda p: p.name)
def test_corpus_inputs_that_were_accepted_or_crashed_before(case: Path) -> None:
    """Each case: {"method": "POST"|"DELETE", "body"|"params": ...}; all must be refused (4xx)."""
    spec = json.loads(case.read_text())
    before = STORE.snapshot()
    if spec["method"] == "POST":
        response = CLIENT.post("/api/v1/reports", json=spec["body"], headers=AUTH)
    else:
        response = CLIENT.delete("/api/v1/reports", params=spec["params"], headers=AUTH)
    assert 400 <= response.status_code < 500, (case.name, response.status_code, response.text)
    _check(response, before)
