"""Spoofing traces (the controller draft's traceability, seeds/003): where spoofed traffic enters, from whom,
claiming which sources, how much and when.

A trace is one (router, interface): the upstream it arrives from (the BGP-LS link's remote router for an
internal interface, the eBGP peer's ASN and address for an external one, the attached hosts for an access
interface) and its top spoofed source prefixes, each with a time series of dropped packets and bytes.

`TraceBoard` listens on the event bus: each spoofing-seen event is one enforcer poll's rise of a drop
counter, attributed to router, interface and source prefix by the CounterBoard. A catch-all's rise
(0.0.0.0/0, ::/0) goes to the actual sources its event names (`top_sources`, aggregated by the
enforcer), and only what they do not cover to the rule's own prefix, so interface totals stay the rise.
It keeps per (router, interface, source) at most `window_s / bucket_s` buckets (per minute for the last
hour by default) and at most `max_series` series (the least recently active go first), so memory is
bounded whatever the traffic.
`upstream()` resolves the neighbour from the topology and the configured eBGP neighbours; it is pure.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from appliance.model import Interface, Link, Neighbor
from appliance.monitor.bus import Record
from appliance.monitor.events import EventType

SeriesKey = tuple[str, str, str]  # router, interface, source prefix
UpstreamKind = Literal["internal", "external", "access", "unknown"]


@dataclass(frozen=True, slots=True)
class Upstream:
    """Who sends into an interface: a router of the domain (internal), an eBGP peer (external), the hosts
    of an access interface, or unknown when the topology does not name the interface."""

    kind: UpstreamKind
    router: str = ""
    address: str = ""
    asn: int | None = None
    relationship: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "router": self.router, "address": self.address, "asn": self.asn,
                "relationship": self.relationship}


def upstream(router: str, interface: str, interfaces: Iterable[Interface], links: Iterable[Link],
             neighbors: Iterable[Neighbor], reported: Collection[tuple[str, str]] = ()) -> list[Upstream]:
    """The neighbours traffic entering `router` `interface` comes from (several on a LAN or an IXP).
    `reported`: the (router, interface) pairs with source-prefix reports: the hosts' side of an access
    router, which BGP-LS does not describe when the IGP does not run there."""
    peers = [Upstream("external", address=n.address, asn=n.asn, relationship=str(n.relationship))
             for n in neighbors if n.router == router and n.interface == interface]
    if peers:
        return sorted(peers, key=lambda u: (u.address, u.asn or 0))
    iface = next((i for i in interfaces if i.router == router and i.name == interface), None)
    if iface is None:
        return [Upstream("access" if (router, interface) in reported else "unknown")]
    if iface.external:
        return [Upstream("external")]  # an eBGP interface whose peer is neither configured nor reported
    own = {a.split("/")[0] for a in iface.addresses}
    remote = sorted({(lk.remote, lk.remote_address) for lk in links
                     if lk.local == router and lk.local_address and lk.local_address in own})
    if remote:
        return [Upstream("internal", router=r, address=a) for r, a in remote]
    return [Upstream("access")]


def parse_top_sources(packets: str, octets: str = "") -> list[tuple[str, int, int]]:
    """A spoofing-seen event's `top_sources` ("198.18.7.0/24:15,...") and `top_source_bytes` back into
    (prefix, packets, bytes); an IPv6 prefix has colons too, so the count is after the last one."""
    byte_of: dict[str, int] = {}
    for item in filter(None, octets.split(",")):
        prefix, _, value = item.rpartition(":")
        if value.isdigit():
            byte_of[prefix] = int(value)
    out = []
    for item in filter(None, packets.split(",")):
        prefix, _, value = item.rpartition(":")
        if prefix and value.isdigit():
            out.append((prefix, int(value), byte_of.get(prefix, 0)))
    return out


@dataclass(slots=True)
class _Series:
    buckets: deque[list[float]]  # [start, packets, bytes], oldest first
    first_seen: float
    last_seen: float


@dataclass(frozen=True, slots=True)
class SourceTrace:
    prefix: str
    packets: int
    bytes: int
    first_seen: float
    last_seen: float
    series: tuple[tuple[float, int, int], ...]  # (bucket start, packets, bytes), oldest first

    def to_dict(self) -> dict[str, Any]:
        return {"prefix": self.prefix, "packets": self.packets, "bytes": self.bytes,
                "first_seen": self.first_seen, "last_seen": self.last_seen,
                "series": [{"time": t, "packets": p, "bytes": b} for t, p, b in self.series]}


@dataclass(frozen=True, slots=True)
class InterfaceTrace:
    router: str
    interface: str
    packets: int
    bytes: int
    first_seen: float
    last_seen: float
    sources: tuple[SourceTrace, ...]   # the top ones, most packets first
    source_count: int                  # how many spoofed sources in the window (sources holds the top)
    upstream: tuple[Upstream, ...] = field(default=())


class TraceBoard:
    """Spoofed traffic per (router, interface, source prefix), bucketed; fed by `on_record` (bus)."""

    def __init__(self, bucket_s: float = 60.0, window_s: float = 3600.0, max_series: int = 10_000) -> None:
        if bucket_s <= 0 or window_s < bucket_s or max_series < 1:
            raise ValueError("need 0 < bucket_s <= window_s and max_series >= 1")
        self.bucket_s = bucket_s
        self.window_s = window_s
        self.max_series = max_series
        self._buckets = math.ceil(window_s / bucket_s)
        self._series: OrderedDict[SeriesKey, _Series] = OrderedDict()  # least recently active first
        self.evicted = 0

    def on_record(self, record: Record) -> None:
        """A bus subscriber: each active spoofing-seen event adds its rise."""
        e = record.event
        if e.type != EventType.SPOOFING_SEEN or e.fields.get("active") != "true":
            return
        try:
            packets, octets = int(e.fields.get("packets", "0")), int(e.fields.get("bytes", "0"))
        except ValueError:
            return
        router, iface = e.fields.get("router", ""), e.fields.get("interface", "")
        for source, p, b in parse_top_sources(e.fields.get("top_sources", ""),
                                              e.fields.get("top_source_bytes", "")):
            p, b = min(p, packets), min(b, octets)   # never more than the rule's own rise
            self.add(router, iface, source, p, b, e.time)
            packets, octets = packets - p, octets - b
        self.add(router, iface, e.fields.get("source_prefix", ""), packets, octets, e.time)

    def add(self, router: str, interface: str, source: str, packets: int, octets: int, t: float) -> None:
        if packets <= 0 and octets <= 0:
            return
        key = (router, interface, source)
        start = math.floor(t / self.bucket_s) * self.bucket_s
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(deque(maxlen=self._buckets), t, t)
            while len(self._series) > self.max_series:
                self._series.popitem(last=False)
                self.evicted += 1
        self._series.move_to_end(key)
        series.last_seen = max(series.last_seen, t)
        last = series.buckets[-1] if series.buckets else None
        if last is not None and last[0] == start:
            last[1] += packets
            last[2] += octets
        elif last is None or start > last[0]:
            series.buckets.append([start, packets, octets])
        else:  # late sample for an older bucket: fold it into the newest one rather than reorder
            last[1] += packets
            last[2] += octets

    def traces(self, now: float, router: str = "", interface: str = "", since: float = 0.0, top: int = 10,
               neighbours: Callable[[str, str], Iterable[Upstream]] | None = None
               ) -> list[InterfaceTrace]:
        """One trace per (router, interface) with spoofed traffic in the window (and after `since`), most
        packets first; each with its `top` sources, most packets first. `neighbours(router, interface)`
        gives the upstream (`upstream()` bound to a topology); without it the upstream is left empty."""
        floor = max(now - self.window_s, since)
        by_iface: dict[tuple[str, str], list[SourceTrace]] = {}
        for (r, i, source), s in self._series.items():
            if (router and r != router) or (interface and i != interface):
                continue
            kept = tuple((b[0], int(b[1]), int(b[2])) for b in s.buckets if b[0] + self.bucket_s > floor)
            if not kept:
                continue
            by_iface.setdefault((r, i), []).append(SourceTrace(
                source, sum(p for _, p, _ in kept), sum(b for _, _, b in kept), max(s.first_seen, kept[0][0]),
                s.last_seen, kept))
        out = []
        for (r, i), sources in by_iface.items():
            ranked = sorted(sources, key=lambda st: (-st.packets, -st.bytes, st.prefix))
            ups = tuple(neighbours(r, i)) if neighbours is not None else ()
            out.append(InterfaceTrace(
                r, i, sum(st.packets for st in sources), sum(st.bytes for st in sources),
                min(st.first_seen for st in sources), max(st.last_seen for st in sources),
                tuple(ranked[:top]), len(sources), ups))
        return sorted(out, key=lambda t: (-t.packets, t.router, t.interface))
