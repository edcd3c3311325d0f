"""A minimal BGP-LS originator for FRR lab nodes: the node's OSPF or IS-IS LSDB -> RFC 9552 NLRI over BGP.

Why this exists (own code, not a library): nothing available here originates BGP-LS. FRR before 10.7
has no BGP-LS at all, GoBGP 3.10 only relays it (no gRPC/CLI origination), ExaBGP only decodes it (no
`announce bgp-ls` command, and its LINK.pack() raises "Not implemented").
So this module speaks just enough BGP (RFC 4271 OPEN/UPDATE/KEEPALIVE/NOTIFICATION, MP-BGP, 4-octet AS)
to originate BGP-LS towards the appliance's ExaBGP.

What it sends: OPEN with MP AFI 16388/SAFI 71, route refresh, 4-octet AS; one
UPDATE per NLRI with ORIGIN, AS_PATH (own AS on eBGP, empty on iBGP) + LOCAL_PREF on iBGP, MP_REACH
(next-hop length 4, own address) and the BGP-LS attribute (type 29); End-of-RIB after the first full
table; withdrawals in MP_UNREACH; keepalives every hold/3 s.

What it exports, per node (scope "self": the router-LSA this node originates, plus what it needs from
the LSDB to name the far ends), so that with one exporter per router the appliance sees every fact
once and no two exporters disagree about attributes:
- Node NLRI (OSPFv2, instance 0, AS, area, router ID) with Node Name (1026) and IPv4 router ID (1028);
- Link NLRI per adjacency: point-to-point links, and transit (broadcast) networks expanded to one link
  per other attached router (LAN pseudonodes collapsed; the network-LSA lists the routers and their
  router-LSAs give the neighbour address), with local/remote router IDs (1028/1030), IGP metric (1095,
  2 octets), max bandwidth (1089) and Link Name = the Linux interface name (1098);
- IPv4 Prefix NLRI for stub networks and the node's transit subnets (route type intra-area) and for
  the AS-external LSAs it originates (external-1/2, carrying their route tag in 1153), always with IGP
  Flags (1152, so prefixes survive a GoBGP relay) and Prefix Metric (1155);
- OSPFv3 (Protocol-ID 6, optional): a Node NLRI and IPv6 Prefix NLRI from the node's own
  intra-area-prefix and AS-external LSAs (no OSPFv3 links: they carry no addresses, and dual-stack
  labs share the OSPFv2 graph);
- IS-IS (Protocol-ID 1 = level 1, 2 = level 2, per level the router runs; `export_isis` says what
  exactly): the Node NLRI with the ISO system ID (6 octets) as IGP Router-ID, Link NLRI per two-way
  adjacency (point-to-point: to the neighbour, with IPv4/IPv6 interface and neighbour addresses; LAN:
  to the DIS's pseudonode, 7 octets, and from the pseudonode when this router is the DIS), Prefix NLRI
  of its own LSPs with the X flag (1170) on redistributed prefixes. FRR 8.4 has no usable IS-IS JSON
  (repeated keys, no prefixes), so these are parsed from `show isis ... detail` text: a line that does
  not parse is logged once (event=isis-line-skipped, the router, command, line) and skipped;
- the AS border (optional, needs bgpd): one Link NLRI per established eBGP session, Protocol-ID 7 with
  BGP Router-ID descriptors (RFC 9086), interface/neighbour addresses and the interface name.

`--igp auto` (default) exports whichever of OSPF and IS-IS answers on the node (both if both run: the
appliance merges them by node name); `--igp ospf|isis` reads one only (`isis` without isisd: an error
naming the router). It polls FRR (`vtysh`, about every second) and sends diffs: new or changed NLRI
announced, gone NLRI withdrawn. Pure parts (`export_lsdb`, `parse_isis`, `export_isis`, the encoders)
are separate from the I/O (`Exporter`). The file runs on its own (standard library only): the lab kit
binds it into each router. Run: `python -m appliance.lab.bgpls_exporter --vtysh-ns r1 --peer
198.18.40.2 --local-as 65000 --name r1 [--igp auto|ospf|isis]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import re
import shlex
import signal
import struct
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("savd.bgpls_exporter")

AFI_BGPLS, SAFI_BGPLS = 16388, 71
PROTO_OSPFV2, PROTO_OSPFV3, PROTO_BGP = 3, 6, 7
NLRI_NODE, NLRI_LINK, NLRI_PREFIX_V4, NLRI_PREFIX_V6 = 1, 2, 3, 4
ROUTE_INTRA, ROUTE_EXT1, ROUTE_EXT2 = 1, 3, 4
HOLD_TIME_S = 90
MARKER = b"\xff" * 16
MSG_OPEN, MSG_UPDATE, MSG_NOTIFICATION, MSG_KEEPALIVE = 1, 2, 3, 4


# --- the exported facts (pure) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    area: str
    router_id: str


@dataclass(frozen=True, slots=True)
class Route:
    """One NLRI to originate, with the BGP-LS attribute TLVs that go with it."""

    nlri: bytes
    attribute: bytes = b""


@dataclass(frozen=True, slots=True)
class LsdbView:
    """The three FRR JSON documents the exporter reads, plus the node's interface names by address."""

    router: Mapping[str, Any]
    network: Mapping[str, Any]
    external: Mapping[str, Any] = field(default_factory=dict)
    interfaces: Mapping[str, Any] = field(default_factory=dict)
    bgp_neighbors: Mapping[str, Any] = field(default_factory=dict)
    zebra_interfaces: Mapping[str, Any] = field(default_factory=dict)
    ospf6: Mapping[str, Any] = field(default_factory=dict)
    ospf6_intra: Mapping[str, Any] = field(default_factory=dict)
    ospf6_external: Mapping[str, Any] = field(default_factory=dict)
    isis: IsisTexts | None = None  # None: isisd not read (not running, or --igp ospf)


def _tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value


def _ip4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def node_descriptor(kind: int, asn: int, node: Node) -> bytes:
    """Local (256) or Remote (257) Node Descriptors: AS, BGP-LS ID 0, OSPF area, IGP router ID."""
    sub = (
        _tlv(512, struct.pack("!I", asn))
        + _tlv(513, struct.pack("!I", 0))
        + _tlv(514, _ip4(node.area))
        + _tlv(515, _ip4(node.router_id))
    )
    return _tlv(kind, sub)


def _nlri(kind: int, body: bytes, protocol: int = PROTO_OSPFV2) -> bytes:
    head = struct.pack("!B", protocol) + struct.pack("!Q", 0)
    return struct.pack("!HH", kind, len(head) + len(body)) + head + body


def node_nlri(asn: int, node: Node, protocol: int = PROTO_OSPFV2) -> bytes:
    return _nlri(NLRI_NODE, node_descriptor(256, asn, node), protocol)


def link_nlri(asn: int, local: Node, remote: Node, local_addr: str, remote_addr: str) -> bytes:
    body = node_descriptor(256, asn, local) + node_descriptor(257, asn, remote)
    body += _tlv(259, _ip4(local_addr)) + _tlv(260, _ip4(remote_addr))
    return _nlri(NLRI_LINK, body)


