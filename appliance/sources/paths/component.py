"""The path source of `savd run`: routers' eBGP paths over BMP into the store, as model.BgpPath facts.

Every route a router's eBGP peer sent it (pre-policy Adj-RIB-In, streamed by the router's BMP client to
the station, appliance/sources/paths/station.py) becomes a BgpPath on the interface of the peer it came
from. Which interface, and what the peer is to us (customer, peer, provider, route server), comes from
[[engine.neighbor]] (router, interface, asn, relationship, address = the peer's address as BMP reports it).
Each peer of each router is one store source, "bmp:<router>/<peer>", so:
- a peer that goes down (BMP Peer Down) withdraws exactly its paths, and the rules they supported follow;
- a router whose BMP session ends withdraws all its paths (fail open) and raises an alarm until it is back;
- a peer that comes up again resends its table; at its End-of-RIB whatever the store still held for it
  from before (the journal across a restart, or a table that shrank while the router was away) goes;
- paths restored from the journal whose router never comes back are withdrawn after the initial-sync
  time ([timers] bgpls_initial_sync_s), with an alarm.
Updates are applied to the store in batches (every [timers] bmp_flush_s): a full table arrives as a few
large Announce changes rather than one per UPDATE.

Not turned into facts, each counted and said once: post-policy routes (informational), Loc-RIB routes
(RFC 9069: no incoming interface), iBGP peers (peer AS = our AS: not an AS border), and peers with no
[[engine.neighbor]] entry (an alarm naming the router, peer and AS says what to add).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from appliance.config import BmpConfig, Config
from appliance.context import DaemonContext
from appliance.model import BgpPath, Event, Neighbor, Role, RouterRole, Severity
from appliance.sources.paths.events import (
    BmpEvent,
    EndOfRib,
    Malformed,
    PeerDown,
    PeerUp,
    RouterDown,
    RouterUp,
    Routes,
)
from appliance.sources.paths.station import BmpStation
from appliance.state.changes import Announce, Change, ReplaceSource, Withdraw, WithdrawSource

log = logging.getLogger("savd.paths")

SOURCE_PREFIX = "bmp:"
PathKey = tuple[str, int]  # (prefix, path_id)


def source_name(router: str, peer: str) -> str:
    return f"{SOURCE_PREFIX}{router}/{peer}"


@dataclass
class PeerTable:
    """One monitored peer's paths as the store should hold them, and what the next flush must write."""

    neighbor: Neighbor
    paths: dict[PathKey, BgpPath] = field(default_factory=dict)
    added: dict[PathKey, BgpPath] = field(default_factory=dict)
    removed: dict[PathKey, BgpPath] = field(default_factory=dict)
    sweep: bool = True  # at the next End-of-RIB, replace the source whole (drops what it held before)

    def apply(self, msg: Routes) -> None:
        n = self.neighbor
        for prefix, path_id in msg.withdrawn:
            key = (prefix, path_id)
            old = self.paths.pop(key, None)
            self.added.pop(key, None)
            if old is not None:
                self.removed.setdefault(key, old)
        for route in msg.announced:
            key = (route.prefix, route.path_id)
            path = BgpPath(n.router, n.interface, route.prefix, route.as_path, route.path_id, route.as_set)
            old = self.paths.get(key)
            if old == path:
                continue
            if old is not None:
                self.removed.setdefault(key, old)
            self.paths[key] = path
            self.added[key] = path

    def changes(self, source: str) -> list[Change]:
        """Withdrawals first (a replaced path's old version), then the announcements; clears the pending."""
        gone = [p for k, p in self.removed.items() if self.added.get(k) != p]
        new = list(self.added.values())
        self.added, self.removed = {}, {}
        out: list[Change] = []
        if gone:
            out.append(Withdraw(source, tuple(gone)))
        if new:
            out.append(Announce(source, tuple(new)))
        return out


