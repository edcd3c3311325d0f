"""The `savd.*` node labels of a containerlab topology, read into a frozen `KitPlan`.

Label set (containerlab `labels:` on a node, its group, kind or `topology.defaults`; merged as usual):

- `savd.role` (every node savd needs): `access`, `core` or `border` for the FRR routers savd rules;
  `appliance` for exactly one node (savd's speakers run there); `host` and `external` document, ignored.
- `savd.asn` (routers, external nodes): the AS; default for routers: `router bgp N` in their frr.conf.
- `savd.subnets` (hosts): the host's subnet prefixes, comma separated; each is attached where a linked
  savd router's interface address (from its frr.conf) lies inside it.
- `savd.subnet-id` (hosts): the subnet's ID in the reports file (default: the host's name).
- `savd.neighbors` (border routers): `IFACE=ASN:RELATIONSHIP[,...]`, e.g. `eth2=65100:provider`;
  required when the router has eBGP neighbours.
- `savd.loopback` (routers): `V4[,V6]`, the iBGP and BGP-LS source; default: `interface lo`'s addresses.
- `savd.address` (appliance): `V4[,V6]`; default: what its exec lines `ip [-6] addr add`.
- `savd.prefixes` (any node): prefixes the node's AS originates (ROAs in rpki.json).
- `savd.role: inspector` (hosts): an inspection function suspicious sources are steered through
  (`[[steering.inspector]]`); its address is `savd.address` or what its exec lines add, `savd.capacity`
  (default 100) the unit of its load reports. It must forward what it inspects back into the network.

Owns reading and checking; every refusal is a `LabelError` naming the node and the label. It must not
write files (render.py does) or touch the network.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance.lab.errors import TopologyError
from appliance.lab.kit.frrconf import FrrConf, read_frr_conf
from appliance.lab.topology import FRR_CONF_PATH, FRR_DAEMONS_PATH, Node, Topology
from appliance.model import Relationship, Role

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ROLE, ASN, SUBNETS, SUBNET_ID, NEIGHBORS, LOOPBACK, ADDRESS, PREFIXES, CAPACITY = (
    "savd.role", "savd.asn", "savd.subnets", "savd.subnet-id", "savd.neighbors", "savd.loopback",
    "savd.address", "savd.prefixes", "savd.capacity")
KNOWN_LABELS = frozenset({ROLE, ASN, SUBNETS, SUBNET_ID, NEIGHBORS, LOOPBACK, ADDRESS, PREFIXES, CAPACITY})
ROUTER_ROLES = frozenset(r.value for r in Role)
ROLES = ROUTER_ROLES | {"appliance", "host", "external", "inspector"}


class LabelError(TopologyError):
    """A `savd.*` label is missing, malformed or inconsistent; `label` names it, `node` the node."""

    def __init__(self, message: str, *, path: Path, node: str, label: str) -> None:
        super().__init__(f"node {node}: {label}: {message}", path=path,
                         field=f"topology.nodes.{node}.labels.{label}", node=node)
        self.label = label


@dataclass(frozen=True, slots=True)
class ExternalNeighbor:
    """A border interface toward another AS ([[engine.neighbor]])."""

    interface: str
    asn: int
    relationship: Relationship
    address: str


@dataclass(frozen=True, slots=True)
class KitRouter:
    """A router savd computes rules for: it peers iBGP with the appliance and runs an enforcer."""

    name: str
    role: Role
    asn: int
    loopback4: ipaddress.IPv4Address
    loopback6: ipaddress.IPv6Address | None
    frr: FrrConf
    daemons: Path | None                 # the node's bound daemons file, if any
    neighbors: tuple[ExternalNeighbor, ...] = ()


@dataclass(frozen=True, slots=True)
class Attachment:
    """Prefixes of a subnet entering the domain at one router interface."""

    router: str
    interface: str
    prefixes: tuple[IPNetwork, ...]


@dataclass(frozen=True, slots=True)
class Subnet:
    id: str
    host: str
    attachments: tuple[Attachment, ...]

    @property
    def is_multihomed(self) -> bool:
        return len({a.router for a in self.attachments}) > 1


@dataclass(frozen=True, slots=True)
class KitInspector:
    """An inspection function host (`savd.role: inspector`): `[[steering.inspector]]` in savd.toml."""

    name: str
    address4: ipaddress.IPv4Address
    address6: ipaddress.IPv6Address | None
    capacity: float


@dataclass(frozen=True, slots=True)
class KitPlan:
    """Everything `savd lab init` needs, checked."""

    topology: Topology
    asn: int
    appliance: str
    appliance4: ipaddress.IPv4Address
    appliance6: ipaddress.IPv6Address | None
    routers: tuple[KitRouter, ...]
    subnets: tuple[Subnet, ...]
    vrps: tuple[tuple[IPNetwork, int], ...]  # (prefix, origin AS)
    inspectors: tuple[KitInspector, ...] = ()

    def router(self, name: str) -> KitRouter:
        return next(r for r in self.routers if r.name == name)


def read_plan(topo: Topology) -> KitPlan:
    """Check the labels of `topo` (and its routers' frr.conf files) and return the plan."""
    for node in topo.nodes:
        for key, _ in node.labels:
            if key.startswith("savd.") and key not in KNOWN_LABELS:
                _fail(topo, node, key, f"unknown savd label (known: {', '.join(sorted(KNOWN_LABELS))})")
        role = node.label(ROLE)
        if role is not None and role not in ROLES:
            _fail(topo, node, ROLE, f"{role!r} is not one of {', '.join(sorted(ROLES))}")
    appliances = [n for n in topo.nodes if n.label(ROLE) == "appliance"]
    if len(appliances) != 1:
        names = ", ".join(n.name for n in appliances) or "none"
        node = appliances[1] if appliances else topo.nodes[0]
        _fail(topo, node, ROLE, f"exactly one node needs savd.role: appliance (found: {names})")
    app = appliances[0]
    routers = tuple(_router(topo, n) for n in topo.nodes if n.label(ROLE) in ROUTER_ROLES)
    if not routers:
        _fail(topo, app, ROLE, "no node has savd.role access, core or border: savd has no router to rule")
    asns = {r.asn for r in routers}
    if len(asns) != 1:
        odd = next(r for r in routers if r.asn != routers[0].asn)
        _fail(topo, topo.node(odd.name), ASN, f"AS {odd.asn} differs from {routers[0].name}'s AS "
              f"{routers[0].asn}: every savd router is in the appliance's AS (iBGP)")
    asn = routers[0].asn
    label = app.label(ADDRESS)
    app4, app6 = _address_pair(topo, app, ADDRESS, [label] if label else _exec_addresses(app))
    subnets = tuple(s for n in topo.nodes if n.label(SUBNETS) for s in _subnets(topo, n, routers))
    vrps: list[tuple[IPNetwork, int]] = [(p, asn) for s in subnets for a in s.attachments for p in a.prefixes]
    for node in topo.nodes:
        if node.label(PREFIXES):
            origin = _node_asn(topo, node, asn if node.label(ROLE) in ROUTER_ROLES else None)
            assert origin is not None  # required: _node_asn failed otherwise
            vrps += [(p, origin) for p in _prefixes(topo, node, PREFIXES)]
    inspectors = tuple(_inspector(topo, n) for n in topo.nodes if n.label(ROLE) == "inspector")
    return KitPlan(topology=topo, asn=asn, appliance=app.name, appliance4=app4, appliance6=app6,
                   routers=routers, subnets=subnets, vrps=tuple(dict.fromkeys(vrps)), inspectors=inspectors)


def _inspector(topo: Topology, node: Node) -> KitInspector:
    label = node.label(ADDRESS)
    v4, v6 = _address_pair(topo, node, ADDRESS, [label] if label else _exec_addresses(node))
    text = node.label(CAPACITY) or "100"
    try:
        capacity = float(text)
    except ValueError:
        capacity = 0.0
    if not capacity > 0:
        _fail(topo, node, CAPACITY, f"{text!r} is not a number > 0 (the unit of its load reports)")
    return KitInspector(node.name, v4, v6, capacity)


def _fail(topo: Topology, node: Node, label: str, message: str) -> None:
    raise LabelError(message, path=topo.path, node=node.name, label=label)


def _router(topo: Topology, node: Node) -> KitRouter:
    conf_path = node.bind_for(FRR_CONF_PATH)
    if conf_path is None:
        _fail(topo, node, ROLE, f"a {node.label(ROLE)} router needs its frr.conf bound at {FRR_CONF_PATH}")
        raise AssertionError  # unreachable (for the type checker)
    try:
        frr = read_frr_conf(conf_path)
    except (OSError, UnicodeError) as exc:
        raise TopologyError(f"node {node.name}: cannot read {conf_path}: {exc}", path=topo.path,
                            node=node.name) from exc
    label_asn = _node_asn(topo, node, None, required=False)
    if label_asn is not None and frr.bgp_asn is not None and label_asn != frr.bgp_asn:
        _fail(topo, node, ASN, f"{label_asn} but {conf_path.name} has router bgp {frr.bgp_asn}")
    asn = label_asn if label_asn is not None else frr.bgp_asn
    if asn is None:
        _fail(topo, node, ASN, f"missing: set it, or give the router `router bgp ASN` in {conf_path}")
        raise AssertionError
    if node.label(LOOPBACK):
        lo4, lo6 = _address_pair(topo, node, LOOPBACK, [node.label(LOOPBACK) or ""])
    else:
        lo = frr.loopback
        v4 = [i.ip for i in lo if isinstance(i, ipaddress.IPv4Interface)]
        v6 = [i.ip for i in lo if isinstance(i, ipaddress.IPv6Interface)]
        if not v4:
            _fail(topo, node, LOOPBACK, f"missing: no `interface lo` with `ip address` in {conf_path}, "
                  "and no savd.loopback label (the iBGP and BGP-LS sessions start from the loopback)")
        lo4, lo6 = v4[0], (v6[0] if v6 else None)
    neighbors = _neighbors(topo, node, frr)
    if node.label(ROLE) == "border" and frr.ebgp_neighbors and not neighbors:
        addrs = ", ".join(a for a, _ in frr.ebgp_neighbors)
        _fail(topo, node, NEIGHBORS, f"missing: the border has eBGP neighbours ({addrs}); say what each "
              "interface faces, e.g. savd.neighbors: \"eth2=65100:provider\"")
    role = node.label(ROLE)
    assert role is not None  # routers are the nodes with a router role label
    return KitRouter(name=node.name, role=Role(role), asn=asn, loopback4=lo4, loopback6=lo6,
                     frr=frr, daemons=node.bind_for(FRR_DAEMONS_PATH), neighbors=neighbors)


def _node_asn(topo: Topology, node: Node, default: int | None, required: bool = True) -> int | None:
    raw = node.label(ASN)
    if raw is None:
        if default is None and required:
            _fail(topo, node, ASN, "missing (the AS that originates the node's savd.prefixes)")
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 4294967295:
        _fail(topo, node, ASN, f"{raw!r} is not an AS number 1..4294967295")
    return int(raw)


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _prefixes(topo: Topology, node: Node, label: str) -> tuple[IPNetwork, ...]:
    out = []
    for text in _split(node.label(label) or ""):
        try:
            out.append(ipaddress.ip_network(text, strict=True))
        except ValueError as exc:
            _fail(topo, node, label, f"{text!r} is not a prefix: {exc}")
    if not out:
        _fail(topo, node, label, "empty: give prefixes separated by commas")
    return tuple(out)


def _address_pair(topo: Topology, node: Node, label: str, values: Sequence[str]
                  ) -> tuple[ipaddress.IPv4Address, ipaddress.IPv6Address | None]:
    v4: list[ipaddress.IPv4Address] = []
    v6: list[ipaddress.IPv6Address] = []
    for text in (t for v in values for t in _split(v)):
        try:
            addr = ipaddress.ip_interface(text).ip
        except ValueError:
            _fail(topo, node, label, f"{text!r} is not an address")
            raise
        (v4 if isinstance(addr, ipaddress.IPv4Address) else v6).append(addr)  # type: ignore[arg-type]
    if not v4:
        _fail(topo, node, label, "missing: no IPv4 address (set the label, or an exec line "
              "`ip addr add A/LEN dev IF`)")
    return v4[0], (v6[0] if v6 else None)


_ADDR_RE = re.compile(r"^ip\s+(-6\s+)?(addr|address|a)\s+add\s+(\S+)")


def _exec_addresses(node: Node) -> list[str]:
    """Addresses the node's exec lines add (`ip [-6] addr add A/LEN dev IF ...`)."""
    out = []
    for line in node.exec:
        m = _ADDR_RE.match(" ".join(shlex.split(line)) if "'" in line or '"' in line else line.strip())
        if m:
            out.append(m.group(3))
    return out


def _neighbors(topo: Topology, node: Node, frr: FrrConf) -> tuple[ExternalNeighbor, ...]:
    out = []
    for item in _split(node.label(NEIGHBORS) or ""):
        iface, eq, rest = item.partition("=")
        asn_text, colon, rel_text = rest.partition(":")
        if not eq or not colon or not asn_text.isdigit():
            _fail(topo, node, NEIGHBORS, f"{item!r} is not IFACE=ASN:RELATIONSHIP (e.g. eth2=65100:provider)")
        try:
            rel = Relationship(rel_text)
        except ValueError:
            _fail(topo, node, NEIGHBORS, f"{rel_text!r} is not one of "
                  f"{', '.join(r.value for r in Relationship)}")
            raise
        conf_iface = frr.interface(iface)
        if conf_iface is None or not conf_iface.addresses:
            _fail(topo, node, NEIGHBORS, f"interface {iface} has no address in {frr.path}")
            raise AssertionError
        nets = [a.network for a in conf_iface.addresses]
        addrs = [a for a, ras in frr.ebgp_neighbors if int(ras) == int(asn_text)
                 and any(ipaddress.ip_address(a) in n for n in nets)]
        if not addrs:
            _fail(topo, node, NEIGHBORS, f"no eBGP neighbour of AS {asn_text} on {iface}'s subnets in "
                  f"{frr.path}")
        address = sorted(addrs, key=lambda a: ":" in a)[0]
        out.append(ExternalNeighbor(iface, int(asn_text), rel, address))
    return tuple(out)


def _subnets(topo: Topology, host: Node, routers: tuple[KitRouter, ...]) -> list[Subnet]:
    """The host's savd.subnets, each prefix attached where a linked savd router's interface lies in it."""
    by_name = {r.name: r for r in routers}
    ports: list[tuple[str, str]] = []  # (router, interface) linked to the host
    for link in topo.links:
        for mine, other in ((link.a, link.b), (link.b, link.a)):
            if mine.node == host.name and other.node in by_name:
                ports.append((other.node, other.interface))
    found: dict[tuple[str, str], list[IPNetwork]] = {}
    for prefix in _prefixes(topo, host, SUBNETS):
        hits = [(r, i) for r, i in ports
                if (conf := by_name[r].frr.interface(i)) is not None
                and any(a.ip in prefix for a in conf.addresses)]
        if not hits:
            linked = ", ".join(f"{r}:{i}" for r, i in ports) or "none"
            _fail(topo, host, SUBNETS, f"{prefix} lies on no linked savd router interface (linked: {linked}; "
                  "the router's frr.conf must give that interface an address inside the prefix)")
        for hit in hits:
            found.setdefault(hit, []).append(prefix)
    sid = host.label(SUBNET_ID) or host.name
    attachments = tuple(Attachment(r, i, tuple(p)) for (r, i), p in found.items())
    return [Subnet(sid, host.name, attachments)]