def bgp_node_descriptor(kind: int, asn: int, bgp_router_id: str) -> bytes:
    """RFC 9086 §4.1 node descriptors of a BGP (EPE) link: AS, BGP-LS ID 0, BGP Router-ID (516)."""
    sub = _tlv(512, struct.pack("!I", asn)) + _tlv(513, struct.pack("!I", 0)) + _tlv(516, _ip4(bgp_router_id))
    return _tlv(kind, sub)


def epe_link_nlri(
    local_as: int, local_id: str, peer_as: int, peer_id: str, local_addr: str, peer_addr: str
) -> bytes:
    """An eBGP session as a BGP-LS link (Protocol-ID 7, RFC 9086): how the AS border is reported."""
    body = bgp_node_descriptor(256, local_as, local_id) + bgp_node_descriptor(257, peer_as, peer_id)
    mine, theirs = ipaddress.ip_address(local_addr), ipaddress.ip_address(peer_addr)
    codes = (259, 260) if mine.version == 4 else (261, 262)
    body += _tlv(codes[0], mine.packed) + _tlv(codes[1], theirs.packed)
    return _nlri(NLRI_LINK, body, PROTO_BGP)


def prefix_nlri(asn: int, node: Node, prefix: str, route_type: int, protocol: int = PROTO_OSPFV2) -> bytes:
    net = ipaddress.ip_network(prefix)
    reach = struct.pack("!B", net.prefixlen) + net.network_address.packed[: (net.prefixlen + 7) // 8]
    body = node_descriptor(256, asn, node) + _tlv(264, struct.pack("!B", route_type)) + _tlv(265, reach)
    return _nlri(NLRI_PREFIX_V4 if net.version == 4 else NLRI_PREFIX_V6, body, protocol)


def _links_of(lsa: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    links = lsa.get("routerLinks", {})
    if isinstance(links, Mapping):
        return [links[k] for k in sorted(links, key=lambda k: int(k[4:]) if k[4:].isdigit() else 0)]
    return list(links) if isinstance(links, list) else []


def _areas(doc: Mapping[str, Any], key: str) -> Mapping[str, list[Mapping[str, Any]]]:
    areas = doc.get(key, {}).get("areas", {})
    return areas if isinstance(areas, Mapping) else {}


def _ifnames(interfaces: Mapping[str, Any]) -> dict[str, tuple[str, int]]:
    """Interface address -> (Linux name, bandwidth Mbit/s) from `show ip ospf interface json`."""
    out = {}
    for name, info in interfaces.get("interfaces", {}).items():
        if isinstance(info, Mapping) and info.get("ipAddress"):
            out[str(info["ipAddress"])] = (str(name).split(":")[0], int(info.get("bandwidthMbit", 0)))
    return out


def _zebra_ifnames(interfaces: Mapping[str, Any]) -> dict[str, tuple[str, int]]:
    """Every address (v4 and v6) -> (interface name, 0) from zebra's `show interface json`."""
    out = {}
    for name, info in interfaces.items():
        for a in info.get("ipAddresses", []) if isinstance(info, Mapping) else []:
            if isinstance(a, Mapping) and "address" in a:
                out[str(a["address"]).split("/")[0]] = (str(name), 0)
    return out


def export_lsdb(
    view: LsdbView, asn: int, name: str, problems: list[str] | None = None
) -> dict[bytes, Route]:
    """What this node originates, keyed by NLRI bytes (scope "self", see the module docstring): OSPF when
    its LSDB names this router, IS-IS when `view.isis` is there, and the eBGP sessions when either IGP
    exported something. What the IS-IS parser skipped is appended to `problems`."""
    ifnames = {**_zebra_ifnames(view.zebra_interfaces), **_ifnames(view.interfaces)}
    out = _export_ospf(view, asn, name, ifnames)
    if view.isis is not None:
        lsdb = parse_isis(view.isis)
        if problems is not None:
            problems.extend(lsdb.problems)
        out.update(export_isis(lsdb, asn, name))
    if out or view.router.get("routerId"):
        _add_epe(out, view.bgp_neighbors, ifnames)
    return out


def _export_ospf(
    view: LsdbView, asn: int, name: str, ifnames: Mapping[str, tuple[str, int]]
) -> dict[bytes, Route]:
    """OSPFv2 (and OSPFv3) part of `export_lsdb`; empty when the OSPF LSDB has no router ID."""
    self_id = str(view.router.get("routerId", ""))
    if not self_id:
        return {}
    out: dict[bytes, Route] = {}
    nets = {
        (area, str(n.get("linkStateId"))): n
        for area, ns in _areas(view.network, "networkLinkStates").items()
        for n in ns
    }
    for area, lsas in _areas(view.router, "routerLinkStates").items():
        by_router = {str(lsa.get("advertisingRouter")): lsa for lsa in lsas}
        mine = by_router.get(self_id)
        if mine is None:
            continue
        me = Node(area, self_id)
        node_attr = (
            _tlv(1026, name.encode()[:255]) + _tlv(1028, _ip4(self_id)) if name else _tlv(1028, _ip4(self_id))
        )
        out[node_nlri(asn, me)] = Route(node_nlri(asn, me), node_attr)
        for link in _links_of(mine):
            kind = str(link.get("linkType", ""))
            metric = int(link.get("tos0Metric", 0))
            if kind.startswith("Stub"):
                prefix = f"{link.get('networkAddress')}/{link.get('networkMask')}"
                _add_prefix(
                    out, asn, me, str(ipaddress.IPv4Network(prefix, strict=False)), ROUTE_INTRA, metric
                )
            elif "Transit" in kind:
                _add_transit(
                    out,
                    asn,
                    me,
                    link,
                    metric,
                    nets.get((area, str(link.get("designatedRouterAddress")))),
                    by_router,
                    ifnames,
                )
            elif "point-to-point" in kind or "Router" in kind:
                _add_p2p(out, asn, me, link, metric, by_router, ifnames)
    _add_ospf6(out, view, asn, name, self_id)
    for ext in view.external.get("asExternalLinkStates", []) or []:
        if str(ext.get("advertisingRouter")) != self_id:
            continue
        area = next(iter(_areas(view.router, "routerLinkStates")), "0.0.0.0")
        prefix = str(
            ipaddress.IPv4Network(f"{ext.get('linkStateId')}/{ext.get('networkMask', 32)}", strict=False)
        )
        rtype = ROUTE_EXT1 if str(ext.get("metricType", "E2")).startswith("E1") else ROUTE_EXT2
        tag = int(ext.get("externalRouteTag", ext.get("routeTag", 0)) or 0)
        _add_prefix(out, asn, Node(area, self_id), prefix, rtype, int(ext.get("metric", 0)), tag)
    return out


def _add_epe(
    out: dict[bytes, Route], neighbors: Mapping[str, Any], ifnames: Mapping[str, tuple[str, int]]
) -> None:
    """One BGP-LS link per established eBGP session (the AS border; `show bgp neighbors json`)."""
    for peer, info in sorted(neighbors.items()):
        if not isinstance(info, Mapping) or info.get("bgpState") != "Established":
            continue
        try:
            local_as, peer_as = int(info["localAs"]), int(info["remoteAs"])
            local_id, peer_id = str(info["localRouterId"]), str(info["remoteRouterId"])
            local_addr, peer_addr = str(info["hostLocal"]), str(info.get("hostForeign", peer))
            key = epe_link_nlri(local_as, local_id, peer_as, peer_id, local_addr, peer_addr)
        except (KeyError, ValueError, TypeError):
            continue
        if local_as == peer_as:
            continue
        ifname, bw = ifnames.get(local_addr, ("", 0))
        attr = _tlv(1028, _ip4(local_id)) + _tlv(1030, _ip4(peer_id))
        if bw:
            attr += _tlv(1089, struct.pack("!f", bw * 1e6 / 8))
        if ifname:
            attr += _tlv(1098, ifname.encode()[:255])
        out[key] = Route(key, attr)


def _add_prefix(
    out: dict[bytes, Route],
    asn: int,
    me: Node,
    prefix: str,
    rtype: int,
    metric: int,
    tag: int = 0,
    protocol: int = PROTO_OSPFV2,
) -> None:
    attr = _tlv(1152, b"\x00") + _tlv(1155, struct.pack("!I", metric))
    if tag:
        attr += _tlv(1153, struct.pack("!I", tag))
    key = prefix_nlri(asn, me, prefix, rtype, protocol)
    out[key] = Route(key, attr)


def _add_ospf6(out: dict[bytes, Route], view: LsdbView, asn: int, name: str, fallback_id: str) -> None:
    """OSPFv3 (Protocol-ID 6): the node and the IPv6 prefixes of its own intra-area-prefix and AS-external
    LSAs. Links are left to OSPFv2 (dual-stack labs share the graph; OSPFv3 links carry no addresses)."""
    self_id = str(view.ospf6.get("routerId", "")) or fallback_id
    if not self_id:
        return
    for db in view.ospf6_intra.get("areaScopedLinkStateDb", []) or []:
        area = str(db.get("areaId", "0.0.0.0"))
        mine = [lsa for lsa in db.get("lsa", []) if str(lsa.get("advertisingRouter")) == self_id]
        if not mine:
            continue
        me = Node(area, self_id)
        attr = _tlv(1026, name.encode()[:255]) if name else b""
        key = node_nlri(asn, me, PROTO_OSPFV3)
        out[key] = Route(key, attr + _tlv(1028, _ip4(self_id)))
        for lsa in mine:
            for p in lsa.get("prefix", []) or []:
                with contextlib.suppress(KeyError, ValueError, TypeError):
                    prefix = str(ipaddress.IPv6Network(p["prefix"], strict=False))
                    _add_prefix(out, asn, me, prefix, ROUTE_INTRA, int(p.get("metric", 0)), 0, PROTO_OSPFV3)
    area = next(
        (str(db.get("areaId")) for db in view.ospf6_intra.get("areaScopedLinkStateDb", []) or []), "0.0.0.0"
    )
    for db in view.ospf6_external.get("asScopedLinkStateDb", []) or []:
        for lsa in db.get("lsa", []) or []:
            if str(lsa.get("advertisingRouter")) != self_id:
                continue
            with contextlib.suppress(KeyError, ValueError, TypeError):
                prefix = str(ipaddress.IPv6Network(lsa["prefix"], strict=False))
                rtype = ROUTE_EXT2 if str(lsa.get("bits", "")).startswith("E") else ROUTE_EXT1
                tag = int(lsa.get("tag", lsa.get("routeTag", 0)) or 0) if lsa.get("tagPresent") else 0
                _add_prefix(
                    out, asn, Node(area, self_id), prefix, rtype, int(lsa.get("metric", 0)), tag, PROTO_OSPFV3
                )


def _link_attr(me: Node, remote: Node, metric: int, ifname: str, bw_mbit: int) -> bytes:
    attr = _tlv(1028, _ip4(me.router_id)) + _tlv(1030, _ip4(remote.router_id))
    if bw_mbit:
        attr += _tlv(1089, struct.pack("!f", bw_mbit * 1e6 / 8))
    attr += _tlv(1095, struct.pack("!H", min(metric, 0xFFFF)))
    if ifname:
        attr += _tlv(1098, ifname.encode()[:255])
    return attr


def _add_transit(
    out: dict[bytes, Route],
    asn: int,
    me: Node,
    link: Mapping[str, Any],
    metric: int,
    net: Mapping[str, Any] | None,
    by_router: Mapping[str, Mapping[str, Any]],
    ifnames: Mapping[str, tuple[str, int]],
) -> None:
    dr = str(link.get("designatedRouterAddress"))
    addr = str(link.get("routerInterfaceAddress"))
    if net is None:
        return
    length = int(net.get("networkMask", 32))
    _add_prefix(
        out, asn, me, str(ipaddress.IPv4Network(f"{addr}/{length}", strict=False)), ROUTE_INTRA, metric
    )
    attached = net.get("attchedRouters", net.get("attachedRouters", {}))
    ifname, bw = ifnames.get(addr, ("", 0))
    for rid in sorted(attached if isinstance(attached, Mapping) else []):
        if rid == me.router_id or rid not in by_router:
            continue
        theirs = [
            lk
            for lk in _links_of(by_router[rid])
            if "Transit" in str(lk.get("linkType", "")) and str(lk.get("designatedRouterAddress")) == dr
        ]
        if not theirs:
            continue  # their router-LSA does not (yet) list the network: no two-way adjacency
        remote = Node(me.area, rid)
        key = link_nlri(asn, me, remote, addr, str(theirs[0].get("routerInterfaceAddress")))
        out[key] = Route(key, _link_attr(me, remote, metric, ifname, bw))


def _add_p2p(
    out: dict[bytes, Route],
    asn: int,
    me: Node,
    link: Mapping[str, Any],
    metric: int,
    by_router: Mapping[str, Mapping[str, Any]],
    ifnames: Mapping[str, tuple[str, int]],
) -> None:
    rid = str(link.get("neighborRouterId", ""))
    addr = str(link.get("routerInterfaceAddress", ""))
    if rid not in by_router or not addr:
        return
    back = [lk for lk in _links_of(by_router[rid]) if str(lk.get("neighborRouterId", "")) == me.router_id]
    if not back:
        return
    remote = Node(me.area, rid)
    key = link_nlri(asn, me, remote, addr, str(back[0].get("routerInterfaceAddress", "0.0.0.0")))
    ifname, bw = ifnames.get(addr, ("", 0))
    out[key] = Route(key, _link_attr(me, remote, metric, ifname, bw))


# --- IS-IS (FRR 8.4 text output) ----------------------------------------------------------------------
#
# FRR 8.4's IS-IS JSON cannot be used: `show isis database [detail] json` repeats object keys (one LSP, one
# neighbour survive json.loads) and prints no IP reachability at all; `show isis neighbor json` has no
# addresses. So the exporter reads the text of four commands (`show isis hostname`, `... database detail`,
# `... neighbor detail`, `... interface detail`) and the JSON summary (system ID). A line it does not
# understand is skipped and reported (`IsisLsdb.problems`), never fatal: the rest of the LSDB still counts.

PROTO_ISIS_L1, PROTO_ISIS_L2 = 1, 2
ISIS_COMMANDS = (
    "show isis summary json",
    "show isis hostname",
    "show isis database detail",
    "show isis neighbor detail",
    "show isis interface detail",
)
_HEX4 = r"[0-9a-fA-F]{4}"
_SYSID = re.compile(rf"^{_HEX4}\.{_HEX4}\.{_HEX4}$")
_NODE_PN = re.compile(r"^(?P<node>\S+)\.(?P<pn>[0-9a-fA-F]{2})$")  # "1981.8254.0001.03", "a1.03"
_LSP_HEAD = re.compile(
    r"^(?P<node>\S+)\.(?P<pn>[0-9a-fA-F]{2})-(?P<frag>[0-9a-fA-F]{2})\s+(?P<own>\*)?\s*\d+\s+0x[0-9a-fA-F]+\b"
)
_REACH = re.compile(
    r"^(?P<kind>[A-Za-z0-9 -]*Reachability): (?P<what>\S+) \(Metric: (?P<metric>\d+)\)(?P<rest>.*)$"
)
_HOSTNAME_ROW = re.compile(
    rf"^\s*(?:\d+\s+)?(?P<own>\*\s+)?(?P<sysid>{_HEX4}\.{_HEX4}\.{_HEX4})\s+(?P<name>\S+)\s*$"
)
_MT_IDS = {"ipv4-unicast": 0, "standard": 0, "ipv4-mgmt": 1, "ipv6-unicast": 2, "ipv4-multicast": 3,
           "ipv6-multicast": 4, "ipv6-mgmt": 5, "ipv6-dstsrc": 3996}


@dataclass(frozen=True, slots=True)
class IsisTexts:
    """What the exporter reads from isisd (`ISIS_COMMANDS`), unparsed."""

    summary: Mapping[str, Any]
    hostname: str = ""
    database: str = ""
    neighbors: str = ""
    interfaces: str = ""


@dataclass(frozen=True, slots=True)
class IsisPrefix:
    prefix: str
    metric: int
    mt_id: int = 0
    down: bool = False      # leaked down from level 2 (RFC 5302 up/down bit): not originated here
    external: bool = False  # the IPv6 X bit as FRR prints it ("External")


@dataclass(slots=True)
class IsisLsp:
    """One LSP fragment; `node` is the system ID ("1981.8254.0001"), `pseudonode` 0 for a router."""

    level: int
    node: str
    pseudonode: int
    fragment: int
    own: bool
    hostname: str = ""
    te_router_id: str = ""
    areas: list[str] = field(default_factory=list)
    neighbors: list[tuple[str, int, int]] = field(default_factory=list)  # (system ID, pseudonode, metric)
    prefixes: list[IsisPrefix] = field(default_factory=list)


@dataclass(slots=True)
class IsisAdjacency:
    node: str                     # system ID
    interface: str
    levels: tuple[int, ...]
    state: str
    ipv4: list[str] = field(default_factory=list)
    ipv6: list[str] = field(default_factory=list)  # global addresses only (link-locals name no link)
    lan_id: tuple[str, int] | None = None          # (DIS system ID, pseudonode) on a broadcast circuit


@dataclass(slots=True)
class IsisCircuit:
    name: str
    kind: str = ""                # "p2p", "lan", "loopback"
    state: str = ""
    passive: bool = False
    metrics: dict[int, int] = field(default_factory=dict)  # level -> metric
    addresses: list[str] = field(default_factory=list)  # "198.18.74.1/30", "2001:db8::1/64" (no link-local)


@dataclass(slots=True)
class IsisLsdb:
    """The parsed IS-IS state of one router; `problems` names what was skipped (command, line, why)."""

    system_id: str = ""
    lsps: list[IsisLsp] = field(default_factory=list)
    adjacencies: list[IsisAdjacency] = field(default_factory=list)
    circuits: dict[str, IsisCircuit] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _dotted_sysid(text: str) -> str:
    """ "1981.8254.0001" (as FRR prints a system ID) -> itself in lower case; anything else -> ""."""
    return text.lower() if _SYSID.match(text) else ""


def parse_isis_hostnames(text: str) -> tuple[dict[str, str], str]:
    """`show isis hostname` -> ({hostname: system ID}, own system ID or "")."""
    names: dict[str, str] = {}
    own = ""
    for line in text.splitlines():
        m = _HOSTNAME_ROW.match(line)
        if not m:
            continue
        sysid = m.group("sysid").lower()
        names.setdefault(m.group("name"), sysid)
        if m.group("own"):
            own = sysid
    return names, own


def _resolve(node: str, hostnames: Mapping[str, str]) -> str:
    """A node as FRR prints it (system ID, or dynamic hostname when it knows one) -> system ID or ""."""
    return _dotted_sysid(node) or hostnames.get(node, "")


def _node_pn(text: str, hostnames: Mapping[str, str]) -> tuple[str, int] | None:
    m = _NODE_PN.match(text)
    if not m:
        return None
    node = _resolve(m.group("node"), hostnames)
    return (node, int(m.group("pn"), 16)) if node else None


def _mt_of(rest: str) -> int:
    for word in rest.split():
        if word in _MT_IDS:
            return _MT_IDS[word]
    return 0


def parse_isis_database(text: str, hostnames: Mapping[str, str], lsdb: IsisLsdb) -> None:
    """`show isis database detail` -> lsdb.lsps (every level, every fragment)."""
    cmd = "show isis database detail"
    level = 0
    area_seen = ""
    lsp: IsisLsp | None = None
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("Area ") and line.endswith(":"):
            if area_seen and area_seen != line:
                lsdb.problems.append(f"{cmd}: line {n}: second IS-IS instance {line!r} ignored (one only)")
                level = -1  # skip everything of the other instance
            area_seen = area_seen or line
            continue
        lv = re.match(r"^IS-IS Level-([12]) link-state database:$", line)
        if lv:
            level = int(lv.group(1)) if level != -1 else -1
            lsp = None
            continue
        if level <= 0 or line.startswith("LSP ID") or re.match(r"^\d+ LSPs$", line):
            continue
        if not raw.startswith(" "):
            head = _LSP_HEAD.match(line)
            lsp = None
            if head is None:
                lsdb.problems.append(f"{cmd}: line {n}: not an LSP header: {line[:120]!r}")
                continue
            node = _resolve(head.group("node"), hostnames)
            if not node:
                lsdb.problems.append(f"{cmd}: line {n}: LSP {head.group('node')!r}: unknown hostname "
                                     "(not in `show isis hostname`)")
                continue
            lsp = IsisLsp(level, node, int(head.group("pn"), 16), int(head.group("frag"), 16),
                          bool(head.group("own")))
            lsdb.lsps.append(lsp)
            continue
        if lsp is None:
            continue  # the body of a skipped LSP
        try:
            _parse_lsp_line(lsp, line, hostnames)
        except ValueError as exc:
            lsdb.problems.append(f"{cmd}: line {n}: {exc}: {line[:120]!r}")


def _parse_lsp_line(lsp: IsisLsp, line: str, hostnames: Mapping[str, str]) -> None:
    key, _, value = line.partition(": ")
    if key == "Hostname":
        lsp.hostname = value.strip()
    elif key == "TE Router ID":
        lsp.te_router_id = str(ipaddress.IPv4Address(value.strip()))
    elif key == "Area Address":
        lsp.areas.append(value.strip())
    m = _REACH.match(line)
    if m is None:
        return  # a TLV the exporter does not use (protocols, capabilities, sub-TLVs ...)
    what, metric, rest = m.group("what"), int(m.group("metric")), m.group("rest")
    if "/" in what:
        net = ipaddress.ip_network(what, strict=False)
        lsp.prefixes.append(IsisPrefix(str(net), metric, _mt_of(rest), " Down" in rest or "{D}" in rest,
                                       " External" in rest or "{X}" in rest))
        return
    target = _node_pn(what, hostnames)
    if target is None:
        raise ValueError(f"IS reachability to {what!r}: neither SYSTEM-ID.PN nor a known hostname")
    lsp.neighbors.append((target[0], target[1], metric))


def parse_isis_neighbors(text: str, hostnames: Mapping[str, str], lsdb: IsisLsdb) -> None:
    """`show isis neighbor detail` -> lsdb.adjacencies (one per neighbour and level)."""
    cmd = "show isis neighbor detail"
    adj: IsisAdjacency | None = None
    name = section = ""
    key_indent = 0
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or (line.startswith("Area ") and line.endswith(":")):
            continue
        indent = len(raw) - len(raw.lstrip())
        if indent <= 1:  # " c1": a neighbour's block starts
            name, adj, section = line.split()[0], None, ""
            continue
        if line.startswith("Interface:"):
            key_indent, section = indent, ""
            m = re.match(r"^Interface: (\S+), Level: ([123](?:-2)?), State: (\w+)", line)
            node = _resolve(name, hostnames)
            adj = None
            if m is None or not node:
                why = "unknown system ID/hostname" if m else "unreadable"
                lsdb.problems.append(f"{cmd}: line {n}: neighbour {name!r}: {why}: {line[:120]!r}")
                continue
            levels = (int(m.group(2)),) if m.group(2) in ("1", "2") else (1, 2)  # "3" (FRR 8.4), "1-2": both
            adj = IsisAdjacency(node, m.group(1), levels, m.group(3))
            lsdb.adjacencies.append(adj)
            continue
        if adj is None:
            continue
        if indent <= key_indent:  # a key line of the adjacency
            section = line if line.endswith(":") else ""
            if "LAN id:" in line:
                adj.lan_id = _node_pn(line.split("LAN id:")[1].strip().split(",")[0], hostnames)
                if adj.lan_id is None:
                    lsdb.problems.append(f"{cmd}: line {n}: neighbour {name!r}: bad LAN id: {line[:120]!r}")
            continue
        try:  # a value line of the current section
            if section == "IPv4 Address(es):":
                adj.ipv4.append(str(ipaddress.IPv4Address(line)))
            elif section == "Global IPv6 Address(es):":
                adj.ipv6.append(str(ipaddress.IPv6Address(line)))
        except ValueError:
            lsdb.problems.append(f"{cmd}: line {n}: neighbour {name!r}: bad address {line[:60]!r}")


def parse_isis_interfaces(text: str, lsdb: IsisLsdb) -> None:
    """`show isis interface detail` -> lsdb.circuits (kind, metric per level, addresses)."""
    cmd = "show isis interface detail"
    circuit: IsisCircuit | None = None
    level = 0
    section = ""
    section_indent = 0
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or (line.startswith("Area ") and line.endswith(":")):
            continue
        indent = len(raw) - len(raw.lstrip())
        m = re.match(r"^Interface: ([^,]+), State: (\w+)(.*)$", line)
        if m:
            circuit = IsisCircuit(m.group(1), state=m.group(2), passive="Passive" in m.group(3))
            lsdb.circuits[circuit.name] = circuit
            level, section = 0, ""
            continue
        if circuit is None:
            continue
        if section and indent > section_indent:
            if section in ("IP Prefix(es):", "IPv6 Prefixes:"):
                try:
                    circuit.addresses.append(str(ipaddress.ip_interface(line)))
                except ValueError:
                    where = f"{cmd}: line {n}: interface {circuit.name}"
                    lsdb.problems.append(f"{where}: bad address {line[:60]!r}")
            elif section.startswith("Level-") and line.startswith("Metric:"):
                with contextlib.suppress(ValueError, IndexError):
                    circuit.metrics[level] = int(line.split(",")[0].split(":")[1])
            continue
        section = ""
        if line.startswith("Type:"):
            circuit.kind = line.split(",")[0].split(":")[1].strip()
        elif line.endswith(":"):
            section, section_indent = line, indent
            lv = re.match(r"^Level-([12]) Information:$", line)
            level = int(lv.group(1)) if lv else 0


def parse_isis(texts: IsisTexts) -> IsisLsdb:
    """The four texts and the summary -> one IsisLsdb (pure; never raises on content)."""
    lsdb = IsisLsdb()
    hostnames, own = parse_isis_hostnames(texts.hostname)
    lsdb.system_id = _dotted_sysid(str(texts.summary.get("system-id", ""))) or own
    if not lsdb.system_id:
        lsdb.problems.append("show isis summary json: no system-id (isisd not running or no `net`)")
        return lsdb
    parse_isis_database(texts.database, hostnames, lsdb)
    parse_isis_neighbors(texts.neighbors, hostnames, lsdb)
    parse_isis_interfaces(texts.interfaces, lsdb)
    return lsdb


def isis_node_descriptor(kind: int, asn: int, system_id: str, pseudonode: int = 0) -> bytes:
    """Local (256) or Remote (257) Node Descriptors of IS-IS: AS, BGP-LS ID 0, IGP Router-ID = the ISO
    system ID (6 octets), or system ID + pseudonode ID (7 octets) for a LAN pseudonode (RFC 9552 §5.2.1.4)."""
    rid = bytes.fromhex(system_id.replace(".", "")) + (struct.pack("!B", pseudonode) if pseudonode else b"")
    sub = _tlv(512, struct.pack("!I", asn)) + _tlv(513, struct.pack("!I", 0)) + _tlv(515, rid)
    return _tlv(kind, sub)


def isis_link_nlri(
    asn: int, level: int, local: tuple[str, int], remote: tuple[str, int],
    local_addrs: Sequence[str], remote_addrs: Sequence[str],
) -> bytes:
    """Link NLRI of IS-IS: interface (259/261) and neighbour (260/262) addresses, IPv4 before IPv6."""
    body = isis_node_descriptor(256, asn, *local) + isis_node_descriptor(257, asn, *remote)
    for codes in ((259, 260), (261, 262)):
        version = 4 if codes[0] == 259 else 6
        for code, addrs in zip(codes, (local_addrs, remote_addrs), strict=True):
            for a in addrs:
                ip = ipaddress.ip_address(a)
                if ip.version == version:
                    body += _tlv(code, ip.packed)
                    break
    return _nlri(NLRI_LINK, body, level)


def isis_prefix_nlri(asn: int, level: int, system_id: str, prefix: str, mt_id: int = 0) -> bytes:
    net = ipaddress.ip_network(prefix)
    reach = struct.pack("!B", net.prefixlen) + net.network_address.packed[: (net.prefixlen + 7) // 8]
    body = isis_node_descriptor(256, asn, system_id)
    if mt_id:
        body += _tlv(263, struct.pack("!H", mt_id & 0x0FFF))
    body += _tlv(265, reach)
    return _nlri(NLRI_PREFIX_V4 if net.version == 4 else NLRI_PREFIX_V6, body, level)


def _isis_link_attr(te_local: str, te_remote: str, metric: int, ifname: str) -> bytes:
    attr = _tlv(1028, _ip4(te_local)) if te_local else b""
    if te_remote:
        attr += _tlv(1030, _ip4(te_remote))
    attr += _tlv(1095, struct.pack("!I", min(metric, 0xFFFFFF))[1:])  # wide metric: 3 octets
    if ifname:
        attr += _tlv(1098, ifname.encode()[:255])
    return attr


def _same_subnet(mine: Sequence[str], theirs: Sequence[str]) -> list[str]:
    """My circuit addresses (with length) facing `theirs` (bare addresses): one per address family."""
    out: list[str] = []
    for t in theirs:
        ip = ipaddress.ip_address(t)
        for m in mine:
            itf = ipaddress.ip_interface(m)
            if itf.version == ip.version and ip in itf.network and str(itf.ip) not in out:
                out.append(str(itf.ip))
                break
    return out


def _lists(by_node: Mapping[tuple[str, int], list[IsisLsp]], node: tuple[str, int],
           target: tuple[str, int]) -> bool:
    """`node`'s LSP fragments list `target` as an IS neighbour (the two-way check)."""
    return any((n, pn) == target for lsp in by_node.get(node, []) for n, pn, _ in lsp.neighbors)


def export_isis(lsdb: IsisLsdb, asn: int, name: str) -> dict[bytes, Route]:
    """What this router originates in IS-IS, per level it runs (Protocol-ID 1 = level 1, 2 = level 2):

    - its Node NLRI (Node Name, IS-IS Area ID 1027, TE Router ID as 1028);
    - per Up adjacency that is two-way in the LSDB (each end's LSP lists the other): on a point-to-point
      circuit a Link NLRI to the neighbour (its IPv4/IPv6 addresses from the adjacency, mine from the
      circuit in the same subnet); on a broadcast circuit one Link NLRI to the LAN pseudonode (7-octet
      descriptor, my addresses only), and, where this router is the DIS, the pseudonode's links back to
      every router its pseudonode LSP lists; IGP metric (3 octets), link name = interface;
    - Prefix NLRI for the prefixes of its own LSP fragments (MT-ID TLV for non-zero topologies), except
      those with the up/down bit (leaked from level 2) and, in level 2, those leaked up from another
      router's level-1 LSP; Prefix Metric, IGP Flags and Prefix Attribute Flags (1170) with the X bit for
      a prefix that is not the subnet of one of its IS-IS circuits (redistributed: FRR 8.4 sets no X bit
      on IPv4 and prints TLV 128 and 130 alike) or that FRR prints as External.
    """
    out: dict[bytes, Route] = {}
    me = lsdb.system_id
    if not me:
        return out
    own_nets = {ipaddress.ip_interface(a).network for c in lsdb.circuits.values() for a in c.addresses}
    for level in (1, 2):
        lsps = [lsp for lsp in lsdb.lsps if lsp.level == level]
        by_node: dict[tuple[str, int], list[IsisLsp]] = {}
        for lsp in lsps:
            by_node.setdefault((lsp.node, lsp.pseudonode), []).append(lsp)
        mine = by_node.get((me, 0), [])
        if not mine:
            continue
        te = next((lsp.te_router_id for lsp in mine if lsp.te_router_id), "")
        attr = _tlv(1026, name.encode()[:255]) if name else b""
        for area in dict.fromkeys(a for lsp in mine for a in lsp.areas):
            with contextlib.suppress(ValueError):
                attr += _tlv(1027, bytes.fromhex(area.replace(".", "")))
        if te:
            attr += _tlv(1028, _ip4(te))
        key = _nlri(NLRI_NODE, isis_node_descriptor(256, asn, me), level)
        out[key] = Route(key, attr)

        reach = {(n, pn): metric for lsp in mine for n, pn, metric in lsp.neighbors}
        lans_done: set[tuple[str, int]] = set()
        for adj in lsdb.adjacencies:
            circuit = lsdb.circuits.get(adj.interface)
            if adj.state != "Up" or level not in adj.levels or circuit is None:
                continue
            metric = circuit.metrics.get(level, 0)
            if circuit.kind == "lan":
                lan = adj.lan_id
                if lan is None or lan in lans_done or lan not in reach or not _lists(by_node, lan, (me, 0)):
                    continue
                lans_done.add(lan)
                addrs = [str(ipaddress.ip_interface(a).ip) for a in circuit.addresses]
                key = isis_link_nlri(asn, level, (me, 0), lan, addrs, [])
                out[key] = Route(key, _isis_link_attr(te, "", metric or reach[lan], adj.interface))
                continue
            peer = (adj.node, 0)
            if peer not in reach or not _lists(by_node, peer, (me, 0)):
                continue  # not (yet) two-way in the LSDB
            theirs = [*adj.ipv4, *adj.ipv6]
            key = isis_link_nlri(asn, level, (me, 0), peer, _same_subnet(circuit.addresses, theirs), theirs)
            te_remote = next((lsp.te_router_id for lsp in by_node.get(peer, []) if lsp.te_router_id), "")
            out[key] = Route(key, _isis_link_attr(te, te_remote, metric or reach[peer], adj.interface))
        for (node, pn), fragments in sorted(by_node.items()):
            if node != me or pn == 0:
                continue
            for n, npn, _ in sorted({x for lsp in fragments for x in lsp.neighbors}):  # I am this LAN's DIS
                if npn == 0 and _lists(by_node, (n, 0), (me, pn)):
                    key = isis_link_nlri(asn, level, (me, pn), (n, 0), [], [])
                    out[key] = Route(key, _tlv(1095, b"\x00\x00\x00"))
        leaked_up = (
            {p.prefix for lsp in lsdb.lsps if lsp.level == 1 and lsp.node != me for p in lsp.prefixes}
            if level == 2 else set()
        )
        for lsp in mine:
            for p in lsp.prefixes:
                net = ipaddress.ip_network(p.prefix)
                if p.down or (net not in own_nets and p.prefix in leaked_up):
                    continue
                external = p.external or net not in own_nets
                key = isis_prefix_nlri(asn, level, me, p.prefix, p.mt_id)
                attr = (_tlv(1152, b"\x00") + _tlv(1155, struct.pack("!I", p.metric))
                        + _tlv(1170, b"\x80" if external else b"\x00"))
                out[key] = Route(key, attr)
    return out


# --- BGP messages (pure) ------------------------------------------------------------------------------


def message(kind: int, body: bytes) -> bytes:
    return MARKER + struct.pack("!HB", 19 + len(body), kind) + body


def open_message(asn: int, router_id: str, hold_s: int = HOLD_TIME_S) -> bytes:
    caps = (
        _cap(1, struct.pack("!HBB", AFI_BGPLS, 0, SAFI_BGPLS))
        + _cap(2, b"")
        + _cap(65, struct.pack("!I", asn))
    )
    params = struct.pack("!BB", 2, len(caps)) + caps
    my_as = asn if asn < 65536 else 23456
    return message(
        MSG_OPEN,
        struct.pack("!BHH", 4, my_as, hold_s) + _ip4(router_id) + struct.pack("!B", len(params)) + params,
    )


def _cap(code: int, value: bytes) -> bytes:
    return struct.pack("!BB", code, len(value)) + value


def _attr(flags: int, code: int, value: bytes) -> bytes:
    if len(value) > 255:
        return struct.pack("!BBH", flags | 0x10, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


def update_announce(route: Route, *, asn: int, ibgp: bool, next_hop: str) -> bytes:
    attrs = _attr(0x40, 1, b"\x00")
    attrs += _attr(0x40, 2, b"" if ibgp else struct.pack("!BBI", 2, 1, asn))
    if ibgp:
        attrs += _attr(0x40, 5, struct.pack("!I", 100))
    attrs += _attr(
        0x80, 14, struct.pack("!HBB", AFI_BGPLS, SAFI_BGPLS, 4) + _ip4(next_hop) + b"\x00" + route.nlri
    )
    if route.attribute:
        attrs += _attr(0x80, 29, route.attribute)
    return message(MSG_UPDATE, struct.pack("!H", 0) + struct.pack("!H", len(attrs)) + attrs)


def update_withdraw(nlris: Sequence[bytes]) -> bytes:
    """MP_UNREACH with these NLRI; with none, the BGP-LS End-of-RIB marker."""
    attrs = _attr(0x80, 15, struct.pack("!HB", AFI_BGPLS, SAFI_BGPLS) + b"".join(nlris))
    return message(MSG_UPDATE, struct.pack("!H", 0) + struct.pack("!H", len(attrs)) + attrs)


def notification(code: int, subcode: int) -> bytes:
    return message(MSG_NOTIFICATION, struct.pack("!BB", code, subcode))


def plan(sent: Mapping[bytes, Route], wanted: Mapping[bytes, Route]) -> tuple[list[bytes], list[Route]]:
    """Diff: NLRI to withdraw, routes to (re-)announce (new or changed attributes). Deterministic order."""
    gone = sorted(k for k in sent if k not in wanted)
    new = [wanted[k] for k in sorted(wanted) if sent.get(k) != wanted[k]]
    return gone, new


# --- I/O ------------------------------------------------------------------------------------------------


def next_poll(delay: float, changed: bool, poll_s: float, max_poll_s: float) -> float:
    """The wait before the next LSDB read: `poll_s` after a change, else twice the last wait, at most
    `max_poll_s`. One read is ~10 vtysh processes (~0.05 s of CPU each): four routers read every second
    kept more than half of a 2-core lab busy, which every latency measured in the lab paid for."""
    return poll_s if changed else min(2 * delay, max(poll_s, max_poll_s))


class ExportError(Exception):
    """The peer refused the session or FRR could not be read."""


@dataclass
class Exporter:
    """One BGP-LS session to `peer`, fed by polling FRR through `vtysh` (argv prefix)."""

    vtysh: Sequence[str]
    peer: str
    local_as: int
    name: str
    peer_port: int = 179
    local_address: str = ""
    router_id: str = ""
    poll_s: float = 1.0
    max_poll_s: float = 4.0   # an unchanged LSDB is read at growing intervals up to this (next_poll)
    igp: str = "auto"  # "auto" (OSPF and IS-IS, whichever runs), "ospf" or "isis"
    sent: dict[bytes, Route] = field(default_factory=dict)
    updates_sent: int = 0
    problems_logged: set[str] = field(default_factory=set)

    async def _vtysh(self, cmd: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            *self.vtysh, "-c", cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
        return out.decode(errors="replace")

    async def read_isis(self) -> IsisTexts | None:
        """isisd's state (`ISIS_COMMANDS`), or None when isisd does not answer with a system ID."""
        try:
            summary = json.loads(await self._vtysh(ISIS_COMMANDS[0]) or "{}")
        except json.JSONDecodeError:
            summary = {}
        if not isinstance(summary, dict) or not summary.get("system-id"):
            if self.igp == "isis":
                raise ExportError(f"router {self.name or '?'}: --igp isis but isisd gives no system ID "
                                  f"({ISIS_COMMANDS[0]!r}): is isisd running with a `net`?")
            return None
        texts = [await self._vtysh(cmd) for cmd in ISIS_COMMANDS[1:]]
        return IsisTexts(summary, *texts)

    async def read_view(self) -> LsdbView:
        isis = await self.read_isis() if self.igp in ("auto", "isis") else None
        docs: list[dict[str, Any]] = []
        for cmd in (
            "show ip ospf database router json",
            "show ip ospf database network json",
            "show ip ospf database external json",
            "show ip ospf interface json",
            "show bgp neighbors json",
            "show interface json",
            "show ipv6 ospf6 json",
            "show ipv6 ospf6 database intra-prefix detail json",
            "show ipv6 ospf6 database as-external detail json",
        ):
            if self.igp == "isis" and "ospf" in cmd:
                docs.append({})
                continue
            out = await self._vtysh(cmd)
            try:
                doc = json.loads(out or "{}")
            except json.JSONDecodeError as exc:
                optional = isis is not None  # an IS-IS router need not run ospfd
                if optional or "bgp" in cmd or "ospf6" in cmd or cmd == "show interface json":
                    doc = {}
                else:
                    raise ExportError(f"vtysh {cmd!r}: not JSON: {out[:200]!r}") from exc
            docs.append(doc if isinstance(doc, dict) else {})
        router, network, external, interfaces, bgp, zebra, ospf6, intra, as_external = docs
        return LsdbView(router, network, external, interfaces, bgp, zebra, ospf6, intra, as_external, isis)

    async def run_forever(self) -> None:
        backoff = 1.0
        while True:
            try:
                await self.run_session()
                backoff = 1.0
            except (OSError, ExportError, asyncio.IncompleteReadError, TimeoutError) as exc:
                log.warning("event=bgpls-session-failed peer=%s error=%r", self.peer, str(exc))
            self.sent.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 4.0)

    async def run_session(self) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                self.peer, self.peer_port, local_addr=(self.local_address, 0) if self.local_address else None
            ),
            10,
        )
        try:
            local_ip = self.local_address or writer.get_extra_info("sockname")[0]
            rid = self.router_id or local_ip
            writer.write(open_message(self.local_as, rid))
            peer_as, hold = await self._expect_open(reader)
            writer.write(message(MSG_KEEPALIVE, b""))
            await writer.drain()
            await self._expect(reader, MSG_KEEPALIVE)
            log.info("event=bgpls-session-up peer=%s peer_as=%d", self.peer, peer_as)
            keepalive_s = max(1.0, min(hold, HOLD_TIME_S) / 3) if hold else 30.0
            reading = asyncio.create_task(self._read_loop(reader))
            try:
                await self._export_loop(
                    writer,
                    ibgp=peer_as == self.local_as,
                    next_hop=local_ip,
                    keepalive_s=keepalive_s,
                    reading=reading,
                )
            finally:
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reading
        finally:
            with contextlib.suppress(Exception):
                writer.write(notification(6, 2))  # Cease / Administrative Shutdown
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _export_loop(
        self,
        writer: asyncio.StreamWriter,
        *,
        ibgp: bool,
        next_hop: str,
        keepalive_s: float,
        reading: asyncio.Task[None],
    ) -> None:
        eor_sent = False
        loop = asyncio.get_running_loop()
        last_keepalive = loop.time()
        delay = self.poll_s
        while not reading.done():
            try:
                problems: list[str] = []
                wanted = export_lsdb(await self.read_view(), self.local_as, self.name, problems)
                self._log_problems(problems)
            except (ExportError, TimeoutError, OSError) as exc:
                log.warning("event=bgpls-lsdb-read-failed error=%r", str(exc))
                wanted = dict(self.sent)  # keep what was announced; never withdraw on a read error
            gone, new = plan(self.sent, wanted)
            if gone:
                writer.write(update_withdraw(gone))
            for route in new:
                writer.write(update_announce(route, asn=self.local_as, ibgp=ibgp, next_hop=next_hop))
            self.updates_sent += len(new) + (1 if gone else 0)
            self.sent = dict(wanted)
            if not eor_sent:
                writer.write(update_withdraw([]))
                eor_sent = True
            if gone or new:
                log.info(
                    "event=bgpls-diff withdrawn=%d announced=%d total=%d", len(gone), len(new), len(wanted)
                )
            if loop.time() - last_keepalive >= keepalive_s:
                writer.write(message(MSG_KEEPALIVE, b""))
                last_keepalive = loop.time()
            await writer.drain()
            delay = next_poll(delay, bool(gone or new), self.poll_s, self.max_poll_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reading), delay)
        reading.result()

    def _log_problems(self, problems: Sequence[str]) -> None:
        """Each skipped LSDB line once (the LSDB is read every second), not once per poll."""
        for problem in problems:
            if problem not in self.problems_logged:
                if len(self.problems_logged) > 1000:
                    self.problems_logged.clear()
                self.problems_logged.add(problem)
                log.warning("event=isis-line-skipped router=%s problem=%r", self.name or "?", problem)

    async def _read_msg(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = await reader.readexactly(19)
        if head[:16] != MARKER:
            raise ExportError("bad marker from peer")
        length, kind = struct.unpack("!HB", head[16:])
        if not 19 <= length <= 65535:
            raise ExportError(f"bad message length {length}")
        return kind, await reader.readexactly(length - 19)

    async def _expect_open(self, reader: asyncio.StreamReader) -> tuple[int, int]:
        kind, body = await asyncio.wait_for(self._read_msg(reader), 30)
        if kind == MSG_NOTIFICATION:
            raise ExportError(f"peer sent NOTIFICATION {body[:2].hex()}")
        if kind != MSG_OPEN or len(body) < 10:
            raise ExportError(f"expected OPEN, got type {kind}")
        _, peer_as, hold = struct.unpack("!BHH", body[:5])
        opt = body[10:]
        i = 0
        while i + 2 <= len(opt):  # look for the 4-octet AS capability
            ptype, plen = opt[i], opt[i + 1]
            param = opt[i + 2 : i + 2 + plen]
            j = 0
            while ptype == 2 and j + 2 <= len(param):
                code, clen = param[j], param[j + 1]
                if code == 65 and clen == 4:
                    peer_as = struct.unpack("!I", param[j + 2 : j + 6])[0]
                j += 2 + clen
            i += 2 + plen
        return peer_as, hold

    async def _expect(self, reader: asyncio.StreamReader, want: int) -> None:
        kind, body = await asyncio.wait_for(self._read_msg(reader), 30)
        if kind == MSG_NOTIFICATION:
            raise ExportError(f"peer sent NOTIFICATION {body[:2].hex()}")
        if kind != want:
            raise ExportError(f"expected message type {want}, got {kind}")

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        while True:
            kind, body = await self._read_msg(reader)
            if kind == MSG_NOTIFICATION:
                raise ExportError(f"peer sent NOTIFICATION {body[:2].hex()}")


def own_netns() -> str:
    """The name of the network namespace this process runs in ("" when unnamed, e.g. a container).

    The lab runner gives each node's FRR the pathspace named after its namespace, so `--vtysh-ns auto`
    finds the node's daemons from inside an exec line without knowing the lab's random prefix."""
    try:
        out = subprocess.run(
            ["ip", "netns", "identify", str(os.getpid())],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.strip().split("\n")[0] if out.strip() else ""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m appliance.lab.bgpls_exporter", description=__doc__.split("\n")[0]
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--vtysh-ns", help="FRR pathspace name: runs `vtysh -N NAME`; auto = this netns's name"
    )
    where.add_argument(
        "--vtysh", help="full vtysh command prefix, e.g. 'ip netns exec r1 vtysh --vty_socket D'"
    )
    p.add_argument("--peer", required=True, help="the appliance's BGP-LS address (ExaBGP)")
    p.add_argument("--peer-port", type=int, default=179)
    p.add_argument("--local-as", type=int, required=True)
    p.add_argument(
        "--local-address", default="", help="source address of the session (default: kernel's choice)"
    )
    p.add_argument("--router-id", default="", help="BGP identifier (default: the local address)")
    p.add_argument("--name", default="", help="node name to advertise (default: --vtysh-ns)")
    p.add_argument("--poll", type=float, default=1.0, help="LSDB poll interval in seconds")
    p.add_argument("--max-poll", type=float, default=4.0,
                   help="an LSDB that did not change is read at doubling intervals up to this many seconds "
                        "(default 4; set it to --poll for a fixed interval)")
    p.add_argument(
        "--igp",
        choices=("auto", "ospf", "isis"),
        default="auto",
        help="which IGP to export: auto = OSPF and IS-IS, whichever daemon answers (default)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    ns = own_netns() if args.vtysh_ns == "auto" else args.vtysh_ns
    vtysh = shlex.split(args.vtysh) if args.vtysh else (["vtysh", "-N", ns] if ns else ["vtysh"])
    exporter = Exporter(
        vtysh=vtysh,
        peer=args.peer,
        local_as=args.local_as,
        name=args.name or ns or "",
        peer_port=args.peer_port,
        local_address=args.local_address,
        router_id=args.router_id,
        poll_s=args.poll,
        max_poll_s=args.max_poll,
        igp=args.igp,
    )

    async def run() -> None:
        task = asyncio.create_task(exporter.run_forever())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
