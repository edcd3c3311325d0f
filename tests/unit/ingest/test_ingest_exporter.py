"""BGP-LS exporter, pure parts: FRR 8.4.4 OSPF LSDB (recorded in sav-basic) -> what the node originates;
diff planning. The wire encoding is checked against ExaBGP's decoder in
tests/integration/ingest/test_ingest_exporter_wire.py."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from appliance.lab.bgpls_exporter import (
    LsdbView,
    Route,
    export_lsdb,
    next_poll,
    open_message,
    plan,
    update_withdraw,
)

DATA = Path(__file__).parent / "data" / "frr-8.4.4-sav-basic-ospf.json"


def view(router: str) -> LsdbView:
    docs = json.loads(DATA.read_text())[router]
    return LsdbView(
        docs["show ip ospf database router json"],
        docs["show ip ospf database network json"],
        docs["show ip ospf database external json"],
        docs["show ip ospf interface json"],
        docs.get("show bgp neighbors json", {}),
    )


def kinds(routes: dict[bytes, Route]) -> dict[int, int]:
    out: dict[int, int] = {}
    for nlri in routes:
        kind = struct.unpack("!H", nlri[:2])[0]
        out[kind] = out.get(kind, 0) + 1
    return out


def test_core_router_exports_itself_only() -> None:
    routes = export_lsdb(view("r3"), 65000, "r3")
    # 1 node, 3 p2p adjacencies (r1, r2, r4), stubs: 3 p2p subnets + ctl LAN + loopback
    assert kinds(routes) == {1: 1, 2: 3, 3: 5}
    for nlri, route in routes.items():
        assert nlri == route.nlri
        assert b"\xc6\x12\xff\x03" in nlri  # every NLRI is described from r3's (198.18.255.3) point of view
    node = next(r for n, r in routes.items() if n[:2] == b"\x00\x01")
    assert b"r3" in node.attribute


def test_border_router_exports_its_external_prefixes() -> None:
    routes = export_lsdb(view("r4"), 65000, "r4")
    ext = [n for n in routes if n[:2] == b"\x00\x03" and b"\x01\x08\x00\x01\x04" in n]  # OSPF route type 4
    # AS 65100's aggregate, redistributed from BGP: TLV 265 (0x0109), length 3, /16, 198.19
    assert len(ext) == 1 and ext[0].endswith(b"\x01\x09\x00\x03\x10\xc6\x13")


def test_border_router_reports_its_ebgp_sessions_as_bgp_links() -> None:
    routes = export_lsdb(view("r4"), 65000, "r4")
    epe = [n for n in routes if n[:2] == b"\x00\x02" and n[4] == 7]  # Link NLRI, Protocol-ID 7 (BGP)
    assert len(epe) == 2  # the IPv4 and the IPv6 session to ext; the Active iBGP sessions are not links
    v4 = next(n for n in epe if b"\x01\x03\x00\x04\xc6\x12\x1e\x01" in n)  # TLV 259 198.18.30.1
    assert b"\x02\x04\x00\x04\xc6\x13\xff\x01" in v4  # TLV 516 BGP router ID of ext, 198.19.255.1
    assert b"\x01\x04\x00\x04\xc6\x12\x1e\x02" in v4  # TLV 260 neighbour address 198.18.30.2
    assert routes[v4].attribute.endswith(b"\x04\x4a\x00\x04eth2")  # Link Name from the OSPF interface


def test_ospf6_prefixes_of_the_node_itself() -> None:
    docs = json.loads(DATA.read_text())["r2"]
    v = LsdbView(
        {"routerId": "198.18.255.2"},
        {},
        ospf6_intra=docs["show ipv6 ospf6 database intra-prefix detail json"],
        ospf6_external=docs["show ipv6 ospf6 database as-external detail json"],
    )
    routes = export_lsdb(v, 65000, "r2")
    v6 = [n for n in routes if n[:2] == b"\x00\x04"]
    assert all(n[4] == 6 for n in v6)  # Protocol-ID 6, OSPFv3
    assert len(v6) == 4  # r2's P2, h2's subnet, the link to r3 and its loopback (not r4's external, not r1's)
    nodes = [n for n in routes if n[:2] == b"\x00\x01"]
    assert len(nodes) == 1 and nodes[0][4] == 6 and b"r2" in routes[nodes[0]].attribute


def test_export_is_deterministic_and_empty_without_ospf() -> None:
    assert export_lsdb(view("r3"), 65000, "r3") == export_lsdb(view("r3"), 65000, "r3")
    assert export_lsdb(LsdbView({}, {}), 65000, "x") == {}


def test_plan_diffs() -> None:
    a, b, b2, c = Route(b"a", b"1"), Route(b"b", b"1"), Route(b"b", b"2"), Route(b"c")
    assert plan({b"a": a, b"b": b}, {b"a": a, b"b": b}) == ([], [])
    assert plan({b"a": a}, {b"a": a, b"c": c}) == ([], [c])
    assert plan({b"a": a, b"b": b}, {b"a": a}) == ([b"b"], [])
    assert plan({b"b": b}, {b"b": b2}) == ([], [b2])


def test_open_and_eor_layout() -> None:
    msg = open_message(65000, "198.18.255.1")
    assert msg[:16] == b"\xff" * 16 and msg[18] == 1
    assert struct.unpack("!H", msg[16:18])[0] == len(msg)
    assert b"\x01\x04\x40\x04\x00\x47" in msg  # MP capability AFI 16388 SAFI 71
    eor = update_withdraw([])
    assert eor[19:] == bytes.fromhex("00000006800f03400447")


def test_an_unchanged_lsdb_is_read_at_doubling_intervals_and_a_change_resets_them() -> None:
    waits, delay = [], 1.0
    for changed in (False, False, False, False, True, False):
        delay = next_poll(delay, changed, 1.0, 4.0)
        waits.append(delay)
    assert waits == [2.0, 4.0, 4.0, 4.0, 1.0, 2.0]
    assert next_poll(0.5, False, 0.5, 0.5) == 0.5   # --max-poll = --poll: a fixed interval
