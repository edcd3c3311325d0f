"""The enforcer service: FRR's accepted FlowSpec (via a local ExaBGP) -> nftables, counters out.

    FRR bgpd ──iBGP (in-node veth)──► ExaBGP 5 (appliance.speakers.exabgp) ──events──► RouteTable
                                                                                         │ changed
          HTTP GET /counters /rules /status ◄── snapshot ◄── counters ◄── NftTable ◄── Planner

Updates are applied as they arrive; a burst is coalesced (everything queued while one transaction
runs goes into the next). A periodic tick reconciles the kernel with the plan (re-applies on drift),
re-reads the group mapping file when it changed, and writes the counters snapshot file. A session
that goes down withdraws its routes (fail open); on shutdown the table is removed. An allowlist's
catch-all discard is installed only with its accepts, once the routes have been quiet for `settle_s`
(allowlist.py): never the discard alone. Redirect-to-IP targets get their policy routing (steering.py)
before the plan that marks their packets is applied; every tick re-checks their reachability.

The session with FRR is reported in /counters and /status (`session`: established, down since, last
reason, diagnosis) so that savd can alarm on it: a down session only shows there as missing rules. When
it stays down, `diagnose` asks what FRR knows of the pair's FRR end (node.frr_interface_state): zebra not
running is logged as the cause, an interface or address zebra missed is re-signalled (`resignal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import shlex
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.enforcer import groupmap
from appliance.enforcer.allowlist import HOLD_SETTLING, CatchAllIndex
from appliance.enforcer.nft import NftError, NftTable
from appliance.enforcer.nftplan import Counters, Plan, Planner, PlanOptions, TopSource
from appliance.enforcer.node import ADDRESS_UNKNOWN, INTERFACE_UNKNOWN, OK, ZEBRA_DOWN
from appliance.enforcer.recording import record_of
from appliance.enforcer.route import Route
from appliance.enforcer.steering import Steering
from appliance.enforcer.table import RouteTable
from appliance.speakers.exabgp import (
    ExaBgpSpeaker,
    ExaNeighbor,
    SessionDown,
    SessionUp,
    SpeakerEvent,
    UpdateReceived,
    exabgp_command,
)

log = logging.getLogger(__name__)

__all__ = ["EnforcerOptions", "EnforcerService", "SessionState", "snapshot"]

READ_ATTEMPTS = 3   # readings of the table without the apply lock before one is taken under it


@dataclass(frozen=True, slots=True)
class EnforcerOptions:
    node: str
    asn: int
    frr_address: str
    exa_address: str
    workdir: Path
    groups: Mapping[int, Sequence[str]] = field(default_factory=dict)
    group_file: Path | None = None
    plan: PlanOptions = field(default_factory=PlanOptions)
    reconcile_s: float = 5.0
    netns: str | None = None            # run nft and ExaBGP inside this namespace (tests, bench)
    counters_file: Path | None = None
    exabgp_prefix: tuple[str, ...] = ()   # e.g. nsenter into the receiver's sidecar namespace
    record: Path | None = None            # append every received event here (recording.py)
    #: re-applies FRR's receiver configuration (idempotent); called when the session stays down, e.g.
    #: after FRR restarted without the runtime-added neighbour in its startup config
    reconfigure: Callable[[], None] | None = None
    reconfigure_after_s: float = 30.0
    #: whether FRR has the receiver neighbour (None: cannot tell, e.g. bgpd restarting); polled every
    #: `frr_watch_s` so that a bgpd restart, which forgets the runtime-added neighbour, is repaired in seconds
    frr_has_neighbor: Callable[[], bool | None] | None = None
    frr_watch_s: float = 1.0
    #: a new allowlist catch-all is installed once no route changed for this long (allowlist.py)
    settle_s: float = 0.5
    #: what zebra knows of the pair's FRR end (node.frr_interface_state), asked once the session has been
    #: down `diagnose_after_s`, then every `diagnose_every_s`: bgpd refuses the session (NOTIFICATION 5/0)
    #: when zebra is not running or missed the interface or its address
    diagnose: Callable[[], str] | None = None
    #: makes zebra relearn the FRR end (node.Sidecar.resignal); called on an interface/address it missed
    resignal: Callable[[], None] | None = None
    diagnose_after_s: float = 10.0
    diagnose_every_s: float = 30.0
    frr_ifname: str = "savd-fs-frr"     # in the logs of a diagnosis


@dataclass(slots=True)
class SessionState:
    """The session with FRR as /counters and /status report it (savd alarms on it staying down)."""

    peer: str
    established: bool = False
    down_since: float | None = None        # unix time; since start while never established
    last_reason: str = ""                  # of the last session-down event
    diagnosis: str = ""                    # latest node.frr_interface_state while down
    down_at: float | None = None           # monotonic twin of down_since, for timers

    def went_up(self) -> None:
        self.established, self.down_since, self.down_at, self.diagnosis = True, None, None, ""

    def went_down(self, reason: str) -> None:
        if self.down_at is None:
            self.down_since, self.down_at = time.time(), time.monotonic()
        self.established, self.last_reason = False, reason

    def to_dict(self) -> dict[str, Any]:
        return {"peer": self.peer, "established": self.established, "down_since": self.down_since,
                "last_reason": self.last_reason, "diagnosis": self.diagnosis}


def snapshot(node: str, plan: Plan | None, counters: Mapping[str, Counters], *, generation: int,
             sessions: Sequence[str], problems: Sequence[str], now: float,
             top: Mapping[str, Sequence[TopSource]] | None = None,
             session: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document the appliance collects: one entry per route with its counters (total and per
    interface; "*" = interfaces without a scoped chain), plus `samples`: one row per (interface, route)
    in appliance.monitor.counters.CounterSample shape, so the monitor ingests it unchanged and spoofing
    is attributed to the interface it arrived on. `top` (per counter key, a catch-all's meter): its top
    aggregated sources, as `top_sources` of the rule (summed over interfaces), of each interface and of
    each sample, since the catch-all's own source is 0.0.0.0/0 or ::/0. `session`: SessionState.to_dict,
    absent when not given.
    """
    top = top or {}
    by_route: dict[str, dict[str, Counters]] = {}
    for key, value in counters.items():
        rid, _, iface = key.partition("@")
        by_route.setdefault(rid, {})[iface or "*"] = value
    rules, samples = [], []
    for st in plan.statuses if plan else ():
        per_iface = by_route.get(st.rid, {})
        if not per_iface and st.state in ("installed", "degraded"):
            per_iface = {ifname: Counters() for ifname in st.interfaces}
        total = sum(per_iface.values(), Counters())
        tops = {i: list(top.get(f"{st.rid}@{i}", ())) for i in per_iface}
        spoofed = st.action.startswith(("discard", "rate-limit"))
        rules.append({"id": st.rid, "nlri": st.nlri, "source": st.source, "state": st.state,
                      "action": st.action, "reason": st.reason, "interfaces": list(st.interfaces),
                      "groups": list(st.groups), **_counts(total),
                      "top_sources": _top_dicts(_summed(tops.values())),
                      "per_interface": {i: {**_counts(c), "top_sources": _top_dicts(tops[i])}
                                        for i, c in sorted(per_iface.items())}})
        for ifname, c in sorted(per_iface.items()):
            samples.append({"router": node, "interface": ifname, "source_prefix": st.source,
                            "action": st.action, "packets": c.packets, "bytes": c.bytes, "spoofed": spoofed,
                            "top_sources": _top_dicts(tops[ifname])})
    doc = {"node": node, "time": now, "generation": generation, "sessions": list(sessions),
           "in_sync": not problems, "problems": list(problems), "rules": rules, "samples": samples}
    return doc if session is None else {**doc, "session": dict(session)}


