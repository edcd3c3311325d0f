"""The BGP-LS corpora in ../shared/data/bgp-ls turned into topology objects with asserted contents.

ExaBGP qa decodings (5.0 JSON as ExaBGP prints it) go through the same path as live input
(parse_api_line -> decode_update -> Topology); FRR topotest tables go through frr_ls. The FRR case is
checked against a ground truth computed independently from the topotest's own frr.conf files.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from appliance.sources.bgpls.decode import (
    LsAnnounce,
    LsLink,
    LsNode,
    LsPrefix,
    NodeId,
    decode_nlri,
    decode_update,
)
from appliance.sources.bgpls.frr_ls import items_from_frr_table
from appliance.sources.bgpls.graph import Topology
from appliance.speakers.exabgp import UpdateReceived, loads, parse_api_line


def qa(shared_data: Path, name: str) -> tuple[str, str]:
    lines = (shared_data / "bgp-ls" / "exabgp-qa-decoding" / name).read_text().splitlines()
    return lines[0], lines[2]


def topo_from_qa(shared_data: Path, name: str) -> Topology:
    _, text = qa(shared_data, name)
    ev = parse_api_line(text)
    assert isinstance(ev, UpdateReceived)
    events, errors = decode_update(ev)
    assert errors == []
    topo = Topology()
    assert topo.apply_all(events) == len(events)
    return topo


def test_qa1_link_nlri_only(shared_data: Path) -> None:
    kind, text = qa(shared_data, "bgp-ls-1")
    assert kind == "nlri bgp-ls bgp-ls"
    link = decode_nlri(loads(text), {})
    assert isinstance(link, LsLink)
    assert link.local == NodeId(3, 0, 1, "10.10.10.10", "0.0.0.0", "3232266878")
    assert link.remote.router_id == "10.2.2.2"
    assert link.local_addresses == () and link.igp_metric == 0


def test_qa2_ospf_link_to_pseudonode(shared_data: Path) -> None:
    topo = topo_from_qa(shared_data, "bgp-ls-2")
    (link,) = topo.ls_links()
    assert link.local.router_id == "10.1.1.1" and link.local.asn == 65001
    assert link.remote == NodeId(3, 0, 65001, "10.1.4.1", "0.0.0.0", "0", pseudonode="10.1.1.2")
    assert link.local_addresses == ("10.1.1.1",) and link.remote_addresses == ("10.1.1.2",)
    assert link.igp_metric == 1
    # a pseudonode is not a router, and a lone half of a LAN adjacency is no router-to-router link
    assert [r.name for r in topo.routers()] == ["10.1.1.1"]
    assert topo.links() == ()
    assert topo.interfaces()[0].addresses == ("10.1.1.1/32",)


def test_qa4_isis_link_metric_and_ids(shared_data: Path) -> None:
    topo = topo_from_qa(shared_data, "bgp-ls-4")
    (link,) = topo.links()
    assert (link.local, link.remote, link.metric) == ("192168252240", "192168252162", 5000)
    assert (link.local_address, link.remote_address) == ("192.168.199.84", "192.168.199.85")
    assert topo.border_links() == () and topo.internal_links() == (link,)


def test_qa5_te_attributes_and_bandwidth(shared_data: Path) -> None:
    topo = topo_from_qa(shared_data, "bgp-ls-5")
    (ls,) = topo.ls_links()
    assert (ls.igp_metric, ls.te_metric, ls.max_bandwidth_bps) == (10, 20, 1e9)
    assert topo.neighbours("000100000001") == ("000100000002",)


def test_qa6_remote_router_ids_srv6_and_unknown_tlv(shared_data: Path) -> None:
    topo = topo_from_qa(shared_data, "bgp-ls-6")
    (ls,) = topo.ls_links()
    assert ls.remote_te_router_ids == ("10.0.2.1", "fc00:1000:2::1")
    assert (ls.local_id, ls.remote_id, ls.mt_ids) == (39, 53, (2,))
    assert ls.igp_metric == 10 and ls.max_bandwidth_bps == 1e10
    assert "generic-lsid-1122" in ls.unknown


def test_qa7_node_name_and_router_ids(shared_data: Path) -> None:
    topo = topo_from_qa(shared_data, "bgp-ls-7")
    (node,) = topo.ls_nodes()
    assert node.name == "HL5MMT1-107-IXR-R6" and node.node.protocol == 1 and node.node.asn == 64531
    assert node.te_router_ids == ("192.168.175.49", "192.168.175.51", "192.168.251.231")
    (router,) = topo.routers()
    assert (router.name, router.router_id, router.asn) == ("HL5MMT1-107-IXR-R6", "192.168.175.49", 64531)


def test_qa8_prefix_metric_and_owner(shared_data: Path) -> None:
    topo = topo_from_qa(shared_data, "bgp-ls-8")
    (p,) = topo.ls_prefixes()
    assert isinstance(p, LsPrefix)
    assert (p.prefix, p.metric) == ("10.134.2.88/30", 100)
    assert (p.node.router_id, p.node.instance) == ("010135000041", 700)
    assert topo.routers_serving("10.134.2.89/32") == ("010135000041",)
    assert topo.routers_serving("10.134.3.0/24") == ()


def test_qa9_node_with_unknown_tlvs(shared_data: Path) -> None:
    topo = topo_from_qa(shared_data, "bgp-ls-9")
    (node,) = topo.ls_nodes()
    assert node.name == "router" and node.unknown["generic-lsid-266"] == ["0x010A"]
    assert [r.name for r in topo.routers()] == ["router"]


def test_qa10_ipv6_next_hop_link(shared_data: Path) -> None:
    topo = topo_from_qa(shared_data, "bgp-ls-10")
    (ls,) = topo.ls_links()
    assert ls.igp_metric == 1000 and ls.local.asn == 12322 and ls.local.router_id == "000000000013"


@pytest.mark.parametrize("name", [f"bgp-ls-{i}" for i in range(2, 11)])
def test_every_qa_update_decodes_without_skips(shared_data: Path, name: str) -> None:
    _, text = qa(shared_data, name)
    ev = parse_api_line(text)
    assert isinstance(ev, UpdateReceived)
    events, errors = decode_update(ev, "corpus")
    assert errors == [] and len(events) >= 1
    assert all(isinstance(e, LsAnnounce) and e.source == "corpus" for e in events)


def _frr_conf_truth(folder: Path) -> tuple[dict[str, str], set[tuple[str, str, str, str]]]:
    """From the topotest's frr.conf files: system ID -> hostname, and every IPv4 adjacency
    (router, neighbour, local address, neighbour address) of routers sharing a subnet."""
    sysid: dict[str, str] = {}
    addrs: dict[str, list[ipaddress.IPv4Interface]] = {}
    for conf in sorted(folder.glob("r*/frr.conf")):
        text = conf.read_text()
        host = re.search(r"^hostname (\S+)", text, re.M)
        net = re.search(r"^\s*net [0-9a-f.]+\.([0-9a-f]{4})\.([0-9a-f]{4})\.([0-9a-f]{4})\.00", text, re.M)
        if not host or not net:
            continue
        sysid["".join(net.groups())] = host.group(1)
        addrs[host.group(1)] = [
            ipaddress.IPv4Interface(a) for a in re.findall(r"ip address (\S+)", text) if not a.endswith("/32")
        ]
    adj = set()
    for a, mine in addrs.items():
        for b, theirs in addrs.items():
            for x in mine:
                for y in theirs:
                    if a != b and x.network == y.network:
                        adj.add((a, b, str(x.ip), str(y.ip)))
    return sysid, adj


def test_frr_topotest_table_matches_its_configs(shared_data: Path) -> None:
    folder = shared_data / "bgp-ls" / "frr-topotest-bgp_link_state"
    doc = loads((folder / "rr" / "bgp_ls_nlri.json").read_text())
    items, errors = items_from_frr_table(doc)
    assert errors == []
    topo = Topology()
    topo.apply_all(LsAnnounce("rr", i) for i in items)
    sysid, adj = _frr_conf_truth(folder)
    names = {r.name for r in topo.routers()}
    assert names == set(sysid)  # 4 IS-IS routers, named by system ID (no node-name TLV in the table)
    learned_v4 = {
        (sysid[lk.local], sysid[lk.remote], lk.local_address, lk.remote_address)
        for lk in topo.links()
        if ":" not in lk.local_address
    }
    assert learned_v4 == adj
    assert len(topo.links()) == 16  # 8 IPv4 + 8 IPv6 (MT 2) directed adjacencies
    r1 = next(k for k, v in sysid.items() if v == "r1")
    assert {sysid[n] for n in topo.neighbours(r1)} == {"r2", "r4"}
    # r2 advertises 10.0.3.0/24 (its link to rr, not in IS-IS adjacencies) and its loopback
    r2 = next(k for k, v in sysid.items() if v == "r2")
    assert topo.routers_serving("10.0.3.7/32") == (r2,)
    assert topo.routers_serving("2.2.2.2/32") == (r2,)
    assert set(topo.routers_serving("10.0.1.0/24")) == {r1, r2}
    assert len(topo.igp_prefixes()) == 25
    itf = {(i.router, i.name): i for i in topo.interfaces()}
    assert itf[(r1, "10.0.1.1")].addresses == ("10.0.1.1/24",)
    assert [i.router for i in topo.interfaces_serving("10.0.5.0/24")] == sorted(
        k for k, v in sysid.items() if v in ("r3", "r4")
    )


def test_frr_srv6_table_has_nodes_links_prefixes(shared_data: Path) -> None:
    folder = shared_data / "bgp-ls" / "frr-topotest-bgp_link_state_srv6"
    doc = loads((folder / "bgp_ls_nlri_srv6.json").read_text())
    items, errors = items_from_frr_table(doc)
    kinds = {type(i).__name__ for i in items}
    assert {"LsNode", "LsLink"} <= kinds
    assert all("srv6" in e.lower() or "nlriType" in e for e in errors)
    topo = Topology()
    topo.apply_all(LsAnnounce("rr", i) for i in items)
    assert len(topo.routers()) >= 2 and all(isinstance(n, LsNode) for n in topo.ls_nodes())
