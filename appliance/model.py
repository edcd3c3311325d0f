"""The shared vocabulary of savd: small, frozen, typed records that cross module boundaries.

Every module speaks in these types: the speakers and the lab turn the outside world into them, the
engine and the FlowSpec compiler are pure functions over them, and the monitor reports them. Prefixes
are canonical CIDR strings ("198.18.0.0/24", "2001:db8::/32") so records are hashable, sortable and
JSON-serialisable without custom encoders; `canonical_prefix`, the one prefix parser of every input,
makes one from the accepted spelling (address/length) and refuses the rest.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

_PREFIX_SYNTAX = re.compile(r"[0-9A-Fa-f.:]+/(?:0|[1-9][0-9]{0,2})")
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def canonical_prefix(text: object) -> str:
    """The one prefix parser of every input (API, reports file and store, CLI, scenarios): the canonical
    CIDR form, or ValueError saying why.

    Stricter than `ipaddress.ip_network` on purpose: the input must be a string "address/length" with a
    decimal length, so scoped IPv6 (`fe80::%eth0/64`), netmask or hostmask forms (`/255.255.255.0`,
    `/0.0.0.255`) and bare addresses are refused rather than silently reinterpreted; host bits must be
    zero; IPv4-mapped IPv6 (`::ffff:198.18.0.0/120`) is refused, because a packet never carries it as a
    source and an IPv4 rule spelled that way would match nothing.
    """
    if not isinstance(text, str):
        raise ValueError(f"a prefix must be a string, got {type(text).__name__}")
    value = text.strip()
    if _PREFIX_SYNTAX.fullmatch(value) is None:
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise ValueError(f"{shown!r} is not address/length (e.g. 198.18.0.0/24, 2001:db8::/32)")
    net = ipaddress.ip_network(value, strict=True)
    if isinstance(net, ipaddress.IPv6Network) and net.subnet_of(_IPV4_MAPPED):
        raise ValueError(f"{value!r} is IPv4-mapped IPv6: write the IPv4 prefix")
    return str(net)


def prefix_family(prefix: str) -> int:
    """4 or 6."""
    return 6 if ":" in prefix else 4


def prefix_sort_key(prefix: str) -> tuple[int, int, int]:
    """Deterministic order: IPv4 before IPv6, then by address, then by length.

    inet_pton, not ipaddress: every recompute sorts every report by it (10k reports: 100 ms through
    ipaddress, 5 ms this way). ValueError for what is not an address[/length]."""
    addr, _, length = prefix.partition("/")
    v6 = ":" in addr
    try:
        value = int.from_bytes(socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, addr))
        bits = int(length) if length else (128 if v6 else 32)
    except OSError as exc:
        raise ValueError(f"{prefix!r} is not a prefix") from exc
    return (6 if v6 else 4, value, bits)


class Role(enum.StrEnum):
    """A router's place in the domain (draft-tong-savnet-sav-enhanced-by-controller section 4)."""

    BORDER = "border"
    ACCESS = "access"
    CORE = "core"


class Capability(enum.StrEnum):
    """Whether a router takes SAV rules natively (SAVNET) or only as ACL-class rules."""

    SAVNET = "savnet"
    LEGACY = "legacy"


class Relationship(enum.StrEnum):
    """Business relationship of a BGP neighbour, seen from the local AS."""

    CUSTOMER = "customer"
    PEER = "peer"
    PROVIDER = "provider"
    ROUTE_SERVER = "route-server"  # an IXP route server: a lateral peer that does not add its AS
    INTERNAL = "internal"


class ListKind(enum.StrEnum):
    """Allowlist: only the listed sources may enter. Blocklist: the listed sources may not."""

    ALLOW = "allow"
    BLOCK = "block"


class Mode(enum.StrEnum):
    """What happens to a packet that fails validation."""

    DROP = "drop"
    RATE_LIMIT = "rate-limit"
    REDIRECT = "redirect"
    MONITOR = "monitor"


class Delivery(enum.StrEnum):
    """How a rule reaches its router: FlowSpec for SAVNET routers, ACL-class for the others."""

    FLOWSPEC = "flowspec"
    ACL = "acl"


