"""VRP and ASPA tables: source-tagged, versioned, published as snapshots and deltas.

Owns the RPKI state the engine reads. Each source ("rtr" for the active cache, "file:<path>", "rtrlib")
puts its whole data set in with `set_source`; the table bumps one version number, computes what changed
in the union of all sources and hands subscribers an `RpkiDelta`. Sets passed in are taken over, never
copied or mutated (callers build a new set per update), so a 600k-VRP full sync costs no copy.

Route origin validation follows RFC 6811 over an index built on first use and kept up to date by the
deltas afterwards (see _RovIndex for why it is not py-radix), so a process that only forwards snapshots
never pays for it. ASPA verification itself is appliance/engine/aspa.py; this table
only answers customer -> providers. Several sources attesting one customer are merged by the union of
their providers: the conservative choice, it can only turn an Invalid path into Unknown (fail open).
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import operator
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from appliance.model import Aspa, Vrp
from rpki.keys import V4_KEY_LEN, KeySet, keys_to_vrps

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
    aspas_old: tuple[Aspa, ...] = ()
    """The previous value of every customer in `aspas_set` that existed before, and of `aspas_removed`."""

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
        previous = self._merged_aspas
        aspas_old = tuple(
            Aspa(c, previous[c]) for c in sorted({a.customer for a in aspas_set} | set(aspas_removed))
            if c in previous
        )
        self._merged_aspas = merged
        if not (announced or withdrawn or aspas_set or aspas_removed):
            return RpkiDelta(self.version, source)  # nothing changed: no new version, nobody woken
        self.version += 1
        delta = RpkiDelta(self.version, source, announced, withdrawn, aspas_set, aspas_removed, aspas_old)
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
        """{"vrp", "vrp_v4", "vrp_v6", "aspa", "version"}: the keys of the daemon's RPKI status port."""
        with self._lock:
            keys = self.vrp_keys()
            v4 = sum(1 for k in keys if len(k) == 11)
            return {"vrp": len(keys), "vrp_v4": v4, "vrp_v6": len(keys) - v4,
                    "aspa": len(self._merged_aspas), "version": self.version}

    def validate(self, prefix: str, origin_asn: int) -> RovResult:
        """Route origin validation of (prefix, origin AS) per RFC 6811 section 2."""
        with self._lock:
            if self._index is None:
                self._index = _RovIndex(self._vrps.values())
            return self._index.validate(prefix, origin_asn)


_ADDR = operator.itemgetter(slice(3, -4))


