"""Incremental recompute: an `Engine` holds the inputs and the last result and applies typed events.

Each event recomputes only what it can affect: a path touches its router (live.LiveRouter: its prefix, origin
and AS pairs); a report touches the allowlists of its interface and of every interface its subnet is attached
to (one without a subnet: only its prefix in its interface's allowlist, see `_patch_access`), and the border
blocklists (border.LiveBlocklist: the entries of the internal prefixes it can affect, when
there are border routers; each external rule is then patched by the delta, see `_patched`); a VRP/ASPA
delta, a topology or a policy change rebuild the inter-domain state (RPKI feeds every BAR-SAV cone). `apply`
returns the (router, interface) keys whose rule changed; `ruleset()` rebuilds only those rules and equals
`snapshot.compute(engine.snapshot())` byte for byte (hypothesis tests drive random event sequences to check
it: test_incremental.py, test_incremental_reports.py). Pure: no I/O, no clock.
"""

from __future__ import annotations

import bisect
import gc
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TypeVar

from appliance.engine.border import LiveBlocklist
from appliance.engine.intra import (
    IntraOutcome,
    access_name,
    access_outcome,
    border_outcome,
    compute_intra,
    external_keys,
    patch_access,
)
from appliance.engine.live import LiveRouter
from appliance.engine.policy import Algorithm, Policy
from appliance.engine.rib import RpkiView, neighbors_by_interface
from appliance.engine.snapshot import Decision, Evidence, Key, Snapshot, assemble, merge, rule_of
from appliance.model import (
    Aspa,
    BgpPath,
    IgpPrefix,
    Interface,
    InterfaceRules,
    Link,
    Neighbor,
    PrefixReport,
    Relationship,
    Router,
    SavRuleSet,
    Vrp,
)

K = TypeVar("K")

__all__ = [
    "Engine",
    "PathAdded",
    "PathRemoved",
    "PolicyChanged",
    "ReportAdded",
    "ReportRemoved",
    "RpkiChanged",
    "TopologyChanged",
]


@dataclass(frozen=True, slots=True)
class PathAdded:
    """A path appeared or replaced the one with the same (router, interface, prefix, path_id)."""

    path: BgpPath


@dataclass(frozen=True, slots=True)
class PathRemoved:
    """The path with this (router, interface, prefix, path_id) was withdrawn (its AS_PATH is ignored)."""

    path: BgpPath


@dataclass(frozen=True, slots=True)
class ReportAdded:
    report: PrefixReport


@dataclass(frozen=True, slots=True)
class ReportRemoved:
    report: PrefixReport


@dataclass(frozen=True, slots=True)
class RpkiChanged:
    """A VRP/ASPA delta as the RPKI tables publish it; `ready` None leaves the readiness rule unchanged."""

    vrps_added: tuple[Vrp, ...] = ()
    vrps_removed: tuple[Vrp, ...] = ()
    aspas_added: tuple[Aspa, ...] = ()
    aspas_removed: tuple[Aspa, ...] = ()
    ready: bool | None = None
    aspa_customers_removed: tuple[int, ...] = ()  # rpki.tables.RpkiDelta names removed ASPAs by customer


@dataclass(frozen=True, slots=True)
class TopologyChanged:
    """New routers, interfaces, links, neighbours or IGP prefixes; None keeps the current set."""

    routers: tuple[Router, ...] | None = None
    interfaces: tuple[Interface, ...] | None = None
    links: tuple[Link, ...] | None = None
    neighbors: tuple[Neighbor, ...] | None = None
    igp_prefixes: tuple[IgpPrefix, ...] | None = None


@dataclass(frozen=True, slots=True)
class PolicyChanged:
    policy: Policy = field(default_factory=Policy)


EngineEvent = (
    PathAdded | PathRemoved | ReportAdded | ReportRemoved | RpkiChanged | TopologyChanged | PolicyChanged
)