class Severity(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Action:
    """The mode of an interface with its parameters (rate in bytes/s, redirect target like 65001:100)."""

    mode: Mode = Mode.DROP
    rate: float = 0.0
    redirect: str = ""


# --- topology ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Router:
    """A router as the controller knows it; `name` is the stable key used everywhere (e.g. "r1")."""

    name: str
    router_id: str = ""
    asn: int = 0
    role: Role = Role.CORE
    capability: Capability = Capability.SAVNET


@dataclass(frozen=True, slots=True)
class Interface:
    """An interface of a router; `addresses` are interface addresses with prefix length."""

    router: str
    name: str
    addresses: tuple[str, ...] = ()
    external: bool = False


@dataclass(frozen=True, slots=True)
class Link:
    """A directed IGP adjacency from `local` to `remote` (one record per direction, as in BGP-LS)."""

    local: str
    remote: str
    local_address: str = ""
    remote_address: str = ""
    metric: int = 0


@dataclass(frozen=True, slots=True)
class IgpPrefix:
    """A prefix a router advertises into the IGP (BGP-LS prefix NLRI)."""

    router: str
    prefix: str
    metric: int = 0
    route_tags: tuple[int, ...] = ()
    #: redistributed into the IGP (OSPF AS-external or NSSA, IS-IS X flag; e.g. from BGP): not evidence the
    #: prefix is internal
    external: bool = False


# --- source-prefix reports ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrefixFlags:
    anycast: bool = False
    special: bool = False
    multihomed: bool = False


@dataclass(frozen=True, slots=True)
class PrefixReport:
    """A subnet's source prefix served by `router` on `interface` (the controller draft sections 3-5).

    `source` says where the report came from ("bgp-ls", "file", "api") for precedence and provenance.
    """

    router: str
    interface: str
    prefix: str
    subnet: str = ""
    flags: PrefixFlags = field(default_factory=PrefixFlags)
    source: str = "api"


@dataclass(frozen=True, slots=True)
class RouterRole:
    """A router's role and SAVNET capability as one source reports it; None = this source does not say.

    Sources: the reports file or `savd report role` (operator), the API, BGP-LS (a router with an eBGP link
    is a border router). appliance.sources.reports.merge.resolve picks per router by source precedence.
    """

    router: str
    role: Role | None = None
    capability: Capability | None = None
    source: str = "api"


# --- steering through inspection functions -------------------------------------------------------


class RedirectForm(enum.StrEnum):
    """How an IPv6 suspect's redirect is carried: redirect-to-IP (draft-ietf-idr-flowspec-redirect-ip, in
    the IPv6 extended communities attribute, which FRR 8.4.4 does not re-advertise) or rt-redirect to a
    route target that the router maps to the inspector locally (a VRF; the enforcer's node file)."""

    ROUTE_TARGET = "route-target"
    IP = "ip"


class SteeringFallback(enum.StrEnum):
    """What a suspect gets when no inspector can take it: pass as before (fail open) or be dropped.

    A suspect is suspicious, not proven spoofed (I2NSF NSF-triggered steering, seeds/001 section 5.1):
    it is steered through an inspection function; a proven-spoofed source keeps its SAV action, which
    steering never lifts (flowspec/steering.py)."""

    ACCEPT = "accept"
    DROP = "drop"


@dataclass(frozen=True, slots=True)
class Inspector:
    """An inspection function instance (firewall, DPI) reachable at `address` inside the router network;
    `load` is its last reported load, in the same unit as `capacity` (> 0)."""

    name: str
    address: str
    capacity: float
    load: float = 0.0

    @property
    def ratio(self) -> float:
        return self.load / self.capacity


@dataclass(frozen=True, slots=True)
class Suspect:
    """A source prefix that is suspicious rather than proven spoofed (flagged by an inspection function
    or the operator); `router` "" = on every router."""

    prefix: str
    reason: str = ""
    router: str = ""


@dataclass(frozen=True, slots=True)
class Steered:
    """The steering decision for one suspect prefix on one router: redirect to `inspector` at `address`
    (by rt-redirect to route target `target` "ASN:NN" when set, which the router maps to `address`), or,
    with no inspector available, `fallback` (accept: no rule; drop: discarded)."""

    router: str
    prefix: str
    reason: str = ""
    inspector: str = ""
    address: str = ""
    fallback: SteeringFallback | None = None
    target: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"router": self.router, "prefix": self.prefix, "reason": self.reason,
                "inspector": self.inspector, "address": self.address,
                "fallback": str(self.fallback) if self.fallback else None, "target": self.target}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Steered:
        fallback = d.get("fallback")
        return Steered(d["router"], d["prefix"], d.get("reason", ""), d.get("inspector", ""),
                       d.get("address", ""), SteeringFallback(fallback) if fallback else None,
                       d.get("target", ""))


