"""VRP and ASPA tables: source-tagged, versioned, published as snapshots and deltas.

Owns the RPKI state the engine reads. Each source ("rtr" for the active cache, "file:<path>", "rtrlib")
puts its whole data set in with `set_source`; the table bumps one version number, computes what changed
in the union of all sources and hands subscribers an `RpkiDelta`. Sets passed in are taken over, never
copied or mutated (callers build a new set per update), so a 600k-VRP full sync costs no copy.

Route origin validation follows RFC 6811 over a py-radix index built on first use and kept up to date by
the deltas afterwards (a 600k-node radix costs ~1 s and a few hundred MiB, so a process that only
forwards snapshots never builds it). ASPA verification itself is appliance/engine/aspa.py; this table
only answers customer -> providers. Several sources attesting one customer are merged by the union of
their providers: the conservative choice, it can only turn an Invalid path into Unknown (fail open).
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import radix

from appliance.model import Aspa, Vrp
from rpki.keys import KeySet, key_to_vrp, keys_to_vrps, vrp_key

log = logging.getLogger(__name__)

AspaMap = Mapping[int, tuple[int, ...]]
Subscriber = Callable[["RpkiDelta"], None]


class RovState(enum.StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    NOT_FOUND = "not-found"


@dataclass(frozen=True, slots=True)
class RovResult:
    """The RFC 6811 verdict and the VRPs that decided it (matched ones if Valid, covering ones if not)."""

    state: RovState
    reasons: tuple[Vrp, ...] = ()


@dataclass(frozen=True, slots=True)
class RpkiSnapshot:
    version: int
    vrps: tuple[Vrp, ...]
    aspas: tuple[Aspa, ...]


@dataclass(frozen=True, slots=True)
class RpkiDelta:
    """What changed from version-1 to `version`. VRPs stay compact keys until asked for."""

    version: int
    source: str
    announced_keys: KeySet = field(default_factory=frozenset)
    withdrawn_keys: KeySet = field(default_factory=frozenset)
    aspas_set: tuple[Aspa, ...] = ()
    aspas_removed: tuple[int, ...] = ()

    def announced(self) -> tuple[Vrp, ...]:
        return keys_to_vrps(self.announced_keys)

    def withdrawn(self) -> tuple[Vrp, ...]:
        return keys_to_vrps(self.withdrawn_keys)

    def is_empty(self) -> bool:
        return not (self.announced_keys or self.withdrawn_keys or self.aspas_set or self.aspas_removed)


class RpkiTables:
    """The VRP and ASPA tables of every source. Thread-safe for one writer and many readers."""

    def __init__(self) -> None:
        self.version = 0
        self._vrps: dict[str, KeySet] = {}
        self._aspas: dict[str, dict[int, tuple[int, ...]]] = {}
        self._merged_aspas: dict[int, tuple[int, ...]] = {}
        self._subscribers: list[Subscriber] = []
        self._snapshot: RpkiSnapshot | None = None
        self._index: _RovIndex | None = None
        self._lock = threading.RLock()

    # --- writers ---------------------------------------------------------------------------------------

    def set_source(
        self,
        source: str,
        vrps: KeySet,
        aspas: AspaMap | None = None,
        added: KeySet | None = None,
        removed: KeySet | None = None,
    ) -> RpkiDelta:
        """Replace the data of `source`. `added`/`removed` may be given when the caller knows them.

        `aspas` None keeps the source's ASPAs unchanged.
        """
        with self._lock:
            old = self._vrps.get(source, frozenset())
            if added is None or removed is None:
                added, removed = vrps - old, old - vrps
            others = [s for name, s in self._vrps.items() if name != source]
            self._vrps[source] = vrps
            announced = added.difference(*others) if others else added
            withdrawn = removed.difference(*others) if others else removed
            if aspas is not None:
                self._aspas[source] = dict(aspas)
            return self._publish(source, announced, withdrawn)

    def remove_source(self, source: str) -> RpkiDelta:
        """Drop everything `source` contributed (rtrlib's src_remove)."""
        with self._lock:
            old = self._vrps.pop(source, frozenset())
            others = list(self._vrps.values())
            withdrawn = old.difference(*others) if others else old
            self._aspas.pop(source, None)
            return self._publish(source, frozenset(), withdrawn)

    def _publish(self, source: str, announced: KeySet, withdrawn: KeySet) -> RpkiDelta:
        merged = _merge_aspas(self._aspas.values())
        aspas_set = tuple(
            Aspa(c, p) for c, p in sorted(merged.items()) if self._merged_aspas.get(c) != p
        )
        aspas_removed = tuple(sorted(self._merged_aspas.keys() - merged.keys()))
        self._merged_aspas = merged
        if not (announced or withdrawn or aspas_set or aspas_removed):
            return RpkiDelta(self.version, source)  # nothing changed: no new version, nobody woken
        self.version += 1
        delta = RpkiDelta(self.version, source, announced, withdrawn, aspas_set, aspas_removed)
        self._snapshot = None
        if self._index is not None:
            self._index.apply(announced, withdrawn)
        log.info(
            "rpki.tables.update version=%d source=%s announced=%d withdrawn=%d aspas_set=%d aspas_removed=%d",
            self.version, source, len(announced), len(withdrawn), len(aspas_set), len(aspas_removed),
        )
        for callback in list(self._subscribers):
            try:
                callback(delta)
            except Exception:  # a broken subscriber must not stop the others or the feed
                log.exception("rpki.tables.subscriber_failed version=%d", self.version)
        return delta

    # --- readers ---------------------------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(delta)` after every change; returns an unsubscribe function."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def vrp_keys(self) -> KeySet:
        """The union of all sources' VRP keys (no copy when there is one source)."""
        with self._lock:
            sets = list(self._vrps.values())
        if len(sets) == 1:
            return sets[0]
        return frozenset().union(*sets)

    def snapshot(self) -> RpkiSnapshot:
        """Frozen, deterministic view of the current version (cached until the next change)."""
        with self._lock:
            if self._snapshot is None:
                aspas = tuple(Aspa(c, p) for c, p in sorted(self._merged_aspas.items()))
                self._snapshot = RpkiSnapshot(self.version, keys_to_vrps(self.vrp_keys()), aspas)
            return self._snapshot

    def providers(self, customer: int) -> tuple[int, ...] | None:
        """Providers attested by `customer`'s ASPA; None when it has none. (0,) is AS0: no providers."""
        return self._merged_aspas.get(customer)

    def aspas(self) -> Mapping[int, tuple[int, ...]]:
        return dict(self._merged_aspas)

    def counts(self) -> dict[str, int]:
        with self._lock:
            keys = self.vrp_keys()
            v4 = sum(1 for k in keys if len(k) == 11)
            return {"vrps": len(keys), "vrps_v4": v4, "vrps_v6": len(keys) - v4,
                    "aspas": len(self._merged_aspas), "version": self.version}

    def validate(self, prefix: str, origin_asn: int) -> RovResult:
        """Route origin validation of (prefix, origin AS) per RFC 6811 section 2."""
        with self._lock:
            if self._index is None:
                self._index = _RovIndex(self._vrps.values())
            return self._index.validate(prefix, origin_asn)


def _merge_aspas(sources: Any) -> dict[int, tuple[int, ...]]:
    merged: dict[int, set[int]] = {}
    for aspas in sources:
        for customer, providers in aspas.items():
            merged.setdefault(customer, set()).update(providers)
    out: dict[int, tuple[int, ...]] = {}
    for customer, providers in merged.items():
        real = providers - {0}
        out[customer] = tuple(sorted(real)) if real else (0,)
    return out


class _RovIndex:
    """py-radix over the VRP prefixes; each node's data holds its prefix's (maxLength, ASN) pairs."""

    def __init__(self, sources: Any) -> None:
        self._tree = radix.Radix()
        for keys in sources:
            for key in keys:
                self._add(key)

    def _add(self, key: bytes) -> None:
        vrp = key_to_vrp(key)
        node = self._tree.add(vrp.prefix)
        node.data[(vrp.max_length, vrp.asn)] = True

    def apply(self, announced: KeySet, withdrawn: KeySet) -> None:
        """Follow a delta; `withdrawn` holds only keys no source has any more."""
        for key in withdrawn:
            vrp = key_to_vrp(key)
            node = self._tree.search_exact(vrp.prefix)
            if node is None:
                continue
            node.data.pop((vrp.max_length, vrp.asn), None)
            if not node.data:
                self._tree.delete(vrp.prefix)
        for key in announced:
            self._add(key)

    def validate(self, prefix: str, origin_asn: int) -> RovResult:
        net = ipaddress.ip_network(prefix, strict=False)
        covering: list[Vrp] = []
        matched: list[Vrp] = []
        for node in self._tree.search_covering(str(net)):
            for (max_len, asn) in node.data:
                vrp = Vrp(node.prefix, max_len, asn)
                covering.append(vrp)
                if asn == origin_asn and asn != 0 and net.prefixlen <= max_len:
                    matched.append(vrp)
        if matched:
            return RovResult(RovState.VALID, tuple(sorted(set(matched), key=_vrp_order)))
        if covering:
            return RovResult(RovState.INVALID, tuple(sorted(set(covering), key=_vrp_order)))
        return RovResult(RovState.NOT_FOUND)


def _vrp_order(v: Vrp) -> tuple[bytes, int, int]:
    return (vrp_key(v), v.max_length, v.asn)
