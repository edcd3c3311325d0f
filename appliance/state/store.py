"""The snapshot store: every input fact with the sources that state it, versioned and journalled.

The daemon's one writer task calls `apply(change)`; each change that alters anything bumps the version
and is appended to the journal before memory changes: when the append fails (disk full, read-only file
system) `apply` raises StateError and nothing changed, so no reader (API, engine) ever sees a fact that a
restart would lose. Journal watchers (`watch_journal`) hear each failure and the first success after
one; the daemon turns them into the journal alarm and a degraded /health.

`snapshot()` gives the frozen, numbered view the engine reads. It is patched, not rebuilt: per kind the
store keeps its facts in a sorted list and remembers the facts touched since the last snapshot; a snapshot
bisects those added or removed into the list (in place when few, one linear merge when more, a full sort
when a large part changed), copies it to a tuple, and gives `sources` as a LayeredSources (a shared base
plus a small delta, compacted every ~sqrt(n) changes). So after one changed fact a snapshot costs a few
bisections and one tuple copy of pointers, not a sort of the kind's whole table. A plain list and bisect
rather than sortedcontainers: the snapshot must hold plain tuples of the same fact objects (the engine diffs
them by identity), and `tuple(list)` is the cheapest way to get one. `StateStore.restore(journal)` rebuilds
the state from the journal's checkpoint plus later inputs; every `checkpoint_every` inputs the journal is
compacted. Rules pushed per peer and the last rule set pass through to the journal, so a restart can re-sync
peers by diff instead of withdrawing everything first.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import math
import operator
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from appliance.model import InterfaceRules, PrefixReport, RouterRole, SavRuleSet
from appliance.state.changes import Announce, Change, ReplaceSource, Withdraw, WithdrawSource
from appliance.state.errors import StateError
from appliance.state.facts import FACT_KINDS, Fact, kind_of
from appliance.state.journal import Journal
from appliance.state.snapshot import LayeredSources, StateSnapshot

log = logging.getLogger("savd.state")

_SNAPSHOT_FIELD = {
    "router": "routers",
    "interface": "interfaces",
    "link": "links",
    "igp-prefix": "igp_prefixes",
    "report": "reports",
    "role": "roles",
    "neighbor": "neighbors",
    "path": "paths",
    "vrp": "vrps",
    "aspa": "aspas",
    "inspector": "inspectors",
    "suspect": "suspects",
    "collab-allowance": "collab_allowances",
}


@dataclass(frozen=True, slots=True)
class Applied:
    """The outcome of one change: the new version and the kinds whose set of facts changed."""

    version: int
    changed: bool
    kinds: frozenset[str] = frozenset()


def _kind_key(cls: type[Any]) -> Callable[[Any], Any]:
    """A fast sort key over a fact type's fields; nested records (report flags) compare by repr."""
    names = [f.name for f in dataclasses.fields(cls)]
    if cls is PrefixReport:
        return lambda f: (f.router, f.interface, f.prefix, f.subnet, repr(f.flags), f.source)
    if cls is RouterRole:  # role/capability may be None (the source does not say)
        return lambda f: (f.router, str(f.role or ""), str(f.capability or ""), f.source)
    return operator.attrgetter(*names)


_KEYS = {cls: _kind_key(cls) for cls in FACT_KINDS.values()}


def _sort_key(fact: Fact) -> Any:
    """Orders facts of mixed kinds (kind first), e.g. everything one source withdraws."""
    return (kind_of(fact), _KEYS[type(fact)](fact))


#: re-sort a kind whole when more than 1/RESORT_FRACTION of it changed (bisecting each costs more then)
RESORT_FRACTION = 4
#: up to this many changed facts of a kind are bisected into its list in place (memmove), more are merged
IN_PLACE_MAX = 32
#: compact a kind's sources delta into a new base past max(this, sqrt(n)) entries
MIN_DELTA = 16


