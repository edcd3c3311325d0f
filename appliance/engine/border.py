"""The border blocklist kept up to date report by report (intra.border_blocklist, incrementally).

`LiveBlocklist` holds what `border_blocklist` derives from the topology (internal IGP prefixes, anycast and
shared space: rebuilt only when the topology changes) and indexes the reports by prefix, the holes and the
internal prefixes in radix trees, and which internal prefix wrote which blocklist entry. A report change
redoes only the internal prefixes it can affect: its own prefix, or, when an anycast/special report opens or
closes a hole, the internal prefixes overlapping that hole. Equal to `border_blocklist` over the same inputs
(tests/unit/engine/test_incremental_reports.py), including which internal prefix's provenance an entry
carries when two produce the same piece (the later in `border_blocklist`'s order wins). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable

import radix

from appliance.engine.intra import (
    igp_internal,
    is_hole,
    outermost,
    report_order,
    report_tag,
    shared_with_outside,
)
from appliance.engine.prefixset import subtract_space
from appliance.model import IgpPrefix, Interface, Neighbor, PrefixReport, prefix_sort_key

__all__ = ["LiveBlocklist"]

Rank = tuple[int, int, tuple[str | bool, ...]]


class LiveBlocklist:
    """The domain's border blocklist (`block`: entry -> provenance) and what it is derived from."""

    def __init__(self, reports: Iterable[PrefixReport], igp: Iterable[IgpPrefix],
                 interfaces: Iterable[Interface], neighbors: Iterable[Neighbor]) -> None:
        igp, interfaces = tuple(igp), tuple(interfaces)
        self.igp_why, anycast = igp_internal(igp, interfaces)
        self.igp_rank = {p: i for i, p in enumerate(self.igp_why)}
        self.shared = shared_with_outside(interfaces, neighbors, igp)
        self.fixed_holes = anycast | self.shared
        self.hole_reports: dict[str, int] = {}  # anycast/special report prefix -> how many reports
        self.by_prefix: dict[str, dict[PrefixReport, None]] = {}  # the other reports
        self.holes = radix.Radix()
        self.keys = radix.Radix()  # internal prefixes (IGP or reported)
        self.pieces: dict[str, tuple[str, ...]] = {}  # internal prefix -> its blocklist entries
        self.values: dict[str, tuple[str, ...]] = {}  # internal prefix -> provenance of its entries
        self.writers: dict[str, set[str]] = {}  # entry -> internal prefixes producing it
        self.block: dict[str, tuple[str, ...]] = {}
        for h in self.fixed_holes:
            self.holes.add(h)
        for p in self.igp_why:
            self.keys.add(p)
        for r in reports:
            self._count(r, True)
        self._refresh({n.prefix for n in self.keys})

    def apply(self, report: PrefixReport, add: bool) -> bool:
        """One report in or out (the caller filters repeats); True when the blocklist changed."""
        return self._refresh(self._count(report, add))

    def _count(self, r: PrefixReport, add: bool) -> set[str]:
        """Index `r`; return the internal prefixes whose entries it may change."""
        p = r.prefix
        if not is_hole(r):
            members = self.by_prefix.setdefault(p, {})
            if add:
                members[r] = None
            else:
                members.pop(r, None)
            if not members:
                del self.by_prefix[p]
            internal = p in self.by_prefix or p in self.igp_why
            if internal and self.keys.search_exact(p) is None:
                self.keys.add(p)
            elif not internal and self.keys.search_exact(p) is not None:
                self.keys.delete(p)
            return {p}
        before = self.hole_reports.get(p, 0)
        after = before + (1 if add else -1)
        if after:
            self.hole_reports[p] = after
        else:
            self.hole_reports.pop(p, None)
        if p in self.fixed_holes or bool(before) == bool(after):
            return set()
        if after:
            self.holes.add(p)
        else:
            self.holes.delete(p)
        overlapping = [*self.keys.search_covering(p), *self.keys.search_covered(p)]
        return {n.prefix for n in overlapping}

    def _refresh(self, affected: set[str]) -> bool:
        """Redo the entries of `affected` internal prefixes; True when the blocklist changed."""
        touched: set[str] = set()
        for a in affected:
            old = self.pieces.pop(a, ())
            for piece in old:
                self.writers[piece].discard(a)
            touched.update(old)
            pieces, value = self._entry(a)
            if pieces:
                self.pieces[a], self.values[a] = pieces, value
                for piece in pieces:
                    self.writers.setdefault(piece, set()).add(a)
                touched.update(pieces)
            else:
                self.values.pop(a, None)
        changed = False
        for piece in touched:
            writers = self.writers.get(piece)
            now = self.values[max(writers, key=self._rank)] if writers else None
            if now != self.block.get(piece):
                changed = True
                if now is None:
                    del self.block[piece]
                else:
                    self.block[piece] = now
            if not writers:
                self.writers.pop(piece, None)
        return changed

    def _entry(self, prefix: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The blocklist entries of one internal prefix and their provenance (border_blocklist's loop)."""
        tags = set(self.igp_why.get(prefix, ()))
        tags.update(report_tag(r) for r in self.by_prefix.get(prefix, ()))
        if not tags or self.holes.search_best(prefix) is not None:
            return (), ()
        inner = outermost(sorted((n.prefix for n in self.holes.search_covered(prefix)), key=prefix_sort_key))
        pieces = subtract_space([prefix], inner) if inner else (prefix,)
        extra = tuple(f"carved:{h} {'shared' if h in self.shared else 'anycast/special'}" for h in inner)
        return pieces, tuple(sorted(tags)) + extra

    def _rank(self, prefix: str) -> Rank:
        """border_blocklist's order of internal prefixes: IGP ones as listed, then reported ones by their
        first report in report_order; the last one writing an entry gives its provenance."""
        if prefix in self.igp_rank:
            return (0, self.igp_rank[prefix], ())
        return (1, 0, min(report_order(r) for r in self.by_prefix[prefix]))