def _summed(lists: Iterable[Sequence[TopSource]], top: int = 10) -> list[TopSource]:
    """One rule's top sources over its interfaces (the same prefix on two interfaces adds up)."""
    sums: dict[str, tuple[int, int]] = {}
    for ts in (t for lst in lists for t in lst):
        p, b = sums.get(ts.prefix, (0, 0))
        sums[ts.prefix] = (p + ts.packets, b + ts.bytes)
    ranked = sorted(sums.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
    return [TopSource(prefix, p, b) for prefix, (p, b) in ranked[:top]]


def _top_dicts(tops: Iterable[TopSource]) -> list[dict[str, int | str]]:
    return [t.to_dict() for t in tops]


def _counts(c: Counters) -> dict[str, int]:
    return {"packets": c.packets, "bytes": c.bytes, "dropped_packets": c.dropped_packets,
            "dropped_bytes": c.dropped_bytes}


class EnforcerService:
    """One node's enforcer; `run()` until cancelled, then `close()` (removes the table)."""

    def __init__(self, options: EnforcerOptions,
                 speaker_factory: Callable[[EnforcerOptions], ExaBgpSpeaker] | None = None) -> None:
        self.options = options
        self.table = RouteTable()
        self.nft = NftTable(table=options.plan.table, netns=options.netns)
        self._speaker_factory = speaker_factory or _default_speaker
        self.speaker: ExaBgpSpeaker | None = None
        self._groups = groupmap.merge(options.groups)
        self._groups_changed = False
        self._group_file_mtime = 0.0
        self._lock = asyncio.Lock()
        self._dirty = asyncio.Event()
        self._applied_generation = -1
        self.last_apply_s = 0.0
        self.applies = 0
        self.last_applied_at = 0.0
        self._last_snapshot: dict[str, Any] = {}
        self._last_read_at = float("-inf")   # when _last_snapshot was taken (monotonic)
        self.error = ""     # non-empty while the last plan could not be applied (nothing enforced)
        self._down_since: float | None = None
        self._last_change_at = -float("inf")    # monotonic time of the last route table change
        self._installed_rids: frozenset[str] = frozenset()
        self._settling = False                  # a catch-all waits for the table to be quiet
        self._catch_alls = CatchAllIndex()
        self._planner: Planner | None = None    # None: (re)build from the whole table next time
        self.steering = Steering(netns=options.netns)
        self._marks: dict[str, int] = {}        # redirect-to-IP target -> packet mark (installed)
        self._targets: dict[str, str] = {}      # route key -> its redirect-to-IP target
        self._redirects: groupmap.Redirects = {}  # rt-redirect route target -> next hop (node file)
        self._steer_due = True                  # re-check the targets before the next plan
        self._synced: frozenset[str] = frozenset()
        self.session = SessionState(options.frr_address)
        self.session.went_down("")              # not established yet: down since the start
        self._diagnosed_at = -float("inf")      # monotonic time of the last diagnosis

    # --- state ----------------------------------------------------------------------------------------

    def groups(self) -> dict[int, tuple[str, ...]]:
        return dict(self._groups)

    def _reload_groups(self) -> bool:
        path = self.options.group_file
        if path is None:
            return False
        try:
            mtime = path.stat().st_mtime
        except OSError as exc:
            log.warning("event=enforcer-group-file-missing path=%s error=%s", path, exc.strerror)
            return False
        if mtime == self._group_file_mtime:
            return False
        try:
            from_file, redirects = groupmap.read_node_file(path)
        except groupmap.GroupMapError as exc:
            log.error("event=enforcer-group-file-invalid error=%r (keeping the previous mapping)", str(exc))
            self._group_file_mtime = mtime
            return False
        self._group_file_mtime = mtime
        self._groups = groupmap.merge(self.options.groups, from_file)
        self._groups_changed = True   # same routes, new mapping: the applier must re-plan
        self._planner = None
        if redirects != self._redirects:   # every route's target may change: re-derive, re-check
            self._redirects = redirects
            self._targets = {key: t for key, route in self.table.merged.items() if (t := self._target(route))}
            self._steer_due = True
        log.info("event=enforcer-groups-loaded path=%s groups=%d redirects=%d", path, len(self._groups),
                 len(redirects))
        return True

    @property
    def applied_generation(self) -> int:
        return self._applied_generation

    def installed_count(self) -> int:
        """Routes of the plan in the kernel that are installed as received or degraded (fail-open)."""
        plan = self.nft.applied
        return sum(1 for s in plan.statuses if s.state in ("installed", "degraded")) if plan else 0

    def plan(self, quiet: bool | None = None) -> Plan:
        """The table to install; `quiet` (default: from the time of the last change) lets a new
        allowlist catch-all in (allowlist.py). Works on the routes changed since the last call; the
        whole table is planned only at start and after the group mapping changed."""
        if quiet is None:
            quiet = time.monotonic() - self._last_change_at >= self.options.settle_s
        changes = self.table.take_changes()
        self._catch_alls.update(changes)
        hold = self._catch_alls.held(self._installed_rids, quiet)
        if self._planner is None:
            self._planner = Planner(self._groups, self.options.plan, self._marks)
            return self._planner.load(self.table.merged.values(), hold)
        return self._planner.update(changes, hold)

    def _target(self, route: Route | None) -> str:
        """The next hop a route redirects to: its redirect-to-IP, or its route target's in the node file."""
        if route is None:
            return ""
        return route.action.redirect_ip or self._redirects.get(route.action.redirect, "")

    def _note_targets(self) -> frozenset[str]:
        """The redirect targets in use, from the changes plan() has not taken yet (event loop)."""
        for key, route in self.table.pending.items():
            target = self._target(route)
            if target:
                self._targets[key] = target
            else:
                self._targets.pop(key, None)
        return frozenset(self._targets.values())

    async def _steer(self) -> None:
        """Sync policy routing when the targets changed or a tick asked for a reachability check; a
        changed set of usable marks re-plans the whole table (targets are few, this is rare)."""
        wanted = self._note_targets()
        if not self._steer_due and wanted == self._synced:
            return
        self._steer_due, self._synced = False, wanted
        marks = await asyncio.to_thread(self.steering.sync, wanted)
        # a route target steers like its next hop (planmodel.effective looks the mark up by either)
        marks |= {rt: marks[ip] for rt, ip in self._redirects.items() if ip in marks}
        if marks != self._marks:
            log.info("event=enforcer-steering-changed targets=%d marked=%d", len(wanted), len(marks))
            self._marks = marks
            self._planner = None

    # --- events ---------------------------------------------------------------------------------------

    def handle(self, event: SpeakerEvent) -> bool:
        """Apply one speaker event to the route table; True if the table changed."""
        if self.options.record is not None:
            rec = record_of(event)
            if rec is not None:
                with self.options.record.open("a") as f:
                    f.write(json.dumps(rec, sort_keys=True) + "\n")
        if isinstance(event, UpdateReceived):
            result = self.table.apply_update(event.neighbor, event.attribute, event.announce, event.withdraw)
            for p in result.problems:
                log.warning("event=enforcer-route-undecodable peer=%s family=%s field=%s error=%r nlri=%r",
                            p.peer, p.family, p.field, p.error, p.nlri)
            if result.changed:
                self._last_change_at = time.monotonic()
            return result.changed
        if isinstance(event, SessionDown):
            log.warning("event=enforcer-session-down peer=%s reason=%r routes_dropped=%s",
                        event.neighbor, event.reason, event.neighbor in self.table.by_peer)
            self.session.went_down(event.reason)
            return self.table.drop_peer(event.neighbor)
        if isinstance(event, SessionUp):
            log.info("event=enforcer-session-up peer=%s", event.neighbor)
            self.session.went_up()
            self._diagnosed_at = -float("inf")
        return False

    async def apply_now(self) -> None:
        """Render and apply the current table (under the lock: one nft transaction at a time)."""
        async with self._lock:
            generation = self.table.generation
            self._groups_changed = False
            await self._steer()
            plan = self.plan()
            started = time.monotonic()
            try:
                result = await asyncio.to_thread(self.nft.apply, plan)
            except NftError as exc:
                # fail open: an old table may still drop what was withdrawn; enforce nothing instead
                self.error = f"nft refused the plan: {str(exc)[:500]}"
                log.error("event=enforcer-apply-failed action=table-removed error=%r", str(exc)[:1000])
                try:
                    await asyncio.to_thread(self.nft.delete)
                except NftError as exc2:
                    log.critical("event=enforcer-table-remove-failed error=%r", str(exc2)[:500])
                return
            self.error = ""
            self._installed_rids = frozenset(s.rid for s in plan.statuses
                                             if s.state in ("installed", "degraded"))
            self._settling = any(s.reason == HOLD_SETTLING for s in plan.statuses)
            self._applied_generation = generation
            self.last_apply_s = time.monotonic() - started
            self.last_applied_at = time.time()
            self.applies += 1
            installed = sum(1 for s in plan.statuses if s.state in ("installed", "degraded"))
            log.info("event=enforcer-applied generation=%d routes=%d installed=%d mode=%s seconds=%.3f",
                     generation, len(plan.statuses), installed, result.mode, result.seconds)

    async def read_snapshot(self, max_age_s: float = 0.0) -> dict[str, Any]:
        """Counters from the kernel (one `nft -j list table`), or the last reading when it is at most
        `max_age_s` old."""
        last = self._last_snapshot
        if last and max_age_s > 0 and time.monotonic() - self._last_read_at <= max_age_s:
            return last
        try:
            doc, _ = await self._read_counters()
        except NftError as exc:
            async with self._lock:
                return self._snapshot({}, [f"nft: {exc}"])
        return doc

    async def _read_counters(self, repair: bool = False) -> tuple[dict[str, Any], list[str]]:
        """The snapshot and problems of a fresh listing. The listing (~0.3-0.5 s at 10k routes) runs
        without the apply lock, so route changes arriving meanwhile are applied at once instead of after
        it; a reading a transaction overtook is dropped and taken again (`NftTable.take`), the last
        attempt under the lock. `repair`: re-apply the plan whole if the kernel drifted from it."""
        taken: tuple[dict[str, Counters], list[str]] | None = None
        for _ in range(READ_ATTEMPTS - 1):
            reading = await asyncio.to_thread(self.nft.read)
            async with self._lock:
                taken = self.nft.take(reading)
                if taken is not None:
                    made = await self._took(taken, repair)
                    break
        else:
            async with self._lock:
                taken = self.nft.take(await asyncio.to_thread(self.nft.read))
                if taken is None:
                    raise NftError("the table changed while it was read under the lock")
                made = await self._took(taken, repair)
        # the document (one entry per route and interface: ~10k) is built and kept off the event loop
        # and outside the lock, so a route change is applied meanwhile instead of after it
        assert taken is not None
        doc = await asyncio.to_thread(lambda: self._keep(made(taken[0])))
        return doc, taken[1]

    async def _took(self, taken: tuple[dict[str, Counters], list[str]],
                    repair: bool) -> Callable[[Mapping[str, Counters]], dict[str, Any]]:
        """What a committed reading belongs to (and repair drift); the caller holds the lock."""
        made = self._snapshot_of(taken[1])
        if repair and taken[1]:
            await asyncio.to_thread(self.nft.repair, taken[1])
        return made

    def _snapshot_of(self, problems: Sequence[str]) -> Callable[[Mapping[str, Counters]], dict[str, Any]]:
        """`snapshot` bound to the state now (plan, generation, sessions: all replaced, never mutated, by
        an apply), to be called with the counters later and elsewhere."""
        speaker = self.speaker
        return functools.partial(
            snapshot, self.options.node, self.nft.applied, generation=self.table.generation,
            sessions=sorted(speaker.established()) if speaker else [],
            problems=[*problems, *([self.error] if self.error else [])], now=time.time(),
            top=self.nft.top, session=self.session.to_dict())

    def _keep(self, doc: dict[str, Any]) -> dict[str, Any]:
        self._last_snapshot, self._last_read_at = doc, time.monotonic()
        return doc

    def _snapshot(self, counters: Mapping[str, Counters], problems: Sequence[str]) -> dict[str, Any]:
        return self._keep(self._snapshot_of(problems)(counters))

    # --- loops ----------------------------------------------------------------------------------------

    async def _consume(self, speaker: ExaBgpSpeaker) -> None:
        async for event in speaker.events():
            changed = self.handle(event)
            while (more := speaker.next_event_nowait()) is not None:   # coalesce a burst
                changed |= self.handle(more)
            if changed:
                self._dirty.set()

    async def _applier(self) -> None:
        while True:
            settle_in = self._last_change_at + self.options.settle_s - time.monotonic()
            try:
                await asyncio.wait_for(self._dirty.wait(), max(0.0, settle_in) if self._settling else None)
            except TimeoutError:
                pass    # quiet now: install the catch-all that waited
            self._dirty.clear()
            settled = self._settling and time.monotonic() - self._last_change_at >= self.options.settle_s
            if self.table.generation != self._applied_generation or self.error or self._groups_changed \
                    or settled or self._steer_due:
                await self.apply_now()

    async def _ticker(self) -> None:
        """Reconcile and snapshot; the period stretches to 5x the last read so that a 100k-route
        table (a multi-second `nft -j list`) never keeps a core busy."""
        period = self.options.reconcile_s
        while True:
            await asyncio.sleep(period)
            if self._targets:
                self._steer_due = True     # a target may have become (un)reachable
            if self._reload_groups() or self.error or self._steer_due:
                self._dirty.set()
            started = time.monotonic()
            try:
                doc, problems = await self._read_counters(repair=True)
            except NftError as exc:
                log.error("event=enforcer-reconcile-failed error=%r", str(exc)[:500])
                problems = [f"nft: {exc}"]
                async with self._lock:
                    doc = self._snapshot({}, problems)
            if problems:
                log.warning("event=enforcer-reconciled problems=%r", problems[:5])
            await asyncio.to_thread(self._write_counters, doc)
            await self._maybe_reconfigure()
            await self._maybe_diagnose()
            period = max(self.options.reconcile_s, 5 * (time.monotonic() - started))

    async def _watch_frr(self) -> None:
        """Re-add FRR's neighbour as soon as bgpd no longer has it (restarted without it in its config)."""
        has, again = self.options.frr_has_neighbor, self.options.reconfigure
        if has is None or again is None:
            return
        while True:
            await asyncio.sleep(self.options.frr_watch_s)
            if await asyncio.to_thread(has) is not False:
                continue
            try:
                await asyncio.to_thread(again)
                log.warning("event=enforcer-frr-neighbour-readded reason=missing-in-bgpd")
            except Exception as exc:   # bgpd still starting: the next round tries again
                log.error("event=enforcer-frr-reconfigure-failed error=%r", str(exc)[:500])

    async def _maybe_reconfigure(self) -> None:
        """No session for `reconfigure_after_s`: FRR may have restarted and lost the neighbour."""
        speaker, again = self.speaker, self.options.reconfigure
        if again is None or speaker is None:
            return
        now = time.monotonic()
        if speaker.established():
            self._down_since = None
            return
        if self._down_since is None:
            self._down_since = now
            return
        if now - self._down_since < self.options.reconfigure_after_s:
            return
        self._down_since = now
        try:
            await asyncio.to_thread(again)
            log.warning("event=enforcer-frr-reconfigured down_for_s=%.0f", self.options.reconfigure_after_s)
        except Exception as exc:   # FRR down or vtysh failing: try again later, never crash
            log.error("event=enforcer-frr-reconfigure-failed error=%r", str(exc)[:500])

    async def _maybe_diagnose(self) -> None:
        """The session has been down `diagnose_after_s`: ask FRR why (every `diagnose_every_s`)."""
        diagnose, state = self.options.diagnose, self.session
        if diagnose is None or state.established or state.down_at is None:
            return
        now = time.monotonic()
        if now - state.down_at < self.options.diagnose_after_s \
                or now - self._diagnosed_at < self.options.diagnose_every_s:
            return
        self._diagnosed_at = now
        try:
            state.diagnosis = await asyncio.to_thread(diagnose)
        except Exception as exc:   # vtysh failing: try again later, never crash
            log.error("event=enforcer-frr-diagnose-failed error=%r", str(exc)[:500])
            return
        await self._act_on(state.diagnosis, now - state.down_at)

    async def _act_on(self, diagnosis: str, down_s: float) -> None:
        """Log the cause; re-signal an interface or address zebra missed (nothing to do for the rest)."""
        ifname = self.options.frr_ifname
        if diagnosis == ZEBRA_DOWN:
            log.error("event=enforcer-frr-zebra-down ifname=%s down_for_s=%.0f hint=%r", ifname, down_s,
                      "bgpd refuses the enforcer's session (NOTIFICATION 5/0) because zebra is not running "
                      "in the router; restart FRR's zebra")
        elif diagnosis in (INTERFACE_UNKNOWN, ADDRESS_UNKNOWN):
            log.warning("event=enforcer-frr-interface-missed ifname=%s diagnosis=%s down_for_s=%.0f "
                        "action=resignal", ifname, diagnosis, down_s)
            if self.options.resignal is not None:
                try:
                    await asyncio.to_thread(self.options.resignal)
                except Exception as exc:   # ip failing: the next diagnosis tries again
                    log.error("event=enforcer-resignal-failed ifname=%s error=%r", ifname, str(exc)[:500])
        elif diagnosis == OK:
            log.info("event=enforcer-frr-diagnosis ifname=%s diagnosis=ok down_for_s=%.0f reason=%r",
                     ifname, down_s, self.session.last_reason)
        else:
            log.warning("event=enforcer-frr-diagnosis ifname=%s diagnosis=%s down_for_s=%.0f "
                        "hint=%r", ifname, diagnosis, down_s, "vtysh could not tell what zebra knows")

    def _write_counters(self, doc: Mapping[str, Any]) -> None:
        path = self.options.counters_file
        if path is None:
            return
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        os.replace(tmp, path)

    async def run(self, ready: asyncio.Event | None = None) -> None:
        self._reload_groups()
        await asyncio.to_thread(self.steering.clear_stale)   # an earlier run killed before its close()
        await self.apply_now()            # removes a table left behind by an earlier run
        self.speaker = self._speaker_factory(self.options)
        await self.speaker.start()
        if ready:
            ready.set()
        tasks = [asyncio.create_task(coro) for coro in
                 (self._consume(self.speaker), self._applier(), self._ticker(), self._watch_frr())]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

    async def close(self) -> None:
        """Stop ExaBGP, write a last snapshot, remove the table and the policy routing (nothing enforced
        without us)."""
        if self.speaker:
            await self.speaker.stop()
        with contextlib.suppress(NftError, OSError):
            self._write_counters(await self.read_snapshot())
        try:
            await asyncio.to_thread(self.nft.delete)
        except NftError as exc:
            log.error("event=enforcer-table-remove-failed error=%r", str(exc))
        await asyncio.to_thread(self.steering.close)   # after the marks are gone: normal routing


def _default_speaker(options: EnforcerOptions) -> ExaBgpSpeaker:
    """ExaBGP peering iBGP with FRR; started through `exabgp_prefix` (a wrapper script, because the
    shared speaker only knows named namespaces and the sidecar is anonymous)."""
    neighbor = ExaNeighbor(address=options.frr_address, local_address=options.exa_address,
                           local_as=options.asn, peer_as=options.asn, router_id=options.exa_address,
                           families=("ipv4 flow", "ipv6 flow"), name=options.node)
    if not options.exabgp_prefix:
        return ExaBgpSpeaker(options.workdir, [neighbor], netns=options.netns)
    options.workdir.mkdir(parents=True, exist_ok=True)
    wrapper = options.workdir / "exabgp-in-sidecar"
    command = shlex.join([*options.exabgp_prefix, *exabgp_command()])
    wrapper.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
    wrapper.chmod(0o755)
    return ExaBgpSpeaker(options.workdir, [neighbor], exabgp_bin=str(wrapper))