def edit_sorted(order: list[Fact], added: Iterable[Fact], removed: Iterable[Fact],
                key: Callable[[Any], Any]) -> bool:
    """Bisect `removed` out of and `added` into `order` (sorted by `key`, keys distinct), in place.

    O(changed * log n) key calls plus a memmove each; False if a removed fact is not in `order`.
    """
    for fact in removed:
        i = bisect.bisect_left(order, key(fact), key=key)
        if i == len(order) or order[i] != fact:
            return False
        del order[i]
    for fact in added:
        bisect.insort(order, fact, key=key)
    return True


def merge_sorted(old: Sequence[Fact], added: Iterable[Fact], removed: Iterable[Fact],
                 key: Callable[[Any], Any]) -> list[Fact] | None:
    """`old` (sorted by `key`, keys distinct) without `removed` and with `added`, as a new list.

    One pass over `old` plus O(changed * log n) key calls; None if a removed fact is not in `old`.
    """
    cuts: list[tuple[int, int, int]] = []  # (index in old, 0 = insert adds[j] before it / 1 = drop it, j)
    for fact in removed:
        i = bisect.bisect_left(old, key(fact), key=key)
        if i == len(old) or old[i] != fact:
            return None
        cuts.append((i, 1, 0))
    adds = sorted(added, key=key)
    cuts += [(bisect.bisect_left(old, key(fact), key=key), 0, j) for j, fact in enumerate(adds)]
    cuts.sort()  # inserts at one index stay in key order (j), before the drop there
    out: list[Fact] = []
    start = 0
    for i, drop, j in cuts:
        out.extend(old[start:i])
        if drop:
            start = i + 1
        else:
            out.append(adds[j])
            start = i
    out.extend(old[start:])
    return out


#: sources whose inputs nobody can send again (a report POSTed to the API): journalled durably
DURABLE_SOURCES = frozenset({"api"})

JournalWatcher = Callable[[StateError | None], None]


