"""The enforcer plan's values and the per-route analysis both planners share (pure).

Owns: PlanOptions, the Plan value and its parts (SetSpec, RouteStatus), Counters, and what one route
turns into on this node: its fail-open substitute (`effective`), its non-source match (`other_match`),
its verdict, and whether two routes in RFC 8955 order may share one interval set (`linked`).
Must not: render `nft` text (nftplan.py), plan a whole table (planner.py), run nft, read clocks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from appliance.enforcer.route import ActionKind, NumericMatch, Route, RouteAction

__all__ = ["ND_RULE", "Counters", "MeterSpec", "Plan", "PlanOptions", "RouteStatus", "SetSpec", "TopSource",
           "counter_key", "effective", "linked", "other_match", "settable", "shape", "verdict"]

PORT_PROTOCOLS = ((6, 6), (17, 17), (132, 132))   # tcp, udp, sctp: the protocols with ports
ND_RULE = ("icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, "
           "nd-redirect } accept")


@dataclass(frozen=True, slots=True)
class PlanOptions:
    table: str = "savd_enforcer"
    priority: int = -300
    set_min: int = 4
    shard_size: int = 1024
    exempt: tuple[str, ...] = ()   # interfaces never filtered (the enforcer's own BGP veth)
    allow_nd: bool = True          # IPv6 neighbour discovery passes before any route (see module doc)
    # top sources of catch-all discards (MeterSpec): elements per meter (0 = none), idle timeout, and the
    # prefix length sources are aggregated to, so random spoofed sources stay within `top_size` elements
    top_size: int = 1024
    top_timeout_s: int = 600
    top_v4_len: int = 24
    top_v6_len: int = 48
    # monitor (traffic-action sample): matched packets are also logged to this NFLOG group, at most
    # `sample_rate` per second per route and chain; None = counted only (no log rule)
    sample_group: int | None = None
    sample_rate: int = 10


@dataclass(frozen=True, slots=True)
class SetSpec:
    name: str
    family: int
    elements: tuple[str, ...]
    drops: bool
    owners: tuple[str, ...] = ()   # counter_key of the route behind each element, aligned with elements

    def owner_of(self) -> dict[str, str]:
        """Element prefix -> counter key; built on demand so a plan never holds a 100k-entry map."""
        return dict(zip(self.elements, self.owners, strict=True))

    def declaration(self) -> str:
        kind = "ipv4_addr" if self.family == 4 else "ipv6_addr"
        elems = ", ".join(self.elements)
        return f"{{ type {kind}; flags interval; counter; elements = {{ {elems} }}; }}"


@dataclass(frozen=True, slots=True)
class MeterSpec:
    """A dynamic set counting the sources that hit one catch-all discard (`owner`, the counter key of its
    route and interface), aggregated to `length` bits: the catch-all's own counter can only say 0.0.0.0/0.

    Bounded: at most `size` elements, each expiring `timeout_s` after its last packet. When it is full,
    new sources are not recorded (the `update` rule breaks) but still dropped: the meter has its own rule
    before the discard, so a full meter never lets a packet through.
    """

    name: str
    family: int
    owner: str
    length: int
    size: int
    timeout_s: int

    def declaration(self) -> str:
        kind = "ipv4_addr" if self.family == 4 else "ipv6_addr"
        return (f"{{ type {kind}; size {self.size}; flags dynamic,timeout; timeout {self.timeout_s}s; "
                "counter; }")

    def update(self) -> str:
        """The statement adding the packet's aggregated source (refreshing its timeout, counting it)."""
        bits = 32 if self.family == 4 else 128
        ones = ((1 << bits) - 1) ^ ((1 << (bits - self.length)) - 1)
        mask = ipaddress.IPv4Address(ones) if self.family == 4 else ipaddress.IPv6Address(ones)
        ip = "ip" if self.family == 4 else "ip6"
        return f"update @{self.name} {{ {ip} saddr & {mask} }}"


@dataclass(frozen=True, slots=True)
class TopSource:
    """One aggregated source of a meter: packets and bytes since it was last absent (see MeterSpec)."""

    prefix: str
    packets: int
    bytes: int

    def to_dict(self) -> dict[str, int | str]:
        return {"source": self.prefix, "packets": self.packets, "bytes": self.bytes}


@dataclass(frozen=True, slots=True)
class RouteStatus:
    """How one route was rendered: installed, degraded (widened/forwarded), skipped, unmapped, ..."""

    rid: str
    nlri: str
    source: str                  # source prefix, "*" when the route has none
    state: str
    action: str
    reason: str = ""
    interfaces: tuple[str, ...] = ()
    groups: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    table: str
    priority: int
    sets: tuple[SetSpec, ...] = ()
    exempt: tuple[str, ...] = ()
    allow_nd: bool = True
    chains: tuple[tuple[str, tuple[str, ...]], ...] = ()
    dispatch: tuple[tuple[str, str], ...] = ()
    default_chain: bool = False
    counters: tuple[str, ...] = ()
    counter_owner: Mapping[str, tuple[str, bool]] = field(default_factory=dict)
    statuses: tuple[RouteStatus, ...] = ()
    meters: tuple[MeterSpec, ...] = ()

    def meter_names(self) -> set[str]:
        return {m.name for m in self.meters}

    @property
    def empty(self) -> bool:
        return not any(rules for _, rules in self.chains)

    def set_names(self) -> set[str]:
        return {s.name for s in self.sets}

    def chain_names(self) -> set[str]:
        return {name for name, _ in self.chains}