# --- inter-domain inputs -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Neighbor:
    """An eBGP neighbour of a border router, reached over `interface`."""

    router: str
    interface: str
    asn: int
    relationship: Relationship
    address: str = ""
    #: our side of the eBGP link ([[engine.neighbor]] `local_address`): what a collaboration peer is told
    #: its traffic toward us arrives from (appliance/sources/collab.py `own_info`)
    local_address: str = ""


@dataclass(frozen=True, slots=True)
class BgpPath:
    """One path in the Adj-RIB-In of `router` from the neighbour on `interface`.

    `as_path` is the AS_SEQUENCE part in wire order: neighbour first, origin last. `as_set` holds the
    members of the path's AS_SET segments (deprecated by RFC 9774, still seen after aggregation), kept
    apart rather than flattened: a path with an AS_SET has no single origin (RFC 6811: NONE, so `origin` is
    0) and ASPA verification returns Invalid for it.
    """

    router: str
    interface: str
    prefix: str
    as_path: tuple[int, ...]
    path_id: int = 0
    as_set: tuple[int, ...] = ()

    @property
    def origin(self) -> int:
        if self.as_set:
            return 0
        return self.as_path[-1] if self.as_path else 0


@dataclass(frozen=True, slots=True)
class Vrp:
    """A validated ROA payload (RFC 6811)."""

    prefix: str
    max_length: int
    asn: int


@dataclass(frozen=True, slots=True)
class Aspa:
    """An ASPA: `customer` authorises `providers` (empty or (0,) = AS0, no providers)."""

    customer: int
    providers: tuple[int, ...]


# --- collaboration between ASes (issue 16) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CollabAllowance:
    """Under collaboration agreement `ca_id`, the peer AS `peer_asn` (savd instance `peer`) says its traffic
    sourced from `prefix` enters our AS on `router`'s `interface` (the eBGP link it named in
    `arrives_from`): a legitimate source there until `expires_at` (epoch seconds, the agreement's end),
    whatever the path-based rules infer (engine/collab.py)."""

    router: str
    interface: str
    prefix: str
    peer: str
    peer_asn: int
    ca_id: str
    expires_at: float