class PathSource:
    """BMP events -> per-peer tables -> store changes, with alarms for what it cannot use."""

    name = "paths"

    def __init__(self, config: Config, stations: Iterable[BmpConfig], *, flush_s: float = 0.3,
                 initial_sync_s: float = 60.0) -> None:
        self.config = config
        self.station_configs = tuple(stations)
        self.flush_s, self.initial_sync_s = flush_s, initial_sync_s
        self.neighbors = {(n.router, n.address): n for n in config.engine.neighbors if n.address}
        self.tables: dict[tuple[str, str], PeerTable] = {}
        self.routers_up: set[str] = set()
        self.seen_sources: set[str] = set()
        self.ignored: dict[str, int] = {}
        self.stations: list[BmpStation] = []
        self._ctx: DaemonContext | None = None
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle -------------------------------------------------------------------------------------

    async def start(self, ctx: DaemonContext) -> None:
        self._ctx = ctx
        for sc in self.station_configs:
            station = BmpStation((sc.host, sc.port), netns=sc.netns or None, router_names=dict(sc.routers),
                                 on_event=self.on_event)
            await station.start()
            self.stations.append(station)
            log.info("event=bmp-station-listening name=%s listen=%s:%d netns=%s", sc.name, sc.host, sc.port,
                     sc.netns or "-")
        self._tasks = [asyncio.create_task(self._flush_loop(ctx), name="bmp-flush"),
                       asyncio.create_task(self._expire_restored(ctx), name="bmp-restored")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        ctx, self._ctx = self._ctx, None  # our own closing of the sessions withdraws nothing: the journal
        if ctx is not None:               # keeps the paths for the next start (they expire if unconfirmed)
            self.flush(ctx)
        for station in self.stations:
            await station.stop()

    def status(self) -> list[dict[str, object]]:
        return [s for station in self.stations for s in station.status()]

    # --- events in ------------------------------------------------------------------------------------

    def on_event(self, ev: BmpEvent) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        try:
            self._handle(ctx, ev)
        except Exception as exc:  # one bad event never stops the station
            log.exception("event=bmp-event-failed type=%s", type(ev).__name__)
            self._alarm(ctx, "bmp.event-failed", f"{type(ev).__name__}: {exc}", "bmp.event-failed")

    def _handle(self, ctx: DaemonContext, ev: BmpEvent) -> None:
        if isinstance(ev, Routes):
            table = self._table(ctx, ev.router, ev.peer, ev.peer_as, ev)
            if table is not None:
                table.apply(ev)
                self._dirty.set()
        elif isinstance(ev, PeerUp):
            self._peer_up(ctx, ev)
        elif isinstance(ev, EndOfRib):
            table = self.tables.get((ev.router, ev.peer))
            if table is not None and table.sweep:
                table.sweep = False
                self._sweep(ctx, ev.router, ev.peer, table)
        elif isinstance(ev, PeerDown):
            self._drop(ctx, ev.router, ev.peer)
            ctx.monitor.publish(Event(0.0, f"bmp:{ev.router}", "bmp.peer-down", Severity.WARNING,
                                      f"{ev.router}: BGP peer {ev.peer} down ({ev.reason}): its paths are "
                                      "withdrawn", {"router": ev.router, "peer": ev.peer}))
        elif isinstance(ev, RouterUp):
            self.routers_up.add(ev.router)
            ctx.monitor.clear(f"bmp.router-down/router={ev.router}", f"bmp:{ev.router}",
                              f"{ev.router}: BMP session up from {ev.address}")
            ctx.store.apply(ReplaceSource(f"{SOURCE_PREFIX}{ev.router}", ("role",),
                                          (RouterRole(ev.router, Role.BORDER, None, "bmp"),)))
            log.info("event=bmp-router-up router=%s address=%s sys_name=%s", ev.router, ev.address,
                     ev.sys_name)
        elif isinstance(ev, RouterDown):
            self.routers_up.discard(ev.router)
            for router, peer in [k for k in self.tables if k[0] == ev.router]:
                self._drop(ctx, router, peer)
            ctx.monitor.publish(Event(
                0.0, f"bmp:{ev.router}", "bmp.router-down", Severity.ERROR,
                f"{ev.router}: BMP session ended ({ev.reason}): its BGP paths and the rules they supported "
                "are withdrawn until it reconnects", {"router": ev.router}, True))
        elif isinstance(ev, Malformed):
            self._alarm(ctx, "bmp.malformed", f"BMP from {ev.router or '?'} ({ev.address}): {ev.detail}",
                        f"bmp.malformed/router={ev.router or ev.address}", router=ev.router or ev.address)

    def _peer_up(self, ctx: DaemonContext, ev: PeerUp) -> None:
        if ev.loc_rib:
            return
        table = self._table(ctx, ev.router, ev.peer, ev.peer_as, None)
        if table is None:
            return
        table.sweep = True
        if table.neighbor.asn != ev.peer_as:
            self._alarm(ctx, "bmp.neighbor-mismatch",
                        f"{ev.router}: BGP peer {ev.peer} is AS{ev.peer_as} but [[engine.neighbor]] says "
                        f"AS{table.neighbor.asn}: fix the configuration (paths are checked against "
                        f"AS{table.neighbor.asn})", f"bmp.neighbor-mismatch/peer={ev.peer}",
                        router=ev.router, peer=ev.peer)

    def _table(self, ctx: DaemonContext, router: str, peer: str, peer_as: int,
               msg: Routes | None) -> PeerTable | None:
        """The peer's table, or None (counted, and said once) when its paths cannot be facts."""
        table = self.tables.get((router, peer))
        if table is not None:
            return table if msg is None or not (msg.post_policy or msg.loc_rib) else None
        if msg is not None and (msg.post_policy or msg.loc_rib):
            self._ignore("post-policy" if msg.post_policy else "loc-rib", len(msg.announced))
            return None
        if peer_as == self.config.appliance.asn:
            self._ignore("ibgp", len(msg.announced) if msg else 0)
            return None
        neighbor = self.neighbors.get((router, peer))
        if neighbor is None:
            self._ignore("unknown-peer", len(msg.announced) if msg else 0)
            self._alarm(ctx, "bmp.unknown-peer",
                        f"{router}: eBGP peer {peer} (AS{peer_as}) has no [[engine.neighbor]] with router = "
                        f"\"{router}\" and address = \"{peer}\": its routes are not used (add its interface "
                        "and relationship)", f"bmp.unknown-peer/peer={router}/{peer}",
                        router=router, peer=peer)
            return None
        table = self.tables[(router, peer)] = PeerTable(neighbor)
        self.seen_sources.add(source_name(router, peer))
        return table

    def _ignore(self, why: str, count: int) -> None:
        if why not in self.ignored:
            log.info("event=bmp-routes-ignored reason=%s", why)
        self.ignored[why] = self.ignored.get(why, 0) + count

    def _alarm(self, ctx: DaemonContext, type_: str, message: str, alarm_id: str, **fields: str) -> None:
        ctx.monitor.publish(Event(0.0, "bmp", type_, Severity.ERROR, message,
                                  {**fields, "alarm_id": alarm_id}, True))

    # --- store out ------------------------------------------------------------------------------------

    def _drop(self, ctx: DaemonContext, router: str, peer: str) -> None:
        if self.tables.pop((router, peer), None) is not None:
            ctx.store.apply(WithdrawSource(source_name(router, peer)))
            log.info("event=bmp-peer-withdrawn router=%s peer=%s", router, peer)

    def _sweep(self, ctx: DaemonContext, router: str, peer: str, table: PeerTable) -> None:
        table.added, table.removed = {}, {}
        applied = ctx.store.apply(ReplaceSource(source_name(router, peer), ("path",),
                                                tuple(table.paths.values())))
        log.info("event=bmp-peer-synced router=%s peer=%s paths=%d changed=%s", router, peer,
                 len(table.paths), applied.changed)

    def flush(self, ctx: DaemonContext) -> int:
        """Write every peer's pending changes; returns the number of changes applied."""
        n = 0
        for (router, peer), table in list(self.tables.items()):
            for change in table.changes(source_name(router, peer)):
                ctx.store.apply(change)
                n += 1
        return n

    async def _flush_loop(self, ctx: DaemonContext) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.flush_s)
            self._dirty.clear()
            try:
                self.flush(ctx)
            except Exception:  # the store refused (e.g. disk full): keep the tables, try next round
                log.exception("event=bmp-flush-failed")
                for table in self.tables.values():
                    table.sweep = True

    async def _expire_restored(self, ctx: DaemonContext) -> None:
        """Paths the journal restored whose peer never came back are withdrawn (fail open)."""
        restored = {s for s in ctx.store.sources() if s.startswith(SOURCE_PREFIX) and s.count("/") == 1}
        if not restored:
            return
        await asyncio.sleep(self.initial_sync_s)
        for source in sorted(restored - self.seen_sources):
            ctx.store.apply(WithdrawSource(source))
            ctx.monitor.publish(Event(
                0.0, source, "bmp.restored-expired", Severity.WARNING,
                f"{source[len(SOURCE_PREFIX):]}: no BMP session within {self.initial_sync_s:.0f} s of start: "
                "the paths restored from the journal are withdrawn", {"source": source}))


def component(ctx: DaemonContext) -> PathSource | None:
    config = ctx.config
    if not config.bmp:
        return None
    return PathSource(config, config.bmp, flush_s=config.timers.bmp_flush_s,
                      initial_sync_s=config.timers.bgpls_initial_sync_s)


__all__ = ["PathSource", "PeerTable", "component", "source_name"]
