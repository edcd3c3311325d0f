"""BGP-LS (RFC 9552) NLRI as ExaBGP 5.0.x prints them -> typed link-state records and events.

Owns: the identity of node, link and prefix NLRI (`NodeId`, `LsNode.key()` ...), the attributes savd
reads (names, TE router IDs, IGP/TE metrics, bandwidth, IGP flags, prefix metric, route tags, extended
route tags, prefix attribute flags, link names, unknown TLVs kept raw), whether a prefix is external
(OSPF route type, or the IS-IS X flag: IS-IS has no route types), and `decode_update`, which turns one
`UpdateReceived` into announce/withdraw events. JSON shapes (5.0 descriptors are lists of one-key
objects; 4.2's flat objects are accepted too), quirks §1.3 (repeated keys arrive as lists).

Errors are isolated per NLRI: a malformed NLRI is reported (with its JSON text) and skipped, the rest of
the UPDATE is still used. Names enter savd here, so they are checked here (appliance.names): a router
ID that is not a valid name makes its NLRI malformed; a bad node or link name is dropped (the node is
then named by its router ID, the interface by its address) and logged.
Must not: build the graph (graph.py beside this) or derive SAV meaning from
tags (appliance/sources/reports/).
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from appliance.names import interface_name_problem, router_name_problem
from appliance.speakers.events import UpdateReceived

log = logging.getLogger(__name__)

BGPLS_FAMILIES = ("bgp-ls bgp-ls", "bgp-ls bgp-ls-vpn")

# RFC 9552 §5.2 Protocol-ID (7 = BGP, RFC 9086: eBGP sessions reported as links at the AS border)
PROTOCOLS = {1: "isis-l1", 2: "isis-l2", 3: "ospfv2", 4: "direct", 5: "static", 6: "ospfv3", 7: "bgp"}
ISIS_PROTOCOLS = frozenset({1, 2})
#: OSPF route types (TLV 264, RFC 9552 §5.2.3.1) of redistributed routes: External 1/2, NSSA 1/2
OSPF_EXTERNAL_ROUTE_TYPES = frozenset({3, 4, 5, 6})

__all__ = [
    "LsAnnounce",
    "LsEvent",
    "LsItem",
    "LsLink",
    "LsNode",
    "LsPrefix",
    "LsWithdraw",
    "NodeId",
    "decode_nlri",
    "decode_update",
]


@dataclass(frozen=True, slots=True, order=True)
class NodeId:
    """Node Descriptors (RFC 9552 §5.2.1.4): what identifies a node across NLRI.

    `pseudonode` is the DR interface address (OSPF) or PSN (IS-IS) when the node is a LAN pseudonode.
    """

    protocol: int
    instance: int
    asn: int
    router_id: str
    area: str = ""
    bgp_ls_id: str = "0"
    pseudonode: str = ""

    @property
    def is_pseudonode(self) -> bool:
        return bool(self.pseudonode)

    def label(self) -> str:
        return self.router_id + (f"/{self.pseudonode}" if self.pseudonode else "")


@dataclass(frozen=True, slots=True)
class LsNode:
    node: NodeId
    name: str = ""
    te_router_ids: tuple[str, ...] = ()
    unknown: Mapping[str, Any] = field(default_factory=dict)

    def key(self) -> tuple[Any, ...]:
        return ("node", self.node)


@dataclass(frozen=True, slots=True)
class LsLink:
    """One direction of an adjacency (RFC 9552 §5.2.2)."""

    local: NodeId
    remote: NodeId
    local_addresses: tuple[str, ...] = ()
    remote_addresses: tuple[str, ...] = ()
    local_id: int = 0
    remote_id: int = 0
    mt_ids: tuple[int, ...] = ()
    igp_metric: int = 0
    te_metric: int = 0
    max_bandwidth_bps: float = 0.0
    name: str = ""
    remote_te_router_ids: tuple[str, ...] = ()
    unknown: Mapping[str, Any] = field(default_factory=dict)

    def key(self) -> tuple[Any, ...]:
        return (
            "link",
            self.local,
            self.remote,
            self.local_addresses,
            self.remote_addresses,
            self.local_id,
            self.remote_id,
            self.mt_ids,
        )


@dataclass(frozen=True, slots=True)
class LsPrefix:
    """A prefix advertised by `node` (RFC 9552 §5.2.3); `prefix` is canonical CIDR."""

    node: NodeId
    prefix: str
    ospf_route_type: int = 0
    mt_ids: tuple[int, ...] = ()
    metric: int = 0
    igp_flags: frozenset[str] = frozenset()
    route_tags: tuple[int, ...] = ()
    extended_tags: tuple[int, ...] = ()
    unknown: Mapping[str, Any] = field(default_factory=dict)
    #: Prefix Attribute Flags (TLV 1170, RFC 9085 §2.3.2); for IS-IS those of RFC 7794: X = external
    prefix_flags: frozenset[str] = frozenset()

    @property
    def external(self) -> bool:
        """Redistributed into the IGP: an OSPF external/NSSA route type, or IS-IS with the X flag."""
        if self.node.protocol in ISIS_PROTOCOLS:
            return "X" in self.prefix_flags
        return self.ospf_route_type in OSPF_EXTERNAL_ROUTE_TYPES

    def key(self) -> tuple[Any, ...]:
        return ("prefix", self.node, self.prefix, self.ospf_route_type, self.mt_ids)


LsItem = LsNode | LsLink | LsPrefix


@dataclass(frozen=True, slots=True)
class LsAnnounce:
    source: str
    item: LsItem


@dataclass(frozen=True, slots=True)
class LsWithdraw:
    """Withdraw of the NLRI whose identity equals `item.key()` (attributes are empty)."""

    source: str
    item: LsItem


LsEvent = LsAnnounce | LsWithdraw


# --- helpers ------------------------------------------------------------------------------------------


def _flat(descriptors: Any) -> dict[str, Any]:
    """5.0 lists of one-key objects, or 4.2 flat objects -> one dict."""
    if isinstance(descriptors, Mapping):
        return dict(descriptors)
    out: dict[str, Any] = {}
    if isinstance(descriptors, list):
        for d in descriptors:
            if not isinstance(d, Mapping):
                raise ValueError(f"descriptor {d!r} is not an object")
            out.update(d)
        return out
    raise ValueError(f"descriptors {descriptors!r} are neither a list nor an object")


def _one(value: Any) -> Any:
    """A repeated TLV arrives as a list of values: keep the first."""
    return value[0] if isinstance(value, list) and value else value


def _strs(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        out: list[str] = []
        for v in value:
            out.extend(_strs(v))
        return tuple(out)
    if isinstance(value, Mapping):
        return tuple(str(v) for v in value.values())
    return (str(value),)


def _ints(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        out: list[int] = []
        for v in value:
            out.extend(_ints(v))
        return tuple(out)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected integers, got {value!r}")
    return (int(value),)


def _int(value: Any, default: int = 0) -> int:
    value = _one(value)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)


def _node_id(desc: Any, protocol: int, instance: int) -> NodeId:
    d = _flat(desc)
    rid = d.get("router-id")
    if rid is None:
        rid = _hex_router_id(d.get("generic-node-descriptor-516") or d.get("bgp-router-id"))
    if rid is None:
        raise ValueError("node descriptor without router-id")
    raw_pseudo = d.get("designated-router-id") or d.get("psn") or ""
    pseudo = raw_pseudo if isinstance(raw_pseudo, str) else str(_int(raw_pseudo))  # a PSN is a number
    if protocol in ISIS_PROTOCOLS and d.get("psn") and isinstance(rid, str) and len(rid) == 14:
        # ExaBGP prints the 7-octet IS-IS pseudonode ID whole ("19818254000103"): the router ID is the
        # system ID (12 hex digits, as for the DIS itself), the PSN is kept apart
        rid = rid[:12]
    for what, value in (("router-id", rid), ("pseudonode", pseudo or "0")):
        problem = router_name_problem(value)
        if problem is not None:  # router IDs name routers (and files) when no node name is advertised
            raise ValueError(f"node descriptor {what}: {problem}")
    return NodeId(
        protocol=protocol,
        instance=instance,
        asn=_int(d.get("autonomous-system")),
        router_id=str(rid),
        area=str(d.get("ospf-area-id", "")),
        bgp_ls_id=str(d.get("bgp-ls-identifier", "0")),
        pseudonode=pseudo if pseudo not in ("", "0") else "",
    )


def _checked_name(value: Any, problem_of: Callable[[object], str | None], tlv: str) -> str:
    """An advertised node or link name, or "" (named by router ID or address instead) when it breaks the
    name rules of appliance.names: the NLRI stays useful, the name does not enter savd."""
    value = _one(value)
    if value is None or value == "":
        return ""
    problem = problem_of(value)
    if problem is not None:
        log.warning("event=bgpls-name-refused tlv=%s error=%r", tlv, problem)
        return ""
    return str(value)


def _hex_router_id(value: Any) -> str | None:
    """BGP Router-ID (TLV 516, RFC 9086) as ExaBGP 5.0 prints an unknown descriptor: "0xC612FF04"."""
    if not isinstance(value, str):
        return None
    raw = bytes.fromhex(value[2:] if value.lower().startswith("0x") else value)
    return str(ipaddress.IPv4Address(raw)) if len(raw) == 4 else raw.hex()


def _addresses(value: Any, inner: str) -> tuple[str, ...]:
    if isinstance(value, Mapping):  # 4.2: {"interface-address": "x"}
        value = value.get(inner)
    return tuple(str(ipaddress.ip_address(a)) for a in _strs(value))


def _link_ids(value: Any) -> tuple[int, int]:
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, Mapping) and "link-local-id" in item:
            return _int(item.get("link-local-id")), _int(item.get("link-remote-id"))
    return 0, 0


def _unknown(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if k.startswith("generic-lsid-")}


def _flags(value: Any) -> frozenset[str]:
    value = _one(value)
    if isinstance(value, Mapping):
        return frozenset(k for k, v in value.items() if v and k != "RSV")
    return frozenset()


# --- decoding -----------------------------------------------------------------------------------------


def decode_nlri(nlri: Mapping[str, Any], attrs: Mapping[str, Any]) -> LsItem:
    """One ExaBGP BGP-LS NLRI object (+ the UPDATE's "bgp-ls" attribute) -> a typed record.

    Raises ValueError/KeyError/TypeError on a malformed NLRI; `decode_update` isolates those.
    """
    kind = nlri.get("ls-nlri-type")
    protocol = _int(nlri.get("protocol-id"))
    instance = _int(nlri.get("l3-routing-topology"))
    if kind == "bgpls-node":
        return LsNode(
            node=_node_id(nlri["node-descriptors"], protocol, instance),
            name=_checked_name(attrs.get("node-name"), router_name_problem, "node-name"),
            te_router_ids=_strs(attrs.get("local-te-router-ids", attrs.get("local-router-ids"))),
            unknown=_unknown(attrs),
        )
    if kind == "bgpls-link":
        local_id, remote_id = _link_ids(nlri.get("link-identifiers", []))
        return LsLink(
            local=_node_id(nlri["local-node-descriptors"], protocol, instance),
            remote=_node_id(nlri["remote-node-descriptors"], protocol, instance),
            local_addresses=_addresses(
                nlri.get("interface-addresses", nlri.get("interface-address")), "interface-address"
            ),
            remote_addresses=_addresses(
                nlri.get("neighbor-addresses", nlri.get("neighbor-address")), "neighbor-address"
            ),
            local_id=local_id,
            remote_id=remote_id,
            mt_ids=tuple(sorted(_ints(nlri.get("multi-topology-ids")))),
            igp_metric=_int(attrs.get("igp-metric")),
            te_metric=_int(attrs.get("te-metric")),
            max_bandwidth_bps=float(_one(attrs.get("maximum-link-bandwidth", 0.0))) * 8,
            name=_checked_name(attrs.get("link-name"), interface_name_problem, "link-name"),
            remote_te_router_ids=_strs(attrs.get("remote-te-router-id", attrs.get("remote-router-ids"))),
            unknown=_unknown(attrs),
        )
    if kind in ("bgpls-prefix-v4", "bgpls-prefix-v6"):
        prefix = nlri.get("ip-reach-prefix") or nlri.get("ip-reachability-tlv")
        if not isinstance(prefix, str):
            raise ValueError("prefix NLRI without ip-reach-prefix")
        node = _node_id(nlri["node-descriptors"], protocol, instance)
        if node.is_pseudonode:  # RFC 9552 §5.2.3: prefixes are advertised by routers; a LAN has no name
            raise ValueError("prefix NLRI with pseudonode descriptors")
        return LsPrefix(
            node=node,
            prefix=str(ipaddress.ip_network(prefix, strict=False)),
            ospf_route_type=_int(nlri.get("ospf-route-type")),
            mt_ids=tuple(sorted(_ints(nlri.get("multi-topology-ids")))),
            metric=_int(attrs.get("prefix-metric")),
            igp_flags=_flags(attrs.get("igp-flags")),
            route_tags=_ints(attrs.get("igp-route-tags")),
            extended_tags=_ints(attrs.get("igp-extended-route-tags")),
            unknown=_unknown(attrs),
            prefix_flags=_flags(attrs.get("sr-prefix-attribute-flags")),
        )
    raise ValueError(f"unsupported ls-nlri-type {kind!r}")


def decode_update(update: UpdateReceived, source: str = "") -> tuple[list[LsEvent], list[str]]:
    """BGP-LS announces and withdraws in one UPDATE -> events; the second list names skipped NLRI.

    `source` defaults to the neighbour address: facts are kept per source so a session reset
    removes exactly what that peer said.
    """
    src = source or update.neighbor
    events: list[LsEvent] = []
    errors: list[str] = []
    raw_attrs = update.attribute.get("bgp-ls", {}) if isinstance(update.attribute, Mapping) else {}
    attrs: Mapping[str, Any] = raw_attrs if isinstance(raw_attrs, Mapping) else {}
    for family, by_nh in update.announce.items():
        if family not in BGPLS_FAMILIES:
            continue
        for nlris in by_nh.values():
            for item in _decode_all(nlris, attrs, errors, src):
                events.append(LsAnnounce(src, item))
    for family, nlris in update.withdraw.items():
        if family in BGPLS_FAMILIES:
            for item in _decode_all(nlris, {}, errors, src):
                events.append(LsWithdraw(src, item))
    return events, errors


def _decode_all(
    nlris: Sequence[Any], attrs: Mapping[str, Any], errors: list[str], src: str
) -> Iterable[LsItem]:
    for nlri in nlris:
        try:
            if not isinstance(nlri, Mapping):
                raise ValueError("NLRI is not an object")
            yield decode_nlri(nlri, attrs)
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            text = json.dumps(nlri, default=str)[:1000]
            log.warning("event=bgpls-nlri-skipped source=%s error=%r nlri=%s", src, str(exc), text)
            errors.append(f"{type(exc).__name__}: {exc}: {text}")
