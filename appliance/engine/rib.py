"""The per-router view the inter-domain algorithms read: Adj-RIBs-In per interface, RPKI indexes.

`RouterRib` owns one border router's eBGP paths grouped by interface, with lazily built indexes (origin ->
prefixes, prefix -> origins, AS_PATH customer pairs) so each algorithm pays only for what it reads.
`RpkiView` owns the VRP and ASPA indexes shared by all routers: route origin validation (RFC 6811, with
maxLength) on vrpindex.VrpIndex (built on first use, patched by VRP deltas), and ASPA lookups. Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections import defaultdict, deque
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from operator import attrgetter

from appliance.engine.aspa import (
    Authorization,
    PathVerdict,
    authorized,
    build_table,
    compress,
    verify_downstream,
    verify_upstream,
)
from appliance.engine.vrpindex import VrpIndex
from appliance.model import Aspa, BgpPath, Neighbor, Relationship, Vrp

__all__ = [
    "LATERAL",
    "RouterRib",
    "Rov",
    "RpkiView",
    "is_special_asn",
    "neighbors_by_interface",
    "path_verdict",
]

LATERAL = (Relationship.PEER, Relationship.ROUTE_SERVER)
"""Lateral peers for SAV: a route server is a peer that does not add its AS to the AS_PATH."""


def is_special_asn(asn: int) -> bool:
    """IANA special-purpose ASNs BAR-SAV step 6 removes (AS0, AS_TRANS, documentation, last, reserved).

    Private-use ASNs (RFC 6996) are kept: a controller may manage a private-ASN domain (and the labs do).
    """
    return (
        asn in (0, 23456, 65535, 4294967295) or 64496 <= asn <= 64511 or 65536 <= asn <= 65551
    )


_FAIL_OPEN_ORDER = {
    Relationship.PEER: 0,
    Relationship.ROUTE_SERVER: 1,
    Relationship.INTERNAL: 2,
    Relationship.PROVIDER: 3,
    Relationship.CUSTOMER: 4,
}


def neighbors_by_interface(neighbors: Iterable[Neighbor]) -> dict[str, Neighbor]:
    """One neighbour per interface, whatever the input order. Contradictory records for one interface keep
    the one whose default rule is loosest (peer or route server: loose uRPF), so a configuration mistake
    fails open."""
    out: dict[str, Neighbor] = {}
    for n in neighbors:
        cur = out.get(n.interface)
        if cur is None or (_FAIL_OPEN_ORDER[n.relationship], n.asn, n.address) < (
            _FAIL_OPEN_ORDER[cur.relationship], cur.asn, cur.address
        ):
            out[n.interface] = n
    return out


_asn_of = attrgetter("asn")
_prefix_of = attrgetter("prefix")


class RoaPrefixes(Mapping[int, frozenset[str]]):
    """Origin ASN -> prefixes of its ROAs (AS0 left out). Grouped in one C-level pass over the VRPs; an
    ASN's frozenset is made when it is first read (a build reads the ASNs of the customer cones, ~1k of
    ~40k)."""

    __slots__ = ("_m",)

    def __init__(self, groups: dict[int, list[str] | frozenset[str]]) -> None:
        self._m = groups

    @staticmethod
    def of(vrps: Iterable[Vrp]) -> RoaPrefixes:
        vrps = vrps if isinstance(vrps, tuple | list) else tuple(vrps)
        acc: defaultdict[int, list[str]] = defaultdict(list)
        # acc[v.asn].append(v.prefix) for every VRP, without a Python-level loop
        deque(map(list.append, map(acc.__getitem__, map(_asn_of, vrps)), map(_prefix_of, vrps)), maxlen=0)
        acc.pop(0, None)
        return RoaPrefixes(dict(acc))

    def __getitem__(self, asn: int) -> frozenset[str]:
        got = self._m[asn]
        if isinstance(got, list):
            got = self._m[asn] = frozenset(got)
        return got

    def __len__(self) -> int:
        return len(self._m)

    def __iter__(self) -> Iterator[int]:
        return iter(self._m)

    def __contains__(self, asn: object) -> bool:
        return asn in self._m

    def union_outside(self, excluded: Collection[int]) -> set[str]:
        """The prefixes of every ASN not in `excluded`, without making each ASN's frozenset."""
        out: set[str] = set()
        for asn, prefixes in self._m.items():
            if asn not in excluded:
                out.update(prefixes)
        return out

    def copy(self) -> RoaPrefixes:
        return RoaPrefixes(dict(self._m))

    def put(self, asn: int, prefixes: frozenset[str]) -> None:
        self._m[asn] = prefixes

    def drop(self, asn: int) -> None:
        self._m.pop(asn, None)


