"""savd's BGP-LS ingest with IS-IS NLRI (Protocol-ID 1/2), in the JSON shape ExaBGP 5.0.15 prints for what
the exporter sends (checked against `exabgp decode` in tests/integration/ingest/test_ingest_isis_wire.py):
the same topology facts as for OSPF (routers, links, interfaces, prefixes), LAN pseudonodes, level 1 and
level 2 views of one router, external prefixes by the X flag, the AS border named after the IS-IS router."""

from __future__ import annotations

from typing import Any

from appliance.model import IgpPrefix, Link, Router
from appliance.sources.bgpls.decode import LsAnnounce, LsItem, LsPrefix, decode_nlri
from appliance.sources.bgpls.graph import Topology

A1, C1 = "198182540001", "198182540003"


def desc(rid: str, asn: int = 65010, psn: int = 0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"autonomous-system": asn}, {"bgp-ls-identifier": "0"}]
    out.append({"router-id": rid + (f"{psn:02x}" if psn else "")} | ({"psn": str(psn)} if psn else {}))
    return out


def node(rid: str, name: str, te: str, level: int = 2) -> LsItem:
    return decode_nlri({"ls-nlri-type": "bgpls-node", "l3-routing-topology": 0, "protocol-id": level,
                        "node-descriptors": desc(rid)}, {"node-name": name, "local-te-router-ids": [te]})


def link(local: str, remote: str, mine: list[str], theirs: list[str], *, level: int = 2, psn: int = 0,
         local_psn: int = 0, name: str = "") -> LsItem:
    nlri: dict[str, Any] = {"ls-nlri-type": "bgpls-link", "l3-routing-topology": 0, "protocol-id": level,
                            "local-node-descriptors": desc(local, psn=local_psn),
                            "remote-node-descriptors": desc(remote, psn=psn)}
    if mine:
        nlri["interface-addresses"] = mine
    if theirs:
        nlri["neighbor-addresses"] = theirs
    return decode_nlri(nlri, {"igp-metric": 10, "link-name": name} if name else {"igp-metric": 10})


def prefix(rid: str, pfx: str, *, x: int = 0, level: int = 2, protocol: int | None = None) -> LsItem:
    kind = "bgpls-prefix-v6" if ":" in pfx else "bgpls-prefix-v4"
    return decode_nlri(
        {"ls-nlri-type": kind, "l3-routing-topology": 0, "protocol-id": protocol or level,
         "node-descriptors": desc(rid), "ip-reach-prefix": pfx},
        {"igp-flags": {"D": 0, "N": 0, "L": 0, "P": 0, "RSV": 0}, "prefix-metric": 10,
         "sr-prefix-attribute-flags": {"X": x, "R": 0, "N": 0, "RSV": 0}})


def topo(*items: LsItem, source: str = "t") -> Topology:
    t = Topology()
    t.apply_all(LsAnnounce(source, i) for i in items)
    return t


def test_p2p_isis_gives_the_facts_ospf_gives() -> None:
    a1_side, c1_side = ["198.18.74.1", "2001:db8:0:74::1"], ["198.18.74.2", "2001:db8:0:74::2"]
    t = topo(node(A1, "a1", "198.18.251.1"), node(C1, "c1", "198.18.251.3"),
             link(A1, C1, a1_side, c1_side, name="eth2"), link(C1, A1, c1_side, a1_side, name="eth1"),
             prefix(A1, "198.18.74.0/30"), prefix(A1, "2001:db8:0:74::/64"), prefix(A1, "198.18.71.0/24"),
             prefix(C1, "198.18.74.0/30"))
    assert t.routers() == (Router("a1", "198.18.251.1", 65010), Router("c1", "198.18.251.3", 65010))
    assert t.links() == (Link("a1", "c1", "198.18.74.1", "198.18.74.2", 10),
                         Link("c1", "a1", "198.18.74.2", "198.18.74.1", 10))
    (a1_eth2, c1_eth1) = t.interfaces()
    assert (a1_eth2.router, a1_eth2.name, a1_eth2.addresses) == ("a1", "eth2", ("198.18.74.1/30",
                                                                                "2001:db8:0:74::1/64"))
    assert c1_eth1.addresses == ("198.18.74.2/30", "2001:db8:0:74::2/128")  # c1 sent no IPv6 prefix here
    assert t.routers_serving("198.18.71.9") == ("a1",)
    assert IgpPrefix("a1", "198.18.71.0/24", 10, (), False) in t.igp_prefixes()


