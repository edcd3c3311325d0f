"""A FlowSpec route as the node received it, decoded from ExaBGP 5.0.x JSON (pure, no I/O).

Owns: the enforcer's typed view of one FlowSpec route (RFC 8955 IPv4, RFC 8956 IPv6): its match
components, its actions (RFC 8955 §7 extended communities) and its input interface groups
(draft-ietf-idr-flowspec-interfaceset), plus the RFC 8955 §5.1 precedence between two routes.

Why not appliance.flowspec.FlowRule: that is the compiler's output (source prefix + discriminator only);
the enforcer must take whatever FRR accepted, from any pusher, so it decodes every component ExaBGP prints.

Actions are decoded from the 64-bit extended-community `value` (exact), not from ExaBGP's display string:

    type 0x80 sub 0x06  traffic-rate-bytes   AS(2) | IEEE float bytes/s   (0 = discard)
    type 0x80 sub 0x0c  traffic-rate-packets AS(2) | IEEE float packets/s (0 = discard)
    type 0x80 sub 0x07  traffic-action       ... | bit S (0x02) sample, bit T (0x01) terminal
    type 0x80/81/82 sub 0x08  rt-redirect (AS2 / IPv4 / AS4 route target)
    type 0x08 sub 0x00  redirect-to-nexthop (draft-simpson-idr-flowspec-redirect): the IP is the NLRI's
                        next hop (ExaBGP prints it as the NLRI member "next-hop"); low bit = copy
    type 0x01 sub 0x0c  redirect-to-nexthop-ietf IPv4 (draft-ietf-idr-flowspec-redirect-ip): IP(4) | flags(2)
    IPv6 ext. community (attribute 25, "extended-community-ipv6", 20 bytes) type 0x00 sub 0x0c: the same
                        with IP(16); sub 0x0b: rt-redirect IPv6. With both drafts present the IETF one wins.
    type 0x80 sub 0x09  traffic-marking      ... | DSCP (6 bits)
    type 0x07/0x47 sub 0x02  interface-set   AS(4) | O(1) I(1) group(14)

T ("terminal" in ExaBGP's naming) set means evaluation CONTINUES with the next rule (RFC 8955 §7.3).
Must not: touch nftables or sockets; decide fail-open substitutions (nftplan.py does).
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.errors import PeerDataError

__all__ = [
    "ActionKind",
    "NumericMatch",
    "PrefixMatch",
    "Route",
    "RouteAction",
    "RouteError",
    "compare_routes",
    "decode_route",
    "decode_withdraw_key",
    "precedence_key",
    "route_key",
]

#: FlowSpec component type numbers (RFC 8955 §4.2.2, RFC 8956 §3) keyed by ExaBGP's JSON names.
COMPONENT_TYPES: dict[str, int] = {
    "destination-ipv4": 1, "destination-ipv6": 1, "source-ipv4": 2, "source-ipv6": 2,
    "protocol": 3, "next-header": 3, "port": 4, "destination-port": 5, "source-port": 6,
    "icmp-type": 7, "icmp-code": 8, "tcp-flags": 9, "packet-length": 10, "dscp": 11,
    "traffic-class": 11, "fragment": 12, "flow-label": 13,
}
#: Numeric components the enforcer can render, with their value ceiling.
NUMERIC_MAX: dict[int, int] = {3: 255, 5: 65535, 6: 65535, 7: 255, 8: 255, 10: 65535, 11: 63, 13: 0xFFFFF}

_PROTOCOLS = {"icmp": 1, "igmp": 2, "tcp": 6, "egp": 8, "udp": 17, "rsvp": 46, "gre": 47, "esp": 50,
              "ah": 51, "icmpv6": 58, "ipv6-icmp": 58, "ospf": 89, "pim": 103, "sctp": 132}
_ICMP_TYPES = {"echo-reply": 0, "unreachable": 3, "source-quench": 4, "redirect": 5, "echo-request": 8,
               "router-advertisement": 9, "router-solicit": 10, "time-exceeded": 11,
               "parameter-problem": 12, "timestamp": 13, "timestamp-reply": 14}


class RouteError(PeerDataError, ValueError):
    """A FlowSpec NLRI or attribute the enforcer cannot decode; `field` names the JSON member."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class ActionKind(enum.StrEnum):
    ACCEPT = "accept"            # no traffic action: forward, stop evaluating
    DISCARD = "discard"          # traffic-rate 0
    RATE_BYTES = "rate-bytes"    # traffic-rate-bytes N > 0
    RATE_PACKETS = "rate-packets"


