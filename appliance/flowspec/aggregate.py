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
Table = list[tuple[int, int, int]]   # minimal_table output: (address, length, IN|OUT), trie pre-order
Sets = dict[Block, int]              # candidate set (IN, OUT or both) of each internal trie node


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
    return minimal_table_sets(cover, width, default)[0]


def minimal_table_sets(cover: list[Block], width: int, default: int) -> tuple[Table, Sets]:
    """minimal_table and the candidate sets of the trie's internal nodes (what patch_table needs)."""
    trie = _Trie(cover, width)
    trie.build(0, 0, 0, len(cover))
    out: Table = []
    trie.choose(0, 0, 0, len(cover), default, out)
    return out, trie.sets


# Incremental update (issue 13). A list that differs from an earlier one by a few prefixes changes the set
# it describes only inside those prefixes (the "changed" blocks), so the cover and the ORTC table change
# only there and along the trie paths above them. What makes the reuse exact:
# - the trie depends only on the set: a node is a leaf iff the set is constant on it (the exact cover holds
#   the largest aligned blocks of the set), so a new-trie node that misses every changed block is, when
#   internal, an internal node of the old trie with the same content, hence the same candidate set;
# - the output of such a subtree depends only on its content and the value inherited from above, and
#   the old table, sorted by (address, length) (pre-order), holds it as one slice. Under the other
#   inherited value it differs only at the first nodes below with one candidate (a rule appears or goes
#   there); nodes with both candidates emit nothing and pass the inherited value on.

BOTH = IN | OUT


def _last(block: Block, width: int) -> int:
    return block[0] + (1 << (width - block[1])) - 1


def patch_cover(cover: list[Block], changed: Block, inside: list[Block], width: int) -> list[Block]:
    """The exact cover after the set changed within the block `changed` only, to the blocks `inside`
    (the new set within it). The cover blocks of the ranges touching `changed` are cut again; the
    others are kept (a range's cut into aligned blocks depends on that range alone)."""
    lo, hi = changed[0], _last(changed, width)
    i = bisect.bisect_left(cover, (lo,))
    if i and _last(cover[i - 1], width) >= lo - 1:
        i -= 1
    j = bisect.bisect_left(cover, (hi + 2,))
    if i < j:   # widen the window to whole ranges (none when no block touches `changed`)
        while i and _last(cover[i - 1], width) + 1 == cover[i][0]:
            i -= 1
        while j < len(cover) and cover[j][0] == _last(cover[j - 1], width) + 1:
            j += 1
    local = subtract(cover[i:j], [changed], width)
    return [*cover[:i], *cover_blocks(local + inside, width), *cover[j:]]