class _LiveEvidence(Evidence):
    """Provenance from the engine's live state instead of a snapshot's tuples: paths from the live routers,
    VRPs from the RPKI view's index (kept up to date by the engine, so a ruleset() after a lone report does
    not group every VRP by prefix again)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(Snapshot(policy=engine.policy))
        self.engine = engine

    def vrps_at(self, prefix: str) -> Iterable[Vrp]:
        return self.engine.rpki.vrps_at(prefix)

    def paths_for(self, router: str, interface: str, prefix: str) -> Iterable[BgpPath]:
        live = self.engine.live.get(router)
        paths = live.paths_at(prefix) if live else ()
        return tuple(p for p in paths if p.interface == interface)


_router_of = attrgetter("router")


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Hold CPython's cyclic collector off during a bulk build. The state built is dicts, sets, tuples and
    counters of strings and paths, without reference cycles, so a collection inside the build frees nothing:
    it only rescans the half-built state, each full pass longer than the last (at 1M paths, ten full passes
    cost ~2 s of a ~5 s build). Reference counting still frees everything else at once; the collector's
    previous state is restored afterwards (and a caller that had it off keeps it off)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Engine:
    """Inputs, per-router live state and the last rules; one writer (the daemon's state task) calls apply."""

    def __init__(self, snapshot: Snapshot) -> None:
        with _collector_paused():
            self._build(snapshot)

    def _build(self, snapshot: Snapshot) -> None:
        self.routers = {r.name: r for r in snapshot.routers}
        self.interfaces = {(i.router, i.name): i for i in snapshot.interfaces}
        self.links = tuple(snapshot.links)
        self.igp_prefixes = tuple(snapshot.igp_prefixes)
        self.reports: dict[PrefixReport, None] = dict.fromkeys(snapshot.reports)
        # the reports indexed as the intra rules read them: a report change redoes only what it touches
        self.by_iface: dict[Key, dict[PrefixReport, None]] = {}
        self.by_subnet: dict[str, dict[PrefixReport, None]] = {}
        self.by_prefix: dict[tuple[str, str, str], dict[PrefixReport, None]] = {}  # (router, iface, prefix)
        self.subnetted: dict[Key, int] = {}  # own reports with a subnet, per interface (patchable when none)
        for r in self.reports:
            self._index(r, True)
        self.external: set[Key] = set()
        self.border: LiveBlocklist | None = None  # the border blocklist, kept by report (border routers only)
        self.neighbors = _one_per_interface(snapshot.neighbors)
        self._vrp_input: tuple[Vrp, ...] = tuple(snapshot.vrps)  # until `vrps` is first read
        self._vrps: dict[Vrp, None] | None = None
        self.aspas: dict[Aspa, None] = dict.fromkeys(snapshot.aspas)
        self.policy = snapshot.policy
        self.rpki_ready = snapshot.rpki_ready
        self.live: dict[str, LiveRouter] = {}
        self._intra: dict[Key, IntraOutcome] = {}
        self._border_pending = False  # the border blocklist moved; its outcomes are built when next read
        self._access_pending: set[Key] = set()  # allowlists whose reports changed, built when next read
        self._access_patch: dict[Key, set[str]] = {}  # or only these prefixes of theirs (`_patch_access`)
        self.rules: dict[Key, InterfaceRules] = {}
        self.decisions: dict[Key, Decision] = {}  # what each rule was built from (to patch it by the delta)
        self.dirty: set[Key] = set()
        self.unpatchable: set[Key] = set()  # dirty for a reason other than reports: rebuild those whole
        self._rebuild_inter(list(snapshot.paths))
        self._recompute_intra()

    # --- inputs as a snapshot ---------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return Snapshot(
            routers=tuple(self.routers.values()),
            interfaces=tuple(self.interfaces.values()),
            links=self.links,
            reports=tuple(self.reports),
            neighbors=tuple(self.neighbors.values()),
            paths=tuple(p for live in self.live.values() for p in live.all_paths()) + self._orphans,
            vrps=tuple(self.vrps),
            aspas=tuple(self.aspas),
            policy=self.policy,
            rpki_ready=self.rpki_ready,
            igp_prefixes=self.igp_prefixes,
        )

    @property
    def vrps(self) -> dict[Vrp, None]:
        """The VRPs, each once, in first-seen order. Made from the snapshot's tuple when first read (a
        delta, `snapshot()`, provenance): the build itself reads VRPs through the RPKI view only, whose
        answers do not depend on repeats (`Snapshot.rpki` passes them through too)."""
        if self._vrps is None:
            self._vrps = dict.fromkeys(self._vrp_input)
            self._vrp_input = ()
        return self._vrps

    def _router(self, name: str) -> Router:
        return self.routers.get(name) or Router(name)

    def _rpki(self) -> RpkiView:
        vrps = self._vrp_input if self._vrps is None else tuple(self._vrps)
        self.rpki = RpkiView.of(vrps, self.aspas, self.rpki_ready)
        return self.rpki

    # --- recomputation --------------------------------------------------------------------------------

    def _rebuild_inter(self, paths: list[BgpPath]) -> None:
        """Build every router's live state from scratch (start, RPKI, topology or policy change)."""
        with _collector_paused():
            self._rebuild_inter_now(paths)

    def _rebuild_inter_now(self, paths: list[BgpPath]) -> None:
        rpki = self._rpki()
        by_router: dict[str, list[Neighbor]] = {}
        for n in self.neighbors.values():
            by_router.setdefault(n.router, []).append(n)
        paths_by_router: dict[str, list[BgpPath]] = {}
        routers = set(map(_router_of, paths))
        if len(routers) == 1:  # one router (every border router's own savd): no per-path grouping
            paths_by_router[routers.pop()] = paths
        else:
            for p in paths:
                paths_by_router.setdefault(p.router, []).append(p)
        old_keys = {(r, i) for r, live in self.live.items() for i in live.neighbors}
        self.live = {}
        orphans: list[BgpPath] = []
        for name in sorted(by_router):
            live = LiveRouter(self._router(name), by_router[name], rpki, self.policy)
            orphans += live.load(paths_by_router.pop(name, []))
            self.live[name] = live
        # paths the live state does not hold (router or interface without a neighbour) are kept: a later
        # topology change may give them one, and snapshot() round-trips
        self._orphans = tuple(orphans + [p for ps in paths_by_router.values() for p in ps])
        self.dirty |= old_keys | {(r, i) for r, live in self.live.items() for i in live.neighbors}

    def _recompute_intra(self) -> None:
        routers = dict(self.routers)
        for key in list(self.interfaces) + [(r.router, r.interface) for r in self.reports]:
            routers.setdefault(key[0], Router(key[0]))
        for n in self.neighbors.values():
            routers.setdefault(n.router, Router(n.router))
        self.external = external_keys(routers, self.interfaces.values())
        self.border = None
        if self.external:
            self.border = LiveBlocklist(self.reports, self.igp_prefixes, self.interfaces.values(),
                                        self.neighbors.values())
        self._access_pending, self._access_patch = set(), {}  # superseded: every outcome is redone below
        new = compute_intra(routers, self.interfaces.values(), self.reports, self.policy,
                            self.igp_prefixes, self.neighbors.values())
        old = self.intra
        for key in new.keys() | old.keys():
            if new.get(key) != old.get(key):
                self.dirty.add(key)
        self._intra = new
        self._border_pending = False

    @property
    def intra(self) -> dict[Key, IntraOutcome]:
        """The intra-domain outcome of every interface that has one, border outcomes brought up to date."""
        self._flush_border()
        return self._intra

    def _flush_border(self) -> None:
        """Build the outcomes the report changes since the last read left pending, once for all of them:
        per report, an allowlist would be rebuilt from all its interface's reports and the border outcomes
        from a copy of the whole blocklist (quadratic in a bulk load)."""
        for key in self._access_pending:
            self._set_intra(key, self._access(key))
        for key, prefixes in self._access_patch.items():
            if key not in self._access_pending:
                self._set_intra(key, self._patch_access(key, prefixes))
        self._access_pending, self._access_patch = set(), {}
        if self._border_pending and self.border is not None:
            block = dict(self.border.block)  # the outcomes keep a copy: the live one moves on
            keys = frozenset(block)
            for key in self.external:
                self._set_intra(key, border_outcome(key, block, self.policy, keys))
        self._border_pending = False

    def _access(self, key: Key) -> IntraOutcome | None:
        """The allowlist of an access interface from all its reports (None once it has none)."""
        own = self.by_iface.get(key)
        if own is None:
            return None
        return access_outcome(key, own, self.by_subnet, self.policy.algorithm_for(*key))

    def _patch_access(self, key: Key, prefixes: set[str]) -> IntraOutcome | None:
        """The allowlist of `key` with only the `prefixes` its report changes touched redone, when the last
        outcome chose the same reports and no own report has a subnet (then nothing else is chosen): a
        report change costs O(changes), not O(interface's reports). Otherwise `_access`."""
        if key not in self.by_iface:
            return None
        prev, algo = self._intra.get(key), self.policy.algorithm_for(*key)
        if (prev is None or algo is Algorithm.LOOSE or prev.algorithm != access_name(algo)
                or self.subnetted.get(key)):
            return self._access(key)
        reports = [r for p in prefixes for r in self.by_prefix.get((*key, p), ())]
        return patch_access(prev, prefixes, reports, algo)

    def _set_intra(self, key: Key, outcome: IntraOutcome | None) -> None:
        if outcome is None:
            self._intra.pop(key, None)
        else:
            self._intra[key] = outcome

    def _index(self, r: PrefixReport, add: bool) -> None:
        """Add `r` to (or drop it from) the per-interface, per-prefix and per-subnet report indexes."""
        key = (r.router, r.interface)
        _file(self.by_iface, key, r, add)
        _file(self.by_prefix, (*key, r.prefix), r, add)
        if r.subnet:
            _file(self.by_subnet, r.subnet, r, add)
            count = self.subnetted.get(key, 0) + (1 if add else -1)
            if count:
                self.subnetted[key] = count
            else:
                del self.subnetted[key]

    def _on_report(self, report: PrefixReport, add: bool) -> None:
        """One report in or out: redo the allowlists of its interface and of every interface sharing its
        subnet (a multi-homed subnet's prefixes go to all its attachments), and the border blocklist
        (internal space, by the delta: LiveBlocklist) when there are border routers. Equal to
        `compute_intra` over all reports."""
        if add == (report in self.reports):
            return  # already there / already gone: nothing changes
        if add:
            self.reports[report] = None
        else:
            del self.reports[report]
        self._index(report, add)
        key = (report.router, report.interface)
        if report.subnet:
            touched = {key} | {(r.router, r.interface) for r in self.by_subnet.get(report.subnet, ())}
            access = touched - self.external
            self._access_pending |= access  # built once when read (`intra`): a bulk load stays linear
        else:  # only its own interface, only its prefix: patched when read, if it can be
            access = {key} - self.external
            if access:
                self._access_patch.setdefault(key, set()).add(report.prefix)
        self.dirty |= access
        if self.border is not None and self.border.apply(report, add):
            self._border_pending = True
            self.dirty |= self.external

    def apply(self, event: EngineEvent) -> frozenset[Key]:
        """Apply one event; return the keys whose rule may have changed."""
        before = set(self.dirty)
        self.dirty = set()
        if isinstance(event, PathAdded | PathRemoved):
            self._on_path(event.path, isinstance(event, PathAdded))
        elif isinstance(event, ReportAdded | ReportRemoved):
            self._on_report(event.report, isinstance(event, ReportAdded))
        elif isinstance(event, RpkiChanged):
            self._on_rpki(event)
        elif isinstance(event, TopologyChanged):
            self._on_topology(event)
        else:
            self.policy = event.policy
            self._rebuild_inter(self._all_paths())
            self._recompute_intra()
        if not isinstance(event, ReportAdded | ReportRemoved):
            self.unpatchable |= self.dirty  # paths, VRPs, routers or policy feed provenance and delivery
        changed = frozenset(self.dirty)
        self.dirty |= before
        return changed

    def _all_paths(self) -> list[BgpPath]:
        return [p for live in self.live.values() for p in live.all_paths()] + list(self._orphans)

    def _on_path(self, path: BgpPath, add: bool) -> None:
        live = self.live.get(path.router)
        if live is None or path.interface not in live.neighbors:
            orphans = [p for p in self._orphans if _path_key(p) != _path_key(path)]
            self._orphans = tuple(orphans + ([path] if add else []))
            return
        for iface in live.apply_path(path, add):
            self.dirty.add((path.router, iface))

    def _on_rpki(self, event: RpkiChanged) -> None:
        had_vrps = bool(self.vrps)
        removed = [v for v in event.vrps_removed if v in self.vrps]
        added = [v for v in event.vrps_added if v not in self.vrps]
        for v in removed:
            del self.vrps[v]
        self.vrps.update(dict.fromkeys(added))
        old_aspas, old_ready = set(self.aspas), self.rpki.ready
        for a in event.aspas_removed:
            self.aspas.pop(a, None)
        gone = set(event.aspa_customers_removed)
        for a in [a for a in self.aspas if a.customer in gone]:
            del self.aspas[a]
        self.aspas.update(dict.fromkeys(event.aspas_added))
        if event.ready is not None:
            self.rpki_ready = event.ready
        ready = bool(self.vrps or self.aspas) if self.rpki_ready is None else self.rpki_ready
        if set(self.aspas) == old_aspas and ready == old_ready and bool(self.vrps) == had_vrps:
            # VRPs only: AS cones stand (they read ASPAs and paths); patch the VRP index, redo Q and S
            moved = {v.prefix for v in (*added, *removed)}
            u_before = {name: live.u_members(moved) for name, live in self.live.items()}
            self.rpki = self.rpki.with_vrp_delta(tuple(self.vrps), added, removed)
            for name, live in self.live.items():
                self.dirty |= {(name, i) for i in live.refresh_rpki(self.rpki, u_before[name])}
            # provenance lists the ROAs of each prefix: rules holding a changed VRP prefix are rebuilt
            for key, rule in self.rules.items():
                if key[0] in self.live and not moved.isdisjoint(rule.prefixes):
                    self.dirty.add(key)
            return
        self._rebuild_inter(self._all_paths())

    def _on_topology(self, event: TopologyChanged) -> None:
        if event.routers is not None:
            self.routers = {r.name: r for r in event.routers}
            self.dirty |= set(self.rules)  # delivery follows the router's capability
        if event.interfaces is not None:
            self.interfaces = {(i.router, i.name): i for i in event.interfaces}
        if event.links is not None:
            self.links = tuple(event.links)
        if event.neighbors is not None:
            self.neighbors = _one_per_interface(event.neighbors)
        if event.igp_prefixes is not None:
            self.igp_prefixes = tuple(event.igp_prefixes)
        self._rebuild_inter(self._all_paths())
        self._recompute_intra()

    # --- results ------------------------------------------------------------------------------------------

    def decision(self, key: Key) -> Decision | None:
        live = self.live.get(key[0])
        inter = None
        if live is not None and key[1] in live.neighbors:
            if live.neighbors[key[1]].relationship is not Relationship.INTERNAL:
                inter = live.outcome(key[1])
        intra = self.intra.get(key)
        if inter is None and intra is None:
            return None
        return merge(key, inter, intra)

    def ruleset(self) -> SavRuleSet:
        """The current rules; only the interfaces changed since the last call are rebuilt."""
        if self.dirty:
            routers = {**{n: Router(n) for n in self._names()}, **self.routers}
            evidence = _LiveEvidence(self)
            moved: dict[tuple[int, int], Compared] = {}   # _patched's provenance comparisons
            for key in sorted(self.dirty):
                d = self.decision(key)
                if d is None:
                    self.rules.pop(key, None)
                    self.decisions.pop(key, None)
                    continue
                old, before = self.rules.get(key), self.decisions.get(key)
                rule = None
                if old is not None and before is not None and key not in self.unpatchable:
                    rule = _patched(old, before, d, evidence, moved)
                self.rules[key] = rule or rule_of(d, routers, evidence)
                self.decisions[key] = d
            self.dirty = set()
            self.unpatchable = set()
        return assemble(self.rules.values())

    def _names(self) -> set[str]:
        names = {k[0] for k in self.interfaces} | {k[0] for k in self.neighbors}
        return names | {k[0] for k in self.by_iface}