@dataclass(frozen=True, slots=True)
class RouteAction:
    """The combined actions of one route. `redirect` (to a VRF) cannot be done on the node (noted,
    forwarded); `redirect_ip` is the redirect-to-IP target, "" when none (may be unusable: planmodel
    checks it); `fwmark` is set by planning, never by decoding (the node's mark for that target)."""

    kind: ActionKind = ActionKind.ACCEPT
    rate: float = 0.0
    dscp: int | None = None
    redirect: str = ""
    sample: bool = False
    terminal: bool = False       # T bit: continue with the next rule after this one
    redirect_ip: str = ""
    redirect_copy: bool = False  # copy-to-IP (duplicate, not redirect): not done on the node
    fwmark: int = 0

    @property
    def drops_all(self) -> bool:
        return self.kind is ActionKind.DISCARD

    def describe(self) -> str:
        parts = [self.kind.value if self.kind is not ActionKind.RATE_BYTES else f"rate-limit {self.rate:g}"]
        if self.kind is ActionKind.RATE_PACKETS:
            parts = [f"rate-limit {self.rate:g} packets"]
        if self.dscp is not None:
            parts.append(f"mark {self.dscp}")
        if self.redirect:
            parts.append(f"redirect {self.redirect}")
        if self.redirect_ip:
            parts.append(f"{'copy' if self.redirect_copy else 'redirect'}-to-ip {self.redirect_ip}")
        if self.sample:
            parts.append("sample")
        if self.terminal:
            parts.append("continue")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class PrefixMatch:
    """Type 1/2: a canonical CIDR prefix; `offset` is the RFC 8956 IPv6 bit offset (SAV uses 0)."""

    prefix: str
    offset: int = 0
    first: int = 0          # first and last address as integers, length: parsed once at decode time
    last: int = 0
    length: int = 0

    @staticmethod
    def of(prefix: str, offset: int = 0) -> PrefixMatch:
        return _prefix_match(ipaddress.ip_network(prefix), offset)

    def order_key(self) -> tuple[int, int, int]:
        """RFC 8955 §5.1 / RFC 8956 App. A: lower offset, then more specific, then lower address."""
        return (self.offset, self.last, -self.length)


@dataclass(frozen=True, slots=True)
class NumericMatch:
    """A numeric component as a union of closed ranges within [0, max], normalised and sorted."""

    ctype: int
    ranges: tuple[tuple[int, int], ...]
    text: str = ""

    def is_everything(self) -> bool:
        return self.ranges == ((0, NUMERIC_MAX[self.ctype]),)


@dataclass(frozen=True, slots=True)
class Route:
    """One FlowSpec route (NLRI + actions + input groups) received from `peer`."""

    key: str
    family: int
    nlri: str
    destination: PrefixMatch | None = None
    source: PrefixMatch | None = None
    numeric: tuple[NumericMatch, ...] = ()
    unsupported: tuple[str, ...] = ()      # components that cannot be rendered exactly
    action: RouteAction = RouteAction()
    groups: tuple[int, ...] = ()           # input interface groups; () = every interface
    output_only: bool = False              # interface-set with only the O bit: not an input rule
    peer: str = ""
    rid: str = ""                          # short stable identifier (counter names): sha1(key)[:12]

    def components(self) -> list[tuple[int, tuple[Any, ...]]]:
        """(type, comparable value) in type order, for RFC 8955 §5.1 comparison."""
        out: list[tuple[int, tuple[Any, ...]]] = []
        if self.destination:
            out.append((1, self.destination.order_key()))
        if self.source:
            out.append((2, self.source.order_key()))
        for num in self.numeric:
            out.append((num.ctype, (num.text,)))
        for name in self.unsupported:
            out.append((COMPONENT_TYPES.get(name.split(" ")[0], 255), (name,)))
        return sorted(out, key=lambda c: c[0])


