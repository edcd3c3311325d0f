"""The BGP-LS source of `savd run`: speaker events in, the learned graph into the store.

The ExaBGP speakers with BGP-LS peers hand every event to `handle` (the speaker set calls it; a speaker
keeps sessions only). One TopologyIngest per speaker keeps the graph; `_publish_loop` writes it as
`ReplaceSource("bgp-ls:<speaker>", TOPOLOGY_KINDS)` once it is whole: every BGP-LS peer sent End-of-RIB,
or `initial_sync_s` passed, so a half-learned graph never replaces the one the journal restored.

Fail open: a BGP-LS peer down for `hold_s` is expired (its facts and the rules they supported go) and
raises an alarm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from appliance.config import Config, Family, SpeakerType
from appliance.context import DaemonContext
from appliance.model import Event, Severity
from appliance.sources.bgpls.ingest import TOPOLOGY_KINDS, TopologyIngest, model_facts
from appliance.speakers.events import EndOfRib, SessionDown, SessionUp, SpeakerEvent, UpdateReceived
from appliance.state.changes import ReplaceSource

log = logging.getLogger("savd.bgpls")


class BgplsSource:
    """Every ExaBGP speaker's BGP-LS peers -> one TopologyIngest each -> the store."""

    name = "bgp-ls"

    def __init__(self, config: Config, *, hold_s: float = 90.0, initial_sync_s: float = 60.0,
                 publish_delay_s: float = 0.3) -> None:
        self.hold_s, self.initial_sync_s, self.publish_delay_s = hold_s, initial_sync_s, publish_delay_s
        self.peers: dict[str, set[str]] = {}
        for spk in config.speakers:
            ls_peers = {p.address for p in spk.peers if Family.BGP_LS in p.families}
            if ls_peers and spk.type is SpeakerType.EXABGP:
                self.peers[spk.name] = ls_peers
        self.ingests = {name: TopologyIngest() for name in self.peers}
        self._dirty = {name: asyncio.Event() for name in self.peers}
        self._synced: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._ctx: DaemonContext | None = None

    def speakers(self) -> frozenset[str]:
        """The speakers whose events this source reads."""
        return frozenset(self.peers)

    def handle(self, speaker: str, ev: SpeakerEvent) -> None:
        ingest = self.ingests.get(speaker)
        if ingest is None or self._ctx is None:
            return
        if isinstance(ev, UpdateReceived | SessionUp | SessionDown | EndOfRib):
            if isinstance(ev, SessionUp | SessionDown) and ev.neighbor not in self.peers[speaker]:
                return  # a FlowSpec session of the same speaker
            changed = ingest.handle(ev, self._ctx.monitor.clock.now())
            if changed or isinstance(ev, EndOfRib):
                self._dirty[speaker].set()

    async def start(self, ctx: DaemonContext) -> None:
        self._ctx = ctx
        for name in self.peers:
            self._tasks.append(asyncio.create_task(self._publish_loop(ctx, name), name=f"bgpls-{name}"))
        self._tasks.append(asyncio.create_task(self._expire_loop(ctx), name="bgpls-expire"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def _ready(self, name: str) -> bool:
        """Publish the graph only once it is whole: every BGP-LS peer sent End-of-RIB, or time is up."""
        if name in self._synced:
            return True
        ingest = self.ingests[name]
        if self.peers[name] <= ingest.eor_seen:
            self._synced.add(name)
            log.info("event=bgpls-synced speaker=%s peers=%d", name, len(ingest.eor_seen))
            return True
        return False

    async def _publish_loop(self, ctx: DaemonContext, name: str) -> None:
        dirty = self._dirty[name]
        started = asyncio.get_running_loop().time()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(dirty.wait(), 1.0)
            if not dirty.is_set():
                waited = asyncio.get_running_loop().time() - started
                if name not in self._synced and waited > self.initial_sync_s:
                    self._synced.add(name)
                    dirty.set()
                continue
            if not self._ready(name):
                dirty.clear()
                continue
            await asyncio.sleep(self.publish_delay_s)  # let a burst of UPDATEs land
            dirty.clear()
            facts = model_facts(self.ingests[name].topology)
            try:
                applied = ctx.store.apply(ReplaceSource(f"bgp-ls:{name}", TOPOLOGY_KINDS, facts))
            except Exception:  # the store refused (e.g. disk full): the graph is published next round
                log.exception("event=bgpls-publish-failed speaker=%s", name)
                dirty.set()
                continue
            log.info("event=bgpls-published speaker=%s facts=%d version=%d changed=%s", name, len(facts),
                     applied.version, applied.changed)

    async def _expire_loop(self, ctx: DaemonContext) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = ctx.monitor.clock.now()
            for name, ingest in self.ingests.items():
                gone = ingest.expire_stale(now, self.hold_s)
                for peer in gone:
                    ctx.monitor.publish(Event(
                        0.0, f"speaker:{name}", "bgpls.peer-expired", Severity.ERROR,
                        f"BGP-LS peer {peer} down for {self.hold_s:.0f} s: its topology and the rules "
                        "it supported are withdrawn", {"speaker": name, "peer": peer}, True))
                if gone:
                    self._synced.add(name)
                    self._dirty[name].set()


def component(ctx: DaemonContext) -> BgplsSource | None:
    timers = ctx.config.timers
    source = BgplsSource(ctx.config, hold_s=timers.bgpls_hold_s, initial_sync_s=timers.bgpls_initial_sync_s)
    return source if source.peers else None


__all__ = ["BgplsSource", "component"]