def _matches(vrps: Iterable[Vrp], origin: int, length: int) -> bool:
    """RFC 6811: a VRP of `origin` (never AS0) whose maxLength admits a route of `length`."""
    return bool(origin) and any(v.asn == origin and length <= v.max_length for v in vrps)


class Rov(enum.StrEnum):
    """Route origin validation state (RFC 6811)."""

    VALID = "valid"
    INVALID = "invalid"
    NOT_FOUND = "not-found"


@dataclass(frozen=True)  # no slots: the cached indexes live in __dict__
class RpkiView:
    """VRPs and ASPAs as the algorithms need them; `ready` is False when no RPKI data is available at all."""

    vrps: tuple[Vrp, ...]
    aspas: tuple[Aspa, ...]
    ready: bool

    @staticmethod
    def of(vrps: Iterable[Vrp], aspas: Iterable[Aspa], ready: bool | None = None) -> RpkiView:
        v, a = tuple(vrps), tuple(aspas)
        return RpkiView(v, a, bool(v or a) if ready is None else ready)

    def with_vrp_delta(self, vrps: tuple[Vrp, ...], added: Iterable[Vrp], removed: Iterable[Vrp]) -> RpkiView:
        """A view of `vrps` (this view's VRPs plus `added` minus `removed`, ASPAs and readiness unchanged),
        made by patching this view's indexes in place instead of rebuilding them. This view must not be used
        afterwards: its VRP index now belongs to the new one. ROV answers are recomputed on demand."""
        new = RpkiView(vrps, self.aspas, self.ready)
        for name in ("aspa_table", "aspa_customers_of"):
            if name in self.__dict__:
                new.__dict__[name] = self.__dict__[name]
        if "_vrp_index" not in self.__dict__:
            return new
        index: VrpIndex = self.__dict__.pop("_vrp_index")
        added, removed = tuple(added), tuple(removed)
        touched = index.patch(added, removed)
        old: RoaPrefixes | None = self.__dict__.pop("_by_asn", None)
        if old is not None:
            by_asn = old.copy()
            for asn in touched:
                if not asn:
                    continue
                kept = {
                    p for p in (*by_asn.get(asn, ()), *(v.prefix for v in added if v.asn == asn))
                    if any(v.asn == asn for v in index.at(p))
                }
                if kept:
                    by_asn.put(asn, frozenset(kept))
                else:
                    by_asn.drop(asn)
            new.__dict__["_by_asn"] = by_asn
        new.__dict__["_vrp_index"] = index
        memo: dict[int, set[str]] | None = self.__dict__.get("_unproven_roas")
        if memo is not None:
            new.__dict__["_attested"] = self.__dict__.get("_attested", {})
            moved = {v.prefix for v in (*removed, *added)}
            for local, prefixes in memo.items():
                attested = self.attested_up(local)
                for prefix in moved:
                    if any(v.asn and v.asn not in attested for v in index.at(prefix)):
                        prefixes.add(prefix)
                    else:
                        prefixes.discard(prefix)
            new.__dict__["_unproven_roas"] = memo
            del self.__dict__["_unproven_roas"]
        return new

    @cached_property
    def aspa_table(self) -> dict[int, frozenset[int]]:
        return build_table(self.aspas)

    @cached_property
    def aspa_customers_of(self) -> dict[int, frozenset[int]]:
        """Provider -> customers whose ASPA names it (BAR-SAV step 5, read backwards)."""
        acc: dict[int, set[int]] = {}
        for customer, providers in self.aspa_table.items():
            for p in providers:
                acc.setdefault(p, set()).add(customer)
        return {p: frozenset(c) for p, c in acc.items()}

    def attested_up(self, local_asn: int) -> frozenset[int]:
        """ASes whose every provider, transitively up to the local AS, holds an ASPA (the local AS counts as
        attested: nothing above it is in a customer's cone). For such an AS the ASPAs prove which customer
        cones it is in; for any other AS a hidden customer link cannot be excluded."""
        memo: dict[int, frozenset[int]] = self.__dict__.setdefault("_attested", {})
        got = memo.get(local_asn)
        if got is None:
            table = self.aspa_table
            bad = {p for provs in table.values() for p in provs if p not in table and p != local_asn}
            stack = list(bad)
            while stack:
                for c in self.aspa_customers_of.get(stack.pop(), ()):
                    if c not in bad and c != local_asn:
                        bad.add(c)
                        stack.append(c)
            got = memo[local_asn] = frozenset(a for a in table if a not in bad) | {local_asn}
        return got

    def unproven_roa_prefixes(self, local_asn: int) -> set[str]:
        """ROA prefixes with an authorised origin that is not `attested_up` (owned by the view: read only)."""
        memo: dict[int, set[str]] = self.__dict__.setdefault("_unproven_roas", {})
        got = memo.get(local_asn)
        if got is None:
            got = memo[local_asn] = self._by_asn.union_outside(self.attested_up(local_asn))
        return got

    @cached_property
    def _vrp_index(self) -> VrpIndex:
        return VrpIndex(self.vrps)

    @cached_property
    def _by_asn(self) -> RoaPrefixes:
        """Origin ASN -> prefixes of its ROAs (AS0 left out)."""
        return RoaPrefixes.of(self.vrps)

    @property
    def roa_prefixes_by_asn(self) -> RoaPrefixes:
        """Origin ASN -> prefixes of its ROAs (BAR-SAV step 11 and Procedure X step 7)."""
        return self._by_asn

    def covering_vrps(self, prefix: str) -> list[tuple[str, int, int]]:
        """(vrp prefix, max_length, asn) of every VRP covering `prefix`, most specific first."""
        return [(v.prefix, v.max_length, v.asn) for v in self._vrp_index.covering(prefix)]

    def vrps_at(self, prefix: str) -> tuple[Vrp, ...]:
        """The VRPs whose prefix is exactly `prefix`."""
        return self._vrp_index.at(prefix)

    def roa_asns(self, prefix: str) -> tuple[int, ...]:
        """ASNs of the VRPs whose prefix is exactly `prefix` (AS0 included)."""
        return tuple(v.asn for v in self.vrps_at(prefix))

    def authorized_origins(self, prefix: str) -> frozenset[int]:
        """ASNs some VRP authorises to originate exactly `prefix` (length within maxLength)."""
        length = int(prefix.rsplit("/", 1)[1])
        return frozenset(v.asn for v in self._vrp_index.covering(prefix) if length <= v.max_length and v.asn)

    @cached_property
    def _rov_memo(self) -> dict[tuple[str, int], Rov]:
        return {}

    def rov(self, prefix: str, origin: int) -> Rov:
        """RFC 6811 state of (prefix, origin); memoised, the cones of many interfaces ask the same pairs."""
        memo = self._rov_memo
        key = (prefix, origin)
        state = memo.get(key)
        if state is None:
            state = memo[key] = self._rov(prefix, origin)
        return state

    def _rov(self, prefix: str, origin: int) -> Rov:
        length = int(prefix.rsplit("/", 1)[1])
        index = self._vrp_index
        if _matches(index.at(prefix), origin, length):
            return Rov.VALID  # a VRP of exactly this prefix matches (the usual case): no covering search
        covering = index.covering(prefix)
        if not covering:
            return Rov.NOT_FOUND
        return Rov.VALID if _matches(covering, origin, length) else Rov.INVALID