def precedence_key(route: Route) -> tuple[Any, ...]:
    """A sort key equal in order to `compare_routes`: components in type order, then a sentinel type 256
    that sorts after every real type, so a route that runs out of components sorts after one that has
    more (RFC 8955 §5.1: the longer has precedence); ties by NLRI key."""
    return (*route.components(), (256,), route.key)


def compare_routes(a: Route, b: Route) -> int:
    """RFC 8955 §5.1: negative when `a` has precedence (matches first). Ties broken by key.

    Prefixes compare exactly; other components compare by their canonical text, which approximates
    the RFC's memcmp of the wire encoding (it only matters between routes that share every earlier
    component, which SAV rule sets do not produce except for the compiler's disjoint-group
    discriminators, whose relative order cannot change any packet's fate).
    """
    ca, cb = a.components(), b.components()
    for i in range(max(len(ca), len(cb))):
        if i >= len(ca):
            return 1
        if i >= len(cb):
            return -1
        (ta, va), (tb, vb) = ca[i], cb[i]
        if ta != tb:
            return -1 if ta < tb else 1
        if va != vb:
            return -1 if va < vb else 1
    return (a.key > b.key) - (a.key < b.key)


# --- decoding -----------------------------------------------------------------------------------------


def route_key(family: int, nlri: Mapping[str, Any]) -> str:
    """The NLRI identity: canonical JSON of ExaBGP's NLRI object without its display string and next hop
    (a withdrawal carries no next hop)."""
    body = {k: v for k, v in nlri.items() if k not in ("string", "next-hop")}
    return f"ipv{family} " + json.dumps(body, sort_keys=True, separators=(",", ":"))


def decode_withdraw_key(afi_safi: str, nlri: Mapping[str, Any]) -> str:
    return route_key(_family_of(afi_safi), nlri)


def _family_of(afi_safi: str) -> int:
    if afi_safi == "ipv4 flow":
        return 4
    if afi_safi == "ipv6 flow":
        return 6
    raise RouteError(f"family {afi_safi!r} is not ipv4/ipv6 flow", field="announce")


def decode_route(afi_safi: str, nlri: Mapping[str, Any], attribute: Mapping[str, Any],
                 peer: str = "") -> Route:
    """One announced NLRI (from `announce[afi_safi]["no-nexthop"]`) with its UPDATE's attributes."""
    family = _family_of(afi_safi)
    if not isinstance(nlri, Mapping):
        raise RouteError("NLRI is not an object", field=afi_safi)
    dest = src = None
    numeric: list[NumericMatch] = []
    unsupported: list[str] = []
    for name, raw in sorted(nlri.items()):
        if name in ("string", "next-hop"):
            continue
        values = raw if isinstance(raw, list) else [raw]
        ctype = COMPONENT_TYPES.get(name)
        if ctype is None:
            raise RouteError(f"unknown FlowSpec component {name!r}", field=name)
        if ctype in (1, 2):
            match = _prefix(values, family, name)
            if match.offset:
                unsupported.append(f"{name} offset {match.offset}")
            if ctype == 1:
                dest = match
            else:
                src = match
        elif ctype in NUMERIC_MAX:
            num = _numeric(ctype, values, name)
            if num is None:
                unsupported.append(f"{name} {values}")
            elif not num.is_everything():
                numeric.append(num)
        else:
            unsupported.append(f"{name} {' '.join(str(v) for v in values)}")
    action, groups, output_only = _decode_communities(attribute, str(nlri.get("next-hop", "")))
    key = route_key(family, nlri)
    return Route(
        key=key, rid=hashlib.sha1(key.encode()).hexdigest()[:12], family=family,
        nlri=str(nlri.get("string", "")),
        destination=dest, source=src, numeric=tuple(sorted(numeric, key=lambda n: n.ctype)),
        unsupported=tuple(unsupported), action=action, groups=groups, output_only=output_only, peer=peer,
    )


