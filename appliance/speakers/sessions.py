"""The BGP speakers of `savd run`: sessions, session alarms, and FlowSpec delivery to the routers.

- One managed ExaBGP per `[[speaker]]` of type exabgp; its events go to the FlowSpec pusher (sessions) and
  to the sources that read that speaker (the BGP-LS source: appliance/sources/bgpls/component.py). A
  speaker keeps sessions only: decoding what arrives is the sources' job.
- A `[[speaker]]` of type gobgp pushes FlowSpec only, through one GoBgpSpeaker per router (gobgpd sends
  its whole RIB to every neighbour, and group IDs mean something on their own router only): a managed,
  supervised gobgpd each, or the external one at `api`; each has its own FlowPusher fed by its events.
- Every new SavRuleSet is compiled and pushed as a diff to the FlowSpec peers (FlowSpecDelivery), and each
  push is journalled (state.pushed.record_diff).

Restart without withdrawing everything: the pusher's held rules are restored from the journal and its
wanted rules seeded from the journalled rule set before any session comes up, so a re-sync announces
what peers already hold (an idempotent replace) and withdraws only what is no longer wanted. FlowSpec push
failures raise alarms and leave rules as they were.

The node file for the enforcers: each router's interface-set mapping (flowspec/groups.py, deterministic)
and the route targets of its IPv6 steering (target -> inspector address: the VRFs a router would have
configured locally, engine/steering.py) are written to `<data_dir>/enforcer-groups/<router>.json`
*before* rules are pushed, so an enforcer started with `--groups-file` there maps every group and
redirect it receives. File names come from router names through
appliance.names.safe_child: a name that would leave the folder is refused and logged, never written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from appliance.config import FLOWSPEC_FAMILIES, Config, Family, SpeakerConfig, SpeakerType
from appliance.context import DaemonContext
from appliance.flowspec.compiler import CompileOptions
from appliance.flowspec.groups import assign_groups
from appliance.model import Delivery, Event, SavRuleSet, Severity
from appliance.names import UnsafeName, safe_child
from appliance.speakers.events import SessionDown, SessionUp, SpeakerEvent
from appliance.speakers.exabgp import ExaBgpSpeaker, ExaNeighbor
from appliance.speakers.gobgp import GoBgpNeighbor, GoBgpSpeaker
from appliance.speakers.holdover import DEFAULT_GRACE_S, reap
from appliance.speakers.pusher import ExaBgpFlowAdapter, FlowPusher, FlowSpecDelivery
from appliance.state.pushed import held_rules, record_diff

Listener = Callable[[str, SpeakerEvent], None]

log = logging.getLogger("savd.speakers")

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


def write_groups(directory: Path, ruleset: SavRuleSet) -> dict[str, dict[str, Any]]:
    """Every router's node file for the enforcer's --groups-file (atomic): {"groups": [{interface,
    group_id}], "redirects": {route target: inspector address}}."""
    directory.mkdir(parents=True, exist_ok=True)
    per_router: dict[str, set[str]] = {}
    for rules in ruleset.rules:
        if rules.delivery is Delivery.FLOWSPEC:
            per_router.setdefault(rules.router, set()).add(rules.interface)
    redirects: dict[str, dict[str, str]] = {}
    for s in ruleset.steering:
        if s.target:
            redirects.setdefault(s.router, {})[s.target] = s.address
    out: dict[str, dict[str, Any]] = {}
    for router, interfaces in sorted(per_router.items()):
        out[router] = {"groups": [{"interface": g.interface, "group_id": g.group_id}
                                  for g in assign_groups(router, interfaces)],
                       "redirects": dict(sorted(redirects.get(router, {}).items()))}
    for old in directory.glob("*.json"):
        if old.stem not in out:
            out[old.stem] = {"groups": [], "redirects": {}}
    for router, node in out.items():
        try:  # names are checked where they enter; this is the last guard before the file system
            path = safe_child(directory, f"{router}.json")
        except UnsafeName as exc:
            log.error("event=groups-file-refused router=%r error=%r", router, str(exc))
            continue
        text = json.dumps(node, sort_keys=True)
        if path.exists() and path.read_text() == text:
            continue
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        tmp.replace(path)
    return out


class SpeakerSet:
    """Every configured speaker, their session alarms, and FlowSpec delivery; each speaker's events also
    go to the sources that read them (`listeners`: speaker name -> callback, e.g. the BGP-LS source)."""

    name = "speakers"

    def __init__(self, config: Config, *, listeners: Mapping[str, Listener] | None = None,
                 holdover_s: float = DEFAULT_GRACE_S) -> None:
        self.config = config
        self.holdover_s = holdover_s
        self.listeners: dict[str, Listener] = dict(listeners or {})
        self.speakers: dict[str, ExaBgpSpeaker | GoBgpSpeaker] = {}
        self.pushers: dict[str, FlowPusher] = {}
        self.delivery: FlowSpecDelivery | None = None
        #: router -> the (pusher, peer address) pairs that deliver its FlowSpec (set by start)
        self.targets: dict[str, list[tuple[FlowPusher, str]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._ctx: DaemonContext | None = None

    # --- start / stop ----------------------------------------------------------------------------------

    async def start(self, ctx: DaemonContext) -> None:
        self._ctx = ctx
        targets = self.targets
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
            self.delivery = FlowSpecDelivery(
                targets, options, emit=ctx.monitor.publish,
                findings=lambda events: ctx.monitor.reconcile("flowspec", events))
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
            self._tasks.append(asyncio.create_task(self._consume(ctx, name, running), name=f"speaker-{name}"))
        log.info("event=speakers-started speakers=%s listened=%s flowspec_routers=%s",
                 ",".join(self.speakers), ",".join(sorted(self.listeners)), ",".join(sorted(targets)))

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
            workdir = safe_child(safe_child(self.config.appliance.data_dir / "speakers", spk.name), router)
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

    async def _consume(self, ctx: DaemonContext, name: str, speaker: ExaBgpSpeaker | GoBgpSpeaker) -> None:
        listener = self.listeners.get(name)
        pusher = self.pushers.get(name)
        monitor = ctx.monitor
        async for ev in speaker.events():
            try:
                if isinstance(ev, SessionUp | SessionDown):
                    self._session_event(ctx, name, ev)
                if listener is not None:
                    listener(name, ev)
                if pusher is not None and isinstance(ev, SessionUp | SessionDown):
                    await pusher.on_event(ev)
            except Exception as exc:  # one bad event never stops the speaker's consumer
                log.exception("event=speaker-event-failed speaker=%s", name)
                monitor.publish(_event(f"speaker:{name}", "speaker.event-failed", Severity.ERROR,
                                       f"{type(ev).__name__}: {exc}"))

    def _session_event(self, ctx: DaemonContext, name: str, ev: SessionUp | SessionDown) -> None:
        monitor = ctx.monitor
        bgpls = any(p.address == ev.neighbor and Family.BGP_LS in p.families
                    for s in self.config.speakers if s.name == name.split("/")[0] for p in s.peers)
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


def component(ctx: DaemonContext, listeners: Mapping[str, Listener] | None = None) -> SpeakerSet | None:
    if not ctx.config.speakers:
        return None
    return SpeakerSet(ctx.config, listeners=listeners, holdover_s=ctx.config.timers.speaker_holdover_s)


__all__ = ["Listener", "SpeakerSet", "component", "groups_dir", "write_groups"]