def _has_host_bits(addrs: list[bytes], size: int, plen: int) -> bool:
    """Whether any key of one (family, prefix length) group has address bits past the prefix length. Runs
    in C: the addresses joined, then each address byte with host bits taken as one strided column and
    masked with `bytes.translate`."""
    if plen >= size * 8:
        return False
    joined = b"".join(addrs)
    for i in range(plen // 8, size):
        column = joined[i::size]
        host_mask = 0xFF >> (plen - 8 * i) if 8 * i < plen else 0xFF
        if column.translate(_HOST_BITS[host_mask]).count(0) != len(column):
            return True
    return False


_HOST_BITS = {m: bytes(b & m for b in range(256)) for m in (0xFF >> k for k in range(8))}


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
    """Per family and prefix length: masked address bytes -> the VRP keys with that prefix.

    Why not py-radix (the project's tree elsewhere): each radix node is a Python object with its own
    data dict. For the bench's 644k VRPs, py-radix (packed adds) took 10.5 s and +435 MiB here; this
    index 2.0 s and +22 MiB (same machine, same run); built in bulk per length since issue 13. Hash maps
    per prefix length reuse the key bytes
    already in the table, and a lookup probes only the lengths present (about 25 for IPv4, 60 for IPv6).
    """

    def __init__(self, sources: Any) -> None:
        self._tables: dict[int, dict[int, dict[bytes, bytes | tuple[bytes, ...]]]] = {4: {}, 16: {}}
        self._lengths: dict[int, list[int]] = {4: [], 16: []}
        # built in bulk (it is on the path to "ready to validate" after a full sync): the keys grouped by
        # (family, prefix length) in one loop, then each group's dict built in C from the address slices
        buckets: dict[int, list[bytes]] = {}
        get = buckets.get
        for keys in sources:
            for key in keys:
                tag = key[0] | len(key) << 8
                bucket = get(tag)
                if bucket is None:
                    buckets[tag] = [key]
                else:
                    bucket.append(key)
        for tag, bucket in buckets.items():
            size, plen = (4 if tag >> 8 == V4_KEY_LEN else 16), tag & 0xFF
            addrs = list(map(_ADDR, bucket))
            if _has_host_bits(addrs, size, plen):  # no source sends these (see keys.py); a second guard
                for key in bucket:
                    self._add(key)
                continue
            table: dict[bytes, bytes | tuple[bytes, ...]] = dict(zip(addrs, bucket, strict=True))
            if len(table) != len(bucket):  # one prefix in several keys (MOAS, maxLengths) or sources
                shared = {a for a, n in Counter(addrs).items() if n > 1}
                grouped: dict[bytes, dict[bytes, None]] = {a: {} for a in shared}
                for key in bucket:
                    mine = grouped.get(key[3:-4])
                    if mine is not None:
                        mine[key] = None
                for a, distinct in grouped.items():
                    table[a] = next(iter(distinct)) if len(distinct) == 1 else tuple(distinct)
            self._tables[size][plen] = table
        self._sort_lengths()

    @staticmethod
    def _masked(key: bytes) -> bytes:
        addr = key[3:-4]
        width = len(addr) * 8
        shift = width - key[0]
        value = int.from_bytes(addr, "big")
        masked = (value >> shift) << shift if shift < width else 0
        return addr if masked == value else masked.to_bytes(len(addr), "big")

    def _add(self, key: bytes) -> None:
        addr = self._masked(key)
        table = self._tables[len(addr)].setdefault(key[0], {})
        current = table.get(addr)
        if current is None:
            table[addr] = key
        elif isinstance(current, bytes):
            if current != key:
                table[addr] = (current, key)
        elif key not in current:
            table[addr] = (*current, key)

    def _remove(self, key: bytes) -> None:
        addr = self._masked(key)
        table = self._tables[len(addr)].get(key[0], {})
        current = table.get(addr)
        if current == key:
            del table[addr]
        elif isinstance(current, tuple) and key in current:
            rest = tuple(k for k in current if k != key)
            table[addr] = rest[0] if len(rest) == 1 else rest

    def _sort_lengths(self) -> None:
        for width, tables in self._tables.items():
            self._lengths[width] = sorted(plen for plen, t in tables.items() if t)

    def apply(self, announced: KeySet, withdrawn: KeySet) -> None:
        """Follow a delta; `withdrawn` holds only keys no source has any more."""
        for key in withdrawn:
            self._remove(key)
        for key in announced:
            self._add(key)
        self._sort_lengths()

    def validate(self, prefix: str, origin_asn: int) -> RovResult:
        net = ipaddress.ip_network(prefix, strict=False)
        size = 4 if net.version == 4 else 16
        bits, value, route_len = size * 8, int(net.network_address), net.prefixlen
        covering: list[bytes] = []
        for plen in self._lengths[size]:
            if plen > route_len:
                break
            shift = bits - plen
            probe = ((value >> shift) << shift if plen else 0).to_bytes(size, "big")
            hit = self._tables[size][plen].get(probe)
            if hit is not None:
                covering.extend((hit,) if isinstance(hit, bytes) else hit)
        origin = origin_asn.to_bytes(4, "big")
        matched = [k for k in covering if k[1] >= route_len and k[-4:] == origin and origin_asn != 0]
        if matched:
            return RovResult(RovState.VALID, keys_to_vrps(matched))
        if covering:
            return RovResult(RovState.INVALID, keys_to_vrps(covering))
        return RovResult(RovState.NOT_FOUND)
