"""Golden: FlowSpec routes FRR 8.4.4 re-advertised to the enforcer's ExaBGP 5.0.15 (recorded with
`savd-enforcer run --record` in the testbed) -> the exact `nft -f` text. SAVD_UPDATE_GOLDEN=1 rewrites it."""

from __future__ import annotations

import os
from pathlib import Path

from appliance.enforcer.nftplan import Plan, build_plan, render_full
from appliance.enforcer.recording import replay
from appliance.enforcer.table import RouteTable
from appliance.speakers.exabgp import SessionDown, UpdateReceived

CORPUS = Path(__file__).parent / "corpus"
RECORDED = CORPUS / "frr-8.4.4-via-exabgp-5.0.15.jsonl"
GOLDEN = CORPUS / "frr-8.4.4-via-exabgp-5.0.15.nft"
GROUPS = {7: ("eth1",), 8: ("eth2",)}


def plan_of(path: Path) -> Plan:
    table = RouteTable()
    for _, event in replay(path.read_text().splitlines()):
        assert not isinstance(event, str), event
        if isinstance(event, UpdateReceived):
            assert (
                table.apply_update(event.neighbor, event.attribute, event.announce, event.withdraw).problems
                == ()
            )
        elif isinstance(event, SessionDown):
            table.drop_peer(event.neighbor)
    return build_plan(table.routes(), GROUPS)


def test_recorded_frr_routes_render_the_golden_nft_text() -> None:
    text = render_full(plan_of(RECORDED))
    if os.environ.get("SAVD_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_recorded_frr_routes_states() -> None:
    states = {s.source: (s.state, s.interfaces) for s in plan_of(RECORDED).statuses}
    assert states["198.18.77.0/24"] == ("installed", ("eth1", "eth2"))  # two interface groups
    assert states["198.18.7.0/24"][0] == "skipped"  # tcp-flags: discard not installed
    assert states["198.18.5.0/24"][0] == "degraded"  # redirect: forwarded + counted
    assert states["198.18.6.0/24"] == ("installed", ("*",))  # no interface-set: everywhere
    assert "198.18.9.0/24" not in states  # announced then withdrawn
    assert sum(1 for state, _ in states.values() if state == "installed") == 10


def test_exabgp_lines_and_records_replay_to_the_same_table() -> None:
    raw = plan_of(CORPUS / "exabgp-5.0.15-flow-from-exabgp.jsonl")
    assert len(raw.statuses) == 9