class RouterRib:
    """Adj-RIBs-In of one router, by interface, with the relationship of each interface's neighbour."""

    def __init__(
        self, router: str, local_asn: int, neighbors: Mapping[str, Neighbor], paths: Iterable[BgpPath]
    ) -> None:
        self.router = router
        self.local_asn = local_asn
        self.neighbors = dict(neighbors)
        by_iface: dict[str, list[BgpPath]] = {i: [] for i in self.neighbors}
        for p in paths:
            if p.interface in by_iface:
                by_iface[p.interface].append(p)
        self.by_iface = by_iface

    def relationship(self, interface: str) -> Relationship:
        return self.neighbors[interface].relationship

    def cone_seeds(self, interface: str) -> tuple[int, ...]:
        """BAR-SAV step 1's AS-k: the neighbour AS; behind a route server, which does not put its AS in the
        path, the RS-clients the traffic really comes from (the first AS of each path) as well."""
        n = self.neighbors[interface]
        if n.relationship is not Relationship.ROUTE_SERVER:
            return (n.asn,)
        return (n.asn, *sorted({p.as_path[0] for p in self.by_iface.get(interface, ()) if p.as_path}))

    def ifaces(self, *relationships: Relationship) -> tuple[str, ...]:
        return tuple(sorted(i for i, n in self.neighbors.items() if n.relationship in relationships))

    @cached_property
    def customer_ifaces(self) -> tuple[str, ...]:
        return self.ifaces(Relationship.CUSTOMER)

    def iface_prefixes(self, interface: str) -> frozenset[str]:
        return frozenset(p.prefix for p in self.by_iface.get(interface, ()))

    def prefetch_origins(self, asns: Iterable[int]) -> None:
        """Index the prefixes of these origins only (one pass, few inserts): cones ask for a small share."""
        if "origin_prefixes" in self.__dict__:
            return
        wanted = set(asns)
        acc: dict[int, set[str]] = {a: set() for a in wanted}
        for paths in self.by_iface.values():
            for p in paths:
                mine = acc.get(p.origin)
                if mine is not None:
                    mine.add(p.prefix)
        self._some_origins = acc

    def prefixes_of(self, origin: int) -> set[str]:
        some: dict[int, set[str]] | None = self.__dict__.get("_some_origins")
        if some is not None and origin in some:
            return some[origin]
        return self.origin_prefixes.get(origin, set())

    @cached_property
    def origin_prefixes(self) -> dict[int, set[str]]:
        """Origin AS -> prefixes it originates, over all interfaces."""
        acc: dict[int, set[str]] = {}
        for paths in self.by_iface.values():
            for p in paths:
                acc.setdefault(p.origin, set()).add(p.prefix)
        return acc

    @cached_property
    def prefix_origins(self) -> dict[str, set[int]]:
        acc: dict[str, set[int]] = {}
        for paths in self.by_iface.values():
            for p in paths:
                acc.setdefault(p.prefix, set()).add(p.origin)
        return acc

    def prefix_paths(self, wanted: Iterable[str]) -> dict[str, list[BgpPath]]:
        """Prefix -> its paths on every interface, for the `wanted` prefixes only (one pass over the RIB)."""
        acc: dict[str, list[BgpPath]] = {p: [] for p in wanted}
        for iface in sorted(self.by_iface):
            for p in self.by_iface[iface]:
                bucket = acc.get(p.prefix)
                if bucket is not None:
                    bucket.append(p)
        return acc

    def rov_ok_prefixes(self, rpki: RpkiView, origin: int) -> frozenset[str]:
        """Prefixes `origin` originates here whose route is not ROV-Invalid (BAR-SAV Q2), memoised per AS."""
        memo: dict[tuple[int, int], frozenset[str]] = self.__dict__.setdefault("_rov_ok", {})
        key = (id(rpki), origin)
        got = memo.get(key)
        if got is None:
            mine = self.prefixes_of(origin)
            if rpki.vrps:
                got = frozenset(x for x in mine if rpki.rov(x, origin) is not Rov.INVALID)
            else:
                got = frozenset(mine)
            memo[key] = got
        return got

    def verdict(self, rpki: RpkiView, path: BgpPath) -> PathVerdict:
        """ASPA verification in the direction the path arrived (downstream from providers), with the
        neighbour-AS and AS_SET checks."""
        n = self.neighbors[path.interface]
        return path_verdict(rpki.aspa_table, path.as_path, n.relationship, n.asn, path.as_set)

    def customer_pairs(self, rpki: RpkiView) -> dict[int, frozenset[int]]:
        """AS -> its customers according to unique AS_PATHs in all Adj-RIBs-In (BAR-SAV step 7).

        ASPA-Invalid paths are excluded (BAR-SAV section 4 pre-filter); a hop whose customer holds an ASPA
        not naming the would-be provider is not trusted either (route-leak clean-up, BAR-SAV slides).
        """
        cached = self.__dict__.get("_pairs")
        if cached is not None and cached[0] is rpki:
            return cached[1]  # type: ignore[no-any-return]
        table = rpki.aspa_table
        acc: dict[int, set[int]] = {}
        for rel in sorted({n.relationship for n in self.neighbors.values()}):
            unique = {
                (p.as_path, p.as_set, self.neighbors[i].asn)
                for i in self.ifaces(rel)
                for p in self.by_iface[i]
            }
            for as_path, as_set, neighbor_as in sorted(unique):
                self._add_pairs(table, as_path, rel, acc, neighbor_as, as_set)
        result = {a: frozenset(c) for a, c in acc.items()}
        self.__dict__["_pairs"] = (rpki, result)
        return result

    @staticmethod
    def _add_pairs(
        table: Mapping[int, frozenset[int]],
        as_path: tuple[int, ...],
        rel: Relationship,
        acc: dict[int, set[int]],
        neighbor_as: int = 0,
        as_set: tuple[int, ...] = (),
    ) -> None:
        """The trusted customer pairs of one AS_PATH into `acc` (none when the path is ASPA-Invalid)."""
        if path_verdict(table, as_path, rel, neighbor_as, as_set) is PathVerdict.INVALID:
            return
        path = compress(as_path)
        for k in range(len(path) - 1):
            provider, customer = path[k], path[k + 1]
            if authorized(table, customer, provider) is Authorization.NOT_PROVIDER_PLUS:
                continue
            acc.setdefault(provider, set()).add(customer)


def path_verdict(
    table: Mapping[int, frozenset[int]],
    as_path: tuple[int, ...],
    rel: Relationship,
    neighbor_as: int = 0,
    as_set: tuple[int, ...] = (),
) -> PathVerdict:
    """ASPA verification of a path received over a neighbour with this relationship and AS.

    Downstream from a provider, upstream otherwise. The first AS must be the neighbour's, except behind a
    route server (the RS does not prepend itself: the local AS is its RS-client), on iBGP paths and when the
    neighbour AS is unknown (0). A path with an AS_SET is Invalid.
    """
    check = neighbor_as if neighbor_as and rel is not Relationship.INTERNAL else None
    if rel is Relationship.PROVIDER:
        return verify_downstream(table, as_path, check, as_set=as_set)
    rs_client = rel is Relationship.ROUTE_SERVER
    return verify_upstream(table, as_path, check, rs_client=rs_client, as_set=as_set)
