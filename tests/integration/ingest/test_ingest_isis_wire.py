"""The exporter's IS-IS UPDATEs (from FRR 8.4.4 output captured in kitisis, tests/unit/ingest/data) decoded by
the pinned ExaBGP (`exabgp decode`) and read back through savd's BGP-LS decoder into a Topology: what the
IS-IS exporter means to say (7-octet pseudonode descriptors, 3-octet wide metrics, MT-ID, X flag) is
what the appliance learns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_ingest_exporter_wire import exabgp_decode

from appliance.lab.bgpls_exporter import ISIS_COMMANDS, IsisTexts, LsdbView, export_lsdb, update_announce
from appliance.model import Link
from appliance.sources.bgpls.decode import LsAnnounce, decode_update
from appliance.sources.bgpls.graph import Topology

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
DATA = Path(__file__).parents[2] / "unit" / "ingest" / "data"


def learn(capture: str, routers: tuple[str, ...]) -> Topology:
    topo = Topology()
    for router in routers:
        docs = json.loads((DATA / capture).read_text())[router]
        texts = IsisTexts(json.loads(docs[ISIS_COMMANDS[0]]), *(docs[c] for c in ISIS_COMMANDS[1:]))
        for route in export_lsdb(LsdbView({}, {}, isis=texts), 65010, router).values():
            ev = exabgp_decode(update_announce(route, asn=65010, ibgp=True, next_hop="198.18.73.1"))
            events, errors = decode_update(ev, router)
            assert errors == [] and len(events) == 1 and isinstance(events[0], LsAnnounce), errors
            topo.apply(events[0])
    return topo


def test_lan_l1l2_mt_capture_through_exabgp() -> None:
    topo = learn("frr-8.4.4-isis-lan-l1l2-mt.json", ("a1", "c1"))
    # a2 and c2 (whose exporters are not in this test) are far ends only: named by system ID, as OSPF's
    # far ends are by router ID
    assert [(r.name, r.router_id, r.asn) for r in topo.routers()] == [
        ("198182540002", "198182540002", 65010), ("198182540004", "198182540004", 65010),
        ("a1", "198.18.254.1", 65010), ("c1", "198.18.254.3", 65010)]
    assert {n.node.protocol for n in topo.ls_nodes()} == {1, 2}
    pseudo = {lk.remote for lk in topo.ls_links() if lk.remote.is_pseudonode}
    assert {(p.router_id, p.pseudonode, p.protocol) for p in pseudo} == {("198182540001", "3", 1),
                                                                        ("198182540001", "3", 2)}
    links = set(topo.links())
    assert Link("a1", "c1", "198.18.74.1", "198.18.74.2", 10) in links  # through the LAN pseudonode
    assert Link("c1", "a1", "198.18.74.2", "198.18.74.1", 10) in links
    itf = {(i.router, i.name): i.addresses for i in topo.interfaces()}
    assert itf[("a1", "eth2")] == ("198.18.74.1/30", "2001:db8:0:74::1/64")
    assert topo.routers_serving("198.18.71.10") == ("a1",)
    assert topo.routers_serving("2001:db8:0:73::10") == ("c1",)


def test_p2p_capture_through_exabgp_marks_redistributed_prefixes_external() -> None:
    topo = learn("frr-8.4.4-isis-p2p.json", ("a1", "c2"))
    assert Link("a1", "c2", "198.18.74.13", "198.18.74.14", 10) in topo.links()
    external = {p.prefix for p in topo.igp_prefixes() if p.external}
    assert external == {"198.19.5.0/24", "2001:db8:99::/48"}
