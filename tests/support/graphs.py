"""The IGP graph a lab really has, from its kernels' interface addresses, and how a learned graph differs
from it: the ground truth the BGP-LS ingest lab tests compare savd's learned topology with."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from ipaddress import IPv4Interface, IPv6Interface
from typing import Any

Adjacency = tuple[str, str, str, str]  # router, neighbour, local address, neighbour address
RouterPrefix = tuple[str, str]  # router, prefix

Addresses = Mapping[str, Sequence[IPv4Interface | IPv6Interface]]


def adjacencies(addrs: Addresses) -> set[Adjacency]:
    """Every ordered pair of routers with IPv4 addresses in one subnet (an OSPFv2 link)."""
    return {
        (a, b, str(x.ip), str(y.ip))
        for a in addrs
        for b in addrs
        if a != b
        for x in addrs[a]
        for y in addrs[b]
        if x.version == 4 and x.network == y.network
    }


def prefixes(addrs: Addresses) -> set[RouterPrefix]:
    return {(r, str(x.network)) for r in addrs for x in addrs[r]}


def graph_mismatch(
    links: set[Adjacency],
    adj: set[Adjacency],
    learned: set[RouterPrefix],
    expected: set[RouterPrefix],
    routers: Collection[str],
    expected_routers: Collection[str],
) -> Any:
    """True when the learned links, prefixes and routers equal the truth; else what is missing and extra
    (the `check` shape of support.waiting.until)."""
    if links == adj and learned == expected and set(routers) == set(expected_routers):
        return True
    return {
        "links-missing": adj - links,
        "links-extra": links - adj,
        "prefixes-missing": expected - learned,
        "prefixes-extra": learned - expected,
        "routers": sorted(routers),
    }
