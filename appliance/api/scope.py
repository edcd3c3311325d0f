"""Who is asking the API: the operator, who sees everything, or a tenant, who sees its scope only.

A tenant's scope ([[api.tenant]] in savd.toml) has two dimensions, and an object is visible only when
it passes both (default deny: nothing is widened on a guess):
- where: `routers` (a whole router: the router and every interface of it) and `interfaces` ("r1:eth1":
  that interface; its router is visible as a node, its other interfaces are not);
- what: `prefixes`; a prefix is in scope when one of them covers it (equal or more specific). The
  default routes 0.0.0.0/0 and ::/0 and the counters' "*" ("any other source") name nobody's address
  space, so a source that is one of them is shown too (the catch-all of an allowlist).
Every filter in tenants.py asks these predicates; nothing else decides what a tenant sees.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache

from appliance.config import TenantConfig

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: sources that name no one's address space: the catch-all of an allowlist, and the counters' "*"
NOBODYS = frozenset({"*", "0.0.0.0/0", "::/0"})


@dataclass(frozen=True, slots=True)
class Operator:
    """The [api] token (or an open read): sees and changes everything, as before tenants existed."""

    name: str = "operator"


OPERATOR = Operator()


@lru_cache(maxsize=65536)
def _network(text: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(text, strict=True)
    except (ValueError, TypeError):
        return None


@dataclass(frozen=True, slots=True)
class TenantScope:
    name: str
    routers: frozenset[str]
    interfaces: frozenset[tuple[str, str]]
    prefixes: tuple[IPNetwork, ...]
    _nodes: frozenset[str] = field(default=frozenset(), repr=False)

    @classmethod
    def of(cls, tenant: TenantConfig) -> TenantScope:
        nets = tuple(ipaddress.ip_network(p) for p in tenant.prefixes)
        interfaces = frozenset(tenant.interfaces)
        routers = frozenset(tenant.routers)
        return cls(tenant.name, routers, interfaces, nets, routers | {r for r, _ in interfaces})

    def whole_router(self, router: str) -> bool:
        """The router and every interface of it are in scope (listed under `routers`)."""
        return router in self.routers

    def router(self, router: str) -> bool:
        """The router is visible as a node: listed, or one of its interfaces is."""
        return router in self._nodes

    def interface(self, router: str, interface: str) -> bool:
        return router in self.routers or (router, interface) in self.interfaces

    def prefix(self, text: str) -> bool:
        """`text` is a prefix (or address) inside one of the tenant's prefixes."""
        net = _network(text)
        if net is None:
            return False
        return any(net.version == p.version and net.subnet_of(p) for p in self.prefixes)  # type: ignore[arg-type]

    def source(self, text: str) -> bool:
        """A source prefix that may be shown: the tenant's, or one that names nobody's space."""
        return text in NOBODYS or self.prefix(text)


Viewer = Operator | TenantScope
