"""The engine's VRP index: VRPs by exact prefix, and the VRPs covering a prefix (RFC 6811 section 2).

Owns the one structure `rib.RpkiView` answers route origin validation from. It used to be a py-radix tree
with a node per VRP prefix: for 600k VRPs that took ~3.5 s and ~400 MiB, while a full engine build asks for
the covering VRPs of only the ~10-20k prefixes inside customer cones. So the index is a dict from the prefix
text to its VRP (a tuple of them when several share the prefix; built in C, no object per VRP), and a
covering lookup probes each prefix length present: IPv4 by formatting the masked address (VRP prefixes are
canonical text, as every loader writes them), IPv6 in a per-length dict of network integers built on the
first lookup (its text form is not cheap to produce). An IPv4 lookup probes every length up to the route's
(the text of each masked address is put together from per-octet strings), an IPv6 one each length present.
`tests/unit/engine/test_vrpindex.py` checks it against a naive covering search. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import Counter
from collections.abc import Iterable
from operator import attrgetter, methodcaller

from appliance.model import Vrp

__all__ = ["VrpIndex"]

_prefix_of = attrgetter("prefix")
_has_colon = methodcaller("__contains__", ":")
_MASK6 = tuple(((1 << 128) - 1) ^ ((1 << (128 - n)) - 1) for n in range(129))
_OCTET = tuple(str(n) for n in range(256))
# per IPv4 prefix length n: the octet the mask ends in (0-3; n = 32 ends in the last), that octet's mask,
# and the text after it: the zero octets and the length
_CUT = tuple(min(n // 8, 3) for n in range(33))
_CUT_MASK = tuple((0xFF << (8 - (n - 8 * _CUT[n]))) & 0xFF for n in range(33))
_TAIL = tuple(".0" * (3 - _CUT[n]) + f"/{n}" for n in range(33))


def _v6_network(prefix: str) -> tuple[int, int]:
    """(network address as an integer, prefix length) of an IPv6 prefix, host bits cleared."""
    addr, _, length = prefix.partition("/")
    try:
        value = int.from_bytes(socket.inet_pton(socket.AF_INET6, addr), "big")
        plen = int(length)
    except (OSError, ValueError):
        value, plen = -1, -1
    if value < 0 or not 0 <= plen <= 128 or length != str(plen):
        # not plain address/length text: ipaddress reads it (or raises the ValueError it always did)
        net = ipaddress.IPv6Network(prefix, strict=False)
        return int(net.network_address), net.prefixlen
    return value & _MASK6[plen], plen


class VrpIndex:
    """VRPs grouped by prefix text; `covering` answers which VRPs cover a prefix, most specific first."""

    __slots__ = ("_by_prefix", "_v6", "_v6_lengths")

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
        self._v6: dict[int, dict[int, str]] | None = None  # length -> network int -> prefix text
        self._v6_lengths: list[int] = []  # the lengths of _v6, descending

    def __len__(self) -> int:
        return len(self._by_prefix)

    def at(self, prefix: str) -> tuple[Vrp, ...]:
        """The VRPs whose prefix is exactly `prefix`."""
        hit = self._by_prefix.get(prefix, ())
        return (hit,) if isinstance(hit, Vrp) else hit

    def _build_v6(self) -> dict[int, dict[int, str]]:
        v6: dict[int, dict[int, str]] = {}
        for p in filter(_has_colon, self._by_prefix):  # the IPv6 prefixes, picked out in C
            value, plen = _v6_network(p)
            v6.setdefault(plen, {})[value] = p
        self._v6 = v6
        self._v6_lengths = sorted(v6, reverse=True)
        return v6

    def covering(self, prefix: str) -> list[Vrp]:
        """Every VRP whose prefix covers `prefix` (equal or less specific), longest VRP prefix first."""
        by_prefix = self._by_prefix
        out: list[Vrp] = []
        if ":" in prefix:
            v6 = self._v6 if self._v6 is not None else self._build_v6()
            value, route_len = _v6_network(prefix)
            for plen in self._v6_lengths:
                if plen <= route_len:
                    text = v6[plen].get(value & _MASK6[plen])
                    if text is not None:
                        out.extend(self.at(text))
            return out
        addr, _, length = prefix.partition("/")
        octets = [int(x) for x in addr.split(".")]
        a, b, c, _d = octets  # four octets, or the ValueError a malformed address always raised
        heads = ("", f"{a}.", f"{a}.{b}.", f"{a}.{b}.{c}.")  # the text before the octet the mask cuts
        octet, cut, cut_mask, tail = _OCTET, _CUT, _CUT_MASK, _TAIL
        for plen in range(min(int(length), 32), -1, -1):
            k = cut[plen]
            hit = by_prefix.get(heads[k] + octet[octets[k] & cut_mask[plen]] + tail[plen])
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
        if self._v6 is None or ":" not in prefix:
            return  # IPv4 is probed by text
        value, plen = _v6_network(prefix)
        if plen not in self._v6:
            self._v6_lengths = sorted((*self._v6, plen), reverse=True)
        self._v6.setdefault(plen, {})[value] = prefix

    def _forget(self, prefix: str) -> None:
        if self._v6 is None or ":" not in prefix:
            return
        value, plen = _v6_network(prefix)
        table = self._v6.get(plen)
        if table is not None:
            table.pop(value, None)
            if not table:
                del self._v6[plen]
                self._v6_lengths = sorted(self._v6, reverse=True)