Compared = tuple[Mapping[str, tuple[str, ...]], Mapping[str, tuple[str, ...]], set[str]]


def _patched(old: InterfaceRules, before: Decision, d: Decision, evidence: Evidence,
             seen: dict[tuple[int, int], Compared]) -> InterfaceRules | None:
    """`old` (built from `before`) edited into the rule of `d`, when only reports changed since: the list
    and the intra provenance moved, nothing else a rule reads (paths, VRPs, routers, policy). Touches the
    prefixes that came, went or changed provenance: O(changes log n) plus C-level copies. None when the
    decision's kind, algorithm or notes differ (rule_of rebuilds it)."""
    if (before.kind, before.algorithm, before.notes, before.inter) != (d.kind, d.algorithm, d.notes, d.inter):
        return None
    gone = before.prefixes - d.prefixes
    came = d.prefixes - before.prefixes
    was, now = before.intra_provenance, d.intra_provenance
    # the external interfaces of a border router share one blocklist: compare it once (the memo holds
    # both dicts, so their ids stay theirs while it lives)
    hit = seen.get((id(was), id(now)))
    if hit is None:
        hit = seen[(id(was), id(now))] = (was, now, {p for p, _ in was.items() ^ now.items()})
    moved = hit[2]
    redo = (moved & d.prefixes) | came
    prov = dict(old.provenance)
    for p in gone:
        del prov[p]
    for p in redo:
        prov[p] = evidence.for_prefix(d, p)
    prefixes = [p for p in old.prefixes if p not in gone] if gone else list(old.prefixes)
    for p in sorted(came, key=evidence.sort_key):
        bisect.insort(prefixes, p, key=evidence.sort_key)
    return InterfaceRules(old.router, old.interface, old.kind, tuple(prefixes), old.action, old.delivery,
                          old.algorithm, prov)


def _one_per_interface(neighbors: Iterable[Neighbor]) -> dict[Key, Neighbor]:
    by_router: dict[str, list[Neighbor]] = {}
    for n in neighbors:
        by_router.setdefault(n.router, []).append(n)
    out: dict[Key, Neighbor] = {}
    for router, ns in sorted(by_router.items()):
        for iface, n in sorted(neighbors_by_interface(ns).items()):
            out[(router, iface)] = n
    return out


def _file(index: dict[K, dict[PrefixReport, None]], key: K, r: PrefixReport, add: bool) -> None:
    """Put `r` under `key` in `index`, or take it out (dropping an emptied key)."""
    members = index.setdefault(key, {})
    if add:
        members[r] = None
    else:
        members.pop(r, None)
        if not members:
            del index[key]


def _path_key(p: BgpPath) -> tuple[str, str, str, int]:
    return (p.router, p.interface, p.prefix, p.path_id)
