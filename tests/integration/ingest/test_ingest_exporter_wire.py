"""The exporter's UPDATEs decoded by the pinned ExaBGP 5.0.15 (`exabgp decode`), read back through savd's
BGP-LS decoder: what the exporter means to say is what the appliance learns."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.lab.bgpls_exporter import LsdbView, Route, export_lsdb, update_announce, update_withdraw
from appliance.sources.bgpls.decode import LsAnnounce, LsLink, LsNode, LsPrefix, LsWithdraw, decode_update
from appliance.speakers.exabgp import UpdateReceived, parse_api_line

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
EXABGP = str(Path(sys.executable).parent / "exabgp")
DATA = Path(__file__).parents[2] / "unit" / "ingest" / "data" / "frr-8.4.4-sav-basic-ospf.json"


def exabgp_decode(msg: bytes) -> UpdateReceived:
    out = subprocess.run(
        [EXABGP, "decode", "-f", "bgp-ls bgp-ls", "--update", msg.hex()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("{"))
    ev = parse_api_line(line)
    assert isinstance(ev, UpdateReceived), out[:500]
    return ev


def routes(router: str) -> dict[bytes, Route]:
    docs = json.loads(DATA.read_text())[router]
    view = LsdbView(
        docs["show ip ospf database router json"],
        docs["show ip ospf database network json"],
        docs["show ip ospf database external json"],
        docs["show ip ospf interface json"],
        docs.get("show bgp neighbors json", {}),
    )
    return export_lsdb(view, 65000, router)


def test_every_exported_nlri_decodes_to_what_was_meant() -> None:
    items = []
    for router, ibgp in (("r3", True), ("r4", False)):
        for route in routes(router).values():
            ev = exabgp_decode(update_announce(route, asn=65000, ibgp=ibgp, next_hop="198.18.20.1"))
            events, errors = decode_update(ev, "t")
            assert errors == [] and len(events) == 1 and isinstance(events[0], LsAnnounce)
            items.append(events[0].item)
    nodes = [i for i in items if isinstance(i, LsNode)]
    assert sorted((n.name, n.node.router_id, n.te_router_ids) for n in nodes) == [
        ("r3", "198.18.255.3", ("198.18.255.3",)),
        ("r4", "198.18.255.4", ("198.18.255.4",)),
    ]
    links = {
        (
            lk.local.router_id,
            lk.remote.router_id,
            lk.local_addresses,
            lk.remote_addresses,
            lk.igp_metric,
            lk.name,
        )
        for lk in items
        if isinstance(lk, LsLink)
    }
    assert ("198.18.255.3", "198.18.255.4", ("198.18.10.9",), ("198.18.10.10",), 10, "eth3") in links
    assert ("198.18.255.4", "198.18.255.3", ("198.18.10.10",), ("198.18.10.9",), 10, "eth1") in links
    assert len(links) == 6  # r3: 3 adjacencies; r4: 1 adjacency + 2 eBGP sessions (EPE, Protocol-ID 7)
    epe = [lk for lk in items if isinstance(lk, LsLink) and lk.local.protocol == 7]
    assert {(lk.local.router_id, lk.local.asn, lk.remote.router_id, lk.remote.asn) for lk in epe} == {
        ("198.18.255.4", 65000, "198.19.255.1", 65100)
    }
    assert sorted(lk.remote_addresses for lk in epe) == [("198.18.30.2",), ("2001:db8:0:30::2",)]
    prefixes = {(p.node.router_id, p.prefix, p.ospf_route_type) for p in items if isinstance(p, LsPrefix)}
    assert ("198.18.255.3", "198.18.20.0/24", 1) in prefixes
    assert ("198.18.255.4", "198.19.0.0/16", 4) in prefixes
    assert all(p.node.asn == 65000 and p.node.area == "0.0.0.0" for p in items if isinstance(p, LsPrefix))


def test_withdraw_and_end_of_rib_decode() -> None:
    nlris = sorted(routes("r3"))[:3]
    ev = exabgp_decode(update_withdraw(nlris))
    events, errors = decode_update(ev, "t")
    assert errors == [] and len(events) == 3 and all(isinstance(e, LsWithdraw) for e in events)
    out = subprocess.run(
        [EXABGP, "decode", "-f", "bgp-ls bgp-ls", "--update", update_withdraw([]).hex()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert '"eor"' in out and "bgp-ls" in out


def test_ospf6_node_and_ipv6_prefixes_decode() -> None:
    docs = json.loads(DATA.read_text())["r2"]
    view = LsdbView(
        {"routerId": "198.18.255.2"},
        {},
        ospf6_intra=docs["show ipv6 ospf6 database intra-prefix detail json"],
    )
    items = []
    for route in export_lsdb(view, 65000, "r2").values():
        events, errors = decode_update(
            exabgp_decode(update_announce(route, asn=65000, ibgp=True, next_hop="198.18.20.1")), "t"
        )
        assert errors == []
        items += [e.item for e in events]
    (node,) = [i for i in items if isinstance(i, LsNode)]
    assert (node.name, node.node.protocol, node.node.router_id) == ("r2", 6, "198.18.255.2")
    assert {p.prefix for p in items if isinstance(p, LsPrefix)} == {
        "2001:db8:0:2::/64",
        "2001:db8:0:3::/64",
        "2001:db8:0:11::/64",
        "2001:db8:0:ffff::2/128",
    }