def _prefix(values: Sequence[Any], family: int, name: str) -> PrefixMatch:
    if len(values) != 1 or not isinstance(values[0], str):
        raise RouteError(f"{name}: expected one prefix, got {values!r}", field=name)
    text = values[0]
    offset = 0
    if family == 6 and text.count("/") == 2:
        text, off = text.rsplit("/", 1)
        offset = int(off)
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise RouteError(f"{name}: bad prefix {values[0]!r}", field=name) from exc
    if net.version != family:
        raise RouteError(f"{name}: IPv{net.version} prefix in an IPv{family} route", field=name)
    return _prefix_match(net, offset)


def _prefix_match(net: ipaddress.IPv4Network | ipaddress.IPv6Network, offset: int) -> PrefixMatch:
    return PrefixMatch(str(net), offset, int(net.network_address), int(net.broadcast_address), net.prefixlen)


def _numeric(ctype: int, values: Sequence[Any], name: str) -> NumericMatch | None:
    """OR of AND-terms like "=53", ">1000&<2000", "=udp" -> ranges; None if a value is unknown."""
    top = NUMERIC_MAX[ctype]
    union: list[tuple[int, int]] = []
    for value in values:
        ranges: list[tuple[int, int]] = [(0, top)]
        for term in str(value).split("&"):
            term_ranges = _term(term.strip(), ctype, top)
            if term_ranges is None:
                return None
            ranges = _intersect(ranges, term_ranges)
        union.extend(ranges)
    text = " ".join(str(v) for v in values)
    return NumericMatch(ctype, _normalise(union), text)


def _term(term: str, ctype: int, top: int) -> list[tuple[int, int]] | None:
    for op in (">=", "<=", "!=", "=", ">", "<"):
        if term.startswith(op):
            value = _value(term[len(op):], ctype)
            break
    else:
        op, value = "=", _value(term, ctype)
    if value is None:
        return None
    table = {
        "=": [(value, value)], ">": [(value + 1, top)], "<": [(0, value - 1)],
        ">=": [(value, top)], "<=": [(0, value)], "!=": [(0, value - 1), (value + 1, top)],
    }
    return [(lo, min(hi, top)) for lo, hi in table[op] if lo <= min(hi, top)]


def _value(text: str, ctype: int) -> int | None:
    text = text.strip().lower()
    if text.isdigit():
        return int(text)
    if ctype == 3:
        return _PROTOCOLS.get(text)
    if ctype == 7:
        return _ICMP_TYPES.get(text)
    return None


