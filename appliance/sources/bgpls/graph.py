"""The learned IGP topology: BGP-LS events in, the engine's model records and queries out.

Owns: the link-state database keyed by NLRI identity and by source (the BGP-LS peer that said it), so
the same NLRI heard from two exporters is one fact and a session reset removes only that peer's facts;
incremental `apply`; stale marking and sweep for re-synchronisation after a speaker restart (mark on
session down, sweep what was not re-announced by end-of-RIB: no duplicates, no flap); and the queries
the engine needs (routers, interfaces, links, prefixes, which routers/interfaces serve a prefix,
internal vs AS-border links, neighbours).

Naming: a router is named by its BGP-LS node name (TLV 1026) or, without one, its IGP router ID; an
interface by its link name (TLV 1098, the exporter sends the Linux interface name) or, without one, its
local address. LAN pseudonodes are not routers: an A->pseudonode->B pair becomes the adjacency A->B.
IS-IS (Protocol-ID 1/2) and OSPF give the same facts: the IGP router ID is then the system ID (12 hex
digits), the router's ID in the model its TE router ID when advertised, and a router seen in level 1
and level 2 (two Node NLRI, one system ID) is one router.
A link crosses the AS border when its two node descriptors carry different AS numbers.

Must not: make SAV decisions, touch the network, or read clocks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import radix

from appliance.model import IgpPrefix, Interface, Link, Router, prefix_sort_key
from appliance.sources.bgpls.decode import LsAnnounce, LsEvent, LsItem, LsLink, LsNode, LsPrefix, NodeId

__all__ = ["Topology"]

_T = TypeVar("_T")


@dataclass(slots=True)
class _Entry:
    """One NLRI: what each source says about it, and which sources are stale."""

    by_source: dict[str, LsItem] = field(default_factory=dict)
    stale: set[str] = field(default_factory=set)

    def current(self) -> LsItem:
        return self.by_source[min(self.by_source)]


class Topology:
    """Incrementally updated link-state graph (mutable; one writer)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[Any, ...], _Entry] = {}
        self.version = 0
        self._cache: dict[str, Any] = {}
        self._cache_version = -1

    def _cached(self, key: str, build: Callable[[], _T]) -> _T:
        """Views are recomputed once per graph version (queries in a loop cost a lookup, not a rebuild)."""
        if self._cache_version != self.version:
            self._cache.clear()
            self._cache_version = self.version
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]  # type: ignore[no-any-return]

    # updates -------------------------------------------------------------------------------------------

    def apply(self, event: LsEvent) -> bool:
        """Apply one announce/withdraw; True when the merged view changed."""
        key = event.item.key()
        entry = self._entries.get(key)
        if isinstance(event, LsAnnounce):
            if entry is None:
                entry = self._entries[key] = _Entry()
            before = entry.current() if entry.by_source else None
            entry.by_source[event.source] = event.item
            entry.stale.discard(event.source)
            changed = before != entry.current()
        else:
            if entry is None or event.source not in entry.by_source:
                return False
            before = entry.current()
            del entry.by_source[event.source]
            entry.stale.discard(event.source)
            if not entry.by_source:
                del self._entries[key]
                changed = True
            else:
                changed = before != entry.current()
        if changed:
            self.version += 1
        return changed

    def apply_all(self, events: Iterable[LsEvent]) -> int:
        return sum(1 for e in events if self.apply(e))

    def withdraw_source(self, source: str) -> int:
        """Forget everything `source` said (its session is gone for good); returns NLRI removed."""
        return self._drop(source, only_stale=False)

    def mark_stale(self, source: str) -> int:
        """Session reset: keep the facts but expect them to be re-announced before end-of-RIB."""
        n = 0
        for entry in self._entries.values():
            if source in entry.by_source:
                entry.stale.add(source)
                n += 1
        return n

    def sweep_stale(self, source: str) -> int:
        """End-of-RIB after a reset: drop what `source` did not re-announce."""
        return self._drop(source, only_stale=True)

    def _drop(self, source: str, *, only_stale: bool) -> int:
        removed = 0
        for key in list(self._entries):
            entry = self._entries[key]
            if source not in entry.by_source or (only_stale and source not in entry.stale):
                continue
            before = entry.current()
            del entry.by_source[source]
            entry.stale.discard(source)
            removed += 1
            if not entry.by_source:
                del self._entries[key]
                self.version += 1
            elif before != entry.current():
                self.version += 1
        return removed

    # raw views -----------------------------------------------------------------------------------------

    def items(self) -> list[LsItem]:
        return [e.current() for e in self._entries.values()]

    def sources(self) -> set[str]:
        return {s for e in self._entries.values() for s in e.by_source}

    def ls_nodes(self) -> list[LsNode]:
        return [i for i in self.items() if isinstance(i, LsNode)]

    def ls_links(self) -> list[LsLink]:
        return [i for i in self.items() if isinstance(i, LsLink)]

    def ls_prefixes(self) -> list[LsPrefix]:
        return [i for i in self.items() if isinstance(i, LsPrefix)]

    def __len__(self) -> int:
        return len(self._entries)

    # naming --------------------------------------------------------------------------------------------

    def _names(self) -> dict[NodeId, str]:
        return self._cached("_names", self._build_names)

    def _build_names(self) -> dict[NodeId, str]:
        """NodeId -> router name; node name if advertised and unique, else IGP router ID.

        A node known under another protocol (e.g. its BGP/EPE descriptor, Protocol-ID 7) whose router ID
        is the router ID or a TE router ID of a named node takes that node's name: one router, one name.
        """
        ids: set[NodeId] = set()
        named: dict[NodeId, str] = {}
        for item in self.items():
            if isinstance(item, LsNode):
                ids.add(item.node)
                if item.name:
                    named[item.node] = item.name
            elif isinstance(item, LsLink):
                ids.update((item.local, item.remote))
            else:
                ids.add(item.node)
        # a name is ambiguous when routers with different (AS, router ID) use it; the same router seen
        # through OSPFv2 and OSPFv3 (two Node NLRI) is one router
        owners: dict[str, set[tuple[int, str]]] = {}
        for nid, name in named.items():
            owners.setdefault(name, set()).add((nid.asn, nid.router_id))
        counts = {name: len(ids_) for name, ids_ in owners.items()}
        by_rid: dict[tuple[int, str], str] = {}
        for node in self.ls_nodes():
            if node.name and counts[node.name] == 1:
                for rid in (node.node.router_id, *node.te_router_ids):
                    by_rid.setdefault((node.node.asn, rid), node.name)
        out = {}
        for nid in ids:
            if nid.is_pseudonode:
                continue
            name = named.get(nid, "")
            if name and counts[name] > 1:
                name = f"{name}@{nid.router_id}"
            out[nid] = name or by_rid.get((nid.asn, nid.router_id), nid.router_id)
        return out

    def _external(self) -> set[NodeId]:
        """Nodes seen only as the far end of an AS-border link: neighbours in other ASes, not our routers."""
        local = {i.node for i in self.items() if isinstance(i, LsNode | LsPrefix)}
        local |= {lk.local for lk in self.ls_links()}
        return {lk.remote for lk in self.ls_links() if lk.local.asn != lk.remote.asn} - local

    def external_peers(self) -> tuple[tuple[str, int], ...]:
        """(name, AS) of the neighbours across the AS border."""
        names = self._names()
        return tuple(sorted((names[n], n.asn) for n in self._external() if n in names))

    def router_name(self, node: NodeId) -> str:
        return self._names().get(node, node.label())

    # model views ---------------------------------------------------------------------------------------

    def routers(self) -> tuple[Router, ...]:
        return self._cached("routers", self._build_routers)

    def _build_routers(self) -> tuple[Router, ...]:
        te: dict[NodeId, str] = {n.node: n.te_router_ids[0] for n in self.ls_nodes() if n.te_router_ids}
        external = self._external()
        out = {
            Router(name=name, router_id=te.get(nid, nid.router_id), asn=nid.asn)
            for nid, name in self._names().items()
            if nid not in external
        }
        by_name: dict[str, Router] = {}
        for r in sorted(out, key=lambda r: (r.name, r.router_id == r.name)):
            by_name.setdefault(r.name, r)  # an EPE descriptor of a named router adds no second router
        return tuple(by_name[n] for n in sorted(by_name))

    def links(self) -> tuple[Link, ...]:
        return self._cached("links", self._build_links)

    def _build_links(self) -> tuple[Link, ...]:
        """Router-to-router adjacencies, one per direction; pseudonode hops collapsed."""
        names = self._names()
        out: set[Link] = set()
        lan_in: dict[NodeId, list[LsLink]] = {}
        for link in self.ls_links():
            if link.remote.is_pseudonode and not link.local.is_pseudonode:
                lan_in.setdefault(link.remote, []).append(link)
        for link in self.ls_links():
            if link.local.is_pseudonode:
                continue
            if not link.remote.is_pseudonode:
                out.add(
                    Link(
                        names[link.local],
                        names[link.remote],
                        _first(link.local_addresses),
                        _first(link.remote_addresses),
                        link.igp_metric,
                    )
                )
                continue
            for other in lan_in.get(link.remote, []):
                if other.local != link.local:
                    out.add(
                        Link(
                            names[link.local],
                            names[other.local],
                            _first(link.local_addresses),
                            _first(other.local_addresses),
                            link.igp_metric,
                        )
                    )
        return tuple(sorted(out, key=lambda lk: (lk.local, lk.remote, lk.local_address)))

    def interfaces(self) -> tuple[Interface, ...]:
        return self._cached("interfaces", self._build_interfaces)

    def _build_interfaces(self) -> tuple[Interface, ...]:
        """Interfaces seen in link NLRI, with the address length taken from the router's own prefixes."""
        names = self._names()
        own: dict[str, list[ipaddress.IPv4Network | ipaddress.IPv6Network]] = {}
        for p in self.ls_prefixes():
            if p.node in names:
                own.setdefault(names[p.node], []).append(ipaddress.ip_network(p.prefix))
        out: dict[tuple[str, str], Interface] = {}
        for link in self.ls_links():
            if link.local not in names:
                continue
            router = names[link.local]
            addrs = tuple(_with_length(a, own.get(router, [])) for a in link.local_addresses)
            ifname = link.name or _first(link.local_addresses) or f"id{link.local_id}"
            external = link.local.asn != link.remote.asn
            prev = out.get((router, ifname))
            if prev:
                addrs = tuple(sorted(set(prev.addresses) | set(addrs)))
                external = external or prev.external
            out[(router, ifname)] = Interface(router, ifname, addrs, external)
        return tuple(out[k] for k in sorted(out))

    def igp_prefixes(self) -> tuple[IgpPrefix, ...]:
        return self._cached("igp_prefixes", self._build_igp_prefixes)

    def _build_igp_prefixes(self) -> tuple[IgpPrefix, ...]:
        names = self._names()
        out = {
            IgpPrefix(names.get(p.node, p.node.label()), p.prefix, p.metric, p.route_tags, p.external)
            for p in self.ls_prefixes()
        }
        return tuple(sorted(out, key=lambda p: (p.router, prefix_sort_key(p.prefix))))

    # queries -------------------------------------------------------------------------------------------

    def neighbours(self, router: str) -> tuple[str, ...]:
        return tuple(sorted({lk.remote for lk in self.links() if lk.local == router}))

    def border_links(self) -> tuple[Link, ...]:
        return self._cached("border_links", self._build_border_links)

    def _build_border_links(self) -> tuple[Link, ...]:
        names = self._names()
        border = {
            (names.get(lk.local), names.get(lk.remote))
            for lk in self.ls_links()
            if lk.local.asn != lk.remote.asn
        }
        return tuple(lk for lk in self.links() if (lk.local, lk.remote) in border)

    def internal_links(self) -> tuple[Link, ...]:
        border = set(self.border_links())
        return tuple(lk for lk in self.links() if lk not in border)

    def routers_serving(self, prefix: str) -> tuple[str, ...]:
        """Routers advertising `prefix` or a covering prefix into the IGP (most specific match)."""
        tree = self._cached("radix", self._build_radix)
        net = ipaddress.ip_network(prefix, strict=False)
        covering = tree.search_covering(str(net))
        return tuple(sorted(covering[0].data["routers"])) if covering else ()

    def _build_radix(self) -> Any:
        tree = radix.Radix()
        for p in self.igp_prefixes():
            node = tree.search_exact(p.prefix) or tree.add(p.prefix)
            node.data.setdefault("routers", set()).add(p.router)
        return tree

    def interfaces_serving(self, prefix: str) -> tuple[Interface, ...]:
        """Interfaces whose address lies in `prefix` (the subnet is attached there)."""
        net = ipaddress.ip_network(prefix, strict=False)
        out = []
        for itf in self.interfaces():
            for a in itf.addresses:
                addr = ipaddress.ip_interface(a).ip
                if addr.version == net.version and addr in net:
                    out.append(itf)
                    break
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready, deterministic view (routers, interfaces, links, prefixes)."""
        return {
            "version": self.version,
            "routers": [{"name": r.name, "router_id": r.router_id, "asn": r.asn} for r in self.routers()],
            "interfaces": [
                {"router": i.router, "name": i.name, "addresses": list(i.addresses), "external": i.external}
                for i in self.interfaces()
            ],
            "links": [
                {
                    "local": lk.local,
                    "remote": lk.remote,
                    "local_address": lk.local_address,
                    "remote_address": lk.remote_address,
                    "metric": lk.metric,
                    "border": lk in set(self.border_links()),
                }
                for lk in self.links()
            ],
            "prefixes": [
                {"router": p.router, "prefix": p.prefix, "metric": p.metric, "route_tags": list(p.route_tags)}
                for p in self.igp_prefixes()
            ],
        }


def _first(values: tuple[str, ...]) -> str:
    return values[0] if values else ""


def _with_length(address: str, own: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> str:
    ip = ipaddress.ip_address(address)
    covering = [n for n in own if n.version == ip.version and ip in n]
    length = max((n.prefixlen for n in covering), default=ip.max_prefixlen)
    return f"{address}/{length}"
