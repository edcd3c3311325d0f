"""The engine's VRP index: VRPs by exact prefix, and the VRPs covering a prefix (RFC 6811 section 2).

Owns the one structure `rib.RpkiView` answers route origin validation from. It used to be a py-radix tree
with a node per VRP prefix: for 600k VRPs that took ~3.5 s and ~400 MiB, while a full engine build asks for
the covering VRPs of only the ~10-20k prefixes inside customer cones. So the index is a dict from the prefix
text to its VRP (a tuple of them when several share the prefix; built in C, no object per VRP), and a
covering lookup probes each prefix length present: IPv4 by formatting the masked address (VRP prefixes are
canonical text, as every loader writes them), IPv6 in a per-length dict of network integers built on the
first lookup (its text form is not cheap to produce). A lookup costs one probe per length present (about
25 for IPv4). `tests/unit/engine/test_vrpindex.py` checks it against a naive covering search. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable
from operator import attrgetter

from appliance.model import Vrp

__all__ = ["VrpIndex"]

_prefix_of = attrgetter("prefix")
_MASK4 = tuple((0xFFFFFFFF << (32 - n)) & 0xFFFFFFFF for n in range(33))
_MASK6 = tuple(((1 << 128) - 1) ^ ((1 << (128 - n)) - 1) for n in range(129))


class VrpIndex:
    """VRPs grouped by prefix text; `covering` answers which VRPs cover a prefix, most specific first."""

    __slots__ = ("_by_prefix", "_lengths4", "_v6")

    def __init__(self, vrps: Iterable[Vrp]) -> None:
        vrps = vrps if isinstance(vrps, tuple | list) else tuple(vrps)
        # one VRP per prefix is the common case: a dict built in C, then the prefixes held by several VRPs
        # (MOAS, several maxLengths) regrouped in input order
        by_prefix: dict[str, Vrp | tuple[Vrp, ...]] = dict(zip(map(_prefix_of, vrps), vrps, strict=True))
        if len(by_prefix) != len(vrps):
            shared = {p for p, n in Counter(map(_prefix_of, vrps)).items() if n > 1}
            for p in shared:
                by_prefix[p] = ()
            for v in vrps:
                if v.prefix in shared:
                    by_prefix[v.prefix] = (*by_prefix[v.prefix], v)  # type: ignore[misc]
        self._by_prefix = by_prefix
        self._lengths4: list[int] | None = None  # descending; built on the first lookup
        self._v6: dict[int, dict[int, str]] | None = None  # length -> network int -> prefix text

    def __len__(self) -> int:
        return len(self._by_prefix)

    def at(self, prefix: str) -> tuple[Vrp, ...]:
        """The VRPs whose prefix is exactly `prefix`."""
        hit = self._by_prefix.get(prefix, ())
        return (hit,) if isinstance(hit, Vrp) else hit

    def _build_lengths(self) -> tuple[list[int], dict[int, dict[int, str]]]:
        lengths4: set[str] = set()
        v6: dict[int, dict[int, str]] = {}
        for p in self._by_prefix:
            if ":" in p:
                net = ipaddress.IPv6Network(p, strict=False)
                v6.setdefault(net.prefixlen, {})[int(net.network_address)] = p
            else:
                lengths4.add(p[p.index("/") + 1 :])
        self._lengths4 = sorted((int(n) for n in lengths4), reverse=True)
        self._v6 = v6
        return self._lengths4, v6

    def covering(self, prefix: str) -> list[Vrp]:
        """Every VRP whose prefix covers `prefix` (equal or less specific), longest VRP prefix first."""
        lengths4, v6 = (
            (self._lengths4, self._v6) if self._lengths4 is not None and self._v6 is not None
            else self._build_lengths()
        )
        by_prefix = self._by_prefix
        out: list[Vrp] = []
        if ":" in prefix:
            net = ipaddress.IPv6Network(prefix, strict=False)
            value, route_len = int(net.network_address), net.prefixlen
            for plen in sorted(v6, reverse=True):
                if plen <= route_len:
                    text = v6[plen].get(value & _MASK6[plen])
                    if text is not None:
                        out.extend(self.at(text))
            return out
        addr, _, length = prefix.partition("/")
        a, b, c, d = addr.split(".")
        value = (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)
        route_len = int(length)
        for plen in lengths4:
            if plen <= route_len:
                m = value & _MASK4[plen]
                hit = by_prefix.get(f"{m >> 24}.{(m >> 16) & 255}.{(m >> 8) & 255}.{m & 255}/{plen}")
                if hit is not None:
                    if isinstance(hit, Vrp):
                        out.append(hit)
                    else:
                        out.extend(hit)
        return out

    def patch(self, added: Iterable[Vrp], removed: Iterable[Vrp]) -> dict[int, None]:
        """Remove then add VRPs in place; return the ASNs touched (in order, for determinism)."""
        by_prefix = self._by_prefix
        touched: dict[int, None] = {}
        for v in removed:
            entries = self.at(v.prefix)
            if v in entries:
                rest = tuple(e for e in entries if e != v)
                if rest:
                    by_prefix[v.prefix] = rest[0] if len(rest) == 1 else rest
                else:
                    del by_prefix[v.prefix]
                    self._forget(v.prefix)
                touched[v.asn] = None
        for v in added:
            entries = self.at(v.prefix)
            if not entries:
                by_prefix[v.prefix] = v
                self._learn(v.prefix)
            elif v not in entries:
                by_prefix[v.prefix] = (*entries, v)
            touched[v.asn] = None
        return touched

    def _learn(self, prefix: str) -> None:
        if self._lengths4 is None or self._v6 is None:
            return
        if ":" in prefix:
            net = ipaddress.IPv6Network(prefix, strict=False)
            self._v6.setdefault(net.prefixlen, {})[int(net.network_address)] = prefix
            return
        plen = int(prefix[prefix.index("/") + 1 :])
        if plen not in self._lengths4:
            self._lengths4 = sorted((*self._lengths4, plen), reverse=True)

    def _forget(self, prefix: str) -> None:
        if self._v6 is None or ":" not in prefix:
            return  # an IPv4 length left without prefixes costs one empty probe, nothing else
        net = ipaddress.IPv6Network(prefix, strict=False)
        table = self._v6.get(net.prefixlen)
        if table is not None:
            table.pop(int(net.network_address), None)
            if not table:
                del self._v6[net.prefixlen]