# --- results -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InterfaceRules:
    """The SAV rule of one interface: an allow or block list of source prefixes.

    `provenance` maps each prefix to the inputs that justify it (e.g. "report:subnet-a@r1:eth1",
    "path:65010>65020", "roa:198.18.0.0/16-24 AS65020", "algorithm:efp-b").
    """

    router: str
    interface: str
    kind: ListKind
    prefixes: tuple[str, ...]
    action: Action = field(default_factory=Action)
    delivery: Delivery = Delivery.FLOWSPEC
    algorithm: str = ""
    provenance: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def key(self) -> tuple[str, str]:
        return (self.router, self.interface)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; `SavRuleSet.from_dict({"rules": [...]})` reads a list of these back."""
        return _rules_to_dict(self)


@dataclass(frozen=True, slots=True)
class SavRuleSet:
    """The engine's output: every interface's rule, in (router, interface) order, and the steering of
    suspect sources (router, prefix order; the FlowSpec compiler merges it into each router's rules).
    Deterministic."""

    rules: tuple[InterfaceRules, ...] = ()
    steering: tuple[Steered, ...] = ()

    @staticmethod
    def of(rules: Iterable[InterfaceRules]) -> SavRuleSet:
        """Build a rule set with canonical order and sorted prefixes."""
        normal = []
        for r in rules:
            prefixes = tuple(sorted(set(r.prefixes), key=prefix_sort_key))
            prov = {p: tuple(sorted(set(r.provenance.get(p, ())))) for p in prefixes}
            normal.append(
                InterfaceRules(
                    r.router, r.interface, r.kind, prefixes, r.action, r.delivery, r.algorithm, prov
                )
            )
        normal.sort(key=lambda r: r.key())
        return SavRuleSet(tuple(normal))

    def for_router(self, router: str) -> tuple[InterfaceRules, ...]:
        return tuple(r for r in self.rules if r.router == router)

    def get(self, router: str, interface: str) -> InterfaceRules | None:
        for r in self.rules:
            if r.key() == (router, interface):
                return r
        return None

    def routers(self) -> tuple[str, ...]:
        return tuple(sorted({r.router for r in self.rules}))

    def to_dict(self) -> dict[str, Any]:
        """`steering` only when there is some, so rule sets without it keep their JSON."""
        out: dict[str, Any] = {"rules": [_rules_to_dict(r) for r in self.rules]}
        if self.steering:
            out["steering"] = [s.to_dict() for s in self.steering]
        return out

    def to_json(self) -> str:
        """Byte-identical for equal rule sets."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> SavRuleSet:
        out = []
        for r in data.get("rules", []):
            act = r.get("action", {})
            out.append(
                InterfaceRules(
                    router=r["router"],
                    interface=r["interface"],
                    kind=ListKind(r["kind"]),
                    prefixes=tuple(r["prefixes"]),
                    action=Action(Mode(act.get("mode", "drop")), float(act.get("rate", 0.0)),
                                  act.get("redirect", "")),
                    delivery=Delivery(r.get("delivery", "flowspec")),
                    algorithm=r.get("algorithm", ""),
                    provenance={k: tuple(v) for k, v in r.get("provenance", {}).items()},
                )
            )
        steering = tuple(Steered.from_dict(s) for s in data.get("steering", []))
        return SavRuleSet(SavRuleSet.of(out).rules, steering)

    def diff(self, newer: SavRuleSet) -> RuleSetDiff:
        """What changed from self to `newer`, per interface."""
        old = {r.key(): r for r in self.rules}
        new = {r.key(): r for r in newer.rules}
        added = tuple(new[k] for k in sorted(new.keys() - old.keys()))
        removed = tuple(old[k] for k in sorted(old.keys() - new.keys()))
        common = sorted(old.keys() & new.keys())
        changed = tuple(  # unchanged rules are mostly the same objects (the incremental engine keeps them)
            (old[k], new[k]) for k in common if old[k] is not new[k] and old[k] != new[k]
        )
        return RuleSetDiff(added, removed, changed)


@dataclass(frozen=True, slots=True)
class RuleSetDiff:
    added: tuple[InterfaceRules, ...] = ()
    removed: tuple[InterfaceRules, ...] = ()
    changed: tuple[tuple[InterfaceRules, InterfaceRules], ...] = ()

    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def _rules_to_dict(r: InterfaceRules) -> dict[str, Any]:
    """Built field by field: `asdict` deep-copies every provenance tuple (1.5 s per save of a
    border router's eight 10k-prefix blocklists, on the path from a report to the routers)."""
    return {
        "router": r.router,
        "interface": r.interface,
        "kind": str(r.kind),
        "prefixes": list(r.prefixes),
        "action": {"mode": str(r.action.mode), "rate": r.action.rate, "redirect": r.action.redirect},
        "delivery": str(r.delivery),
        "algorithm": r.algorithm,
        "provenance": {k: list(v) for k, v in sorted(r.provenance.items())},
    }


# --- events ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """An event or alarm with the common metadata of I2NSF NSF monitoring: time, source, type, severity."""

    time: float
    source: str
    type: str
    severity: Severity
    message: str
    fields: Mapping[str, str] = field(default_factory=dict)
    alarm: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "source": self.source,
            "type": self.type,
            "severity": str(self.severity),
            "message": self.message,
            "fields": dict(self.fields),
            "alarm": self.alarm,
        }