def _intersect(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for lo1, hi1 in a:
        for lo2, hi2 in b:
            lo, hi = max(lo1, lo2), min(hi1, hi2)
            if lo <= hi:
                out.append((lo, hi))
    return out


def _normalise(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def _community_values(attribute: Mapping[str, Any], name: str, bits: int) -> list[tuple[int, Any]]:
    """(value, item) of each member of the `name` list, checked to fit in `bits`."""
    raw = attribute.get(name, [])
    if not isinstance(raw, list):
        raise RouteError(f"{name} is not a list", field=name)
    out = []
    for item in raw:
        value = item.get("value") if isinstance(item, Mapping) else item
        if not isinstance(value, int) or not 0 <= value < 2**bits:
            raise RouteError(f"{name} value {value!r} is not a {bits}-bit integer", field=name)
        out.append((value, item))
    return out


def _redirect_ip(attribute: Mapping[str, Any], next_hop: str) -> tuple[str, bool]:
    """(redirect-to-IP target, copy bit) from either draft; the IETF community wins over Simpson's.
    Simpson's without a next hop gives "no-next-hop" (an address planning refuses, so it degrades)."""
    for value, _ in _community_values(attribute, "extended-community-ipv6", 160):
        data = value.to_bytes(20, "big")
        if data[0] & 0xBF == 0x00 and data[1] == 0x0C:
            return str(ipaddress.IPv6Address(data[2:18])), bool(data[19] & 0x01)
    simpson: tuple[str, bool] | None = None
    for value, _ in _community_values(attribute, "extended-community", 64):
        data = value.to_bytes(8, "big")
        if data[0] & 0xBF == 0x01 and data[1] == 0x0C:
            return str(ipaddress.IPv4Address(data[2:6])), bool(data[7] & 0x01)
        if data[0] & 0xBF == 0x08 and data[1] == 0x00:
            simpson = (next_hop or "no-next-hop", bool(data[7] & 0x01))
    return simpson or ("", False)


def _route_target(ctype: int, data: bytes) -> str:
    """The rt-redirect's route target as "ADMIN:NN" (AS2:NN4, IPv4:NN2, AS4:NN2), the form the node
    file's redirects use (groupmap.py)."""
    if ctype == 0x80:
        return f"{int.from_bytes(data[2:4], 'big')}:{int.from_bytes(data[4:8], 'big')}"
    admin = str(ipaddress.IPv4Address(data[2:6])) if ctype == 0x81 else str(int.from_bytes(data[2:6], "big"))
    return f"{admin}:{int.from_bytes(data[6:8], 'big')}"


def _decode_communities(attribute: Mapping[str, Any], next_hop: str = ""
                        ) -> tuple[RouteAction, tuple[int, ...], bool]:
    kind, rate, dscp, redirect, sample, terminal = ActionKind.ACCEPT, 0.0, None, "", False, False
    groups: set[int] = set()
    saw_output = False
    for value, _ in _community_values(attribute, "extended-community", 64):
        data = value.to_bytes(8, "big")
        ctype, sub = data[0], data[1]
        if ctype in (0x07, 0x47) and sub == 0x02:
            flags_group = int.from_bytes(data[6:8], "big")
            if flags_group & 0x4000:
                groups.add(flags_group & 0x3FFF)
            elif flags_group & 0x8000:
                saw_output = True
        elif ctype == 0x80 and sub in (0x06, 0x0C):
            (speed,) = struct.unpack(">f", data[4:8])
            speed = speed if speed == speed and speed > 0 else 0.0   # NaN/negative decode as 0 (§7)
            if speed == 0.0:
                kind, rate = ActionKind.DISCARD, 0.0
            elif kind is not ActionKind.DISCARD:
                kind = ActionKind.RATE_BYTES if sub == 0x06 else ActionKind.RATE_PACKETS
                rate = speed
        elif ctype == 0x80 and sub == 0x07:
            sample = bool(data[7] & 0x02)
            terminal = bool(data[7] & 0x01)
        elif ctype in (0x80, 0x81, 0x82) and sub == 0x08:
            redirect = _route_target(ctype, data)
        elif ctype == 0x80 and sub == 0x09:
            dscp = data[7] & 0x3F
    for value, item in _community_values(attribute, "extended-community-ipv6", 160):
        if value >> 144 in (0x000B, 0x400B):   # rt-redirect IPv6 (RFC 5701 form): a VRF, like 0x8008
            redirect = str(item.get("string", hex(value))) if isinstance(item, Mapping) else hex(value)
    redirect_ip, copy = _redirect_ip(attribute, next_hop)
    action = RouteAction(kind, rate, dscp, redirect, sample, terminal, redirect_ip, copy)
    return action, tuple(sorted(groups)), saw_output and not groups
