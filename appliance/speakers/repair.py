"""Drift repair: every `[timers] drift_check_s`, hold each router's listing against savd's intent and re-push.

The imperative shell around monitor/drift.py. For each router with FlowSpec peers, the newest rule listing
its enforcer gave the poller (DaemonContext.rule_listings) is compared with the rules the router's pushers
want it to hold. A router is skipped, not judged, while it cannot be: no listing since the last check, a
push to it in flight or failed, a session down (the re-sync on session up is the repair there; its alarms
say why), or a listing that may predate the last push (`settle_s`). Confirmed differences raise
`drift.rule` alarms and go back out as a targeted re-announce / withdrawal through the same pushers, so
the journal and the held state follow. Counted in Prometheus:

    savd_drift_detected_total{router,kind}   drift episodes (kind missing | extra | changed)
    savd_drift_repairs_total{router,op}      rules re-announced / withdrawn to repair drift
    savd_drift_repaired_total{router}        episodes that ended after savd repaired them
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from appliance.flowspec.rules import FlowMatch, FlowRule
from appliance.model import Event, Severity
from appliance.monitor.drift import DriftWatch
from appliance.periodic import Periodic
from appliance.speakers.pusher import FlowPusher, PushError

if TYPE_CHECKING:
    from appliance.context import DaemonContext
    from appliance.speakers.sessions import SpeakerSet

log = logging.getLogger(__name__)

__all__ = ["DriftRepair", "component"]

Targets = Sequence[tuple[FlowPusher, str]]


class _Counts(Collector):
    def __init__(self, repair: DriftRepair) -> None:
        self.r = repair

    def collect(self) -> Iterator[Metric]:
        detected = CounterMetricFamily("savd_drift_detected", "Drift episodes: a router holding a rule "
                                       "otherwise than savd intends", labels=["router", "kind"])
        for (router, kind), n in sorted(self.r.detected.items()):
            detected.add_metric([router, kind], n)
        yield detected
        repairs = CounterMetricFamily("savd_drift_repairs", "Rules re-pushed to repair drift",
                                      labels=["router", "op"])
        for (router, op), n in sorted(self.r.repairs.items()):
            repairs.add_metric([router, op], n)
        yield repairs
        repaired = CounterMetricFamily("savd_drift_repaired", "Drift episodes ended after a repair",
                                       labels=["router"])
        for router, n in sorted(self.r.repaired.items()):
            repaired.add_metric([router], n)
        yield repaired


class DriftRepair:
    """A daemon component; `check_once` is one round over every router (tests call it directly)."""

    name = "drift-repair"

    def __init__(self, speakers: SpeakerSet, interval_s: float, settle_s: float = 2.0) -> None:
        self.speakers, self.interval_s, self.settle_s = speakers, interval_s, settle_s
        self.watch = DriftWatch()
        self.detected: dict[tuple[str, str], int] = {}
        self.repairs: dict[tuple[str, str], int] = {}
        self.repaired: dict[str, int] = {}
        self._checked: dict[str, float] = {}   # router -> arrival time of the listing last judged
        self._task: Periodic | None = None

    def _judgeable(self, targets: Targets, listed_at: float) -> bool:
        return all(pusher.in_sync(peer) and listed_at >= pusher.applied_at(peer) + self.settle_s
                   for pusher, peer in targets)

    async def check_once(self, ctx: DaemonContext) -> int:
        """One round; returns how many routers were judged."""
        judged = 0
        for router, targets in sorted(self.speakers.targets.items()):
            listing = ctx.rule_listings.get(router)
            if listing is None or listing[0] == self._checked.get(router) or not targets:
                continue
            listed_at, entries = listing
            if not self._judgeable(targets, listed_at):
                continue
            self._checked[router] = listed_at
            judged += 1
            intended: dict[FlowMatch, FlowRule] = {}
            for pusher, peer in targets:
                intended.update((r.match, r) for r in pusher.wanted(peer))
            found = self.watch.check(router, intended.values(), entries)
            for kind, n in found.detected.items():
                self.detected[(router, kind)] = self.detected.get((router, kind), 0) + n
            if found.repaired:
                self.repaired[router] = self.repaired.get(router, 0) + found.repaired
            for notice in found.notices:
                ctx.monitor.emit(notice)
            if found.repair:
                await self._repair(ctx, router, targets, found.repair.announce, found.repair.withdraw)
        return judged

    async def _repair(self, ctx: DaemonContext, router: str, targets: Targets,
                      announce: Sequence[FlowRule], withdraw: Sequence[FlowRule]) -> None:
        for pusher, peer in targets:
            try:
                sent = await pusher.repair(peer, announce, withdraw)
            except PushError as exc:
                ctx.monitor.publish(Event(0.0, "flowspec", "flowspec.push-failed", Severity.ERROR, str(exc),
                                          {"router": router, "peer": peer, "drift_repair": "true"}, True))
                continue
            for op, n in (("announce", len(sent.announce)), ("withdraw", len(sent.withdraw))):
                if n:
                    self.repairs[(router, op)] = self.repairs.get((router, op), 0) + n
            log.warning("event=drift-repaired router=%s peer=%s announced=%d withdrawn=%d", router, peer,
                        len(sent.announce), len(sent.withdraw))

    async def start(self, ctx: DaemonContext) -> None:
        ctx.metrics.registry.register(_Counts(self))

        async def round_() -> None:
            try:
                await self.check_once(ctx)
            except Exception:  # one bad round never ends the check
                log.exception("event=drift-check-failed")
        self._task = Periodic("drift-repair", self.interval_s, round_)
        self._task.start()

    async def stop(self) -> None:
        if self._task:
            await self._task.stop()
            self._task = None


def component(ctx: DaemonContext, speakers: SpeakerSet | None) -> DriftRepair | None:
    """A drift check when savd pushes FlowSpec, reads enforcers, and `[timers] drift_check_s` > 0."""
    interval = ctx.config.timers.drift_check_s
    if speakers is None or not ctx.config.enforcers or interval <= 0:
        return None
    return DriftRepair(speakers, interval)
