"""The daemon's recompute path: state snapshots in, rules out, incrementally.

`ConfigEngine` turns each store snapshot into the engine's input (sources/assemble.py `engine_input`:
configuration overrides, roles and reports resolved by precedence through a kept `ReportResolver` that redoes
only the changed report groups, extra neighbours, the policy) and keeps
one incremental `appliance.engine.incremental.Engine` built from the first snapshot. For the next snapshot
it diffs the fact sets of the two inputs (the store reuses unchanged tuples and fact objects, so a diff
skips the identical head and tail and hashes only the window between) and applies the matching events: paths
and reports one by one, VRPs/ASPAs as one `RpkiChanged`, topology as one `TopologyChanged`. It rebuilds from
scratch when the policy changed (a configuration reload builds a new ConfigEngine anyway) and after any
exception (logged). Two paths with the same (router, interface, prefix, path_id) key (two sources
disagreeing on one path) cannot be held by the engine: while they last each call is a full `compute()`. The
result equals `snapshot.compute(engine_input(...))` byte for byte (tests/unit/daemon/test_recompute.py
drives random store changes to check it)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TypeVar

from appliance.config import Config
from appliance.engine.collab import with_collaboration
from appliance.engine.incremental import (
    Engine,
    EngineEvent,
    PathAdded,
    PathRemoved,
    ReportAdded,
    ReportRemoved,
    RpkiChanged,
    TopologyChanged,
)
from appliance.engine.snapshot import Snapshot, compute
from appliance.model import BgpPath, SavRuleSet
from appliance.monitor.clock import Clock, SystemClock
from appliance.sources.assemble import engine_input, steered
from appliance.sources.reports.merge import ReportResolver
from appliance.state import StateSnapshot
from appliance.state.snapshot import changed_window

log = logging.getLogger("savd.recompute")

T = TypeVar("T")


class _Rebuild(Exception):
    """The difference between two inputs has no incremental event; say why."""


def _diff(old: Sequence[T], new: Sequence[T]) -> tuple[list[T], list[T]]:
    """(removed, added) between two tuples of distinct facts, in their order (only their changed window)."""
    window_old, window_new = changed_window(old, new)
    old_set, new_set = set(window_old), set(window_new)
    return [x for x in window_old if x not in new_set], [x for x in window_new if x not in old_set]


def _path_key(p: BgpPath) -> tuple[str, str, str, int]:
    return (p.router, p.interface, p.prefix, p.path_id)


PathKeys = set[tuple[str, str, str, int]]


def events_between(old: Snapshot, new: Snapshot, keys: PathKeys) -> list[EngineEvent]:
    """The engine events turning input `old` into `new`; raise _Rebuild when there are none.

    `keys` holds the path keys of `old` (one path each) and is updated to those of `new` on success.
    """
    if old.policy != new.policy or old.rpki_ready != new.rpki_ready:
        raise _Rebuild("policy")
    paths_gone, paths_new = _diff(old.paths, new.paths)
    gone_keys = {_path_key(p) for p in paths_gone}
    new_keys = [_path_key(p) for p in paths_new]
    if len(set(new_keys)) != len(new_keys) or any(k in keys and k not in gone_keys for k in new_keys):
        raise _Rebuild("paths sharing a (router, interface, prefix, path_id) key")
    events: list[EngineEvent] = []
    if (old.routers, old.interfaces, old.links, old.neighbors, old.igp_prefixes) != \
            (new.routers, new.interfaces, new.links, new.neighbors, new.igp_prefixes):
        events.append(TopologyChanged(routers=new.routers, interfaces=new.interfaces, links=new.links,
                                      neighbors=new.neighbors, igp_prefixes=new.igp_prefixes))
    vrps_gone, vrps_new = _diff(old.vrps, new.vrps)
    aspas_gone, aspas_new = _diff(old.aspas, new.aspas)
    if vrps_gone or vrps_new or aspas_gone or aspas_new:
        events.append(RpkiChanged(vrps_added=tuple(vrps_new), vrps_removed=tuple(vrps_gone),
                                  aspas_added=tuple(aspas_new), aspas_removed=tuple(aspas_gone)))
    reports_gone, reports_new = _diff(old.reports, new.reports)
    events += [ReportRemoved(r) for r in reports_gone] + [ReportAdded(r) for r in reports_new]
    # a replaced path is one PathAdded; removing it first would drop then re-add its key
    replaced = set(new_keys)
    events += [PathRemoved(p) for p in paths_gone if _path_key(p) not in replaced]
    events += [PathAdded(p) for p in paths_new]
    keys -= gone_keys
    keys |= replaced
    return events


class ConfigEngine:
    """`Daemon` engine: fn(StateSnapshot) -> SavRuleSet, incremental between calls (one caller at a time)."""

    def __init__(self, config: Config, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()  # collaboration allowances expire (engine/collab.py)
        self.engine: Engine | None = None
        self.input: Snapshot | None = None
        self.path_keys: PathKeys = set()
        self.rebuilds = 0  # full builds so far (first snapshot included), for tests and the bench
        self.resolver = ReportResolver()  # reports resolved per changed (router, interface) group

    def __call__(self, snap: StateSnapshot) -> SavRuleSet:
        """The rules of `snap`, with the live allowances of collaborating ASes (engine/collab.py: after the
        engine, so the incremental engine never holds them) and the steering of its suspects
        (sources/assemble.py `steered`)."""
        new = engine_input(self.config, snap, self.resolver)
        rules = with_collaboration(self._rules(snap, new), snap.collab_allowances, self.clock.now())
        rpki = self.engine.rpki if self.engine is not None else None
        # no VRPs: nothing is Invalid, and "no ROA covers it" is no evidence (fail open: no suspects)
        return steered(self.config, snap, new, rules, rpki.rov if rpki is not None and rpki.vrps else None)

    def _rules(self, snap: StateSnapshot, new: Snapshot) -> SavRuleSet:
        if self.engine is not None and self.input is not None:
            try:
                self._apply(events_between(self.input, new, self.path_keys))
                self.input = new
                return self.engine.ruleset()
            except _Rebuild as why:
                log.info("event=recompute-rebuild version=%d reason=%s", snap.version, why)
            except Exception:
                log.exception("event=recompute-incremental-failed version=%d action=rebuild", snap.version)
        return self._rebuild(new)

    def _apply(self, events: Iterable[EngineEvent]) -> None:
        assert self.engine is not None
        for event in events:
            self.engine.apply(event)

    def _rebuild(self, new: Snapshot) -> SavRuleSet:
        self.engine, self.input = None, None  # a failed build leaves nothing half-applied behind
        self.rebuilds += 1
        self.path_keys = {_path_key(p) for p in new.paths}
        if len(self.path_keys) != len(new.paths):
            # two sources state different AS paths under one key: only compute() sees both
            return compute(new)
        engine = Engine(new)
        ruleset = engine.ruleset()
        self.engine, self.input = engine, new
        return ruleset


class RecomputeTimer:
    """When the daemon recomputes after a change: at once when idle, spaced out during a burst.

    A fixed debounce made every change wait for it (200 ms of a report's 287 ms to the router). Now a
    change arriving `debounce_s` or more after the last recompute started goes at once (a lone change,
    the common case); one arriving sooner waits until `debounce_s` after that start, so the changes of
    a burst coalesce into at most one recompute per `debounce_s`. Pure: the caller passes the time (a
    monotonic clock in the daemon, plain numbers in tests).
    """

    def __init__(self, debounce_s: float) -> None:
        self.debounce_s = debounce_s
        self.last_start_s: float | None = None

    def delay(self, now_s: float) -> float:
        """Seconds to wait before recomputing for a change pending at `now_s`."""
        if self.last_start_s is None:
            return 0.0
        return max(0.0, self.last_start_s + self.debounce_s - now_s)

    def started(self, now_s: float) -> None:
        """A recompute starts at `now_s` (it sees every change made before)."""
        self.last_start_s = now_s

