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
blocks, so memory is proportional to the trie actually touched. Prefixes are handled as integers
(address, length): the `ipaddress` objects cost 20x more than the algorithm at Internet scale.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable

IN = 1
OUT = 2

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Block = tuple[int, int]   # (network address as int, prefix length)

WIDTH = {4: 32, 6: 128}


def parse_prefix(text: str) -> tuple[int, int, int]:
    """(version, address, length) of a CIDR prefix; ValueError naming it if malformed or with host bits."""
    addr, sep, plen_text = text.partition("/")
    if not sep:
        raise ValueError(f"{text!r} has no prefix length")
    if ":" in addr:
        net = ipaddress.IPv6Network(text, strict=True)
        return 6, int(net.network_address), net.prefixlen
    parts = addr.split(".")
    try:
        octets = [int(p) for p in parts]
        plen = int(plen_text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 or IPv6 prefix") from None
    if len(octets) != 4 or not all(0 <= o <= 255 for o in octets) or not 0 <= plen <= 32:
        raise ValueError(f"{text!r} is not an IPv4 or IPv6 prefix")
    value = (octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]
    if value & ((1 << (32 - plen)) - 1):
        raise ValueError(f"{text!r} has host bits set")
    return 4, value, plen


def format_prefix(version: int, addr: int, plen: int) -> str:
    """Canonical text of an integer prefix (same as str(ipaddress.ip_network(...)))."""
    if version == 4:
        return f"{addr >> 24}.{(addr >> 16) & 255}.{(addr >> 8) & 255}.{addr & 255}/{plen}"
    return f"{_format_v6(addr)}/{plen}"


def _format_v6(addr: int) -> str:
    """RFC 5952 text as ipaddress writes it (lower-case hex, the first longest run of two or more zero
    hextets as "::"), without building an IPv6Address: a merge formats every emitted IPv6 rule."""
    hextets = [(addr >> shift) & 0xFFFF for shift in range(112, -16, -16)]
    best_start, best_len, start = -1, 0, -1
    for i, h in enumerate(hextets):
        if h:
            start = -1
            continue
        if start < 0:
            start = i
        if i - start + 1 > best_len:
            best_start, best_len = start, i - start + 1
    parts = [f"{h:x}" for h in hextets]
    if best_len > 1:
        end = best_start + best_len
        parts[best_start:end] = [""]
        if best_start == 0:
            parts.insert(0, "")
        if end == 8:
            parts.append("")
    return ":".join(parts)


def cover_blocks(blocks: Iterable[Block], width: int) -> list[Block]:
    """The exact CIDR cover of a union of blocks, sorted: merge address ranges, then cut each range into
    the largest aligned blocks (the same result as ipaddress.collapse_addresses)."""
    ranges = sorted((a, a + (1 << (width - p)) - 1) for a, p in blocks)
    merged: list[list[int]] = []
    for lo, hi in ranges:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    out: list[Block] = []
    for lo, hi in merged:
        while lo <= hi:
            size = lo & -lo if lo else 1 << width
            while size > hi - lo + 1:
                size >>= 1
            out.append((lo, width - size.bit_length() + 1))
            lo += size
    return out


def _contains(outer: Block, inner: Block, width: int) -> bool:
    shift = width - outer[1]
    return outer[1] <= inner[1] and outer[0] >> shift == inner[0] >> shift


def subtract(cover: list[Block], holes: Iterable[Block], width: int) -> list[Block]:
    """The exact cover of `cover` minus `holes`: blocks inside a hole vanish, a block containing a hole
    is replaced by the siblings along the path down to it."""
    pieces = list(cover)
    for hole in holes:
        out: list[Block] = []
        for block in pieces:
            if _contains(hole, block, width):
                continue
            if not _contains(block, hole, width):
                out.append(block)
                continue
            addr, plen = block
            while plen < hole[1]:
                plen += 1
                half = 1 << (width - plen)
                if hole[0] & half:          # the hole is in the upper half: keep the lower one
                    out.append((addr, plen))
                    addr += half
                else:
                    out.append((addr + half, plen))
        pieces = out
    return cover_blocks(pieces, width)


def exact_cover(prefixes: Iterable[IPNetwork]) -> list[IPNetwork]:
    """The smallest set of disjoint CIDR blocks whose union is the union of `prefixes` (both families)."""
    nets = list(prefixes)
    v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
    return [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]


class _Trie:
    """Pass 2 sets of the implicit trie over sorted disjoint blocks (start, length)."""

    def __init__(self, blocks: list[Block], width: int) -> None:
        self.width = width
        self.starts = [b[0] for b in blocks]
        self.lens = [b[1] for b in blocks]
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


def minimal_table(cover: list[Block], width: int, default: int) -> list[tuple[int, int, int]]:
    """Smallest LPM table equal to "IN inside `cover`, OUT elsewhere" given that no match means `default`.

    `cover` is an exact cover (cover_blocks). Returns (address, length, IN|OUT) in trie pre-order.
    """
    trie = _Trie(cover, width)
    trie.build(0, 0, 0, len(cover))
    out: list[tuple[int, int, int]] = []
    trie.choose(0, 0, 0, len(cover), default, out)
    return out
