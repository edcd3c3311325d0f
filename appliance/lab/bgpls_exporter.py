"""A minimal BGP-LS originator for FRR lab nodes: the node's OSPFv2 LSDB -> RFC 9552 NLRI over BGP.

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
- the AS border (optional, needs bgpd): one Link NLRI per established eBGP session, Protocol-ID 7 with
  BGP Router-ID descriptors (RFC 9086), interface/neighbour addresses and the interface name.

It polls FRR (`vtysh ... json`, about every second) and sends diffs: new or changed NLRI announced, gone
NLRI withdrawn. Pure parts (`export_lsdb`, the encoders) are separate from the I/O (`Exporter`).
Run: `python -m appliance.lab.bgpls_exporter --vtysh-ns r1 --peer 198.18.40.2 --local-as 65000 --name r1`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import os
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


def export_lsdb(view: LsdbView, asn: int, name: str) -> dict[bytes, Route]:
    """What this node originates, keyed by NLRI bytes (scope "self", see the module docstring)."""
    self_id = str(view.router.get("routerId", ""))
    if not self_id:
        return {}
    out: dict[bytes, Route] = {}
    ifnames = {**_zebra_ifnames(view.zebra_interfaces), **_ifnames(view.interfaces)}
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
    _add_epe(out, view.bgp_neighbors, ifnames)
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
    sent: dict[bytes, Route] = field(default_factory=dict)
    updates_sent: int = 0

    async def read_view(self) -> LsdbView:
        docs = []
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
            proc = await asyncio.create_subprocess_exec(
                *self.vtysh, "-c", cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
            )
            out, _ = await asyncio.wait_for(proc.communicate(), 20)
            try:
                doc = json.loads(out.decode() or "{}")
            except json.JSONDecodeError as exc:
                if "bgp" in cmd or "ospf6" in cmd or cmd == "show interface json":  # optional parts
                    doc = {}
                else:
                    raise ExportError(f"vtysh {cmd!r}: not JSON: {out[:200]!r}") from exc
            docs.append(doc if isinstance(doc, dict) else {})
        return LsdbView(*docs)

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
        while not reading.done():
            try:
                wanted = export_lsdb(await self.read_view(), self.local_as, self.name)
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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reading), self.poll_s)
        reading.result()

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
