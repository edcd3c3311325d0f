"""Minimal longest-prefix-match tables for a two-valued source function (ORTC).

One interface of one router in one address family is a function of the source address with two values:
"inside the listed set" and "outside". FlowSpec rules with only a source-prefix component evaluate as
longest prefix match (RFC 8955 §5.1: the more specific prefix wins), and a packet matching no rule is
forwarded. So the smallest rule set with the same meaning is the smallest LPM table with an implicit
default, which the ORTC algorithm (Draves, King, Venkatachary, Zill: "Constructing Optimal IP Routing
Tables", INFOCOM 1999) computes in three passes over a binary trie. Written here because no field
library implements ORTC (py-radix and netaddr only merge adjacent blocks, which is the exact CIDR cover
this improves on: a /16 minus one /24 is 2 rules, not 8).

With two values the candidate sets are {in}, {out} or {in, out}; a node whose set holds the inherited
value needs no rule. ORTC is optimal for any choice at the root; an implicit default only makes a root
rule free when the default value is in the root's set (otherwise the root rule is needed anyway).
The trie is implicit: nodes are (address, length) pairs split by binary search over sorted, disjoint
blocks, so memory is proportional to the trie actually touched.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable

IN = 1
OUT = 2

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def exact_cover(prefixes: Iterable[IPNetwork]) -> list[IPNetwork]:
    """The smallest set of disjoint CIDR blocks whose union is the union of `prefixes` (one family)."""
    nets = list(prefixes)
    v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
    return [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]


class _Trie:
    """Pass 2 sets of the implicit trie over sorted disjoint blocks (start, length)."""

    def __init__(self, blocks: list[IPNetwork], width: int) -> None:
        self.width = width
        self.starts = [int(b.network_address) for b in blocks]
        self.lens = [b.prefixlen for b in blocks]
        self.sets: dict[tuple[int, int], int] = {}

    def _leaf(self, addr: int, plen: int, lo: int, hi: int) -> int:
        """IN/OUT for a leaf, 0 for an internal node (several blocks, or one smaller block)."""
        if lo == hi:
            return OUT
        if hi - lo == 1 and self.starts[lo] == addr and self.lens[lo] == plen:
            return IN
        return 0

    def _split(self, addr: int, plen: int, lo: int, hi: int) -> tuple[int, int]:
        mid = addr + (1 << (self.width - plen - 1))
        return mid, bisect.bisect_left(self.starts, mid, lo, hi)

    def build(self, addr: int, plen: int, lo: int, hi: int) -> int:
        leaf = self._leaf(addr, plen, lo, hi)
        if leaf:
            return leaf
        mid, cut = self._split(addr, plen, lo, hi)
        left = self.build(addr, plen + 1, lo, cut)
        right = self.build(mid, plen + 1, cut, hi)
        both = left & right
        result = both if both else left | right
        self.sets[(addr, plen)] = result
        return result

    def choose(self, addr: int, plen: int, lo: int, hi: int, inherited: int,
               out: list[tuple[int, int, int]]) -> None:
        """Pass 3: emit (address, length, value) where the inherited value is not a candidate."""
        leaf = self._leaf(addr, plen, lo, hi)
        candidates = leaf or self.sets[(addr, plen)]
        if not candidates & inherited:
            inherited = candidates  # a singleton: with two values a set missing one value has one member
            out.append((addr, plen, inherited))
        if leaf:
            return
        mid, cut = self._split(addr, plen, lo, hi)
        self.choose(addr, plen + 1, lo, cut, inherited, out)
        self.choose(mid, plen + 1, cut, hi, inherited, out)


def minimal_table(blocks: Iterable[IPNetwork], version: int, default: int) -> list[tuple[IPNetwork, int]]:
    """Smallest LPM table equal to "IN inside `blocks`, OUT elsewhere" given that no match means `default`.

    Returns (prefix, IN|OUT) entries in no particular order. `default` is IN or OUT.
    """
    cover = sorted(exact_cover(b for b in blocks if b.version == version),
                   key=lambda n: int(n.network_address))
    width = 32 if version == 4 else 128
    trie = _Trie(cover, width)
    trie.build(0, 0, 0, len(cover))
    raw: list[tuple[int, int, int]] = []
    trie.choose(0, 0, 0, len(cover), default, raw)
    make = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    return [(make((addr, plen)), value) for addr, plen, value in raw]