class _Patch(_Trie):
    """ORTC over a new cover that differs from the old one only inside `changed` (sorted disjoint blocks):
    internal nodes missing every changed block take their set from the old sets and their output from
    the old table. `sets` starts as a copy of the old sets; entries of nodes that left the trie stay but
    are never read (a node is looked up only while internal and unchanged, and then its entry is current)."""

    def __init__(self, blocks: list[Block], width: int, old: Table, old_sets: Sets, changed: list[Block]
                 ) -> None:
        super().__init__(blocks, width)
        self.old = old
        self.sets = dict(old_sets)
        self.firsts = [b[0] for b in changed]
        self.lasts = [_last(b, width) for b in changed]
        self.came: Table = []                   # rows made anew (the rest are the old table's objects)
        self.kept: list[tuple[int, int]] = []   # slices of the old table taken over, in order

    def _touched(self, addr: int, plen: int) -> bool:
        i = bisect.bisect_right(self.firsts, addr + (1 << (self.width - plen)) - 1) - 1
        return i >= 0 and self.lasts[i] >= addr

    def _old_rule(self, addr: int, plen: int) -> int:
        """The old table's value on the node (address, length), 0 when it had no rule there."""
        i = bisect.bisect_left(self.old, (addr, plen))
        if i < len(self.old) and self.old[i][0] == addr and self.old[i][1] == plen:
            return self.old[i][2]
        return 0

    def _fresh(self, row: tuple[int, int, int], out: Table) -> None:
        self.came.append(row)
        out.append(row)

    def _take(self, first: int, end: int, out: Table) -> None:
        if first < end:
            self.kept.append((first, end))
            out.extend(self.old[first:end])

    def dropped(self) -> Table:
        """The old rows outside every slice taken over (the slices come in table order)."""
        out: Table = []
        at = 0
        for first, end in self.kept:
            out += self.old[at:first]
            at = end
        return out + self.old[at:]

    def patch_build(self, addr: int, plen: int, lo: int, hi: int) -> int:
        """Pass 2 on the changed paths."""
        leaf = self._leaf(addr, plen, lo, hi)
        if leaf:
            return leaf
        if not self._touched(addr, plen):
            return self.sets[(addr, plen)]
        mid, cut = self._split(addr, plen, lo, hi)
        left = self.patch_build(addr, plen + 1, lo, cut)
        right = self.patch_build(mid, plen + 1, cut, hi)
        result = (left & right) or (left | right)
        self.sets[(addr, plen)] = result
        return result

    def patch_choose(self, addr: int, plen: int, lo: int, hi: int, inherited: int, old_inherited: int,
                     out: Table) -> None:
        """Pass 3 on the changed paths; `old_inherited` is the value the old table gave this node."""
        leaf = self._leaf(addr, plen, lo, hi)
        if not leaf and not self._touched(addr, plen):
            self._splice(addr, plen, lo, hi, old_inherited, inherited, out)
            return
        candidates = leaf or self.sets[(addr, plen)]
        if not candidates & inherited:
            inherited = candidates
            self._fresh((addr, plen, inherited), out)
        if leaf:
            return
        below = self._old_rule(addr, plen) or old_inherited
        mid, cut = self._split(addr, plen, lo, hi)
        self.patch_choose(addr, plen + 1, lo, cut, inherited, below, out)
        self.patch_choose(mid, plen + 1, cut, hi, inherited, below, out)

    def _splice(self, addr: int, plen: int, lo: int, hi: int, old_inherited: int, inherited: int,
                out: Table) -> None:
        """The output of an unchanged node (leaf or internal) under `inherited`, from its old output under
        `old_inherited`."""
        first = bisect.bisect_left(self.old, (addr, plen))
        end = bisect.bisect_left(self.old, (addr + (1 << (self.width - plen)),), first)
        if inherited == old_inherited:
            self._take(first, end, out)
            return
        leaf = self._leaf(addr, plen, lo, hi)
        candidates = leaf or self.sets[(addr, plen)]
        if candidates != BOTH:   # a rule on the node iff its value differs from the inherited one
            if first < end and self.old[first][0] == addr and self.old[first][1] == plen:
                self._take(first + 1, end, out)
            else:
                self._fresh((addr, plen, candidates), out)
                self._take(first, end, out)
            return
        mid, cut = self._split(addr, plen, lo, hi)   # both: no rule here, both children inherit
        self._splice(addr, plen + 1, lo, cut, old_inherited, inherited, out)
        self._splice(mid, plen + 1, cut, hi, old_inherited, inherited, out)


def patch_table(cover: list[Block], width: int, default: int, old: Table, old_sets: Sets,
                changed: list[Block]) -> tuple[Table, Sets, Table, Table]:
    """minimal_table_sets(cover, width, default), given `old` and `old_sets` from minimal_table_sets (or
    this function) of a cover that differs from `cover` only inside the sorted disjoint blocks `changed`,
    with the same default; and the old rows it dropped and the rows it made anew (the rest of the new
    table are the old table's own objects; a row may go and come back equal). Work grows with the
    changed blocks, the trie depth and the rules that change, not with the cover, apart from list and
    dict copies."""
    trie = _Patch(cover, width, old, old_sets, changed)
    trie.patch_build(0, 0, 0, len(cover))
    out: Table = []
    trie.patch_choose(0, 0, 0, len(cover), default, default, out)
    return out, trie.sets, trie.dropped(), trie.came
