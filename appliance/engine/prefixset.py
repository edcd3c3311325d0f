"""Prefix sets for the SAV engine: IPv4 and IPv6 in one py-radix tree, with cover queries and set algebra.

A `PrefixSet` holds canonical CIDR strings (model.py convention). Membership and the algebra on members
(union, difference, intersection) use a plain frozenset, which is the fastest structure in CPython; the radix
tree, built lazily, answers the address-space questions the algorithms need: which member covers a source
(`covering`), which members lie inside a prefix (`covered`), does a member overlap a prefix. py-radix is safe
for both families in one tree. Nodes carry no `data`: per-prefix values live
outside the tree, because a per-node data dict costs about 240 bytes.

Address-space arithmetic (carving anycast prefixes out of a blocklist, the minimal CIDR cover) uses netaddr's
IPSet and cidr_merge; nothing here reimplements CIDR maths.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator

import netaddr
import radix

from appliance.model import prefix_sort_key

__all__ = ["PrefixSet", "minimal_cover", "subtract_space", "supernets"]


class PrefixSet:
    """An immutable set of canonical prefixes with longest-match cover queries.

    Prefixes must already be canonical (model.canonical_prefix); the engine canonicalises at its input edge.
    """

    __slots__ = ("_members", "_tree")

    def __init__(self, prefixes: Iterable[str] = ()) -> None:
        self._members: frozenset[str] = frozenset(prefixes)
        self._tree: radix.Radix | None = None

    # --- plain set behaviour -------------------------------------------------------------------------

    def __contains__(self, prefix: object) -> bool:
        return prefix in self._members

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PrefixSet):
            return self._members == other._members
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._members)

    def __repr__(self) -> str:
        return f"PrefixSet({list(self.sorted())!r})"

    @property
    def members(self) -> frozenset[str]:
        return self._members

    def sorted(self) -> tuple[str, ...]:
        """Members in the deterministic model order (IPv4 first, then address, then length)."""
        return tuple(sorted(self._members, key=prefix_sort_key))

    def union(self, *others: Iterable[str]) -> PrefixSet:
        return PrefixSet(self._members.union(*others))

    def difference(self, *others: Iterable[str]) -> PrefixSet:
        """Members not listed in `others` (member algebra; see `subtract_space` for address space)."""
        return PrefixSet(self._members.difference(*others))

    def intersection(self, *others: Iterable[str]) -> PrefixSet:
        return PrefixSet(self._members.intersection(*others))

    # --- cover queries (radix) ---------------------------------------------------------------------------

    def tree(self) -> radix.Radix:
        """The py-radix tree of the members, built once (read only: nodes carry no data)."""
        return self._radix()

    def _radix(self) -> radix.Radix:
        if self._tree is None:
            tree = radix.Radix()
            for p in self._members:
                tree.add(p)
            self._tree = tree
        return self._tree

    def covering(self, prefix_or_address: str) -> tuple[str, ...]:
        """Members that contain `prefix_or_address` (itself included), most specific first."""
        return tuple(node.prefix for node in self._radix().search_covering(prefix_or_address))

    def covered(self, prefix: str) -> tuple[str, ...]:
        """Members inside `prefix` (itself included), in model order."""
        found = [node.prefix for node in self._radix().search_covered(prefix)]
        return tuple(sorted(found, key=prefix_sort_key))

    def covers(self, prefix_or_address: str) -> bool:
        """True when some member contains the whole of `prefix_or_address` (longest-match permit)."""
        return self._radix().search_best(prefix_or_address) is not None

    def overlaps(self, prefix: str) -> bool:
        """True when some member covers `prefix` or lies inside it."""
        return self.covers(prefix) or bool(self._radix().search_covered(prefix))

    def overlapping(self, prefix: str) -> tuple[str, ...]:
        """Members that contain `prefix` or lie inside it (itself included), in model order."""
        tree = self._radix()
        found = {n.prefix for n in tree.search_covering(prefix)}
        found.update(n.prefix for n in tree.search_covered(prefix))
        return tuple(sorted(found, key=prefix_sort_key))


def supernets(prefix: str) -> tuple[str, ...]:
    """Every prefix strictly containing canonical `prefix`, shortest first (ipaddress does the maths)."""
    net = ipaddress.ip_network(prefix)
    return tuple(str(net.supernet(new_prefix=k)) for k in range(net.prefixlen))


def subtract_space(prefixes: Iterable[str], holes: Iterable[str]) -> tuple[str, ...]:
    """The address space of `prefixes` minus that of `holes`, as the fewest CIDRs, in model order.

    Used to keep an anycast prefix out of a blocklist even when a covering internal prefix is listed:
    a blocklist entry blocks every source it covers.
    """
    hole_list = list(holes)
    base = list(prefixes)
    if not hole_list:
        return tuple(sorted(set(base), key=prefix_sort_key))
    space = netaddr.IPSet(base)
    for h in hole_list:
        space.remove(h)
    return tuple(sorted((str(c) for c in space.iter_cidrs()), key=prefix_sort_key))


def minimal_cover(prefixes: Iterable[str]) -> tuple[str, ...]:
    """The fewest CIDRs covering exactly the same addresses (adjacent and nested prefixes merged)."""
    merged = netaddr.cidr_merge(list(prefixes))
    return tuple(sorted((str(c) for c in merged), key=prefix_sort_key))
