"""The snapshot store: every input fact with the sources that state it, versioned and journalled.

The daemon's one writer task calls `apply(change)`; each change that alters anything bumps the version
and is appended to the journal before it is visible. `snapshot()` gives the frozen, numbered view the
engine reads (rebuilt only for the kinds that changed). `StateStore.restore(journal)` rebuilds the state
from the journal's checkpoint plus later inputs; every `checkpoint_every` inputs the journal is
compacted. Rules pushed per peer and the last rule set pass through to the journal, so a restart can
re-sync peers by diff instead of withdrawing everything first.
"""

from __future__ import annotations

import dataclasses
import logging
import operator
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from appliance.model import PrefixReport, SavRuleSet
from appliance.state.changes import Announce, Change, ReplaceSource, Withdraw, WithdrawSource
from appliance.state.facts import FACT_KINDS, Fact, kind_of
from appliance.state.journal import Journal
from appliance.state.snapshot import StateSnapshot

log = logging.getLogger("savd.state")

_SNAPSHOT_FIELD = {
    "router": "routers",
    "interface": "interfaces",
    "link": "links",
    "igp-prefix": "igp_prefixes",
    "report": "reports",
    "neighbor": "neighbors",
    "path": "paths",
    "vrp": "vrps",
    "aspa": "aspas",
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
    return operator.attrgetter(*names)


_KEYS = {cls: _kind_key(cls) for cls in FACT_KINDS.values()}


def _sort_key(fact: Fact) -> Any:
    """Orders facts of mixed kinds (kind first), e.g. everything one source withdraws."""
    return (kind_of(fact), _KEYS[type(fact)](fact))


class StateStore:
    def __init__(self, journal: Journal | None = None, now: Callable[[], float] = time.time,
                 checkpoint_every: int = 5000) -> None:
        self.journal = journal
        self._now = now
        self.checkpoint_every = checkpoint_every
        self._facts: dict[str, dict[Fact, set[str]]] = {k: {} for k in FACT_KINDS}
        self._by_source: dict[str, set[Fact]] = {}
        self._version = 0
        self._since_checkpoint = 0
        self._dirty: set[str] = set(FACT_KINDS)
        self._sorted: dict[str, tuple[Fact, ...]] = {}
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
                store._facts[kind][fact] = set(sources)
                for s in sources:
                    store._by_source.setdefault(s, set()).add(fact)
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

    def apply(self, change: Change) -> Applied:
        kinds, changed = self._mutate(change)
        if not changed:
            return Applied(self._version, False)
        self._version += 1
        if self.journal is not None:
            self.journal.append(change, self._version, self._now())
            self._since_checkpoint += 1
            if self._since_checkpoint >= self.checkpoint_every:
                self.checkpoint()
        applied = Applied(self._version, True, frozenset(kinds))
        for listener in tuple(self._listeners):
            listener(applied, change)
        return applied

    def checkpoint(self) -> None:
        if self.journal is not None:
            self.journal.checkpoint(self._facts_view(), self._version, self._now())
            self._since_checkpoint = 0

    def _facts_view(self) -> dict[str, dict[Fact, frozenset[str]]]:
        return {k: {f: frozenset(s) for f, s in t.items()} for k, t in self._facts.items()}

    # --- mutation ------------------------------------------------------------------------------------

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

    def _add(self, source: str, fact: Fact, kinds: set[str]) -> bool:
        kind = kind_of(fact)
        table = self._facts[kind]
        sources = table.get(fact)
        if sources is None:
            table[fact] = {source}
            kinds.add(kind)
        elif source in sources:
            return False
        else:
            sources.add(source)
            self._dirty.add(kind)
        self._by_source.setdefault(source, set()).add(fact)
        return True

    def _remove(self, source: str, fact: Fact, kinds: set[str]) -> bool:
        kind = kind_of(fact)
        table = self._facts[kind]
        sources = table.get(fact)
        if sources is None or source not in sources:
            return False
        sources.discard(source)
        if not sources:
            del table[fact]
            kinds.add(kind)
        else:
            self._dirty.add(kind)
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
        for kind in self._dirty:
            table = self._facts[kind]
            self._sorted[kind] = tuple(sorted(table, key=_KEYS[FACT_KINDS[kind]]))
            self._sources[kind] = MappingProxyType({f: frozenset(s) for f, s in table.items()})
        self._dirty.clear()
        values: dict[str, Any] = {_SNAPSHOT_FIELD[k]: v for k, v in self._sorted.items()}
        self._snapshot = StateSnapshot(self._version, **values, sources=MappingProxyType(dict(self._sources)))
        return self._snapshot

    def facts(self, kind: str) -> list[Fact]:
        facts: tuple[Fact, ...] = getattr(self.snapshot(), _SNAPSHOT_FIELD[kind])
        return list(facts)

    def sources_of(self, fact: Fact) -> frozenset[str]:
        return frozenset(self._facts[kind_of(fact)].get(fact, ()))

    def sources(self) -> dict[str, int]:
        """Each source with the number of facts it states."""
        return {s: len(f) for s, f in sorted(self._by_source.items())}

    # --- rules pushed per peer, last rule set (journal pass-through) ---------------------------------

    def record_push(self, peer: str, announced: Mapping[str, str], withdrawn: Iterable[str]) -> None:
        """Call after a push succeeded: the peer now holds `announced` and no longer the `withdrawn` keys."""
        withdrawn = tuple(withdrawn)
        if self.journal is not None:
            self.journal.record_push(peer, announced, withdrawn, self._now())
            return
        held = self._pushed.setdefault(peer, {})
        for key in withdrawn:
            held.pop(key, None)
        held.update(announced)

    def pushed(self, peer: str) -> dict[str, str]:
        """The rules `peer` holds (key -> rule text), as recorded; what a restarted pusher diffs against."""
        if self.journal is not None:
            return self.journal.pushed(peer)
        return dict(sorted(self._pushed.get(peer, {}).items()))

    def pushed_peers(self) -> list[str]:
        if self.journal is not None:
            return self.journal.pushed_peers()
        return sorted(p for p, held in self._pushed.items() if held)

    def save_ruleset(self, ruleset: SavRuleSet, version: int) -> None:
        self._ruleset = (version, ruleset)
        if self.journal is not None:
            self.journal.save_ruleset(ruleset, version, self._now())

    def last_ruleset(self) -> tuple[int, SavRuleSet] | None:
        if self._ruleset is None and self.journal is not None:
            self._ruleset = self.journal.load_ruleset()
        return self._ruleset