class StateStore:
    def __init__(self, journal: Journal | None = None, now: Callable[[], float] = time.time,
                 checkpoint_every: int = 5000, durable_sources: frozenset[str] = DURABLE_SOURCES) -> None:
        self.journal = journal
        self.durable_sources = durable_sources
        self.journal_error: StateError | None = None  # the last failed journal write, until one succeeds
        self._journal_watchers: list[JournalWatcher] = []
        self._now = now
        self.checkpoint_every = checkpoint_every
        self._facts: dict[str, dict[Fact, frozenset[str]]] = {k: {} for k in FACT_KINDS}
        self._by_source: dict[str, set[Fact]] = {}
        self._version = 0
        self._since_checkpoint = 0
        self._dirty: set[str] = set(FACT_KINDS)
        # per kind: facts added, removed or given other sources since the last snapshot (one hash each)
        self._touched: dict[str, set[Fact]] = {k: set() for k in FACT_KINDS}
        self._order: dict[str, list[Fact]] = {}  # per kind, sorted as of the last snapshot
        self._sorted: dict[str, tuple[Fact, ...]] = {}
        # per kind: a base no snapshot sees change, and the sources changed since up to the last snapshot
        self._base: dict[str, dict[Fact, frozenset[str]]] = {k: {} for k in FACT_KINDS}
        self._delta: dict[str, dict[Fact, frozenset[str] | None]] = {k: {} for k in FACT_KINDS}
        self._interned: dict[frozenset[str], frozenset[str]] = {}
        self._sources: dict[str, Mapping[Fact, frozenset[str]]] = {}
        self._snapshot: StateSnapshot | None = None
        self._listeners: list[Callable[[Applied, Change], None]] = []
        self._pushed: dict[str, dict[str, str]] = {}
        self._ruleset: tuple[int, SavRuleSet] | None = None

    @classmethod
    def restore(cls, journal: Journal, now: Callable[[], float] = time.time,
                checkpoint_every: int = 5000) -> StateStore:
        """Rebuild from the journal: its checkpoint, then every later input (raises StateError)."""
        store = cls(None, now, checkpoint_every)
        version, facts = journal.load_checkpoint()
        for kind, table in facts.items():
            for fact, sources in table.items():
                store._facts[kind][fact] = store._intern(frozenset(sources))
                for s in sources:
                    store._by_source.setdefault(s, set()).add(fact)
            store._base[kind] = dict(store._facts[kind])
        store._version = version
        replayed = 0
        for _, row_version, change in journal.replay():
            store._mutate(change)
            store._version = row_version
            replayed += 1
        store.journal = journal
        store._since_checkpoint = replayed
        log.info("event=state-restored version=%d replayed=%d facts=%d", store._version, replayed,
                 sum(len(t) for t in store._facts.values()))
        return store

    @property
    def version(self) -> int:
        return self._version

    def subscribe(self, listener: Callable[[Applied, Change], None]) -> None:
        """Call `listener` after every change that altered the state (e.g. to schedule a recompute)."""
        self._listeners.append(listener)

    def watch_journal(self, watcher: JournalWatcher) -> None:
        """Call `watcher(error)` when a journal write fails, `watcher(None)` at the first success after."""
        self._journal_watchers.append(watcher)

    def _journal_failed(self, exc: StateError) -> None:
        self.journal_error = exc
        log.error("event=journal-write-failed path=%s kind=%s reason=%r", exc.path, exc.kind, exc.reason)
        for watcher in tuple(self._journal_watchers):
            watcher(exc)

    def _journal_ok(self) -> None:
        if self.journal_error is None:
            return
        self.journal_error = None
        log.warning("event=journal-write-recovered")
        for watcher in tuple(self._journal_watchers):
            watcher(None)

    def apply(self, change: Change) -> Applied:
        """Journal the change, then apply it in memory; raises StateError (nothing changed) when the
        journal write fails."""
        if not self._changes_anything(change):
            return Applied(self._version, False)
        version = self._version + 1
        if self.journal is not None:
            try:
                durable = change.source in self.durable_sources
                self.journal.append(change, version, self._now(), durable=durable)
            except StateError as exc:
                self._journal_failed(exc)
                raise
            self._journal_ok()
        kinds, changed = self._mutate(change)
        if not changed:  # cannot happen (_changes_anything said so); the journalled no-op replays as one
            log.warning("event=state-noop-journalled source=%s", change.source)
        self._version = version
        if self.journal is not None:
            self._since_checkpoint += 1
            if self._since_checkpoint >= self.checkpoint_every:
                self._checkpoint_in_apply()
        applied = Applied(self._version, True, frozenset(kinds))
        for listener in tuple(self._listeners):
            listener(applied, change)
        return applied

    def checkpoint(self) -> None:
        if self.journal is not None:
            self.journal.checkpoint(self._facts, self._version, self._now())
            self._since_checkpoint = 0

    def _checkpoint_in_apply(self) -> None:
        """A failed compaction loses nothing (the inputs stay journalled): report it, keep the change."""
        try:
            self.checkpoint()
        except StateError as exc:
            self._journal_failed(exc)

    # --- mutation ------------------------------------------------------------------------------------

    def _changes_anything(self, change: Change) -> bool:
        """Whether `_mutate(change)` would alter the state, without altering it (journal first)."""
        source = change.source
        if isinstance(change, Announce | ReplaceSource):
            if any(source not in self._facts[kind_of(f)].get(f, ()) for f in change.facts):
                return True
            if isinstance(change, Announce):
                return False
            wanted = set(change.facts)
            held = self._by_source.get(source, ())
            return any(kind_of(f) in change.kinds and f not in wanted for f in held)
        if isinstance(change, Withdraw):
            return any(source in self._facts[kind_of(f)].get(f, ()) for f in change.facts)
        if isinstance(change, WithdrawSource):
            return bool(self._by_source.get(source))
        return False

    def _mutate(self, change: Change) -> tuple[set[str], bool]:
        """Apply in memory; returns (kinds whose fact set changed, whether anything changed)."""
        kinds: set[str] = set()
        changed = False
        if isinstance(change, Announce):
            for fact in change.facts:
                changed |= self._add(change.source, fact, kinds)
        elif isinstance(change, Withdraw):
            for fact in change.facts:
                changed |= self._remove(change.source, fact, kinds)
        elif isinstance(change, ReplaceSource):
            wanted = set(change.facts)
            held = {f for f in self._by_source.get(change.source, ()) if kind_of(f) in change.kinds}
            for fact in sorted(held - wanted, key=_sort_key):
                changed |= self._remove(change.source, fact, kinds)
            for fact in change.facts:
                changed |= self._add(change.source, fact, kinds)
        elif isinstance(change, WithdrawSource):
            for fact in sorted(self._by_source.get(change.source, ()), key=_sort_key):
                changed |= self._remove(change.source, fact, kinds)
        if changed:
            self._snapshot = None
            self._dirty |= kinds
        return kinds, changed

    def _intern(self, sources: frozenset[str]) -> frozenset[str]:
        """One object per distinct set of sources (few): 100k facts from one source share one set."""
        return self._interned.setdefault(sources, sources)

    def _add(self, source: str, fact: Fact, kinds: set[str]) -> bool:
        kind = kind_of(fact)
        table = self._facts[kind]
        sources = table.get(fact)
        if sources is None:
            table[fact] = self._intern(frozenset((source,)))
            kinds.add(kind)
        elif source in sources:
            return False
        else:
            table[fact] = self._intern(sources | {source})
            self._dirty.add(kind)
        self._touched[kind].add(fact)
        self._by_source.setdefault(source, set()).add(fact)
        return True

    def _remove(self, source: str, fact: Fact, kinds: set[str]) -> bool:
        kind = kind_of(fact)
        table = self._facts[kind]
        sources = table.get(fact)
        if sources is None or source not in sources:
            return False
        if len(sources) == 1:
            del table[fact]
            kinds.add(kind)
        else:
            table[fact] = self._intern(sources - {source})
            self._dirty.add(kind)
        self._touched[kind].add(fact)
        held = self._by_source.get(source)
        if held is not None:
            held.discard(fact)
            if not held:
                del self._by_source[source]
        return True

    # --- reading -------------------------------------------------------------------------------------

    def snapshot(self) -> StateSnapshot:
        """The current facts as a frozen, numbered snapshot (cached until the next change)."""
        if self._snapshot is not None:
            return self._snapshot
        for kind in self._dirty:  # the order first: it reads the previous view of sources
            self._sorted[kind] = self._sorted_facts(kind)
            self._sources[kind] = self._sources_view(kind)
        self._dirty.clear()
        values: dict[str, Any] = {_SNAPSHOT_FIELD[k]: v for k, v in self._sorted.items()}
        self._snapshot = StateSnapshot(self._version, **values, sources=MappingProxyType(dict(self._sources)))
        return self._snapshot

    def _sorted_facts(self, kind: str) -> tuple[Fact, ...]:
        """The kind's facts in key order: its list patched, or sorted whole after a big change."""
        touched, table, before = self._touched[kind], self._facts[kind], self._sources.get(kind)
        key = _KEYS[FACT_KINDS[kind]]
        order = self._order.get(kind)
        if order is not None and before is not None and len(touched) * RESORT_FRACTION <= len(order):
            added = [f for f in touched if f in table and f not in before]
            removed = [f for f in touched if f not in table and f in before]
            if not added and not removed and kind in self._sorted:
                return self._sorted[kind]  # only sources changed: the same tuple (the engine skips it)
            if len(added) + len(removed) <= IN_PLACE_MAX:
                order = order if edit_sorted(order, added, removed, key) else None
            else:
                order = merge_sorted(order, added, removed, key)
            if order is None or len(order) != len(table):
                log.warning("event=state-sort-mismatch kind=%s action=resort", kind)
                order = None
        else:
            order = None
        if order is None:
            order = sorted(table, key=key)
        self._order[kind] = order
        return tuple(order)

    def _sources_view(self, kind: str) -> Mapping[Fact, frozenset[str]]:
        """A frozen fact -> sources view: base + a copy of the delta; a new base once the delta is big."""
        touched, table, delta = self._touched[kind], self._facts[kind], self._delta[kind]
        if len(delta) + len(touched) > max(MIN_DELTA, math.isqrt(len(table))):
            self._base[kind] = dict(table)
            delta.clear()
        else:
            delta.update((f, table.get(f)) for f in touched)
        touched.clear()
        return LayeredSources(self._base[kind], dict(delta), len(table))

    def facts(self, kind: str) -> list[Fact]:
        facts: tuple[Fact, ...] = getattr(self.snapshot(), _SNAPSHOT_FIELD[kind])
        return list(facts)

    def sources_of(self, fact: Fact) -> frozenset[str]:
        return self._facts[kind_of(fact)].get(fact, frozenset())

    def sources(self) -> dict[str, int]:
        """Each source with the number of facts it states."""
        return {s: len(f) for s, f in sorted(self._by_source.items())}

    # --- rules pushed per peer, last rule set (journal pass-through) ---------------------------------

    def record_push(self, peer: str, announced: Mapping[str, str], withdrawn: Iterable[str]) -> None:
        """Call after a push succeeded: the peer now holds `announced` and no longer the `withdrawn` keys."""
        withdrawn = tuple(withdrawn)
        held = self._held(peer)
        if self.journal is not None:   # a failed write raises and leaves the copy in memory as it was
            self._journalled(lambda j: j.record_push(peer, announced, withdrawn, self._now()))
        for key in withdrawn:
            held.pop(key, None)
        held.update(announced)

    def pushed(self, peer: str) -> dict[str, str]:
        """The rules `peer` holds (key -> rule text), as recorded; what a restarted pusher diffs against."""
        return dict(sorted(self._held(peer).items()))

    def _held(self, peer: str) -> dict[str, str]:
        """The recorded rules of `peer` in memory, read from the journal once: the enforcer poller asks for
        a 10k-rule router's every few seconds, which an SQL read of every row made ~30-100 ms of the event
        loop."""
        held = self._pushed.get(peer)
        if held is None:
            held = self._pushed[peer] = self.journal.pushed(peer) if self.journal is not None else {}
        return held

    def pushed_counts(self) -> dict[str, int]:
        """Rules each peer holds, as recorded (peers holding none left out)."""
        if self.journal is not None:
            return self.journal.pushed_counts()
        return {p: len(held) for p, held in sorted(self._pushed.items()) if held}

    def pushed_peers(self) -> list[str]:
        if self.journal is not None:
            return self.journal.pushed_peers()
        return sorted(p for p, held in self._pushed.items() if held)

    def save_ruleset(self, ruleset: SavRuleSet, version: int,
                     encoded: Mapping[tuple[str, str], tuple[InterfaceRules, str]] | None = None) -> None:
        """Keep the rule set in force (served at once after a restart); raises StateError when the
        journal write fails (the rules stay in force in memory: they are derived, not lost). `encoded`:
        rules encoded beforehand by `journal.encode_rules`."""
        self._ruleset = (version, ruleset)
        if self.journal is not None:
            self._journalled(lambda j: j.save_ruleset(ruleset, version, self._now(), encoded))

    def unsaved_rules(self, ruleset: SavRuleSet) -> list[InterfaceRules]:
        """The rules of `ruleset` the journal does not hold yet (what `save_ruleset` would write)."""
        return self.journal.unsaved_rules(ruleset) if self.journal is not None else []

    def _journalled(self, write: Callable[[Journal], None]) -> None:
        """Run one journal write, telling the watchers about a failure or a recovery (re-raises)."""
        assert self.journal is not None
        try:
            write(self.journal)
        except StateError as exc:
            self._journal_failed(exc)
            raise
        self._journal_ok()

    def last_ruleset(self) -> tuple[int, SavRuleSet] | None:
        if self._ruleset is None and self.journal is not None:
            self._ruleset = self.journal.load_ruleset()
        return self._ruleset

