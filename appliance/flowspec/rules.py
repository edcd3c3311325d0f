"""Compiled FlowSpec rules: the typed output of the compiler, shared with the speakers and the enforcer.

A `FlowRule` is one FlowSpec route for one router: a match on the source-prefix component (RFC 8955
§4.2.2 type 2; RFC 8956 §3.1 for IPv6, offset 0), an action (RFC 8955 §7 extended communities) and the
interface groups it applies to on input (draft-ietf-idr-flowspec-interfaceset, type 0x07/0x47 sub-type
0x02, I bit set). `FlowMatch` is the BGP NLRI: two rules of one router with the same match are the same
route and replace each other, so the compiler never emits two rules with one match.

`order_key` sorts rules in RFC 8955 §5.1 order (first match wins). For source-only rules that order is:
a more specific prefix first; between unrelated prefixes the lower address first. Keyed on (last address,
-prefix length), which gives exactly that order for CIDR blocks (nested blocks end at or before their
container's end; disjoint blocks end in address order). Same prefix: the rule with the extra
packet-length component first (more components = higher precedence), then by its encoded value.

The discriminator (`packet_length_min`) exists because one router may need the same source prefix with
different actions on different interfaces (allowed on eth1, dropped on eth2). Such rules need distinct
NLRI; a packet-length component `>= N` with N below the smallest IP header (20 octets IPv4, 40 IPv6)
matches every packet, so it changes the NLRI but never the meaning. Rules with the same match but
different discriminators always carry disjoint interface groups, so their relative order is irrelevant.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
from dataclasses import dataclass

from appliance.flowspec.aggregate import WIDTH, parse_prefix
from appliance.model import Event, prefix_family

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Largest group ID of the interface-set community (14 bits).
MAX_GROUP_ID = 16383
#: `packet-length >= N` is always true while N is below the smallest IPv4 header.
MAX_DISCRIMINATORS = 20


class ActionKind(enum.StrEnum):
    """The FlowSpec action of a rule. ACCEPT and SAMPLE forward the packet; the others act on it."""

    ACCEPT = "accept"          # no traffic action community: stop evaluating, forward
    SAMPLE = "sample"          # traffic-action S bit (0x8007): forward and count/log (monitor mode)
    DISCARD = "discard"        # traffic-rate-bytes 0 (0x8006)
    RATE_LIMIT = "rate-limit"  # traffic-rate-bytes N (0x8006), bytes per second
    REDIRECT = "redirect"      # rt-redirect (0x8008 AS2, 0x8108 IPv4, 0x8208 AS4) to a VRF
    #: redirect to an IP next hop (draft-ietf-idr-flowspec-redirect-ip: extended community 0x0800, the
    #: address in the NEXT_HOP / MP_REACH next hop; ExaBGP `redirect-to-nexthop-ietf <ip>`): steering
    #: of a suspect source through an inspection function (flowspec/steering.py). Last, so the ranks of
    #: the older kinds, and the rules they order, stay as they were.
    REDIRECT_IP = "redirect-ip"


_KIND_RANK = {k: i for i, k in enumerate(ActionKind)}


@dataclass(frozen=True, slots=True)
class FlowAction:
    kind: ActionKind
    rate_bps: int = 0     # bytes per second, RATE_LIMIT only
    redirect: str = ""    # route target "ASN:NN" or "IPv4:NN", REDIRECT only
    redirect_ip: str = ""  # next-hop address (IPv4 or IPv6, the rule's family), REDIRECT_IP only

    @property
    def forwards(self) -> bool:
        """True when a packet matching this rule passes (accept, monitor)."""
        return self.kind in (ActionKind.ACCEPT, ActionKind.SAMPLE)

    def sort_key(self) -> tuple[int, int, str, str]:
        return (_KIND_RANK[self.kind], self.rate_bps, self.redirect, self.redirect_ip)

    def __str__(self) -> str:
        if self.kind is ActionKind.RATE_LIMIT:
            return f"rate-limit {self.rate_bps}"
        if self.kind is ActionKind.REDIRECT:
            return f"redirect {self.redirect}"
        if self.kind is ActionKind.REDIRECT_IP:
            return f"redirect-ip {self.redirect_ip}"
        return str(self.kind)


ACCEPT = FlowAction(ActionKind.ACCEPT)


@functools.lru_cache(maxsize=1 << 18)
def _source_key(source: str) -> tuple[int, int, int]:
    """(version, last address, -length) of a canonical prefix, from integers: the pusher sorts every
    held and wanted rule on each push, and an ipaddress network per rule made that most of a 10k push."""
    version, addr, plen = parse_prefix(source)
    return version, addr + (1 << (WIDTH[version] - plen)) - 1, -plen


@dataclass(frozen=True, slots=True)
class FlowMatch:
    """The NLRI: a source prefix (canonical CIDR) and an optional always-true `packet-length >= N`."""

    source: str
    packet_length_min: int | None = None

    @property
    def family(self) -> int:
        return prefix_family(self.source)

    def network(self) -> IPNetwork:
        return ipaddress.ip_network(self.source)

    def order_key(self) -> tuple[int, int, int, int, int]:
        """RFC 8955 §5.1 precedence (lower sorts first); see the module docstring."""
        version, last, neg_len = _source_key(self.source)
        disc = self.packet_length_min
        return (version, last, neg_len, 0 if disc is not None else 1, disc if disc is not None else 0)

    def __str__(self) -> str:
        if self.packet_length_min is None:
            return f"source {self.source}"
        return f"source {self.source} packet-length >={self.packet_length_min}"


@dataclass(frozen=True, slots=True)
class FlowRule:
    """One FlowSpec route for `router`: match, action, and the input interface groups it applies to;
    no groups = every interface (no interface-set community: the draft's default), as steering rules."""

    router: str
    match: FlowMatch
    action: FlowAction
    groups: tuple[int, ...]

    def key(self) -> tuple[str, FlowMatch]:
        """The BGP identity of the route at its router (NLRI)."""
        return (self.router, self.match)

    def order_key(self) -> tuple[int, int, int, int, int]:
        return self.match.order_key()

    def __str__(self) -> str:
        groups = ",".join(str(g) for g in self.groups)
        return f"{self.router}: {self.match} groups [{groups}] -> {self.action}"


@dataclass(frozen=True, slots=True)
class InterfaceGroup:
    """Group `group_id` of the interface-set community stands for `interface` of `router`."""

    router: str
    interface: str
    group_id: int


@dataclass(frozen=True, slots=True)
class RouterStats:
    """Rules emitted against the exact CIDR cover (one rule per merged CIDR block per interface,
    plus one default discard per allowlist family): what a naive compiler would emit."""

    emitted: int
    exact_cover: int


@dataclass(frozen=True, slots=True)
class RouterFlowSpec:
    """The compiled rules of one router in RFC 8955 order, with the group mapping its enforcer needs.

    `refused` is True when a guardrail refused the router's rule set: `rules` is then empty and the
    caller keeps whatever it pushed before (see compiler docstring).
    """

    router: str
    rules: tuple[FlowRule, ...]
    groups: tuple[InterfaceGroup, ...]
    stats: RouterStats
    refused: bool = False

    def group_of(self, interface: str) -> int | None:
        for g in self.groups:
            if g.interface == interface:
                return g.group_id
        return None


@dataclass(frozen=True, slots=True)
class FlowSpecPlan:
    """Compiler output: per router plans in router order, plus the events raised while compiling."""

    routers: tuple[RouterFlowSpec, ...]
    events: tuple[Event, ...] = ()

    def get(self, router: str) -> RouterFlowSpec | None:
        for r in self.routers:
            if r.router == router:
                return r
        return None

    def rules(self) -> tuple[FlowRule, ...]:
        return tuple(rule for r in self.routers for rule in r.rules)

    def totals(self) -> RouterStats:
        return RouterStats(sum(r.stats.emitted for r in self.routers),
                           sum(r.stats.exact_cover for r in self.routers))


def sort_rules(rules: list[FlowRule] | tuple[FlowRule, ...]) -> tuple[FlowRule, ...]:
    """Rules in RFC 8955 order per family (IPv4 first), router by router."""
    return tuple(sorted(rules, key=lambda r: (r.router, r.order_key())))
