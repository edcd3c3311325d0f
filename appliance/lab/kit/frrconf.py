"""What the lab kit reads from a router's own frr.conf: interfaces and addresses, the loopback, which
IGPs run where, the BGP AS and eBGP neighbours.

A line-oriented reader of FRR's integrated configuration (`frr.conf`, as `show running-config` writes
it: top-level blocks `interface X` / `router ospf|ospf6|isis|bgp` closed by `exit`). It only collects
facts; it must not judge them (the label reader does) and it never runs FRR.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
KIT_MARK = "! --- savd lab init:"  # starts the stanza init appends; what follows is not the operator's


@dataclass(frozen=True, slots=True)
class FrrInterface:
    """One `interface NAME` block: addresses and the IGPs enabled on it (passive ones too)."""

    name: str
    addresses: tuple[IPInterface, ...] = ()
    ospf: bool = False
    ospf6: bool = False
    isis: bool = False
    passive: frozenset[str] = frozenset()  # IGPs passive on this interface: "ospf", "ospf6", "isis"

    def is_adjacent(self, igp: str) -> bool:
        """The IGP runs here and may form an adjacency (enabled and not passive)."""
        return bool(getattr(self, igp)) and igp not in self.passive


@dataclass(frozen=True, slots=True)
class FrrConf:
    """The facts of one frr.conf; `lines` keeps the text (without the final `end`) for rendering."""

    path: Path
    hostname: str = ""
    interfaces: tuple[FrrInterface, ...] = ()
    router_id: str = ""
    bgp_asn: int | None = None
    ebgp_neighbors: tuple[tuple[str, int], ...] = ()  # (address, remote AS) with remote AS != own
    igps: frozenset[str] = frozenset()                # "ospf", "ospf6", "isis" (router blocks present)
    has_table_range: bool = False
    lines: tuple[str, ...] = field(default=())

    def interface(self, name: str) -> FrrInterface | None:
        for iface in self.interfaces:
            if iface.name == name:
                return iface
        return None

    @property
    def loopback(self) -> tuple[IPInterface, ...]:
        lo = self.interface("lo")
        return lo.addresses if lo else ()


@dataclass(slots=True)
class _IfaceFacts:
    """Mutable facts of one interface while its block is read."""

    addresses: list[IPInterface] = field(default_factory=list)
    igps: set[str] = field(default_factory=set)
    passive: set[str] = field(default_factory=set)


def read_frr_conf(path: Path) -> FrrConf:
    """Read and parse a frr.conf file (OSError propagates to the caller, who names the node)."""
    return parse_frr_conf(path.read_text(encoding="utf-8"), path)


def parse_frr_conf(text: str, path: Path) -> FrrConf:
    """Collect the facts of an frr.conf text (pure), up to the stanza `savd lab init` appended, if any."""
    hostname = router_id = ""
    asn: int | None = None
    table_range = False
    igps: set[str] = set()
    ifaces: dict[str, _IfaceFacts] = {}
    passive_by_router: dict[str, set[str]] = {"ospf": set(), "ospf6": set(), "isis": set()}
    remote_as: dict[str, str] = {}
    block: tuple[str, str] = ("", "")  # (kind, argument) of the current top-level block
    kept: list[str] = []
    for raw in text.splitlines():
        if raw.startswith(KIT_MARK):
            break  # init's own stanza (frr.conf of init's output): init writes it anew
        line = raw.strip()
        if line == "end":
            continue
        kept.append(raw.rstrip())
        if not line or line.startswith("!"):
            continue
        words = line.split()
        indented = raw[:1] in (" ", "\t")
        if not indented:
            if words[0] == "exit" or words[0] == "exit-address-family":
                block = ("", "")
                continue
            if words[0] == "interface" and len(words) >= 2:
                block = ("interface", words[1])
                ifaces.setdefault(words[1], _IfaceFacts())
                continue
            if words[0] == "router" and len(words) >= 2:
                kind = words[1]
                block = ("router", kind)
                if kind in ("ospf", "ospf6", "isis"):
                    igps.add(kind)
                if kind == "bgp" and len(words) >= 3 and words[2].isdigit() and "vrf" not in words:
                    asn = int(words[2])
                continue
            if words[0] == "hostname" and len(words) >= 2:
                hostname = words[1]
            elif words[:3] == ["ip", "table", "range"]:
                table_range = True
            block = ("", "")
            continue
        kind, arg = block
        if kind == "interface":
            entry = ifaces[arg]
            if words[:2] in (["ip", "address"], ["ipv6", "address"]) and len(words) >= 3:
                try:
                    entry.addresses.append(ipaddress.ip_interface(words[2]))
                except ValueError:
                    pass
            elif words[:2] == ["ip", "ospf"] and "area" in words:
                entry.igps.add("ospf")
            elif words[:2] == ["ipv6", "ospf6"] and "area" in words:
                entry.igps.add("ospf6")
            elif words[0] in ("ip", "ipv6") and len(words) >= 3 and words[1:3] == ["router", "isis"]:
                entry.igps.add("isis")
            elif words[:3] == ["ip", "ospf", "passive"]:
                entry.passive.add("ospf")
            elif words[:3] == ["ipv6", "ospf6", "passive"]:
                entry.passive.add("ospf6")
            elif words[:2] == ["isis", "passive"]:
                entry.passive.add("isis")
        elif kind == "router":
            if words[0] == "passive-interface" and len(words) >= 2 and arg in passive_by_router:
                passive_by_router[arg].add(words[1])
            elif words[:2] in (["ospf", "router-id"], ["ospf6", "router-id"], ["bgp", "router-id"]) \
                    and len(words) >= 3 and not router_id:
                router_id = words[2]
            elif arg == "ospf" and words[0] == "network" and "area" in words:
                igps.add("ospf")
            elif arg == "bgp" and words[0] == "neighbor" and len(words) >= 4 and words[2] == "remote-as":
                remote_as[words[1]] = words[3]
    interfaces = tuple(
        FrrInterface(name=name, addresses=tuple(f.addresses), ospf="ospf" in f.igps, ospf6="ospf6" in f.igps,
                     isis="isis" in f.igps,
                     passive=frozenset(f.passive | {igp for igp, names in passive_by_router.items()
                                                    if name in names}))
        for name, f in ifaces.items())
    ebgp = tuple((addr, int(ras)) for addr, ras in remote_as.items()
                 if ras.isdigit() and asn is not None and int(ras) != asn)
    while kept and not kept[-1].strip():
        kept.pop()
    return FrrConf(path=path, hostname=hostname, interfaces=interfaces, router_id=router_id,
                   bgp_asn=asn, ebgp_neighbors=ebgp, igps=frozenset(igps), has_table_range=table_range,
                   lines=tuple(kept))