@dataclass(frozen=True, slots=True)
class Counters:
    packets: int = 0
    bytes: int = 0
    dropped_packets: int = 0
    dropped_bytes: int = 0

    def __add__(self, other: Counters) -> Counters:
        return Counters(self.packets + other.packets, self.bytes + other.bytes,
                        self.dropped_packets + other.dropped_packets,
                        self.dropped_bytes + other.dropped_bytes)


# --- planning ---------------------------------------------------------------------------------------------


def effective(route: Route, marks: Mapping[str, int] | None = None) -> tuple[Route | None, str, str]:
    """The route as it will be rendered, its state and the reason (see module docstring).

    `marks`: redirect-to-IP target, or rt-redirect route target the node file maps to one -> the packet
    mark steering.py routes toward it; a target without one (unmapped, unreachable, or more targets than
    marks) is forwarded as usual and counted (fail open)."""
    if route.output_only:
        return None, "skipped", "interface-set applies on output only"
    action = route.action
    notes = []
    if route.unsupported:
        what = ", ".join(route.unsupported)
        if action.drops_all:
            return None, "skipped", f"unsupported component ({what}): discard not installed (fail open)"
        route = replace(route, unsupported=())
        action = RouteAction(ActionKind.ACCEPT, sample=action.sample, terminal=action.terminal)
        notes.append(f"unsupported component ({what}): forwarded (fail open)")
    if action.redirect and not action.drops_all and not action.redirect_ip:
        mark = (marks or {}).get(action.redirect, 0)
        if mark:   # the node file maps the route target to a reachable next hop: steered like redirect-to-IP
            action = replace(action, redirect="", fwmark=mark)
        else:
            notes.append(f"redirect to route target {action.redirect} has no reachable next hop on this "
                         "node: forwarded and counted")
            action = replace(action, kind=ActionKind.ACCEPT, redirect="")
    if action.redirect_ip and not action.drops_all:
        mark, why = _steer(action, route.family, marks or {})
        action = replace(action, redirect="", fwmark=mark)
        if why:
            notes.append(why)
    if notes:
        return replace(route, action=action), "degraded", "; ".join(notes)
    return (route if action == route.action else replace(route, action=action)), "installed", ""


def _steer(action: RouteAction, family: int, marks: Mapping[str, int]) -> tuple[int, str]:
    """(mark, "") for a usable redirect-to-IP target, else (0, why it is forwarded instead)."""
    target = action.redirect_ip
    if action.redirect_copy:
        return 0, f"copy-to-ip {target} is not done on this node: forwarded and counted"
    try:
        version = ipaddress.ip_address(target).version
    except ValueError:
        return 0, f"redirect-to-ip without a usable address ({target}): forwarded and counted"
    if version != family:
        return 0, f"redirect-to-ip {target} is not IPv{family}: forwarded and counted"
    mark = marks.get(target, 0)
    if not mark:
        return 0, f"redirect-to-ip {target} not reachable on this node: forwarded and counted"
    return mark, ""


def _ranges_text(ranges: Sequence[tuple[int, int]]) -> str:
    items = [str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges]
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _intersect(a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(max(x, y), min(p, q)) for x, p in a for y, q in b if max(x, y) <= min(p, q)]


def other_match(route: Route) -> str | None:
    """nft expressions for every component except the source prefix; None if it can never match."""
    ip = "ip" if route.family == 4 else "ip6"
    parts: list[str] = []
    if route.destination:
        parts.append(f"{ip} daddr {route.destination.prefix}")
    nums: dict[int, NumericMatch] = {n.ctype: n for n in route.numeric}
    proto = list(nums[3].ranges) if 3 in nums else None
    if 5 in nums or 6 in nums:
        proto = _intersect(proto if proto is not None else [(0, 255)], PORT_PROTOCOLS)
        if not proto:
            return None
    if proto is not None:
        parts.append(f"meta l4proto {_ranges_text(proto)}")
    icmp = "icmp" if route.family == 4 else "icmpv6"
    names = {5: "th dport", 6: "th sport", 7: f"{icmp} type", 8: f"{icmp} code", 10: "meta length",
             11: f"{ip} dscp", 13: "ip6 flowlabel"}
    for ctype, expr in names.items():
        if ctype in nums:
            if ctype == 13 and route.family == 4:
                return None
            parts.append(f"{expr} {_ranges_text(nums[ctype].ranges)}")
    return " ".join(parts)


def verdict(action: RouteAction, family: int) -> str:
    if action.drops_all:
        return "drop"
    mark = f"{'ip' if family == 4 else 'ip6'} dscp set {action.dscp} " if action.dscp is not None else ""
    steer = f"meta mark set {action.fwmark:#x} " if action.fwmark else ""
    return (mark + steer + ("" if action.terminal else "accept")).strip()


def settable(route: Route) -> bool:
    return route.source is not None and route.action.kind in (ActionKind.ACCEPT, ActionKind.DISCARD)


def shape(route: Route, other: str) -> tuple[int, str, str]:
    return (route.family, other, verdict(route.action, route.family))


def linked(a: Route, a_other: str, b: Route, b_other: str) -> bool:
    """Whether `b`, right after `a` in RFC 8955 order, may share `a`'s interval set.

    Both set-renderable with the same shape, and `b` starts after `a` ends. Along a chain of links the
    last addresses strictly increase, so every member is disjoint from all earlier ones: the pairwise
    test equals the greedy "starts after everything so far", and a run is a maximal chain of links,
    which is what lets the incremental planner update runs from a route's two neighbours alone.
    """
    if not (settable(a) and settable(b)) or shape(a, a_other) != shape(b, b_other):
        return False
    assert a.source is not None and b.source is not None
    return b.source.first > a.source.last


def counter_key(rid: str, iface: str) -> str:
    """Counters are kept per route and interface ("*" = every interface without a scoped chain)."""
    return f"{rid}@{iface}"


