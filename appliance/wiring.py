"""The real components `savd run` plugs into the daemon (daemon.COMPONENT_FACTORIES).

- `speakers(ctx)`: one managed ExaBGP per `[[speaker]]` of type exabgp. Its events go to one consumer
  that feeds BGP-LS to a TopologyIngest (-> store `ReplaceSource("bgp-ls:<speaker>", TOPOLOGY_KINDS)`)
  and session events to a FlowPusher. A `[[speaker]]` of type gobgp pushes FlowSpec only, through one
  GoBgpSpeaker per router (gobgpd sends its whole RIB to every neighbour, and group IDs mean something
  on their own router only): a managed, supervised gobgpd each, or the external one at `api`; each has
  its own FlowPusher fed by its events; every new SavRuleSet is compiled and pushed as a diff to the
  FlowSpec peers (FlowSpecDelivery), and each push is journalled (state.pushed.record_diff).
- `rpki(ctx)`: the [rpki] caches and files (rpki.service.RpkiService) mirrored into the store; once all
  have delivered, one ReplaceSource drops what the journal restored but the sources no longer say.
- `reports_file(ctx)`: the [reports] file loaded into the store under "file:<path>", reloaded on change.
- the enforcer poller is the enforcer engineer's factory (appliance.enforcer.poller:factory).

Restart without withdrawing everything: the pusher's held rules are restored from the journal and its
wanted rules seeded from the journalled rule set before any session comes up, so a re-sync announces
what peers already hold (an idempotent replace) and withdraws only what is no longer wanted. The
topology restored from the journal stands until every BGP-LS peer has sent End-of-RIB again (or
`initial_sync_s` passed), so a half-learned graph never replaces a whole one.

Fail open: a BGP-LS peer down for `bgpls_hold_s` is expired (its facts and the rules they supported go)
and raises an alarm; FlowSpec push failures raise alarms and leave rules as they were.

Groups for the enforcers: each router's interface-set mapping (flowspec/groups.py, deterministic) is
written to `<data_dir>/enforcer-groups/<router>.json` *before* rules are pushed, so an enforcer started
with `--groups-file` there maps every group it receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.config import FLOWSPEC_FAMILIES, Config, Family, SpeakerConfig, SpeakerType
from appliance.flowspec.compiler import CompileOptions
from appliance.flowspec.groups import assign_groups
from appliance.model import Delivery, Event, SavRuleSet, Severity
from appliance.speakers.exabgp import (
    EndOfRib,
    ExaBgpSpeaker,
    ExaNeighbor,
    SessionDown,
    SessionUp,
    UpdateReceived,
)
from appliance.speakers.gobgp import GoBgpNeighbor, GoBgpSpeaker
from appliance.speakers.holdover import DEFAULT_GRACE_S, reap
from appliance.speakers.pusher import ExaBgpFlowAdapter, FlowPusher, FlowSpecDelivery
from appliance.state.changes import ReplaceSource
from appliance.state.pushed import held_rules, record_diff
from appliance.topology.ingest import TOPOLOGY_KINDS, TopologyIngest, model_facts

log = logging.getLogger("savd.wiring")

STATE_SOURCE = "rpki"  # rpki.service.STATE_SOURCE: the store source of every VRP and ASPA

EXABGP_FAMILIES = {
    Family.IPV4_UNICAST: "ipv4 unicast",
    Family.IPV6_UNICAST: "ipv6 unicast",
    Family.BGP_LS: "bgp-ls bgp-ls",
    Family.IPV4_FLOWSPEC: "ipv4 flow",
    Family.IPV6_FLOWSPEC: "ipv6 flow",
}


def _event(source: str, type_: str, severity: Severity, message: str, *, alarm: bool = False,
           **fields: str) -> Event:
    return Event(0.0, source, type_, severity, message, fields, alarm)


def groups_dir(config: Config) -> Path:
    return config.appliance.data_dir / "enforcer-groups"


def write_groups(directory: Path, ruleset: SavRuleSet) -> dict[str, list[dict[str, Any]]]:
    """Every router's interface -> group ID mapping as the enforcer's --groups-file JSON (atomic)."""
    directory.mkdir(parents=True, exist_ok=True)
    per_router: dict[str, set[str]] = {}
    for rules in ruleset.rules:
        if rules.delivery is Delivery.FLOWSPEC:
            per_router.setdefault(rules.router, set()).add(rules.interface)
    out: dict[str, list[dict[str, Any]]] = {}
    for router, interfaces in sorted(per_router.items()):
        out[router] = [{"interface": g.interface, "group_id": g.group_id}
                       for g in assign_groups(router, interfaces)]
    for old in directory.glob("*.json"):
        if old.stem not in out:
            out[old.stem] = []
    for router, groups in out.items():
        path = directory / f"{router}.json"
        text = json.dumps(groups, sort_keys=True)
        if path.exists() and path.read_text() == text:
            continue
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        tmp.replace(path)
    return out


class SpeakerSet:
    """Every configured ExaBGP speaker, the BGP-LS ingest per speaker, and FlowSpec delivery."""

    name = "speakers"

    def __init__(self, config: Config, *, bgpls_hold_s: float = 90.0, initial_sync_s: float = 60.0,
                 publish_delay_s: float = 0.3, holdover_s: float = DEFAULT_GRACE_S) -> None:
        self.config = config
        self.holdover_s = holdover_s
        self.bgpls_hold_s, self.initial_sync_s, self.publish_delay_s = (
            bgpls_hold_s, initial_sync_s, publish_delay_s)
        self.speakers: dict[str, ExaBgpSpeaker | GoBgpSpeaker] = {}
        self.ingests: dict[str, TopologyIngest] = {}
        self.bgpls_peers: dict[str, set[str]] = {}
        self.pushers: dict[str, FlowPusher] = {}
        self.delivery: FlowSpecDelivery | None = None
        self._synced: set[str] = set()
        self._dirty: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._ctx: Any = None

    # --- start / stop ----------------------------------------------------------------------------------

    async def start(self, ctx: Any) -> None:
        self._ctx = ctx
        targets: dict[str, list[tuple[FlowPusher, str]]] = {}
        journal = lambda peer, d: record_diff(ctx.store, peer, d)  # noqa: E731
        for spk in self.config.speakers:
            if spk.type is SpeakerType.GOBGP:
                for key, gobgp in self._build_gobgp(spk).items():
                    self.speakers[key] = gobgp
                    pusher = FlowPusher(gobgp, on_applied=journal)
                    self.pushers[key] = pusher
                    for n in gobgp.neighbors:
                        pusher.restore(n.address, held_rules(ctx.store, n.address))
                        targets.setdefault(n.name, []).append((pusher, n.address))
                continue
            speaker = self._build(spk)
            self.speakers[spk.name] = speaker
            ls_peers = {p.address for p in spk.peers if Family.BGP_LS in p.families}
            if ls_peers:
                self.ingests[spk.name] = TopologyIngest()
                self.bgpls_peers[spk.name] = ls_peers
                self._dirty[spk.name] = asyncio.Event()
            flow_peers = [p for p in spk.peers if any(f in p.families for f in FLOWSPEC_FAMILIES)]
            if flow_peers:
                pusher = FlowPusher(ExaBgpFlowAdapter(speaker), on_applied=journal)
                self.pushers[spk.name] = pusher
                for p in flow_peers:
                    pusher.restore(p.address, held_rules(ctx.store, p.address))
                    targets.setdefault(p.router, []).append((pusher, p.address))
        if targets:
            options = CompileOptions(max_rules_per_router=self.config.flowspec.max_rules_per_router,
                                     force=self.config.flowspec.force)
            self.delivery = FlowSpecDelivery(targets, options, emit=ctx.monitor.publish)
            current = ctx.rules.current()
            if current is not None:  # seed what peers should hold before any session comes up
                write_groups(groups_dir(self.config), current[1])
                await self.delivery.on_rules(current[0], current[1], SavRuleSet())
            ctx.on_rules(self.on_rules)
        reaped_any = False
        for name, running in self.speakers.items():
            if isinstance(running, GoBgpSpeaker) or running.adopts:
                continue  # adopts the speaker a killed savd left in holdover, or reaps it itself
            reaped = reap(running.workdir)
            if reaped:
                reaped_any = True
                log.warning("event=stale-speaker-killed speaker=%s pids=%s", name, ",".join(map(str, reaped)))
        if reaped_any:
            await asyncio.sleep(0.5)  # let the kernel release the listening sockets
        # together: a gobgpd takes ~1 s to answer gRPC, and there is one per router
        results = await asyncio.gather(*(running.start() for running in self.speakers.values()),
                                       return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:  # stop the ones that did start: the daemon does not stop a component that failed
            await self.stop()
            raise failed[0]
        for name, running in self.speakers.items():
            self._tasks.append(asyncio.create_task(self._consume(name, running), name=f"speaker-{name}"))
            if name in self.ingests:
                self._tasks.append(asyncio.create_task(self._publish_loop(name), name=f"bgpls-{name}"))
        if self.ingests:
            self._tasks.append(asyncio.create_task(self._expire_loop(), name="bgpls-expire"))
        log.info("event=speakers-started speakers=%s bgpls=%s flowspec_routers=%s",
                 ",".join(self.speakers), ",".join(self.ingests), ",".join(sorted(targets)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for speaker in self.speakers.values():
            with contextlib.suppress(Exception):
                await speaker.stop()

    def _build(self, spk: SpeakerConfig) -> ExaBgpSpeaker:
        neighbors = [
            ExaNeighbor(address=p.address, local_address=p.local_address or spk.router_id, local_as=spk.asn,
                        peer_as=p.asn, router_id=spk.router_id,
                        families=tuple(EXABGP_FAMILIES[f] for f in p.families), passive=p.passive,
                        name=p.router)
            for p in spk.peers
        ]
        listen = (spk.listen_host, spk.listen_port) if spk.listen_host else None
        workdir = self.config.appliance.data_dir / "speakers" / spk.name
        # a FlowSpec-only ExaBGP left by a killed savd is adopted (routers keep their rules); one with
        # BGP-LS peers is replaced, since the topology it received cannot be asked for again
        flowspec_only = all(f in FLOWSPEC_FAMILIES for p in spk.peers for f in p.families)
        return ExaBgpSpeaker(workdir, neighbors, netns=spk.netns or None, listen=listen,
                             holdover_s=self.holdover_s, adoptable=flowspec_only)

    def _build_gobgp(self, spk: SpeakerConfig) -> dict[str, GoBgpSpeaker]:
        """One GoBgpSpeaker per router of the speaker's peers, keyed "<speaker>/<router>"; managed ones
        work in <data_dir>/speakers/<speaker>/<router>, where a restarted savd adopts a gobgpd in holdover."""
        by_router: dict[str, list[GoBgpNeighbor]] = {}
        for p in spk.peers:
            families = tuple(f.value for f in p.families if f in FLOWSPEC_FAMILIES)
            by_router.setdefault(p.router, []).append(GoBgpNeighbor(
                address=p.address, peer_as=p.asn, local_address=p.local_address, families=families,
                passive=p.passive, name=p.router))
        out: dict[str, GoBgpSpeaker] = {}
        for router, neighbors in sorted(by_router.items()):
            workdir = self.config.appliance.data_dir / "speakers" / spk.name / router
            out[f"{spk.name}/{router}"] = GoBgpSpeaker(
                workdir, asn=spk.asn, router_id=spk.router_id, name=router, neighbors=neighbors,
                netns=spk.netns or None, api_target=spk.api or None, holdover_s=self.holdover_s)
        return out

    # --- rules out -------------------------------------------------------------------------------------

    async def on_rules(self, version: int, new: SavRuleSet, old: SavRuleSet) -> None:
        write_groups(groups_dir(self.config), new)
        if self.delivery is not None:
            plan = await self.delivery.on_rules(version, new, old)
            log.info("event=flowspec-delivered version=%d routers=%d rules=%d", version, len(plan.routers),
                     len(plan.rules()))

    # --- events in -------------------------------------------------------------------------------------

    async def _consume(self, name: str, speaker: ExaBgpSpeaker | GoBgpSpeaker) -> None:
        ingest = self.ingests.get(name)
        pusher = self.pushers.get(name)
        monitor = self._ctx.monitor
        async for ev in speaker.events():
            try:
                if isinstance(ev, SessionUp | SessionDown):
                    self._session_event(name, ev, ingest is not None and ev.neighbor in
                                        self.bgpls_peers.get(name, set()))
                if ingest is not None and isinstance(ev, UpdateReceived | SessionUp | SessionDown | EndOfRib):
                    changed = ingest.handle(ev, monitor.clock.now())
                    if changed or isinstance(ev, EndOfRib):
                        self._dirty[name].set()
                if pusher is not None and isinstance(ev, SessionUp | SessionDown):
                    await pusher.on_event(ev)
            except Exception as exc:  # one bad event never stops the speaker's consumer
                log.exception("event=speaker-event-failed speaker=%s", name)
                monitor.publish(_event(f"speaker:{name}", "speaker.event-failed", Severity.ERROR,
                                       f"{type(ev).__name__}: {exc}"))

    def _session_event(self, name: str, ev: SessionUp | SessionDown, bgpls: bool) -> None:
        monitor = self._ctx.monitor
        fields = {"speaker": name, "peer": ev.neighbor, "router": ev.name}
        alarm_id = f"bgp-session/{name}/{ev.neighbor}"
        if isinstance(ev, SessionDown):
            what = "BGP-LS" if bgpls else "FlowSpec"
            monitor.publish(Event(0.0, f"speaker:{name}", "bgp.session-down", Severity.WARNING,
                                  f"{what} session to {ev.name or ev.neighbor} down: {ev.reason}",
                                  {**fields, "alarm_id": alarm_id}, alarm=True))
        else:
            monitor.clear(alarm_id, f"speaker:{name}", f"session to {ev.name or ev.neighbor} up")
            monitor.publish(Event(0.0, f"speaker:{name}", "bgp.session-up", Severity.INFO,
                                  f"session to {ev.name or ev.neighbor} up", fields))

    def _ready(self, name: str) -> bool:
        """Publish the graph only once it is whole: every BGP-LS peer sent End-of-RIB, or time is up."""
        if name in self._synced:
            return True
        ingest = self.ingests[name]
        if self.bgpls_peers[name] <= ingest.eor_seen:
            self._synced.add(name)
            log.info("event=bgpls-synced speaker=%s peers=%d", name, len(ingest.eor_seen))
            return True
        return False

    async def _publish_loop(self, name: str) -> None:
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
            applied = self._ctx.store.apply(ReplaceSource(f"bgp-ls:{name}", TOPOLOGY_KINDS, facts))
            log.info("event=bgpls-published speaker=%s facts=%d version=%d changed=%s", name, len(facts),
                     applied.version, applied.changed)

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = self._ctx.monitor.clock.now()
            for name, ingest in self.ingests.items():
                gone = ingest.expire_stale(now, self.bgpls_hold_s)
                for peer in gone:
                    self._ctx.monitor.publish(_event(
                        f"speaker:{name}", "bgpls.peer-expired", Severity.ERROR,
                        f"BGP-LS peer {peer} down for {self.bgpls_hold_s:.0f} s: its topology and the rules "
                        "it supported are withdrawn", alarm=True, speaker=name, peer=peer))
                if gone:
                    self._synced.add(name)
                    self._dirty[name].set()


# --- factories (daemon.COMPONENT_FACTORIES) -----------------------------------------------------------


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        log.warning("event=bad-env name=%s value=%r using=%s", name, os.environ.get(name), default)
        return default


def speakers(ctx: Any) -> SpeakerSet | None:
    config: Config = ctx.config
    if not config.speakers:
        return None
    return SpeakerSet(config, bgpls_hold_s=_env_float("SAVD_BGPLS_HOLD_S", 90.0),
                      initial_sync_s=_env_float("SAVD_BGPLS_INITIAL_SYNC_S", 60.0),
                      holdover_s=_env_float("SAVD_SPEAKER_HOLDOVER_S", DEFAULT_GRACE_S))


class RpkiComponent:
    """rpki.service.RpkiService as a daemon component, its status on the API's board."""

    name = "rpki"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.service: Any = None
        self._unsubscribe: Callable[[], None] | None = None
        self._resync: asyncio.Task[None] | None = None

    async def start(self, ctx: Any) -> None:
        from rpki.service import RpkiService, feed_store

        self.service = RpkiService(self.config.rpki, on_event=ctx.monitor.publish, on_clear=ctx.monitor.clear)
        self._unsubscribe = feed_store(self.service.tables, ctx.store, STATE_SOURCE)
        ctx.rpki.add_caches(self.service.cache_status)
        watcher = self.service.watcher
        for path in watcher.paths if watcher is not None else ():
            ctx.rpki.add_file(lambda p=path: watcher.status_of(p))
        ctx.rpki.set_counts(self.service.tables.counts)
        await self.service.start()
        self._resync = asyncio.create_task(self._resync_when_loaded(ctx), name="rpki-resync")

    async def _resync_when_loaded(self, ctx: Any, interval_s: float = 0.5) -> None:
        """Once every cache and file has delivered data, replace what the journal restored with the
        tables' content: VRPs and ASPAs withdrawn while savd was down go too (deltas alone cannot)."""
        from appliance.state.changes import ReplaceSource

        while True:
            status = ctx.rpki.rpki_status()
            sources = [*status.get("caches", ()), *status.get("files", ())]
            if sources and all(s.get("last_update") is not None for s in sources):
                break
            await asyncio.sleep(interval_s)
        snap = self.service.tables.snapshot()
        applied = ctx.store.apply(ReplaceSource(STATE_SOURCE, ("vrp", "aspa"), (*snap.vrps, *snap.aspas)))
        log.info("event=rpki-resynced vrps=%d aspas=%d changed=%s version=%d", len(snap.vrps),
                 len(snap.aspas), applied.changed, applied.version)

    async def stop(self) -> None:
        if self._resync is not None:
            self._resync.cancel()
            await asyncio.gather(self._resync, return_exceptions=True)
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.service is not None:
            await self.service.stop()


