"""Fuzz the ExaBGP JSON ingest: parse_api_line (speakers/exabgp.py), the BGP-LS decoder and the topology
it feeds (sources/bgpls/).

Properties: parse_api_line never raises and returns None, a typed event or MalformedLine; decode_update
never raises; the topology built from whatever was accepted names its routers and interfaces with names
that cannot leave a folder (appliance.names), since those names become file names downstream.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.names import UnsafeName, interface_name_problem, router_name_problem, safe_child
from appliance.sources.bgpls.decode import decode_update
from appliance.sources.bgpls.ingest import TopologyIngest, model_facts
from appliance.speakers.events import MalformedLine, SpeakerEvent, UpdateReceived
from appliance.speakers.exabgp import parse_api_line

from . import corpus, fuzz_settings

REPO = Path(__file__).resolve().parents[2]
SEED_LINES = [
    line
    for f in sorted((REPO / "tests/unit/ingest/corpora/exabgp-5.0.15/sav-basic").glob("*-input-exabgp.jsonl"))
    for line in f.read_text().splitlines() if line.strip()
]
SEEDS = [json.loads(line) for line in SEED_LINES]
LEAVES = (st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats() | st.text(max_size=10)
          | st.sampled_from(["../../../X", "r1/..", "..", "r1", "eth1", "198.18.0.1", "0x", "0xC612FF04",
                             "bgpls-node", "bgpls-link", "bgpls-prefix-v4", "bgp-ls bgp-ls", "a" * 80,
                             "fe80::%eth0/64", "198.18.1.0/255.255.255.0"]))
JSON = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=10)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location in a JSON document (for mutation)."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return doc


EXABGP_KEYS = st.sampled_from(["psn", "designated-router-id", "router-id", "node-name", "link-name",
                               "autonomous-system", "bgp-router-id", "generic-node-descriptor-516",
                               "ip-reach-prefix", "ls-nlri-type", "protocol-id", "igp-route-tags",
                               "interface-addresses", "link-identifiers", "multi-topology-ids"])


def _insert(doc: Any, path: tuple[Any, ...], key: str, value: Any) -> Any:
    """Add a member: `{key: value}` appended to a list, or `key` set in an object (new descriptors)."""
    target = doc
    for k in path:
        target = target[k]
    if isinstance(target, list):
        target.append({key: value})
    elif isinstance(target, dict):
        target[key] = value
    return doc


def _check_event(event: SpeakerEvent | None, ingest: TopologyIngest) -> None:
    if isinstance(event, MalformedLine):
        assert event.error
        return
    if isinstance(event, UpdateReceived):
        decode_update(event)  # must not raise
    if event is not None:
        ingest.handle(event)
    _check_names(ingest)


def _check_names(ingest: TopologyIngest) -> None:
    for fact in model_facts(ingest.topology):
        router = getattr(fact, "router", None) or getattr(fact, "name", None)
        if isinstance(router, str):
            base = router.split("@", 1)  # an advertised name used by two routers becomes "name@router-id"
            assert all(router_name_problem(part) is None for part in base), router
            safe_child(Path("/nonexistent"), f"{router}.json")  # raises UnsafeName if it could escape
    for itf in ingest.topology.interfaces():
        assert interface_name_problem(itf.name) is None or ":" in itf.name or "." in itf.name, itf.name


@fuzz_settings()
@given(line=st.text(max_size=300) | JSON.map(json.dumps))
def test_fuzz_arbitrary_lines(line: str) -> None:
    _check_event(parse_api_line(line), TopologyIngest())


@fuzz_settings()
@given(data=st.data(), seed=st.sampled_from(range(len(SEEDS))), rounds=st.integers(1, 4))
def test_fuzz_mutated_exabgp_messages(data: st.DataObject, seed: int, rounds: int) -> None:
    ingest = TopologyIngest()
    for line in SEED_LINES[:3]:  # sessions up, a node known: mutations then hit a live graph
        ingest.handle(parse_api_line(line))  # type: ignore[arg-type]
    doc = copy.deepcopy(SEEDS[seed])
    for _ in range(rounds):
        where = data.draw(st.sampled_from(_paths(doc)))
        if data.draw(st.booleans()):
            doc = _replace(doc, where, data.draw(JSON))
        else:
            doc = _insert(doc, where, data.draw(EXABGP_KEYS), data.draw(JSON))
    _check_event(parse_api_line(json.dumps(doc)), ingest)


@pytest.mark.parametrize("case", corpus("exabgp"), ids=lambda p: p.name)
def test_corpus_inputs_that_crashed_before(case: Path) -> None:
    ingest = TopologyIngest()
    for line in case.read_text().splitlines():
        event = parse_api_line(line)
        try:
            _check_event(event, ingest)
        except UnsafeName as exc:  # pragma: no cover - the failure message names the input
            raise AssertionError(f"{case.name}: {exc}") from exc