def test_pseudonode_router_id_is_the_system_id_and_lan_halves_pair() -> None:
    to_lan = link(A1, A1, ["198.18.74.1"], [], psn=3, name="eth2")
    assert to_lan.remote.router_id == A1 and to_lan.remote.pseudonode == "3"  # not "19818254000103"
    assert to_lan.remote.label() == f"{A1}/3"
    t = topo(node(A1, "a1", "198.18.251.1"), node(C1, "c1", "198.18.251.3"), to_lan,
             link(C1, A1, ["198.18.74.2"], [], psn=3, name="eth1"),
             link(A1, A1, [], [], local_psn=3), link(A1, C1, [], [], local_psn=3),  # the DIS's LAN -> router
             prefix(A1, "198.18.74.0/30"), prefix(C1, "198.18.74.0/30"))
    assert [r.name for r in t.routers()] == ["a1", "c1"]  # the pseudonode is no router
    assert t.links() == (Link("a1", "c1", "198.18.74.1", "198.18.74.2", 10),
                         Link("c1", "a1", "198.18.74.2", "198.18.74.1", 10))


def test_level_1_and_level_2_of_one_router_are_one_router_and_one_link() -> None:
    items = [node(A1, "a1", "198.18.251.1", level) for level in (1, 2)]
    items += [node(C1, "c1", "198.18.251.3", level) for level in (1, 2)]
    items += [link(A1, C1, ["198.18.74.1"], ["198.18.74.2"], level=level, name="eth2") for level in (1, 2)]
    items += [prefix(A1, "198.18.71.0/24", level=level) for level in (1, 2)]
    t = topo(*items)
    assert [r.name for r in t.routers()] == ["a1", "c1"]
    assert t.links() == (Link("a1", "c1", "198.18.74.1", "198.18.74.2", 10),)
    assert [p.prefix for p in t.igp_prefixes()] == ["198.18.71.0/24"]


def test_x_flag_makes_an_isis_prefix_external_not_an_ospf_one() -> None:
    ext = prefix(A1, "198.19.5.0/24", x=1)
    assert isinstance(ext, LsPrefix) and ext.prefix_flags == frozenset({"X"}) and ext.external
    internal = prefix(A1, "198.18.71.0/24", x=0)
    assert isinstance(internal, LsPrefix) and not internal.external
    # for OSPF, TLV 1170's bits mean other things (RFC 7684): only the route type says external
    ospf = prefix("198.18.251.1", "198.19.5.0/24", x=1, protocol=3)
    assert isinstance(ospf, LsPrefix) and not ospf.external
    t = topo(node(A1, "a1", "198.18.251.1"), ext, internal)
    assert {(p.prefix, p.external) for p in t.igp_prefixes()} == {("198.19.5.0/24", True),
                                                                  ("198.18.71.0/24", False)}


def test_ebgp_link_of_an_isis_border_router_is_named_after_it() -> None:
    epe = decode_nlri(
        {"ls-nlri-type": "bgpls-link", "l3-routing-topology": 0, "protocol-id": 7,
         "local-node-descriptors": [{"autonomous-system": 65010}, {"bgp-ls-identifier": "0"},
                                    {"generic-node-descriptor-516": "0xC612FB01"}],
         "remote-node-descriptors": [{"autonomous-system": 65101}, {"bgp-ls-identifier": "0"},
                                     {"generic-node-descriptor-516": "0xC613FF01"}],
         "interface-addresses": ["198.18.80.1"], "neighbor-addresses": ["198.18.80.2"]},
        {"link-name": "eth4"})
    t = topo(node(A1, "a1", "198.18.251.1"), epe, prefix(A1, "198.18.71.0/24"))
    assert [r.name for r in t.routers()] == ["a1"]  # the EPE descriptor 198.18.251.1 is a1's TE router ID
    assert t.border_links() and t.border_links()[0].local == "a1"
    assert t.external_peers() == (("198.19.255.1", 65101),)