def rpki(ctx: Any) -> RpkiComponent | None:
    config: Config = ctx.config
    if not config.rpki.caches and not config.rpki.files:
        return None
    return RpkiComponent(config)


class ReportsFile:
    """The [reports] file as facts of source "file:<path>"; a bad file keeps the last good facts."""

    name = "reports-file"

    def __init__(self, path: Path, interval_s: float = 2.0) -> None:
        self.path, self.interval_s = path, interval_s
        self.source = f"file:{path}"
        self._mtime: float | None = None
        self._task: asyncio.Task[None] | None = None

    def load(self, ctx: Any) -> bool:
        """Load if changed; True when loaded. Errors become an alarm naming the file and field."""
        from appliance.reports.errors import ReportError
        from appliance.reports.yamlfile import load_report_file

        try:
            mtime = self.path.stat().st_mtime
        except OSError as exc:
            ctx.monitor.publish(_event(self.source, "reports.file-error", Severity.ERROR,
                                       f"{self.path}: {exc.strerror}", alarm=True, path=str(self.path)))
            return False
        if mtime == self._mtime:
            return False
        self._mtime = mtime
        try:
            prefixes, _roles = load_report_file(self.path)
        except ReportError as exc:
            ctx.monitor.publish(_event(self.source, "reports.file-error", Severity.ERROR, str(exc),
                                       alarm=True, path=str(self.path)))
            return False
        ctx.monitor.clear(f"reports.file-error/path={self.path}", self.source, f"{self.path} loads again")
        ctx.store.apply(ReplaceSource(self.source, ("report",), tuple(prefixes)))
        log.info("event=reports-file-loaded path=%s reports=%d", self.path, len(prefixes))
        return True

    async def start(self, ctx: Any) -> None:
        self.load(ctx)

        async def loop() -> None:
            while True:
                await asyncio.sleep(self.interval_s)
                self.load(ctx)

        self._task = asyncio.create_task(loop(), name="reports-file")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def reports_file(ctx: Any) -> ReportsFile | None:
    path = ctx.config.reports.file
    return ReportsFile(Path(path)) if path else None


__all__ = [
    "ReportsFile",
    "RpkiComponent",
    "SpeakerSet",
    "groups_dir",
    "reports_file",
    "rpki",
    "speakers",
    "write_groups",
]
