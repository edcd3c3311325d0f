"""Enforcer counters and the spoofing they reveal (the controller draft's traceability).

Enforcers report absolute packet/byte counters per rule. `CounterBoard.update` keeps the latest sample
of each, computes how much each counter rose since the previous sample (a counter that went down was
reset, so its new value is the rise), and returns notices: `SpoofingSeen(active=True)` when a counter of
a rule that matches spoofed traffic rose, and `SpoofingSeen(active=False)` once such a counter has been
quiet for `quiet_s`. Pure apart from the time passed in; the caller emits the notices.

A catch-all discard's source prefix is 0.0.0.0/0 or ::/0, which names nobody: its enforcer also reports
the top sources that hit it (`top_sources`, aggregated to /24 or /48, absolute counts per source since
it was last idle), and the notice names their rises, most packets first. A source absent from the
previous sample counts whole (it is new, or it was outside the top: then the rise is overstated).

Each counter is a policy-hit counter (seeds/002 7.7.2): `rows()` serves it with the common metadata
(time of the last sample, source enforcer:<router>, severity warning while its spoofing alarm is raised,
category nsf-counter, router, interface, prefix), the enforcer's rule it counts (`rule`, its NLRI) and
the totals since savd started; `policy_hits()` sums one rule's interfaces.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from appliance.model import Severity
from appliance.monitor.events import SpoofingSeen
from appliance.monitor.metadata import Category, Metadata

CounterKey = tuple[str, str, str]  # router, interface, source prefix (or "*" for "any other source")


@dataclass(frozen=True, slots=True)
class CounterSample:
    """One rule's counters on one router, as its enforcer reads them from nftables.

    `spoofed` is True for rules whose matches are spoofed traffic (block entries, the allowlist's
    catch-all), False for rules that count legitimate traffic (allowlist accepts).
    """

    router: str
    interface: str
    source_prefix: str
    action: str
    packets: int
    bytes: int
    spoofed: bool = True
    rule: str = ""  # the enforcer's rule (its FlowSpec NLRI) this counter belongs to; "" if not reported
    #: a catch-all's top actual sources: (aggregated prefix, packets, bytes), absolute like the counters
    top_sources: tuple[tuple[str, int, int], ...] = ()

    def key(self) -> CounterKey:
        return (self.router, self.interface, self.source_prefix)

    def to_dict(self) -> dict[str, Any]:
        return {
            "router": self.router,
            "interface": self.interface,
            "source_prefix": self.source_prefix,
            "action": self.action,
            "packets": self.packets,
            "bytes": self.bytes,
            "spoofed": self.spoofed,
            "rule": self.rule,
            "top_sources": [{"source": p, "packets": n, "bytes": b} for p, n, b in self.top_sources],
        }


@dataclass(slots=True)
class _Track:
    sample: CounterSample
    total_packets: int
    total_bytes: int
    last_rise_at: float
    alarmed: bool = False
    sampled_at: float = 0.0


class CounterBoard:
    def __init__(self, quiet_s: float = 60.0) -> None:
        self.quiet_s = quiet_s
        self._tracks: dict[CounterKey, _Track] = {}
        self._routers: set[str] = set()   # routers whose counters have been sampled once
        self._alarmed: set[CounterKey] = set()   # tracks whose spoofing alarm is raised

    def update(self, samples: Iterable[CounterSample], now: float,
               polled: Iterable[str] = ()) -> list[SpoofingSeen]:
        """Take one poll's samples; `polled` names the routers polled even if they listed no counter
        (an enforcer with no rule yet), so the rules they install later count from zero."""
        notices: list[SpoofingSeen] = []
        samples = list(samples)
        known = set(self._routers)
        for s in samples:
            key = s.key()
            track = self._tracks.get(key)
            if track is not None and (track.sample.packets == s.packets and track.sample.bytes == s.bytes
                                      and track.sample.top_sources == s.top_sources):
                track.sample, track.sampled_at = s, now   # nothing rose: most of a big router's rules
                continue
            if track is None and s.router not in known:
                # a router's first samples are a baseline: what happened before we watched (savd
                # restarted, the enforcer kept counting) is not attributed
                self._tracks[key] = _Track(s, s.packets, s.bytes, now, sampled_at=now)
                continue
            if track is None:
                # a rule that appeared since the last poll of a router we watch starts from zero: its
                # first drops (between its install and this poll) are spoofing seen like any other
                zero = dataclasses.replace(s, packets=0, bytes=0, top_sources=())
                track = self._tracks[key] = _Track(zero, 0, 0, now, sampled_at=now)
            rise_p, rise_b = _rise(track.sample.packets, s.packets), _rise(track.sample.bytes, s.bytes)
            rises = source_rises(track.sample.top_sources, s.top_sources)
            track.sample = s
            track.sampled_at = now
            track.total_packets += rise_p
            track.total_bytes += rise_b
            if rise_p > 0:
                track.last_rise_at = now
                if s.spoofed:
                    track.alarmed = True
                    self._alarmed.add(key)
                    tops = ",".join(f"{p}:{n}" for p, n, _ in rises)
                    tops_b = ",".join(f"{p}:{b}" for p, _, b in rises)
                    notices.append(SpoofingSeen(s.router, s.interface, s.source_prefix, rise_p, rise_b,
                                                top_sources=tops, top_source_bytes=tops_b))
        self._routers.update(s.router for s in samples)
        self._routers.update(polled)
        notices.extend(self._quiet(now))
        return notices

    def _quiet(self, now: float) -> list[SpoofingSeen]:
        """Clear the alarms gone quiet (only the alarmed tracks are looked at: a poll of one router
        would otherwise walk every router's 10k tracks)."""
        out = []
        for key in sorted(self._alarmed):
            track = self._tracks[key]
            if now - track.last_rise_at >= self.quiet_s:
                track.alarmed = False
                self._alarmed.discard(key)
                s = track.sample
                out.append(SpoofingSeen(s.router, s.interface, s.source_prefix, 0, 0, active=False))
        return out

    def tick(self, now: float) -> list[SpoofingSeen]:
        """Clear spoofing alarms whose counters stayed quiet (call periodically)."""
        return self._quiet(now)

    def forget_router(self, router: str) -> None:
        self._routers.discard(router)
        for key in [k for k in self._tracks if k[0] == router]:
            del self._tracks[key]
            self._alarmed.discard(key)

    def samples(self, router: str = "", interface: str = "") -> list[CounterSample]:
        return [t.sample for k, t in sorted(self._tracks.items())
                if (not router or k[0] == router) and (not interface or k[1] == interface)]

    def metadata(self, key: CounterKey) -> Metadata:
        """The common metadata of one counter (monitor/metadata.py)."""
        t = self._tracks[key]
        severity = Severity.WARNING if t.alarmed else Severity.INFO
        return Metadata(t.sampled_at, f"enforcer:{key[0]}", severity, Category.NSF_COUNTER, *key)

    def rows(self, router: str = "", interface: str = "") -> list[dict[str, Any]]:
        """Each counter with its metadata, its latest sample and its totals (GET /api/v1/counters)."""
        return [{**self.metadata(k).to_dict(), **t.sample.to_dict(), "total_packets": t.total_packets,
                 "total_bytes": t.total_bytes}
                for k, t in sorted(self._tracks.items())
                if (not router or k[0] == router) and (not interface or k[1] == interface)]

    def policy_hits(self, router: str = "") -> list[dict[str, Any]]:
        """Per enforcer rule (router, rule, or source prefix and action when the rule is not named): the
        interfaces it applies to and its totals summed over them."""
        hits: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for (r, iface, prefix), t in sorted(self._tracks.items()):
            if router and r != router:
                continue
            s = t.sample
            hit = hits.setdefault((r, s.rule, prefix, s.action), {
                "time": 0.0, "source": f"enforcer:{r}", "severity": str(Severity.INFO),
                "category": str(Category.NSF_COUNTER), "router": r, "prefix": prefix, "rule": s.rule,
                "action": s.action, "spoofed": s.spoofed, "interfaces": [], "total_packets": 0,
                "total_bytes": 0})
            hit["time"] = max(hit["time"], t.sampled_at)
            if t.alarmed:
                hit["severity"] = str(Severity.WARNING)
            hit["interfaces"].append(iface)
            hit["total_packets"] += t.total_packets
            hit["total_bytes"] += t.total_bytes
        return list(hits.values())

    def totals(self) -> dict[CounterKey, tuple[int, int, bool]]:
        """Packets and bytes per rule (monotonic across enforcer resets), and whether the rule is spoofed."""
        tracks = sorted(self._tracks.items())
        return {k: (t.total_packets, t.total_bytes, t.sample.spoofed) for k, t in tracks}


def source_rises(old: Iterable[tuple[str, int, int]], new: Iterable[tuple[str, int, int]]
                 ) -> list[tuple[str, int, int]]:
    """Per source of `new` that rose since `old`: (prefix, packets, bytes), most packets first. A source
    whose count went down expired and came back, one absent from `old` is new: its count is the rise."""
    before = {p: (n, b) for p, n, b in old}
    out = []
    for prefix, packets, octets in new:
        n0, b0 = before.get(prefix, (0, 0))
        rise_p, rise_b = _rise(n0, packets), _rise(b0, octets)
        if rise_p > 0:
            out.append((prefix, rise_p, rise_b))
    return sorted(out, key=lambda t: (-t[1], -t[2], t[0]))


def _rise(old: int, new: int) -> int:
    return new - old if new >= old else new
