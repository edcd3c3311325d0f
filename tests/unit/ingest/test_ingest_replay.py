"""Record and replay: a live sav-basic BGP-LS session (ExaBGP 5.0.15 API lines) replayed step by step
through the same path as live input; the graph after each step must equal the recorded expectation.
See corpora/exabgp-5.0.15/sav-basic/description.txt."""

from __future__ import annotations

import json
import os
from pathlib import Path

from appliance.sources.bgpls.ingest import TopologyIngest
from appliance.speakers.exabgp import MalformedLine, parse_api_line

CASE = Path(__file__).parent / "corpora" / "exabgp-5.0.15" / "sav-basic"
UPDATE = os.environ.get("SAVD_UPDATE_GOLDEN") == "1"


def graph(ingest: TopologyIngest) -> dict[str, object]:
    doc = ingest.topology.to_dict()
    doc.pop("version")
    return doc


def test_sav_basic_session_replays_to_the_recorded_graphs() -> None:
    ingest = TopologyIngest()
    steps = sorted(CASE.glob("*-input-exabgp.jsonl"))
    assert [s.name[:2] for s in steps] == ["01", "02", "03", "04"]
    for step in steps:
        for line in step.read_text().splitlines():
            ev = parse_api_line(line)
            assert not isinstance(ev, MalformedLine), line[:200]
            if ev is not None:
                ingest.handle(ev)
        expected_file = CASE / f"{step.name[:2]}-expected-graph.json"
        if UPDATE:
            expected_file.write_text(json.dumps(graph(ingest), indent=1, sort_keys=True) + "\n")
        assert graph(ingest) == json.loads(expected_file.read_text()), step.name
        if step.name.startswith("03"):
            assert ingest.eor_seen == {f"198.18.255.{i}" for i in range(1, 5)}
    # after 04 (ExaBGP stopped) every peer is down and its facts stale, not gone, until expiry
    assert ingest.skipped == [] and ingest.eor_seen == set() and len(ingest.down_since) == 4
    assert ingest.expire_stale(now=1000.0, hold_s=60.0) == [f"198.18.255.{i}" for i in range(1, 5)]
    assert len(ingest.topology) == 0


def test_step_contents_are_what_the_description_says() -> None:
    g1, g2, g3 = (json.loads((CASE / f"0{i}-expected-graph.json").read_text()) for i in (1, 2, 3))
    assert [r["name"] for r in g1["routers"]] == ["r1", "r2", "r3", "r4"]
    assert sum(lk["border"] for lk in g1["links"]) == 2

    def r2(g: dict[str, list[dict[str, object]]]) -> set[object]:
        return {p["prefix"] for p in g["prefixes"] if p["router"] == "r2"}

    assert r2(g1) - r2(g2) == {"198.18.3.0/24", "2001:db8:0:3::/64"}
    assert r2(g1) - r2(g3) == {"2001:db8:0:3::/64"}
    assert g1["links"] == g2["links"] == g3["links"]
